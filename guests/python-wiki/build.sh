#!/usr/bin/env bash
# Builds the Python wiki handler (app.py) into a component of the
# percore:http-wiki world (wit/http-wiki: wasi:http/proxy plus percore's
# wiki) with componentize-py, which it installs from PyPI into the tools
# cache on first use ($PERCORE_TOOLS, default ~/.cache/percore-tools):
#
#   guests/python-wiki/build.sh OUT.wasm
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
out="${1:?usage: build.sh OUT.wasm}"
version=0.25.1
tools="${PERCORE_TOOLS:-$HOME/.cache/percore-tools}/componentize-py-$version"
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "build.sh: the Python handler needs python3 with pip (Debian: apt-get install python3-pip)" >&2
    exit 1
fi
if [ ! -d "$tools/componentize_py" ]; then
    echo "build.sh: installing componentize-py $version into $tools" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools" "componentize-py==$version" >&2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/guests/wit-deps.sh" "$work/wit"
PYTHONPATH="$tools" python3 -c 'import sys; from componentize_py import script; sys.exit(script())' \
    --quiet -d "$work/wit" -w percore:http-wiki/http-wiki \
    componentize -p "$here" app -o "$out"
