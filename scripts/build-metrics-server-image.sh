#!/usr/bin/env bash
# Builds the kaddons-metrics-server image and optionally loads it into a local cluster.
#
# Usage: scripts/build-metrics-server-image.sh [none|kind|minikube] [CLUSTER]
#   none      build only (default)
#   kind      then `kind load docker-image` into kind cluster CLUSTER (default: kind)
#   minikube  then `minikube image load` into minikube profile CLUSTER (default: minikube)
# Environment: IMAGE (default kaddons/metrics-server:0.1.0, the image the metrics-server addon's
# `implementation: builtin` uses), DOCKER (default docker).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-none}
image=${IMAGE:-kaddons/metrics-server:0.1.0}
docker=${DOCKER:-docker}

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "error: $1 not found in PATH; $2" >&2
    exit 2
  }
}

case "$target" in
  none | kind | minikube) ;;
  -h | --help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "error: unknown target '$target' (expected none, kind or minikube)" >&2
    exit 2
    ;;
esac

need "$docker" "install Docker (https://docs.docker.com/engine/install/) or set DOCKER"
case "$target" in
  kind) need kind "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)" ;;
  minikube) need minikube "install minikube (https://minikube.sigs.k8s.io/docs/start/)" ;;
esac

echo "building $image" >&2
DOCKER_BUILDKIT=1 "$docker" build --file crates/metrics-server/Dockerfile --tag "$image" .

case "$target" in
  kind)
    cluster=${2:-kind}
    echo "loading $image into kind cluster $cluster" >&2
    kind load docker-image "$image" --name "$cluster"
    ;;
  minikube)
    profile=${2:-minikube}
    echo "loading $image into minikube profile $profile" >&2
    minikube image load "$image" --profile "$profile"
    ;;
  none) ;;
esac
echo "done: $image" >&2
