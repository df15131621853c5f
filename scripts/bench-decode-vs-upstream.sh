#!/usr/bin/env bash
# One kubelet scrape (GET /metrics/resource on loopback + decode of the real 70-pod kind payload),
# upstream metrics-server v0.8.0 and kaddons-metrics-server side by side, in one run:
#   - upstream: its own Go benchmark BenchmarkKubeletClient_GetMetrics
#     (sigs.k8s.io/metrics-server/pkg/scraper/client/resource, from the module proxy through
#     crates/testkit/metrics-server-upstream/go.mod; plain HTTP to an httptest server), and its
#     decoder alone: crates/testkit/metrics-server-upstream/decodebench calls upstream's
#     unexported decodeBatch through go:linkname on the same payload file as ours
#   - kaddons: crates/metrics-server/benches/fetch.rs (the same payload over HTTPS, a kept-alive
#     connection, then decode) and benches/decode.rs (decode alone)
#
#   scripts/bench-decode-vs-upstream.sh          # COUNT=5 Go runs, criterion's defaults
#
# Prints each figure and the ratio. Run on a quiet machine; the load average is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"

go_out=$(cd crates/testkit/metrics-server-upstream &&
  go test -run '^$' -bench 'BenchmarkKubeletClient_GetMetrics' -benchmem -count "$count" \
    sigs.k8s.io/metrics-server/pkg/scraper/client/resource)
echo "$go_out" | grep '^Benchmark'
go_decode_out=$(cd crates/testkit/metrics-server-upstream &&
  go test -run '^$' -bench 'BenchmarkDecodeBatch' -benchmem -count "$count" ./decodebench)
echo "$go_decode_out" | grep '^Benchmark'
# Median ns/op of the Go runs.
median_ns() { awk '/^Benchmark/ {print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
upstream_ns=$(echo "$go_out" | median_ns)
upstream_decode_ns=$(echo "$go_decode_out" | median_ns)

rs_out=$(cargo bench --locked -p kaddons-metrics-server --bench fetch --bench decode -- --noplot 2>/dev/null)
echo "$rs_out" | grep -A1 -E '^(fetch|decode)/' | grep -E 'fetch/|decode/|time:'
# criterion's middle estimate, in ns.
estimate() {
  echo "$rs_out" | grep -A1 "^$1" | grep -o 'time: *\[[^]]*\]' | head -n1 |
    awk '{v=$4; u=$5; f=(u=="ns")?1:(u=="µs")?1e3:(u=="ms")?1e6:1e9; printf "%.0f", v*f}'
}
fetch_ns=$(estimate "fetch/get_and_decode_kind_70_pods")
decode_ns=$(estimate "decode/kind_70_pods")

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v u="$upstream_ns" -v ud="$upstream_decode_ns" -v f="$fetch_ns" -v d="$decode_ns" 'BEGIN {
  printf "upstream GET+decode (HTTP):      %9.1f µs/op (median of Go runs)\n", u/1000
  printf "kaddons  GET+decode (HTTPS):     %9.1f µs/op  ratio %.1fx\n", f/1000, u/f
  printf "upstream decode alone:           %9.1f µs/op (median of Go runs)\n", ud/1000
  printf "kaddons  decode alone:           %9.1f µs/op  ratio %.1fx\n", d/1000, ud/d
}'
