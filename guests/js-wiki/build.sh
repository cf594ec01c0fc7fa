#!/usr/bin/env bash
# Builds the JavaScript wiki handler (app.js) into a component of the
# percore:http-wiki world (wit/http-wiki: wasi:http/proxy plus percore's
# wiki) with componentize-js, which it installs from npm into the tools
# cache on first use ($PERCORE_TOOLS, default ~/.cache/percore-tools):
#
#   guests/js-wiki/build.sh OUT.wasm
#
# componentize-js 0.23's StarlingMonkey exports wasi:http 0.2.10, so the
# WIT is taken at 0.2.10 (../wit-deps.sh OUT 0.2.10).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
out="$(realpath -m "${1:?usage: build.sh OUT.wasm}")"
version=0.23.0
tools="${PERCORE_TOOLS:-$HOME/.cache/percore-tools}/componentize-js-$version"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "build.sh: the JavaScript handler needs node and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -d "$tools/node_modules/@bytecodealliance/componentize-js" ]; then
    echo "build.sh: installing componentize-js $version into $tools" >&2
    npm install --silent --no-audit --no-fund --prefix "$tools" "@bytecodealliance/componentize-js@$version" >&2
fi
cp "$here/componentize.mjs" "$tools/componentize.mjs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/guests/wit-deps.sh" "$work/wit" 0.2.10
node "$tools/componentize.mjs" "$here/app.js" "$work/wit" percore:http-wiki/http-wiki "$out"
