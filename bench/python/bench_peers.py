"""The Python half of the benchmarks (issue 5): the binding against the peers a
Python user would otherwise pick, on one workload, in one run.

The workload and its contenders are described and implemented in peers.py.

Also measured: the cost of one binding call, `org.get(id)` p50, on the 10k
table the Rust bench builds (target/bench/data/list-10000-v2.db), with the
same ids as the Rust GET10K row (same sampling query), paired with that row's
Rust figure read from target/bench/results.json; plus the p50 of
`org.id()` (a call that does nothing: the floor of a binding call).

Also measured (PY5): the calls of a drain one by one, from Python:
completing one claim with complete_dispatch against complete_many of one,
alternating on one file, with claim_due, complete_many of 100 and
Claim.callback() per claim in its note.

Rows: ids PY1 (vs APScheduler), PY2 (vs huey), PY3 (vs hand-written sqlite3,
and vs the same code batching its completions), PY4 (get by id, Python vs
Rust), PY5 (the calls of a drain), with the fields of the Rust rows. Ratios
of PY1-PY3 are callbacks/s of the binding over callbacks/s of the peer (how
many times faster); the binding's other drains (complete_dispatch each,
dispatch_due, dispatch_due_with) get a PY3 row each. PY4's and PY5's ratios
are us over us; the issue sets no target for them, so their target and met
are null. The PY3 Normal rows of the binding's complete_many and
complete_dispatch drains also split its time into time inside FFI calls
(Rust) and the rest (Python), from one extra run each with a clock around
every FFI call.

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
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from peers import CLAIM, CONTENDERS, NOW, SESSION, UTC, Result, ffi_split, generate

BIG_ORG = "org_000"
GET_10K = "get by id vs raw SELECT (10k table)"  # the Rust row (workloads.rs)
ROOT = Path(__file__).resolve().parents[2]

# (row id, peer, label of the peer, target ratio): issue 14's targets.
PY3_TARGET = 1.0
COMPARISONS = [
    ("PY1", "apscheduler", "APScheduler 3", 10.0),
    ("PY2", "huey", "huey SqliteStorage", 3.0),
    ("PY3", "sqlite3", "hand-written sqlite3", PY3_TARGET),
    # The hand-written code with its completions batched as complete_many
    # batches them: the same shape on both sides. No target of the issue.
    ("PY3", "sqlite3/batched", "sqlite3, batched completions", None),
]

# The binding's other drains, each against hand-written sqlite3 only, with
# what its row calls it.
OTHER_DRAINS = {
    "binding/per-call": "schedule + drain by complete_dispatch",
    "binding/dispatch_due": "schedule + dispatch_due",
    "binding/dispatch_due_with": "schedule + dispatch_due_with(4)",
}
# The binding contenders whose time is split into FFI and Python.
SPLIT = {"binding": "complete_many", "binding/per-call": "per-call"}


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
    for name, drain in SPLIT.items():
        if name in contenders and durability == "normal":
            d = work / f"split-{durability}-{name.replace('/', '-')}"
            d.mkdir(parents=True)
            run, ffi = ffi_split(d / "bench.db", items, durability, drain)
            shutil.rmtree(d)
            results[f"{name}:ffi-split"] = [run, ffi]
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

    for ours_name in ("binding", *OTHER_DRAINS):
        if ours_name not in results:
            continue
        ours = median_result(results[ours_name])
        for id_, peer, label, target in COMPARISONS:
            if peer not in results:
                continue
            if ours_name != "binding" and peer != "sqlite3":
                continue
            base = median_result(results[peer])
            what = OTHER_DRAINS.get(ours_name, "schedule + drain")
            note = f"median of {reps}: {ours_name} {fmt(ours)}; {peer} {fmt(base)}"
            split = results.get(f"{ours_name}:ffi-split")
            if split and peer == "sqlite3":
                (run, ffi) = split
                note += (
                    f"; binding time inside FFI calls (Rust + ctypes), one extra run:"
                    f" schedule {ffi[0]:.2f} of {run[0]:.2f} s, drain {ffi[1]:.2f} of {run[1]:.2f} s"
                )
            if ours_name != "binding":
                target = PY3_TARGET  # the same workload, drained another way
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


def measure_drain_calls(reps: int, work: Path) -> List[Dict[str, Any]]:
    """The cost of each call of a drain, from Python, at Normal durability:
    completing one claim with complete_dispatch (a transaction, the whole
    record answered and lifted) against complete_many of one (a transaction,
    an id answered), alternating on the same file; plus claim_due of 100 and
    complete_many of 100 per claim, and Claim.callback() (lifting one
    record)."""
    import callback_store as cs

    store = cs.Store.open(str(work / "calls.db"), cs.StoreOptions(
        durability=cs.Durability.NORMAL, clock=cs.ManualClock(generate(1)[0][1]["scheduled_at"])))
    org = store.organization(BIG_ORG)
    payloads = [p for _, p in generate(4 * reps)]
    clock = time.perf_counter_ns
    # Scheduling by 100, alternating the two shapes: per callback.
    records_ns, ids_ns = [], []
    for k, start_at in enumerate(range(0, len(payloads), CLAIM)):
        news = [cs.NewCallback(**p) for p in payloads[start_at:start_at + CLAIM]]
        create = org.create_many if k % 2 == 0 else org.create_many_returning_ids
        start = clock()
        create(news)
        (records_ns if k % 2 == 0 else ids_ns).append((clock() - start) // len(news))
    claims: List[Any] = []
    claim_ns: List[int] = []
    while True:
        start = clock()
        got = store.claim_due(NOW, CLAIM)
        if not got:
            break
        claim_ns.append((clock() - start) // len(got))
        claims.extend(got)
    lift_ns = []
    for claim in claims:
        start = clock()
        claim.callback()
        lift_ns.append(clock() - start)
    one_by_one, batched = claims[: 2 * reps], claims[2 * reps:]
    dispatch_ns, many_ns = [], []
    for i in range(0, len(one_by_one) - 1, 2):
        a, b = one_by_one[i], one_by_one[i + 1]
        a_id, a_token = a.id(), a.token()
        completion = cs.Completion(claim=b, created_session_id=SESSION)
        start = clock()
        org.complete_dispatch(a_id, SESSION, a_token)
        middle = clock()
        outcome = store.complete_many([completion])
        dispatch_ns.append(middle - start)
        many_ns.append(clock() - middle)
        assert outcome[0].error is None, outcome[0].error
    batch_ns = []
    for start_at in range(0, len(batched) - CLAIM + 1, CLAIM):
        completions = [cs.Completion(claim=c, created_session_id=SESSION) for c in batched[start_at:start_at + CLAIM]]
        start = clock()
        store.complete_many(completions)
        batch_ns.append((clock() - start) // CLAIM)
    del org, store
    p50 = lambda xs: percentile_us(xs, 0.5)  # noqa: E731
    note = (
        f"p50 of {len(dispatch_ns)} each, alternating on one file: complete_many of 1 {p50(many_ns):.1f} us"
        f" (p99 {percentile_us(many_ns, 0.99):.1f}), complete_dispatch {p50(dispatch_ns):.1f} us"
        f" (p99 {percentile_us(dispatch_ns, 0.99):.1f}); per claim: complete_many of {CLAIM}"
        f" {p50(batch_ns):.1f} us ({len(batch_ns)} batches), claim_due of {CLAIM} {p50(claim_ns):.1f} us,"
        f" Claim.callback() {p50(lift_ns):.1f} us"
    )
    create_note = (
        f"per callback, p50 of {len(ids_ns)} batches of {CLAIM} each, alternating on one file:"
        f" create_many_returning_ids {p50(ids_ns):.1f} us, create_many {p50(records_ns):.1f} us"
        " (lowering the NewCallbacks included)"
    )
    return [row(
        "PY5",
        f"create by {CLAIM}: create_many_returning_ids vs create_many",
        p50(ids_ns),
        p50(records_ns),
        "us",
        "at_most",
        None,
        create_note,
    ), row(
        "PY5",
        "complete one claim: complete_many of 1 vs complete_dispatch",
        p50(many_ns),
        p50(dispatch_ns),
        "us",
        "at_most",
        None,  # a measuring rod for issue 14, not a target
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
    ap.add_argument("--call-reps", type=int, default=500,
                    help="completions timed one by one for PY5, each way (default 500; 0: no PY5)")
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
        args.reps, args.get_reps, args.call_reps = 1, min(args.get_reps, 200), min(args.call_reps, 100)
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
            these = [c for c in contenders if durability == "normal" or not c.startswith("binding/dispatch_due")]
            print(f"bench-peers: {n} callbacks, {args.reps} runs each, {durability}", file=sys.stderr)
            results = measure_peers(n, args.reps, durability, these, work)
            rows.extend(peer_rows(n, durability, results, args.reps))
        if args.call_reps > 0:
            print(f"bench-peers: the calls of a drain, {args.call_reps} each", file=sys.stderr)
            rows.extend(measure_drain_calls(args.call_reps, work))
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
