#!/usr/bin/env bash
# The cluster test (run by .ci/run): 3 percore hosts, each in its own network
# namespace on a bridge (veth pairs; loopback ports where `ip netns` is not
# available, said on stderr), with HAProxy and nginx in front, configured by
# deploy/haproxy.cfg and deploy/nginx.conf with this test's addresses. Under
# GET and POST load through both balancers at once (tests/cluster/load.py,
# which counts every request):
#   1. rolling update: each host in turn drained (SIGTERM) and restarted with
#      a new version of the handler: 0 failed GETs, every answer from either
#      version, and afterwards only the new one;
#   2. kill -9 of one host (then restarted): 0 failed GETs;
#   3. POSTs through both events: failures counted and printed, not asserted
#      (README: "Running several hosts" says which setting prevents them);
#      then kill -9 once more with the balancers set to replay POSTs too
#      (HAProxy without `disable-l7-retry` and with `option
#      http-buffer-request`, nginx with `non_idempotent`);
#   4. requests per second through each balancer with 1, 2 and 3 hosts and
#      the balancer's CPU time per request (oha or wrk when present, else
#      load.py; on a 2-core machine clients, balancer and hosts share the
#      cores: this measures overhead, not scaling).
# PERCORE_CLUSTER_LOOPBACK=1 puts the hosts on loopback ports even where
# namespaces work (to test that path).
# Needs root, haproxy and nginx (Debian's packages; .ci/run installs them):
# under CI=true it fails without them, otherwise it skips with a message.
# Everything it starts it stops (trap); traffic stays inside its namespaces
# and on loopback. Bounded: every wait has a deadline; about 2 minutes.
#
#   tests/cluster/run.sh            (builds nothing: run `cargo build -p percore` first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
percore="${PERCORE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/percore}"
guest="${CARGO_TARGET_DIR:-$root/target}/wasm-guests/wasm32-wasip2/release/test_version.wasm"
load="$root/tests/cluster/load.py"

test_name=cluster
# shellcheck source=tests/skip.sh
source "$root/tests/skip.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, nginx)"
command -v haproxy >/dev/null || skip "haproxy is missing (apt-get install haproxy)"
command -v nginx >/dev/null || skip "nginx is missing (apt-get install nginx)"
[ -x "$percore" ] || { echo "cluster: $percore is missing: cargo build -p percore" >&2; exit 1; }
[ -f "$guest" ] || { echo "cluster: $guest is missing: cargo build -p percore builds the test guests" >&2; exit 1; }

work="$(mktemp -d)"
id=$(( $$ % 10000 ))
bridge="pcbr$id"
pids=()
netns=0
cleanup() {
    set +e
    touch "$work/stop"
    # SIGTERM first (nginx's master then stops its workers), SIGKILL after 5 s.
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    local alive
    for _ in $(seq 50); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$netns" = 1 ]; then
        for i in 1 2 3; do ip netns del "pc$id-$i" 2>/dev/null; done
        ip link del "$bridge" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Two versions of the handler: test-version's 16-byte marker replaced.
python3 - "$guest" "$work" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
marker = b"AAAAAAAAAAAAAAAA"
assert data.count(marker) == 1, "test_version.wasm: the version marker is not there once"
for v in "AB":
    open(f"{sys.argv[2]}/v{v}.wasm", "wb").write(data.replace(marker, (v * 16).encode()))
PY
vA="version:AAAAAAAAAAAAAAAA"
vB="version:BBBBBBBBBBBBBBBB"

# The network: a bridge with 10.77.N.1 and a namespace per host, or loopback.
declare -A addr ops
if [ -z "${PERCORE_CLUSTER_LOOPBACK:-}" ] && ip link add "$bridge" type bridge 2>/dev/null; then
    netns=1
    net="10.$(( 64 + id % 64 )).$(( id % 250 ))"
    ip addr add "$net.1/24" dev "$bridge"
    ip link set "$bridge" up
    for i in 1 2 3; do
        ns="pc$id-$i"
        ip netns add "$ns"
        ip link add "pcv$id-$i" type veth peer name eth0 netns "$ns"
        ip link set "pcv$id-$i" master "$bridge" up
        ip -n "$ns" addr add "$net.1$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        addr[$i]="$net.1$i:8080"
        ops[$i]="$net.1$i:9100"
    done
    echo "cluster: hosts in network namespaces pc$id-1..3 on bridge $bridge ($net.0/24)" >&2
else
    echo "cluster: cannot create a bridge here (or PERCORE_CLUSTER_LOOPBACK is set): hosts on loopback ports instead of network namespaces" >&2
fi
# Free loopback ports: the balancers' (HAProxy, nginx, HAProxy's stats), and
# the hosts' (HTTP, ops) when they are on loopback.
read -r hport nport sport p1 p2 p3 o1 o2 o3 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(9)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
if [ "$netns" = 0 ]; then
    addr=([1]="127.0.0.1:$p1" [2]="127.0.0.1:$p2" [3]="127.0.0.1:$p3")
    ops=([1]="127.0.0.1:$o1" [2]="127.0.0.1:$o2" [3]="127.0.0.1:$o3")
fi

declare -A hostpid
start_host() { # start_host I VERSION
    local i=$1 v=$2 run=()
    [ "$netns" = 1 ] && run=(ip netns exec "pc$id-$i")
    "${run[@]}" "$percore" serve --listen "${addr[$i]}" --ops "${ops[$i]}" \
        --route "/=$work/v$v.wasm,isolation=core" --workers 1 --drain-delay-ms 2000 \
        >>"$work/host$i.log" 2>&1 &
    hostpid[$i]=$!
    pids+=("$!")
    wait_for "host $i ready" curl -sf -o /dev/null "http://${ops[$i]}/readyz"
}
wait_for() { # wait_for WHAT COMMAND...: up to 60 s
    local what=$1; shift
    for _ in $(seq 600); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "cluster: FAILED: timed out waiting for $what" >&2
    tail -n 20 "$work"/*.log >&2 || true
    exit 1
}
haproxy_up() { # haproxy_up I: HAProxy's check sees host I up
    curl -sf "http://127.0.0.1:$sport/stats;csv" | grep -q "^percore,percore$1,.*,UP,"
}

render() { # render N [post-retry]: the shipped configs with N hosts and this test's addresses
    local n=$1 i
    sed -e "s/^    bind 0.0.0.0:80$/    bind 127.0.0.1:$hport/" \
        -e "s/^    bind 127.0.0.1:8404$/    bind 127.0.0.1:$sport/" \
        "$root/deploy/haproxy.cfg" >"$work/haproxy.cfg"
    sed -e "s/^        listen 80;/        listen 127.0.0.1:$nport;/" \
        -e "s|^pid .*|pid $work/nginx.pid;|" \
        "$root/deploy/nginx.conf" >"$work/nginx.conf"
    for i in 1 2 3; do
        if [ "$i" -le "$n" ]; then
            sed -i "s/^    server percore$i 10.0.0.1$i:8080$/    server percore$i ${addr[$i]} port ${ops[$i]##*:}/" "$work/haproxy.cfg"
            sed -i "s/^        server 10.0.0.1$i:8080 /        server ${addr[$i]} /" "$work/nginx.conf"
        else
            sed -i "/10.0.0.1$i:8080/d" "$work/haproxy.cfg" "$work/nginx.conf"
        fi
    done
    if [ "${2:-}" = post-retry ]; then
        sed -i -e "/^    http-request disable-l7-retry unless METH_GET$/d" \
            -e "s/^    http-reuse safe$/    http-reuse safe\n    option http-buffer-request/" "$work/haproxy.cfg"
        sed -i "s/^            proxy_next_upstream error timeout;$/            proxy_next_upstream error timeout non_idempotent;/" "$work/nginx.conf"
        grep -q non_idempotent "$work/nginx.conf" && ! grep -q disable-l7-retry "$work/haproxy.cfg"
        grep -q "option http-buffer-request" "$work/haproxy.cfg"
    fi
    ! grep -q "10\.0\.0\.1[123]:8080" "$work/haproxy.cfg" "$work/nginx.conf"
}
declare -A lbpid
start_balancers() {
    haproxy -f "$work/haproxy.cfg" -db >>"$work/haproxy.log" 2>&1 &
    lbpid[haproxy]=$!
    pids+=("$!")
    nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log" -g 'daemon off;' >>"$work/nginx.log" 2>&1 &
    lbpid[nginx]=$!
    pids+=("$!")
    wait_for "nginx" curl -s -o /dev/null "http://127.0.0.1:$nport/"
    wait_for "haproxy" curl -sf -o /dev/null "http://127.0.0.1:$sport/stats"
}
stop_balancers() {
    kill -TERM "${lbpid[haproxy]}" "${lbpid[nginx]}"
    wait "${lbpid[haproxy]}" "${lbpid[nginx]}" || true
}

# Load through both balancers until $work/stop exists.
start_load() { # start_load NAME
    rm -f "$work/stop"
    for lb in haproxy nginx; do
        local port=$hport
        [ "$lb" = nginx ] && port=$nport
        python3 "$load" "http://127.0.0.1:$port/" --threads 3 --stop-file "$work/stop" \
            --versions "$vA,$vB" >"$work/$1-$lb-get.json" &
        pids+=("$!")
        python3 "$load" "http://127.0.0.1:$port/" --method POST --threads 1 --stop-file "$work/stop" \
            --versions "$vA,$vB" >"$work/$1-$lb-post.json" &
        pids+=("$!")
    done
    sleep 1
}
stop_load() {
    touch "$work/stop"
    local pid
    for pid in $(jobs -p); do
        case " ${lbpid[*]} ${hostpid[*]} " in *" $pid "*) ;; *) wait "$pid" ;; esac
    done
}
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))' "$@"; }
failures=0
check_gets() { # check_gets NAME: 0 failed GETs through each balancer
    local lb f
    for lb in haproxy nginx; do
        f="$work/$1-$lb-get.json"
        echo "cluster: $1 via $lb: GET $(cat "$f")"
        echo "cluster: $1 via $lb: POST $(cat "$work/$1-$lb-post.json")"
        if [ "$(field "$f" failed)" != 0 ] || [ "$(field "$f" ok)" = 0 ]; then
            echo "cluster: FAILED: $1 via $lb: failed GET requests (or none succeeded)" >&2
            failures=$((failures + 1))
        fi
    done
}

kill_host() { # kill_host I: kill -9, then start it again (version B)
    kill -9 "${hostpid[$1]}"
    wait "${hostpid[$1]}" 2>/dev/null || true
    sleep 2
    start_host "$1" B
    wait_for "haproxy sees host $1" haproxy_up "$1"
    sleep 1
}

for i in 1 2 3; do start_host "$i" A; done
render 3
start_balancers
for i in 1 2 3; do wait_for "haproxy sees host $i" haproxy_up "$i"; done

echo "cluster: 1. rolling update, A to B, under load"
start_load rolling
for i in 1 2 3; do
    kill -TERM "${hostpid[$i]}"
    wait "${hostpid[$i]}" || { echo "cluster: FAILED: host $i did not exit 0 after SIGTERM" >&2; exit 1; }
    start_host "$i" B
    wait_for "haproxy sees host $i" haproxy_up "$i"
    sleep 1
done
stop_load
check_gets rolling
for lb in haproxy nginx; do
    port=$hport
    [ "$lb" = nginx ] && port=$nport
    out="$(python3 "$load" "http://127.0.0.1:$port/" --threads 2 --count 100 --versions "$vB")"
    echo "cluster: after the update via $lb (only $vB accepted): $out"
    [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["failed"])' "$out")" = 0 ] \
        || { echo "cluster: FAILED: $lb still answers with another version" >&2; failures=$((failures + 1)); }
done

echo "cluster: 2. kill -9 of host 2 under load"
start_load kill
sleep 1
kill_host 2
stop_load
check_gets kill
stop_balancers

echo "cluster: 3. kill -9 again, with POSTs replayed too (HAProxy without disable-l7-retry, with http-buffer-request; nginx with non_idempotent)"
render 3 post-retry
start_balancers
for i in 1 2 3; do wait_for "haproxy sees host $i" haproxy_up "$i"; done
start_load kill-replay
kill_host 2
stop_load
check_gets kill-replay
stop_balancers

echo "cluster: 4. requests per second through each balancer, 1 to 3 hosts (2 cores: overhead, not scaling)"
oha="${PERCORE_BENCH_TOOLS:-$HOME/.cache/percore-bench}/bin/oha"
cpu_ticks() { # cpu_ticks PID: user+system ticks of PID and its children
    local p total=0
    for p in $1 $(pgrep -P "$1" || true); do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)
for n in 1 2 3; do
    render "$n"
    start_balancers
    for i in $(seq "$n"); do wait_for "haproxy sees host $i" haproxy_up "$i"; done
    for lb in haproxy nginx; do
        port=$hport
        [ "$lb" = nginx ] && port=$nport
        before=$(cpu_ticks "${lbpid[$lb]}")
        if [ -x "$oha" ]; then
            client=oha
            "$oha" -z 4s -w -c 16 --no-tui --output-format json "http://127.0.0.1:$port/" >"$work/rate.json" 2>/dev/null
            read -r rps total bad < <(python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); s=d["summary"]; c=d.get("statusCodeDistribution",{})
total=sum(c.values()); print(round(s["requestsPerSec"]), total, total-c.get("200",0)+sum(d.get("errorDistribution",{}).values()))' "$work/rate.json")
        elif command -v wrk >/dev/null; then
            client=wrk
            wrk -t2 -c16 -d4s "http://127.0.0.1:$port/" >"$work/rate.txt"
            rps=$(awk '/Requests\/sec/ {printf "%d", $2}' "$work/rate.txt")
            total=$(awk '/requests in/ {print $1}' "$work/rate.txt")
            bad=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' "$work/rate.txt")
        else
            client=load.py
            touch "$work/rate.stop"; rm -f "$work/rate.stop"
            ( sleep 4; touch "$work/rate.stop" ) &
            python3 "$load" "http://127.0.0.1:$port/" --threads 8 --stop-file "$work/rate.stop" >"$work/rate.json"
            read -r rps total bad < <(python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); print(round(d["ok"]/d["seconds"]), d["ok"]+d["failed"], d["failed"])' "$work/rate.json")
        fi
        after=$(cpu_ticks "${lbpid[$lb]}")
        us=$(python3 -c "print(round(($after - $before) / $hz * 1e6 / max($total, 1), 1))")
        echo "cluster: rate: $lb, $n host(s): $rps req/s ($client, 16 connections, 4 s, $total requests, $bad failed), $lb CPU $us us/request"
    done
    stop_balancers
done

if [ "$failures" != 0 ]; then
    echo "cluster: FAILED: $failures checks failed (logs above)" >&2
    exit 1
fi
echo "cluster: passed"
