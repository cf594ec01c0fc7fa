#!/usr/bin/env bash
# The data of the wiki loads, made once and kept: a generated dump, its
# index, and a sample of its titles (percent-encoded, one per line) for
# benches/wiki.lua.
#
#   benches/wiki-data.sh DUMP.xml [PAGES]
#
# Generates DUMP.xml with PAGES pages (default 1,000,000) when it is missing,
# indexes it into DUMP.xml.index when that is missing, and samples up to
# 10,000 titles into DUMP.xml.titles. Needs `cargo build --release -p percore
# -p percore-examples --example gendump` first (benches/load and
# benches/wiki-bench.sh do that).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dump="$1"
pages="${2:-1000000}"
index="$dump.index"
titles="$dump.titles"
mkdir -p "$(dirname "$dump")"

if [ ! -f "$dump" ]; then
    echo "wiki-data: generating $dump ($pages pages)" >&2
    "$target/release/examples/gendump" --out "$dump.tmp" --pages "$pages" --max-text 64 --seed 15 >&2
    mv "$dump.tmp" "$dump"
fi
if [ ! -d "$index" ]; then
    "$target/release/percore" index "$dump" --out "$index" >&2
fi
if [ ! -s "$titles" ]; then
    every=$(( pages / 10000 > 1 ? pages / 10000 : 1 ))
    LC_ALL=C grep -o '<title>[^<]*</title>' "$dump" | awk -v every="$every" 'NR % every == 1' | head -n 10000 \
        | sed -e 's/<title>//' -e 's/<\/title>//' \
        | python3 -c 'import sys, html, urllib.parse
for line in sys.stdin:
    print(urllib.parse.quote(html.unescape(line.rstrip("\n")), safe=""))' > "$titles.tmp"
    mv "$titles.tmp" "$titles"
fi
echo "wiki-data: $dump: $(wc -l < "$titles") sample titles" >&2
