"""A writer process of test_feed.py (not a test module).

    python feed_worker.py LOCATION ORGANIZATION COUNT

Opens the store at LOCATION (a file, or a PostgreSQL URL), waits for a line
on stdin (so that every writer starts together, once the reader is
watching), then creates COUNT callbacks in ORGANIZATION and cancels each
right after creating it. Prints the ids it created, one a line, then "done".
"""

from __future__ import annotations

import datetime
import sys

import callback_store as cs

SCHEDULED = datetime.datetime(2030, 1, 1, 9, tzinfo=datetime.timezone.utc)


def main() -> None:
    location, organization, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    org = cs.Store.open(location).organization(organization)
    sys.stdin.readline()
    for _ in range(count):
        callback = org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=SCHEDULED))
        org.cancel(callback.id)
        print(callback.id, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
