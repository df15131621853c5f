#!/usr/bin/env bash
# Builds the multi-call test binary `k8s` (real Kubernetes v1.34.4 components
# plus etcd, from the Go module proxy) into a cache dir keyed by version and a
# hash of this module's inputs, and prints that bin dir as the last line on
# stdout:
#
#   ${KADDONS_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaddons/k8s}/v1.34.4-<hash12>/bin
#
# holding `k8s` and symlinks kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy and etcd pointing at it. When the binary
# is already there this only prints the dir (no `go` needed). Progress of a
# build goes to stderr. The binary is written to a temp file and renamed, so an
# interrupted build never leaves a half binary behind.
set -euo pipefail

readonly K8S_VERSION=v1.34.4
readonly K8S_MAJOR=1
readonly K8S_MINOR=34
readonly BUILD_DATE=1970-01-01T00:00:00Z
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# Upstream's release builds (hack/lib/golang.sh) use these tags and -s -w.
readonly TAGS=selinux,notest,grpcnotrace

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  ldflags+=" -X ${pkg}.gitMajor=${K8S_MAJOR}"
  ldflags+=" -X ${pkg}.gitMinor=${K8S_MINOR}"
  ldflags+=" -X ${pkg}.gitTreeState=clean"
  ldflags+=" -X ${pkg}.buildDate=${BUILD_DATE}"
done

# The key covers the module's inputs and the build recipe itself.
hash=$(
  cd "$here"
  {
    sha256sum go.mod go.sum main.go
    printf 'CGO_ENABLED=0 tags=%s ldflags=%s\n' "$TAGS" "$ldflags"
  } | sha256sum | cut -c1-12
)
cache=${KADDONS_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaddons/k8s}
out="$cache/${K8S_VERSION}-${hash}"
bin="$out/bin"

link_components() {
  local c
  for c in "${COMPONENTS[@]}"; do
    [[ -L "$bin/$c" ]] || ln -sfn k8s "$bin/$c"
  done
}

if [[ -x "$bin/k8s" ]]; then
  link_components
  printf '%s\n' "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: error: 'go' is not on PATH; Go >= 1.24 is needed to build the Kubernetes test binary ($K8S_VERSION)." >&2
  exit 127
fi

mkdir -p "$bin"
# One build at a time per cache entry; a second caller waits, then finds the
# binary.
exec 9>"$out/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  echo "build.sh: another build holds $out/.lock; waiting" >&2
  flock 9
fi
if [[ -x "$bin/k8s" ]]; then
  link_components
  printf '%s\n' "$bin"
  exit 0
fi

tmp=$(mktemp "$bin/.k8s.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT

start=$SECONDS
cd "$here"
echo "build.sh: building k8s $K8S_VERSION into $bin ($(go version))" >&2

echo "build.sh: [$((SECONDS - start))s] resolving packages (downloads missing modules)" >&2
total=$(CGO_ENABLED=0 go list -mod=readonly -tags "$TAGS" -deps . | wc -l) || {
  echo "build.sh: error: 'go list' failed (module download or go.sum problem; see above)" >&2
  exit 1
}
echo "build.sh: [$((SECONDS - start))s] modules ready; compiling up to $total packages (cached ones are not listed)" >&2

n=0
CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -v \
  -tags "$TAGS" -ldflags "$ldflags" -o "$tmp" . 2>&1 |
  while IFS= read -r line; do
    if [[ "$line" =~ ^[A-Za-z0-9._~/+-]+$ ]]; then
      n=$((n + 1))
      printf 'build.sh: [%4d/%d %4ds] %s\n' "$n" "$total" "$((SECONDS - start))" "$line" >&2
    else
      printf '%s\n' "$line" >&2
    fi
  done || {
  echo "build.sh: error: go build failed after $((SECONDS - start))s (see above)" >&2
  exit 1
}

chmod 0755 "$tmp"
mv -f "$tmp" "$bin/k8s"
link_components
echo "build.sh: [$((SECONDS - start))s] done: $bin/k8s ($(du -h "$bin/k8s" | cut -f1))" >&2
printf '%s\n' "$bin"
