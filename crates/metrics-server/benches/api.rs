//! The metrics API at scale: one request through the real HTTPS server (`api::start`, loopback,
//! kept-alive connection, bearer token) against a store holding 5,000 nodes × 30 pods
//! (150,000 pods, one container each: upstream's tested scale). Lists every pod as JSON and as
//! the Table kubectl asks for, lists every node, and gets one pod, so each figure includes the
//! store read, filtering, sorting, serialisation and TLS.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use kaddons_metrics_server::api::start;
use kaddons_metrics_server::decode::decode;
use kaddons_metrics_server::store::SharedStore;
use kaddons_model::usage::MetricsProvider;
use kaddons_testkit::auth::admin_config;

/// The tests' TLS helpers (test CA, kept-alive HTTPS connection), shared rather than copied.
use kaddons_testkit::pki;

const NODES: usize = 5000;
const PODS_PER_NODE: usize = 30;
const T0: u64 = 1_700_000_000_000;
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn payload(node: usize, ms: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let cpu = ms as f64 / 1000.0 * 0.05;
    for metric in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ] {
        for p in 0..PODS_PER_NODE {
            let value = if metric.starts_with("container_cpu") {
                cpu + p as f64
            } else {
                1.0e7 + p as f64
            };
            let _ = writeln!(
                out,
                "{metric}{{container=\"app\",namespace=\"team-{}\",pod=\"svc-{}-7f9c6b8d4-n{node}p{p}\"}} {value} {ms}",
                p % 20,
                p % 50
            );
        }
    }
    let _ = writeln!(out, "node_cpu_usage_seconds_total {} {ms}", cpu * 10.0);
    let _ = writeln!(out, "node_memory_working_set_bytes 2e9 {ms}");
    out
}

fn filled_store() -> Arc<SharedStore> {
    let store = Arc::new(SharedStore::new(Duration::from_secs(15)));
    for ms in [T0, T0 + 15_000] {
        let batches: Vec<(String, _)> = (0..NODES)
            .map(|n| {
                let b = decode(payload(n, ms).as_bytes(), UNIX_EPOCH).expect("payload decodes");
                (format!("node-{n:05}"), b)
            })
            .collect();
        store.store(batches.iter().map(|(n, b)| (n.as_str(), b)));
    }
    assert_eq!(store.pods().len(), NODES * PODS_PER_NODE);
    store
}

struct Client {
    sender: SendRequest<Empty<Bytes>>,
    host: String,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, ca_pem: &str) -> Client {
        let sender = pki::connect(addr, ca_pem).await;
        Client {
            sender,
            host: addr.to_string(),
        }
    }

    /// GETs `path` and returns the body length (the body is read completely).
    async fn get(&mut self, path: &str, accept: &str) -> usize {
        self.sender.ready().await.unwrap();
        let req = hyper::Request::builder()
            .uri(path)
            .header("host", &self.host)
            .header("authorization", "Bearer bench-token")
            .header("accept", accept)
            .body(Empty::new())
            .unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.into_body().collect().await.unwrap().to_bytes().len()
    }
}

fn bench(c: &mut Criterion) {
    kaddons_metrics_server::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = filled_store();
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = rt.block_on(async {
        let cfg = admin_config(dir.path().to_path_buf(), "bench-token");
        let server = start(cfg, store.clone()).await.unwrap();
        let client = Client::connect(server.local_addr(), server.serving_ca_pem()).await;
        (server, client)
    });

    let pods = "/apis/metrics.k8s.io/v1beta1/pods";
    let one = "/apis/metrics.k8s.io/v1beta1/namespaces/team-7/pods/svc-7-7f9c6b8d4-n2500p7";
    let nodes = "/apis/metrics.k8s.io/v1beta1/nodes";
    for (path, accept) in [
        (pods, "application/json"),
        (pods, TABLE),
        (one, "application/json"),
    ] {
        let len = rt.block_on(client.get(path, accept));
        eprintln!("{path} ({accept}): {len} bytes");
    }

    let mut group = c.benchmark_group("api_150k_pods");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("list_pods_json", |b| {
        b.iter(|| rt.block_on(client.get(pods, "application/json")))
    });
    group.bench_function("list_pods_table", |b| {
        b.iter(|| rt.block_on(client.get(pods, TABLE)))
    });
    group.bench_function("list_nodes_json", |b| {
        b.iter(|| rt.block_on(client.get(nodes, "application/json")))
    });
    group.bench_function("get_one_pod_json", |b| {
        b.iter(|| rt.block_on(client.get(one, "application/json")))
    });
    group.finish();

    // The provider call behind one GET of a pod, without HTTP: before (a full listing, then a
    // scan, as the handler did) and after (`MetricsProvider::pod`, a hash lookup).
    let mut group = c.benchmark_group("provider_150k_pods");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let (ns, name) = ("team-7", "svc-7-7f9c6b8d4-n2500p7");
    group.bench_function("get_one_pod_by_listing", |b| {
        b.iter(|| {
            store
                .pods()
                .into_iter()
                .find(|p| p.namespace == ns && p.name == name)
                .expect("pod")
        })
    });
    group.bench_function("get_one_pod_by_lookup", |b| {
        b.iter(|| store.pod(ns, name).expect("pod"))
    });
    group.finish();
    rt.block_on(server.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
