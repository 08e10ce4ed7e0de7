"""Two copies of SQLite in one process: the package's own (compiled into the
library) and Python's `sqlite3` module. They do not see each other's locks
(POSIX locks belong to the process, and closing any descriptor of the file
drops all of them), so each test below lets a worker process that has the
store open (two_sqlite_worker.py) use `sqlite3` one way, write 10 callbacks
and die without closing: the rows left in the file are the writes that were
really kept. The README's advice rests on these four facts."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

WORKER = Path(__file__).resolve().parent / "two_sqlite_worker.py"


def run(tmp_path: Path, way: str) -> Tuple[Dict[str, Any], int]:
    path = tmp_path / "callbacks.db"
    out = subprocess.run(
        [sys.executable, str(WORKER), str(path), way], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    con = sqlite3.connect(path)  # the worker is gone: nothing else has the file
    try:
        kept = con.execute("SELECT count(*) FROM callbacks").fetchone()[0]
    finally:
        con.close()
    return seen, kept


def test_writing_with_sqlite3_in_the_stores_process_loses_the_stores_writes(tmp_path: Path) -> None:
    # Closing the sqlite3 connection took the whole file for itself (the
    # store's locks are invisible to it), checkpointed and deleted the
    # write-ahead log the store still writes to.
    seen, kept = run(tmp_path, "same-process-write")
    assert seen["sqlite3"] == 5
    # The store's reads (their own connections) find the log gone.
    assert "disk I/O error" in seen["store"], seen
    assert kept == 5, "the 5 writes after sqlite3's close were expected lost"


def test_a_read_only_connection_in_the_stores_process_loses_nothing_by_itself(tmp_path: Path) -> None:
    seen, kept = run(tmp_path, "same-process-read-only")
    assert seen["sqlite3"] == 5 and seen["store"] == 10
    assert "readonly" in seen["write"]  # mode=ro refuses every write
    assert kept == 10


def test_after_a_read_only_close_another_process_can_lose_the_stores_writes(tmp_path: Path) -> None:
    # Closing even a read-only connection dropped the store's locks; the
    # other process then believed it was the file's last user and deleted
    # the write-ahead log.
    seen, kept = run(tmp_path, "read-only-then-other")
    assert seen["sqlite3"] == 5 and seen["other"] == 5
    assert "disk I/O error" in seen["store"], seen
    assert kept == 5, "the 5 writes after the other process were expected lost"


def test_sqlite3_in_a_separate_process_loses_nothing(tmp_path: Path) -> None:
    # Between processes SQLite's locks work: the other process sees the
    # store holds the file and leaves its write-ahead log alone.
    seen, kept = run(tmp_path, "other-process")
    assert seen == {"other": 5, "store": 10}
    assert kept == 10
