//! The scraper: every metric resolution, GET every kubelet's `/metrics/resource`, decode the
//! payloads and hand the successful ones to the store as one cycle.
//!
//! The one rule this module is built around: a slow, dead or lying kubelet must never delay or
//! corrupt the others. Hence
//!
//! * every node's request runs in its own task, under a bounded semaphore (a thousand nodes
//!   must not mean a thousand simultaneous TLS handshakes), which a request still waiting after
//!   a tenth of its timeout gives up;
//! * each request has one timeout over connect, TLS handshake, headers **and body**, and the
//!   whole cycle has a deadline of one request timeout from its start (capped at one
//!   resolution), any stagger included, so the cycle always ends and a healthy node's
//!   stored sample is never older than resolution + timeout, even next to hanging kubelets;
//! * a body larger than the cap fails that node as soon as the cap is crossed (read in frames,
//!   never allocated whole), whether or not it announced its length;
//! * a payload that does not decode fails only that node, and a failed node is left out of the
//!   cycle, so the store forgets it rather than serving stale numbers.
//!
//! Every node starts at the beginning of the cycle, as many at once as there are request slots
//! (16): the thread then stays busy through the cycle instead of waking for each node, which
//! halved the scraper's CPU at 1,000 nodes (see `ScrapeConfig::new`). A request still waiting
//! after a tenth of its timeout gives up its slot (see `holding_for`), so hung kubelets cannot
//! keep the healthy ones out of the cycle. Starts can be spread instead
//! (`ScrapeConfig::stagger`, by a stable hash of the node name, so a node keeps its offset every
//! cycle).
//!
//! Connections are kept alive and reused per node: one request per node per cycle means one
//! pooled connection per node is exactly enough, and it saves a TLS handshake per node per
//! cycle. Between cycles only the TLS session is kept; the HTTP connection (and its buffers) is
//! made per request.
//!
//! TLS follows upstream metrics-server's flags: verify against a CA file, else the system roots,
//! or `--kubelet-insecure-tls`, which still performs the handshake (and checks the handshake
//! signature against the presented key) but accepts any certificate: kind and minikube
//! kubelets serve self-signed certificates that name only the host name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HOST, USER_AGENT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use super::api::MetricsSource;
use super::decode::{decode, DecodeError, MetricsBatch};
use super::source::{NodeSource, NodeTarget};
use super::store::SharedStore;
use kaddons_model::usage::MetricsProvider;

/// Upstream's lower bound for `--metric-resolution`: kubelets refresh their stats about every
/// 10 s, so scraping faster only yields the same samples again.
pub const MIN_METRIC_RESOLUTION: Duration = Duration::from_secs(10);
/// Default `--metric-resolution`.
pub const DEFAULT_METRIC_RESOLUTION: Duration = Duration::from_secs(15);
/// Default `--kubelet-request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on one kubelet's response (a 110-pod node's payload is about 100 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;
/// Default number of kubelet requests in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// Where in-cluster pods find their service account token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Rejects a metric resolution below [`MIN_METRIC_RESOLUTION`].
pub fn check_resolution(resolution: Duration) -> Result<(), ScrapeError> {
    if resolution < MIN_METRIC_RESOLUTION {
        return Err(ScrapeError::ResolutionTooLow {
            got: resolution,
            min: MIN_METRIC_RESOLUTION,
        });
    }
    Ok(())
}

/// How kubelet serving certificates are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletVerify {
    /// `--kubelet-certificate-authority`: a PEM CA bundle file.
    CaFile(PathBuf),
    /// The operating system's trust store.
    SystemRoots,
    /// `--kubelet-insecure-tls`: handshake, but accept any certificate.
    Insecure,
}

/// Where the bearer token for kubelets comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerToken {
    None,
    Static(String),
    /// Re-read every cycle (projected service account tokens rotate).
    File(PathBuf),
}

impl BearerToken {
    /// The service account token file when it exists, else none.
    pub fn in_cluster_default() -> Self {
        let p = Path::new(SERVICE_ACCOUNT_TOKEN);
        if p.is_file() {
            BearerToken::File(p.to_path_buf())
        } else {
            BearerToken::None
        }
    }
}

/// Everything the scraper needs besides its source and store.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    /// Period between cycles; also the deadline of one cycle.
    pub metric_resolution: Duration,
    /// Limit on one node's request, connect to last body byte.
    pub request_timeout: Duration,
    /// Requests in flight at once (at least 1).
    pub max_concurrency: usize,
    /// A node whose body exceeds this fails.
    pub max_body_bytes: usize,
    /// Node starts are spread over `[0, stagger)`; zero (the default) starts them all at once,
    /// `max_concurrency` holding a request slot at a time (a request that still waits after a
    /// tenth of its timeout gives its slot up).
    pub stagger: Duration,
    pub verify: KubeletVerify,
    /// PEM files: client certificate chain and key (`--kubelet-client-certificate/-key`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub token: BearerToken,
}

impl ScrapeConfig {
    /// Defaults for a resolution: 10 s timeout, 16 concurrent, 32 MiB, no stagger, system
    /// roots, no client certificate, no token.
    ///
    /// No stagger because spreading starts costs CPU and buys nothing here: each kubelet gets
    /// one request per cycle either way, and the request slots already bound the work in
    /// flight. Spread over 2.5 s, every node start and most responses found the scraper's
    /// thread asleep, and each wake-up cost more than the request; all at once, the thread
    /// stays busy and one wake-up serves many responses (1,000 nodes: 0.17-0.20 CPU seconds
    /// per cycle spread against 0.09-0.10 at once in `metrics_harness`; 10-16 mCPU against 6
    /// in the side-by-side runs, BENCHMARKS.md).
    pub fn new(metric_resolution: Duration) -> Self {
        ScrapeConfig {
            metric_resolution,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            stagger: Duration::ZERO,
            verify: KubeletVerify::SystemRoots,
            client_cert: None,
            token: BearerToken::None,
        }
    }
}

/// Why the scraper could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("--metric-resolution {got:?} is below the minimum of {min:?} (kubelets refresh their stats about every 10s)")]
    ResolutionTooLow { got: Duration, min: Duration },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid PEM: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificates found")]
    NoCertificates(PathBuf),
    #[error("{path}: unusable CA certificate: {source}")]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("no usable system root certificates ({0}); set --kubelet-certificate-authority or --kubelet-insecure-tls")]
    NoSystemRoots(String),
    #[error("kubelet client TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why one node's scrape failed. Only that node is affected.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building request: {0}")]
    Request(#[from] http::Error),
    #[error("kubelet answered HTTP {0}")]
    Status(u16),
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    #[error("scrape cycle deadline passed before the request finished")]
    Deadline,
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl FetchError {
    /// A short fixed label for counting (bounded cardinality).
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Connect { .. } => "connect",
            FetchError::ServerName(_) => "server_name",
            FetchError::Tls(_) => "tls",
            FetchError::Http(_) | FetchError::Request(_) => "http",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Timeout(_) | FetchError::Deadline => "timeout",
            FetchError::Decode(_) => "decode",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kubelet HTTPS client
// ---------------------------------------------------------------------------------------------

type Sender = SendRequest<Empty<Bytes>>;
type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// One idle kept-alive connection per node: the TLS session only. hyper's connection state and
/// its buffers (a read buffer that grows to 32 KiB on these payloads, an 8 KiB write buffer,
/// the dispatcher) live only while a request runs; kept for every idle node they were most of
/// the server's memory (heaptrack at 1,000 nodes: ~60 KiB per idle node; the TLS session left
/// is rustls' 4 KiB receive buffer and its state).
struct Pooled {
    address: String,
    port: u16,
    io: Tls,
}

/// How one request on a connection ended.
struct Failed {
    error: FetchError,
    /// Whether the response head had arrived (a request may only be repeated before that).
    answered: bool,
}

impl Failed {
    fn early(error: FetchError) -> Self {
        Failed {
            error,
            answered: false,
        }
    }

    fn late(error: FetchError) -> Self {
        Failed {
            error,
            answered: true,
        }
    }
}

/// HTTPS GETs against kubelets with connection reuse, a body cap and no timeout of its own
/// (the caller bounds the whole request).
pub struct KubeletClient {
    connector: TlsConnector,
    max_body_bytes: usize,
    /// Boxed: a `Pooled` is over 1 KiB (the TLS state), and a hash table's empty slots are as
    /// large as its entries; at 1,000 nodes the unboxed table held 2.4 MiB (heaptrack).
    pool: Mutex<HashMap<String, Box<Pooled>>>,
}

impl KubeletClient {
    pub fn new(config: &ScrapeConfig) -> Result<Self, ScrapeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &config.verify {
            KubeletVerify::CaFile(path) => builder.with_root_certificates(ca_file_roots(path)?),
            KubeletVerify::SystemRoots => builder.with_root_certificates(system_roots()?),
            KubeletVerify::Insecure => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                        algorithms: provider.signature_verification_algorithms,
                    }))
            }
        };
        let mut tls = match &config.client_cert {
            Some((cert, key)) => {
                let chain = read_chain(cert)?;
                let key_pem = read(key)?;
                let key =
                    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| ScrapeError::Pem {
                        path: key.clone(),
                        source,
                    })?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            connector: TlsConnector::from(Arc::new(tls)),
            max_body_bytes: config.max_body_bytes,
            pool: Mutex::new(HashMap::new()),
        })
    }

    /// GETs the target's path and returns the body. Reuses the node's idle connection when it
    /// has one (retrying once on a fresh one if the reused connection fails before any
    /// response: the kubelet may have closed it while idle), and keeps the connection for the
    /// next cycle after a complete keep-alive response.
    pub async fn get(
        &self,
        target: &NodeTarget,
        token: Option<&HeaderValue>,
    ) -> Result<Bytes, FetchError> {
        let pooled = self.take(target);
        let reused = pooled.is_some();
        let io = match pooled {
            Some(io) => io,
            None => self.connect(target).await?,
        };
        let (body, io) = match self.exchange(io, target, token).await {
            Ok(done) => done,
            // GET is safe to repeat.
            Err(f) if reused && !f.answered && matches!(f.error, FetchError::Http(_)) => {
                let io = self.connect(target).await?;
                self.exchange(io, target, token)
                    .await
                    .map_err(|f| f.error)?
            }
            Err(f) => return Err(f.error),
        };
        if let Some(io) = io {
            self.put(target, io);
        }
        Ok(body)
    }

    /// One request on `io`, with an HTTP/1.1 connection made for it and driven here (no task
    /// of its own). Returns the body and, when the connection can carry another request, the
    /// TLS stream back.
    async fn exchange(
        &self,
        io: Tls,
        target: &NodeTarget,
        token: Option<&HeaderValue>,
    ) -> Result<(Bytes, Option<Tls>), Failed> {
        let (mut sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Failed::early(e.into()))?;
        let request = async move {
            let response = self
                .send(&mut sender, target, token)
                .await
                .map_err(Failed::early)?;
            let keep_alive = keeps_alive(&response);
            let body = self.read_body(response).await.map_err(Failed::late)?;
            // The connection finishes (and hands the stream back) once its sender is gone.
            drop(sender);
            Ok::<_, Failed>((body, keep_alive))
        };
        let conn = conn.without_shutdown();
        tokio::pin!(request, conn);
        let mut ended = None;
        let outcome = tokio::select! {
            biased;
            r = &mut request => r,
            // The connection ended first (the peer closed it, or it broke): the request then
            // fails promptly with hyper's reason.
            c = &mut conn => {
                ended = Some(c);
                request.await
            }
        };
        let (body, keep_alive) = outcome?;
        let parts = match ended {
            Some(c) => c,
            None => conn.await,
        };
        let io = match parts {
            Ok(p) if keep_alive && p.read_buf.is_empty() => idle(p.io.into_inner()),
            _ => None,
        };
        Ok((body, io))
    }

    /// Reads a successful response's body, failing as soon as it crosses the cap.
    async fn read_body(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Bytes, FetchError> {
        let (parts, mut body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(FetchError::Status(parts.status.as_u16()));
        }
        let limit = self.max_body_bytes;
        let announced = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge { limit });
        }
        let initial = announced.map_or(64 << 10, |n| n as usize);
        let mut buf = Vec::with_capacity(initial.min(limit));
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(buf))
    }

    async fn send(
        &self,
        sender: &mut Sender,
        target: &NodeTarget,
        token: Option<&HeaderValue>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, FetchError> {
        sender.ready().await?;
        let host = target.host_port();
        let mut req = Request::get(target.path.as_str())
            .header(HOST, host)
            .header(ACCEPT, "text/plain")
            .header(USER_AGENT, "kaddons-metrics-server");
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, t.clone());
        }
        Ok(sender.send_request(req.body(Empty::new())?).await?)
    }

    async fn connect(&self, target: &NodeTarget) -> Result<Tls, FetchError> {
        let name = ServerName::try_from(target.address.clone())
            .map_err(|_| FetchError::ServerName(target.address.clone()))?;
        let tcp = TcpStream::connect((target.address.as_str(), target.port))
            .await
            .map_err(|source| FetchError::Connect {
                addr: format!("{}:{}", target.address, target.port),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        self.connector
            .connect(name, tcp)
            .await
            .map_err(FetchError::Tls)
    }

    fn take(&self, target: &NodeTarget) -> Option<Tls> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let p = pool.remove(&target.name)?;
        (p.address == target.address && p.port == target.port).then_some(p.io)
    }

    fn put(&self, target: &NodeTarget, io: Tls) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                target.name.clone(),
                Box::new(Pooled {
                    address: target.address.clone(),
                    port: target.port,
                    io,
                }),
            );
    }

    /// Drops pooled connections of nodes that are no longer targets.
    fn retain(&self, names: &HashSet<&str>) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| names.contains(&k.as_str()));
    }

    /// Idle pooled connections (for tests and diagnostics).
    pub fn pooled_connections(&self) -> usize {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ScrapeError> {
    std::fs::read(path).map_err(|source| ScrapeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ScrapeError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ScrapeError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(ScrapeError::NoCertificates(path.to_path_buf()));
    }
    Ok(chain)
}

fn ca_file_roots(path: &Path) -> Result<RootCertStore, ScrapeError> {
    let mut roots = RootCertStore::empty();
    for cert in read_chain(path)? {
        roots.add(cert).map_err(|source| ScrapeError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, ScrapeError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), |e| e.to_string());
        return Err(ScrapeError::NoSystemRoots(why));
    }
    Ok(roots)
}

/// Readies a connection for the pool, or drops it when the kubelet already said something
/// (data or a close) after a complete response.
///
/// The one read attempt also lets rustls shrink its receive buffer: it keeps the size of the
/// largest record it last read (up to 18 KiB) until its next read, and an idle connection has
/// none until the next cycle. With a read that finds nothing, the buffer goes back to 4 KiB.
fn idle(mut io: Tls) -> Option<Tls> {
    /// `Read` over the socket's non-blocking `try_read`.
    struct TryRead<'a>(&'a TcpStream);
    impl std::io::Read for TryRead<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.try_read(buf)
        }
    }
    let (tcp, tls) = io.get_mut();
    match tls.read_tls(&mut TryRead(tcp)) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        _ => return None,
    }
    // The socket's readiness slot still holds the waker of the task that read the response
    // (hyper's last read returned Pending), and that waker keeps the finished task's whole
    // allocation alive (12.8 KiB, heaptrack) until the next cycle polls the socket again: about
    // 12.8 MiB at 1,000 nodes. A no-op waker takes its place; nothing waits on an idle socket.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match tcp.poll_read_ready(&mut cx) {
        std::task::Poll::Pending => Some(io),
        // Readable again already: data or EOF on an idle connection, so it is not reusable.
        std::task::Poll::Ready(_) => None,
    }
}

/// Whether a response leaves its connection open for another request (HTTP/1.1 without
/// `Connection: close`).
fn keeps_alive<B>(response: &hyper::Response<B>) -> bool {
    response.version() == http::Version::HTTP_11
        && !response
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            })
}

/// `--kubelet-insecure-tls`: any certificate is accepted, but the handshake signature is still
/// checked against the presented certificate's key, so the TLS session itself is sound.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// Bucket bounds (seconds) shared by the request and cycle histograms.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        self.count += 1;
        self.sum += s;
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i] += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// What is known about one node's scrapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub last_success: Option<SystemTime>,
    pub last_duration: Duration,
    /// `None` after a success; the error text after a failure.
    pub last_error: Option<String>,
    pub successes: u64,
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Stats {
    nodes: BTreeMap<String, NodeStats>,
    results: BTreeMap<&'static str, u64>,
    requests: Histogram,
    cycles: Histogram,
    last_cycle_end: Option<Instant>,
}

/// The outcome of one node in a cycle.
#[derive(Debug)]
pub struct NodeOutcome {
    pub node: String,
    /// `host:port` of its kubelet.
    pub address: String,
    pub duration: Duration,
    pub result: Result<(), FetchError>,
}

/// The outcome of one cycle.
#[derive(Debug)]
pub struct CycleReport {
    pub duration: Duration,
    /// Every target, in name order.
    pub nodes: Vec<NodeOutcome>,
}

impl CycleReport {
    pub fn succeeded(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|n| n.result.is_ok())
            .map(|n| n.node.as_str())
    }

    pub fn failed(&self) -> impl Iterator<Item = (&str, &FetchError)> {
        self.nodes
            .iter()
            .filter_map(|n| n.result.as_ref().err().map(|e| (n.node.as_str(), e)))
    }
}

// ---------------------------------------------------------------------------------------------
// The scraper
// ---------------------------------------------------------------------------------------------

struct Inner {
    config: ScrapeConfig,
    client: KubeletClient,
    source: Arc<dyn NodeSource>,
    store: Arc<SharedStore>,
    stats: Mutex<Stats>,
    /// Last token read from a token file, used when a later read fails.
    token: Mutex<Option<HeaderValue>>,
    created: Instant,
}

/// Runs scrape cycles into a store. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Scraper {
    inner: Arc<Inner>,
}

impl Scraper {
    pub fn new(
        config: ScrapeConfig,
        source: Arc<dyn NodeSource>,
        store: Arc<SharedStore>,
    ) -> Result<Self, ScrapeError> {
        let client = KubeletClient::new(&config)?;
        let token = match &config.token {
            BearerToken::Static(t) => bearer(t),
            _ => None,
        };
        Ok(Scraper {
            inner: Arc::new(Inner {
                config,
                client,
                source,
                store,
                stats: Mutex::new(Stats::default()),
                token: Mutex::new(token),
                created: Instant::now(),
            }),
        })
    }

    pub fn store(&self) -> &Arc<SharedStore> {
        &self.inner.store
    }

    pub fn client(&self) -> &KubeletClient {
        &self.inner.client
    }

    /// One cycle: scrape every target concurrently (bounded, staggered if so configured, each
    /// with its timeout), then store the successful batches. Always finishes within the request
    /// timeout (at most the metric resolution) plus scheduling slack: the batches are stored
    /// when the slowest node ends, so this bound is what keeps healthy nodes' data fresh.
    pub async fn scrape_once(&self) -> CycleReport {
        let inner = &self.inner;
        let start = Instant::now();
        let budget = inner
            .config
            .request_timeout
            .min(inner.config.metric_resolution);
        let deadline = tokio::time::Instant::from_std(start + budget);
        // Starts spread at most over half the budget, so the last node keeps half its timeout.
        let spread = inner.config.stagger.min(budget / 2);
        let mut targets = inner.source.nodes();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        targets.dedup_by(|a, b| a.name == b.name);
        let names: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        inner.client.retain(&names);
        drop(names);
        // Shared by the node tasks (a target's labels are not cloned per task).
        let targets: Arc<[NodeTarget]> = targets.into();

        let token = self.current_token();
        let semaphore = Arc::new(Semaphore::new(inner.config.max_concurrency.max(1)));
        // Nodes in the order of their stagger offsets. A node's task is spawned only when its
        // offset has come and a request slot is free, and joined as soon as it ends: a task
        // holds a whole HTTPS exchange's state (~25 KiB when first measured, 12.8 KiB now),
        // so spawning every node's task up front cost that per node at the start of each
        // cycle (heaptrack, 1,000 nodes).
        let mut order: Vec<(Duration, usize)> = (0..targets.len())
            .map(|i| (stagger_offset(&targets[i].name, spread), i))
            .collect();
        order.sort_unstable();
        let mut pending = order.into_iter().peekable();
        let start_at = tokio::time::Instant::from_std(start);
        let mut tasks = JoinSet::new();
        let mut batches: Vec<(usize, MetricsBatch)> = Vec::with_capacity(targets.len());
        let mut outcomes = Vec::with_capacity(targets.len());
        let mut collect = |i: usize, result: Result<MetricsBatch, FetchError>, duration| {
            let result = match result {
                Ok(batch) => {
                    batches.push((i, batch));
                    Ok(())
                }
                Err(e) => Err(e),
            };
            outcomes.push(NodeOutcome {
                node: targets[i].name.clone(),
                address: targets[i].host_port(),
                duration,
                result,
            });
        };
        loop {
            let next = pending.peek().copied();
            let slot = async {
                let (offset, _) = next?;
                tokio::time::timeout_at(deadline, async {
                    tokio::time::sleep_until(start_at + offset).await;
                    // The semaphore is never closed.
                    semaphore.clone().acquire_owned().await.ok()
                })
                .await
                .ok()
            };
            tokio::select! {
                biased;
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => match joined {
                    Ok((i, result, duration)) => collect(i, result, duration),
                    // A panicking node task loses only that node.
                    Err(e) => tracing::error!(error = %e, "a node's scrape task failed"),
                },
                started = slot, if next.is_some() => {
                    let Some((_, i)) = pending.next() else { continue };
                    let Some(permit) = started else {
                        // The cycle ran out of time before this node (and every later one)
                        // could start.
                        collect(i, Err(FetchError::Deadline), Duration::ZERO);
                        for (_, i) in pending.by_ref() {
                            collect(i, Err(FetchError::Deadline), Duration::ZERO);
                        }
                        continue;
                    };
                    let this = self.clone();
                    let token = token.clone();
                    let targets = targets.clone();
                    // Boxed first: tokio moves an unboxed future of this size (12.8 KiB, under
                    // its 16 KiB boxing threshold) by value several times while spawning it,
                    // and those copies were about 3% of the scraper's CPU at 1,000 nodes (perf).
                    tasks.spawn(Box::pin(async move {
                        let target = &targets[i];
                        let timeout = this.inner.config.request_timeout;
                        let started = Instant::now();
                        let result = tokio::time::timeout_at(deadline, async {
                            let request_time = SystemTime::now();
                            let get = tokio::time::timeout(
                                timeout,
                                this.inner.client.get(target, token.as_ref()),
                            );
                            let body = holding_for(permit, timeout / 10, get)
                                .await
                                .map_err(|_| FetchError::Timeout(timeout))??;
                            Ok::<_, FetchError>(decode(&body, request_time)?)
                        })
                        .await
                        // The cycle deadline ending a request under way is that node timing out.
                        .unwrap_or(Err(FetchError::Timeout(timeout)));
                        (i, result, started.elapsed())
                    }));
                },
                else => break,
            }
        }
        inner
            .store
            .store(batches.iter().map(|(i, b)| (targets[*i].name.as_str(), b)));
        outcomes.sort_by(|a, b| a.node.cmp(&b.node));
        let report = CycleReport {
            duration: start.elapsed(),
            nodes: outcomes,
        };
        self.record(&report);
        report
    }

    /// Runs a cycle every metric resolution until `shutdown` turns true (or its sender is
    /// dropped). Failed nodes are logged (warn, with node and address).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.inner.config.metric_resolution);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            }
            let report = tokio::select! {
                r = self.scrape_once() => r,
                _ = shutdown.changed() => break,
            };
            for n in &report.nodes {
                match &n.result {
                    Err(e) => tracing::warn!(
                        node = %n.node,
                        address = %n.address,
                        error = %e,
                        "scraping node failed"
                    ),
                    Ok(()) => tracing::debug!(
                        node = %n.node,
                        address = %n.address,
                        duration = ?n.duration,
                        "scraped node"
                    ),
                }
            }
            tracing::debug!(duration = ?report.duration, nodes = report.nodes.len(), "scrape cycle done");
        }
    }

    /// Liveness: the last cycle ended within `2 × resolution` (or the scraper is younger than
    /// that and still on its first cycle).
    pub fn check_liveness(&self) -> Result<(), String> {
        let limit = self.inner.config.metric_resolution * 2;
        let last = self.stats().last_cycle_end;
        let since = last.unwrap_or(self.inner.created).elapsed();
        if since <= limit {
            Ok(())
        } else {
            Err(match last {
                Some(_) => format!("last scrape cycle ended {since:?} ago (limit {limit:?})"),
                None => format!("no scrape cycle finished in {since:?} (limit {limit:?})"),
            })
        }
    }

    /// Per-node statistics, by node name.
    pub fn node_stats(&self) -> BTreeMap<String, NodeStats> {
        self.stats().nodes.clone()
    }

    /// Requests counted per result label (`success` or a [`FetchError::kind`]).
    pub fn result_counts(&self) -> BTreeMap<&'static str, u64> {
        self.stats().results.clone()
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn current_token(&self) -> Option<HeaderValue> {
        let mut cached = self
            .inner
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let BearerToken::File(path) = &self.inner.config.token {
            match std::fs::read_to_string(path) {
                Ok(t) => match bearer(&t) {
                    Some(v) => *cached = Some(v),
                    None => {
                        tracing::warn!(path = %path.display(), "kubelet token is empty or not a valid header")
                    }
                },
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "reading kubelet token failed")
                }
            }
        }
        cached.clone()
    }

    fn record(&self, report: &CycleReport) {
        let now = SystemTime::now();
        let mut stats = self.stats();
        let live: HashSet<&str> = report.nodes.iter().map(|n| n.node.as_str()).collect();
        stats.nodes.retain(|k, _| live.contains(&k.as_str()));
        for n in &report.nodes {
            let kind = match &n.result {
                Ok(()) => "success",
                Err(e) => e.kind(),
            };
            *stats.results.entry(kind).or_default() += 1;
            stats.requests.observe(n.duration);
            // Look up before inserting: the name is only cloned for a node seen the first time.
            if !stats.nodes.contains_key(&n.node) {
                stats.nodes.insert(n.node.clone(), NodeStats::default());
            }
            let Some(entry) = stats.nodes.get_mut(&n.node) else {
                continue;
            };
            entry.last_duration = n.duration;
            match &n.result {
                Ok(()) => {
                    entry.last_success = Some(now);
                    entry.last_error = None;
                    entry.successes += 1;
                }
                Err(e) => {
                    entry.last_error = Some(e.to_string());
                    entry.errors += 1;
                }
            }
        }
        stats.cycles.observe(report.duration);
        stats.last_cycle_end = Some(Instant::now());
    }
}

/// Runs `work` holding its request slot for at most `hold`. A request still waiting after that
/// is a hung or black-holed kubelet (a healthy one answers within milliseconds): it gives its
/// slot to the next node and waits on without one, so that more dead nodes than slots cannot
/// keep every healthy node out of the cycle. Slots bound the work in flight; a waiting request
/// does no work and holds only its task.
async fn holding_for<F: Future>(
    mut permit: Option<OwnedSemaphorePermit>,
    hold: Duration,
    work: F,
) -> F::Output {
    let release = tokio::time::sleep(hold);
    tokio::pin!(work, release);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            () = &mut release, if permit.is_some() => drop(permit.take()),
        }
    }
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let t = token.trim();
    if t.is_empty() {
        return None;
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {t}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// A stable offset in `[0, spread)` for a node.
fn stagger_offset(name: &str, spread: Duration) -> Duration {
    let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    if spread_ms == 0 {
        return Duration::ZERO;
    }
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    Duration::from_millis(h.finish() % spread_ms)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl MetricsSource for Scraper {
    fn render(&self, out: &mut String) {
        let (nodes, results, requests, cycles) = {
            let s = self.stats();
            (
                s.nodes.clone(),
                s.results.clone(),
                s.requests.clone(),
                s.cycles.clone(),
            )
        };
        out.push_str("# HELP metrics_server_kubelet_request_duration_seconds Time to fetch and decode one kubelet's resource metrics.\n");
        out.push_str("# TYPE metrics_server_kubelet_request_duration_seconds histogram\n");
        requests.render(out, "metrics_server_kubelet_request_duration_seconds");
        out.push_str("# HELP metrics_server_kubelet_requests_total Kubelet scrapes by result (success or error kind).\n");
        out.push_str("# TYPE metrics_server_kubelet_requests_total counter\n");
        for (result, n) in &results {
            let _ = writeln!(
                out,
                "metrics_server_kubelet_requests_total{{result=\"{result}\"}} {n}"
            );
        }
        out.push_str("# HELP metrics_server_kubelet_last_success_timestamp_seconds Unix time of the node's last successful scrape.\n");
        out.push_str("# TYPE metrics_server_kubelet_last_success_timestamp_seconds gauge\n");
        for (node, s) in &nodes {
            if let Some(t) = s
                .last_success
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            {
                let _ = writeln!(
                    out,
                    "metrics_server_kubelet_last_success_timestamp_seconds{{node=\"{}\"}} {}",
                    escape_label(node),
                    t.as_secs_f64()
                );
            }
        }
        out.push_str("# HELP metrics_server_kubelet_last_request_duration_seconds Duration of the node's last scrape.\n");
        out.push_str("# TYPE metrics_server_kubelet_last_request_duration_seconds gauge\n");
        for (node, s) in &nodes {
            let _ = writeln!(
                out,
                "metrics_server_kubelet_last_request_duration_seconds{{node=\"{}\"}} {}",
                escape_label(node),
                s.last_duration.as_secs_f64()
            );
        }
        out.push_str("# HELP metrics_server_kubelet_errors_total Failed scrapes of the node.\n");
        out.push_str("# TYPE metrics_server_kubelet_errors_total counter\n");
        for (node, s) in &nodes {
            let _ = writeln!(
                out,
                "metrics_server_kubelet_errors_total{{node=\"{}\"}} {}",
                escape_label(node),
                s.errors
            );
        }
        out.push_str("# HELP metrics_server_scrape_cycle_duration_seconds Time of one scrape cycle over all nodes.\n");
        out.push_str("# TYPE metrics_server_scrape_cycle_duration_seconds histogram\n");
        cycles.render(out, "metrics_server_scrape_cycle_duration_seconds");
        let st = self.inner.store.stats();
        out.push_str("# HELP metrics_server_storage_points Samples held by the point store.\n");
        out.push_str("# TYPE metrics_server_storage_points gauge\n");
        let _ = writeln!(out, "metrics_server_storage_points {}", st.points);
        out.push_str("# HELP metrics_server_storage_objects Nodes, pods and containers held by the point store.\n");
        out.push_str("# TYPE metrics_server_storage_objects gauge\n");
        for (kind, n) in [
            ("node", st.nodes),
            ("pod", st.pods),
            ("container", st.containers),
        ] {
            let _ = writeln!(out, "metrics_server_storage_objects{{type=\"{kind}\"}} {n}");
        }
    }
}

/// Readiness: the store serves at least one node.
pub fn store_has_data(store: &SharedStore) -> Result<(), String> {
    if store.nodes().is_empty() {
        Err("no node metrics yet (two successful scrapes are needed for a rate)".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_minimum_is_enforced() {
        assert!(check_resolution(Duration::from_secs(10)).is_ok());
        assert!(check_resolution(DEFAULT_METRIC_RESOLUTION).is_ok());
        let err = check_resolution(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, ScrapeError::ResolutionTooLow { .. }));
        assert!(err.to_string().contains("below the minimum"), "{err}");
        assert!(check_resolution(Duration::from_millis(9_999)).is_err());
    }

    #[test]
    fn stagger_offsets_are_stable_and_bounded() {
        let spread = Duration::from_secs(3);
        for name in ["a", "kind-worker", "node-123"] {
            let o = stagger_offset(name, spread);
            assert!(o < spread);
            assert_eq!(o, stagger_offset(name, spread));
        }
        assert_eq!(stagger_offset("a", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn bearer_header_is_trimmed_and_validated() {
        assert_eq!(bearer(" abc \n").unwrap(), "Bearer abc");
        assert!(bearer("  ").is_none());
        assert!(bearer("a\u{1}b").is_none());
    }

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_secs(2));
        h.observe(Duration::from_secs(100));
        let mut out = String::new();
        h.render(&mut out, "x");
        assert!(out.contains("x_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2.5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"30\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
    }
}
