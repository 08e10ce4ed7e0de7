# Shared by the scripts that test a real `callback-store` with Python tools
# from PyPI (test-http.sh, test-metrics.sh, test-clients.sh); source it,
# from the repository.

# python_venv DIR PACKAGE VERSION: makes DIR a venv holding PACKAGE==VERSION
# (from PyPI), unless it already does; a venv holding another version is
# made again.
python_venv() {
    local venv=$1 package=$2 version=$3
    if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$package') != '$version')" 2>/dev/null; then
        return
    fi
    echo "installing $package $version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
}

# serve_address PID LOG: waits for the `callback-store serve` of PID to log
# "listening on" to LOG (its stderr), then prints its URL and the API key it
# printed, on one line; shows LOG and fails if the server exits or says
# neither within 10 s.
serve_address() {
    local pid=$1 log=$2 url token
    for _ in $(seq 1 100); do
        grep -q 'listening on' "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n 1)
    token=$(grep -o 'cbs_[A-Za-z0-9_-]*' "$log" | head -n 1)
    if [ -z "$url" ] || [ -z "$token" ]; then
        echo "the server did not start:" >&2
        cat "$log" >&2
        return 1
    fi
    echo "$url $token"
}

# command_bin: builds the command and prints the path of its binary.
command_bin() {
    cargo build --locked --quiet -p callback-store-cli
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    echo "$target_dir/debug/callback-store"
}
