#!/usr/bin/env bash
# The bindings' checks, self-contained on a fresh machine of this kind:
#   python  the wheel (pip install ./bindings/python, maturin; with the
#           PostgreSQL backend) + pytest, with the conformance vectors, twice:
#           on SQLite, then on PostgreSQL (CALLBACK_STORE_TEST_POSTGRES, the
#           server's URL, must be set: scripts/test.sh starts a throwaway
#           cluster and sets it; without it the suite fails)
#   kotlin  generated bindings + helpers + tests compiled with kotlinc (npm
#           package kotlin-compiler, whose lib/ also gives kotlinx-coroutines),
#           run with JUnit 4 on Java 17 (Debian's libjna-java and junit4),
#           with the conformance vectors; the
#           library (also Swift's) links no PostgreSQL client, tokio or r2d2
#   swift   generated .swift, header and modulemap; a C program compiled
#           against the header calls into the library; every function the
#           header declares must be exported by it
# Installs what is missing (apt-get, npm and a venv under target/), builds the
# library once, prints each suite's time, runs every suite even after one
# failed, and exits non-zero if any failed. Nothing is ever skipped.
# Usage: scripts/test-bindings.sh [python|kotlin|swift ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${CALLBACK_STORE_CACHE:-$ROOT/target/bindings-cache} # venv, kotlinc
OUT=$ROOT/target/bindings                                  # generated code, jars
KOTLIN_COMPILER_VERSION=2.4.20
BUILD_DIR=$ROOT/target/debug
# The Kotlin and Swift library (no PostgreSQL backend), copied out of
# target/debug once built: the wheel's build (with the backend) writes
# target/debug/libcallback_store_ffi.so too.
LIB_DIR=$OUT/mobile
LIB=$LIB_DIR/libcallback_store_ffi.so
BINDGEN=$BUILD_DIR/uniffi-bindgen # from the crate bindgen/ (callback-store-bindgen)
started=$SECONDS
failed=()
report=()

step() { printf '\n== bindings: %s\n' "$*"; }
die() { echo "test-bindings: $*" >&2; exit 1; }
suite() { # suite NAME FUNCTION: runs it, times it, records a failure
    local name=$1 t=$SECONDS status=0
    step "$name"
    # Not `( ... ) || status=$?`: errexit is off inside a || list.
    set +e
    ( set -euo pipefail; "$2" )
    status=$?
    set -e
    local line
    if [ "$status" -eq 0 ]; then line="$name: passed in $((SECONDS - t))s"; else
        line="$name: FAILED (exit $status) after $((SECONDS - t))s"; failed+=("$name"); fi
    report+=("$line")
    printf -- '-- %s\n' "$line"
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- set-up
setup() {
    local want=()
    [ -f /usr/share/java/jna.jar ] || want+=(libjna-java)
    [ -f /usr/share/java/junit4.jar ] || want+=(junit4)
    command -v java >/dev/null || want+=(openjdk-17-jre-headless)
    command -v gcc >/dev/null || want+=(gcc)
    command -v nm >/dev/null || want+=(binutils)
    command -v npm >/dev/null || want+=(npm)
    command -v psql >/dev/null || want+=(postgresql-client) # the Python tests' schemas
    python3 -c 'import ensurepip, venv' 2>/dev/null || want+=(python3-venv)
    if [ ${#want[@]} -gt 0 ]; then
        echo "installing from Debian: ${want[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${want[@]}" >/dev/null
    fi
    java -version 2>&1 | head -1

    mkdir -p "$CACHE" "$OUT"
    # A venv's scripts name its own path: one that was moved is rebuilt.
    if ! head -1 "$CACHE/venv/bin/pip" 2>/dev/null | grep -qF "$CACHE/venv/bin/python"; then
        rm -rf "$CACHE/venv"
        python3 -m venv "$CACHE/venv"
    fi
    "$CACHE/venv/bin/python" -m pip install -q --disable-pip-version-check \
        'maturin>=1.9,<2' pytest pandas mypy
    "$CACHE/venv/bin/maturin" --version

    KOTLIN_HOME=$CACHE/kotlin/node_modules/kotlin-compiler
    if [ "$(cat "$KOTLIN_HOME/build.txt" 2>/dev/null)" != "$KOTLIN_COMPILER_VERSION" ]; then
        npm install --silent --no-audit --no-fund --prefix "$CACHE/kotlin" \
            "kotlin-compiler@$KOTLIN_COMPILER_VERSION"
    fi
    echo "kotlinc $(cat "$KOTLIN_HOME/build.txt")"

    # The library (cdylib) and the workspace's own uniffi-bindgen, built once.
    # Two invocations, not one: cargo unifies the features of the packages one
    # invocation builds, and the bindgen's `cli` would change the library's
    # uniffi, so the wheel build (library only) would compile it all again.
    # The library without the feature `postgres`: the Kotlin and Swift one.
    cargo build -p callback-store-ffi --locked
    cargo build -p callback-store-bindgen --locked
    mkdir -p "$LIB_DIR"
    cp "$BUILD_DIR/libcallback_store_ffi.so" "$LIB"
    [ -f "$LIB" ] && [ -x "$BINDGEN" ] || die "the build left no $LIB or $BINDGEN"
}

# The crates of the PostgreSQL backend (postgres*, tokio*, r2d2) in the
# library's dependency tree (extra cargo tree arguments: $@), one a line.
backend_crates() {
    cargo tree -p callback-store-ffi -e normal --locked --prefix none "$@" \
        | awk '{print $1}' | grep -E '^(postgres|tokio|r2d2)' | sort -u || true
}

# The same crates among the symbols of a built library ($1).
backend_symbols() {
    nm -C "$1" | grep -oE '\b(postgres|postgres_protocol|postgres_types|tokio|tokio_postgres|r2d2)::' | sort -u || true
}

# ---------------------------------------------------------------- python
python_suite() {
    [ -n "${CALLBACK_STORE_TEST_POSTGRES:-}" ] || die "CALLBACK_STORE_TEST_POSTGRES is not set: \
the python suite runs on SQLite and on PostgreSQL. Start the throwaway cluster with \
\`scripts/pg.sh start\` and set it to the URL it prints (scripts/test.sh does both)"
    # pip builds the wheel with maturin (bindings = "uniffi", the feature
    # `postgres` from pyproject.toml), in the dev profile so that it reuses
    # the dependencies the library's build compiled.
    PATH="$CACHE/venv/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" \
        "$CACHE/venv/bin/python" -m pip install -q --disable-pip-version-check \
        --no-build-isolation --force-reinstall --no-deps ./bindings/python
    # The wheel has the backend: in its dependency tree and in its library.
    local native crates symbols
    native=$("$CACHE/venv/bin/python" -c \
        'import sys, callback_store; print(sys.modules["callback_store._native"].__path__[0])')
    crates=$(backend_crates --features postgres | tr '\n' ' ')
    symbols=$(backend_symbols "$native/libcallback_store_ffi.so" | tr '\n' ' ')
    for crate in postgres tokio r2d2; do
        grep -qw "$crate" <<<"$crates" || die "the wheel's dependency tree has no $crate: $crates"
        grep -qw "$crate::" <<<"$symbols" || die "the wheel's library has no $crate symbols: $symbols"
    done
    echo "wheel: the PostgreSQL backend is in (${crates% })"
    cd bindings/python
    # One source, two passes: the suites that run on both backends
    # (conftest.py) on SQLite, then on PostgreSQL, each test on a fresh
    # schema; test_postgres.py, PostgreSQL's own, runs in the second. Both
    # passes run even if the first fails.
    local status=0 backend
    for backend in sqlite postgres; do
        local skip=()
        [ "$backend" = postgres ] || skip=(--ignore=tests/test_postgres.py)
        printf -- '-- pytest on %s\n' "$backend"
        CALLBACK_STORE_TEST_BACKEND=$backend CALLBACK_STORE_VECTORS="$ROOT/tests/vectors" \
            "$CACHE/venv/bin/python" -m pytest -p no:cacheprovider -q -ra "${skip[@]}" tests \
            | tee "$OUT/pytest-$backend.log" || status=1
    done
    for backend in sqlite postgres; do
        printf 'python on %s: %s\n' "$backend" "$(tail -1 "$OUT/pytest-$backend.log")"
    done
    [ "$status" -eq 0 ] || return 1
    # The type hints are usable: the package and a typed script pass mypy.
    "$CACHE/venv/bin/mypy" --cache-dir "$OUT/mypy-cache" -p callback_store
    "$CACHE/venv/bin/mypy" --cache-dir "$OUT/mypy-cache" --strict tests/test_typing.py
}

# ---------------------------------------------------------------- kotlin
kotlin_suite() {
    # A mobile build links no network client: neither the library's
    # dependency tree without the feature `postgres` nor its symbols name
    # postgres, tokio or r2d2 (the wheel's, with the feature, has them all:
    # the python suite checks that). MobileBuildTest: a postgres:// URL is a
    # VALIDATION_ERROR there.
    local found
    found=$(backend_crates)
    [ -z "$found" ] || die "the mobile library depends on the PostgreSQL backend: $found"
    found=$(backend_symbols "$LIB")
    [ -z "$found" ] || die "the mobile library $LIB has symbols of the PostgreSQL backend: $found"
    echo "mobile library: no postgres, tokio or r2d2 in its dependency tree or its symbols"
    local gen=$OUT/kotlin-src jar=$OUT/callback-store-kotlin-tests.jar
    local home=$CACHE/kotlin/node_modules/kotlin-compiler
    # kotlinx-coroutines (Feed.kt's changesFlow) is the one the compiler
    # ships in its lib/ (1.8): Maven is not reachable here, and Debian's
    # libkotlinx-coroutines-java is 1.0.1, older than Flow and callbackFlow.
    local coroutines=$home/lib/kotlinx-coroutines-core-jvm.jar
    [ -f "$coroutines" ] || die "kotlin-compiler $KOTLIN_COMPILER_VERSION ships no $coroutines"
    local cp=/usr/share/java/jna.jar:/usr/share/java/junit4.jar:$home/lib/kotlin-test.jar:$home/lib/kotlin-test-junit.jar:$coroutines
    rm -rf "$gen"
    "$BINDGEN" generate --library "$LIB" --language kotlin --no-format --out-dir "$gen" >/dev/null
    [ -f "$gen/dev/callbackstore/callback_store.kt" ] || die "no generated Kotlin"
    "$home/bin/kotlinc" -nowarn -cp "$cp" -d "$jar" \
        "$gen/dev/callbackstore/callback_store.kt" \
        bindings/kotlin/src/main/kotlin/dev/callbackstore/*.kt \
        bindings/kotlin/src/test/kotlin/dev/callbackstore/*.kt \
        bindings/kotlin/examples/Quickstart.kt
    local run_cp=$jar:$cp:/usr/share/java/hamcrest-core.jar:$home/lib/kotlin-stdlib.jar
    # The quickstart runs as written.
    local db
    db=$(mktemp -d)/callbacks.db
    java -Djna.library.path="$LIB_DIR" -cp "$run_cp" QuickstartKt "$db" | tee "$OUT/kotlin-quickstart.log"
    grep -qE '^cb_[0-9a-f]+ SCHEDULED$' "$OUT/kotlin-quickstart.log"
    grep -qx '1 dispatched' "$OUT/kotlin-quickstart.log"
    # Dispatch now hands out a claim: placed once, refused the second time.
    grep -qE '^cb_[0-9a-f]+ DISPATCHED$' "$OUT/kotlin-quickstart.log"
    grep -qE '^INVALID_TRANSITION .*stale claim' "$OUT/kotlin-quickstart.log"
    grep -q '^INVALID_TRANSITION cannot cancel callback cb_' "$OUT/kotlin-quickstart.log"
    rm -rf "$(dirname "$db")"
    java -Djna.library.path="$LIB_DIR" -Dcallbackstore.vectors="$ROOT/tests/vectors" \
        -cp "$run_cp" org.junit.runner.JUnitCore \
        dev.callbackstore.ScenarioTest dev.callbackstore.ClaimsTest dev.callbackstore.MobileBuildTest \
        dev.callbackstore.CallingPolicyTest dev.callbackstore.BatchesTest dev.callbackstore.FeedTest \
        dev.callbackstore.VectorsCountTest dev.callbackstore.VectorsTest \
        >"$OUT/kotlin-junit.log" 2>&1 || { cat "$OUT/kotlin-junit.log"; return 1; }
    # The claim races' rounds and times (after JUnit's progress dots), then
    # JUnit's count.
    grep -oE 'ClaimsTest: .*' "$OUT/kotlin-junit.log"
    grep -E '^(OK|Tests run)' "$OUT/kotlin-junit.log"
}

# ---------------------------------------------------------------- swift
swift_suite() {
    local gen=$OUT/swift
    rm -rf "$gen"
    "$BINDGEN" generate --library "$LIB" --language swift --no-format --out-dir "$gen" >/dev/null
    local swift=$gen/CallbackStore.swift header=$gen/callback_storeFFI.h
    for f in "$swift" "$header" "$gen/callback_storeFFI.modulemap"; do
        [ -s "$f" ] || die "missing generated $f"
    done
    grep -q 'header "callback_storeFFI.h"' "$gen/callback_storeFFI.modulemap"
    # The converters the Swift file calls are in the package's sources.
    for fn in callbackStoreDate callbackStoreRfc3339; do
        grep -q "$fn(" "$swift" && grep -q "func $fn(" bindings/swift/Sources/CallbackStore/Timestamps.swift \
            || die "Swift converter $fn is not wired"
    done
    # Feed.swift (not compiled here) calls only what the generated file
    # declares, with these signatures.
    local sig
    for sig in 'func watch(since: Since, observer: ChangeObserver)throws  -> Watch' \
        'public protocol ChangeObserver: AnyObject, Sendable' \
        'func onChanges(changes: [Change]) throws' 'func onError(error: CallbackStoreError) throws' \
        'case Stop(reason: String' 'open func cancel()' 'case now'; do
        grep -qF "$sig" "$swift" || die "the generated Swift has no \`$sig\`, which Feed.swift relies on"
    done

    # Every function the header declares is exported by the library.
    grep -oE '\b(uniffi|ffi)_[A-Za-z0-9_]+\(' "$header" | tr -d '(' | sort -u >"$gen/declared.txt"
    nm -D --defined-only "$LIB" | awk '{print $3}' | sort -u >"$gen/exported.txt"
    local missing
    missing=$(comm -23 "$gen/declared.txt" "$gen/exported.txt")
    [ -z "$missing" ] || { echo "declared in the header but not exported:"; echo "$missing"; return 1; }
    echo "$(wc -l <"$gen/declared.txt") functions declared by the header, all exported by the library"

    # A C program through the header: contract version, every checksum the
    # Swift file expects, real calls.
    local contract
    contract=$(grep -oE 'bindings_contract_version = [0-9]+' "$swift" | grep -oE '[0-9]+$')
    grep -oE '(uniffi|ffi)_[a-z0-9_]+_checksum_[a-z0-9_]+\(\) != [0-9]+' "$swift" \
        | sed -E 's/^([a-z0-9_]+)\(\) != ([0-9]+)$/CHECKSUM(\1, \2)/' >"$gen/checksums.inc"
    gcc -std=c11 -Wall -Wextra -Werror -D_Nonnull= -D_Nullable= \
        -I"$gen" -DCHECKSUMS_INC="\"$gen/checksums.inc\"" -DCONTRACT_VERSION="$contract" \
        -DCHECKSUM_COUNT="$(grep -c '_checksum_' "$gen/declared.txt")" \
        bindings/swift/tests/ffi_smoke.c -L"$LIB_DIR" -lcallback_store_ffi -Wl,-rpath,"$LIB_DIR" \
        -o "$gen/ffi_smoke"
    "$gen/ffi_smoke"
}

suite "set-up (tools, venv, kotlinc, cargo build)" setup
if [ ${#failed[@]} -gt 0 ]; then
    printf '\n== bindings: set-up failed; no suite can run\n' >&2
    exit 1
fi
# `scripts/test-bindings.sh swift kotlin` runs only those suites (for
# development; the summary names what ran). No argument: all three.
for name in ${*:-python kotlin swift}; do
    case $name in
    python | kotlin | swift) suite "$name" "${name}_suite" ;;
    *) die "unknown suite $name (python, kotlin, swift)" ;;
    esac
done

printf '\n== bindings summary (%ss)\n' $((SECONDS - started))
printf '   %s\n' "${report[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bindings: ${#failed[@]} suite(s) failed: ${failed[*]}" >&2
    exit 1
fi
