#!/usr/bin/env bash
# The one test command: on a fresh machine of this kind it installs what it
# needs, then runs every suite. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n== %s\n' "$*"; }
timed() {
    local name=$1; shift
    local t=$SECONDS
    "$@"
    printf -- '-- %s: %ss\n' "$name" $((SECONDS - t))
}

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is missing: this machine kind ships Rust via rustup" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo --version

step "PostgreSQL 15: a throwaway cluster under target/pg (scripts/pg.sh)"
# The PostgreSQL suites never skip: a cluster that cannot start fails the run.
if ! pg_url=$(scripts/pg.sh start); then
    echo "PostgreSQL 15 could not be started (see above): the PostgreSQL suites cannot run" >&2
    exit 1
fi
export CALLBACK_STORE_TEST_POSTGRES=$pg_url
trap 'scripts/pg.sh stop || true' EXIT
echo "PostgreSQL at $pg_url"

step "format"
timed fmt cargo fmt --all -- --check

step "lint"
timed clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# The core alone builds without its PostgreSQL backend (the mobile
# libraries' build): it must be warning-free that way too.
timed "clippy (core without postgres)" cargo clippy -p callback-store --all-targets --locked -- -D warnings

step "rust tests (the rules on SQLite; the PostgreSQL-only tests on PostgreSQL)"
timed "cargo test" cargo test --workspace --locked

step "rust tests: the same suites with the rules on PostgreSQL"
# One source of tests: CALLBACK_STORE_TEST_BACKEND=postgres puts every
# store these suites open on PostgreSQL, each test in a fresh schema.
timed "cargo test (postgres)" env CALLBACK_STORE_TEST_BACKEND=postgres \
    cargo test --locked -p callback-store -p callback-store-http -p callback-store-cli
# The reliability suites that prove rules (the fleet test is PostgreSQL's
# alone and ran above).
timed "reliability (postgres)" env CALLBACK_STORE_TEST_BACKEND=postgres \
    cargo test --locked -p callback-store-reliability --test crash --test races --test feed --test bad_input

step "the README's Rust quickstart, as its reader runs it (examples/rust-quickstart)"
rust_quickstart() {
    # The README's [dependencies] and Rust blocks are the crate's, byte for byte.
    python3 scripts/check_readme_quickstart.py
    rustfmt --edition 2021 --check examples/rust-quickstart/src/main.rs
    # A crate of its own (own workspace, own Cargo.lock), built in the
    # workspace's target/ so that the dependencies built above are reused.
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} \
        cargo run --locked --manifest-path examples/rust-quickstart/Cargo.toml
}
timed "rust quickstart" rust_quickstart

step "bindings (Python, Kotlin, Swift)"
timed bindings bash scripts/test-bindings.sh

step "HTTP API against openapi.yaml (schemathesis)"
timed schemathesis bash scripts/test-http.sh

step "clients generated from openapi.yaml (Python, TypeScript), driven against a real server"
timed clients bash scripts/test-clients.sh

step "/metrics read by the Prometheus Python parsers, against the store's counts"
timed metrics bash scripts/test-metrics.sh

step "the dashboard in a real browser (Debian's headless chromium, playwright)"
timed dashboard bash scripts/test-ui.sh

printf '\n== all suites passed in %ss\n' $((SECONDS - started))
