//! The metrics API over real sockets: the server runs in-process on 127.0.0.1:0 with a fixed
//! data provider and test PKI, and is exercised by the real `kubectl` (discovery, Tables, errors
//! as kubectl renders them) and by a plain rustls/hyper client for the front-proxy paths kubectl
//! cannot take (it cannot send X-Remote-* headers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kaddons_metrics_server::api::{
    start, Attributes, Decision, HealthChecks, RequestHeaderConfig, RequestHeaderNames,
    ServerConfig, ServerHandle, Target, TlsSource, UserInfo,
};
use kaddons_model::usage::{ContainerUsage, MetricsProvider, NodeUsage, PodUsage};
use kaddons_testkit::auth::{FnAuthorizer, StaticTokens};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use kaddons_testkit::pki::Ca;

// ---------------------------------------------------------------------------------------------
// Fixture: data, PKI, server
// ---------------------------------------------------------------------------------------------

struct FixedProvider;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl MetricsProvider for FixedProvider {
    fn nodes(&self) -> Vec<NodeUsage> {
        let ts = SystemTime::now() - Duration::from_secs(5);
        // Deliberately unsorted: the API must sort by name.
        vec![
            NodeUsage {
                name: "node-c".into(),
                labels: labels(&[("role", "worker"), ("zone", "b")]),
                timestamp: ts,
                window: Duration::from_millis(20_037),
                cpu_nanocores: 123_456_789,
                memory_bytes: 1_616_273_408, // 1578392Ki
            },
            NodeUsage {
                name: "node-a".into(),
                labels: labels(&[("role", "control-plane"), ("zone", "a")]),
                timestamp: ts,
                window: Duration::from_secs(15),
                cpu_nanocores: 500_000_000, // 500m
                memory_bytes: 536_870_912,  // 512Mi
            },
            NodeUsage {
                name: "node-b".into(),
                labels: labels(&[("role", "worker"), ("zone", "a")]),
                timestamp: ts,
                window: Duration::from_secs(15),
                cpu_nanocores: 2_000_000_000,    // 2
                memory_bytes: 2 * 1_073_741_824, // 2Gi
            },
        ]
    }

    fn pods(&self) -> Vec<PodUsage> {
        let ts = SystemTime::now() - Duration::from_secs(5);
        let pod = |ns: &str, name: &str, app: &str, cpu: u64, mem: u64| PodUsage {
            namespace: ns.into(),
            name: name.into(),
            labels: labels(&[("app", app)]),
            timestamp: ts,
            window: Duration::from_secs(15),
            containers: vec![
                ContainerUsage {
                    name: "main".into(),
                    cpu_nanocores: cpu,
                    memory_bytes: mem,
                },
                ContainerUsage {
                    name: "sidecar".into(),
                    cpu_nanocores: 1_000_000,
                    memory_bytes: 1_048_576,
                },
            ],
        };
        vec![
            pod("kube-system", "coredns-1", "dns", 3_000_000, 20 * 1_048_576),
            pod("default", "web-2", "x", 9_000_000, 63 * 1_048_576),
            pod("default", "web-1", "x", 4_000_000, 31 * 1_048_576),
            pod("default", "db-0", "db", 100_000_000, 255 * 1_048_576),
        ]
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    server: Option<ServerHandle>,
    addr: SocketAddr,
    serving_ca: String,
    client_ca: Ca,
    proxy_ca: Ca,
}

/// Authorizer of the fixture: discovery paths are open to every authenticated user (like the
/// `system:discovery` ClusterRole); metrics resources only to user `viewer`.
fn fixture_authorizer(a: &Attributes) -> Decision {
    match &a.target {
        Target::NonResource { .. } => Decision::Allow,
        Target::Resource { .. } if a.user.name == "viewer" => Decision::Allow,
        Target::Resource { .. } => Decision::Deny {
            reason: String::new(),
        },
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let client_ca = Ca::new("test-client-ca");
    let proxy_ca = Ca::new("test-front-proxy-ca");
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        TlsSource::SelfSigned {
            cert_dir: path.join("serving"),
            hosts: vec![],
        },
    );
    config.client_ca_pem = Some(client_ca.pem().into_bytes());
    config.request_header = Some(RequestHeaderConfig {
        ca_pem: proxy_ca.pem().into_bytes(),
        allowed_names: vec!["front-proxy-client".into()],
        headers: RequestHeaderNames::default(),
    });
    config.token_reviewer = Some(Arc::new(StaticTokens::new([(
        "good-token".to_string(),
        UserInfo::new("viewer", &["viewers"]),
    )])));
    config.authorizer = Some(Arc::new(FnAuthorizer::new(fixture_authorizer)));
    config.health = HealthChecks::default()
        .with_liveness("collection", || Ok(()))
        .with_readiness("store", || Ok(()));
    let server = start(config, Arc::new(FixedProvider)).await.unwrap();
    Fixture {
        _dir: dir,
        dir: path,
        addr: server.local_addr(),
        serving_ca: server.serving_ca_pem().to_string(),
        server: Some(server),
        client_ca,
        proxy_ca,
    }
}

// ---------------------------------------------------------------------------------------------
// kubectl helpers
// ---------------------------------------------------------------------------------------------

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_helper_is_correct() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"M"), "TQ==");
}

enum Creds<'a> {
    None,
    Cert(&'a (String, String)),
    Token(&'a str),
}

impl Fixture {
    fn kubeconfig(&self, name: &str, creds: Creds) -> PathBuf {
        let user = match creds {
            // With an empty user kubectl prompts for a username on stdin (and cannot read a
            // password without a terminal), so "no credentials" is basic auth, which this
            // server does not accept: no certificate, no bearer token.
            Creds::None => "  user:\n    username: nobody\n    password: nothing\n".to_string(),
            Creds::Cert((cert, key)) => format!(
                "  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
                base64(cert.as_bytes()),
                base64(key.as_bytes())
            ),
            Creds::Token(t) => format!("  user:\n    token: {t}\n"),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: https://{}\n    certificate-authority-data: {}\nusers:\n- name: u\n{user}contexts:\n- name: c\n  context:\n    cluster: t\n    user: u\ncurrent-context: c\n",
            self.addr,
            base64(self.serving_ca.as_bytes()),
        );
        let path = self.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Whether kubectl can run here. On CI a missing kubectl fails the test instead of skipping.
fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kubectl is required on CI (CI=true) but was not found on PATH");
        }
        eprintln!("SKIPPED: kubectl not found on PATH");
    }
    ok
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs kubectl off the async runtime with an isolated HOME and discovery cache.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let scratch = tempfile::tempdir().unwrap();
        let mut out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(scratch.path().join("cache"))
            .arg("--request-timeout=20s")
            .args(&args)
            .env("HOME", scratch.path())
            .env_remove("KUBECONFIG")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed stdin: any interactive prompt fails at once instead of hanging.
        drop(out.stdin.take());
        let out = out.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Runs kubectl, which must succeed, and splits its table output into rows (with the raw
/// output for messages).
async fn kubectl_table(kubeconfig: &Path, args: &[&str]) -> (Vec<Vec<String>>, String) {
    let out = kubectl(kubeconfig, args).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    (rows(&out.stdout), out.stdout)
}

/// Splits kubectl's table output into rows of whitespace-separated cells.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// kubectl tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_metrics_as_admin() {
    if !kubectl_available() {
        return;
    }
    let mut fx = fixture().await;
    let admin = fx.client_ca.client_cert("test-user", &["system:masters"]);
    let kc = fx.kubeconfig("admin", Creds::Cert(&admin));

    // Raw JSON list: items sorted by name, canonical quantities, Go durations.
    let out = kubectl(&kc, &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "NodeMetricsList");
    assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
    let items = v["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert_eq!(items[0]["usage"]["cpu"], "500m");
    assert_eq!(items[0]["usage"]["memory"], "512Mi");
    assert_eq!(items[1]["usage"]["cpu"], "2");
    assert_eq!(items[1]["usage"]["memory"], "2Gi");
    assert_eq!(items[2]["usage"]["cpu"], "123456789n");
    assert_eq!(items[2]["usage"]["memory"], "1578392Ki");
    assert_eq!(items[2]["window"], "20.037s");
    assert_eq!(items[2]["metadata"]["labels"]["zone"], "b");
    assert!(items[0]["timestamp"].as_str().unwrap().ends_with('Z'));

    // Server-side printing: CPU and MEMORY columns.
    let (table, stdout) = kubectl_table(&kc, &["get", "nodes.metrics.k8s.io"]).await;
    assert_eq!(table[0], ["NAME", "CPU", "MEMORY", "WINDOW"], "{}", stdout);
    assert_eq!(table[1], ["node-a", "500m", "512Mi", "15s"]);
    assert_eq!(table[2], ["node-b", "2", "2Gi", "15s"]);
    assert_eq!(table[3], ["node-c", "123456789n", "1578392Ki", "20.037s"]);
    assert_eq!(table.len(), 4);

    // Single object, still printed as a Table.
    let out = kubectl(&kc, &["get", "nodes.metrics.k8s.io", "node-b"]).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(
        rows(&out.stdout),
        [
            vec!["NAME", "CPU", "MEMORY", "WINDOW"],
            vec!["node-b", "2", "2Gi", "15s"]
        ]
    );

    // Label selector on nodes.
    let (table, stdout) = kubectl_table(
        &kc,
        &[
            "get",
            "nodes.metrics.k8s.io",
            "-l",
            "role=worker,zone in (a)",
        ],
    )
    .await;
    assert_eq!(table.len(), 2, "{}", stdout);
    assert_eq!(table[1][0], "node-b");

    // All namespaces: NAMESPACE column from the rows' object metadata, sorted ns then name.
    let (table, stdout) = kubectl_table(&kc, &["get", "pods.metrics.k8s.io", "-A"]).await;
    assert_eq!(
        table[0],
        ["NAMESPACE", "NAME", "CPU", "MEMORY", "WINDOW"],
        "{}",
        stdout
    );
    let keys: Vec<(String, String)> = table[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("default".to_string(), "db-0".to_string()),
            ("default".into(), "web-1".into()),
            ("default".into(), "web-2".into()),
            ("kube-system".into(), "coredns-1".into()),
        ]
    );
    // Container sums: 100m + 1m, 255Mi + 1Mi.
    assert_eq!(table[1][2..], ["101m", "256Mi", "15s"]);

    // Namespace plus label selector.
    let (table, stdout) = kubectl_table(
        &kc,
        &["get", "pods.metrics.k8s.io", "-n", "default", "-l", "app=x"],
    )
    .await;
    assert_eq!(table[0], ["NAME", "CPU", "MEMORY", "WINDOW"], "{}", stdout);
    assert_eq!(table[1], ["web-1", "5m", "32Mi", "15s"]);
    assert_eq!(table[2], ["web-2", "10m", "64Mi", "15s"]);
    assert_eq!(table.len(), 3);

    // Single pod as JSON.
    let out = kubectl(
        &kc,
        &[
            "get",
            "pods.metrics.k8s.io",
            "-n",
            "kube-system",
            "coredns-1",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "PodMetrics");
    assert_eq!(v["containers"][0]["usage"]["cpu"], "3m");
    assert_eq!(v["containers"][1]["name"], "sidecar");

    // Discovery as kubectl sees it.
    let (table, stdout) =
        kubectl_table(&kc, &["api-resources", "--api-group=metrics.k8s.io"]).await;
    let nodes = table.iter().find(|r| r[0] == "nodes").expect(&stdout);
    assert_eq!(
        nodes[1..],
        ["metrics.k8s.io/v1beta1", "false", "NodeMetrics"]
    );
    let pods = table.iter().find(|r| r[0] == "pods").expect(&stdout);
    assert_eq!(pods[1..], ["metrics.k8s.io/v1beta1", "true", "PodMetrics"]);

    // NotFound as kubectl renders a Status.
    let out = kubectl(&kc, &["get", "nodes.metrics.k8s.io", "nope"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("NotFound"), "stderr: {}", out.stderr);
    assert!(
        out.stderr
            .contains("nodes.metrics.k8s.io \"nope\" not found"),
        "stderr: {}",
        out.stderr
    );

    // Bad selector → 400.
    let out = kubectl(
        &kc,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%20in%20b",
        ],
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("BadRequest") || out.stderr.contains("400"),
        "stderr: {}",
        out.stderr
    );

    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_without_credentials_is_unauthorized() {
    if !kubectl_available() {
        return;
    }
    let mut fx = fixture().await;
    let kc = fx.kubeconfig("anon", Creds::None);
    let out = kubectl(&kc, &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Unauthorized") && out.stderr.contains("must be logged in"),
        "stderr: {}",
        out.stderr
    );
    let bad_token = fx.kubeconfig("badtoken", Creds::Token("wrong"));
    let out = kubectl(&bad_token, &["get", "nodes.metrics.k8s.io"]).await;
    assert_ne!(out.code, 0);
    // Discovery fails first; kubectl words a 401 there as "must be logged in".
    assert!(
        out.stderr.contains("must be logged in"),
        "stderr: {}",
        out.stderr
    );
    // Health stays open without credentials.
    let out = kubectl(&kc, &["get", "--raw", "/readyz"]).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.trim(), "ok");
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_forbidden_and_token_paths() {
    if !kubectl_available() {
        return;
    }
    let mut fx = fixture().await;
    let jane = fx.client_ca.client_cert("jane", &["devs"]);
    let kc = fx.kubeconfig("jane", Creds::Cert(&jane));
    let out = kubectl(&kc, &["get", "nodes.metrics.k8s.io"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Error from server (Forbidden)")
            && out.stderr.contains(
                "nodes.metrics.k8s.io is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope"
            ),
        "stderr: {}",
        out.stderr
    );
    let out = kubectl(
        &kc,
        &["get", "pods.metrics.k8s.io", "-n", "default", "web-1"],
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "pods.metrics.k8s.io \"web-1\" is forbidden: User \"jane\" cannot get resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"default\""
        ),
        "stderr: {}",
        out.stderr
    );

    // A bearer token reviewed as user `viewer`, whom the authorizer allows.
    let kc = fx.kubeconfig("viewer", Creds::Token("good-token"));
    let (table, stdout) =
        kubectl_table(&kc, &["get", "pods.metrics.k8s.io", "-n", "kube-system"]).await;
    assert_eq!(table[1][0], "coredns-1", "{}", stdout);
    fx.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Plain HTTPS client tests (front proxy, Tables, health, shutdown)
// ---------------------------------------------------------------------------------------------

struct Reply {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTPS request with an optional client certificate and extra headers.
async fn request(
    fx: &Fixture,
    client_cert: Option<&(String, String)>,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(fx.serving_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(fx.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .uri(path)
        .header("host", fx.addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        code,
        content_type,
        body,
    }
}

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

#[tokio::test]
async fn front_proxy_headers_are_trusted_only_from_allowed_proxy_certs() {
    let mut fx = fixture().await;
    let proxy = fx.proxy_ca.client_cert("front-proxy-client", &[]);

    // Allowed proxy: identity from the headers; `viewer` is authorized.
    let r = request(
        &fx,
        Some(&proxy),
        NODES,
        &[("X-Remote-User", "viewer"), ("X-Remote-Group", "viewers")],
    )
    .await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 3);

    // The header identity really is used: `jane` is denied, and named in the message.
    let r = request(&fx, Some(&proxy), NODES, &[("X-Remote-User", "jane")]).await;
    assert_eq!(r.code, 403);
    let v = r.json();
    assert_eq!(v["reason"], "Forbidden");
    assert!(v["message"].as_str().unwrap().contains("User \"jane\""));

    // Groups from repeated headers: system:masters skips authorization.
    let r = request(
        &fx,
        Some(&proxy),
        NODES,
        &[
            ("X-Remote-User", "jane"),
            ("X-Remote-Group", "devs"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));

    // What the kube-aggregator's availability check sends.
    let r = request(
        &fx,
        Some(&proxy),
        "/apis/metrics.k8s.io/v1beta1",
        &[
            ("X-Remote-User", "system:kube-aggregator"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(r.code, 200);
    assert_eq!(r.json()["resources"][0]["name"], "nodes");

    // Proxy cert without user headers authenticates nobody.
    let r = request(&fx, Some(&proxy), NODES, &[]).await;
    assert_eq!(r.code, 401);

    // Proxy CA signed, but CN not in the allowed names: headers are not trusted → 401.
    let rogue = fx.proxy_ca.client_cert("someone-else", &[]);
    let r = request(
        &fx,
        Some(&rogue),
        NODES,
        &[
            ("X-Remote-User", "viewer"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(r.code, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["reason"], "Unauthorized");

    // Client-CA cert with X-Remote-* headers: headers ignored, the certificate's user counts.
    let jane = fx.client_ca.client_cert("jane", &["devs"]);
    let r = request(
        &fx,
        Some(&jane),
        NODES,
        &[
            ("X-Remote-User", "viewer"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(r.code, 403);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("User \"jane\""));

    // No certificate and forged headers: 401.
    let r = request(&fx, None, NODES, &[("X-Remote-User", "viewer")]).await;
    assert_eq!(r.code, 401);
    fx.shutdown().await;
}

#[tokio::test]
async fn client_cert_from_unknown_ca_is_rejected_in_handshake() {
    let mut fx = fixture().await;
    let stranger_ca = Ca::new("stranger");
    let cert = stranger_ca.client_cert("test-user", &["system:masters"]);
    let result = tokio::spawn({
        let addr = fx.addr;
        let serving_ca = fx.serving_ca.clone();
        async move {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(serving_ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.0.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap(),
            )
            .unwrap();
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await;
            // TLS 1.3: the server's rejection of the certificate arrives with the first read.
            match tls {
                Err(e) => Err(e.to_string()),
                Ok(mut s) => {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let _ = s.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n").await;
                    let mut buf = Vec::new();
                    match s.read_to_end(&mut buf).await {
                        Err(e) => Err(e.to_string()),
                        Ok(_) if buf.is_empty() => Err("closed".into()),
                        Ok(_) => Ok(String::from_utf8_lossy(&buf).into_owned()),
                    }
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(result.is_err(), "unexpected success: {result:?}");
    fx.shutdown().await;
}

#[tokio::test]
async fn tables_discovery_health_metrics_and_shutdown() {
    let mut fx = fixture().await;
    let admin = fx.client_ca.client_cert("test-user", &["system:masters"]);

    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let r = request(
        &fx,
        Some(&admin),
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        &[("Accept", accept)],
    )
    .await;
    assert_eq!(r.code, 200);
    let t = r.json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 4);
    assert_eq!(t["rows"][0]["cells"][0], "db-0");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");

    let r = request(
        &fx,
        Some(&admin),
        NODES,
        &[("Accept", "application/vnd.kubernetes.protobuf")],
    )
    .await;
    assert_eq!(r.code, 406);

    // Aggregated discovery, as kube-aggregator asks for it (v2 only, no fallback in the
    // header): an APIGroupDiscoveryList. A 200 with the legacy list made the aggregator mark
    // the group Stale, and `kubectl top` failed with "Metrics API not available".
    let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let r = request(&fx, Some(&admin), "/apis", &[("Accept", v2)]).await;
    assert_eq!(r.code, 200);
    assert_eq!(r.content_type, v2);
    let d = r.json();
    assert_eq!(d["kind"], "APIGroupDiscoveryList");
    assert_eq!(d["items"][0]["metadata"]["name"], "metrics.k8s.io");
    let version = &d["items"][0]["versions"][0];
    assert_eq!(version["version"], "v1beta1");
    assert_eq!(version["freshness"], "Current");
    assert_eq!(version["resources"][0]["resource"], "nodes");
    assert_eq!(version["resources"][0]["scope"], "Cluster");
    assert_eq!(version["resources"][1]["resource"], "pods");
    assert_eq!(version["resources"][1]["scope"], "Namespaced");
    // Only a form this server does not write: 406, which clients fall back from.
    let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    let r = request(&fx, Some(&admin), "/apis", &[("Accept", beta)]).await;
    assert_eq!(r.code, 406);
    // Plain JSON: the legacy APIGroupList.
    let r = request(
        &fx,
        Some(&admin),
        "/apis",
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!(r.code, 200);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.json()["groups"][0]["preferredVersion"]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );
    for path in [
        "/api",
        "/api/v1",
        "/apis/metrics.k8s.io",
        "/openapi/v2",
        "/openapi/v3",
        "/openapi/v3/apis/metrics.k8s.io/v1beta1",
    ] {
        let r = request(&fx, Some(&admin), path, &[]).await;
        assert_eq!(r.code, 200, "{path}");
        r.json();
    }

    for path in ["/livez", "/readyz", "/healthz"] {
        let r = request(&fx, None, path, &[]).await;
        assert_eq!(
            (r.code, r.body.as_slice()),
            (200, b"ok".as_slice()),
            "{path}"
        );
    }

    let r = request(&fx, Some(&admin), "/metrics", &[]).await;
    assert_eq!(r.code, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("metrics_server_api_requests_total{endpoint=\"pods\",code=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("metrics_server_api_requests_total{endpoint=\"nodes\",code=\"406\"} 1"),
        "{text}"
    );

    // Unauthenticated /metrics is refused.
    assert_eq!(request(&fx, None, "/metrics", &[]).await.code, 401);

    let addr = fx.addr;
    fx.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}
