#!/usr/bin/env bash
# Upstream metrics-server v0.8.0 and kaddons-metrics-server side by side, each in its own run
# with identical flags, against the same real kube-apiserver, the same Node and Pod objects and
# the same simulated kubelets, one of them hung and one answering garbage
# (crates/testkit/examples/side_by_side.rs says what is measured and how; BENCHMARKS.md has
# the figures and how to read them).
#
#   scripts/bench-side-by-side.sh              # 100 and 1000 nodes x 30 pods
#   scripts/bench-side-by-side.sh 100 1000 5000
#
# Environment: PODS (per node, 30), PERIODS (15 s periods measured, 4), ROUNDS (runs of each
# server, alternating upstream, kaddons, kaddons, upstream; 2), FAULTS=0 (no hung and
# garbage kubelet), WRK_SECONDS (per wrk run, 10), SIDE_BY_SIDE_JSON (where the JSON lines go,
# /tmp/side-by-side.jsonl), KADDONS_METRICS_SERVER_BIN (another build of ours).
#
# Needs root (a network namespace for the kubelets), Go (the test kit builds Kubernetes and
# upstream metrics-server once and caches them), curl and wrk (Debian's package, installed
# here when missing). Run on a quiet machine: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000)
pods=${PODS:-30}
periods=${PERIODS:-4}
# Two runs of each server, in the order ABBA: this VM's speed drifts over minutes, and a single
# run of each, minutes apart, moved the 1,000-node CPU ratio between 4.2x and 4.5x.
export ROUNDS=${ROUNDS:-2}
export SIDE_BY_SIDE_JSON=${SIDE_BY_SIDE_JSON:-/tmp/side-by-side.jsonl}

if ! command -v wrk >/dev/null; then
  apt-get install -y wrk
fi
cargo build --release --locked -p kaddons-metrics-server --bin kaddons-metrics-server
cargo build --release --locked -p kaddons-testkit --example side_by_side
target=${CARGO_TARGET_DIR:-target}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem:/ {print $2}') GiB; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); JSON lines appended to $SIDE_BY_SIDE_JSON"
for n in "${sizes[@]}"; do
  # The example prints its table on stdout; its progress and JSON lines go to the log.
  "$target/release/examples/side_by_side" "$n" "$pods" "$periods" 2>"/tmp/side-by-side-$n.log" ||
    { echo "size $n failed; see /tmp/side-by-side-$n.log" >&2; exit 1; }
  echo "load after $n nodes: $(cut -d' ' -f1-3 /proc/loadavg)"
done
