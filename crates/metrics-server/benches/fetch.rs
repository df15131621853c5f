//! One kubelet scrape end to end, the counterpart of upstream's own
//! `BenchmarkKubeletClient_GetMetrics` (sigs.k8s.io/metrics-server/pkg/scraper/client/resource,
//! v0.8.0): GET `/metrics/resource` from a server in the same process on loopback that writes
//! the real 70-pod kind payload (the same text as upstream's `resourceResponse`), over a
//! kept-alive connection, then decode it. Upstream's benchmark speaks plain HTTP (httptest);
//! kaddons' kubelet client speaks only HTTPS, so this one includes TLS on both ends and is the
//! harder of the two. `scripts/bench-decode-vs-upstream.sh` runs both in one go.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use kaddons_metrics_server::decode::decode;
use kaddons_metrics_server::scrape::{KubeletClient, KubeletVerify, ScrapeConfig};
use kaddons_metrics_server::source::NodeTarget;
use kaddons_testkit::pki::Ca;

const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/kubelet-metrics-resource-kind-70pods.txt");

/// Serves FIXTURE to every request on 127.0.0.1 (an ephemeral port), like httptest.
async fn serve(tls: Arc<rustls::ServerConfig>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(FIXTURE),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ca = Ca::new("bench-kubelet-ca");
    let port = rt.block_on(serve(ca.server_config()));
    let mut config = ScrapeConfig::new(Duration::from_secs(15));
    config.verify = KubeletVerify::Insecure;
    let client = KubeletClient::new(&config).unwrap();
    let target = NodeTarget {
        name: "node1".into(),
        address: "127.0.0.1".into(),
        port,
        path: "/metrics/resource".into(),
        labels: Default::default(),
    };
    let now = SystemTime::now();
    let scrape = || async {
        let body = client.get(&target, None).await.unwrap();
        let batch = decode(&body, now).unwrap();
        assert_eq!(batch.pod_count(), 70);
        black_box(batch);
    };
    rt.block_on(scrape());
    assert_eq!(
        client.pooled_connections(),
        1,
        "the connection is kept alive"
    );

    let mut group = c.benchmark_group("fetch");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(FIXTURE.len() as u64));
    // block_on per iteration (a few microseconds), as upstream's loop calls getMetrics
    // synchronously.
    group.bench_function("get_and_decode_kind_70_pods", |b| {
        b.iter(|| rt.block_on(scrape()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
