#!/usr/bin/env bash
# Checks every response of a real `callback-store serve` against openapi.yaml
# with schemathesis (from PyPI, in its own venv under ~/.cache), bounded in
# examples per operation and in time. All four phases run: the schema's
# examples, coverage (boundary values, each field's violations), fuzzing and
# stateful scenarios that follow the links of openapi.yaml (create, then get,
# events, cancel, dispatch, reschedule; dispatch, then complete or fail).
# Data is generated in both modes: positive (schema-valid requests must be
# accepted) and negative (schema violations must be refused with a 4xx).
# Every check runs (scripts/schemathesis.toml relaxes one, and says why);
# scripts/schemathesis_summary.py then checks from the reports that each
# phase and mode really ran and that no answer was a 5xx, and prints the
# figures. Exits non-zero on any failure.
#
#   scripts/test-http.sh                 # defaults below
#   ST_MAX_EXAMPLES=100 ST_SEED=7 scripts/test-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

st_version=4.32.5
max_examples=${ST_MAX_EXAMPLES:-25}
seed=${ST_SEED:-20261123}
time_limit=${ST_TIME_LIMIT:-150}
venv=${CALLBACK_STORE_ST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/callback-store/schemathesis-$st_version}

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$st_version"; then
    echo "installing schemathesis $st_version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$st_version"
fi

cargo build --locked --quiet -p callback-store-cli
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/debug/callback-store

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

# A fresh database: serve prints its first API key and the address.
"$bin" --db "$work/st.db" serve --listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q 'listening on' "$work/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -n 1)
token=$(grep -o 'cbs_[A-Za-z0-9_-]*' "$work/server.log" | head -n 1)
[ -n "$url" ] && [ -n "$token" ] || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
echo "schemathesis $st_version against $url: all phases, positive and negative data, $max_examples examples per operation, seed $seed, at most ${time_limit}s"

# From the work folder, so that schemathesis' own files stay out of the repository.
status=0
(cd "$work" && timeout "$time_limit" "$venv/bin/st" --no-color \
    --config-file "$root/scripts/schemathesis.toml" \
    run "$root/openapi.yaml" \
    --url "$url" \
    --header "Authorization: Bearer $token" \
    --phases examples,coverage,fuzzing,stateful \
    --mode all \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --report json,ndjson \
    --report-dir "$work/report" \
    --request-timeout 10 \
    --workers 1) || status=$?

# Graceful shutdown: SIGTERM ends the server with status 0.
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
if [ "$server_status" -ne 0 ]; then
    echo "the server exited with status $server_status after SIGTERM:" >&2
    tail -n 20 "$work/server.log" >&2
    status=1
fi
if [ "$status" -eq 124 ]; then
    echo "schemathesis ran past ${time_limit}s" >&2
elif ! python3 "$root/scripts/schemathesis_summary.py" "$work/report"; then
    status=1
fi
exit "$status"
