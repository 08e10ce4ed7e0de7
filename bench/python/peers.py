"""The Python half's workload and its contenders, for bench_peers.py.

The workload, the same for every contender: schedule N callbacks (default
10,000 at Normal durability, 2,000 at Full, where every contender waits on
fsync; each with ~500 bytes of instructions and 10 metadata keys, generated
from a fixed seed as core/benches/store/data.rs does), then take every due
one (all N are due) and mark it done.

  binding    callback_store (a release build of the wheel):
             schedule: Organization.create_many_returning_ids, batches of
               1000 (one transaction each; answers ids, no record),
               NewCallback built from the payload;
             drain: Store.claim_due(now, 100) until empty (claims), each
               claim's record read (Claim.callback(): what a dialer reads
               to place the call), then Store.complete_many of the 100
               (one transaction; answers ids, no record). Validates
               everything, writes the history.
  binding/per-call
             the shapes before issue 14, kept for comparison: schedule by
               Organization.create_many (the same batches, answering every
               record); the drain completes each claim on its own:
               Organization.complete_dispatch(id, session, claim_token)
               (one transaction each, answering the whole record).
  binding/dispatch_due
             the schedule of binding/per-call, then Store.dispatch_due(dispatcher, now, 100)
             until it reports nothing: Rust calls a Python Dispatcher for
             each callback and completes it. Normal durability only.
  binding/dispatch_due_with
             the same with Store.dispatch_due_with(..., DispatchOptions(
             concurrency=4)): 4 Rust threads call the Dispatcher, their
             transactions share commits. Normal durability only.
  apscheduler  APScheduler 3, BackgroundScheduler started paused (so that
             its thread never runs a job on its own) with a SQLAlchemyJobStore
             on the SQLite file:
             schedule: scheduler.add_job(place_call, "date", run_date=...,
               kwargs=payload) for each (one transaction each; the job is
               pickled);
             drain: jobstore.get_due_jobs(now) (one SELECT of every due job,
               each unpickled into a Job), then for each job what
               BaseScheduler._process_jobs does once it has handed the job to
               an executor: trigger.get_next_fire_time(...) (None for a date
               trigger) and scheduler.remove_job(id, "default") (one DELETE
               transaction each). No executor runs: no contender places a call.
  huey       huey's SqliteStorage:
             schedule: storage.add_to_schedule(data, eta) for each, `data`
               being what Huey.add_schedule stores: a huey Message (id, name,
               eta, kwargs=payload, ...) serialized by huey's Serializer
               (pickle); one `begin exclusive` transaction each;
             drain: storage.read_schedule(now) (SELECT every due row and
               DELETE them, one transaction), then Serializer.deserialize of
               each, as Huey.read_schedule does. Keeps no record of what ran.
  sqlite3    hand-written `sqlite3` code: one table (INTEGER PRIMARY KEY,
             an index on (status, scheduled_at)), no validation, no history:
             schedule: executemany INSERT in transactions of 1000 rows;
             drain: BEGIN IMMEDIATE; SELECT the 100 soonest due rows; UPDATE
               them to 'dispatching'; COMMIT; then for each row json.loads of
               its metadata and one UPDATE to 'dispatched' (autocommit, one
               transaction each) -- the binding/per-call round trips.
  sqlite3/batched
             the same, completing each claimed batch of 100 in one
             transaction (BEGIN; 100 UPDATEs; COMMIT): the binding's
             complete_many round trips, for an honest comparison of that
             shape.

Timed: from the pre-generated payloads (dicts and aware datetimes, built
before the clock starts) to every callback marked done; opening the file and
creating the schema are not timed. Each contender gets a fresh file in a
temporary directory for every repetition; repetitions interleave the
contenders, and the median total of `--reps` runs is reported.

Durability: every contender runs on a SQLite file in WAL mode, with
synchronous=NORMAL ("normal") or FULL ("full"):
  binding      StoreOptions(durability=Durability.NORMAL / FULL)
  apscheduler  the SQLAlchemy engine's connect hook sets journal_mode=WAL
               and synchronous (SQLAlchemy's default would be a rollback
               journal with FULL)
  huey         SqliteStorage(journal_mode="wal"); fsync=True for "full";
               for "normal" synchronous=NORMAL is set on its connection
               (huey itself offers only OFF, its default, or FULL)
  sqlite3      PRAGMA journal_mode=WAL; PRAGMA synchronous=...
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

UTC = dt.timezone.utc
SEED = 0x00C0FFEE
T0 = dt.datetime(2030, 1, 1, tzinfo=UTC)
NOW = T0 + dt.timedelta(days=30)  # every generated callback is due by then
ORGANIZATIONS = 100
BATCH = 1000
CLAIM = 100
SESSION = "sess_x"

Payload = Dict[str, Any]

# ---------------------------------------------------------------- data


def generate(n: int) -> List[Tuple[str, Payload]]:
    """(organization, payload) for callbacks 0..n, from the fixed seed: the
    shape of the Rust data set (core/benches/store/data.rs)."""
    rng = random.Random(SEED)
    words = [
        "call", "back", "about", "the", "pricing", "plan", "renewal", "question",
        "customer", "prefers", "mornings", "mention", "discount", "invoice",
    ]
    out = []
    for i in range(n):
        parts: List[str] = []
        length = 0
        while length < 500:
            w = words[rng.randrange(len(words))]
            parts.append(w)
            length += len(w) + 1
        instructions = " ".join(parts) + " "
        metadata = {f"key_{k}": f"value-{rng.randrange(1000)}" for k in range(10)}
        payload = {
            "to_number": f"+1201555{i % 10_000:04d}",
            "scheduled_at": T0 + dt.timedelta(minutes=rng.randrange(-1440, 10_080)),
            "source_session_id": f"sess_{i // 3}",
            "agent_id": f"agent_{i % 20}",
            "phone_number_id": f"pn_{i % 7}",
            "from_number": "+12015550000",
            "reason": "customer asked for a callback",
            "instructions": instructions,
            "summary": "Discussed the renewal; wants numbers in writing.",
            "pipeline_config": {"voice": "alloy"},
            "metadata": metadata,
        }
        out.append((batch_org(i // BATCH), payload))
    return out


def batch_org(k: int) -> str:
    """As data.rs: half of the batches to org_000, the rest round robin."""
    if k % 2 == 0:
        return "org_000"
    return f"org_{1 + (k // 2) % (ORGANIZATIONS - 1):03d}"


def batches(items: List[Tuple[str, Payload]]) -> List[Tuple[str, List[Payload]]]:
    return [
        (items[s][0], [p for _, p in items[s : s + BATCH]])
        for s in range(0, len(items), BATCH)
    ]


def place_call(**callback: Any) -> None:
    """The job function of the APScheduler and huey contenders (never run)."""


# ---------------------------------------------------------------- contenders
# Each takes (path, items, durability) and returns (schedule s, drain s,
# callbacks taken).

Result = Tuple[float, float, int]


# How the binding contenders drain: see the module's docstring.
DRAINS = ("complete_many", "per-call", "dispatch_due", "dispatch_due_with")
CONCURRENCY = 4  # binding/dispatch_due_with


def run_binding(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _binding(path, items, durability, drain="complete_many")


def run_binding_per_call(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _binding(path, items, durability, drain="per-call")


def run_binding_dispatch_due(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _binding(path, items, durability, drain="dispatch_due")


def run_binding_dispatch_due_with(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _binding(path, items, durability, drain="dispatch_due_with")


def _binding(path: Path, items: List[Tuple[str, Payload]], durability: str, drain: str,
             clock: Callable[[], float] = time.perf_counter) -> Result:
    import callback_store as cs

    options = cs.StoreOptions(
        durability=cs.Durability.FULL if durability == "full" else cs.Durability.NORMAL,
        clock=cs.ManualClock(T0),
    )
    store = cs.Store.open(str(path), options)
    grouped = batches(items)
    orgs: Dict[str, Any] = {}

    def org(org_id: str) -> Any:
        handle = orgs.get(org_id)
        if handle is None:
            handle = orgs[org_id] = store.organization(org_id)
        return handle

    class Dialer(cs.Dispatcher):
        def place_call(self, callback: Any) -> str:
            return SESSION

    started = clock()
    for org_id, payloads in grouped:
        if drain == "complete_many":
            org(org_id).create_many_returning_ids([cs.NewCallback(**p) for p in payloads])
        else:
            org(org_id).create_many([cs.NewCallback(**p) for p in payloads])
    scheduled = clock()
    taken = 0
    if drain in ("dispatch_due", "dispatch_due_with"):
        dialer = Dialer()
        options = cs.DispatchOptions(concurrency=CONCURRENCY)
        while True:
            if drain == "dispatch_due":
                report = store.dispatch_due(dialer, NOW, CLAIM)
            else:
                report = store.dispatch_due_with(dialer, NOW, CLAIM, options)
            if not report.dispatched and not report.failed:
                break
            assert not report.failed, report.failed[0].failure_cause
            taken += len(report.dispatched)
    elif drain == "complete_many":
        while True:
            claimed = store.claim_due(NOW, CLAIM)
            if not claimed:
                break
            completions = []
            for claim in claimed:  # a Claim: the callback and its fencing token
                claim.callback()  # what a dialer reads to place the call
                completions.append(cs.Completion(claim=claim, created_session_id=SESSION))
            for outcome in store.complete_many(completions):
                assert outcome.error is None, outcome.error
                taken += 1
    elif drain == "per-call":
        while True:
            claimed = store.claim_due(NOW, CLAIM)
            if not claimed:
                break
            for claim in claimed:
                cb = claim.callback()
                org(cb.organization_id).complete_dispatch(cb.id, SESSION, claim.token())
                taken += 1
    else:
        raise ValueError(f"unknown drain {drain!r}: one of {', '.join(DRAINS)}")
    done = clock()
    del store, orgs
    return scheduled - started, done - scheduled, taken


def _wal_engine(path: Path, durability: str) -> Any:
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{path}")
    synchronous = "FULL" if durability == "full" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()

    return engine


def run_apscheduler(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    import logging

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    engine = _wal_engine(path, durability)
    jobstore = SQLAlchemyJobStore(engine=engine)
    scheduler = BackgroundScheduler(jobstores={"default": jobstore}, timezone=UTC)
    scheduler.start(paused=True)  # jobs go to the store; nothing runs them
    try:
        started = time.perf_counter()
        for org_id, p in items:
            kwargs = dict(p)
            run_date = kwargs.pop("scheduled_at")
            kwargs["organization_id"] = org_id
            scheduler.add_job(
                place_call, "date", run_date=run_date, kwargs=kwargs, jobstore="default"
            )
        scheduled = time.perf_counter()
        taken = 0
        for job in jobstore.get_due_jobs(NOW):
            # What _process_jobs does after handing a due job to its executor:
            # a date trigger has no next fire time, so the job is removed.
            if job.trigger.get_next_fire_time(job.next_run_time, NOW) is None:
                scheduler.remove_job(job.id, "default")
            taken += 1
        done = time.perf_counter()
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()
    return scheduled - started, done - scheduled, taken


def run_huey(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    from huey.registry import Message
    from huey.serializer import Serializer
    from huey.storage import SqliteStorage

    storage = SqliteStorage(
        name="bench", filename=str(path), journal_mode="wal", fsync=durability == "full"
    )
    if durability != "full":
        # huey's own choices are OFF (default) and FULL; NORMAL is set on its
        # (per-thread, kept) connection so that it is in the same class.
        storage.conn.execute("PRAGMA synchronous=NORMAL")
    serializer = Serializer()
    name = f"{__name__}.place_call"
    try:
        started = time.perf_counter()
        for org_id, p in items:
            kwargs = dict(p)
            eta = kwargs.pop("scheduled_at")
            kwargs["organization_id"] = org_id
            message = Message(uuid.uuid4().hex, name, eta, 0, 0, None, (), kwargs, None, None, None, None)
            storage.add_to_schedule(serializer.serialize(message), eta)
        scheduled = time.perf_counter()
        taken = 0
        for data in storage.read_schedule(NOW):
            message = serializer.deserialize(data)
            taken += 1
        done = time.perf_counter()
    finally:
        storage.close()
    return scheduled - started, done - scheduled, taken


SQLITE_SCHEMA = """
CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    to_number TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    source_session_id TEXT,
    agent_id TEXT,
    phone_number_id TEXT,
    from_number TEXT,
    reason TEXT,
    instructions TEXT,
    summary TEXT,
    pipeline_config TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_session_id TEXT,
    attempted_at INTEGER,
    dispatched_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX callbacks_due ON callbacks (status, scheduled_at);
"""


def _micros(t: dt.datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def run_sqlite3(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _sqlite3(path, items, durability, batch_completions=False)


def run_sqlite3_batched(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _sqlite3(path, items, durability, batch_completions=True)


def _sqlite3(path: Path, items: List[Tuple[str, Payload]], durability: str, batch_completions: bool) -> Result:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.executescript(SQLITE_SCHEMA)
    insert = (
        "INSERT INTO callbacks (organization_id, to_number, scheduled_at, status,"
        " source_session_id, agent_id, phone_number_id, from_number, reason, instructions,"
        " summary, pipeline_config, metadata, created_at, updated_at)"
        " VALUES (?, ?, ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    now_us = _micros(T0)
    done_us = _micros(NOW)
    try:
        started = time.perf_counter()
        for org_id, payloads in batches(items):
            conn.execute("BEGIN")
            conn.executemany(
                insert,
                [
                    (
                        org_id, p["to_number"], _micros(p["scheduled_at"]),
                        p["source_session_id"], p["agent_id"], p["phone_number_id"],
                        p["from_number"], p["reason"], p["instructions"], p["summary"],
                        json.dumps(p["pipeline_config"]), json.dumps(p["metadata"]),
                        now_us, now_us,
                    )
                    for p in payloads
                ],
            )
            conn.execute("COMMIT")
        scheduled = time.perf_counter()
        taken = 0
        while True:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "SELECT * FROM callbacks WHERE status = 'scheduled' AND scheduled_at <= ?"
                " ORDER BY scheduled_at LIMIT ?",
                (done_us, CLAIM),
            ).fetchall()
            if not rows:
                conn.execute("COMMIT")
                break
            conn.executemany(
                "UPDATE callbacks SET status = 'dispatching', attempted_at = ?, updated_at = ?"
                " WHERE id = ?",
                [(now_us, now_us, r[0]) for r in rows],
            )
            conn.execute("COMMIT")
            if batch_completions:
                conn.execute("BEGIN IMMEDIATE")
            for r in rows:
                json.loads(r[13])  # the caller reads the metadata
                conn.execute(
                    "UPDATE callbacks SET status = 'dispatched', created_session_id = ?,"
                    " dispatched_at = ?, updated_at = ? WHERE id = ? AND status = 'dispatching'",
                    (SESSION, now_us, now_us, r[0]),
                )
                taken += 1
            if batch_completions:
                conn.execute("COMMIT")
        done = time.perf_counter()
    finally:
        conn.close()
    return scheduled - started, done - scheduled, taken


def ffi_split(path: Path, items: List[Tuple[str, Payload]], durability: str,
              drain: str = "complete_many") -> Tuple[Result, Result]:
    """One extra, untimed-for-the-table run of a binding contender with a
    clock around every FFI call (the ctypes call itself: Rust's work plus
    ctypes' marshalling), to split its time into Rust and Python (uniffi's
    generated lowering and lifting, the converters, the loop). Returns the
    run's (schedule, drain, taken) and the same phases' time inside FFI
    calls."""
    import importlib

    native: Any = importlib.import_module("callback_store._native.callback_store")

    original = native._uniffi_rust_call_with_error
    inside = [0]
    clock = time.perf_counter_ns

    def timed(error_ffi_converter: Any, fn: Any, *args: Any) -> Any:
        call_status = native._UniffiRustCallStatus.default()
        start = clock()
        result = fn(*args, ctypes.byref(call_status))
        inside[0] += clock() - start
        native._uniffi_check_call_status(error_ffi_converter, call_status)
        return result

    marks: List[int] = []
    perf = time.perf_counter

    def mark() -> float:
        marks.append(inside[0])
        return perf()

    native._uniffi_rust_call_with_error = timed
    try:
        run = _binding(path, items, durability, drain=drain, clock=mark)
    finally:
        native._uniffi_rust_call_with_error = original
    ffi = ((marks[1] - marks[0]) / 1e9, (marks[2] - marks[1]) / 1e9, run[2])
    return run, ffi


CONTENDERS: Dict[str, Callable[[Path, List[Tuple[str, Payload]], str], Result]] = {
    "binding": run_binding,
    "binding/per-call": run_binding_per_call,
    "binding/dispatch_due": run_binding_dispatch_due,
    "binding/dispatch_due_with": run_binding_dispatch_due_with,
    "apscheduler": run_apscheduler,
    "huey": run_huey,
    "sqlite3": run_sqlite3,
    "sqlite3/batched": run_sqlite3_batched,
}
