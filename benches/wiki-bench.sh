#!/usr/bin/env bash
# The Wikipedia demo under load (issue 4's benchmarks), on a generated dump:
#
#   benches/wiki-bench.sh [DUMP.xml]
#
# Without an argument it generates a 15-million-page dump (about 10 GB, small
# pages) under target/wiki-bench/; the dump is indexed into DUMP.xml.index
# and its titles sampled into DUMP.xml.titles (benches/wiki-data.sh; all
# kept for later runs).
# Then, against `percore serve --index` with the wiki guest on `/` and the
# TechEmpower guest on `/plaintext` (core isolation, one worker per core):
#   1. time from starting `percore serve` to the first answered /wiki/<title>;
#   2. wrk at 64 connections, 10 s each, in one run: /plaintext, then
#      /wiki/<random title> and /offsets/<random 3-letter prefix> (titles
#      drawn from the dump by benches/wiki.lua), and the ratios to /plaintext;
#   3. host RSS while 64 clients stream the whole dump from /xml at once,
#      sampled every second: flat RSS means the body is not buffered.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
work="$target/wiki-bench"
mkdir -p "$work"
dump="${1:-$work/synth-15m.xml}"
index="$dump.index"
port=18931
conns=64
secs=10

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p percore -p percore-examples --example gendump >&2
benches/wiki-data.sh "$dump" 15000000
titles="$dump.titles"

wiki="$target/wasm-guests/wasm32-wasip2/release/wiki.wasm"
hello="$target/wasm-guests/wasm32-wasip2/release/hello.wasm"
start_ns=$(date +%s%N)
PERCORE_LOG=warn "$target/release/percore" serve --listen 127.0.0.1:$port --index "$index" \
    --isolation core --route "/=$wiki" --route "/plaintext=$hello" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
first=$(head -n1 "$titles")
until curl -sf -o /dev/null "http://127.0.0.1:$port/wiki/$first"; do sleep 0.005; done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
echo "| start to first /wiki/ answer | ${ready_ms} ms |"

export WIKI_TITLES="$titles"
run() {
    local label=$1 mode=$2 path=$3
    local out
    out=$(WIKI_MODE=$mode wrk -t2 -c$conns -d${secs}s --latency -s benches/wiki.lua "http://127.0.0.1:$port$path")
    local rps p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    local non2xx
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "$label $rps $p99 ${non2xx:-0}"
}
plain=$(run /plaintext fixed /plaintext)
wikir=$(run "/wiki/<title>" wiki /)
readr=$(run "/read/<title>" read /)
offs=$(run "/offsets/<prefix>" offsets /)
echo
echo "| route | req/s | p99 | non-2xx | × /plaintext |"
echo "| --- | ---: | ---: | ---: | ---: |"
base=$(echo "$plain" | awk '{print $2}')
for row in "$plain" "$wikir" "$readr" "$offs"; do
    echo "$row" | awk -v base="$base" '{printf "| %s | %.0f | %s | %s | %.2f× |\n", $1, $2, $3, $4, $2 / base}'
done

echo
echo "RSS while $conns clients stream /xml ($(stat -c %s "$dump") bytes each):"
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
echo "  before: $(rss) KiB"
pids=()
for _ in $(seq $conns); do
    curl -s -o /dev/null --limit-rate 200M "http://127.0.0.1:$port/xml" & pids+=($!)
done
max=0
for s in $(seq 1 20); do
    sleep 1
    r=$(rss); [ "$r" -gt "$max" ] && max=$r
    echo "  t=${s}s: ${r} KiB"
done
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
echo "  peak: $max KiB"
