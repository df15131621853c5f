//! The image pre-flight's registry lookups against a real registry server on 127.0.0.1
//! (Debian's `docker-registry`, the reference implementation), into which the test pushes the
//! archive `kaddons image build` wrote, and against stand-ins that answer 401 with a bearer
//! challenge, 404, 500, or never.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kaddons::image::registry::{Outcome, Registries};
use kaddons::render::ImageRef;

const REGISTRY: &str = "/usr/bin/docker-registry";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn lookup(image: &str, timeout: Duration) -> kaddons::image::registry::Lookup {
    let registries = Registries::new(timeout).unwrap();
    rt().block_on(registries.lookup(&ImageRef::parse(image).unwrap()))
}

/// A running `docker-registry serve` on 127.0.0.1, killed on drop.
struct RealRegistry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn real_registry() -> Option<RealRegistry> {
    if !Path::new(REGISTRY).is_file() {
        let msg = "docker-registry is not installed (apt-get install -y docker-registry)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(REGISTRY)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "docker-registry did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(RealRegistry {
        child,
        addr,
        _dir: dir,
    })
}

/// A tiny registry client: blob uploads (POST, then PUT with the digest) and a manifest PUT.
async fn push(addr: &str, repo: &str, tag: &str, archive: &[u8]) -> String {
    let files = crate::image::files(archive);
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = files[&format!("blobs/sha256/{}", &digest[7..])].clone();
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut blobs = vec![parsed["config"]["digest"].as_str().unwrap().to_string()];
    blobs.extend(
        parsed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string()),
    );
    for blob in blobs {
        let req = http::Request::post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 202, "start upload");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("http://{addr}{location}")
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let data = files[&format!("blobs/sha256/{}", &blob[7..])].clone();
        let req = http::Request::put(format!("{location}{sep}digest={blob}"))
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(data)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 201, "upload {blob}");
    }
    let req = http::Request::put(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(Full::new(Bytes::from(manifest)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 201, "manifest: {}", String::from_utf8_lossy(&body));
    digest
}

#[test]
fn the_real_registry_has_the_pushed_archive_by_tag_and_by_digest_and_not_a_missing_tag() {
    let Some(registry) = real_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = crate::image::build(dir.path(), "ms.tar");
    let addr = &registry.addr;
    let digest = rt().block_on(push(addr, "kaddons/metrics-server", "0.1.0", &archive));

    let by_tag = lookup(
        &format!("{addr}/kaddons/metrics-server:0.1.0"),
        Duration::from_secs(5),
    );
    assert_eq!(
        by_tag.outcome,
        Outcome::Found {
            digest: Some(digest.clone())
        },
        "{by_tag}"
    );
    assert!(by_tag.url.starts_with("http://"), "{}", by_tag.url);
    let by_digest = lookup(
        &format!("{addr}/kaddons/metrics-server@{digest}"),
        Duration::from_secs(5),
    );
    assert!(by_digest.found(), "{by_digest}");
    let missing = lookup(
        &format!("{addr}/kaddons/metrics-server:9.9.9"),
        Duration::from_secs(5),
    );
    assert_eq!(missing.outcome, Outcome::NotFound, "{missing}");
    assert!(missing.to_string().contains("404"), "{missing}");
    let no_repo = lookup(&format!("{addr}/nobody/nothing:v1"), Duration::from_secs(5));
    assert_eq!(no_repo.outcome, Outcome::NotFound, "{no_repo}");
}

type Handler = dyn Fn(&http::request::Parts) -> http::Response<Full<Bytes>> + Send + Sync;

/// A loopback HTTP stand-in registry that answers with `handler` and records paths.
struct StandIn {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

fn stand_in(
    handler: impl Fn(&http::request::Parts) -> http::Response<Full<Bytes>> + Send + Sync + 'static,
) -> StandIn {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: Arc<Handler> = Arc::new(handler);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (handler, recorded) = (handler.clone(), recorded.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (handler, recorded) = (handler.clone(), recorded.clone());
                    async move {
                        let (parts, _) = req.into_parts();
                        recorded.lock().unwrap().push(format!(
                            "{} {} {}",
                            parts.method,
                            parts.uri,
                            parts
                                .headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                        ));
                        Ok::<_, Infallible>(handler(&parts))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    StandIn {
        addr,
        seen,
        _rt: rt,
    }
}

fn answer(status: u16, headers: &[(&str, String)], body: &str) -> http::Response<Full<Bytes>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

#[test]
fn a_bearer_challenge_is_answered_with_an_anonymous_token() {
    let addr_cell: Arc<Mutex<String>> = Arc::default();
    let cell = addr_cell.clone();
    let s = stand_in(move |parts| {
        let addr = cell.lock().unwrap().clone();
        let path = parts.uri.path();
        if path == "/token" {
            let q = parts.uri.query().unwrap_or("");
            assert!(
                q.contains("service=stand-in") && q.contains("scope=repository%3Ax%2Fy%3Apull"),
                "{q}"
            );
            return answer(200, &[], r#"{"token":"anon-123"}"#);
        }
        let authed = parts
            .headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer anon-123");
        match (authed, path) {
            (true, "/v2/x/y/manifests/v1") => {
                answer(200, &[("docker-content-digest", "sha256:abc".into())], "")
            }
            (true, _) => answer(404, &[], ""),
            (false, _) => answer(
                401,
                &[(
                    "www-authenticate",
                    format!(
                        r#"Bearer realm="http://{addr}/token",service="stand-in",scope="repository:x/y:pull""#
                    ),
                )],
                "",
            ),
        }
    });
    *addr_cell.lock().unwrap() = s.addr.to_string();
    let l = lookup(&format!("{}/x/y:v1", s.addr), Duration::from_secs(5));
    assert_eq!(
        l.outcome,
        Outcome::Found {
            digest: Some("sha256:abc".into())
        },
        "{l}"
    );
    assert!(l.token);
    let l = lookup(&format!("{}/x/y:v2", s.addr), Duration::from_secs(5));
    assert_eq!(l.outcome, Outcome::NotFound, "{l}");
    let seen = s.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("HEAD /v2/x/y/manifests/v1 Bearer anon-123")),
        "{seen:?}"
    );
}

#[test]
fn a_token_that_is_refused_a_basic_challenge_404_and_500_are_told_apart() {
    let s = stand_in(|parts| match parts.uri.path() {
        "/v2/basic/x/manifests/v1" => answer(
            401,
            &[("www-authenticate", r#"Basic realm="r""#.into())],
            "",
        ),
        "/v2/broken/x/manifests/v1" => answer(500, &[], ""),
        "/v2/nobearer/x/manifests/v1" => answer(401, &[], ""),
        _ => answer(404, &[], ""),
    });
    let a = s.addr;
    let l = lookup(&format!("{a}/basic/x:v1"), Duration::from_secs(5));
    assert!(
        matches!(&l.outcome, Outcome::Denied { detail } if detail.contains("Basic")),
        "{l}"
    );
    let l = lookup(&format!("{a}/broken/x:v1"), Duration::from_secs(5));
    assert!(
        matches!(l.outcome, Outcome::Status { status: 500, .. }),
        "{l}"
    );
    assert!(l.to_string().contains("HTTP 500"), "{l}");
    let l = lookup(&format!("{a}/nobearer/x:v1"), Duration::from_secs(5));
    assert!(matches!(l.outcome, Outcome::Denied { .. }), "{l}");
    let l = lookup(&format!("{a}/missing/x:v1"), Duration::from_secs(5));
    assert_eq!(l.outcome, Outcome::NotFound, "{l}");
    // The Accept header asks for every manifest type.
    let s2 = stand_in(|parts| {
        let accept = parts
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/vnd.oci.image.index.v1+json")
            && accept.contains("application/vnd.docker.distribution.manifest.v2+json")
        {
            answer(200, &[], "")
        } else {
            answer(406, &[], "")
        }
    });
    assert!(lookup(&format!("{}/a/b:c", s2.addr), Duration::from_secs(5)).found());
}

#[test]
fn a_registry_that_never_answers_or_is_not_there_is_reported_within_the_deadline() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut streams = Vec::new();
        for s in listener.incoming().take(4) {
            streams.push(s);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let start = Instant::now();
    let l = lookup(&format!("{addr}/x/y:v1"), Duration::from_secs(1));
    let took = start.elapsed();
    assert!(matches!(l.outcome, Outcome::TimedOut { .. }), "{l}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(l.to_string().contains("did not answer"), "{l}");
    drop(held);
    // Nothing listens: unreachable, said as such, quickly.
    let port = free_port();
    let l = lookup(&format!("127.0.0.1:{port}/x/y:v1"), Duration::from_secs(5));
    assert!(matches!(l.outcome, Outcome::Unreachable { .. }), "{l}");
    assert!(l.to_string().contains("cannot be reached"), "{l}");
}
