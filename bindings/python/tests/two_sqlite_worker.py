"""The process of test_two_sqlites.py that has the store open (not a test module).

    python two_sqlite_worker.py PATH WAY

Opens the store at PATH, creates 5 callbacks, lets Python's own `sqlite3`
module at the file in one WAY, creates 5 more, prints one JSON line, then
dies without closing anything (`os._exit`, as a crash or a kill would): what
the file holds afterwards is what the store's writes really are.

WAY:
  same-process-write      sqlite3.connect(PATH) here: read, close
  same-process-read-only  sqlite3.connect("file:PATH?mode=ro", uri=True)
                          here: read, try a write (refused), close
  read-only-then-other    the read-only one, then another process opens the
                          file for writing and closes it
  other-process           only another process opens it (no sqlite3 here)
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys

import callback_store as cs

COUNT = "SELECT count(*) FROM callbacks"


def other_process_opens(path: str) -> int:
    """Another process opens the file for writing, reads, and closes it (a
    second store, the CLI, a notebook...)."""
    code = f"import sqlite3; c = sqlite3.connect({path!r}); print(c.execute({COUNT!r}).fetchone()[0]); c.close()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def main(path: str, way: str) -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    org = cs.Store.open(path).organization("org_a")
    for _ in range(5):
        org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=when))
    seen = {}
    if way == "same-process-write":
        con = sqlite3.connect(path)
        seen["sqlite3"] = con.execute(COUNT).fetchone()[0]
        con.close()
    elif way in ("same-process-read-only", "read-only-then-other"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        seen["sqlite3"] = con.execute(COUNT).fetchone()[0]
        try:
            con.execute("DELETE FROM callbacks")
            seen["write"] = "accepted"
        except sqlite3.OperationalError as e:
            seen["write"] = str(e)
        con.close()
        if way == "read-only-then-other":
            seen["other"] = other_process_opens(path)
    elif way == "other-process":
        seen["other"] = other_process_opens(path)
    else:
        raise SystemExit(f"unknown way {way}")
    for _ in range(5):
        org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=when))
    try:
        seen["store"] = len(org.list(cs.ListQuery(limit=100)).callbacks)
    except cs.CallbackStoreError.StorageError as e:
        # The store reads through connections of its own, which open the
        # file anew and find its write-ahead log deleted under the writer.
        seen["store"] = f"StorageError: {e}"

    print(json.dumps(seen), flush=True)
    os._exit(0)  # no close, no checkpoint


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
