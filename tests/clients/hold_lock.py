"""Holds the write lock of an SQLite database until its standard input
closes: scenario.ts starts it to make the server answer a busy
STORAGE_ERROR. Prints `locked` once it holds the lock.

    python3 hold_lock.py DB
"""

import sqlite3
import sys

db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
db.close()
