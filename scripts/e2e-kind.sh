#!/usr/bin/env bash
# End-to-end tests of kaddons on a throwaway kind cluster.
#
# Creates (or reuses) the kind cluster "kaddons-e2e" with its kubeconfig in a temporary file,
# so ~/.kube/config and its current context are never touched; builds kaddons; runs the
# ignored e2e tests (tests/e2e.rs) against that cluster; and deletes the cluster on exit,
# whether the tests passed, failed or were interrupted.
#
# Usage:
#   scripts/e2e-kind.sh
#   KEEP_CLUSTER=1 scripts/e2e-kind.sh    # keep the cluster; its KUBECONFIG is printed
#   KIND_NODE_IMAGE=kindest/node:v1.32.2 scripts/e2e-kind.sh
#
# Needs kind, kubectl, cargo, and a container runtime kind can use (docker or podman).
# Exit code: that of the tests (0 passed); 2 when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=kaddons-e2e
context="kind-$cluster"

for tool in kind kubectl cargo; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "e2e-kind: '$tool' is not on PATH; install it (https://kind.sigs.k8s.io, https://kubernetes.io/docs/tasks/tools/, https://rustup.rs) and retry" >&2
    exit 2
  fi
done

workdir=$(mktemp -d)
export KUBECONFIG="$workdir/kubeconfig"

cleanup() {
  local status=$?
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "e2e-kind: keeping cluster $cluster; use it with: export KUBECONFIG=$KUBECONFIG" >&2
  else
    echo "e2e-kind: deleting cluster $cluster" >&2
    kind delete cluster --name "$cluster" --kubeconfig "$KUBECONFIG" >&2 || true
    rm -rf "$workdir"
  fi
  exit "$status"
}
# Set before the cluster exists, so that a half-created cluster is deleted too. INT and TERM
# exit through the EXIT trap.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "e2e-kind: reusing existing cluster $cluster" >&2
  kind export kubeconfig --name "$cluster" --kubeconfig "$KUBECONFIG" >&2
else
  create=(kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --wait 120s)
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    create+=(--image "$KIND_NODE_IMAGE")
  fi
  "${create[@]}" >&2
fi
kubectl config use-context "$context" >&2

cargo build --workspace --locked >&2
# The tests refuse to run without KADDONS_E2E=1 (they change the cluster they point at).
export KADDONS_E2E=1 KADDONS_E2E_PROFILE=kind
cargo test --locked --test tests e2e::upstream -- --ignored --test-threads=1
# kaddons' own metrics server: its image has to be built (docker) and loaded first.
if command -v docker >/dev/null 2>&1; then
  scripts/build-metrics-server-image.sh kind "$cluster" >&2
  cargo test --locked --test tests e2e::builtin -- --ignored --test-threads=1
else
  echo "e2e-kind: docker not found: the implementation=builtin test was NOT run" >&2
fi
