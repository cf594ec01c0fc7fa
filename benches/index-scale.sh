#!/usr/bin/env bash
# Scan throughput and build cost of the title index on a big dump, beside
# `grep -c '<page>'` on the same file in the same run.
#
# usage: benches/index-scale.sh DUMP.xml [gendump flags...]
#
#   benches/index-scale.sh /work/scratch/synth-4g.xml --size 4G
#   benches/index-scale.sh /work/scratch/synth-15m.xml --pages 15000000 --max-text 64
#
# If DUMP.xml is missing it is generated with the gendump example and the
# flags given. The dump is read once first so that both grep and the build
# run from the page cache (it must fit in RAM). Prints a markdown block to
# paste into benches/RESULTS.md. The index goes to DUMP.xml.index (kept, so
# PERCORE_BENCH_INDEX can point at it for `cargo bench --bench index`).
#
# Builds with `target/release/percore index` when that binary exists and
# has the `index` command, else with the buildindex example (the same
# library call).
set -euo pipefail

dump=${1:?usage: benches/index-scale.sh DUMP.xml [gendump flags...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
index=$dump.index
runs=${RUNS:-3}

cargo build --quiet --release -p percore-examples --example gendump --example buildindex
if [[ ! -f $dump ]]; then
    echo "generating $dump: gendump $*" >&2
    "$target/release/examples/gendump" --out "$dump" "$@" >&2
fi
if [[ -x $root/target/release/percore ]] && "$root/target/release/percore" index --help > /dev/null 2>&1; then
    builder=("$root/target/release/percore" index)
else
    builder=("$target/release/examples/buildindex")
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
bytes=$(stat -c %s "$dump")
echo "warming the page cache with $dump ($bytes bytes)" >&2
cat "$dump" > /dev/null

# Best of $runs for grep and for the build; both from the page cache.
best_grep=
for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    pages=$(LC_ALL=C grep -c '<page>' "$dump")
    secs=$(echo "$(date +%s.%N) - $start" | bc -l)
    if [[ -z $best_grep ]] || (( $(echo "$secs < $best_grep" | bc -l) )); then best_grep=$secs; fi
done

best_build= best_scan= peak_kb=0 report=
for _ in $(seq "$runs"); do
    log=$(mktemp)
    if ! /usr/bin/time -v "${builder[@]}" "$dump" --out "$index" > "$log.out" 2> "$log"; then
        cat "$log.out" "$log" >&2
        exit 1
    fi
    secs=$(grep 'Elapsed (wall clock)' "$log" | awk '{print $NF}' | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    kb=$(grep 'Maximum resident set size' "$log" | awk '{print $NF}')
    scan=$(grep -o 'scan [0-9.]* s' "$log.out" | awk '{print $2}')
    (( kb > peak_kb )) && peak_kb=$kb
    if [[ -z $best_build ]] || (( $(echo "$secs < $best_build" | bc -l) )); then best_build=$secs; fi
    if [[ -z $best_scan ]] || (( $(echo "$scan < $best_scan" | bc -l) )); then best_scan=$scan; report=$(cat "$log.out"); fi
    rm -f "$log" "$log.out"
done

titles=$(echo "$report" | awk '/titles:/ {print $2}')
index_bytes=$(du -sb "$index" | awk '{print $1}')
open_line=$("$target/release/examples/buildindex" --open "$index")

grep_rate=$(echo "$bytes / $best_grep / 1000000000" | bc -l)
scan_rate=$(echo "$bytes / $best_scan / 1000000000" | bc -l)
cat <<MD
### $(basename "$dump"): $(printf '%.2f' "$(echo "$bytes / 1000000000" | bc -l)") GB, $pages pages

- command: \`benches/index-scale.sh $dump $*\` (builder: \`${builder[*]##*/}\`, best of $runs runs, page cache warm)
- date: $(date -u +%Y-%m-%d), nproc: $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)

| measure | value |
| --- | --- |
| \`grep -c '<page>'\` (LC_ALL=C) | $(printf '%.2f' "$best_grep") s, **$(printf '%.2f' "$grep_rate") GB/s** |
| index scan | $(printf '%.2f' "$best_scan") s, **$(printf '%.2f' "$scan_rate") GB/s** ($(printf '%.2f' "$(echo "$scan_rate / $grep_rate" | bc -l)")x grep) |
| total build (scan, sort, fst, fsync) | $(printf '%.2f' "$best_build") s |
| peak RSS (max over runs) | $(printf '%.0f' "$(echo "$peak_kb / 1024" | bc -l)") MiB |
| index size | $(printf '%.1f' "$(echo "$index_bytes / 1048576" | bc -l)") MiB, $(printf '%.1f' "$(echo "$index_bytes / $titles" | bc -l)") bytes per title ($titles titles) |
| open (\`TitleIndex::open\`, checksums verified; without verifying in brackets) | ${open_line#*: } |

\`\`\`
$report
\`\`\`
MD
