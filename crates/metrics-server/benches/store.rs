//! Cost of one scrape cycle in the point store (write) and of serving from it (read), in
//! upstream metrics-server's storage benchmark scenarios (pkg/storage/storage_benchmark_test.go:
//! Normal, Big Namespace, Big Deployment, Dense Container at 10, 100 and 1,000 nodes, same
//! node, pod, deployment, namespace and container counts), so the figures can be compared
//! scenario by scenario.
//!
//! Upstream's reads fetch given nodes or given pods; this store serves whole listings (the API
//! filters them), so `read_nodes` is every node and `read_pods` every pod, the cost of
//! `kubectl top nodes` and `kubectl top pods -A`.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use kaddons_metrics_server::decode::{decode, MetricsBatch};
use kaddons_metrics_server::store::Store;
use kaddons_model::usage::MetricsProvider;

struct Scenario {
    name: &'static str,
    nodes: usize,
    pods_per_node: usize,
    deployments: usize,
    namespaces: usize,
    containers_per_pod: usize,
}

const fn s(
    name: &'static str,
    nodes: usize,
    pods_per_node: usize,
    deployments: usize,
    namespaces: usize,
    containers_per_pod: usize,
) -> Scenario {
    Scenario {
        name,
        nodes,
        pods_per_node,
        deployments,
        namespaces,
        containers_per_pod,
    }
}

/// Upstream's scenarios, in its order.
const SCENARIOS: [Scenario; 11] = [
    s("normal", 1000, 30, 100, 10, 2),
    s("normal", 100, 70, 100, 10, 2),
    s("normal", 10, 70, 100, 10, 2),
    s("big_namespace", 1000, 30, 100, 1, 2),
    s("big_namespace", 100, 70, 100, 1, 2),
    s("big_namespace", 10, 70, 100, 1, 2),
    s("big_deployment", 1000, 30, 1, 1, 2),
    s("big_deployment", 100, 70, 1, 1, 2),
    s("big_deployment", 10, 70, 1, 1, 2),
    s("dense_container", 100, 30, 100, 10, 10),
    s("dense_container", 10, 30, 100, 10, 10),
];

/// A small deterministic generator (upstream seeds math/rand with 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn string(&mut self, len: usize) -> String {
        const CHARSET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| CHARSET[self.next() as usize % CHARSET.len()] as char)
            .collect()
    }
}

/// Pods (namespace, name) per node, built like upstream's generator: deployments get a random
/// namespace, pods are `deployment-random10` on random nodes.
fn layout(sc: &Scenario) -> Vec<Vec<(String, String)>> {
    let mut r = Rng(1);
    let namespaces: Vec<String> = (0..sc.namespaces).map(|_| r.string(20)).collect();
    let mut nodes = vec![Vec::new(); sc.nodes];
    let pods = sc.nodes * sc.pods_per_node;
    for d in 0..sc.deployments {
        let deploy = r.string(10);
        let ns = namespaces[r.next() as usize % namespaces.len()].clone();
        let count = pods / sc.deployments + usize::from(d < pods % sc.deployments);
        for _ in 0..count {
            let pod = format!("{deploy}-{}", r.string(10));
            let node = r.next() as usize % sc.nodes;
            nodes[node].push((ns.clone(), pod));
        }
    }
    nodes
}

/// One node's payload at `ms` in kubelet text format; CPU counters advance with `ms`.
fn payload(pods: &[(String, String)], containers: usize, ms: u64) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(pods.len() * containers * 250 + 256);
    let cpu = ms as f64 / 1000.0 * 0.05;
    for metric in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ] {
        for (i, (ns, pod)) in pods.iter().enumerate() {
            for c in 0..containers {
                let value = if metric.starts_with("container_cpu") {
                    cpu + (i * containers + c) as f64
                } else {
                    1.0e7 + i as f64
                };
                let _ = writeln!(
                    out,
                    "{metric}{{container=\"container-{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {value} {ms}"
                );
            }
        }
    }
    let _ = writeln!(out, "node_cpu_usage_seconds_total {} {ms}", cpu * 10.0);
    let _ = writeln!(out, "node_memory_working_set_bytes 2e9 {ms}");
    out
}

const T0: u64 = 1_700_000_000_000;

/// Decodes one cycle with every sample stamped `ms`. Run outside the timed part: the
/// benchmark measures the store, the decoder has its own.
fn cycle(
    layout: &[Vec<(String, String)>],
    containers: usize,
    ms: u64,
) -> Vec<(String, MetricsBatch)> {
    layout
        .iter()
        .enumerate()
        .map(|(n, pods)| {
            let text = payload(pods, containers, ms);
            let batch = decode(text.as_bytes(), UNIX_EPOCH).expect("bench payload decodes");
            (format!("node-{n}"), batch)
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
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    for sc in &SCENARIOS {
        let layout = layout(sc);
        let pods = sc.nodes * sc.pods_per_node;
        let mut store = Store::new(Duration::from_secs(60));
        // Every cycle is 15 s after the previous one, so each write moves real samples.
        let mut next_ms = T0;
        let mut next_cycle = || {
            next_ms += 15_000;
            cycle(&layout, sc.containers_per_pod, next_ms)
        };
        feed(&mut store, &next_cycle());
        feed(&mut store, &next_cycle());
        assert_eq!(store.pods().len(), pods, "{}", sc.name);
        assert_eq!(store.nodes().len(), sc.nodes, "{}", sc.name);
        let stats = store.stats();
        eprintln!(
            "{} {}: {} pods, {} containers, {} points, ~{} KiB",
            sc.name,
            sc.nodes,
            stats.pods,
            stats.containers,
            stats.points,
            stats.approx_bytes / 1024
        );
        let id = |what: &str| BenchmarkId::new(format!("{what}/{}", sc.name), sc.nodes);
        group.bench_function(id("write"), |bench| {
            bench.iter_batched_ref(
                &mut next_cycle,
                |cycle| feed(&mut store, cycle),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(id("read_nodes"), |bench| {
            bench.iter(|| black_box(store.nodes()))
        });
        group.bench_function(id("read_pods"), |bench| {
            bench.iter(|| black_box(store.pods()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
