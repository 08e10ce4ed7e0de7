"""What the suites share, and the database they run on.

One source of tests proves the rules on both backends, as the Rust suites
do (testkit/src/db.rs): `CALLBACK_STORE_TEST_BACKEND=postgres` runs them on
PostgreSQL, each test on a fresh schema of its own; unset (or `sqlite`), on
SQLite, in memory or a fresh file. `CALLBACK_STORE_TEST_POSTGRES` is the
server's URL (scripts/test.sh starts a throwaway cluster and sets it);
tests that exist only for PostgreSQL fail without it, never skip. Schemas
are made with `psql`: the store itself never creates one.
"""

from __future__ import annotations

import datetime
import itertools
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

import callback_store as cs

T0 = datetime.datetime(2030, 1, 1, 9, 0, tzinfo=datetime.timezone.utc)

POSTGRES_ENV = "CALLBACK_STORE_TEST_POSTGRES"
BACKEND_ENV = "CALLBACK_STORE_TEST_BACKEND"


def postgres_server() -> Optional[str]:
    """The PostgreSQL server of this run, if the run runs on PostgreSQL."""
    backend = os.environ.get(BACKEND_ENV, "")
    if backend in ("", "sqlite"):
        return None
    if backend != "postgres":
        pytest.fail(f"{BACKEND_ENV}={backend}: expected sqlite or postgres", pytrace=False)
    return require_postgres()


def require_postgres() -> str:
    """The PostgreSQL server's URL, for the tests that exist only for it."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.fail(
            f"{POSTGRES_ENV} is not set: this test needs a PostgreSQL server. Start the"
            f" throwaway one with `scripts/pg.sh start` and set {POSTGRES_ENV} to the URL"
            " it prints (scripts/test.sh does both)",
            pytrace=False,
        )
    return url


def psql(server: str, sql: str) -> str:
    """Runs `sql` on `server` with psql; its output, unaligned. A failure
    fails the test, saying what psql said."""
    try:
        done = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", server, "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        pytest.fail("psql is not installed (Debian: postgresql-client)", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"psql on the test PostgreSQL at {server} failed ({sql}): {done.stderr.strip()}", pytrace=False)
    return done.stdout.strip()


_SCHEMAS = itertools.count()


def fresh_schema(server: str) -> str:
    """A new, empty schema on `server`; its name."""
    name = f"t_py_{os.getpid()}_{next(_SCHEMAS)}_{time.time_ns() % 10**9}"
    psql(server, f"CREATE SCHEMA {name}")
    return name


def schema_url(server: str, schema: str) -> str:
    """The URL of `server` whose search_path selects `schema`."""
    glue = "&" if "?" in server else "?"
    return f"{server}{glue}options=-csearch_path%3D{schema}"


def fresh_location(folder: Path) -> str:
    """What Store.open takes for a fresh, empty database on this run's
    backend: a file in `folder`, or the URL of a new schema."""
    server = postgres_server()
    if server is None:
        return str(folder / "callbacks.db")
    return schema_url(server, fresh_schema(server))


def fresh_store(options: Optional[cs.StoreOptions] = None) -> cs.Store:
    """A store on a fresh, empty database of this run's backend: in memory
    on SQLite, a new schema on PostgreSQL."""
    server = postgres_server()
    if server is None:
        return cs.Store.open_in_memory(options)
    return cs.Store.open(schema_url(server, fresh_schema(server)), options)


def pytest_report_header() -> str:
    backend = os.environ.get(BACKEND_ENV) or "sqlite"
    if backend == "postgres":
        backend += f" at {os.environ.get(POSTGRES_ENV) or '? (' + POSTGRES_ENV + ' is not set)'}"
    return f"callback-store backend: {backend}"


@pytest.fixture
def db_location(tmp_path: Path) -> str:
    return fresh_location(tmp_path)


@pytest.fixture
def clock() -> cs.ManualClock:
    return cs.ManualClock(T0)


@pytest.fixture
def store(clock: cs.ManualClock) -> cs.Store:
    return fresh_store(cs.StoreOptions(clock=clock))


@pytest.fixture
def org(store: cs.Store) -> cs.Organization:
    return store.organization("org_acme")


def new(hours: float = 1, **kwargs) -> cs.NewCallback:
    kwargs.setdefault("to_number", "+12015551234")
    return cs.NewCallback(scheduled_at=T0 + datetime.timedelta(hours=hours), **kwargs)


class CountingDialer(cs.Dispatcher):
    """A Python Dispatcher that records every call it gets (from any thread)."""

    def __init__(self, session: str = "sess_call") -> None:
        self.session = session
        self.calls: List[str] = []
        self.lock = threading.Lock()

    def place_call(self, callback: cs.Callback) -> str:
        with self.lock:
            self.calls.append(callback.id)
        return self.session
