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

step "format"
timed fmt cargo fmt --all -- --check

step "lint"
timed clippy cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust tests"
timed "cargo test" cargo test --workspace --locked

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

printf '\n== all suites passed in %ss\n' $((SECONDS - started))
