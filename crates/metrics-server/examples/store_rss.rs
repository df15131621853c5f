//! Memory of the built-in metrics server's point store holding N kind-like nodes (default
//! 1,000) with 70 pods each: the real kubelet payload, pod names made unique per node, stored
//! for two cycles 15 s apart (so every container holds two points and has a rate).
//! Prints the process RSS before and after, from /proc/self/status.
//!
//! `cargo run --release --example store_rss -- 1000`

use std::time::{Duration, SystemTime};

use kaddons_metrics_server::decode::{decode, MetricsBatch};
use kaddons_metrics_server::store::Store;
use kaddons_model::usage::MetricsProvider;

const FIXTURE: &str = include_str!("../tests/fixtures/kubelet-metrics-resource-kind-70pods.txt");

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The fixture as node `i` at cycle `c`: unique pod names, CPU counters and timestamps moved on.
fn payload(i: usize, c: u64) -> String {
    let shift_ms = c * 15_000;
    FIXTURE
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                return l.to_string();
            }
            let l = l.replace("pod=\"", &format!("pod=\"n{i}-"));
            // Last field: timestamp in ms; advance it and, for CPU counters, the value.
            let mut parts: Vec<String> = l.rsplitn(3, ' ').map(str::to_string).collect();
            if parts.len() == 3 {
                if let (Ok(ts), Ok(v)) = (parts[0].parse::<u64>(), parts[1].parse::<f64>()) {
                    parts[0] = (ts + shift_ms).to_string();
                    if l.contains("cpu_usage_seconds_total") {
                        parts[1] = format!("{}", v + c as f64 * 0.5);
                    }
                }
            }
            parts.reverse();
            parts.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut store = Store::new(Duration::from_secs(15));
    let before = rss_kib();
    for cycle in 0..2u64 {
        let names: Vec<String> = (0..nodes).map(|i| format!("node-{i}")).collect();
        let batches: Vec<MetricsBatch> = (0..nodes)
            .map(|i| {
                decode(payload(i, cycle).as_bytes(), SystemTime::now()).expect("fixture decodes")
            })
            .collect();
        store.store(names.iter().map(String::as_str).zip(batches.iter()));
        // Batches are dropped here, as the scraper drops them after storing.
    }
    let after = rss_kib();
    let stats = store.stats();
    let served_pods = store.pods().len();
    println!(
        "nodes {nodes}: pods served {served_pods}, containers {}, points {}, store estimate {} KiB; RSS before {before} KiB, after {after} KiB, delta {} KiB = {:.1} KiB/node",
        stats.containers,
        stats.points,
        stats.approx_bytes / 1024,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / nodes as f64
    );
}
