#!/usr/bin/env bash
# /metrics of a real `callback-store serve` read with the Prometheus
# project's Python parsers (prometheus_client, from PyPI, in its own venv
# under ~/.cache) and checked against the store's own counts after a
# scripted workload: tests/metrics/test_metrics.py says what it proves.
#
#   scripts/test-metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
pc_version=0.26.0
venv=${CALLBACK_STORE_METRICS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/callback-store/metrics-prometheus-client-$pc_version}
python_venv "$venv" prometheus_client "$pc_version"
CALLBACK_STORE_BIN=$(command_bin) "$venv/bin/python" tests/metrics/test_metrics.py
