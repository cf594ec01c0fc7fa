#!/usr/bin/env bash
# Runs every fuzz target for a short while (default 60 s each; pass a number
# of seconds to change it). Needs the nightly toolchain (installed on the
# percore machines) and cargo-fuzz (installed here when missing).
# Findings land in tests/fuzz/artifacts/<target>/; record them in
# tests/fuzz/FINDINGS.md.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# Targets keep a scratch directory in a static (never dropped): give them a
# TMPDIR of their own and remove it at the end.
export TMPDIR="$PWD/target/tmp"
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT
# Seed the scanner with the index's fixtures (real export structure), so
# that it starts deep inside <page> elements rather than at "not an export".
mkdir -p corpus/scanner
cp ../../host/index/tests/fixtures/*.xml corpus/scanner/
# Seed damaged_index with one edit in each of the index's files.
mkdir -p corpus/damaged_index
for file in 0 1 2 3 4; do
    printf "\\x0$file\\x10\\x00\\x01" > "corpus/damaged_index/seed-$file"
done
# Seed the renderer with the wikitext of the sample dump's pages.
mkdir -p corpus/wikitext
python3 - ../../host/index/testdata/sample.xml corpus/wikitext <<'PY'
import html, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for i, page in enumerate(re.findall(r"<text[^>]*>(.*?)</text>", text, re.S)[:50]):
    open(f"{sys.argv[2]}/sample-{i}", "w", encoding="utf-8").write(html.unescape(page))
PY
for target in range title scanner damaged_index wikitext; do
    echo "=== fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
