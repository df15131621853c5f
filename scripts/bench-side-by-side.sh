#!/usr/bin/env bash
# Upstream metrics-server v0.8.0 and kaddons-metrics-server side by side, each in its own run
# with identical flags, against the same real kube-apiserver and the same simulated kubelets
# (crates/testkit/examples/side_by_side.rs; BENCHMARKS.md has the figures and how to read them).
#
#   scripts/bench-side-by-side.sh              # 100 and 1000 nodes x 30 pods
#   scripts/bench-side-by-side.sh 100 1000 5000
#
# Needs root (a network namespace for the kubelets) and Go (the test kit builds Kubernetes and
# upstream metrics-server once and caches them). Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000)
pods=${PODS:-30}
periods=${PERIODS:-4}

cargo build --release --locked -p kaddons-metrics-server --bin kaddons-metrics-server
cargo build --release --locked -p kaddons-testkit --example side_by_side
target=${CARGO_TARGET_DIR:-target}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| server | nodes | pods listed | first complete answer | CPU (median of ${periods} periods) | CPU per node | RSS (median) | RSS per node | VmHWM | oldest point | list nodes | list pods | get one pod |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  "$target/release/examples/side_by_side" "$n" "$pods" "$periods" 2>"/tmp/side-by-side-$n.log" ||
    { echo "size $n failed; see /tmp/side-by-side-$n.log" >&2; exit 1; }
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
