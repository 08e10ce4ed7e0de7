"""The wheel's PostgreSQL backend, tests that exist only for it: they need
CALLBACK_STORE_TEST_POSTGRES (the server's URL) and fail without it, never
skip. scripts/test-bindings.sh runs them in the PostgreSQL pass, where every
suite that runs on both backends runs on PostgreSQL too (conftest.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from conftest import T0, fresh_schema, new, psql, require_postgres, schema_url

import callback_store as cs

WORKER = Path(__file__).with_name("claim_worker.py")


@pytest.fixture
def server() -> str:
    return require_postgres()


@pytest.fixture
def schema(server: str) -> str:
    return fresh_schema(server)


def test_a_postgres_url_opens_the_database_never_a_file(
    server: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a URL taken for a relative path would land
    url = schema_url(server, schema)
    store = cs.Store.open(url, cs.StoreOptions(max_connections=2))
    cb = store.organization("org_a").create(new(1))
    # The same database by its other scheme, from a second store.
    other = cs.Store.open("postgresql://" + url.split("://", 1)[1])
    assert other.organization("org_a").get(cb.id) == cb
    # The row is in the schema, as PostgreSQL itself sees it, and no file was made.
    assert psql(server, f"SELECT id, status FROM {schema}.callbacks") == f"{cb.id}|scheduled"
    assert list(tmp_path.iterdir()) == []


def test_max_connections_reaches_the_postgres_backend(server: str, schema: str) -> None:
    with pytest.raises(cs.CallbackStoreError.ValidationError) as info:
        cs.Store.open(schema_url(server, schema), cs.StoreOptions(max_connections=0))
    assert info.value.code == "VALIDATION_ERROR"
    assert str(info.value).startswith("max_connections: "), str(info.value)


def test_two_processes_claiming_on_one_database_never_claim_the_same_callback(server: str, schema: str) -> None:
    url = schema_url(server, schema)
    org = cs.Store.open(url).organization("org_a")
    created = [cb.id for _ in range(10) for cb in org.create_many([new(0) for _ in range(100)])]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        for _ in range(2)
    ]
    try:
        # Both start draining at the same instant, 5 claims at a time.
        deadline = time.monotonic() + 1.0
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"drain {deadline!r} {T0.isoformat()} 5\n")
            worker.stdin.flush()
        dialed: List[List[str]] = []
        for worker in workers:
            assert worker.stdout is not None
            words = worker.stdout.readline().split()
            assert words[:1] == ["drained"], f"a worker died (exit {worker.poll()}): {words}"
            dialed.append(words[1:])
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
            assert worker.wait(timeout=60) == 0
    first, second = dialed
    assert not set(first) & set(second), "the same callback was claimed by both processes"
    assert sorted(first + second) == sorted(created), "a callback was claimed twice or never"
    counts = {c.status: c.count for c in org.count_by_status() if c.count}
    assert counts == {cs.Status.DISPATCHED: len(created)}, counts
    print(f"2 processes drained {len(created)} callbacks: {len(first)} and {len(second)}")
    # Each process claimed some: the two really worked at the same time.
    assert first and second, (len(first), len(second))


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once it is closed


# Opens the store in a process of its own, which the test kills if it hangs.
OPEN_AND_REPORT = """
import datetime, sys, time
import callback_store as cs
started = time.monotonic()
try:
    cs.Store.open(sys.argv[1], cs.StoreOptions(busy_timeout=datetime.timedelta(seconds=float(sys.argv[2]))))
    print("opened")
except cs.CallbackStoreError as e:
    print(type(e).__name__, e.code, round(time.monotonic() - started, 2), e)
"""


@pytest.mark.parametrize(
    "where",
    [
        "a_closed_port",
        "a_server_that_never_answers",
    ],
)
def test_an_unreachable_server_is_a_storage_error_within_the_busy_timeout(where: str, silent_server: int) -> None:
    port = closed_port() if where == "a_closed_port" else silent_server
    timeout = 2.0
    try:
        done = subprocess.run(
            [sys.executable, "-c", OPEN_AND_REPORT, f"postgres://postgres@127.0.0.1:{port}/postgres", str(timeout)],
            capture_output=True,
            text=True,
            timeout=timeout + 4,  # the interpreter's start and import included
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"Store.open did not return within {timeout + 4} s (busy timeout {timeout} s)")
    assert done.returncode == 0, done.stderr
    kind, code, took, message = done.stdout.split(" ", 3)
    assert (kind, code) == ("StorageError", "STORAGE_ERROR"), done.stdout
    assert "PostgreSQL" in message, message
    assert float(took) < timeout + 1.0, f"took {took} s with a busy timeout of {timeout} s"


class ErrorRecorder(cs.ChangeObserver):
    """A ChangeObserver that keeps the errors it is given."""

    def __init__(self) -> None:
        self.errors: List[Exception] = []
        self.after_error = 0

    def on_changes(self, changes: List[cs.Change]) -> None:
        if self.errors:
            self.after_error += 1

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)


def test_a_watch_whose_store_fails_reports_one_error_and_stops(server: str, schema: str) -> None:
    # The schema dropped under a running watch: its next read fails. A
    # storage error cannot be made on SQLite while the file stays open.
    org = cs.Store.open(schema_url(server, schema)).organization("org_a")
    org.create(new(1))
    recorder = ErrorRecorder()
    watch = org.watch("now", recorder)
    psql(server, f"DROP SCHEMA {schema} CASCADE")
    deadline = time.monotonic() + 20
    while watch.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not watch.is_running()
    assert [type(e) for e in recorder.errors] == [cs.CallbackStoreError.StorageError], recorder.errors
    assert recorder.errors[0].code == "STORAGE_ERROR" and recorder.after_error == 0
