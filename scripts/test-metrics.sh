#!/usr/bin/env bash
# /metrics of a real `callback-store serve` read with the Prometheus
# project's Python parsers (prometheus_client, from PyPI, in its own venv
# under ~/.cache) and checked against the store's own counts after a
# scripted workload: tests/metrics/test_metrics.py says what it proves.
#
#   scripts/test-metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pc_version=0.26.0
venv=${CALLBACK_STORE_METRICS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/callback-store/metrics-prometheus-client-$pc_version}
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('prometheus_client') != '$pc_version')" 2>/dev/null; then
    echo "installing prometheus_client $pc_version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "prometheus_client==$pc_version"
fi

cargo build --locked --quiet -p callback-store-cli
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
CALLBACK_STORE_BIN=$target_dir/debug/callback-store "$venv/bin/python" tests/metrics/test_metrics.py
