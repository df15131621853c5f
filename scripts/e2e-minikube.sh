#!/usr/bin/env bash
# End-to-end tests of kaddons on a throwaway minikube cluster.
#
# Starts the minikube profile "kaddons-e2e" with its kubeconfig in a temporary file, so
# ~/.kube/config and its current context are never touched; builds kaddons; runs the ignored
# e2e tests (tests/e2e.rs) against that cluster; and deletes the profile on exit, whether the
# tests passed, failed or were interrupted.
#
# Usage:
#   scripts/e2e-minikube.sh
#   KEEP_CLUSTER=1 scripts/e2e-minikube.sh                        # keep the cluster
#   MINIKUBE_START_ARGS="--driver=docker --kubernetes-version=v1.32.2" scripts/e2e-minikube.sh
#
# Needs minikube, kubectl, cargo, and a minikube driver (docker, podman, kvm2, ...).
# Exit code: that of the tests (0 passed); 2 when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=kaddons-e2e

for tool in minikube kubectl cargo; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "e2e-minikube: '$tool' is not on PATH; install it (https://minikube.sigs.k8s.io, https://kubernetes.io/docs/tasks/tools/, https://rustup.rs) and retry" >&2
    exit 2
  fi
done

workdir=$(mktemp -d)
# minikube writes the context of the profile into $KUBECONFIG.
export KUBECONFIG="$workdir/kubeconfig"

cleanup() {
  local status=$?
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "e2e-minikube: keeping profile $cluster; use it with: export KUBECONFIG=$KUBECONFIG" >&2
  else
    echo "e2e-minikube: deleting profile $cluster" >&2
    minikube delete -p "$cluster" >&2 || true
    rm -rf "$workdir"
  fi
  exit "$status"
}
# Set before the cluster exists, so that a half-started cluster is deleted too. INT and TERM
# exit through the EXIT trap.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Extra flags for `minikube start`, split on whitespace.
read -r -a extra <<<"${MINIKUBE_START_ARGS:-}"
minikube start -p "$cluster" ${extra[@]+"${extra[@]}"} >&2
# minikube's addon of the same name must not be on: kaddons installs its own.
if minikube addons list -p "$cluster" 2>/dev/null | grep -E '^\| metrics-server +\|' | grep -q enabled; then
  echo "e2e-minikube: minikube's metrics-server addon is enabled in $cluster; disable it first" >&2
  exit 2
fi
kubectl config use-context "$cluster" >&2

cargo build --workspace --locked >&2
# The tests refuse to run without KADDONS_E2E=1 (they change the cluster they point at).
export KADDONS_E2E=1 KADDONS_E2E_PROFILE=minikube
cargo test --locked --test tests e2e::upstream -- --ignored --test-threads=1
# kaddons' own metrics server: its image has to be built (docker) and loaded first.
if command -v docker >/dev/null 2>&1; then
  scripts/build-metrics-server-image.sh minikube "$cluster" >&2
  cargo test --locked --test tests e2e::builtin -- --ignored --test-threads=1
else
  echo "e2e-minikube: docker not found: the implementation=builtin test was NOT run" >&2
fi
