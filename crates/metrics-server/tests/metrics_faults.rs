//! Fault isolation at small scale over real sockets: 50 simulated kubelets
//! (tests/kubelet_fleet.rs) with one node in each fault mode (slow, hanging, HTTP 500,
//! garbage, truncated, huge body, bad certificate), scraped by the library's `Scraper` and
//! served by `api::start`. Checks correctness only: every healthy and slow node is scraped and
//! served every cycle with a new sample, each faulty node fails with its own error kind, huge
//! bodies are cut off at the cap, the API answers while a cycle waits on a hanging kubelet. The only time
//! limits are
//! hang bounds (a cycle must end near the request timeout). Figures at 1,000 nodes come from
//! scripts/bench-scale.sh.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kaddons_metrics_server::api::start;
use kaddons_metrics_server::scrape::{KubeletVerify, ScrapeConfig, Scraper};
use kaddons_metrics_server::source::{LabeledProvider, NodeTarget, PodMeta, StaticSource};
use kaddons_metrics_server::store::SharedStore;
use kaddons_model::usage::MetricsProvider;
use kaddons_testkit::auth::admin_config;

use kaddons_testkit::fleet;

use fleet::Mode;

const NODES: usize = 50;
const PODS: usize = 12;
const TIMEOUT: Duration = Duration::from_secs(1);
const BODY_CAP: usize = 1 << 20;
const HUGE: u64 = 16 * 1000 * 1000;

/// Metadata that knows every pod as Running.
struct AllRunning;

impl kaddons_metrics_server::source::ObjectMetadata for AllRunning {
    fn node_labels(&self, _name: &str) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::new())
    }
    fn pod(&self, _namespace: &str, _name: &str) -> Option<PodMeta> {
        Some(PodMeta {
            labels: BTreeMap::new(),
            running: true,
        })
    }
}

fn expected_kind(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Healthy | Mode::Slow => None,
        Mode::Hang => Some("timeout"),
        Mode::Status500 => Some("http_status"),
        Mode::Garbage => Some("decode"),
        Mode::Truncated => Some("http"),
        Mode::Huge => Some("too_large"),
        Mode::BadCert => Some("tls"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_per_fault_mode_affects_only_itself() {
    kaddons_metrics_server::install_crypto_provider();
    let mut fc = fleet::FleetConfig::new(NODES, PODS);
    fc.faulty_per_mode = 1;
    fc.slow_delay = Duration::from_millis(300);
    fc.huge_bytes = HUGE;
    // No pod churn or restarts within the test: every pod keeps its name and start time.
    fc.churn_period = Duration::from_secs(10_000_000);
    let fleet = fleet::start(fc).await.unwrap();
    let modes: HashMap<String, Mode> = fleet
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.mode))
        .collect();
    for m in Mode::FAULTS {
        assert_eq!(modes.values().filter(|x| **x == m).count(), 1, "{m:?}");
    }
    let expected: Vec<&str> = fleet
        .nodes
        .iter()
        .filter(|n| n.mode.should_succeed())
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(expected.len(), NODES - 6);

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &fleet.ca_pem).unwrap();
    // The node list round-trips through the file format the scale harness reads.
    let list = dir.path().join("nodes.tsv");
    fleet.write_node_list(&list, &ca_file).unwrap();
    let listed = fleet::read_node_list(&std::fs::read_to_string(&list).unwrap()).unwrap();
    assert_eq!(listed.len(), NODES);
    let targets: Vec<NodeTarget> = listed.iter().map(fleet::ListedNode::target).collect();
    let source = Arc::new(StaticSource::new(targets));
    let store = Arc::new(SharedStore::new(Duration::from_secs(15)));
    let mut config = ScrapeConfig::new(Duration::from_secs(15));
    config.stagger = Duration::ZERO;
    config.request_timeout = TIMEOUT;
    config.max_body_bytes = BODY_CAP;
    config.verify = KubeletVerify::CaFile(ca_file.clone());
    let scraper = Scraper::new(config, source, store.clone()).unwrap();

    let cfg = admin_config(dir.path().join("certs"), "t");
    let provider = Arc::new(LabeledProvider::new(store.clone(), Arc::new(AllRunning)));
    let server = start(cfg, provider).await.unwrap();
    let (addr, ca) = (server.local_addr(), server.serving_ca_pem().to_string());

    let mut last_seen: HashMap<String, SystemTime> = HashMap::new();
    for cycle in 0..3 {
        let started = Instant::now();
        let scraping = tokio::spawn({
            let scraper = scraper.clone();
            async move { scraper.scrape_once().await }
        });
        // While the cycle waits on the hanging kubelet, the API answers.
        if cycle > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let asked = Instant::now();
            let (code, body) = kaddons_testkit::pki::https_get(
                addr,
                &ca,
                "/apis/metrics.k8s.io/v1beta1/nodes",
                "t",
            )
            .await;
            assert_eq!(code, 200);
            assert!(asked.elapsed() < TIMEOUT, "API blocked by the scrape cycle");
            let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
            // Rates exist once two cycles are stored.
            let want = if cycle > 1 { expected.len() } else { 0 };
            assert_eq!(
                list["items"].as_array().unwrap().len(),
                want,
                "cycle {cycle}"
            );
            assert!(
                !scraping.is_finished(),
                "the hanging node keeps the cycle open"
            );
        }
        let report = scraping.await.unwrap();
        let took = started.elapsed();
        // Hang bound: the cycle ends soon after the request timeout.
        assert!(took < TIMEOUT * 4, "cycle {cycle} took {took:?}");
        assert_eq!(report.nodes.len(), NODES);
        for n in &report.nodes {
            let mode = modes[&n.node];
            match (expected_kind(mode), &n.result) {
                (None, Ok(())) => {}
                (Some(kind), Err(e)) => assert_eq!(e.kind(), kind, "{} ({mode:?}): {e}", n.node),
                (want, got) => panic!("{} ({mode:?}): wanted {want:?}, got {got:?}", n.node),
            }
        }
        // Every expected node is served from the second cycle on, with a newer sample each
        // cycle (no point lost), and every one of its pods is served.
        let nodes = store.nodes();
        let pods = store.pods();
        if cycle == 0 {
            assert!(nodes.is_empty(), "one sample has no rate");
        } else {
            let mut served: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            served.sort_unstable();
            assert_eq!(served, expected, "cycle {cycle}");
            for n in &nodes {
                if let Some(prev) = last_seen.insert(n.name.clone(), n.timestamp) {
                    assert!(n.timestamp > prev, "{} did not advance", n.name);
                }
                assert!(n.cpu_nanocores > 0 && n.memory_bytes > 0, "{n:?}");
            }
            assert_eq!(pods.len(), expected.len() * PODS, "cycle {cycle}");
            assert!(pods
                .iter()
                .all(|p| p.containers.iter().all(|c| c.cpu_nanocores > 0)));
        }
        // Rates need a window of at least a second between samples.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // The huge kubelet was cut off near the cap, not read to the end (3 × 16 MB).
    let sent = fleet.counters.bytes.load(Ordering::Relaxed);
    let healthy_bytes = 3 * expected.len() as u64 * 20_000;
    assert!(
        sent < healthy_bytes + 3 * (BODY_CAP as u64 + (8 << 20)),
        "fleet sent {sent} bytes"
    );

    server.shutdown().await;
}

/// More hung kubelets than request slots (black-holed or powered-off nodes are common in real
/// clusters): each would hold its slot until its timeout, the whole cycle budget, and every
/// healthy node behind them would miss the cycle. A request still waiting after a tenth of its
/// timeout gives its slot to the next node, so the healthy nodes are all scraped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_kubelets_outnumbering_the_request_slots_do_not_starve_the_rest() {
    kaddons_metrics_server::install_crypto_provider();
    const SLOTS: usize = 2;
    let mut fc = fleet::FleetConfig::new(12, 4);
    // The first names in scrape order: they take the slots before any healthy node.
    for i in 0..2 * SLOTS {
        fc.overrides.insert(i, Mode::Hang);
    }
    let fleet = fleet::start(fc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &fleet.ca_pem).unwrap();
    let targets: Vec<NodeTarget> = fleet
        .nodes
        .iter()
        .map(|n| NodeTarget {
            name: n.name.clone(),
            address: n.addr.ip().to_string(),
            port: n.addr.port(),
            path: "/metrics/resource".into(),
            labels: BTreeMap::new(),
        })
        .collect();
    let store = Arc::new(SharedStore::new(Duration::from_secs(15)));
    let mut config = ScrapeConfig::new(Duration::from_secs(15));
    config.stagger = Duration::ZERO;
    config.max_concurrency = SLOTS;
    config.request_timeout = TIMEOUT;
    config.verify = KubeletVerify::CaFile(ca_file);
    let scraper = Scraper::new(config, Arc::new(StaticSource::new(targets)), store).unwrap();

    let report = scraper.scrape_once().await;
    let mut results: Vec<(Mode, &str)> = report
        .nodes
        .iter()
        .map(|n| {
            let mode = fleet.nodes.iter().find(|f| f.name == n.node).unwrap().mode;
            (mode, n.result.as_ref().map_or_else(|e| e.kind(), |()| "ok"))
        })
        .collect();
    results.sort_unstable();
    let mut want = vec![(Mode::Healthy, "ok"); 12 - 2 * SLOTS];
    want.extend(vec![(Mode::Hang, "timeout"); 2 * SLOTS]);
    assert_eq!(results, want);
}
