//! The metrics server as the scale and fault runs measure it: the library's `Scraper`,
//! `SharedStore`, `LabeledProvider` and `api::start`, wired as src/bin/kaddons-metrics-server.rs
//! wires them, except that nodes come from the kubelet fleet simulator's node list through a
//! `StaticSource` (no API server), pods are all Running without labels, and bearer tokens are
//! checked against one fixed token (no TokenReview round trip).
//!
//! Cycles are driven here instead of by `Scraper::run` (which is an interval around
//! `scrape_once`, exactly as below) so that every cycle can be reported: one JSON line per
//! cycle on stdout with wall time, CPU seconds of this process over the cycle and over the whole
//! period (from /proc/self/stat), RSS and VmHWM, outcomes by error kind, and the freshness
//! checks for nodes that must succeed (healthy and slow): lost = expected-success nodes that
//! failed or are missing from the served nodes; max_age_ms = oldest served sample of those
//! nodes, sampled every 250 ms by a background task reading what the API serves.
//! Exits by itself after `--cycles` cycles.
//!
//! `cargo run --release --example metrics_harness -- --nodes-file /tmp/fleet/nodes.tsv \
//!     --cycles 6 --addr-file /tmp/fleet/addr --token scale-token`

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kaddons_metrics_server::api::{self, HealthChecks, Registry};
use kaddons_metrics_server::scrape::{store_has_data, KubeletVerify, ScrapeConfig, Scraper};
use kaddons_metrics_server::source::{
    LabeledProvider, NodeTarget, ObjectMetadata, PodMeta, StaticSource,
};
use kaddons_metrics_server::store::SharedStore;
use kaddons_model::usage::MetricsProvider;
use kaddons_testkit::auth::admin_config;

use kaddons_testkit::fleet;

struct Args {
    nodes_file: PathBuf,
    cycles: u32,
    resolution: Duration,
    timeout: Option<Duration>,
    concurrency: Option<usize>,
    stagger: Option<Duration>,
    addr_file: Option<PathBuf>,
    sample_pod_file: Option<PathBuf>,
    token: String,
    threads: usize,
}

fn args() -> Args {
    let mut a = Args {
        nodes_file: PathBuf::from("/tmp/kubelet-fleet/nodes.tsv"),
        cycles: 6,
        resolution: Duration::from_secs(15),
        timeout: None,
        concurrency: None,
        stagger: None,
        addr_file: None,
        sample_pod_file: None,
        token: "scale-token".into(),
        threads: 2,
    };
    for (flag, value) in fleet::example_flags() {
        let num = || fleet::flag_num(&flag, &value);
        match flag.as_str() {
            "--nodes-file" => a.nodes_file = PathBuf::from(&value),
            "--cycles" => a.cycles = num() as u32,
            "--resolution-secs" => a.resolution = Duration::from_secs(num()),
            "--timeout-ms" => a.timeout = Some(Duration::from_millis(num())),
            "--concurrency" => a.concurrency = Some(num() as usize),
            "--stagger-ms" => a.stagger = Some(Duration::from_millis(num())),
            "--addr-file" => a.addr_file = Some(PathBuf::from(&value)),
            "--sample-pod-file" => a.sample_pod_file = Some(PathBuf::from(&value)),
            "--token" => a.token = value.clone(),
            "--threads" => a.threads = num() as usize,
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// Node labels by name (a hash map: `StaticSource::node_labels` scans a list, which is fine
/// for tests and would be the bottleneck at 5,000 nodes); every pod is Running.
struct FleetMeta {
    nodes: HashMap<String, BTreeMap<String, String>>,
}

impl ObjectMetadata for FleetMeta {
    fn node_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.nodes.get(name).cloned()
    }

    fn pod(&self, _namespace: &str, _name: &str) -> Option<PodMeta> {
        Some(PodMeta {
            labels: BTreeMap::new(),
            running: true,
        })
    }
}

/// (utime + stime) of this process in seconds, and VmRSS / VmHWM in KiB.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let a = args();
    kaddons_metrics_server::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(a));
}

async fn run(a: Args) {
    let rss_start = status_kib("VmRSS:");
    let text = std::fs::read_to_string(&a.nodes_file).expect("reading the node list");
    let listed = fleet::read_node_list(&text).expect("node list");
    let ca_file = listed
        .first()
        .map(|n| PathBuf::from(&n.ca_file))
        .expect("at least one node");
    let targets: Vec<NodeTarget> = listed
        .iter()
        .map(|n| {
            let mut target = n.target();
            target
                .labels
                .insert("kubernetes.io/hostname".into(), n.name.clone());
            target
        })
        .collect();
    let expected: HashSet<String> = listed
        .iter()
        .filter(|n| n.mode.should_succeed())
        .map(|n| n.name.clone())
        .collect();
    let meta = Arc::new(FleetMeta {
        nodes: targets
            .iter()
            .map(|t| (t.name.clone(), t.labels.clone()))
            .collect(),
    });
    let source = Arc::new(StaticSource::new(targets));

    // As the binary does, with the flags the runs use.
    let mut scrape = ScrapeConfig::new(a.resolution);
    scrape.verify = KubeletVerify::CaFile(ca_file);
    if let Some(t) = a.timeout {
        scrape.request_timeout = t;
    }
    if let Some(c) = a.concurrency {
        scrape.max_concurrency = c;
    }
    if let Some(s) = a.stagger {
        scrape.stagger = s;
    }
    let request_timeout = scrape.request_timeout;
    let store = Arc::new(SharedStore::new(a.resolution));
    let scraper = Scraper::new(scrape, source.clone(), store.clone()).expect("scraper");
    let provider = Arc::new(LabeledProvider::new(store.clone(), meta));

    let registry = Arc::new(Registry::new());
    registry.add_source(Arc::new(scraper.clone()));
    let live = scraper.clone();
    let ready_store = store.clone();
    let health = HealthChecks::default()
        .with_liveness("metric-collection-timely", move || live.check_liveness())
        .with_readiness("metric-storage-ready", move || store_has_data(&ready_store));
    let certs = tempfile::tempdir().expect("cert dir");
    let mut config = admin_config(certs.path().to_path_buf(), &a.token);
    config.health = health;
    config.registry = registry;
    let server = api::start(config, provider.clone())
        .await
        .expect("API server");
    if let Some(f) = &a.addr_file {
        std::fs::write(f, server.local_addr().to_string()).expect("writing the address");
    }
    eprintln!(
        "metrics harness: {} nodes ({} expected to succeed), API on https://{}",
        listed.len(),
        expected.len(),
        server.local_addr()
    );

    // Freshness watcher: what the API would serve, every 250 ms.
    let max_age_ms = Arc::new(AtomicU64::new(0));
    let missing_expected = Arc::new(Mutex::new(0u64));
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (provider, expected) = (provider.clone(), expected.clone());
        let (max_age_ms, missing, watching) = (
            max_age_ms.clone(),
            missing_expected.clone(),
            watching.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                if !watching.load(Ordering::Relaxed) {
                    continue;
                }
                let now = SystemTime::now();
                let nodes = provider.nodes();
                let mut seen = 0u64;
                for n in nodes.iter().filter(|n| expected.contains(&n.name)) {
                    seen += 1;
                    let age = now.duration_since(n.timestamp).unwrap_or_default();
                    max_age_ms.fetch_max(age.as_millis() as u64, Ordering::Relaxed);
                }
                let gap = expected.len() as u64 - seen.min(expected.len() as u64);
                let mut m = missing.lock().expect("lock");
                *m = (*m).max(gap);
            }
        })
    };

    let mut ticker = tokio::time::interval(a.resolution);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut period_start: Option<(Instant, f64)> = None;
    let mut last_line = String::new();
    for cycle in 1..=a.cycles {
        ticker.tick().await;
        let cpu0 = cpu_seconds();
        let (period_s, period_cpu) = match period_start {
            Some((t, c)) => (t.elapsed().as_secs_f64(), cpu0 - c),
            None => (0.0, 0.0),
        };
        period_start = Some((Instant::now(), cpu0));
        let started = Instant::now();
        let report = scraper.scrape_once().await;
        let wall = started.elapsed();
        let cpu = cpu_seconds() - cpu0;
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        let mut lost = 0u64;
        for n in &report.nodes {
            let kind = match &n.result {
                Ok(()) => "ok",
                Err(e) => e.kind(),
            };
            *kinds.entry(kind).or_default() += 1;
            if n.result.is_err() && expected.contains(&n.node) {
                lost += 1;
                if lost <= 3 {
                    eprintln!("expected-success node {} failed: {:?}", n.node, n.result);
                }
            }
        }
        let served = provider.nodes();
        let served_expected = served.iter().filter(|n| expected.contains(&n.name)).count();
        let pods = provider.pods().len();
        // From the second cycle on every expected node must be served.
        if cycle >= 2 {
            watching.store(true, Ordering::Relaxed);
        }
        if cycle == 2 {
            if let (Some(f), Some(p)) = (&a.sample_pod_file, store.pods().first()) {
                let _ = std::fs::write(f, format!("{}/{}", p.namespace, p.name));
            }
        }
        let stats = store.stats();
        let line = serde_json::json!({
            "cycle": cycle,
            "nodes": report.nodes.len(),
            "wall_ms": wall.as_secs_f64() * 1000.0,
            "cpu_s_cycle": cpu,
            "period_s": period_s,
            "cpu_s_period": period_cpu,
            "outcomes": kinds,
            "lost_expected": lost,
            "served_nodes": served.len(),
            "served_expected": served_expected,
            "expected": expected.len(),
            "served_pods": pods,
            "store_points": stats.points,
            "store_approx_kib": stats.approx_bytes / 1024,
            "rss_kib": status_kib("VmRSS:"),
            "hwm_kib": status_kib("VmHWM:"),
            "rss_start_kib": rss_start,
            "max_age_ms": max_age_ms.load(Ordering::Relaxed),
            "max_missing_expected": *missing_expected.lock().expect("lock"),
            "age_bound_ms": (a.resolution + request_timeout).as_millis() as u64,
            "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        })
        .to_string();
        println!("{line}");
        last_line = line;
    }
    watcher.abort();
    eprintln!("metrics harness done; last cycle: {last_line}");
    server.shutdown().await;
}
