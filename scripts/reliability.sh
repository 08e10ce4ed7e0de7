#!/usr/bin/env bash
# The long reliability runs (issue 6), in release builds:
#   - crash:   RELIABILITY_KILLS SIGKILLs of a working store process (500),
#              placing its calls through place_call
#   - races:   RELIABILITY_RACE_PROCESSES x RELIABILITY_RACE_THREADS writers on
#              RELIABILITY_RACE_CALLBACKS callbacks (4 x 2 on 5000); and one
#              claim placed from 2 processes at once, RELIABILITY_CLAIM_ROUNDS
#              rounds (1000)
#   - model:   the core's property test against its reference model,
#              RELIABILITY_MODEL_CASES cases (10000)
#   - and the bad-input, bad-file and security suites once more.
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
MODEL_CASES=${RELIABILITY_MODEL_CASES:-10000}
figures=target/reliability
export RELIABILITY_FIGURES_DIR="$PWD/$figures"

started=$SECONDS
failed=()
step() { printf '\n== %s\n' "$*"; }

rm -rf "$figures"
mkdir -p "$figures"

step "build (release)"
cargo build --release --locked -p callback-store-reliability --all-targets || exit 1
cargo test --release --locked -p callback-store --test model --no-run || exit 1

for suite in crash races bad_input bad_files security; do
    step "$suite"
    t=$SECONDS
    if ! cargo test --release --locked -q -p callback-store-reliability --test "$suite" -- --nocapture; then
        failed+=("$suite")
    fi
    printf -- '-- %s: %ss\n' "$suite" $((SECONDS - t))
done

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
      "model cases tried:   \(.model.cases_tried // "-") (passed: \(.model.passed // "-"))",
      "inputs rejected:     \(.bad_input.rust_inputs_rejected // "-") (Rust, of \(.bad_input.cases_for_rust // "-") cases)"
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
