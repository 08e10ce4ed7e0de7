#!/usr/bin/env bash
# The long reliability runs (issue 6), in release builds:
#   - crash:   RELIABILITY_KILLS SIGKILLs of a working store process (500),
#              placing its calls through place_call
#   - races:   RELIABILITY_RACE_PROCESSES x RELIABILITY_RACE_THREADS writers on
#              RELIABILITY_RACE_CALLBACKS callbacks (4 x 2 on 5000); and one
#              claim placed from 2 processes at once, RELIABILITY_CLAIM_ROUNDS
#              rounds (1000)
#   - feed:    RELIABILITY_FEED_OPS changes by each of 4 writing processes
#              (2000) followed by 3 reading processes, one killed again
#              and again (tests/feed.rs)
#   - model:   the core's property test against its reference model,
#              RELIABILITY_MODEL_CASES cases (10000)
#   - migration: V4 -> V5 on a file of RELIABILITY_MIGRATION_ROWS callbacks
#              (1000000) with their events, and the same migration killed
#              partway (core/src/schema/migration_tests.rs; 20000 in
#              plain cargo test)
#   - and the bad-input, bad-file and security suites once more.
# Then on PostgreSQL (RELIABILITY_BACKENDS, default "sqlite postgres"):
#   - crash and races again, the same sizes, each in a fresh schema on the
#     server CALLBACK_STORE_TEST_POSTGRES names (scripts/pg.sh start prints
#     one): the figures crash_postgres, races_postgres, claim_race_postgres;
#   - fleet_postgres: 3 servers and 8 workers (release build of
#     callback-store) on one database, RELIABILITY_FLEET_CALLBACKS (20000)
#     due callbacks, kills and a PostgreSQL outage on a cluster of its own
#     (port CALLBACK_STORE_FLEET_PG_PORT, 55433, under target/pg-fleet).
#   Without CALLBACK_STORE_TEST_POSTGRES the script stops at once and says
#   so; RELIABILITY_BACKENDS=sqlite runs the SQLite part alone.
# Prints the figures and writes them to target/reliability/figures.json.
# RELIABILITY_SEED changes the random choices (kill moments, operations).
# scripts/test.sh runs the short versions of the same suites.
set -uo pipefail
cd "$(dirname "$0")/.."

export RELIABILITY_KILLS=${RELIABILITY_KILLS:-500}
export RELIABILITY_RACE_CALLBACKS=${RELIABILITY_RACE_CALLBACKS:-5000}
export RELIABILITY_RACE_PROCESSES=${RELIABILITY_RACE_PROCESSES:-4}
export RELIABILITY_RACE_THREADS=${RELIABILITY_RACE_THREADS:-2}
export RELIABILITY_CLAIM_ROUNDS=${RELIABILITY_CLAIM_ROUNDS:-1000}
export RELIABILITY_FEED_OPS=${RELIABILITY_FEED_OPS:-2000}
MODEL_CASES=${RELIABILITY_MODEL_CASES:-10000}
MIGRATION_ROWS=${RELIABILITY_MIGRATION_ROWS:-1000000}
BACKENDS=${RELIABILITY_BACKENDS:-sqlite postgres}
for backend in $BACKENDS; do
    case $backend in
        sqlite) ;;
        postgres)
            if [ -z "${CALLBACK_STORE_TEST_POSTGRES:-}" ]; then
                echo "scripts/reliability.sh: the PostgreSQL runs need CALLBACK_STORE_TEST_POSTGRES," >&2
                echo "  the URL of a PostgreSQL server: start the throwaway one with scripts/pg.sh start" >&2
                echo "  and export the URL it prints, or run RELIABILITY_BACKENDS=sqlite $0" >&2
                exit 2
            fi ;;
        *) echo "scripts/reliability.sh: RELIABILITY_BACKENDS: unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
    esac
done
has_backend() { case " $BACKENDS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
figures=target/reliability
export RELIABILITY_FIGURES_DIR="$PWD/$figures"

started=$SECONDS
failed=()
step() { printf '\n== %s\n' "$*"; }

rm -rf "$figures"
mkdir -p "$figures"

step "build (release)"
cargo build --release --locked -p callback-store-reliability --all-targets || exit 1
if has_backend postgres; then
    # The fleet test runs the real command from target/release.
    cargo build --release --locked -p callback-store-cli || exit 1
fi
cargo test --release --locked -p callback-store --test model --no-run || exit 1

# suite LABEL TEST BACKEND: one test file of the reliability crate.
suite() {
    local label=$1 test=$2 backend=$3
    step "$label"
    local t=$SECONDS
    if ! CALLBACK_STORE_TEST_BACKEND=$backend \
        cargo test --release --locked -q -p callback-store-reliability --test "$test" -- --nocapture; then
        failed+=("$label")
    fi
    printf -- '-- %s: %ss\n' "$label" $((SECONDS - t))
}

if has_backend sqlite; then
    for test in crash races feed bad_input bad_files security; do
        suite "$test" "$test" sqlite
    done
fi
if has_backend postgres; then
    suite crash_postgres crash postgres
    suite races_postgres races postgres
    suite feed_postgres feed postgres
    suite fleet_postgres fleet_postgres postgres
fi

step "model: $MODEL_CASES cases"
t=$SECONDS
if PROPTEST_CASES=$MODEL_CASES cargo test --release --locked -q -p callback-store --test model; then
    model_passed=true
else
    model_passed=false
    failed+=(model)
fi
printf '{"cases_tried": %s, "passed": %s, "seconds": %s}\n' \
    "$MODEL_CASES" "$model_passed" $((SECONDS - t)) >"$figures/model.json"

step "migration: V4 -> V5 on $MIGRATION_ROWS callbacks, and killed partway"
t=$SECONDS
if ! CALLBACK_STORE_MIGRATION_ROWS=$MIGRATION_ROWS \
    cargo test --release --locked -q -p callback-store --lib schema::migration_tests -- --nocapture; then
    failed+=(migration)
fi
printf -- '-- migration: %ss\n' $((SECONDS - t))

step "figures"
target/release/crash-worker figures "$figures" "$figures/figures.json" >/dev/null || failed+=(figures)
if command -v jq >/dev/null; then
    jq -r '
      "kills survived:      \(.crash.kills_survived // "-") of \(.crash.kills // "-")",
      "rows lost:           \(.crash.rows_lost // "-")",
      "calls placed twice:  \(.crash.duplicate_placements // "-")",
      "spent, unfinished:   \(.crash.spent_unfinished // "-") left dispatching by a kill after the spend (\(.crash.dialed_unfinished // "-") dialed), all recovered",
      "race claims:         \(.races.claims // "-") of \(.races.callbacks // "-") callbacks, \(.races.duplicate_claims // "-") twice; \(.races.duplicate_dials // "-") dialed twice",
      "one claim, 2 procs:  \(.claim_race.rounds_with_one_call // "-") of \(.claim_race.rounds // "-") rounds with exactly one call",
      "change feed:         \(.feed.changes // "-") changes by \(.feed.writers // "-") processes, \(.feed.readers // "-") readers (one killed \(.feed.reader_restarts // "-") times): \(.feed.missed // "-") missed, \(.feed.repeated // "-") repeated",
      "feed (PostgreSQL):   \(.feed_postgres.changes // "-") changes, \(.feed_postgres.late_commits_positioned_after_later_seqs // "-") late commits read in commit order, \(.feed_postgres.missed // "-") missed, \(.feed_postgres.repeated // "-") repeated",
      "model cases tried:   \(.model.cases_tried // "-") (passed: \(.model.passed // "-"))",
      "inputs rejected:     \(.bad_input.rust_inputs_rejected // "-") (Rust, of \(.bad_input.cases_for_rust // "-") cases)",
      "PostgreSQL crash:    \(.crash_postgres.kills_survived // "-") of \(.crash_postgres.kills // "-") kills survived, \(.crash_postgres.rows_lost // "-") rows lost, \(.crash_postgres.duplicate_placements // "-") calls twice",
      "PostgreSQL races:    \(.races_postgres.claims // "-") claims, \(.races_postgres.duplicate_claims // "-") twice; one claim, 2 procs: \(.claim_race_postgres.rounds_with_one_call // "-") of \(.claim_race_postgres.rounds // "-") rounds with one call",
      "fleet (PostgreSQL):  \(.fleet_postgres.calls_placed // "-") calls by \(.fleet_postgres.servers // "-") servers + \(.fleet_postgres.workers // "-") workers, \(.fleet_postgres.calls_placed_twice // "-") twice, \(.fleet_postgres.failed_by_recovery // "-") failed by recovery; \(.fleet_postgres.creations_503 // "-") answers 503 in the outage, \(.fleet_postgres.creations_201_missing // "-") 201s lost"
    ' "$figures/figures.json"
else
    cat "$figures/figures.json"
fi
echo "written to $figures/figures.json"

if [ ${#failed[@]} -gt 0 ]; then
    printf '\n== FAILED: %s (%ss)\n' "${failed[*]}" $((SECONDS - started))
    exit 1
fi
printf '\n== all long runs passed in %ss\n' $((SECONDS - started))
