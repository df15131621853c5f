//! Upstream metrics-server v0.8.0 and kaddons-metrics-server, each in its own run, with
//! identical flags, against the same real kube-apiserver and the same simulated kubelets (the
//! fleet simulator in a network namespace, Node objects in the API): memory (VmRSS, VmHWM) and
//! CPU per 15 s period, per node; time from start to the first complete answer; age of the
//! oldest point; latency of listing every node and every pod and of getting one pod, asked of
//! the server directly (curl, admin client certificate, median of 5).
//!
//!   cargo run --release -p kaddons-testkit --example side_by_side -- NODES [PODS] [PERIODS]
//!
//! Needs root (network namespace) and the Go-built Kubernetes and upstream binaries (cached
//! by the test kit). scripts/bench-side-by-side.sh runs the sizes of BENCHMARKS.md. No Pod
//! objects are created (30,000 of them take longer to create than the runs last): both servers
//! still scrape and store every pod the kubelets report, but their pod informers hold nothing,
//! and a pod listing answers only pods that have an object. So the memory of a pod informer
//! over real Pod objects is not in these figures, for either server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kaddons_testkit::aggregation::{self, Implementation, Kubelets, MetricsServer};
use kaddons_testkit::cluster::{ControlPlane, FrontProxy, Options};
use kaddons_testkit::fleet::FleetConfig;

const RESOLUTION_S: u64 = 15;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("argument {i}: a number, not {a:?}"))
        })
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) in KiB and utime+stime in clock ticks of `pid`.
fn sample(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    (kib("VmRSS:"), kib("VmHWM:"), ticks)
}

/// GET `path` from the server as admin: (HTTP status, body, seconds).
fn get(cp: &ControlPlane, port: u16, path: &str) -> (u16, String, f64) {
    let out = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "60",
            "-w",
            "\n%{http_code} %{time_total}",
            "--cert",
        ])
        .arg(&cp.pki.admin_crt)
        .arg("--key")
        .arg(&cp.pki.admin_key)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", ""));
    let mut t = tail.split_whitespace();
    let code = t.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let secs = t.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    (code, body.to_string(), secs)
}

fn items(body: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Seconds since the epoch of an RFC 3339 timestamp (`2026-12-03T13:00:00Z`).
fn epoch(ts: &str) -> Option<f64> {
    ts.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

fn run(
    cp: &ControlPlane,
    kubeconfig: &Path,
    implementation: Implementation,
    nodes: usize,
    periods: u64,
) {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let started = Instant::now();
    let server = MetricsServer::start(implementation, kubeconfig, &format!("{RESOLUTION_S}s"));
    let pid = server.pid().expect("the server runs");
    // First complete answer: every node listed.
    let first = loop {
        let (code, body, _) = get(cp, server.port, "/apis/metrics.k8s.io/v1beta1/nodes");
        if code == 200 && items(&body).len() >= nodes {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{} never listed {nodes} nodes:\n{}",
            implementation.as_str(),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // One more period to settle, then CPU and RSS per period.
    std::thread::sleep(Duration::from_secs(RESOLUTION_S));
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    let (_, _, mut last) = sample(pid);
    for _ in 0..periods {
        std::thread::sleep(Duration::from_secs(RESOLUTION_S));
        let (r, _, t) = sample(pid);
        cpu.push((t - last) as f64 / ticks_per_s / RESOLUTION_S as f64);
        rss.push(r as f64);
        last = t;
    }
    let (_, hwm_before_load, _) = sample(pid);
    // Freshness: the oldest node point's age now.
    let (_, body, _) = get(cp, server.port, "/apis/metrics.k8s.io/v1beta1/nodes");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let oldest = items(&body)
        .iter()
        .filter_map(|n| n["timestamp"].as_str().and_then(epoch))
        .fold(f64::NAN, f64::min);
    // Latency, median of 5.
    let lat = |path: &str| {
        median(
            (0..5)
                .map(|_| get(cp, server.port, path).2 * 1000.0)
                .collect(),
        )
    };
    let list_nodes = lat("/apis/metrics.k8s.io/v1beta1/nodes");
    let (_, pods_body, _) = get(cp, server.port, "/apis/metrics.k8s.io/v1beta1/pods");
    let all_pods = items(&pods_body);
    let one = all_pods
        .first()
        .map(|p| {
            format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    // Without Pod objects a pod listing is empty: its latency says nothing.
    let pod_latency = if all_pods.is_empty() {
        "n/a | n/a".to_string()
    } else {
        format!(
            "{:.1} ms | {:.1} ms",
            lat("/apis/metrics.k8s.io/v1beta1/pods"),
            lat(&one)
        )
    };
    let (rss_now, hwm, _) = sample(pid);
    let cpu_m = median(cpu.clone()) * 1000.0;
    let rss_mib = median(rss.clone()) / 1024.0;
    println!(
        "| {} | {nodes} | {} | {:.1} s | {:.0} m | {:.3} m | {:.1} MiB | {:.0} KiB | {:.1} MiB ({:.1} before load) | {:.0} s | {:.1} ms | {pod_latency} |",
        implementation.as_str(),
        all_pods.len(),
        first.as_secs_f64(),
        cpu_m,
        cpu_m / nodes as f64,
        rss_mib,
        rss_mib * 1024.0 / nodes as f64,
        hwm as f64 / 1024.0,
        hwm_before_load as f64 / 1024.0,
        now - oldest,
        list_nodes,
    );
    eprintln!(
        "{}: cpu per period {cpu:?} cores, rss per period {rss:?} KiB, rss at the end {rss_now} KiB",
        implementation.as_str()
    );
}

fn main() {
    let nodes = arg(1, 100);
    let pods = arg(2, 30);
    let periods = arg(3, 4) as u64;
    aggregation::Netns::remove_stale();
    let dir = std::env::temp_dir().join(format!("kaddons-side-by-side-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a work dir");
    let Some(cp) = ControlPlane::own(Options {
        controller_manager: false,
        front_proxy: FrontProxy::Generated,
        ..Options::default()
    }) else {
        eprintln!("no control plane (Go missing?)");
        std::process::exit(1);
    };
    let t = Instant::now();
    let kubelets = Kubelets::start(FleetConfig::new(nodes, pods)).expect("simulated kubelets");
    aggregation::create_nodes(&cp, &kubelets);
    let kubeconfig = aggregation::service_account_kubeconfig(&cp, &dir);
    eprintln!(
        "{nodes} nodes x {pods} pods: fleet and Node objects ready in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    for implementation in Implementation::ALL {
        run(&cp, &kubeconfig, implementation, nodes, periods);
    }
    drop(kubelets);
    let _ = std::fs::remove_dir_all(&dir);
}
