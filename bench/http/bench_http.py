#!/usr/bin/env python3
"""H1: POST /v1/callbacks from many concurrent connections, the server with
group commit (its default) against the same server with --no-group-commit,
in the same run (issue 14: >= 2x).

Each round starts `callback-store serve` on a fresh SQLite file (default
durability, Full: every commit is synced), creates an API key, and lets
wrk (Debian's) POST one callback per request for a fixed time, the two
servers taking turns round by round so that the noise of this shared
machine falls on both. wrk's requests per second are compared round by
round; the row is the median of the per-round ratios, with the median rates.
A non-2xx answer fails the run: every request must have created a callback,
and the file's row count is checked against wrk's count of requests.
"""

import argparse
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUA = HERE / "post_callback.lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_key(binary: Path, db: Path) -> str:
    out = subprocess.run(
        [str(binary), "--db", str(db), "--org", "org_bench", "keys", "create", "--label", "bench"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["token"]


def wait_until_up(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"bench-http: the server exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench-http: the server did not answer /healthz within 30 s")


def one_round(binary: Path, work: Path, group_commit: bool, args) -> float:
    """Requests per second of one server run."""
    db = work / f"http-{'on' if group_commit else 'off'}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    token = api_key(binary, db)
    port = free_port()
    command = [str(binary), "--db", str(db)]
    if not group_commit:
        command.append("--no-group-commit")
    command += ["serve", "--listen", f"127.0.0.1:{port}", "--no-recovery"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(port, server)
        out = subprocess.run(
            ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.seconds}s",
             "-s", str(LUA), f"http://127.0.0.1:{port}/v1/callbacks", "--", token],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    if "Non-2xx" in out:
        raise SystemExit(f"bench-http: some requests failed:\n{out}")
    requests = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
    rate = float(next(l for l in out.splitlines() if l.startswith("Requests/sec:")).split()[1])
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM callbacks").fetchone()[0]
    # wrk counts requests whose answer arrived; a request cut by the end of
    # the run may still have created its callback.
    if not requests <= rows <= requests + args.connections:
        raise SystemExit(f"bench-http: wrk counted {requests} answers, the file has {rows} callbacks")
    return rate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", type=Path, required=True, help="the release callback-store binary")
    ap.add_argument("--seconds", type=int, default=10, help="wrk's duration per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per server")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk's threads")
    ap.add_argument("--merge-into", type=Path, help="add the H rows to this results.json")
    args = ap.parse_args(argv)
    on, off = [], []
    with tempfile.TemporaryDirectory(prefix="bench-http-", dir=HERE.parent.parent / "target") as tmp:
        for r in range(args.rounds):
            off.append(one_round(args.bin, Path(tmp), False, args))
            on.append(one_round(args.bin, Path(tmp), True, args))
            print(f"bench-http: round {r + 1}: {on[-1]:.0f} req/s with group commit, "
                  f"{off[-1]:.0f} without", file=sys.stderr)
    ratio = statistics.median(a / b for a, b in zip(on, off))
    row = {
        "id": "H1",
        "workload": f"POST /v1/callbacks, {args.connections} connections, group commit on vs off "
                    f"(Full durability, {args.rounds} rounds of {args.seconds} s)",
        "ours": statistics.median(on),
        "baseline": statistics.median(off),
        "unit": "req/s",
        "ratio": ratio,
        "goal": "at_least",
        "target": 2.0,
        "met": ratio >= 2.0,
        "note": "ratio: median of the per-round ratios; "
                + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(on, off)),
    }
    print(f"H1   {row['workload']}  {row['ours']:.0f} req/s vs {row['baseline']:.0f} req/s  "
          f"ratio {ratio:.2f}  target >= 2  {'yes' if row['met'] else 'NO'}")
    if args.merge_into:
        report = json.loads(args.merge_into.read_text()) if args.merge_into.exists() else {"rows": []}
        report["rows"] = [r for r in report.get("rows", []) if not str(r.get("id", "")).startswith("H")]
        report["rows"].append(row)
        args.merge_into.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
