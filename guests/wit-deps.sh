#!/usr/bin/env bash
# Assembles a WIT directory for a wasi:http handler that imports percore's
# wiki: wit/http-wiki/world.wit, with deps/ holding WASI's WIT packages,
# taken from the sources of the wasmtime-wasi-http crate in Cargo.lock
# (found with `cargo metadata`, so the versions are the ones percore links),
# and percore's own wit/handler.wit.
#
#   guests/wit-deps.sh OUT_DIR [WASI_VERSION]
#
# With WASI_VERSION (componentize-js 0.23 exports wasi:http 0.2.10), the
# packages are renamed to it: the same interfaces, less what later 0.2
# releases added (`exit-with-code`, since 0.2.12).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: wit-deps.sh OUT_DIR [WASI_VERSION]}"
rename="${2:-}"
crate="$(cd "$root" && cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, sys
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == "wasmtime-wasi-http":
        print(package["manifest_path"].rsplit("/", 1)[0])
        break
')"
if [ -z "$crate" ] || [ ! -d "$crate/wit/deps" ]; then
    echo "wit-deps.sh: the sources of wasmtime-wasi-http were not found (run cargo fetch in $root)" >&2
    exit 1
fi
mkdir -p "$out/deps"
cp "$root/wit/http-wiki/world.wit" "$out/world.wit"
cp "$root/wit/handler.wit" "$out/deps/percore-host.wit"
have="$(sed -n 's/^package wasi:http@\(.*\);/\1/p' "$crate/wit/deps/http.wit")"
for file in "$crate"/wit/deps/*.wit; do
    if [ -n "$rename" ]; then
        sed "s/@$have/@$rename/g" "$file" > "$out/deps/$(basename "$file")"
    else
        cp "$file" "$out/deps/$(basename "$file")"
    fi
done
if [ -n "$rename" ]; then
    sed -i "s/@$have/@$rename/g" "$out/world.wit"
    # What releases after WASI_VERSION added cannot be named at it.
    python3 - "$out/deps" "$rename" <<'PY'
import pathlib, re, sys
deps, version = pathlib.Path(sys.argv[1]), sys.argv[2]
newer = lambda v: tuple(map(int, v.split("."))) > tuple(map(int, version.split(".")))
for path in deps.glob("*.wit"):
    text = path.read_text()
    def drop(m):
        return "" if newer(m.group(1)) else m.group(0)
    text = re.sub(r"\n[ \t]*@since\(version = ([0-9.]+)\)\n[ \t]*[a-z-]+: func\([^)]*\)[^;]*;", drop, text)
    path.write_text(text)
PY
fi
