#!/usr/bin/env bash
# Scale and fault runs of the built-in metrics server against the kubelet fleet simulator,
# all on 127.0.0.1 (see BENCHMARKS.md for the figures and how to read them).
#
#   scripts/bench-scale.sh                 # 100, 1000, 5000 nodes × 30 pods, then the fault run
#   scripts/bench-scale.sh 100 1000        # only these sizes (no fault run)
#   FAULT_ONLY=1 scripts/bench-scale.sh    # only the fault run (1,000 nodes, 1% per fault mode)
#
# Per size: the fleet (crates/metrics-server/examples/kubelet_fleet.rs, its own process) and the server harness
# (crates/metrics-server/examples/metrics_harness.rs: Scraper + SharedStore + LabeledProvider + api::start, 15 s
# resolution) run for CYCLES cycles. Cycles 1-2 warm up (TLS handshakes, first rates);
# CPU per period comes from cycles 3-5, before any API load; then wrk loads the API from a
# second process during the last cycles (get one pod, then list all pods). Everything is
# bounded: the harness exits after CYCLES cycles, the fleet after its duration, wrk after -d.
#
# Environment: CARGO_TARGET_DIR (default target), OUT (default /tmp/kaddons-scale), CYCLES
# (default 7), PODS (30), STAGGER_MS (unset: the server default, no stagger),
# WRK_ONE_SECS (10), WRK_LIST_SECS (12).
set -euo pipefail

cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
out=${OUT:-/tmp/kaddons-scale}
cycles=${CYCLES:-7}
pods=${PODS:-30}
wrk_one=${WRK_ONE_SECS:-10}
wrk_list=${WRK_LIST_SECS:-12}
token=scale-token

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install -y wrk)" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed (apt-get install -y jq)" >&2; exit 1; }
[ "$cycles" -ge 6 ] || { echo "CYCLES must be at least 6" >&2; exit 1; }

cargo build --release --locked -p kaddons-metrics-server --example kubelet_fleet --example metrics_harness >&2
fleet_bin=$target/release/examples/kubelet_fleet
harness_bin=$target/release/examples/metrics_harness
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Waits (bounded) until file $1 has at least $2 lines; $3 = seconds.
wait_lines() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for $2 lines in $1" >&2
    return 1
}

# run NODES FAULTY_PER_MODE NAME
run() {
    local nodes=$1 faulty=$2 name=$3 dir fleet_pid harness_pid addr pod stagger=()
    dir=$out/$name
    rm -rf "$dir"
    mkdir -p "$dir"
    "$fleet_bin" --nodes "$nodes" --pods "$pods" --out "$dir" --faulty-per-mode "$faulty" \
        --duration-secs $((cycles * 15 + 120)) 2>"$dir/fleet.log" &
    fleet_pid=$!
    wait_lines "$dir/nodes.tsv" $((nodes + 1)) 120
    if [ -n "${STAGGER_MS:-}" ]; then
        stagger=(--stagger-ms "$STAGGER_MS")
    fi
    "$harness_bin" --nodes-file "$dir/nodes.tsv" --cycles "$cycles" --addr-file "$dir/addr" \
        --sample-pod-file "$dir/pod" --token "$token" "${stagger[@]}" \
        >"$dir/cycles.jsonl" 2>"$dir/harness.log" &
    harness_pid=$!
    echo "$harness_pid" >"$dir/harness.pid"
    # API load from a second process once cycles 1-5 are done.
    wait_lines "$dir/cycles.jsonl" 5 $((6 * 15 + 120))
    addr=$(cat "$dir/addr")
    pod=$(cat "$dir/pod")
    cat /proc/loadavg >"$dir/load-before-wrk"
    wrk -t1 -c4 -d"${wrk_one}s" --timeout 30s --latency -H "Authorization: Bearer $token" \
        "https://$addr/apis/metrics.k8s.io/v1beta1/namespaces/${pod%%/*}/pods/${pod#*/}" \
        >"$dir/wrk-get-one.txt" 2>&1 || true
    wrk -t1 -c2 -d"${wrk_list}s" --timeout 30s --latency -H "Authorization: Bearer $token" \
        "https://$addr/apis/metrics.k8s.io/v1beta1/pods" >"$dir/wrk-list-all.txt" 2>&1 || true
    cat /proc/loadavg >"$dir/load-after-wrk"
    wait "$harness_pid" || echo "harness exited with $?" >&2
    kill "$fleet_pid" 2>/dev/null || true
    wait "$fleet_pid" 2>/dev/null || true
    summarize "$dir" "$nodes"
}

# Percentile p (0-100) of the numbers on stdin (nearest rank).
pct() {
    sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; print v[i] }'
}

summarize() {
    local dir=$1 nodes=$2 walls cpu hwm rss0 first
    walls=$(jq -r 'select(.cycle >= 2 and .cycle <= 5) | .wall_ms' "$dir/cycles.jsonl")
    cpu=$(jq -s '[.[] | select(.cycle >= 3 and .cycle <= 5) | .cpu_s_period / .period_s * 15] | add / length' "$dir/cycles.jsonl")
    first=$(jq -r 'select(.cycle == 1) | .wall_ms' "$dir/cycles.jsonl")
    hwm=$(jq -s 'map(.hwm_kib) | max' "$dir/cycles.jsonl")
    rss0=$(jq -s '.[0].rss_start_kib' "$dir/cycles.jsonl")
    {
        echo "== $dir ($nodes nodes × $pods pods)"
        echo "cycle wall ms (cycles 2-5): p50 $(pct 50 <<<"$walls") p99/max $(pct 99 <<<"$walls"); first cycle (TLS handshakes) $first"
        echo "CPU seconds per 15 s period (cycles 3-5): $cpu = $(jq -n "$cpu / 15 * 1000 / $nodes") mCPU per node"
        echo "peak RSS (VmHWM) $hwm KiB; start $rss0 KiB; per node $(jq -n "($hwm - $rss0) / $nodes") KiB over start, $(jq -n "$hwm / $nodes") KiB whole process"
        jq -c '{cycle, wall_ms: (.wall_ms | floor), cpu_s_cycle, cpu_s_period, outcomes, lost_expected, served_expected, expected, served_pods, max_age_ms, max_missing_expected, age_bound_ms, rss_kib, hwm_kib, loadavg}' "$dir/cycles.jsonl"
        echo "load before/after wrk: $(cut -d' ' -f1-3 "$dir/load-before-wrk") / $(cut -d' ' -f1-3 "$dir/load-after-wrk")"
        for f in get-one list-all; do
            echo "wrk $f: $(grep -E 'Requests/sec' "$dir/wrk-$f.txt" | tr -s ' ') |$(grep -E '^ +(50|99)%' "$dir/wrk-$f.txt" | tr -s ' ' | tr '\n' '|') $(grep -E 'requests in' "$dir/wrk-$f.txt" | tr -s ' ')"
        done
    } | tee "$dir/summary.txt"
}

if [ -n "${FAULT_ONLY:-}" ]; then
    sizes=()
elif [ $# -gt 0 ]; then
    sizes=("$@")
else
    sizes=(100 1000 5000)
fi
for n in "${sizes[@]}"; do
    run "$n" 0 "n$n"
done
if [ $# -eq 0 ]; then
    # 1% of 1,000 nodes in each of the 7 fault modes.
    run 1000 10 "faults-n1000"
fi
