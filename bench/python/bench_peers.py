"""The Python half of the benchmarks (issue 5): the binding against the peers a
Python user would otherwise pick, on one workload, in one run.

The workload, the same for every contender: schedule N callbacks (default
10,000 at Normal durability, 2,000 at Full, where every contender waits on
fsync; each with ~500 bytes of instructions and 10 metadata keys, generated
from a fixed seed as core/benches/store/data.rs does), then take every due
one (all N are due) and mark it done.

  binding    callback_store (a release build of the wheel):
             schedule: Organization.create_many, batches of 1000 (one
               transaction each), NewCallback built from the payload;
             drain: Store.claim_due(now, 100) until empty, and
               Organization.complete_dispatch(id, session) for each (one
               transaction each). Validates everything, writes the history.
  binding/dispatch_due
             the same schedule, then Store.dispatch_due(dispatcher, now, 100)
             until it reports nothing: Rust calls a Python Dispatcher for
             each callback and completes it. Normal durability only.
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
               transaction each) -- the same SQL round trips as the binding.

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

Also measured: the cost of one binding call, `org.get(id)` p50, on the 10k
table the Rust bench builds (target/bench/data/list-10000-v2.db), with the
same ids as the Rust GET10K row (same sampling query), paired with that row's
Rust figure read from target/bench/results.json; plus the p50 of
`org.id()` (a call that does nothing: the floor of a binding call).

Rows: ids PY1 (vs APScheduler), PY2 (vs huey), PY3 (vs hand-written sqlite3),
PY4 (get by id, Python vs Rust), with the fields of the Rust rows. Ratios of
PY1-PY3 are callbacks/s of the binding over callbacks/s of the peer (how many
times faster). PY4's ratio is Python us over Rust us; the issue sets no target
for it, so its target and met are null. The PY3 Normal row's note also splits
the binding's time into time inside FFI calls (Rust) and the rest (Python),
from one extra run with a clock around every FFI call.

Usage: see --help; scripts/bench.sh runs it and merges its rows into
target/bench/results.json.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

UTC = dt.timezone.utc
SEED = 0x00C0FFEE
T0 = dt.datetime(2030, 1, 1, tzinfo=UTC)
NOW = T0 + dt.timedelta(days=30)  # every generated callback is due by then
ORGANIZATIONS = 100
BATCH = 1000
CLAIM = 100
SESSION = "sess_x"
BIG_ORG = "org_000"
GET_10K = "get by id vs raw SELECT (10k table)"  # the Rust row (workloads.rs)
ROOT = Path(__file__).resolve().parents[2]

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


def run_binding(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _binding(path, items, durability, use_dispatch_due=False)


def run_binding_dispatch_due(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Result:
    return _binding(path, items, durability, use_dispatch_due=True)


def _binding(path: Path, items: List[Tuple[str, Payload]], durability: str, use_dispatch_due: bool,
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
        org(org_id).create_many([cs.NewCallback(**p) for p in payloads])
    scheduled = clock()
    taken = 0
    if use_dispatch_due:
        dialer = Dialer()
        while True:
            report = store.dispatch_due(dialer, NOW, CLAIM)
            if not report.dispatched and not report.failed:
                break
            assert not report.failed, report.failed[0].failure_cause
            taken += len(report.dispatched)
    else:
        while True:
            claimed = store.claim_due(NOW, CLAIM)
            if not claimed:
                break
            for cb in claimed:
                org(cb.organization_id).complete_dispatch(cb.id, SESSION)
                taken += 1
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
            for r in rows:
                json.loads(r[13])  # the caller reads the metadata
                conn.execute(
                    "UPDATE callbacks SET status = 'dispatched', created_session_id = ?,"
                    " dispatched_at = ?, updated_at = ? WHERE id = ? AND status = 'dispatching'",
                    (SESSION, now_us, now_us, r[0]),
                )
                taken += 1
        done = time.perf_counter()
    finally:
        conn.close()
    return scheduled - started, done - scheduled, taken


def ffi_split(path: Path, items: List[Tuple[str, Payload]], durability: str) -> Tuple[Result, Result]:
    """One extra, untimed-for-the-table run of the binding contender with a
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
        run = _binding(path, items, durability, use_dispatch_due=False, clock=mark)
    finally:
        native._uniffi_rust_call_with_error = original
    ffi = ((marks[1] - marks[0]) / 1e9, (marks[2] - marks[1]) / 1e9, run[2])
    return run, ffi


CONTENDERS: Dict[str, Callable[[Path, List[Tuple[str, Payload]], str], Result]] = {
    "binding": run_binding,
    "binding/dispatch_due": run_binding_dispatch_due,
    "apscheduler": run_apscheduler,
    "huey": run_huey,
    "sqlite3": run_sqlite3,
}

# (row id, peer, label of the peer, target ratio)
COMPARISONS = [
    ("PY1", "apscheduler", "APScheduler 3", 50.0),
    ("PY2", "huey", "huey SqliteStorage", 3.0),
    ("PY3", "sqlite3", "hand-written sqlite3", 0.5),
]


def measure_peers(n: int, reps: int, durability: str, contenders: List[str], work: Path) -> Dict[str, List[Result]]:
    items = generate(n)
    results: Dict[str, List[Result]] = {c: [] for c in contenders}
    for rep in range(reps):
        for name in contenders:
            d = work / f"{name.replace('/', '-')}-{durability}-{rep}"
            d.mkdir(parents=True)
            result = CONTENDERS[name](d / "bench.db", items, durability)
            shutil.rmtree(d)
            if result[2] != n:
                raise SystemExit(f"{name}: took {result[2]} callbacks, expected {n}")
            results[name].append(result)
            print(
                f"  {durability:<6} rep {rep + 1}/{reps} {name:<21}"
                f" schedule {result[0]:7.3f} s  drain {result[1]:7.3f} s"
                f"  total {result[0] + result[1]:7.3f} s",
                file=sys.stderr,
                flush=True,
            )
    if "binding" in contenders and durability == "normal":
        d = work / f"split-{durability}"
        d.mkdir(parents=True)
        run, ffi = ffi_split(d / "bench.db", items, durability)
        shutil.rmtree(d)
        results["binding:ffi-split"] = [run, ffi]
    return results


def median_result(runs: List[Result]) -> Result:
    """The run of median total, its phases kept together (the lower middle
    one of an even count)."""
    ordered = sorted(runs, key=lambda r: r[0] + r[1])
    return ordered[(len(ordered) - 1) // 2]


def row(id_: str, workload: str, ours: float, baseline: Optional[float], unit: str,
        goal: str, target: Optional[float], note: str) -> Dict[str, Any]:
    ratio = ours / baseline if baseline else None
    met = None
    if ratio is not None and target is not None:
        met = ratio >= target if goal == "at_least" else ratio <= target
    return {
        "id": id_, "workload": workload, "ours": ours, "baseline": baseline,
        "unit": unit, "ratio": ratio, "goal": goal, "target": target, "met": met,
        "note": note,
    }


def peer_rows(n: int, durability: str, results: Dict[str, List[Result]], reps: int) -> List[Dict[str, Any]]:
    rows = []
    dur = durability.capitalize()

    def fmt(r: Result) -> str:
        return f"{r[0] + r[1]:.2f} s (schedule {r[0]:.2f} + drain {r[1]:.2f})"

    for ours_name in ("binding", "binding/dispatch_due"):
        if ours_name not in results:
            continue
        ours = median_result(results[ours_name])
        for id_, peer, label, target in COMPARISONS:
            if peer not in results:
                continue
            if ours_name == "binding/dispatch_due" and peer != "sqlite3":
                continue
            base = median_result(results[peer])
            what = "schedule + drain" if ours_name == "binding" else "schedule + dispatch_due"
            note = f"median of {reps}: binding {fmt(ours)}; {peer} {fmt(base)}"
            split = results.get("binding:ffi-split")
            if split and ours_name == "binding" and peer == "sqlite3":
                (run, ffi) = split
                note += (
                    f"; binding time inside FFI calls (Rust + ctypes), one extra run:"
                    f" schedule {ffi[0]:.2f} of {run[0]:.2f} s, drain {ffi[1]:.2f} of {run[1]:.2f} s"
                )
            rows.append(row(
                id_,
                f"{what} {n}, vs {label} ({dur})",
                n / (ours[0] + ours[1]),
                n / (base[0] + base[1]),
                "cb/s",
                "at_least",
                target,
                note,
            ))
    return rows


# ---------------------------------------------------------------- one call


def percentile_us(samples_ns: List[int], q: float) -> float:
    s = sorted(samples_ns)
    return s[round((len(s) - 1) * q)] / 1000.0


def latency(reps: int, f: Callable[[int], Any]) -> Tuple[float, float]:
    """p50 and p99 in us of `reps` calls, after a warm-up of 20 (as stats.rs)."""
    for i in range(min(reps, 20)):
        f(i)
    samples = []
    clock = time.perf_counter_ns
    for i in range(reps):
        start = clock()
        f(i)
        samples.append(clock() - start)
    return percentile_us(samples, 0.5), percentile_us(samples, 0.99)


def get_sample(path: Path, n: int) -> List[str]:
    """The ids of workloads.rs get_sample: the same query, the same order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute(
            "SELECT id FROM callbacks WHERE organization_id = ? ORDER BY (seq * 7919) % 10007 LIMIT ?",
            (BIG_ORG, n),
        )]
    finally:
        conn.close()


def measure_get(db: Path, reps: int, rust_results: Optional[Path], work: Path) -> List[Dict[str, Any]]:
    import callback_store as cs

    path = work / "get-10k.db"
    shutil.copyfile(db, path)  # never touch the Rust bench's cached file
    ids = get_sample(path, reps)
    if not ids:
        raise SystemExit(f"{db}: no callbacks of {BIG_ORG} to get")
    store = cs.Store.open(str(path), cs.StoreOptions(durability=cs.Durability.NORMAL))
    org = store.organization(BIG_ORG)
    get_p50, get_p99 = latency(len(ids), lambda i: org.get(ids[i]))
    id_p50, _ = latency(len(ids), lambda i: org.id())
    rust = None
    if rust_results and rust_results.exists():
        for r in json.loads(rust_results.read_text()).get("rows", []):
            if r.get("id") == "P6" and r.get("workload") == GET_10K:
                rust = r["ours"]
    note = (
        f"Python p50 {get_p50:.1f} us, p99 {get_p99:.1f} us; "
        f"org.id() p50 {id_p50:.1f} us (the floor of one call); "
        f"{len(ids)} gets of distinct ids on the same 10k file and ids as the Rust P6 10k row"
    )
    if rust is None:
        note += "; no Rust figure (run scripts/bench.sh, or BENCH_ONLY=GET10K cargo bench)"
    del org, store
    return [row(
        "PY4",
        "get by id: Python binding vs Rust (10k table)",
        get_p50,
        rust,
        "us",
        "at_most",
        None,  # the issue asks for the figure, not a target
        note,
    )]


# ---------------------------------------------------------------- report


def print_table(rows: List[Dict[str, Any]]) -> None:
    """The Rust table's layout (stats.rs print_table), every row."""
    print(f"\n{'id':<4} {'workload':<58} {'ours':>14} {'baseline':>14} {'ratio':>9} {'target':>8}  met")
    for r in rows:
        unit = r["unit"]
        target = "-" if r.get("target") is None else (
            f">={r['target']:g}" if r["goal"] == "at_least" else f"<={r['target']:g}")
        met = "-" if r.get("met") is None else ("yes" if r["met"] else "NO")
        base = "-" if r.get("baseline") is None else f"{r['baseline']:10.1f}"
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:9.2f}"
        note = f"  ({r['note']})" if r.get("note") else ""
        workload = r["workload"]
        print(f"{r['id']:<4} {workload:<58} {r['ours']:>10.1f} {unit:<3} {base:>10} {unit:<3}"
              f" {ratio:>9} {target:>8}  {met}{note}")


def versions() -> Dict[str, str]:
    # The peers use Python's sqlite3 module's SQLite; the binding the one
    # bundled by rusqlite (libsqlite3-sys), which may be another version.
    out = {"python": platform.python_version(), "sqlite_of_python": sqlite3.sqlite_version}
    from importlib.metadata import version

    for name in ("APScheduler", "SQLAlchemy", "huey", "callback-store"):
        try:
            out[name] = version(name)
        except Exception:
            out[name] = "absent"
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="callbacks per run at Normal durability (default 10000)")
    ap.add_argument("--n-full", type=int, default=2_000,
                    help="callbacks per run at Full durability, where every peer is bound by fsync (default 2000)")
    ap.add_argument("--reps", type=int, default=5, help="runs of each contender; the median is reported (default 5)")
    ap.add_argument("--durability", default="normal,full", help="normal, full or both (default normal,full)")
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help=f"subset of {','.join(CONTENDERS)}")
    ap.add_argument("--get-reps", type=int, default=2000, help="gets for the per-call cost (default 2000, as P6)")
    ap.add_argument("--get-db", type=Path, default=ROOT / "target/bench/data/list-10000-v2.db",
                    help="the Rust bench's 10k table (default target/bench/data/list-10000-v2.db)")
    ap.add_argument("--rust-results", type=Path, default=ROOT / "target/bench/results.json",
                    help="results.json with the Rust GET10K row")
    ap.add_argument("--merge-into", type=Path, help="add the PY rows to this results.json and print every row")
    ap.add_argument("--out", type=Path, help="write the PY rows (JSON) here")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run (n 1000, 1 rep, 200 gets)")
    ap.add_argument("--tmp", type=Path, default=None, help="parent of the temporary directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.n_full = min(args.n, 1000), min(args.n_full, 200)
        args.reps, args.get_reps = 1, min(args.get_reps, 200)
    durabilities = [d.strip() for d in args.durability.split(",") if d.strip()]
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for d in durabilities:
        if d not in ("normal", "full"):
            ap.error(f"unknown durability {d}")
    for c in contenders:
        if c not in CONTENDERS:
            ap.error(f"unknown contender {c}")

    rows: List[Dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-peers-", dir=args.tmp))
    try:
        for durability in durabilities:
            n = args.n if durability == "normal" else args.n_full
            # The dispatch_due variant and the FFI split are for Normal only:
            # at Full every contender waits on fsync.
            these = [c for c in contenders if durability == "normal" or c != "binding/dispatch_due"]
            print(f"bench-peers: {n} callbacks, {args.reps} runs each, {durability}", file=sys.stderr)
            results = measure_peers(n, args.reps, durability, these, work)
            rows.extend(peer_rows(n, durability, results, args.reps))
        if args.get_reps > 0:
            if args.get_db.exists():
                print(f"bench-peers: get by id on {args.get_db}", file=sys.stderr)
                rows.extend(measure_get(args.get_db, args.get_reps, args.rust_results, work))
            else:
                print(f"bench-peers: no {args.get_db} (built by the Rust bench): no PY4 row", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows.sort(key=lambda r: r["id"])  # stable: PY1 rows together, Normal then Full

    info = {
        "n": args.n, "n_full": args.n_full, "reps": args.reps, "durability": durabilities,
        "versions": versions(), "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "date": dt.datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"python": info, "rows": rows}, indent=2))
    if args.merge_into:
        report = json.loads(args.merge_into.read_text()) if args.merge_into.exists() else {"rows": []}
        report["rows"] = [r for r in report.get("rows", []) if not str(r.get("id", "")).startswith("PY")] + rows
        report["python"] = info
        args.merge_into.write_text(json.dumps(report, indent=2))
        print_table(report["rows"])
        print(f"\nbench-peers: merged {len(rows)} rows into {args.merge_into}", file=sys.stderr)
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
