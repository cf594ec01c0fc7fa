"""The ORAS Python client, as percore's integration tests drive it (see
oras.sh): push a file as a WebAssembly component artifact (config
application/vnd.wasm.config.v0+json, one application/wasm layer) and print
the manifest's digest, or pull an artifact's layers into a directory and
print their paths. Plain HTTP only: the tests' registry is on loopback."""

import hashlib
import json
import os
import sys
import tempfile

import oras.client

WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"


def client(target):
    return oras.client.OrasClient(hostname=target.split("/")[0], insecure=True)


def push(target, path):
    with open(path, "rb") as f:
        layer = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    with tempfile.TemporaryDirectory() as scratch:
        config = os.path.join(scratch, "config.json")
        with open(config, "w") as f:
            json.dump({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer]}, f)
        response = client(target).push(
            target=target,
            files=[f"{path}:{WASM_LAYER}"],
            manifest_config=f"{config}:{WASM_CONFIG}",
            disable_path_validation=True,
            quiet=True,
        )
    print(response.headers["Docker-Content-Digest"])


def pull(target, outdir):
    for path in client(target).pull(target=target, outdir=outdir):
        print(path)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("push", "pull"):
        sys.exit("usage: oras_tool.py push REF FILE | pull REF DIR")
    {"push": push, "pull": pull}[sys.argv[1]](sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
