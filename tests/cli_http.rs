//! The `kaddons` binary against a real HTTPS server on 127.0.0.1.
//!
//! tests/cluster.rs drives the library through kube-fake-client, which never opens a socket.
//! The failures users actually meet — rejected credentials, RBAC, a broken API server, a
//! cluster that hangs or is not running at all — come through TLS, HTTP status codes and
//! timeouts, and what matters then is what the binary prints and its exit code. So these tests
//! write a kubeconfig (a CA generated here as certificate-authority-data, a bearer token) that
//! points at a small TLS server with one scripted behaviour, run the built binary, and check
//! the exit code and that stderr carries one clear line naming the server and the context.
//!
//! The last tests replace the failure behaviours with a minimal API server (the aggregation
//! ConfigMap, 404 for every other object, server-side apply echoed back, empty label-selected
//! lists) and check the requests `enable` sends: field manager, force, dry run, and the
//! order of the apply phases.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::util::kaddons;

/// The kubeconfig context name; distinctive, so that a message naming it is easy to assert.
const CONTEXT: &str = "local-http";
/// The bearer token of the kubeconfig user; the happy-path server refuses anything else.
const TOKEN: &str = "kaddons-test-token";
/// Upper bound on one command run: only there to catch hangs, not a performance goal.
const HANG_BOUND: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------------
// PKI and kubeconfig
// ---------------------------------------------------------------------------------------------

/// A throwaway CA and a serving certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "kaddons-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    // The kubeconfig says https://127.0.0.1:PORT, so the certificate must name the IP.
    leaf.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: issuer.pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// Standard base64 with padding (kubeconfig `*-data` fields); written here to need no crate.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}

/// Writes a kubeconfig for `server` (trusting `ca_pem`, bearer token [`TOKEN`]) into `dir`.
fn write_kubeconfig(dir: &Path, server: &str, ca_pem: &str) -> PathBuf {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: http-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: tester
  user:
    token: {TOKEN}
contexts:
- name: {CONTEXT}
  context:
    cluster: http-test
    user: tester
current-context: {CONTEXT}
",
        ca = base64(ca_pem.as_bytes()),
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn has_query(&self, pair: &str) -> bool {
        self.query.split('&').any(|p| p == pair)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Handler = Arc<dyn Fn(&Seen) -> (u16, Value) + Send + Sync>;

#[derive(Clone)]
enum Behaviour {
    /// Answers every request with what the handler returns.
    Reply(Handler),
    /// Accepts TCP connections and never says a word (not even the TLS handshake).
    SilentTcp,
    /// Completes TLS, reads the request, and never answers it.
    SilentHttp,
}

/// The server, running on its own runtime so the test thread can block on the binary.
struct ApiServer {
    // Dropping the runtime stops the server.
    _rt: tokio::runtime::Runtime,
    url: String,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ApiServer {
    fn start(behaviour: Behaviour) -> ApiServer {
        let pki = pki();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert], pki.key)
        .unwrap();
        // HTTP/1.1 only: the server below speaks nothing else.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let seen = Arc::new(Mutex::new(Vec::new()));
        rt.spawn(accept_loop(listener, acceptor, behaviour, seen.clone()));
        ApiServer {
            _rt: rt,
            url: format!("https://{addr}"),
            ca_pem: pki.ca_pem,
            seen,
        }
    }

    fn kubeconfig(&self, dir: &Path) -> PathBuf {
        write_kubeconfig(dir, &self.url, &self.ca_pem)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    // Silent connections are kept open (dropping them would close them: not a hang).
    let mut held = Vec::new();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        if let Behaviour::SilentTcp = behaviour {
            held.push(socket);
            continue;
        }
        let acceptor = acceptor.clone();
        let behaviour = behaviour.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(socket).await else {
                return;
            };
            let service = service_fn(move |req| handle(req, behaviour.clone(), seen.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let request = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    seen.lock().unwrap().push(request.clone());
    let handler = match behaviour {
        Behaviour::Reply(h) => h,
        Behaviour::SilentHttp | Behaviour::SilentTcp => return std::future::pending().await,
    };
    let (code, value) = handler(&request);
    // A JSON string stands for a non-JSON body (what proxies in front of the API server send).
    let (content_type, body) = match value {
        Value::String(text) => ("text/html", text),
        other => ("application/json", other.to_string()),
    };
    Ok(Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

/// A `metav1.Status` failure as the API server sends it.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn always(code: u16, body: Value) -> Behaviour {
    Behaviour::Reply(Arc::new(move |_| (code, body.clone())))
}

/// A port on 127.0.0.1 with nothing listening: bound, then closed.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("https://{addr}")
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

struct Run {
    out: Output,
    elapsed: Duration,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

fn run(home: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let out = kaddons(home)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        // A hard stop so that a hang fails the test instead of blocking the suite.
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    Run {
        out,
        elapsed: start.elapsed(),
    }
}

/// The commands that must fail as a whole when the cluster cannot be used.
const FAILING_COMMANDS: [&[&str]; 3] = [
    &[
        "enable",
        "metrics-server",
        "--profile",
        "generic",
        "--no-wait",
    ],
    &["disable", "metrics-server"],
    &["status", "metrics-server"],
];

/// Lines a command may print on stderr before it fails (progress, not error noise).
const STATUS_PREFIXES: [&str; 2] = ["enabling ", "profile: "];

/// Debug formatting, panics and backtraces that must never reach a user.
const NOISE: [&str; 8] = [
    "ApiError",
    "HyperError",
    "Error {",
    "Status {",
    "panicked",
    "backtrace",
    "caused by",
    "RUST_BACKTRACE",
];

/// Checks exit code 2 and one error line on stderr containing every piece of `wanted`;
/// returns that line.
fn assert_one_error_line(what: &str, r: &Run, wanted: &[&str]) -> String {
    let stderr = r.stderr();
    assert_eq!(r.code(), Some(2), "{what}: exit code; stderr:\n{stderr}");
    for noise in NOISE {
        assert!(
            !stderr.contains(noise),
            "{what}: stderr has {noise:?}:\n{stderr}"
        );
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{what}: one error line expected:\n{stderr}"
    );
    for line in stderr.lines() {
        assert!(
            line.starts_with("error: ") || STATUS_PREFIXES.iter().any(|p| line.starts_with(p)),
            "{what}: unexpected stderr line {line:?}:\n{stderr}"
        );
    }
    let line = errors[0];
    for w in wanted {
        assert!(line.contains(w), "{what}: {w:?} missing from {line:?}");
    }
    line.to_string()
}

/// `list` against a failing cluster: the catalog anyway, one warning, exit 0.
fn assert_list_degrades(
    what: &str,
    home: &Path,
    kubeconfig: &Path,
    args: &[&str],
    wanted: &[&str],
) {
    let r = run(home, kubeconfig, args);
    let stderr = r.stderr();
    let stdout = r.stdout();
    assert_eq!(
        r.code(),
        Some(0),
        "{what}: list exit code; stderr:\n{stderr}"
    );
    assert!(r.elapsed < HANG_BOUND, "{what}: list took {:?}", r.elapsed);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("metrics-server "))
        .unwrap_or_else(|| panic!("{what}: no metrics-server row in:\n{stdout}"));
    assert!(row.contains("unknown"), "{what}: STATUS of {row:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: list stderr:\n{stderr}");
    assert!(lines[0].starts_with("warning: "), "{what}: {stderr}");
    for noise in NOISE {
        assert!(!stderr.contains(noise), "{what}: list stderr has {noise:?}");
    }
    for w in wanted {
        assert!(
            lines[0].contains(w),
            "{what}: list warning lacks {w:?}: {stderr}"
        );
    }
}

/// Every failing command, then `list`, against one server; each must end within
/// [`HANG_BOUND`].
fn check_failure(
    name: &str,
    kubeconfig_for: impl Fn(&Path) -> (PathBuf, String),
    extra_args: &[&str],
    wanted: &[&str],
) {
    let home = tempfile::tempdir().unwrap();
    let (kubeconfig, url) = kubeconfig_for(home.path());
    let mut wanted_all = vec![url.as_str(), "\"local-http\""];
    wanted_all.extend_from_slice(wanted);
    for cmd in FAILING_COMMANDS {
        let args: Vec<&str> = extra_args.iter().chain(cmd.iter()).copied().collect();
        let what = format!("{name}: kaddons {}", args.join(" "));
        let r = run(home.path(), &kubeconfig, &args);
        assert!(r.elapsed < HANG_BOUND, "{what} took {:?}", r.elapsed);
        assert_one_error_line(&what, &r, &wanted_all);
        assert!(r.stdout().is_empty(), "{what}: stdout {:?}", r.stdout());
    }
    let mut list_args: Vec<&str> = extra_args.to_vec();
    list_args.push("list");
    assert_list_degrades(name, home.path(), &kubeconfig, &list_args, &wanted_all);
}

fn serve(server: &ApiServer) -> impl Fn(&Path) -> (PathBuf, String) + '_ {
    move |dir| (server.kubeconfig(dir), server.url.clone())
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn rejected_credentials_are_one_line_naming_server_and_context() {
    let server = ApiServer::start(always(401, status(401, "Unauthorized", "Unauthorized")));
    check_failure(
        "401",
        serve(&server),
        &[],
        &["rejected the credentials", "401"],
    );
    // The token went out: the 401 is the server's verdict, not a client that sent nothing.
    let seen = server.seen();
    assert!(!seen.is_empty());
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));
}

#[test]
fn forbidden_carries_the_servers_message() {
    let message = "serviceaccounts is forbidden: User \"tester\" cannot list resource \"serviceaccounts\" in API group \"\" at the cluster scope";
    let server = ApiServer::start(always(403, status(403, "Forbidden", message)));
    check_failure("403", serve(&server), &[], &["forbidden", message]);
}

#[test]
fn server_errors_carry_the_code_and_message() {
    let message = "Internal error occurred: etcd cluster is unavailable or misconfigured";
    let server = ApiServer::start(always(500, status(500, "InternalError", message)));
    check_failure("500", serve(&server), &[], &["500", message]);
}

#[test]
fn unavailable_is_reported_at_once_not_retried_into_a_timeout() {
    // A load balancer in front of a stopped control plane answers 503 in plain text. The
    // answer must come back as what it is, well before the (default 10s) request timeout.
    let server = ApiServer::start(Behaviour::Reply(Arc::new(|_| {
        (503, Value::String("no healthy upstream".into()))
    })));
    check_failure(
        "503 text",
        serve(&server),
        &[],
        &["503 Service Unavailable: no healthy upstream"],
    );
}

#[test]
fn html_error_page_becomes_one_short_line() {
    let page = format!(
        "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n{}</body>\n</html>\n",
        "<!-- padding -->\n".repeat(100)
    );
    let server = ApiServer::start(Behaviour::Reply(Arc::new(move |_| {
        (502, Value::String(page.clone()))
    })));
    check_failure(
        "502 html",
        serve(&server),
        &[],
        &[
            "502 Bad Gateway: <html> <head><title>502 Bad Gateway</title>",
            "...",
        ],
    );
}

#[test]
fn server_that_accepts_but_never_answers_times_out() {
    let server = ApiServer::start(Behaviour::SilentTcp);
    check_failure(
        "silent tcp",
        serve(&server),
        &["--request-timeout", "1s"],
        &["did not answer within 1s"],
    );
}

#[test]
fn server_that_never_answers_a_request_times_out() {
    let server = ApiServer::start(Behaviour::SilentHttp);
    check_failure(
        "silent http",
        serve(&server),
        &["--request-timeout", "1s"],
        &["did not answer within 1s"],
    );
    // The requests did arrive: this is the hang after TLS, not the one before.
    assert!(!server.seen().is_empty());
}

#[test]
fn nothing_listening_is_cannot_reach() {
    let url = closed_port_url();
    // Any CA will do: the connection is refused before TLS starts.
    let ca_pem = pki().ca_pem;
    check_failure(
        "closed port",
        |dir| (write_kubeconfig(dir, &url, &ca_pem), url.clone()),
        &[],
        &["cannot reach the API server"],
    );
}

#[test]
fn unknown_context_suggests_the_closest() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_port_url();
    let kubeconfig = write_kubeconfig(home.path(), &url, &pki().ca_pem);
    for cmd in FAILING_COMMANDS {
        let mut args = vec!["--context", "local-htp"];
        args.extend_from_slice(cmd);
        let what = format!("kaddons {}", args.join(" "));
        let r = run(home.path(), &kubeconfig, &args);
        let stderr = r.stderr();
        assert_eq!(r.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("\"local-htp\"") && stderr.contains("did you mean \"local-http\""),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("cannot reach"), "{what}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal API server: enable end to end over HTTP
// ---------------------------------------------------------------------------------------------

const AGGREGATION_CM: &str =
    "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";

/// Just enough of an API server for `enable --no-wait`: the aggregation ConfigMap, 404 for any
/// other object, server-side apply echoed back as created, and no objects for label selectors.
fn minimal_api(s: &Seen) -> (u16, Value) {
    if s.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return (401, status(401, "Unauthorized", "Unauthorized"));
    }
    match s.method.as_str() {
        "GET" if s.path == AGGREGATION_CM => (
            200,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "extension-apiserver-authentication",
                    "namespace": "kube-system",
                    "resourceVersion": "10",
                },
                "data": {
                    "requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----\n...\n",
                    "requestheader-allowed-names": "[\"front-proxy-client\"]",
                },
            }),
        ),
        "GET" if s.query.contains("labelSelector=") => (
            200,
            json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "10"}, "items": []}),
        ),
        "GET" => {
            let name = s.path.rsplit('/').next().unwrap_or("");
            (
                404,
                status(404, "NotFound", &format!("\"{name}\" not found")),
            )
        }
        "PATCH" => {
            let mut obj = s.json();
            if !obj.is_object() {
                return (
                    400,
                    status(400, "BadRequest", "apply body is not a JSON object"),
                );
            }
            obj["metadata"]["resourceVersion"] = json!("11");
            obj["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
            (200, obj)
        }
        other => (
            405,
            status(
                405,
                "MethodNotAllowed",
                &format!("{other} is not served here"),
            ),
        ),
    }
}

fn patches(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method == "PATCH").collect()
}

/// The applied object's kind and name, from the PATCH body.
fn applied(s: &Seen) -> (String, String) {
    let v = s.json();
    (
        v["kind"].as_str().unwrap_or("").to_string(),
        v["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn enable_applies_in_phases_with_kaddons_field_manager() {
    let server = ApiServer::start(Behaviour::Reply(Arc::new(minimal_api)));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(home.path());
    let r = run(
        home.path(),
        &kubeconfig,
        &["enable", "metrics-server", "--profile", "kind", "--no-wait"],
    );
    let stderr = r.stderr();
    assert_eq!(r.code(), Some(0), "stderr:\n{stderr}");
    assert!(r.elapsed < HANG_BOUND, "took {:?}", r.elapsed);

    let seen = server.seen();
    let patches = patches(&seen);
    let kinds: Vec<(String, String)> = patches.iter().map(|s| applied(s)).collect();
    assert!(
        patches.len() >= 8,
        "metrics-server has at least 8 objects; applied: {kinds:?}"
    );
    for p in &patches {
        assert!(
            p.has_query("fieldManager=kaddons") && p.has_query("force=true"),
            "{} {}?{}",
            p.method,
            p.path,
            p.query
        );
        assert!(!p.query.contains("dryRun"), "{}?{}", p.path, p.query);
        // The path names the object the body describes.
        let (_, name) = applied(p);
        assert!(
            p.path.ends_with(&format!("/{name}")),
            "{} vs {name}",
            p.path
        );
    }
    // Phases: the APIService goes last, after the Deployment that serves it exists.
    let position = |kind: &str| kinds.iter().position(|(k, _)| k == kind);
    let deployment = position("Deployment").expect("a Deployment PATCH");
    let apiservice = position("APIService").expect("an APIService PATCH");
    assert!(deployment < apiservice, "order: {kinds:?}");
    let service_account = position("ServiceAccount").expect("a ServiceAccount PATCH");
    assert!(service_account < deployment, "order: {kinds:?}");

    // Every applied object is reported as created on stderr; nothing on stdout.
    for (kind, name) in &kinds {
        assert!(
            stderr.lines().any(|l| l.starts_with(&format!("{kind} "))
                && l.ends_with(&format!("/{name} created"))
                || l == format!("{kind} {name} created")),
            "{kind} {name} not reported as created:\n{stderr}"
        );
    }
    assert!(stderr.contains("APIService v1beta1.metrics.k8s.io created"));
    assert!(r.stdout().is_empty(), "stdout: {}", r.stdout());
    // The profile was honoured: the kind profile adds --kubelet-insecure-tls.
    let deployment_body = patches[deployment].json();
    assert!(
        deployment_body
            .to_string()
            .contains("--kubelet-insecure-tls"),
        "kind profile not applied"
    );
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));
}

#[test]
fn enable_dry_run_sends_dry_run_all_and_prints_would_create() {
    let server = ApiServer::start(Behaviour::Reply(Arc::new(minimal_api)));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(home.path());
    let r = run(
        home.path(),
        &kubeconfig,
        &["enable", "metrics-server", "--profile", "kind", "--dry-run"],
    );
    let stdout = r.stdout();
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr());
    let seen = server.seen();
    let patches = patches(&seen);
    assert!(!patches.is_empty());
    for p in &patches {
        assert!(
            p.has_query("dryRun=All")
                && p.has_query("fieldManager=kaddons")
                && p.has_query("force=true"),
            "{}?{}",
            p.path,
            p.query
        );
    }
    // Nothing but GET and dry-run PATCH: no deletes, no real writes.
    assert!(
        seen.iter()
            .all(|s| s.method == "GET" || s.method == "PATCH"),
        "{:?}",
        seen.iter().map(|s| &s.method).collect::<Vec<_>>()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), patches.len(), "stdout:\n{stdout}");
    assert!(
        lines.iter().all(|l| l.ends_with(" would create")),
        "{stdout}"
    );
    assert!(stdout.contains("Deployment kube-system/metrics-server would create"));
    assert!(stdout.contains("APIService v1beta1.metrics.k8s.io would create"));
    assert!(!r.stderr().contains(" created"), "{}", r.stderr());
}

#[test]
fn enable_json_report_has_the_documented_shape() {
    let server = ApiServer::start(Behaviour::Reply(Arc::new(minimal_api)));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(home.path());
    let r = run(
        home.path(),
        &kubeconfig,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kind",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr());
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["dryRun"], true, "{v}");
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 9, "{v}");
    assert_eq!(
        changes[0]["object"],
        "ServiceAccount kube-system/metrics-server"
    );
    assert_eq!(changes[0]["change"], "created");
}

/// `minimal_api` whose `/version` reports Kubernetes 1.`minor`.
fn api_at_minor(minor: u32) -> Handler {
    Arc::new(move |s: &Seen| {
        if s.method == "GET" && s.path == "/version" {
            return (
                200,
                json!({
                    "major": "1",
                    "minor": minor.to_string(),
                    "gitVersion": format!("v1.{minor}.2"),
                    "gitCommit": "", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                    "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
                }),
            );
        }
        minimal_api(s)
    })
}

/// The image of the Deployment applied in a run.
fn applied_image(seen: &[Seen]) -> String {
    patches(seen)
        .iter()
        .map(|s| s.json())
        .find(|o| o["kind"] == "Deployment")
        .map(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .expect("a Deployment PATCH")
}

#[test]
fn enable_takes_the_newest_version_the_clusters_kubernetes_supports() {
    for (minor, want) in [(31, "v0.8.1"), (27, "v0.7.2"), (34, "v0.9.0")] {
        let server = ApiServer::start(Behaviour::Reply(api_at_minor(minor)));
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = server.kubeconfig(home.path());
        let r = run(
            home.path(),
            &kubeconfig,
            &["enable", "metrics-server", "--profile", "kind", "--dry-run"],
        );
        assert_eq!(r.code(), Some(0), "1.{minor}: {}", r.stderr());
        assert!(
            applied_image(&server.seen()).ends_with(&format!(":{want}")),
            "1.{minor}"
        );
        assert!(
            r.stderr().contains(&format!(
                "metrics-server {want}: newest supporting Kubernetes 1.{minor}"
            )),
            "{}",
            r.stderr()
        );
    }
}

#[test]
fn enable_on_kubernetes_1_24_is_refused_naming_the_range_and_changes_nothing() {
    let server = ApiServer::start(Behaviour::Reply(api_at_minor(24)));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(home.path());
    let r = run(
        home.path(),
        &kubeconfig,
        &["enable", "metrics-server", "--profile", "kind", "--no-wait"],
    );
    assert_eq!(r.code(), Some(2), "{}", r.stderr());
    assert!(
        r.stderr().contains("needs Kubernetes 1.25 or newer"),
        "{}",
        r.stderr()
    );
    assert!(patches(&server.seen()).is_empty());
}

#[test]
fn enable_pinned_beyond_the_clusters_kubernetes_needs_force() {
    let server = ApiServer::start(Behaviour::Reply(api_at_minor(30)));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(home.path());
    let args = [
        "enable",
        "metrics-server",
        "--profile",
        "kind",
        "--dry-run",
        "--addon-version",
        "v0.9.0",
    ];
    let r = run(home.path(), &kubeconfig, &args);
    assert_eq!(r.code(), Some(2), "{}", r.stderr());
    assert!(
        r.stderr().contains("v0.9.0 needs Kubernetes 1.34"),
        "{}",
        r.stderr()
    );
    assert!(patches(&server.seen()).is_empty());
    let mut forced = args.to_vec();
    forced.push("--force");
    let r = run(home.path(), &kubeconfig, &forced);
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(applied_image(&server.seen()).ends_with(":v0.9.0"));
}

#[test]
fn render_asks_the_kubeconfigs_cluster_for_its_version() {
    let server = ApiServer::start(Behaviour::Reply(api_at_minor(29)));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(home.path());
    let r = run(
        home.path(),
        &kubeconfig,
        &["render", "metrics-server", "--profile", "generic"],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(
        r.stdout().contains("metrics-server:v0.7.2"),
        "{}",
        r.stdout()
    );
    // --kube-version decides offline: the cluster is not asked.
    let before = server.seen().len();
    let r = run(
        home.path(),
        &kubeconfig,
        &[
            "render",
            "metrics-server",
            "--profile",
            "generic",
            "--kube-version",
            "1.33",
        ],
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr());
    assert!(r.stdout().contains("metrics-server:v0.8.1"));
    assert_eq!(server.seen().len(), before);
}
