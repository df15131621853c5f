//! Cost of one scrape cycle in the point store (write) and of serving every node and pod from
//! it (read), for 10, 100 and 1000 nodes with 30 pods each.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use kaddons::metrics::decode::{decode, MetricsBatch};
use kaddons::metrics::model::MetricsProvider;
use kaddons::metrics::store::Store;

const PODS_PER_NODE: usize = 30;

/// One node's payload at `ms`: 30 pods, every third with a sidecar, in kubelet text format.
fn payload(node: usize, ms: u64, cpu_s: f64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut containers = Vec::new();
    for p in 0..PODS_PER_NODE {
        let ns = format!("team-{}", p % 5);
        let pod = format!("app-{node}-{p}-6d4cf56db6-x{p:04}");
        containers.push((ns.clone(), pod.clone(), "app"));
        if p % 3 == 0 {
            containers.push((ns, pod, "istio-proxy"));
        }
    }
    for metric in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ] {
        for (i, (ns, pod, c)) in containers.iter().enumerate() {
            let value = if metric.starts_with("container_cpu") {
                cpu_s + i as f64
            } else {
                1.0e7 + i as f64
            };
            let _ = writeln!(
                out,
                "{metric}{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {value} {ms}"
            );
        }
    }
    let _ = writeln!(out, "node_cpu_usage_seconds_total {} {ms}", cpu_s * 10.0);
    let _ = writeln!(out, "node_memory_working_set_bytes 2e9 {ms}");
    out
}

const T0: u64 = 1_700_000_000_000;

/// Every node's payload text, stamped with `T0` (13 digits, so restamping keeps lengths).
fn texts(nodes: usize) -> Vec<(String, String)> {
    (0..nodes)
        .map(|n| (format!("node-{n}"), payload(n, T0, 100.0)))
        .collect()
}

/// Decodes one cycle with every sample stamped `ms`. Run outside the timed part: the
/// benchmark measures the store, the decoder has its own.
fn cycle(texts: &[(String, String)], ms: u64) -> Vec<(String, MetricsBatch)> {
    let stamp = ms.to_string();
    texts
        .iter()
        .map(|(node, text)| {
            let text = text.replace(&T0.to_string(), &stamp);
            let batch = decode(text.as_bytes(), UNIX_EPOCH).expect("bench payload decodes");
            assert_eq!(batch.pod_count(), PODS_PER_NODE);
            (node.clone(), batch)
        })
        .collect()
}

fn feed(store: &mut Store, cycle: &[(String, MetricsBatch)]) {
    store.store(cycle.iter().map(|(n, b)| (n.as_str(), b)));
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for nodes in [10usize, 100, 1000] {
        let texts = texts(nodes);
        let mut store = Store::new(Duration::from_secs(15));
        // Every cycle is 15 s after the previous one, so each write moves real samples.
        let mut next_ms = T0;
        let mut next_cycle = || {
            next_ms += 15_000;
            cycle(&texts, next_ms)
        };
        feed(&mut store, &next_cycle());
        feed(&mut store, &next_cycle());
        assert_eq!(store.pods().len(), nodes * PODS_PER_NODE);
        let stats = store.stats();
        eprintln!(
            "store with {nodes} nodes: {} pods, {} containers, {} points, ~{} KiB",
            stats.pods,
            stats.containers,
            stats.points,
            stats.approx_bytes / 1024
        );

        group.bench_with_input(BenchmarkId::new("write", nodes), &nodes, |bench, _| {
            bench.iter_batched_ref(
                &mut next_cycle,
                |cycle| feed(&mut store, cycle),
                BatchSize::PerIteration,
            )
        });
        // Everything the API would serve for `kubectl top nodes` + `kubectl top pods -A`.
        assert_eq!(store.pods().len(), nodes * PODS_PER_NODE);
        group.bench_with_input(BenchmarkId::new("read", nodes), &nodes, |bench, _| {
            bench.iter(|| (black_box(store.nodes()), black_box(store.pods())))
        });
        // One scrape cycle followed by one full listing.
        group.bench_with_input(BenchmarkId::new("write+read", nodes), &nodes, |bench, _| {
            bench.iter_batched_ref(
                &mut next_cycle,
                |cycle| {
                    feed(&mut store, cycle);
                    (black_box(store.nodes()), black_box(store.pods()))
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
