//! HTTPS serving: configuration, serving certificate, client-certificate classification, the
//! accept loop and graceful shutdown.
//!
//! The kube-apiserver only talks to aggregated API servers over TLS, and the requestheader trust
//! model depends on client certificates, so TLS is not optional here. rustls runs with the ring
//! provider (no C toolchain needed). Client certificates are optional at the TLS layer (kubectl
//! with a token, health probes from the kubelet) and classified after the handshake: which CA
//! signed the certificate decides whether it is a front proxy or a direct client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::auth::{certificate_subject, Authorizer, RequestHeaderNames, TokenReviewer, UserInfo};
use super::handler::{handle, AppState, HealthChecks};
use super::telemetry::Registry;
use kaddons_model::usage::MetricsProvider;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: invalid PEM: {source}")]
    Pem {
        what: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificates found")]
    NoCertificates(String),
    #[error("{what}: unusable CA certificate: {source}")]
    BadCa { what: String, source: rustls::Error },
    #[error("building client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("generating self-signed serving certificate: {0}")]
    CertGen(#[from] rcgen::Error),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files: certificate chain (leaf first) and private key.
    Files {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// Generate a CA and a serving certificate for `hosts` (DNS names or IPs) into `cert_dir`
    /// (`ca.crt`, `apiserver.crt`, `apiserver.key`), reusing them when all three exist, like
    /// metrics-server's `--cert-dir`.
    SelfSigned {
        cert_dir: PathBuf,
        hosts: Vec<String>,
    },
}

/// Front-proxy (requestheader) authentication settings (kube-apiserver's
/// `--requestheader-*` flags, or the `extension-apiserver-authentication` ConfigMap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// PEM bundle of the requestheader (front-proxy) CA.
    pub ca_pem: Vec<u8>,
    /// Allowed proxy certificate CNs; empty allows any CN signed by the CA.
    pub allowed_names: Vec<String>,
    pub headers: RequestHeaderNames,
}

/// Everything the API server needs; plain data so the binary maps its flags onto it.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (the binary uses port 10250; tests use 127.0.0.1:0).
    pub bind_address: SocketAddr,
    pub tls: TlsSource,
    /// PEM bundle of the client CA (`--client-ca-file`): user = CN, groups = O.
    pub client_ca_pem: Option<Vec<u8>>,
    pub request_header: Option<RequestHeaderConfig>,
    /// Bearer token checks; `None` rejects bearer tokens.
    pub token_reviewer: Option<Arc<dyn TokenReviewer>>,
    /// Access checks for users outside `system:masters`; `None` denies them.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    pub health: HealthChecks,
    /// Request statistics for `/metrics`; share it to add more series.
    pub registry: Arc<Registry>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Limit for a TLS handshake plus request headers, against idle or slow clients.
    pub handshake_timeout: Duration,
}

impl ServerConfig {
    /// Config with no client authentication configured, default health checks and timeouts.
    pub fn new(bind_address: SocketAddr, tls: TlsSource) -> Self {
        ServerConfig {
            bind_address,
            tls,
            client_ca_pem: None,
            request_header: None,
            token_reviewer: None,
            authorizer: None,
            health: HealthChecks::default(),
            registry: Arc::new(Registry::new()),
            shutdown_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Verifiers for the two client CAs, used after the handshake to tell which one signed the
/// presented certificate.
#[derive(Clone, Default)]
pub(crate) struct CertClassifier {
    request_header: Option<Arc<dyn ClientCertVerifier>>,
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
}

/// What a connection's client certificate proves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerIdentity {
    /// CN of a certificate verified against the requestheader CA.
    pub proxy_cn: Option<String>,
    /// User of a certificate verified against the client CA.
    pub client_user: Option<UserInfo>,
}

impl CertClassifier {
    fn classify(&self, certs: Option<&[CertificateDer<'static>]>) -> PeerIdentity {
        let Some((leaf, intermediates)) = certs.and_then(|c| c.split_first()) else {
            return PeerIdentity::default();
        };
        let now = UnixTime::now();
        // The subject is read only from a certificate one of the verifiers accepted.
        let subject = certificate_subject(leaf.as_ref()).unwrap_or_default();
        let mut id = PeerIdentity::default();
        if let Some(v) = &self.request_header {
            if v.verify_client_cert(leaf, intermediates, now).is_ok() {
                id.proxy_cn = Some(subject.common_name.clone().unwrap_or_default());
            }
        }
        if let Some(v) = &self.client_ca {
            if v.verify_client_cert(leaf, intermediates, now).is_ok() {
                // Kubernetes rejects client certificates without a CN.
                if let Some(cn) = subject.common_name.clone().filter(|c| !c.is_empty()) {
                    id.client_user = Some(UserInfo {
                        name: cn,
                        groups: subject.organizations.clone(),
                        extra: Default::default(),
                    });
                }
            }
        }
        id
    }
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    serving_ca_pem: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// PEM that clients should trust: the generated CA for self-signed serving, or the last
    /// certificate of the given chain. This is the APIService `caBundle`.
    pub fn serving_ca_pem(&self) -> &str {
        &self.serving_ca_pem
    }

    /// Stops accepting, lets in-flight requests finish (up to the shutdown timeout), and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds, loads or generates the serving certificate and starts serving in the background.
pub async fn start(
    config: ServerConfig,
    provider: Arc<dyn MetricsProvider>,
) -> Result<ServerHandle, ServeError> {
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key, serving_ca_pem) = serving_material(&config.tls)?;

    let mut classifier = CertClassifier::default();
    let mut union = RootCertStore::empty();
    if let Some(rh) = &config.request_header {
        let roots = root_store(&rh.ca_pem, "requestheader CA")?;
        union.roots.extend(roots.roots.iter().cloned());
        classifier.request_header = Some(verifier(roots, &crypto)?);
    }
    if let Some(pem) = &config.client_ca_pem {
        let roots = root_store(pem, "client CA")?;
        union.roots.extend(roots.roots.iter().cloned());
        classifier.client_ca = Some(verifier(roots, &crypto)?);
    }
    let builder = rustls::ServerConfig::builder_with_provider(crypto.clone())
        .with_safe_default_protocol_versions()?;
    let tls = if union.is_empty() {
        builder.with_no_client_auth()
    } else {
        // One handshake verifier over both CAs (so clients see both in the CA hint list and
        // present their certificate); classification happens per connection afterwards.
        builder.with_client_cert_verifier(verifier(union, &crypto)?)
    }
    .with_single_cert(chain, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let listener = TcpListener::bind(config.bind_address)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.bind_address,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.bind_address,
        source,
    })?;

    let state = Arc::new(AppState {
        provider,
        request_header: config
            .request_header
            .as_ref()
            .map(|rh| (rh.allowed_names.clone(), rh.headers.clone())),
        token_reviewer: config.token_reviewer.clone(),
        authorizer: config.authorizer.clone(),
        health: config.health.clone(),
        registry: config.registry.clone(),
        server_address: local_addr.to_string(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(
        listener,
        acceptor,
        classifier,
        state,
        shutdown_rx,
        config.shutdown_timeout,
        config.handshake_timeout,
    ));
    Ok(ServerHandle {
        local_addr,
        serving_ca_pem,
        shutdown: shutdown_tx,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    classifier: CertClassifier,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
    shutdown_timeout: Duration,
    handshake_timeout: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(_) => {
                // Usually EMFILE: back off instead of spinning; the listener stays usable.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let classifier = classifier.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // Handshakes run in their own task so a slow client cannot stall accepting.
            let Ok(Ok(tls)) = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
            else {
                return;
            };
            let peer = Arc::new(classifier.classify(tls.get_ref().1.peer_certificates()));
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let peer = peer.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(state, peer, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout)
                .serve_connection(TokioIo::new(tls), service);
            // Connection errors (client hung up, bad request line) only affect that client.
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(shutdown_timeout, graceful.shutdown()).await;
}

fn verifier(
    roots: RootCertStore,
    crypto: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, ServeError> {
    Ok(
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto.clone())
            .allow_unauthenticated()
            .build()?,
    )
}

fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, ServeError> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|source| ServeError::Pem {
            what: what.into(),
            source,
        })?;
        store.add(cert).map_err(|source| ServeError::BadCa {
            what: what.into(),
            source,
        })?;
    }
    if store.is_empty() {
        return Err(ServeError::NoCertificates(what.into()));
    }
    Ok(store)
}

type Material = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

fn serving_material(source: &TlsSource) -> Result<Material, ServeError> {
    match source {
        TlsSource::Files {
            cert_file,
            key_file,
        } => {
            let cert_pem = read(cert_file)?;
            let key_pem = read(key_file)?;
            let chain = parse_chain(&cert_pem, cert_file)?;
            let key = parse_key(&key_pem, key_file)?;
            let ca = last_pem_block(&cert_pem);
            Ok((chain, key, ca))
        }
        TlsSource::SelfSigned { cert_dir, hosts } => self_signed(cert_dir, hosts),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_chain(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ServeError::Pem {
            what: path.display().to_string(),
            source,
        })?;
    if chain.is_empty() {
        return Err(ServeError::NoCertificates(path.display().to_string()));
    }
    Ok(chain)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| ServeError::Pem {
        what: path.display().to_string(),
        source,
    })
}

/// The last PEM block of a bundle (the CA end of a leaf-first chain).
fn last_pem_block(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    match text.rfind("-----BEGIN CERTIFICATE-----") {
        Some(i) => text[i..].trim_end().to_string() + "\n",
        None => text.into_owned(),
    }
}

const CA_FILE: &str = "ca.crt";
const CERT_FILE: &str = "apiserver.crt";
const KEY_FILE: &str = "apiserver.key";

fn self_signed(cert_dir: &Path, hosts: &[String]) -> Result<Material, ServeError> {
    let (ca_path, cert_path, key_path) = (
        cert_dir.join(CA_FILE),
        cert_dir.join(CERT_FILE),
        cert_dir.join(KEY_FILE),
    );
    if ca_path.is_file() && cert_path.is_file() && key_path.is_file() {
        let chain = parse_chain(&read(&cert_path)?, &cert_path)?;
        let key = parse_key(&read(&key_path)?, &key_path)?;
        let ca = String::from_utf8_lossy(&read(&ca_path)?).into_owned();
        return Ok((chain, key, ca));
    }
    let (ca_pem, leaf_pem, key_pem) = generate_serving_cert(hosts)?;
    std::fs::create_dir_all(cert_dir).map_err(|source| ServeError::Write {
        path: cert_dir.to_path_buf(),
        source,
    })?;
    let chain_pem = format!("{leaf_pem}{ca_pem}");
    write_file(&ca_path, ca_pem.as_bytes(), false)?;
    write_file(&cert_path, chain_pem.as_bytes(), false)?;
    write_file(&key_path, key_pem.as_bytes(), true)?;
    let chain = parse_chain(chain_pem.as_bytes(), &cert_path)?;
    let key = parse_key(key_pem.as_bytes(), &key_path)?;
    Ok((chain, key, ca_pem))
}

/// Writes a certificate (0644) or, with `secret`, a private key created 0600 from the first
/// byte (never written world-readable and chmod-ed after).
fn write_file(path: &Path, data: &[u8], secret: bool) -> Result<(), ServeError> {
    use kaddons_model::files::{write_secret, write_with_mode, PUBLIC_MODE};
    if secret {
        write_secret(path, data)
    } else {
        write_with_mode(path, data, PUBLIC_MODE)
    }
    .map_err(|source| ServeError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Generates a CA and a serving certificate for `hosts` (plus localhost and 127.0.0.1),
/// valid from yesterday for one year. Returns (CA PEM, leaf PEM, leaf key PEM).
///
/// A separate CA (rather than one self-signed leaf) is what client-go does too, and it lets
/// strict verifiers such as webpki accept the chain.
pub fn generate_serving_cert(hosts: &[String]) -> Result<(String, String, String), rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("kaddons-metrics-server-ca@{now}"),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    set_validity(&mut ca_params, now);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut names: Vec<String> = hosts.to_vec();
    for default in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == default) {
            names.push(default.to_string());
        }
    }
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("kaddons-metrics-server@{now}"));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut leaf, now);
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca)?;
    Ok((ca.pem(), leaf_cert.pem(), leaf_key.serialize_pem()))
}

/// Validity from yesterday to one year from today; a day of slack covers clock skew.
fn set_validity(params: &mut rcgen::CertificateParams, now_secs: u64) {
    let today = jiff::Timestamp::from_second(now_secs.min(i64::MAX as u64) as i64)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let ymd = |date: jiff::civil::Date| {
        // Feb 29 does not exist in most target years; the 28th is always valid.
        (
            i32::from(date.year()),
            date.month() as u8,
            date.day().min(28) as u8,
        )
    };
    let (y, m, d) = ymd(today.yesterday().unwrap_or(today));
    let (ty, tm, td) = ymd(today);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(ty + 1, tm, td);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_material_is_written_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let source = TlsSource::SelfSigned {
            cert_dir: dir.path().join("certs"),
            hosts: vec!["metrics.example".into(), "10.0.0.1".into()],
        };
        let (chain, _key, ca) = serving_material(&source).unwrap();
        assert_eq!(chain.len(), 2, "leaf plus CA");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = serving_material(&source).unwrap();
        assert_eq!(again.0, chain, "existing files reused");
        assert_eq!(again.2, ca);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("certs").join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(dir.path().join("certs").join(CERT_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn validity_runs_from_yesterday_for_a_year() {
        let dates = |secs: u64| {
            let mut p = rcgen::CertificateParams::default();
            set_validity(&mut p, secs);
            (p.not_before, p.not_after)
        };
        let ymd = rcgen::date_time_ymd;
        // 2024-03-01T12:00:00Z: yesterday is Feb 29, clamped to the 28th.
        assert_eq!(dates(1_709_294_400), (ymd(2024, 2, 28), ymd(2025, 3, 1)));
        // 2023-12-31T23:59:59Z.
        assert_eq!(dates(1_704_067_199), (ymd(2023, 12, 28), ymd(2024, 12, 28)));
        assert_eq!(dates(0), (ymd(1969, 12, 28), ymd(1971, 1, 1)));
    }

    #[test]
    fn pem_files_are_loaded_and_ca_is_the_chain_end() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, leaf, key) = generate_serving_cert(&["x.example".into()]).unwrap();
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, format!("{leaf}{ca}")).unwrap();
        std::fs::write(&key_file, key).unwrap();
        let (chain, _key, got_ca) = serving_material(&TlsSource::Files {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        })
        .unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(got_ca.trim(), ca.trim());
        std::fs::write(&key_file, "garbage").unwrap();
        assert!(matches!(
            serving_material(&TlsSource::Files {
                cert_file,
                key_file
            }),
            Err(ServeError::Pem { .. })
        ));
        assert!(matches!(
            serving_material(&TlsSource::Files {
                cert_file: dir.path().join("missing.crt"),
                key_file: dir.path().join("missing.key"),
            }),
            Err(ServeError::Read { .. })
        ));
    }

    #[test]
    fn root_store_rejects_empty_bundle() {
        assert!(matches!(
            root_store(b"not pem", "client CA"),
            Err(ServeError::NoCertificates(_))
        ));
    }
}
