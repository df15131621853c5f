//! Upstream metrics-server v0.8.0 and kaddons-metrics-server, each in its own run, with
//! identical flags (`MetricsServer::common_args`, `--metric-resolution=15s`), against the same
//! real kube-apiserver and the same simulated kubelets.
//!
//!   cargo run --release -p kaddons-testkit --example side_by_side -- NODES [PODS] [PERIODS]
//!
//! Setup, once per size: a control plane (etcd, kube-apiserver with a front proxy, no
//! kube-controller-manager), the fleet simulator in a network namespace (NODES kubelets × PODS
//! pods, HTTPS; pod names stable for the whole run, so every pod a kubelet reports has a Pod
//! object: no pod churn and no container restarts, unlike the earlier runs in BENCHMARKS.md,
//! whose fleet replaced one pod in ten every 2 minutes), a Node object per kubelet and a Pod object per simulated pod with its status
//! (written by the test kit's bulk writer, `aggregation::create_nodes`/`create_pods`), so both
//! servers' node and pod informers hold real objects. With NODES ≥ 3, node NODES/3 hangs
//! (accepts TCP, never answers) and node 2·NODES/3 answers HTML instead of metrics; `FAULTS=0`
//! turns both off. A ServiceAccount `bench-reader` bound to `system:aggregated-metrics-reader`
//! gives wrk a bearer token.
//!
//! Then for each server, one after the other, the same steps (`ROUNDS=n`: n runs of each,
//! alternating upstream, kaddons, kaddons, upstream, ...; the table then has a row per run, a
//! row per server pooling its runs (the median of all their periods' CPU and RSS, the worst
//! run's oldest point and VmHWM, the median of the rest), and the ratios of the pooled rows):
//! - first complete answer: seconds from the process start until a node listing (GET
//!   `/apis/metrics.k8s.io/v1beta1/nodes` to the server directly, curl with the admin client
//!   certificate, every 250 ms) names every healthy node;
//! - before the start, a wait (at most 2 minutes) for a quiet machine: under 0.15 cores busy
//!   over 5 s (`/proc/stat`), so no run starts while the previous run's load is still being
//!   worked off;
//! - one more 15 s period to settle, then PERIODS periods of 15 s: CPU is utime+stime of
//!   `/proc/PID/stat` per period (median, and that divided by NODES), beside the rest of the
//!   machine's busy time and the hypervisor's steal in the same periods (`/proc/stat`; the
//!   fleet and kube-apiserver answer the server, so the rest is never zero); RSS is VmRSS at
//!   the end of each period (median, and per node);
//! - scrape cycle wall time: mean over those periods of the server's own cycle histogram on its
//!   `/metrics` (delta of `_sum` / delta of `_count`; upstream's
//!   `metrics_server_manager_tick_duration_seconds`, ours
//!   `metrics_server_scrape_cycle_duration_seconds`), and the smallest bucket bound that holds
//!   every cycle of those periods;
//! - VmHWM before any API load; then one node listing: nodes listed (the two faulty ones must
//!   not be), oldest point = now minus the oldest `timestamp` among listed nodes; one pod
//!   listing: pods listed, and a Running pod for the get;
//! - wrk (Debian's, `--latency`, one thread, 10 s each, `WRK_SECONDS` overrides; bearer token
//!   of `bench-reader`): get one pod with 4 connections, list every pod and list every node
//!   with 2 each: Requests/sec and the 50% and 99% latencies, first to the server directly
//!   (`https://127.0.0.1:PORT`), then through kube-apiserver's aggregator after registering the
//!   server as the APIService `v1beta1.metrics.k8s.io` (Service of type ExternalName →
//!   127.0.0.1:PORT; Available=True awaited); unregistered afterwards;
//! - VmHWM after that load.
//!
//! On stderr too: the node with the oldest point, and where each run's server log is kept
//! (`/tmp/side-by-side-NODES-SERVER-PID.log`; upstream logs each failed scrape with its node
//! and error).
//!
//! Output: per size, a markdown table on stdout (one row per server, then upstream / kaddons
//! ratios) and one JSON line per server on stderr (`json: {...}`), also appended to the file
//! named by `SIDE_BY_SIDE_JSON` when set. Needs root (network namespace), wrk, curl, and the
//! Go-built Kubernetes and upstream binaries (cached by the test kit). Ours is the release
//! build beside this example, or `KADDONS_METRICS_SERVER_BIN`; the measured process must be the
//! server itself (a warning says when `/proc/PID/exe` is a wrapper's). `ONLY=upstream` or
//! `ONLY=builtin` runs one server, for development runs.
//! scripts/bench-side-by-side.sh runs the sizes of BENCHMARKS.md. Every address used is on
//! loopback or the namespace's veth pair.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kaddons_testkit::aggregation::{
    self, Implementation, Kubelets, MetricsServer, Phase, STABLE_CHURN,
};
use kaddons_testkit::cluster::{ControlPlane, FrontProxy, Options};
use kaddons_testkit::fleet::{FleetConfig, Mode};

const RESOLUTION_S: u64 = 15;
const NODES_PATH: &str = "/apis/metrics.k8s.io/v1beta1/nodes";
const PODS_PATH: &str = "/apis/metrics.k8s.io/v1beta1/pods";

/// What wrk asks, with how many connections.
const LOADS: [(&str, u32); 3] = [("get one pod", 4), ("list pods", 2), ("list nodes", 2)];
/// Where wrk asks it.
const VIAS: [&str; 2] = ["direct", "aggregator"];

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("argument {i}: a number, not {a:?}"))
        })
        .unwrap_or(default)
}

/// Clock ticks the whole machine spent busy (user, nice, system, irq, softirq; `/proc/stat`),
/// and those stolen by the hypervisor.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// Waits (at most 2 minutes) until the machine is quiet: under 0.15 cores busy over 5 s, so a
/// run never starts while the previous run's wrk load is still being worked off (by
/// kube-apiserver, say). In the runs of 2026-12-04 the machine was quiet within the first 5 s
/// every time. Returns the seconds waited and the last 5 s window's busy cores.
fn wait_until_quiet(ticks_per_s: f64) -> (f64, f64) {
    let started = Instant::now();
    loop {
        let (before, _) = machine_ticks();
        std::thread::sleep(Duration::from_secs(5));
        let (after, _) = machine_ticks();
        let busy = (after - before) as f64 / ticks_per_s / 5.0;
        if busy < 0.15 || started.elapsed() > Duration::from_secs(120) {
            return (started.elapsed().as_secs_f64(), busy);
        }
    }
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

fn name_of(item: &serde_json::Value) -> &str {
    item["metadata"]["name"].as_str().unwrap_or("")
}

/// The median; of an even count, the mean of the two middle values (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp (`2026-12-03T13:00:00Z`).
fn epoch(ts: &str) -> Option<f64> {
    ts.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The scrape cycle histogram of a server's own /metrics
// ---------------------------------------------------------------------------------------------

/// The histogram each server keeps of its scrape cycles (one cycle over every node).
fn cycle_histogram_name(implementation: Implementation) -> &'static str {
    match implementation {
        Implementation::Upstream => "metrics_server_manager_tick_duration_seconds",
        Implementation::Builtin => "metrics_server_scrape_cycle_duration_seconds",
    }
}

/// A Prometheus histogram, summed over its label sets.
#[derive(Debug, Default, Clone)]
struct Histogram {
    sum: f64,
    count: f64,
    /// (upper bound, cumulative count), by bound.
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// `name`'s series in a Prometheus text exposition.
    fn parse(text: &str, name: &str) -> Option<Histogram> {
        let mut h = Histogram::default();
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let mut seen = false;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            // `_sum 1.5`, `_count{a="b"} 3`, `_bucket{le="0.5"} 2`: the value follows the labels.
            let (series, labels_and_value) = match rest.find(['{', ' ']) {
                Some(i) => rest.split_at(i),
                None => continue,
            };
            let value_text = match labels_and_value.rfind('}') {
                Some(i) => &labels_and_value[i + 1..],
                None => labels_and_value,
            };
            let Some(value) = value_text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            match series {
                "_sum" => h.sum += value,
                "_count" => h.count += value,
                "_bucket" => {
                    let le = labels_and_value
                        .split("le=\"")
                        .nth(1)
                        .and_then(|l| l.split('"').next())
                        .map(|l| {
                            if l == "+Inf" {
                                f64::INFINITY
                            } else {
                                l.parse().unwrap_or(f64::NAN)
                            }
                        })
                        .unwrap_or(f64::NAN);
                    let e = buckets.entry(le.to_bits()).or_insert((le, 0.0));
                    e.1 += value;
                }
                _ => continue,
            }
            seen = true;
        }
        h.buckets = buckets.into_values().collect();
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        seen.then_some(h)
    }

    /// (mean seconds, smallest bound holding every cycle) of the cycles between `before` and
    /// `self`; `None` when no cycle ended in between.
    fn since(&self, before: &Histogram) -> Option<(f64, f64)> {
        let count = self.count - before.count;
        if count <= 0.0 {
            return None;
        }
        let mean = (self.sum - before.sum) / count;
        let max = self
            .buckets
            .iter()
            .find(|(le, c)| {
                let b = before
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |(_, c)| *c);
                c - b >= count
            })
            .map_or(f64::INFINITY, |(le, _)| *le);
        Some((mean, max))
    }
}

fn cycle_histogram(cp: &ControlPlane, server: &MetricsServer) -> Option<Histogram> {
    let (code, body, _) = get(cp, server.port, "/metrics");
    let name = cycle_histogram_name(server.implementation);
    let h = (code == 200)
        .then(|| Histogram::parse(&body, name))
        .flatten();
    if h.is_none() {
        eprintln!(
            "{}: no {name} on /metrics (HTTP {code})",
            server.implementation.as_str()
        );
    }
    h
}

// ---------------------------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------------------------

/// What one wrk run measured.
#[derive(Debug, Default, Clone)]
struct Wrk {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// Answers that were not 2xx/3xx (a fast 403 would make a fine-looking figure).
    non_2xx: u64,
    /// wrk's socket errors line, when it printed one.
    socket_errors: String,
}

impl Wrk {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests_per_s": self.requests_per_s, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
            "requests": self.requests, "non_2xx": self.non_2xx, "socket_errors": self.socket_errors,
        })
    }

    fn cell(&self) -> String {
        let mut s = format!(
            "{:.0} req/s, {} / {} ms",
            self.requests_per_s,
            ms(self.p50_ms),
            ms(self.p99_ms)
        );
        if self.non_2xx > 0 {
            s.push_str(&format!(" ({} non-2xx)", self.non_2xx));
        }
        if !self.socket_errors.is_empty() {
            s.push_str(&format!(" ({})", self.socket_errors));
        }
        s
    }
}

/// Milliseconds with the precision that matters at their size.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// wrk's duration (`545.00us`, `12.34ms`, `1.20s`, `1.50m`) in milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines().map(str::trim) {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("50%") => w.p50_ms = f.next().and_then(wrk_ms).unwrap_or(f64::NAN),
            Some("99%") => w.p99_ms = f.next().and_then(wrk_ms).unwrap_or(f64::NAN),
            Some("Requests/sec:") => {
                w.requests_per_s = f.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
            }
            _ => {}
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = n.trim().parse().unwrap_or(0);
        }
        if let Some(e) = line.strip_prefix("Socket errors:") {
            w.socket_errors = format!("socket errors:{e}");
        }
        if line.contains(" requests in ") {
            w.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    w
}

/// Fails clearly when wrk is missing (the script installs Debian's).
fn require_wrk() {
    if let Err(e) = Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        eprintln!("wrk is needed ({e}): apt-get install -y wrk");
        std::process::exit(1);
    }
}

/// wrk against `url` (loopback) with `connections` for `secs`, bearer `token`. Bounded: wrk
/// stops itself after `secs`; a watchdog kills it a minute later if it has not.
fn wrk(url: &str, token: &str, connections: u32, secs: u64) -> Wrk {
    assert!(
        url.starts_with("https://127.0.0.1:"),
        "wrk only on loopback, not {url}"
    );
    let mut child = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
        // A list of 150,000 pods takes seconds: wrk's default 2 s timeout would drop them.
        .args(["--timeout", "60s", "--latency"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Accept: application/json"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running wrk");
    let deadline = Instant::now() + Duration::from_secs(secs + 60);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            eprintln!("wrk {url} outlived {secs} s by a minute: killed");
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("wrk's output");
    let text = String::from_utf8_lossy(&out.stdout);
    let w = parse_wrk(&text);
    if w.requests == 0 || w.non_2xx > 0 {
        eprintln!("wrk {url}:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    }
    w
}

/// A ServiceAccount `bench-reader` allowed to read metrics.k8s.io (the ClusterRole comes with
/// [`aggregation::RBAC_YAML`]), and a token of it: wrk cannot send client certificates.
fn bench_token(cp: &ControlPlane) -> String {
    let yaml = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: bench-reader, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:aggregated-metrics-reader}
subjects:
- {kind: ServiceAccount, name: bench-reader, namespace: kube-system}
"#;
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "creating bench-reader: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&[
        "create",
        "token",
        "bench-reader",
        "-n",
        "kube-system",
        "--duration=24h",
    ])
    .trim()
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// One server's run
// ---------------------------------------------------------------------------------------------

/// Everything measured of one server.
#[derive(Clone)]
struct Figures {
    implementation: Implementation,
    /// Which run of this server (1-based; `ROUNDS`), 0 for figures pooled over runs.
    run: usize,
    nodes: usize,
    healthy: usize,
    nodes_listed: usize,
    /// Faulty nodes that were listed all the same (must be none).
    faulty_listed: Vec<String>,
    pod_objects: usize,
    pods_listed: usize,
    first_s: f64,
    /// (mean, smallest bucket bound holding every cycle), seconds.
    cycle: Option<(f64, f64)>,
    cpu_cores: Vec<f64>,
    /// Cores busy with anything but the server during each period, and stolen cores.
    others_cores: Vec<f64>,
    steal_cores: Vec<f64>,
    /// Seconds waited for a quiet machine before the start, and its busy cores then.
    quiet_wait: (f64, f64),
    rss_kib: Vec<f64>,
    hwm_before_load_kib: u64,
    hwm_kib: u64,
    rss_end_kib: u64,
    /// What the measured process runs (`/proc/PID/exe`): the server's binary, unless a
    /// wrapper ran.
    process: String,
    oldest_s: f64,
    /// By (what, via).
    wrk: BTreeMap<(&'static str, &'static str), Wrk>,
    load_avg: String,
}

impl Figures {
    fn cpu_m(&self) -> f64 {
        median(self.cpu_cores.clone()) * 1000.0
    }

    fn rss_kib_median(&self) -> f64 {
        median(self.rss_kib.clone())
    }

    fn label(&self) -> &'static str {
        match self.implementation {
            Implementation::Upstream => "upstream",
            Implementation::Builtin => "kaddons",
        }
    }

    /// The figures of several runs of one server as one: every 15 s period's CPU and RSS
    /// together (their medians are the pooled medians); the worst run's oldest point, VmHWM and
    /// cycle bucket; the median of each other figure. `None` without runs.
    fn pooled(runs: &[&Figures]) -> Option<Figures> {
        let first = *runs.first()?;
        let med = |f: &dyn Fn(&Figures) -> f64| median(runs.iter().map(|r| f(r)).collect());
        let mut wrk = BTreeMap::new();
        for key in first.wrk.keys() {
            let all: Vec<&Wrk> = runs.iter().filter_map(|r| r.wrk.get(key)).collect();
            let m = |f: &dyn Fn(&Wrk) -> f64| median(all.iter().map(|w| f(w)).collect());
            let errors: Vec<&str> = all
                .iter()
                .map(|w| w.socket_errors.as_str())
                .filter(|e| !e.is_empty())
                .collect();
            wrk.insert(
                *key,
                Wrk {
                    requests_per_s: m(&|w| w.requests_per_s),
                    p50_ms: m(&|w| w.p50_ms),
                    p99_ms: m(&|w| w.p99_ms),
                    requests: all.iter().map(|w| w.requests).sum(),
                    non_2xx: all.iter().map(|w| w.non_2xx).sum(),
                    socket_errors: errors.join("; "),
                },
            );
        }
        let cycles: Vec<(f64, f64)> = runs.iter().filter_map(|r| r.cycle).collect();
        Some(Figures {
            run: 0,
            nodes_listed: runs.iter().map(|r| r.nodes_listed).min()?,
            faulty_listed: runs.iter().flat_map(|r| r.faulty_listed.clone()).collect(),
            pods_listed: runs.iter().map(|r| r.pods_listed).min()?,
            first_s: med(&|r| r.first_s),
            cycle: (!cycles.is_empty()).then(|| {
                (
                    cycles.iter().map(|c| c.0).sum::<f64>() / cycles.len() as f64,
                    cycles.iter().map(|c| c.1).fold(0.0, f64::max),
                )
            }),
            cpu_cores: runs.iter().flat_map(|r| r.cpu_cores.clone()).collect(),
            others_cores: runs.iter().flat_map(|r| r.others_cores.clone()).collect(),
            steal_cores: runs.iter().flat_map(|r| r.steal_cores.clone()).collect(),
            rss_kib: runs.iter().flat_map(|r| r.rss_kib.clone()).collect(),
            hwm_before_load_kib: runs.iter().map(|r| r.hwm_before_load_kib).max()?,
            hwm_kib: runs.iter().map(|r| r.hwm_kib).max()?,
            rss_end_kib: med(&|r| r.rss_end_kib as f64) as u64,
            oldest_s: runs.iter().map(|r| r.oldest_s).fold(f64::NAN, f64::max),
            wrk,
            ..first.clone()
        })
    }

    fn json(&self, pods_per_node: usize, periods: u64) -> serde_json::Value {
        let wrk: serde_json::Map<String, serde_json::Value> = self
            .wrk
            .iter()
            .map(|((what, via), w)| (format!("{what} {via}"), w.json()))
            .collect();
        serde_json::json!({
            "server": self.label(),
            "run": self.run,
            "nodes": self.nodes,
            "pods_per_node": pods_per_node,
            "periods": periods,
            "healthy_nodes": self.healthy,
            "nodes_listed": self.nodes_listed,
            "faulty_listed": self.faulty_listed,
            "pod_objects": self.pod_objects,
            "pods_listed": self.pods_listed,
            "first_complete_answer_s": self.first_s,
            "cycle_mean_s": self.cycle.map(|c| c.0),
            "cycle_max_bucket_s": self.cycle.map(|c| if c.1.is_finite() { c.1.to_string() } else { "+Inf".into() }),
            "cpu_cores_per_period": self.cpu_cores,
            "others_cores_per_period": self.others_cores,
            "steal_cores_per_period": self.steal_cores,
            "quiet_wait_s": self.quiet_wait.0,
            "busy_cores_at_start": self.quiet_wait.1,
            "cpu_m_median": self.cpu_m(),
            "cpu_m_per_node": self.cpu_m() / self.nodes as f64,
            "rss_kib_per_period": self.rss_kib,
            "rss_kib_median": self.rss_kib_median(),
            "rss_kib_per_node": self.rss_kib_median() / self.nodes as f64,
            "vmhwm_kib_before_load": self.hwm_before_load_kib,
            "vmhwm_kib": self.hwm_kib,
            "rss_kib_end": self.rss_end_kib,
            "process": self.process,
            "oldest_point_s": self.oldest_s,
            "wrk": wrk,
            "load_avg_end": self.load_avg,
        })
    }
}

/// Ratio `a / b` as `3.1×`, or `n/a`.
fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.1}×", a / b)
    } else {
        "n/a".into()
    }
}

fn run(
    cp: &ControlPlane,
    kubeconfig: &Path,
    implementation: Implementation,
    kubelets: &Kubelets,
    token: &str,
    periods: u64,
    wrk_secs: u64,
) -> Figures {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let who = implementation.as_str();
    let nodes = kubelets.nodes.len();
    let healthy: HashSet<&str> = kubelets
        .nodes
        .iter()
        .filter(|n| n.mode.should_succeed())
        .map(|n| n.name.as_str())
        .collect();
    let quiet_wait = wait_until_quiet(ticks_per_s);
    eprintln!(
        "{who}: machine quiet after {:.0} s ({:.2} cores busy)",
        quiet_wait.0, quiet_wait.1
    );
    let started = Instant::now();
    let server = MetricsServer::start(implementation, kubeconfig, &format!("{RESOLUTION_S}s"));
    let _logs = server.failure_guard();
    let pid = server.pid().expect("the server runs");
    // First complete answer: every healthy node listed.
    let first = loop {
        let (code, body, _) = get(cp, server.port, NODES_PATH);
        let listed = items(&body)
            .iter()
            .filter(|n| healthy.contains(name_of(n)))
            .count();
        if code == 200 && listed >= healthy.len() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{who} listed {listed} of {} healthy nodes after 600 s",
            healthy.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("{who}: first complete answer after {first:.1?}");
    // The figures are this process's: a wrapper (a shell, heaptrack, valgrind) in the binary's
    // place would be measured instead of the server. Checked once it answers (a script has
    // exec'd by then).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let binary = implementation.binary();
    if std::fs::canonicalize(&binary).ok().as_ref() != Some(&exe) {
        eprintln!(
            "{who}: WARNING: the measured process {pid} runs {}, not {}: its CPU and memory are not the server's",
            exe.display(),
            binary.display()
        );
    }
    // One more period to settle, then CPU and RSS per period, and the cycles in those periods.
    std::thread::sleep(Duration::from_secs(RESOLUTION_S));
    let cycles_before = cycle_histogram(cp, &server);
    let mut cpu = Vec::new();
    let (mut others, mut steal) = (Vec::new(), Vec::new());
    let mut rss = Vec::new();
    let (_, _, mut last) = sample(pid);
    let (mut last_busy, mut last_steal) = machine_ticks();
    let cores = |ticks: u64| ticks as f64 / ticks_per_s / RESOLUTION_S as f64;
    for _ in 0..periods {
        std::thread::sleep(Duration::from_secs(RESOLUTION_S));
        let (r, _, t) = sample(pid);
        let (busy, stolen) = machine_ticks();
        let server_cores = cores(t - last);
        cpu.push(server_cores);
        others.push((cores(busy - last_busy) - server_cores).max(0.0));
        steal.push(cores(stolen - last_steal));
        rss.push(r as f64);
        (last, last_busy, last_steal) = (t, busy, stolen);
    }
    let (_, hwm_before_load, _) = sample(pid);
    let cycles_after = cycle_histogram(cp, &server);
    let cycle = cycles_after
        .zip(cycles_before)
        .and_then(|(after, before)| after.since(&before));
    // Freshness: the oldest listed node point's age now; the faulty nodes must not be listed.
    let (_, body, _) = get(cp, server.port, NODES_PATH);
    let now = now_s();
    let listed = items(&body);
    let (oldest, oldest_node) = listed
        .iter()
        .filter_map(|n| Some((n["timestamp"].as_str().and_then(epoch)?, name_of(n))))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((f64::NAN, ""));
    eprintln!(
        "{who}: oldest point {:.1} s old, node {oldest_node}",
        now - oldest
    );
    let faulty_listed: Vec<String> = listed
        .iter()
        .map(name_of)
        .filter(|n| !healthy.contains(n))
        .map(str::to_string)
        .collect();
    if !faulty_listed.is_empty() {
        eprintln!("{who}: faulty nodes listed: {faulty_listed:?}");
    }
    // The pod to get: a listed one whose Pod object is Running.
    let (_, pods_body, _) = get(cp, server.port, PODS_PATH);
    let all_pods = items(&pods_body);
    let running: HashSet<(&str, &str)> = kubelets
        .pods
        .iter()
        .filter(|p| p.phase == Phase::Running)
        .map(|p| (p.namespace.as_str(), p.name.as_str()))
        .collect();
    let one = all_pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                name_of(p),
            )
        })
        .find(|p| running.contains(p))
        .map(|(ns, name)| format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}"));
    // Load: each wrk run against the server directly, then through the aggregator.
    let mut wrk_figures = BTreeMap::new();
    for via in VIAS {
        let base = match via {
            "direct" => format!("https://127.0.0.1:{}", server.port),
            _ => {
                aggregation::register(cp, server.port);
                aggregation::wait_available(cp, "True", Duration::from_secs(120))
                    .unwrap_or_else(|e| panic!("{who} through the aggregator: {e}"));
                cp.server.clone()
            }
        };
        for (what, connections) in LOADS {
            let path = match what {
                "get one pod" => match &one {
                    Some(p) => p.as_str(),
                    None => continue,
                },
                "list pods" => PODS_PATH,
                _ => NODES_PATH,
            };
            let w = wrk(&format!("{base}{path}"), token, connections, wrk_secs);
            eprintln!("{who}: {what} ({via}): {}", w.cell());
            wrk_figures.insert((what, via), w);
        }
        if via == "aggregator" {
            aggregation::unregister(cp);
        }
    }
    let (rss_end, hwm, _) = sample(pid);
    // The server's log (its scrape errors name the node and the error) outlives the run.
    let kept_log = format!("/tmp/side-by-side-{nodes}-{who}-{pid}.log");
    match std::fs::copy(server.log_path(), &kept_log) {
        Ok(_) => eprintln!("{who}: its log is kept in {kept_log}"),
        Err(e) => eprintln!("{who}: its log could not be kept in {kept_log}: {e}"),
    }
    Figures {
        implementation,
        run: 0,
        nodes,
        healthy: healthy.len(),
        nodes_listed: listed.len(),
        faulty_listed,
        pod_objects: kubelets.pods.len(),
        pods_listed: all_pods.len(),
        first_s: first.as_secs_f64(),
        cycle,
        cpu_cores: cpu,
        others_cores: others,
        steal_cores: steal,
        quiet_wait,
        rss_kib: rss,
        hwm_before_load_kib: hwm_before_load,
        hwm_kib: hwm,
        rss_end_kib: rss_end,
        process: exe.display().to_string(),
        oldest_s: now - oldest,
        wrk: wrk_figures,
        load_avg: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

fn print_table(results: &[Figures], periods: u64, rounds: usize) {
    let wrk_columns: Vec<(&str, &str)> = VIAS
        .iter()
        .flat_map(|via| LOADS.iter().map(move |(what, _)| (*what, *via)))
        .collect();
    let mut header = format!(
        "| server | nodes | nodes listed | Pod objects | pods listed | first complete answer | scrape cycle (mean; max bucket) | CPU (median of {periods} × 15 s) | CPU per node | rest of the machine's CPU (median; steal) | RSS (median) | RSS per node | VmHWM (before load) | oldest point |"
    );
    for (what, via) in &wrk_columns {
        let c = LOADS.iter().find(|l| l.0 == *what).map_or(0, |l| l.1);
        header.push_str(&format!(" {what}, {via} (c{c}: req/s, p50 / p99) |"));
    }
    println!("{header}");
    println!("|{}", "---|".repeat(14 + wrk_columns.len()));
    // With several runs per server: a row per run, then the runs of each server pooled, and the
    // ratios of the pooled figures.
    let pooled: Vec<Figures> = if rounds > 1 {
        Implementation::ALL
            .into_iter()
            .filter_map(|i| {
                let runs: Vec<&Figures> =
                    results.iter().filter(|f| f.implementation == i).collect();
                Figures::pooled(&runs)
            })
            .collect()
    } else {
        Vec::new()
    };
    for f in results.iter().chain(&pooled) {
        let label = match (rounds, f.run) {
            (1, _) => f.label().to_string(),
            (_, 0) => format!("{}, {rounds} runs pooled", f.label()),
            (_, r) => format!("{}, run {r}", f.label()),
        };
        let cycle = match f.cycle {
            Some((mean, max)) if max.is_finite() => format!("{mean:.2} s; ≤ {max} s"),
            Some((mean, _)) => format!("{mean:.2} s; +Inf"),
            None => "n/a".into(),
        };
        let rss = f.rss_kib_median();
        let mut row = format!(
            "| {label} | {} | {} | {} | {} | {:.1} s | {cycle} | {:.0} m | {:.3} m | {:.0} m; {:.0} m | {:.1} MiB | {:.0} KiB | {:.1} MiB ({:.1}) | {:.1} s |",
            f.nodes,
            f.nodes_listed,
            f.pod_objects,
            f.pods_listed,
            f.first_s,
            f.cpu_m(),
            f.cpu_m() / f.nodes as f64,
            median(f.others_cores.clone()) * 1000.0,
            median(f.steal_cores.clone()) * 1000.0,
            rss / 1024.0,
            rss / f.nodes as f64,
            f.hwm_kib as f64 / 1024.0,
            f.hwm_before_load_kib as f64 / 1024.0,
            f.oldest_s,
        );
        for key in &wrk_columns {
            row.push_str(&format!(
                " {} |",
                f.wrk.get(key).map_or("n/a".into(), Wrk::cell)
            ));
        }
        println!("{row}");
    }
    let compared = if pooled.is_empty() {
        results
    } else {
        &pooled[..]
    };
    let by = |i: Implementation| compared.iter().find(|f| f.implementation == i);
    if let (Some(u), Some(k)) = (by(Implementation::Upstream), by(Implementation::Builtin)) {
        let per_node = |f: &Figures| f.cpu_m() / f.nodes as f64;
        let rss_per_node = |f: &Figures| f.rss_kib_median() / f.nodes as f64;
        let mut row = format!(
            "| upstream / kaddons | | | | | | | | {} | | | {} | {} | {} |",
            ratio(per_node(u), per_node(k)),
            ratio(rss_per_node(u), rss_per_node(k)),
            ratio(u.hwm_kib as f64, k.hwm_kib as f64),
            ratio(u.oldest_s, k.oldest_s),
        );
        for key in &wrk_columns {
            let cell = match (u.wrk.get(key), k.wrk.get(key)) {
                (Some(a), Some(b)) => format!(
                    "p50 {}, p99 {}",
                    ratio(a.p50_ms, b.p50_ms),
                    ratio(a.p99_ms, b.p99_ms)
                ),
                _ => "n/a".into(),
            };
            row.push_str(&format!(" {cell} |"));
        }
        println!("{row}");
    }
}

/// Raises this process's soft open-file limit to its hard limit (the servers inherit it): the
/// fleet holds a listener per node and one descriptor per open connection, about 2 per node.
/// The hard limit cannot be raised without CAP_SYS_RESOURCE, which the project's VMs
/// withhold; there it is 20,000. The first 5,000-node run stopped at it ("Too many open
/// files") when a TCP relay per node doubled that; the fleet now listens on the namespace's
/// address itself.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

fn main() {
    let open_files = raise_open_file_limit();
    let nodes = arg(1, 100);
    if open_files < 2 * nodes as u64 + 1_000 {
        eprintln!(
            "warning: the open-file limit is {open_files}; {nodes} simulated nodes need about {} (2 per node); expect \"Too many open files\"",
            2 * nodes + 1_000
        );
    }
    let pods = arg(2, 30);
    let periods = arg(3, 4) as u64;
    let faults = std::env::var("FAULTS").map_or(true, |v| v != "0");
    let wrk_secs = std::env::var("WRK_SECONDS")
        .ok()
        .map(|s| s.parse().expect("WRK_SECONDS: a number of seconds"))
        .unwrap_or(10);
    require_wrk();
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
    let mut config = FleetConfig::new(nodes, pods);
    // Pod objects are made once, from the names the fleet serves at the start: churn would
    // make kubelets report pods without an object.
    config.churn_period = STABLE_CHURN;
    if faults && nodes >= 3 {
        config.overrides.insert(nodes / 3, Mode::Hang);
        config.overrides.insert(2 * nodes / 3, Mode::Garbage);
    }
    let t = Instant::now();
    let kubelets = Kubelets::start(config).expect("simulated kubelets");
    let fleet_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    aggregation::create_nodes(&cp, &kubelets);
    let nodes_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    aggregation::create_pods(&cp, &kubelets.pods);
    let pods_s = t.elapsed().as_secs_f64();
    let kubeconfig = aggregation::service_account_kubeconfig(&cp, &dir);
    let token = bench_token(&cp);
    let faulty: Vec<String> = kubelets
        .nodes
        .iter()
        .filter(|n| n.mode != Mode::Healthy)
        .map(|n| format!("{} {}", n.name, n.mode.as_str()))
        .collect();
    eprintln!(
        "{nodes} nodes x {pods} pods: fleet in {fleet_s:.1} s; {nodes} Node objects in {nodes_s:.1} s ({:.0} requests/s); {} Pod objects in {pods_s:.1} s ({:.0} requests/s); faulty: {faulty:?}",
        2.0 * nodes as f64 / nodes_s,
        kubelets.pods.len(),
        2.0 * kubelets.pods.len() as f64 / pods_s,
    );
    // ONLY=upstream or ONLY=builtin runs one server (development runs); the table needs both.
    let only = std::env::var("ONLY").ok();
    let servers: Vec<Implementation> = Implementation::ALL
        .into_iter()
        .filter(|i| only.as_deref().is_none_or(|o| o == i.as_str()))
        .collect();
    // ROUNDS=n runs each server n times, alternating, every other round in reverse order
    // (upstream, kaddons, kaddons, upstream, ...): this VM's speed drifts over minutes, and a
    // drift that is steady over the runs then weighs on both servers alike.
    let rounds = std::env::var("ROUNDS")
        .ok()
        .map(|s| {
            s.parse::<usize>()
                .expect("ROUNDS: a number of runs per server")
        })
        .unwrap_or(1)
        .max(1);
    let mut results: Vec<Figures> = Vec::new();
    for round in 1..=rounds {
        let mut order = servers.clone();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            eprintln!("{}: run {round} of {rounds}", i.as_str());
            let mut f = run(&cp, &kubeconfig, i, &kubelets, &token, periods, wrk_secs);
            f.run = round;
            results.push(f);
        }
    }
    println!(
        "\n{nodes} nodes × {pods} pods, {periods} periods of {RESOLUTION_S} s, faulty kubelets: {}\n",
        if faulty.is_empty() {
            "none".to_string()
        } else {
            faulty.join(", ")
        }
    );
    print_table(&results, periods, rounds);
    let json_file = std::env::var_os("SIDE_BY_SIDE_JSON");
    for f in &results {
        let line = f.json(pods, periods).to_string();
        eprintln!("json: {line}");
        if let Some(path) = &json_file {
            use std::io::Write;
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| writeln!(file, "{line}"));
            if let Err(e) = appended {
                eprintln!("appending to {}: {e}", Path::new(path).display());
            }
        }
    }
    drop(kubelets);
    let _ = std::fs::remove_dir_all(&dir);
}
