#!/usr/bin/env bash
# Runs oras_tool.py (the integration tests' other registry client) with the
# ORAS Python client, PyPI's `oras`, which it installs into the tools cache
# on first use ($PERCORE_TOOLS, default ~/.cache/percore-tools), as
# guests/python-wiki/build.sh does for componentize-py:
#
#   tests/oras/oras.sh --install                       install only (.ci/run)
#   tests/oras/oras.sh push HOST:PORT/REPO:TAG FILE     print the digest
#   tests/oras/oras.sh pull HOST:PORT/REPO@DIGEST DIR   print the files
#
# Registries are spoken to over plain HTTP (the tests' registry is on
# loopback).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=0.2.43
tools="${PERCORE_TOOLS:-$HOME/.cache/percore-tools}/oras-$version"
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "oras.sh: the ORAS client needs python3 with pip (Debian: apt-get install python3-pip)" >&2
    exit 1
fi
if [ ! -d "$tools/oras" ]; then
    echo "oras.sh: installing oras $version into $tools" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools" "oras==$version" >&2
fi
if [ "${1:-}" = "--install" ]; then
    exit 0
fi
PYTHONPATH="$tools" exec python3 "$here/oras_tool.py" "$@"
