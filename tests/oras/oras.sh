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
. "$here/../../guests/pip-tool.sh"
pip_tool oras.sh oras "$version" oras "the ORAS client"
if [ "${1:-}" = "--install" ]; then
    exit 0
fi
PYTHONPATH="$tools" exec python3 "$here/oras_tool.py" "$@"
