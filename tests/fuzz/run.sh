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
# Seed the scanner with the index's fixtures (real export structure), so
# that it starts deep inside <page> elements rather than at "not an export".
mkdir -p corpus/scanner
cp ../../host/index/tests/fixtures/*.xml corpus/scanner/
for target in range title scanner; do
    echo "=== fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
