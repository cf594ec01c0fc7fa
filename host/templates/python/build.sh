#!/usr/bin/env bash
# Builds app.py into a wasi:http/proxy component (wit/world.wit) with
# componentize-py, installed from PyPI, pinned, into the tools cache on
# first use ($PERCORE_TOOLS, default ~/.cache/percore-tools):
#
#   ./build.sh [OUT.wasm]        (default: __WASM__ here)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(realpath -m "${1:-$here/__WASM__}")"
version=0.25.1
tools="${PERCORE_TOOLS:-$HOME/.cache/percore-tools}/componentize-py-$version"
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "build.sh: componentize-py needs python3 with pip (Debian: apt-get install python3-pip)" >&2
    exit 1
fi
if [ ! -d "$tools/componentize_py" ]; then
    echo "build.sh: installing componentize-py $version into $tools" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --target "$tools" "componentize-py==$version" >&2
fi
cd "$here"
PYTHONPATH="$tools" python3 -c 'import sys; from componentize_py import script; sys.exit(script())' \
    --quiet -d wit -w handler componentize -p . app -o "$out"
echo "built $out" >&2
