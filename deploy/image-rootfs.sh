#!/usr/bin/env bash
# Lays out the build context of deploy/Containerfile: CONTEXT/rootfs with a
# stripped copy of a percore binary (default: target/release/percore), the
# shared libraries `ldd` says it needs (glibc's loader, libc, libm,
# libgcc_s) copied from this machine, Debian's CA bundle, and an /etc/passwd
# naming user 65532. A glibc binary plus its libraries rather than a static
# musl build: it reuses the build the rest of CI already made, where a musl
# build would compile wasmtime a second time (minutes on 2 cores) and trade
# glibc's malloc for musl's, which is slower under percore's many threads.
# The image runs on any x86-64 kernel; the libraries are the build
# machine's, so they always match the binary.
#
#   deploy/image-rootfs.sh CONTEXT [PERCORE_BINARY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
context="${1:?usage: image-rootfs.sh CONTEXT [PERCORE_BINARY]}"
binary="${2:-${CARGO_TARGET_DIR:-$root/target}/release/percore}"
certs=/etc/ssl/certs/ca-certificates.crt
[ -x "$binary" ] || { echo "image-rootfs.sh: $binary is missing: cargo build --release -p percore" >&2; exit 1; }
[ -f "$certs" ] || { echo "image-rootfs.sh: $certs is missing (Debian: apt-get install ca-certificates)" >&2; exit 1; }
rootfs="$context/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/percore" "$rootfs/etc/ssl/certs" \
    "$rootfs/data" "$rootfs/var/lib/percore/state" "$rootfs/tmp"
strip -o "$rootfs/usr/local/bin/percore" "$binary"
# Every library ldd resolves, at the path it resolves it to (the loader at
# the path the binary names).
ldd "$binary" | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
cp "$certs" "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/nonexistent\npercore:x:65532:65532:percore:/var/lib/percore:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\npercore:x:65532:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
echo "image-rootfs.sh: $rootfs ($(du -sh "$rootfs" | cut -f1))" >&2
