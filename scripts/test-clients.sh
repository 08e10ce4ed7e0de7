#!/usr/bin/env bash
# The clients a user generates from openapi.yaml, generated and used: the
# Python client of openapi-python-client, the TypeScript types of
# openapi-typescript (with openapi-fetch), and openapi-generator's Python
# client. Each is generated into target/clients/; a generator that warns
# (openapi-python-client warns when it drops an operation, a response or a
# model) fails the run; tests/clients/check_coverage.py checks that each
# covers every operationId and schema of openapi.yaml; then
# tests/clients/scenario.py and scenario.ts (compiled with `tsc --strict`,
# run with node) each run the whole API against their own fresh
# `callback-store serve` on SQLite, and tests/clients/generator_smoke.py
# runs a few calls and errors through openapi-generator's client.
# Installs what it lacks: a venv under target/clients (PyPI) and the npm
# packages under target/clients/ts, all at pinned versions.
#
#   scripts/test-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

opc_version=0.29.1          # openapi-python-client
generator_version=7.26.0    # openapi-generator-cli (PyPI: the generator's jar, run with the machine's java)
# What openapi-generator's Python client imports (its requirements.txt).
generator_runtime=(pydantic==2.14.4 urllib3==2.8.0 python-dateutil==2.9.0.post0)
ts_packages=(openapi-typescript@7.13.0 openapi-fetch@0.17.0 typescript@5.9.3 @types/node@20.19.25)

. scripts/lib.sh
bin=$(command_bin)
target_dir=$(dirname "$(dirname "$bin")")
out=$target_dir/clients
venv=$out/venv-$opc_version-$generator_version
if ! "$venv/bin/python" -c "import openapi_python_client, openapi_generator_cli, urllib3, dateutil" 2>/dev/null; then
    echo "installing openapi-python-client $opc_version and openapi-generator-cli $generator_version into $venv"
    rm -rf "$venv"
    mkdir -p "$out"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "openapi-python-client==$opc_version" "openapi-generator-cli==$generator_version" "${generator_runtime[@]}"
fi
command -v java >/dev/null || { echo "scripts/test-clients.sh: java is missing (openapi-generator runs on it)" >&2; exit 1; }
ts=$out/ts
stamp="${ts_packages[*]}"
if [ "$(cat "$ts/.installed" 2>/dev/null)" != "$stamp" ]; then
    echo "installing ${ts_packages[*]} into $ts"
    rm -rf "$ts"
    mkdir -p "$ts"
    (cd "$ts" && echo '{"private": true, "type": "module"}' >package.json &&
        npm install --silent --no-audit --no-fund --save-exact "${ts_packages[@]}")
    echo "$stamp" >"$ts/.installed"
fi

# A generator's output must hold no warning: each of these three says
# "warn" when it leaves something out. Args: name, log file.
no_warnings() {
    if grep -qiE 'warn|error|unable|cannot|could not' "$2"; then
        echo "$1 warned while generating from openapi.yaml:" >&2
        cat "$2" >&2
        exit 1
    fi
}

echo "== openapi-python-client $opc_version"
rm -rf "$out/python"
# The venv's bin on PATH: the generator's post-hooks run its ruff.
PATH=$venv/bin:$PATH "$venv/bin/openapi-python-client" generate --path openapi.yaml \
    --config tests/clients/openapi-python-client.yaml --output-path "$out/python" >"$out/python.log" 2>&1 ||
    { cat "$out/python.log" >&2; exit 1; }
no_warnings openapi-python-client "$out/python.log"

echo "== openapi-typescript (${ts_packages[*]})"
"$ts/node_modules/.bin/openapi-typescript" openapi.yaml -o "$ts/schema.d.ts" >"$out/typescript.log" 2>&1 ||
    { cat "$out/typescript.log" >&2; exit 1; }
no_warnings openapi-typescript "$out/typescript.log"

echo "== openapi-generator $generator_version (python)"
rm -rf "$out/generator"
# Its INFO lines name each file written; its WARN and ERROR lines are what
# it says about the description. Two are let through: its notice that 3.1
# support is in beta, and "Failed to get the schema name: null", which it
# prints for any description with an object schema (a one-schema 3.0
# description with one string property gets it too) and which drops
# nothing: check_coverage.py below proves every operation and model is
# there. Any other line fails.
"$venv/bin/openapi-generator-cli" generate -i openapi.yaml -g python -o "$out/generator" \
    --package-name callbacks_generated >"$out/generator.log" 2>&1 ||
    { cat "$out/generator.log" >&2; exit 1; }
grep -E '^\[main\] (WARN|ERROR)' "$out/generator.log" |
    grep -vE 'OpenAPI 3.1 support is still in beta|Failed to get the schema name: null$' \
        >"$out/generator-warnings.log" || true
no_warnings openapi-generator "$out/generator-warnings.log"

"$venv/bin/python" tests/clients/check_coverage.py openapi.yaml \
    "$out/python/callbacks_api_client" "$ts/schema.d.ts" "$out/generator/callbacks_generated"

# The TypeScript scenario, compiled strictly beside the generated types.
cp tests/clients/scenario.ts "$ts/scenario.ts"
cp tests/clients/tsconfig.json "$ts/tsconfig.json"
(cd "$ts" && node_modules/.bin/tsc --project tsconfig.json) || { echo "tsc --strict refused tests/clients/scenario.ts" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# start_server NAME: `callback-store serve` on a fresh SQLite file, with a
# short busy timeout so that the scenarios' held lock answers 503 at once;
# sets CALLBACK_STORE_URL, _TOKEN and _DB.
start_server() {
    local dir=$work/$1
    mkdir -p "$dir"
    "$bin" --db "$dir/callbacks.db" --busy-timeout 200ms serve --listen 127.0.0.1:0 2>"$dir/server.log" &
    server_pid=$!
    local address
    address=$(serve_address "$server_pid" "$dir/server.log")
    export CALLBACK_STORE_URL CALLBACK_STORE_TOKEN CALLBACK_STORE_DB=$dir/callbacks.db
    read -r CALLBACK_STORE_URL CALLBACK_STORE_TOKEN <<<"$address"
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid"
    server_pid=
}

echo "== the Python client's scenario"
start_server python
CLIENT_DIR=$out/python "$venv/bin/python" tests/clients/scenario.py
stop_server

echo "== the TypeScript client's scenario"
start_server typescript
(cd "$ts" && HOLD_LOCK=$root/tests/clients/hold_lock.py node dist/scenario.js)
stop_server

echo "== openapi-generator's client, a smoke run"
start_server generator
CLIENT_DIR=$out/generator "$venv/bin/python" tests/clients/generator_smoke.py
stop_server
echo "clients: 3 passed, 0 failed"
