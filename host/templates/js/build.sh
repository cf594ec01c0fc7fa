#!/usr/bin/env bash
# Builds app.js into a wasi:http/proxy component (wit/world.wit) with
# componentize-js, installed from npm, pinned, into the tools cache on
# first use ($PERCORE_TOOLS, default ~/.cache/percore-tools):
#
#   ./build.sh [OUT.wasm]        (default: __WASM__ here)
#
# componentize-js 0.23 exports wasi:http 0.2.10, so wit/ holds WASI at 0.2.10.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(realpath -m "${1:-$here/__WASM__}")"
version=0.23.0
tools="${PERCORE_TOOLS:-$HOME/.cache/percore-tools}/componentize-js-$version"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "build.sh: componentize-js needs node and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -d "$tools/node_modules/@bytecodealliance/componentize-js" ]; then
    echo "build.sh: installing componentize-js $version into $tools" >&2
    npm install --silent --no-audit --no-fund --prefix "$tools" "@bytecodealliance/componentize-js@$version" >&2
fi
cp "$here/componentize.mjs" "$tools/componentize.mjs"
node "$tools/componentize.mjs" "$here/app.js" "$here/wit" local:app/handler "$out"
echo "built $out" >&2
