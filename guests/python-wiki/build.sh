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
. "$root/guests/pip-tool.sh"
pip_tool build.sh componentize-py "$version" componentize_py "the Python handler"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/guests/wit-deps.sh" "$work/wit"
PYTHONPATH="$tools" python3 -c 'import sys; from componentize_py import script; sys.exit(script())' \
    --quiet -d "$work/wit" -w percore:http-wiki/http-wiki \
    componentize -p "$here" app -o "$out"
