//! A simulated fleet of kubelets on loopback, shared by the fault test (tests/metrics_faults.rs,
//! in process, ~50 nodes) and the scale harness (examples/kubelet_fleet.rs, its own process,
//! up to thousands of nodes).
//!
//! Why a simulator and not recorded payloads: a scale run needs counters that advance with
//! wall-clock time (so the server computes real rates every cycle), pods that start, restart
//! and go away (so the store's churn paths run), and per-node faults, for thousands of nodes,
//! from one process on a 2-core machine. Everything here is a pure function of (node, pod
//! slot, time), so no per-pod state is kept and any request can be answered at any time.
//!
//! Each node is one HTTPS listener on 127.0.0.1 with its own port (loopback only), serving
//! `/metrics/resource` in the kubelet's Prometheus text format and `/stats/summary` as the
//! kubelet Summary JSON that `kaddons top` reads. Nodes share one serving certificate signed
//! by the fleet CA (a real kubelet has its own, but the handshake costs the same), except
//! `BadCert` nodes, whose certificate comes from another CA.
//!
//! There is no API server: the node list (name, address, port, CA file, fault mode) is written
//! to a file, and the server side turns it into a `StaticSource`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use kaddons_metrics_server::source::NodeTarget;

/// How one simulated kubelet behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Healthy,
    /// Answers correctly after `slow_delay` (below the scraper's timeout: must succeed).
    Slow,
    /// Accepts TCP connections and never says anything (not even the TLS handshake).
    Hang,
    /// HTTP 500.
    Status500,
    /// HTTP 200 with an HTML page.
    Garbage,
    /// Announces the full Content-Length, sends half the payload, closes the connection.
    Truncated,
    /// Streams `huge_bytes` of comment lines without a Content-Length.
    Huge,
    /// Serves a certificate from a CA the scraper does not trust.
    BadCert,
}

impl Mode {
    pub const FAULTS: [Mode; 7] = [
        Mode::Slow,
        Mode::Hang,
        Mode::Status500,
        Mode::Garbage,
        Mode::Truncated,
        Mode::Huge,
        Mode::BadCert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Healthy => "healthy",
            Mode::Slow => "slow",
            Mode::Hang => "hang",
            Mode::Status500 => "http500",
            Mode::Garbage => "garbage",
            Mode::Truncated => "truncated",
            Mode::Huge => "huge",
            Mode::BadCert => "badcert",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        std::iter::once(Mode::Healthy)
            .chain(Mode::FAULTS)
            .find(|m| m.as_str() == s)
    }

    /// Whether a scrape of this node must succeed.
    pub fn should_succeed(self) -> bool {
        matches!(self, Mode::Healthy | Mode::Slow)
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub nodes: usize,
    pub pods_per_node: usize,
    /// Nodes per fault mode (every mode in [`Mode::FAULTS`]), spread over the fleet.
    pub faulty_per_mode: usize,
    /// An explicit mode for these node indices, consulted before [`FleetConfig::faulty_per_mode`]
    /// (a benchmark that wants exactly one hung and one garbage kubelet at known places).
    pub overrides: BTreeMap<usize, Mode>,
    pub slow_delay: Duration,
    pub huge_bytes: u64,
    /// Pod lifetime of the churning pods (one slot in ten); restarts happen every
    /// `churn_period` in one slot in twenty-five.
    pub churn_period: Duration,
    /// A real kubelet's `/metrics/resource` payload, replayed by the last node instead of the
    /// model's (see [`replay_payload`]).
    pub recorded: Option<Arc<str>>,
}

impl FleetConfig {
    pub fn new(nodes: usize, pods_per_node: usize) -> Self {
        FleetConfig {
            nodes,
            pods_per_node,
            faulty_per_mode: 0,
            overrides: BTreeMap::new(),
            slow_delay: Duration::from_secs(2),
            huge_bytes: 100 * 1000 * 1000,
            churn_period: Duration::from_secs(120),
            recorded: None,
        }
    }

    /// Whether node `i` replays [`FleetConfig::recorded`].
    pub fn replays(&self, i: usize) -> bool {
        self.recorded.is_some() && i + 1 == self.nodes
    }

    /// `/metrics/resource` of node `i` at time `t`: the model's, or the replayed recording.
    pub fn payload(&self, i: usize, t: f64, epoch_s: f64) -> String {
        match &self.recorded {
            Some(text) if self.replays(i) => replay_payload(text, t, epoch_s),
            _ => metrics_payload(
                i,
                self.pods_per_node,
                t,
                epoch_s,
                self.churn_period.as_secs_f64(),
            ),
        }
    }

    /// Fault mode of node `i`: its override if it has one, else the faulty nodes of each mode
    /// are spread evenly over the fleet.
    pub fn mode_of(&self, i: usize) -> Mode {
        if let Some(mode) = self.overrides.get(&i) {
            return *mode;
        }
        let faulty = self.faulty_per_mode * Mode::FAULTS.len();
        if faulty == 0 || self.nodes == 0 {
            return Mode::Healthy;
        }
        let stride = (self.nodes / faulty.min(self.nodes)).max(1);
        if !i.is_multiple_of(stride) || i / stride >= faulty {
            return Mode::Healthy;
        }
        Mode::FAULTS[(i / stride) % Mode::FAULTS.len()]
    }
}

/// Request counters of the whole fleet.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

/// One simulated node as listed in the node file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimNode {
    pub name: String,
    pub addr: SocketAddr,
    pub mode: Mode,
}

pub struct Fleet {
    pub ca_pem: String,
    pub nodes: Vec<SimNode>,
    pub counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Fleet {
    /// Writes the node list: one `name address port ca-file mode` line per node, tab
    /// separated, after a `#` header.
    pub fn write_node_list(&self, path: &Path, ca_file: &Path) -> std::io::Result<()> {
        let mut out = String::from("# name\taddress\tport\tca\tmode\n");
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                n.name,
                n.addr.ip(),
                n.addr.port(),
                ca_file.display(),
                n.mode.as_str()
            );
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(tmp, path)
    }
}

/// A parsed node-list line.
#[derive(Clone, Debug)]
pub struct ListedNode {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub ca_file: String,
    pub mode: Mode,
}

impl ListedNode {
    /// The scrape target of this node's `/metrics/resource`, without labels.
    pub fn target(&self) -> NodeTarget {
        NodeTarget {
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port,
            path: "/metrics/resource".into(),
            labels: BTreeMap::new(),
        }
    }
}

/// The `--flag value` pairs of an example's command line (the scale examples take no other
/// form); a flag without a value panics.
pub fn example_flags() -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        pairs.push((flag, value));
    }
    pairs
}

/// An example flag's value as a number; panics naming the flag.
pub fn flag_num(flag: &str, value: &str) -> u64 {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{flag}: not a number"))
}

pub fn read_node_list(text: &str) -> Result<Vec<ListedNode>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            let bad = || format!("node list line {}: {l:?}", i + 1);
            let [name, address, port, ca, mode] = f[..] else {
                return Err(bad());
            };
            Ok(ListedNode {
                name: name.to_string(),
                address: address.to_string(),
                port: port.parse().map_err(|_| bad())?,
                ca_file: ca.to_string(),
                mode: Mode::parse(mode).ok_or_else(bad)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------------

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key).expect("CA certificate"),
        }
    }

    /// A serving configuration for 127.0.0.1.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, "kubelet");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("key");
        let cert = p
            .signed_by(&key, &self.issuer)
            .expect("serving certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key PEM"),
        )
        .expect("serving config");
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------------
// The workload model: a pure function of (node, slot, time)
// ---------------------------------------------------------------------------------------------

fn hash(parts: &[u64]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// One container as the kubelet would report it at one instant.
struct ContainerSample {
    name: &'static str,
    start_s: f64,
    cpu_s: f64,
    memory: u64,
}

struct PodSample {
    namespace: String,
    name: String,
    containers: Vec<ContainerSample>,
}

/// The node's boot time: a day before the fleet started (so long-lived pods have big counters).
fn boot_s(epoch_s: f64) -> f64 {
    epoch_s - 86_400.0
}

/// The pods of `node` at time `t` (seconds since the Unix epoch). One slot in ten churns: its
/// pod lives `churn` seconds and is replaced by a new pod (new name, new start time); one slot
/// in twenty-five has a container that restarts every `churn` seconds (start time moves,
/// counter starts again from zero). Every slot has a stable CPU rate and memory level.
fn pods_at(node: usize, pods: usize, t: f64, epoch_s: f64, churn: f64) -> Vec<PodSample> {
    (0..pods)
        .map(|slot| {
            let h = hash(&[node as u64, slot as u64]);
            let namespace = format!("team-{}", h % 20);
            let deployment = format!("svc-{}", (h >> 8) % 50);
            let rate = 0.001 + ((h >> 16) % 200) as f64 / 1000.0; // cores
            let memory = 20_000_000 + (h >> 24) % 480_000_000;
            let phase = ((h >> 32) % 1000) as f64 / 1000.0 * churn;
            let (generation, pod_start) = if slot % 10 == 3 {
                let g = ((t - epoch_s + phase) / churn).floor();
                (g as i64, epoch_s + g * churn - phase)
            } else {
                (0, boot_s(epoch_s) + ((h >> 40) % 3600) as f64)
            };
            let name = format!(
                "{deployment}-{:08x}-{:05x}",
                hash(&[node as u64, (h >> 8) % 50]) as u32,
                hash(&[h, generation as u64]) % 0x10_0000
            );
            let restarts = slot % 25 == 7;
            let mut containers = vec![("app", 1.0), ("istio-proxy", 0.1)];
            if slot % 4 != 0 {
                containers.truncate(1);
            }
            let containers = containers
                .into_iter()
                .map(|(c, share)| {
                    let start_s = if restarts && c == "app" {
                        pod_start + ((t - pod_start) / churn).floor().max(0.0) * churn
                    } else {
                        pod_start
                    };
                    ContainerSample {
                        name: c,
                        start_s,
                        cpu_s: (rate * share * (t - start_s)).max(0.0),
                        memory: (memory as f64 * share) as u64 + (t as u64 % 60) * 4096,
                    }
                })
                .collect();
            PodSample {
                namespace,
                name,
                containers,
            }
        })
        .collect()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// `/metrics/resource` of `node` at time `t`, in the kubelet's series order.
pub fn metrics_payload(node: usize, pods: usize, t: f64, epoch_s: f64, churn: f64) -> String {
    let sample = pods_at(node, pods, t, epoch_s, churn);
    let ms = (t * 1000.0) as u64;
    let mut out = String::with_capacity(pods * 700 + 1024);
    type Format = fn(&ContainerSample) -> String;
    let series: [(&str, &str, Format); 3] = [
        ("container_cpu_usage_seconds_total", "counter", |c| {
            format!("{:.6}", c.cpu_s)
        }),
        ("container_memory_working_set_bytes", "gauge", |c| {
            c.memory.to_string()
        }),
        ("container_start_time_seconds", "gauge", |c| {
            format!("{:.9e}", c.start_s)
        }),
    ];
    for (metric, kind, value) in series {
        let _ = writeln!(
            out,
            "# HELP {metric} [ALPHA] simulated\n# TYPE {metric} {kind}"
        );
        for p in &sample {
            for c in &p.containers {
                let _ = writeln!(
                    out,
                    "{metric}{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {ms}",
                    c.name,
                    p.namespace,
                    p.name,
                    value(c)
                );
            }
        }
    }
    let node_rate: f64 = 0.2 + (hash(&[node as u64]) % 500) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "# HELP node_cpu_usage_seconds_total [ALPHA] simulated\n# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total {:.6} {ms}",
        node_rate * (t - boot_s(epoch_s))
    );
    let _ = writeln!(
        out,
        "# HELP node_memory_working_set_bytes [ALPHA] simulated\n# TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes {} {ms}",
        2_000_000_000 + (hash(&[node as u64, 1]) % 1_000_000_000)
    );
    let _ = writeln!(
        out,
        "# HELP pod_cpu_usage_seconds_total [ALPHA] simulated\n# TYPE pod_cpu_usage_seconds_total counter"
    );
    for p in &sample {
        let cpu: f64 = p.containers.iter().map(|c| c.cpu_s).sum();
        let _ = writeln!(
            out,
            "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} {cpu:.6} {ms}",
            p.namespace, p.name
        );
    }
    out.push_str(
        "# HELP scrape_error [ALPHA] simulated\n# TYPE scrape_error gauge\nscrape_error 0\n",
    );
    out
}

/// A recorded `/metrics/resource` payload as a live kubelet would serve it at time `t` (the
/// fleet started at `epoch_s`): every line is kept as recorded (names, label sets, order, HELP
/// and TYPE lines, number formats of gauges), except that each sample's timestamp moves by the
/// same amount so that the newest is `t` (their spread stays as recorded) and each counter
/// (`*_seconds_total`) grows by a thousandth of its recorded value per second since `epoch_s`,
/// so that rates exist (a recording alone has one point per series).
pub fn replay_payload(recorded: &str, t: f64, epoch_s: f64) -> String {
    // `series value timestamp` of a sample line; `None` for comments and lines without one.
    fn sample(line: &str) -> Option<(&str, &str, i64)> {
        if line.starts_with('#') {
            return None;
        }
        let mut it = line.rsplitn(3, ' ');
        let ts = it.next()?.parse().ok()?;
        let value = it.next()?;
        Some((it.next()?, value, ts))
    }
    let newest = recorded
        .lines()
        .filter_map(sample)
        .map(|(_, _, ts)| ts)
        .max()
        .unwrap_or(0);
    let shift_ms = (t * 1000.0) as i64 - newest;
    let elapsed = (t - epoch_s).max(0.0);
    let mut out = String::with_capacity(recorded.len() + 1024);
    for line in recorded.lines() {
        let Some((series, value, ts)) = sample(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let ts = ts + shift_ms;
        let name = series.split('{').next().unwrap_or(series);
        match value.parse::<f64>() {
            Ok(v) if name.ends_with("_seconds_total") => {
                let _ = writeln!(out, "{series} {:.6} {ts}", v + v / 1000.0 * elapsed);
            }
            _ => {
                let _ = writeln!(out, "{series} {value} {ts}");
            }
        }
    }
    out
}

/// `/stats/summary` of `node` at time `t` (the fields `kaddons top` reads). The CPU rate is
/// the slot's steady rate, as a kubelet's cAdvisor would report it.
pub fn summary_payload(node: usize, pods: usize, t: f64, epoch_s: f64, churn: f64) -> String {
    let sample = pods_at(node, pods, t, epoch_s, churn);
    let stamp = |c: &ContainerSample| {
        let secs = (t - c.start_s).max(1.0);
        (c.cpu_s / secs * 1e9) as u64
    };
    let pods_json: Vec<serde_json::Value> = sample
        .iter()
        .map(|p| {
            serde_json::json!({
                "podRef": {"name": p.name, "namespace": p.namespace},
                "containers": p.containers.iter().map(|c| serde_json::json!({
                    "name": c.name,
                    "cpu": {"usageNanoCores": stamp(c), "usageCoreNanoSeconds": (c.cpu_s * 1e9) as u64},
                    "memory": {"workingSetBytes": c.memory},
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "node": {
            "nodeName": format!("node-{node:05}"),
            "cpu": {"usageNanoCores": 500_000_000u64},
            "memory": {"workingSetBytes": 2_000_000_000u64},
        },
        "pods": pods_json,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(code: u16, content_type: &str, body: String) -> hyper::Response<BoxBody> {
    hyper::Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .expect("static response")
}

#[derive(Clone)]
struct NodeCtx {
    index: usize,
    mode: Mode,
    config: Arc<FleetConfig>,
    epoch_s: f64,
    counters: Arc<Counters>,
}

async fn respond(ctx: NodeCtx, path: String) -> hyper::Response<BoxBody> {
    ctx.counters.requests.fetch_add(1, Ordering::Relaxed);
    let c = &ctx.config;
    let churn = c.churn_period.as_secs_f64();
    let t = now_s();
    let text = "text/plain; version=0.0.4";
    if ctx.mode == Mode::Slow {
        tokio::time::sleep(c.slow_delay).await;
    }
    let body = match path.as_str() {
        "/metrics/resource" => c.payload(ctx.index, now_s(), ctx.epoch_s),
        // A recording of /metrics/resource has no Summary API counterpart.
        "/stats/summary" if c.replays(ctx.index) => {
            return full(404, text, "404 page not found\n".into())
        }
        "/stats/summary" => {
            let s = summary_payload(ctx.index, c.pods_per_node, t, ctx.epoch_s, churn);
            return full(200, "application/json", s);
        }
        _ => return full(404, text, "404 page not found\n".into()),
    };
    match ctx.mode {
        Mode::Healthy | Mode::Slow | Mode::BadCert => {
            ctx.counters
                .bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            full(200, text, body)
        }
        Mode::Status500 => full(500, text, "internal error\n".into()),
        Mode::Garbage => full(
            200,
            "text/html",
            "<html><body>not metrics</body></html>\n".into(),
        ),
        Mode::Truncated => {
            let len = body.len();
            let half = Bytes::from(body.into_bytes()).slice(..len / 2);
            let stream = futures::stream::iter([
                Ok(Frame::data(half)),
                Err(std::io::Error::other("simulated connection loss")),
            ]);
            hyper::Response::builder()
                .status(200)
                .header("content-type", text)
                .header("content-length", len.to_string())
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .expect("static response")
        }
        Mode::Huge => {
            let chunk = Bytes::from(vec![b'#'; 64 * 1024]);
            let n = c.huge_bytes / chunk.len() as u64;
            let counters = ctx.counters.clone();
            let stream = futures::stream::iter(0..n).map(move |_| {
                counters
                    .bytes
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(Frame::data(chunk.clone()))
            });
            hyper::Response::builder()
                .status(200)
                .header("content-type", text)
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .expect("static response")
        }
        Mode::Hang => unreachable!("hanging kubelets never answer"),
    }
}

/// Serves one node until the task is aborted. Hanging nodes keep at most 64 silent
/// connections (the oldest is closed first), so a long run does not exhaust descriptors.
async fn serve_node(listener: TcpListener, tls: Arc<rustls::ServerConfig>, ctx: NodeCtx) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut held = std::collections::VecDeque::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        ctx.counters.connections.fetch_add(1, Ordering::Relaxed);
        if ctx.mode == Mode::Hang {
            held.push_back(tcp);
            if held.len() > 64 {
                held.pop_front();
            }
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let ctx = ctx.clone();
                let path = req.uri().path().to_string();
                async move { Ok::<_, std::convert::Infallible>(respond(ctx, path).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Starts every node's listener on 127.0.0.1 (ephemeral ports) and returns the fleet.
pub async fn start(config: FleetConfig) -> std::io::Result<Fleet> {
    start_on(config, std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).await
}

/// Starts every node's listener on `ip` (ephemeral ports) and returns the fleet. One listening
/// socket per node and one per open connection: no relay, so a 5,000-node fleet fits in a
/// 20,000 descriptor limit.
pub async fn start_on(config: FleetConfig, ip: std::net::IpAddr) -> std::io::Result<Fleet> {
    let ca = Ca::new("fleet-kubelet-ca");
    let rogue = Ca::new("rogue-ca");
    let good_tls = ca.server_config();
    let bad_tls = rogue.server_config();
    let config = Arc::new(config);
    let counters = Arc::new(Counters::default());
    let epoch_s = now_s();
    let mut nodes = Vec::with_capacity(config.nodes);
    let mut tasks = Vec::with_capacity(config.nodes);
    for i in 0..config.nodes {
        let listener = TcpListener::bind(std::net::SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let mode = config.mode_of(i);
        let tls = if mode == Mode::BadCert {
            bad_tls.clone()
        } else {
            good_tls.clone()
        };
        let ctx = NodeCtx {
            index: i,
            mode,
            config: config.clone(),
            epoch_s,
            counters: counters.clone(),
        };
        tasks.push(tokio::spawn(serve_node(listener, tls, ctx)));
        nodes.push(SimNode {
            name: node_name(i),
            addr,
            mode,
        });
    }
    Ok(Fleet {
        ca_pem: ca.issuer.pem(),
        nodes,
        counters,
        tasks,
    })
}

pub fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = include_str!(
        "../../metrics-server/tests/fixtures/kubelet-metrics-resource-kind-70pods.txt"
    );

    fn sample<'a>(text: &'a str, series: &str) -> (&'a str, u64) {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing"));
        let mut it = line.rsplitn(3, ' ');
        let ts = it.next().and_then(|t| t.parse().ok()).expect("a timestamp");
        (it.next().expect("a value"), ts)
    }

    #[test]
    fn a_replayed_recording_moves_in_time_and_keeps_its_shape() {
        let epoch = 1_800_000_000.0;
        let (a, b) = (
            replay_payload(RECORDED, epoch, epoch),
            replay_payload(RECORDED, epoch + 15.0, epoch),
        );
        assert_eq!(a.lines().count(), RECORDED.lines().count());
        // Comments, series names and label sets as recorded.
        let shape = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.rsplitn(3, ' ').last().unwrap_or(l).to_string())
                .collect()
        };
        assert_eq!(shape(&a), shape(RECORDED));
        // The newest sample is now; the spread of timestamps stays.
        let apiserver = "container_cpu_usage_seconds_total{container=\"kube-apiserver\"";
        let etcd = "container_cpu_usage_seconds_total{container=\"etcd\"";
        let (v_a, ts_a) = sample(&a, apiserver);
        let (v_b, ts_b) = sample(&b, apiserver);
        assert_eq!(ts_b - ts_a, 15_000);
        let (_, rec_api) = sample(RECORDED, apiserver);
        let (_, rec_etcd) = sample(RECORDED, etcd);
        let (_, etcd_a) = sample(&a, etcd);
        assert_eq!(
            ts_a as i64 - etcd_a as i64,
            rec_api as i64 - rec_etcd as i64
        );
        // Counters grow by a thousandth of their value per second; gauges stay as written.
        let (v_a, v_b): (f64, f64) = (v_a.parse().unwrap(), v_b.parse().unwrap());
        assert!((v_a - 86.500663).abs() < 1e-6, "{v_a}");
        assert!(
            (v_b - v_a - 86.500663 / 1000.0 * 15.0).abs() < 1e-5,
            "{v_b}"
        );
        let memory = "node_memory_working_set_bytes";
        assert_eq!(sample(&b, memory).0, sample(RECORDED, memory).0);
        assert!(b.contains("\nscrape_error 0\n"));
    }

    #[test]
    fn an_override_wins_over_the_spread_faults() {
        let mut c = FleetConfig::new(30, 1);
        c.faulty_per_mode = 1;
        // Stride 30 / 7 = 4: node 0 is Slow and node 4 Hang by the spread.
        assert_eq!((c.mode_of(0), c.mode_of(4)), (Mode::Slow, Mode::Hang));
        c.overrides.insert(0, Mode::Garbage);
        c.overrides.insert(10, Mode::Hang);
        assert_eq!(c.mode_of(0), Mode::Garbage);
        assert_eq!(c.mode_of(10), Mode::Hang);
        assert_eq!(c.mode_of(4), Mode::Hang);
        assert_eq!(c.mode_of(11), Mode::Healthy);
    }
}
