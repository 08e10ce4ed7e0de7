# Shared by the scripts that test a real `callback-store` with Python tools
# from PyPI (test-http.sh, test-metrics.sh); source it, from the repository.

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

# command_bin: builds the command and prints the path of its binary.
command_bin() {
    cargo build --locked --quiet -p callback-store-cli
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    echo "$target_dir/debug/callback-store"
}
