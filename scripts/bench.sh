#!/usr/bin/env bash
# The benchmarks (issue 5), self-contained on a fresh machine of this kind:
#   rust    cargo bench -p callback-store --features postgres --bench store:
#           P1-P7, the store against raw rusqlite doing the same SQL work
#           (core/benches/store); with P4, the machine's ceiling (C1-C5),
#           WAL frames per operation (W1-W4) and 8 threads sharing commits;
#           I1, instructions per drained callback under callgrind;
#           P10, claim_due among 1M scheduled callbacks 99% outside their
#           window against none outside; P8-P9 on PostgreSQL, against the same SQL
#           through the raw postgres crate, on a cluster of the bench's own
#           (scripts/pg.sh on port BENCH_PG_PORT, default 55434, data in
#           target/pg-bench; started here and stopped at the end)
#   python  bench/python/bench_peers.py: the Python binding (a release wheel)
#           against APScheduler 3, huey and hand-written sqlite3 on one
#           workload, one binding call against the same call in Rust, and
#           the calls of a drain one by one (PY5)
#   http    bench/http/bench_http.py: POST /v1/callbacks from 16 wrk
#           connections (wrk from Debian), the release server with group
#           commit against --no-group-commit, round by round (H1)
# Every row goes to target/bench/results.json (the Python rows as PY1..PY5,
# with the Rust rows' fields) and is printed in one table with its baseline
# from the same run and the ratio. Timings are never asserted: a missed
# target prints NO and the script still exits 0.
#
# Usage: scripts/bench.sh [--quick] [rust|python|http ...]     (default: all)
#   --quick  small sizes, a smoke run of a minute or two once built
# Sizes (environment):
#   BENCH_ROWS (P1, P4; 100000), BENCH_BIG (P3, P6, P7; 1000000),
#   BENCH_P5 (20000), BENCH_REPS (latency samples; 500), BENCH_ONLY (e.g. P1,P3)
#   BENCH_P10 (scheduled callbacks of P10; 1000000), BENCH_P10_ROUNDS (5)
#   BENCH_PY_N (callbacks per Python run at Normal; 10000),
#   BENCH_PY_N_FULL (at Full; 2000), BENCH_PY_REPS (runs per contender; 5)
#   BENCH_P8 (due callbacks per P8 run; 5000), BENCH_P8_ROUNDS (5),
#   BENCH_P9_ROUNDS (5), BENCH_PG_URL (use that cluster instead of starting
#   one: its database gets schemas bench_*)
#   BENCH_HTTP_SECONDS (wrk's run per round; 10), BENCH_HTTP_ROUNDS (3)
# The 1M-row list data sets are built once and kept: SQLite's in
# target/bench/data (about 1.4 GB), PostgreSQL's in the bench cluster's
# schema bench_list_1000000_v1 (target/pg-bench, about 1.5 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${CALLBACK_STORE_BENCH_CACHE:-$ROOT/target/bench-cache} # venv, wheel
RESULTS=$ROOT/target/bench/results.json
started=$SECONDS

die() { echo "bench: $*" >&2; exit 1; }
step() { printf '\n== bench: %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

quick=0
parts=()
for arg in "$@"; do
    case $arg in
    --quick) quick=1 ;;
    rust | python | http) parts+=("$arg") ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
    *) die "unknown argument $arg (--quick, rust, python, http)" ;;
    esac
done
[ ${#parts[@]} -gt 0 ] || parts=(rust python http)
wants() { [[ " ${parts[*]} " == *" $1 "* ]]; }

if [ "$quick" -eq 1 ]; then
    export BENCH_ROWS=${BENCH_ROWS:-2000} BENCH_BIG=${BENCH_BIG:-20000}
    export BENCH_P5=${BENCH_P5:-2000} BENCH_REPS=${BENCH_REPS:-100} BENCH_P10=${BENCH_P10:-20000}
    export BENCH_P8=${BENCH_P8:-2000} BENCH_P8_ROUNDS=${BENCH_P8_ROUNDS:-1} BENCH_P9_ROUNDS=${BENCH_P9_ROUNDS:-2}
    BENCH_PY_N=${BENCH_PY_N:-1000} BENCH_PY_N_FULL=${BENCH_PY_N_FULL:-200} BENCH_PY_REPS=${BENCH_PY_REPS:-1}
    BENCH_HTTP_SECONDS=${BENCH_HTTP_SECONDS:-2} BENCH_HTTP_ROUNDS=${BENCH_HTTP_ROUNDS:-1}
fi
py_args=(--n "${BENCH_PY_N:-10000}" --n-full "${BENCH_PY_N_FULL:-2000}" --reps "${BENCH_PY_REPS:-5}")
[ "$quick" -eq 0 ] || py_args+=(--get-reps 200)
# The Python get row is paired with the Rust 10k get row: keep it in a subset.
if [ -n "${BENCH_ONLY:-}" ] && wants python && ! [[ ",${BENCH_ONLY^^}," =~ ,(P6|GET10K), ]]; then
    export BENCH_ONLY="$BENCH_ONLY,GET10K"
fi

printf 'bench: %s on %s cores, load average %s\n' "${parts[*]}" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- set-up
if wants python; then
    step "set-up: venv with maturin, APScheduler 3, SQLAlchemy, huey"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
    fi
    [ -x "$CACHE/venv/bin/python" ] || python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/python" -m pip install -q --disable-pip-version-check \
        'maturin>=1.9,<2' 'APScheduler>=3.10,<4' 'SQLAlchemy>=2,<3' 'huey>=2.5,<3'

    step "the release wheel of the binding"
    rm -rf "$CACHE/wheels"
    # maturin builds the uniffi cdylib in the release profile (target/release).
    (cd bindings/python && PATH="$CACHE/venv/bin:$PATH" "$CACHE/venv/bin/maturin" build \
        --release --locked -q -i "$CACHE/venv/bin/python" -o "$CACHE/wheels")
    "$CACHE/venv/bin/python" -m pip install -q --disable-pip-version-check \
        --force-reinstall --no-deps "$CACHE"/wheels/callback_store-*.whl
fi

# ---------------------------------------------------------------- postgres
# P8 and P9 run on a PostgreSQL 15 cluster of the bench's own (not the test
# suites' one on 55432), so that its timings and others' tests do not
# disturb each other. A cluster that cannot start fails the run.
PG_PORT=${BENCH_PG_PORT:-55434}
PG_DIR=${BENCH_PG_DIR:-$ROOT/target/pg-bench}
pg() { CALLBACK_STORE_PG_PORT=$PG_PORT CALLBACK_STORE_PG_DIR=$PG_DIR scripts/pg.sh "$@"; }
pg_started=0
stop_pg() {
    if [ "$pg_started" -eq 1 ]; then
        echo "bench: stopping the bench's PostgreSQL cluster (port $PG_PORT)"
        pg stop || echo "bench: could not stop the PostgreSQL cluster in $PG_DIR" >&2
    fi
}
trap stop_pg EXIT
trap 'exit 130' INT TERM
if wants rust && { [ -z "${BENCH_ONLY:-}" ] || [[ ",${BENCH_ONLY^^}," =~ ,(P8|P9), ]]; }; then
    if [ -n "${BENCH_PG_URL:-}" ]; then
        step "PostgreSQL: the cluster of BENCH_PG_URL"
    else
        step "PostgreSQL: the bench's own cluster (scripts/pg.sh, port $PG_PORT, $PG_DIR)"
        if pg url >/dev/null 2>&1; then
            echo "bench: a cluster is already running on port $PG_PORT: using it, leaving it running"
        else
            pg_started=1
        fi
        BENCH_PG_URL=$(pg start) || die "PostgreSQL did not start (scripts/pg.sh start, port $PG_PORT, data in $PG_DIR): P8 and P9 cannot run; BENCH_ONLY=P1,P2,P3,P4,P5,P6,P7 runs the SQLite rows alone"
        export BENCH_PG_URL
    fi
fi

# ---------------------------------------------------------------- rust
# One build for every part: the core with its PostgreSQL backend, as the
# CLI and server ship it. I1 counts instructions under valgrind (Debian's).
if wants rust && ! command -v valgrind >/dev/null; then
    step "set-up: valgrind (Debian), for I1's instruction counts"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq valgrind >/dev/null
fi
if wants rust; then
    step "cargo bench -p callback-store --features postgres --bench store (rows ${BENCH_ROWS:-100000}, big ${BENCH_BIG:-1000000}, p5 ${BENCH_P5:-20000}, p8 ${BENCH_P8:-5000} x${BENCH_P8_ROUNDS:-5} rounds, reps ${BENCH_REPS:-500}${BENCH_ONLY:+, only $BENCH_ONLY})"
    cargo bench --locked -p callback-store --features postgres --bench store
else
    # The Python get row is paired with the Rust get on the same 10k table,
    # measured in this run (results.json then holds this run's rows only).
    step "the Rust get figure the Python get row is paired with (BENCH_ONLY=GET10K)"
    BENCH_ONLY=GET10K cargo bench --locked -p callback-store --features postgres --bench store
fi

# ---------------------------------------------------------------- python
if wants python; then
    step "bench/python/bench_peers.py ${py_args[*]}"
    "$CACHE/venv/bin/python" bench/python/bench_peers.py "${py_args[@]}" \
        --get-db target/bench/data/list-10000-v2.db --rust-results "$RESULTS" --merge-into "$RESULTS"
fi

# ---------------------------------------------------------------- http
if wants http; then
    step "set-up: wrk (Debian)"
    if ! command -v wrk >/dev/null; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
    fi
    step "the release server, then bench/http/bench_http.py"
    cargo build --locked --release -p callback-store-cli
    python3 bench/http/bench_http.py --bin target/release/callback-store \
        --seconds "${BENCH_HTTP_SECONDS:-10}" --rounds "${BENCH_HTTP_ROUNDS:-3}" --merge-into "$RESULTS"
fi

printf '\nbench: done in %ss on %s cores, load average now %s; every row is in %s\n' \
    $((SECONDS - started)) "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "${RESULTS#"$ROOT"/}"
