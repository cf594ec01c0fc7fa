#!/usr/bin/env bash
# Validates the Kubernetes manifests of deploy/k8s (run by .ci/run): every
# manifest file of the base and of each overlay (its strategic-merge patches
# are written to validate on their own) with PyPI's kubernetes-validate in
# --strict mode (unknown fields are errors), against Kubernetes 1.30 and the
# newest version it knows; and, where kubectl exists, what `kubectl
# kustomize` renders from the base and each overlay, against the same
# versions. kubernetes-validate bundles the schemas (no network at run time);
# it is installed into the tools cache on first use ($PERCORE_TOOLS, default
# ~/.cache/percore-tools), as tests/oras/oras.sh does for oras.
#
#   deploy/k8s/validate.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=1.37.0
. "$here/../../guests/pip-tool.sh"
pip_tool validate.sh kubernetes-validate "$version" kubernetes_validate kubernetes-validate
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Every manifest file: all YAML but kustomization.yaml (kustomize's own).
mapfile -t files < <(find "$here" -name '*.yaml' ! -name kustomization.yaml | sort)
# Rendered kustomizations, where kubectl exists.
if command -v kubectl >/dev/null; then
    for dir in "$here/base" "$here"/overlays/*/; do
        dir="${dir%/}"
        out="$work/$(basename "$dir").rendered.yaml"
        kubectl kustomize "$dir" >"$out"
        echo "validate.sh: rendered $dir with kubectl kustomize ($(grep -c '^kind:' "$out") objects)"
        files+=("$out")
    done
else
    echo "validate.sh: kubectl not found: skipping kubectl kustomize (each manifest and patch file is still validated)"
fi
for k8s in 1.30.0 "$version"; do
    echo "validate.sh: ${#files[@]} files against Kubernetes $k8s (--strict)"
    PYTHONPATH="$tools" python3 -m kubernetes_validate --strict --quiet --no-warn \
        --kubernetes-version "$k8s" "${files[@]}"
done
echo "validate.sh: all manifests valid"
