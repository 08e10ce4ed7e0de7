#!/usr/bin/env bash
# The dashboard in a real browser (tests/browser/test_dashboard.py): Debian's
# chromium, driven by playwright (from PyPI, in a venv under target/; it
# drives the system's browser and downloads none), against a real
# `callback-store serve`. Installs what it lacks: chromium with apt-get (as
# root, as on CI), the venv with pip. Screenshots go to target/ui-screenshots/.
#
#   scripts/test-ui.sh              # every test
#   scripts/test-ui.sh -k cancel    # pytest's arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."

playwright_version=1.65.2
pytest_version=9.2.0

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "scripts/test-ui.sh: chromium is missing; install Debian's package: apt-get install chromium" >&2
        exit 1
    fi
    echo "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# Debian's /usr/bin/chromium is a shell wrapper; playwright starts the
# browser itself with the flags it needs.
browser=/usr/lib/chromium/chromium
[ -x "$browser" ] || browser=$(command -v chromium)
"$browser" --headless --version 2>/dev/null || true

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
venv=$target_dir/ui-test/venv-$playwright_version
if ! "$venv/bin/python" -c "import playwright, pytest" 2>/dev/null; then
    echo "installing playwright $playwright_version and pytest $pytest_version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "playwright==$playwright_version" "pytest==$pytest_version"
fi

cargo build --locked --quiet -p callback-store-cli
rm -rf "$target_dir/ui-screenshots"
CALLBACK_STORE_BIN=$target_dir/debug/callback-store \
CALLBACK_STORE_CHROMIUM=$browser \
CALLBACK_STORE_UI_SCREENSHOTS=$target_dir/ui-screenshots \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/browser "$@"
echo "screenshots: $(ls "$target_dir/ui-screenshots" | tr '\n' ' ')"
