#!/usr/bin/env bash
# Creates (or reuses) a kind cluster and gives it the addons of examples/addons.yaml.
#
# Safe to re-run: an existing cluster is reused and `kaddons apply` changes nothing that is
# already as the file says. Unlike scripts/e2e-kind.sh this cluster is meant to be kept, so
# its context goes into your kubeconfig and nothing is deleted on exit.
#
# Usage:
#   scripts/bootstrap-kind.sh
#   CLUSTER=dev ADDONS=my-addons.yaml scripts/bootstrap-kind.sh
#   KADDONS_FLAGS="--prune" scripts/bootstrap-kind.sh   # also disable unlisted addons
#
# Needs kind, kubectl and kaddons on PATH, and a container runtime kind can use.
# Exit code: that of `kaddons apply` (0 applied and working, 1 not working in time); 2 when a
# tool is missing or the cluster cannot be created.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=${CLUSTER:-kaddons}
addons=${ADDONS:-examples/addons.yaml}
context="kind-$cluster"

for tool in kind kubectl kaddons; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bootstrap-kind: '$tool' is not on PATH; install it (kind: https://kind.sigs.k8s.io, kubectl: https://kubernetes.io/docs/tasks/tools/, kaddons: cargo install --locked --path .) and retry" >&2
    exit 2
  fi
done

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "bootstrap-kind: reusing cluster $cluster" >&2
  # The context may be missing from the kubeconfig (deleted, or another KUBECONFIG).
  kind export kubeconfig --name "$cluster" >/dev/null 2>&1 || true
else
  echo "bootstrap-kind: creating cluster $cluster" >&2
  if ! kind create cluster --name "$cluster" --wait 120s; then
    echo "bootstrap-kind: kind could not create cluster $cluster (is docker or podman running?)" >&2
    exit 2
  fi
fi

# Word splitting of KADDONS_FLAGS is intended: it holds extra flags.
# shellcheck disable=SC2086
exec kaddons --context "$context" apply -f "$addons" ${KADDONS_FLAGS:-}
