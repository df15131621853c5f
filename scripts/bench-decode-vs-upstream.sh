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
#   scripts/bench-decode-vs-upstream.sh          # COUNT=5 interleaved rounds
#
# Prints each figure and the ratio. Run on a quiet machine; the load average is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"

# Rounds interleave the two sides (Go, then Rust, then Go again ...): this VM's speed drifts by up
# to 2x over minutes, and a ratio of figures taken minutes apart would measure the drift.
# Each round: one Go run of each benchmark, then criterion's estimate of each of ours; the
# ratios are taken per round and their median reported.
cargo bench --locked -p kaddons-metrics-server --bench fetch --bench decode --no-run
# Median of numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# criterion's middle estimate for bench $1 in output $2, in ns.
estimate() {
  echo "$2" | grep -A1 "^$1" | grep -o 'time: *\[[^]]*\]' | head -n1 |
    awk '{v=$4; u=$5; f=(u=="ns")?1:(u=="µs")?1e3:(u=="ms")?1e6:1e9; printf "%.0f", v*f}'
}
rows=()
for round in $(seq "$count"); do
  go_out=$(cd crates/testkit/metrics-server-upstream &&
    go test -run '^$' -bench 'BenchmarkKubeletClient_GetMetrics' -benchmem -count 1 \
      sigs.k8s.io/metrics-server/pkg/scraper/client/resource &&
    go test -run '^$' -bench 'BenchmarkDecodeBatch' -benchmem -count 1 ./decodebench)
  echo "$go_out" | grep '^Benchmark'
  rs_out=$(cargo bench --locked -p kaddons-metrics-server --bench fetch --bench decode -- --noplot 2>/dev/null)
  echo "$rs_out" | grep -A1 -E '^(fetch|decode)/' | grep -E 'fetch/|decode/|time:'
  up=$(echo "$go_out" | awk '/^BenchmarkKubeletClient_GetMetrics/ {print $3}')
  up_decode=$(echo "$go_out" | awk '/^BenchmarkDecodeBatch/ {print $3}')
  fetch=$(estimate "fetch/get_and_decode_kind_70_pods" "$rs_out")
  decode=$(estimate "decode/kind_70_pods" "$rs_out")
  echo "round $round: upstream GET+decode $up ns, decode $up_decode ns; kaddons GET+decode $fetch ns, decode $decode ns"
  rows+=("$up $up_decode $fetch $decode")
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{print $c}' | median; }
ratio() { printf '%s\n' "${rows[@]}" | awk -v a="$1" -v b="$2" '{printf "%.2f\n", $a/$b}' | median; }
awk -v u="$(col 1)" -v ud="$(col 2)" -v f="$(col 3)" -v d="$(col 4)" \
  -v rf="$(ratio 1 3)" -v rd="$(ratio 2 4)" -v n="$count" 'BEGIN {
  printf "medians of %d interleaved rounds:\n", n
  printf "upstream GET+decode (HTTP):      %9.1f µs/op\n", u/1000
  printf "kaddons  GET+decode (HTTPS):     %9.1f µs/op  ratio %.1fx (median of per-round ratios)\n", f/1000, rf
  printf "upstream decode alone:           %9.1f µs/op\n", ud/1000
  printf "kaddons  decode alone:           %9.1f µs/op  ratio %.1fx (median of per-round ratios)\n", d/1000, rd
}'
