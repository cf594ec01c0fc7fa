#!/usr/bin/env bash
# The container image test (run by .ci/run): lays out deploy/Containerfile's
# build context with deploy/image-rootfs.sh from a percore binary (default:
# target/debug/percore, the one the tests built; PERCORE_BIN to choose),
# builds the image with podman, runs it as the image says (user 65532,
# `percore serve --config /etc/percore/percore.toml`) with a read-only root
# filesystem, the config and a handler mounted read-only at /etc/percore, a
# volume for --state and a tmpfs on /tmp, and checks /livez, /readyz, a
# route, and that SIGTERM (podman stop) ends it with status 0. Prints the
# image's size.
#
# podman on these machines (cgroups v1-hybrid, no CAP_SYS_RESOURCE) needs
# `--runtime runc` (crun refuses v1-hybrid) and ulimits the container may set
# without raising a hard limit: nofile 20000, nproc 4096 (podman's defaults
# are higher, and runc then fails with "error setting rlimit type 7/6").
# Needs root and Debian's podman, runc and catatonit (.ci/run installs
# them): under CI=true it fails without them, otherwise it skips with a
# message. Everything it creates (image, container, volume) it removes.
#
#   tests/container/run.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
binary="${PERCORE_BIN:-$target/debug/percore}"
guest="$target/wasm-guests/wasm32-wasip2/release/hello.wasm"

test_name=container
# shellcheck source=tests/skip.sh
source "$root/tests/skip.sh"
[ "$(id -u)" = 0 ] || skip "needs root (rootful podman)"
command -v podman >/dev/null || skip "podman is missing (apt-get install podman runc catatonit)"
command -v runc >/dev/null || skip "runc is missing (apt-get install runc)"
[ -x "$binary" ] || { echo "container: $binary is missing: cargo build -p percore" >&2; exit 1; }
[ -f "$guest" ] || { echo "container: $guest is missing: cargo build -p percore builds the test guests" >&2; exit 1; }

work="$(mktemp -d)"
tag="localhost/percore-test:$$"
name="percore-test-$$"
volume="percore-test-state-$$"
run=(--runtime runc)
cleanup() {
    set +e
    podman "${run[@]}" rm -f -v "$name" >/dev/null 2>&1
    podman "${run[@]}" volume rm -f "$volume" >/dev/null 2>&1
    podman "${run[@]}" rmi -f "$tag" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

"$root/deploy/image-rootfs.sh" "$work/context" "$binary"
timeout 300 podman "${run[@]}" build --quiet -f "$root/deploy/Containerfile" -t "$tag" "$work/context" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "container: built $tag from $binary: $(( size / 1000000 )) MB ($size bytes)"

mkdir -p "$work/config"
cp "$guest" "$work/config/hello.wasm"
cat >"$work/config/percore.toml" <<'TOML'
# The image test's config: deploy/k8s/base/percore.toml's addresses, a
# handler from the mounted config directory instead of a registry.
listen = "0.0.0.0:8080"
ops = "0.0.0.0:9100"
workers = 1
state = "/var/lib/percore/state"

[[route]]
prefix = "/"
wasm = "/etc/percore/hello.wasm"
TOML
chmod -R a+rX "$work/config"
read -r port opsport < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

timeout 120 podman "${run[@]}" run -d --name "$name" \
    --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
    --read-only --tmpfs /tmp \
    -v "$work/config:/etc/percore:ro" -v "$volume:/var/lib/percore/state" \
    -p "127.0.0.1:$port:8080" -p "127.0.0.1:$opsport:9100" \
    "$tag" >/dev/null
fail() {
    echo "container: FAILED: $*" >&2
    podman "${run[@]}" logs "$name" 2>&1 | tail -n 20 >&2
    exit 1
}
ready=0
for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:$opsport/readyz" >"$work/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[ "$ready" = 1 ] || fail "/readyz never answered 200"
grep -q '"ready": *true' "$work/readyz" || fail "/readyz: $(cat "$work/readyz")"
curl -sf -o /dev/null "http://127.0.0.1:$opsport/livez" || fail "/livez did not answer 200"
body="$(curl -sf "http://127.0.0.1:$port/plaintext")" || fail "GET /plaintext failed"
[ "$body" = "Hello, World!" ] || fail "GET /plaintext answered: $body"
user="$(podman "${run[@]}" top "$name" huser | tail -n 1 | tr -d ' ')"
[ "$user" = 65532 ] || fail "runs as $user, not 65532"
[ "$(podman "${run[@]}" inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true ] || fail "root filesystem not read-only"
echo "container: /livez and /readyz 200, GET /plaintext: $body, user $user, read-only root filesystem"
timeout 60 podman "${run[@]}" stop -t 30 "$name" >/dev/null
status="$(podman "${run[@]}" inspect --format '{{.State.ExitCode}}' "$name")"
[ "$status" = 0 ] || fail "exit status $status after SIGTERM"
echo "container: SIGTERM: drained and exited 0"
echo "container: passed"
