#!/usr/bin/env bash
# Starts (or reuses) a minikube cluster and gives it the addons of examples/addons.yaml.
#
# Safe to re-run: a running profile is reused, a stopped one is started, and `kaddons apply`
# changes nothing that is already as the file says. minikube's own metrics-server addon is
# not used; if it is enabled, `kaddons apply` refuses to take its objects over unless
# KADDONS_FLAGS=--force is given.
#
# Usage:
#   scripts/bootstrap-minikube.sh
#   PROFILE=dev ADDONS=my-addons.yaml scripts/bootstrap-minikube.sh
#   KADDONS_FLAGS="--prune" scripts/bootstrap-minikube.sh
#
# Needs minikube, kubectl and kaddons on PATH, and a driver minikube can use.
# Exit code: that of `kaddons apply` (0 applied and working, 1 not working in time); 2 when a
# tool is missing or the cluster cannot be started.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${PROFILE:-minikube}
addons=${ADDONS:-examples/addons.yaml}

for tool in minikube kubectl kaddons; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bootstrap-minikube: '$tool' is not on PATH; install it (minikube: https://minikube.sigs.k8s.io, kubectl: https://kubernetes.io/docs/tasks/tools/, kaddons: cargo install --locked --path .) and retry" >&2
    exit 2
  fi
done

if minikube status --profile "$profile" >/dev/null 2>&1; then
  echo "bootstrap-minikube: reusing running profile $profile" >&2
  # Re-point the kubeconfig context at the cluster (its port may have changed).
  minikube update-context --profile "$profile" >/dev/null 2>&1 || true
else
  # `minikube start` creates a missing profile and starts a stopped one.
  echo "bootstrap-minikube: starting profile $profile" >&2
  if ! minikube start --profile "$profile" --wait=apiserver,system_pods; then
    echo "bootstrap-minikube: minikube could not start profile $profile" >&2
    exit 2
  fi
fi

# Word splitting of KADDONS_FLAGS is intended: it holds extra flags.
# shellcheck disable=SC2086
exec kaddons --context "$profile" apply -f "$addons" ${KADDONS_FLAGS:-}
