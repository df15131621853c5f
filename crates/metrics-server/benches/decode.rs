//! Decoding cost of one kubelet `/metrics/resource` payload: the real 70-pod kind payload and
//! a synthetic 110-pod one (the kubelet's default pod limit) with start times.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kaddons_metrics_server::decode::decode;

const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/kubelet-metrics-resource-kind-70pods.txt");

/// A payload shaped like the kubelet's: 110 pods with 1-3 containers each, grouped by series.
fn synthetic(pods: usize) -> String {
    use std::fmt::Write;
    let ts = 1_633_253_812_125u64;
    let containers: Vec<(String, String, String)> = (0..pods)
        .flat_map(|p| {
            let ns = format!("namespace-{}", p % 7);
            let pod = format!("workload-{p}-7f9c6b8d4-{:05x}", p * 7919);
            (0..(p % 3 + 1)).map(move |c| (format!("container-{c}"), ns.clone(), pod.clone()))
        })
        .collect();
    let mut out = String::new();
    let series = [
        ("container_cpu_usage_seconds_total", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("container_start_time_seconds", "gauge"),
    ];
    for (i, (metric, kind)) in series.iter().enumerate() {
        let _ = writeln!(
            out,
            "# HELP {metric} [ALPHA] synthetic\n# TYPE {metric} {kind}"
        );
        for (n, (c, ns, pod)) in containers.iter().enumerate() {
            let value = match i {
                0 => format!("{}.{:06}", n % 90 + 1, n * 37 % 1_000_000),
                1 => format!("{}e+07", 1.0 + (n % 50) as f64 / 10.0),
                _ => format!("1.6332527{:02}e+09", n % 100),
            };
            let _ = writeln!(
                out,
                "{metric}{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {value} {}",
                ts + n as u64
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP node_cpu_usage_seconds_total x\n# TYPE node_cpu_usage_seconds_total counter"
    );
    let _ = writeln!(out, "node_cpu_usage_seconds_total 357.35491 {ts}");
    let _ = writeln!(
        out,
        "# HELP node_memory_working_set_bytes x\n# TYPE node_memory_working_set_bytes gauge"
    );
    let _ = writeln!(out, "node_memory_working_set_bytes 1.616273408e+09 {ts}");
    for metric in [
        "pod_cpu_usage_seconds_total",
        "pod_memory_working_set_bytes",
    ] {
        let _ = writeln!(out, "# HELP {metric} x\n# TYPE {metric} gauge");
        for p in 0..pods {
            let _ = writeln!(
                out,
                "{metric}{{namespace=\"namespace-{}\",pod=\"workload-{p}-7f9c6b8d4-{:05x}\"}} 1.5e+07 {ts}",
                p % 7,
                p * 7919
            );
        }
    }
    out.push_str("# HELP scrape_error x\n# TYPE scrape_error gauge\nscrape_error 0\n");
    out
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    let mut group = c.benchmark_group("decode");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Bytes(FIXTURE.len() as u64));
    group.bench_function("kind_70_pods", |b| {
        b.iter(|| decode(black_box(FIXTURE), now))
    });

    let payload = synthetic(110);
    match decode(payload.as_bytes(), now) {
        Ok(batch) if batch.pod_count() == 110 && batch.node.is_some() => {}
        other => panic!("synthetic payload does not decode as expected: {other:?}"),
    }
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("synthetic_110_pods", |b| {
        b.iter(|| decode(black_box(payload.as_bytes()), now))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
