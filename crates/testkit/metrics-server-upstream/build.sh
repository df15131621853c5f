#!/usr/bin/env bash
# Builds upstream metrics-server v0.8.0 (sigs.k8s.io/metrics-server/cmd/metrics-server
# from the Go module proxy, flags as upstream's Makefile at v0.8.0) into a cache
# dir keyed by version and a hash of go.mod, go.sum and this recipe, and prints
# that bin dir as the last line on stdout:
#
#   ${KADDONS_METRICS_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaddons/metrics-server-upstream}/v0.8.0-<hash12>/bin
#
# When the binary is already there this only prints the dir (no `go` needed).
# The binary is written to a temp file and renamed, never left half-written.
set -euo pipefail

readonly VERSION=v0.8.0
# The v0.8.0 tag's commit and its time (upstream's Makefile puts the build
# time here; a fixed value keeps the binary reproducible).
readonly GIT_COMMIT=d66279c6426c6581d9656fe3d42bc52db7c29597
readonly BUILD_DATE=2025-07-03T08:11:27Z
readonly PKG=sigs.k8s.io/metrics-server/cmd/metrics-server

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# As upstream's Makefile: LDFLAGS=-w plus the version in client-go's package.
ldflags="-w"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${VERSION}"
ldflags+=" -X k8s.io/client-go/pkg/version.gitCommit=${GIT_COMMIT}"
ldflags+=" -X k8s.io/client-go/pkg/version.buildDate=${BUILD_DATE}"

hash=$(
  cd "$here"
  {
    sha256sum go.mod go.sum
    printf 'CGO_ENABLED=0 pkg=%s ldflags=%s\n' "$PKG" "$ldflags"
  } | sha256sum | cut -c1-12
)
cache=${KADDONS_METRICS_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaddons/metrics-server-upstream}
out="$cache/${VERSION}-${hash}"
bin="$out/bin"

if [[ -x "$bin/metrics-server" ]]; then
  printf '%s\n' "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: error: 'go' is not on PATH; Go >= 1.24.4 is needed to build metrics-server $VERSION." >&2
  exit 127
fi

mkdir -p "$bin"
exec 9>"$out/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  echo "build.sh: another build holds $out/.lock; waiting" >&2
  flock 9
fi
if [[ -x "$bin/metrics-server" ]]; then
  printf '%s\n' "$bin"
  exit 0
fi

tmp=$(mktemp "$bin/.metrics-server.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT

start=$SECONDS
cd "$here"
echo "build.sh: building metrics-server $VERSION into $bin ($(go version))" >&2
echo "build.sh: [$((SECONDS - start))s] resolving packages (downloads missing modules)" >&2
total=$(CGO_ENABLED=0 go list -mod=readonly -deps "$PKG" | wc -l) || {
  echo "build.sh: error: 'go list' failed (module download or go.sum problem; see above)" >&2
  exit 1
}
echo "build.sh: [$((SECONDS - start))s] modules ready; compiling up to $total packages (cached ones are not listed)" >&2

n=0
CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -v \
  -ldflags "$ldflags" -o "$tmp" "$PKG" 2>&1 |
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
mv -f "$tmp" "$bin/metrics-server"
echo "build.sh: [$((SECONDS - start))s] done: $bin/metrics-server ($(du -h "$bin/metrics-server" | cut -f1))" >&2
printf '%s\n' "$bin"
