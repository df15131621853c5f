//! Is an image in its registry? The registry v2 API as container runtimes use it, anonymously:
//! `HEAD /v2/<name>/manifests/<tag|digest>` with the manifest media types in `Accept`; a 401
//! with a `Bearer realm=...,service=...,scope=...` challenge is answered with an anonymous token
//! from the realm and the request retried. Each lookup has one deadline, so an unreachable or
//! silent registry is reported as such instead of hanging.
//!
//! HTTPS first; for loopback registries (localhost, 127.0.0.0/8, ::1) plain HTTP too, as Docker
//! and containerd treat them as insecure registries by default.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::render::ImageRef;

/// Every manifest type a node may pull: OCI and Docker, single images and multi-platform lists.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The default bound for one registry.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load this machine's CA certificates to verify registries")]
    Roots(#[source] std::io::Error),
}

/// What a registry said about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: the manifest is there (its digest, when the registry sent `Docker-Content-Digest`).
    Found { digest: Option<String> },
    /// 404: no such repository, tag or digest.
    NotFound,
    /// 401/403 even with an anonymous token (or no token to be had): private, or nonexistent
    /// on registries that do not tell the two apart.
    Denied { detail: String },
    /// Any other HTTP status.
    Status { status: u16, detail: String },
    /// No HTTP answer: DNS, connection refused, TLS.
    Unreachable { problem: String },
    /// No answer within the deadline.
    TimedOut { after: Duration },
}

/// One lookup: where it asked and what it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The registry host, as in the image reference (`registry.k8s.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The last manifest URL asked.
    pub url: String,
    pub outcome: Outcome,
    /// An anonymous bearer token was fetched for it.
    pub token: bool,
}

impl Lookup {
    pub fn found(&self) -> bool {
        matches!(self.outcome, Outcome::Found { .. })
    }
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_token = if self.token {
            " (with an anonymous token)"
        } else {
            ""
        };
        match &self.outcome {
            Outcome::Found { digest } => {
                write!(f, "registry {} has it", self.registry)?;
                if let Some(d) = digest {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            Outcome::NotFound => write!(
                f,
                "registry {} answered 404 Not Found for HEAD {}{with_token}: no such repository, tag or digest",
                self.registry, self.url
            ),
            Outcome::Denied { detail } => write!(
                f,
                "registry {} refused HEAD {}{with_token}: {detail}",
                self.registry, self.url
            ),
            Outcome::Status { status, detail } => write!(
                f,
                "registry {} answered HTTP {status} for HEAD {}{with_token}{}",
                self.registry,
                self.url,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            ),
            Outcome::Unreachable { problem } => write!(
                f,
                "registry {} cannot be reached from this machine ({}): {problem}",
                self.registry, self.url
            ),
            Outcome::TimedOut { after } => write!(
                f,
                "registry {} did not answer HEAD {} within {}s",
                self.registry,
                self.url,
                after.as_secs_f64()
            ),
        }
    }
}

/// Host to connect to, repository path and reference (`tag` or `sha256:...`) of an image.
pub fn endpoint(image: &ImageRef) -> (String, String, String) {
    // A registry with a path prefix (a mirror: `registry.example.com/google_containers`).
    let (host, prefix) = match image.registry.split_once('/') {
        Some((h, p)) => (h.to_string(), format!("{p}/")),
        None => (image.registry.clone(), String::new()),
    };
    let host = match host.as_str() {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".to_string(),
        _ => host,
    };
    let reference = image
        .digest
        .clone()
        .or_else(|| image.tag.clone())
        .unwrap_or_else(|| "latest".into());
    (host, format!("{prefix}{}", image.repository), reference)
}

/// localhost, 127.0.0.0/8 and ::1, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `WWW-Authenticate` challenge: its scheme and `key="value"` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn parse(text: &str) -> Option<Challenge> {
        let text = text.trim();
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek() {
                    if *c == ',' {
                        break;
                    }
                    value.push(*c);
                    chars.next();
                }
            }
            params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        Some(Challenge {
            scheme: scheme.to_string(),
            params,
        })
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error and its causes on one line (hyper's own message is only "client error (Connect)").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A registry client with a deadline per lookup.
#[derive(Clone)]
pub struct Registries {
    client: HttpClient,
    timeout: Duration,
}

enum Answer {
    Got {
        status: StatusCode,
        digest: Option<String>,
        challenge: Option<String>,
    },
    Failed(String),
}

impl Registries {
    pub fn new(timeout: Duration) -> Result<Registries, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(Error::Roots)?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Registries { client, timeout })
    }

    /// Looks `image` up in its registry, within the deadline.
    pub async fn lookup(&self, image: &ImageRef) -> Lookup {
        let (host, repo, reference) = endpoint(image);
        let registry = image
            .registry
            .split('/')
            .next()
            .unwrap_or(&image.registry)
            .to_string();
        let first_url = format!("https://{host}/v2/{repo}/manifests/{reference}");
        match tokio::time::timeout(self.timeout, self.lookup_within(&host, &repo, &reference)).await
        {
            Ok((url, outcome, token)) => Lookup {
                registry,
                url,
                outcome,
                token,
            },
            Err(_) => Lookup {
                registry,
                url: first_url,
                outcome: Outcome::TimedOut {
                    after: self.timeout,
                },
                token: false,
            },
        }
    }

    async fn lookup_within(
        &self,
        host: &str,
        repo: &str,
        reference: &str,
    ) -> (String, Outcome, bool) {
        let schemes: &[&str] = if is_loopback(host) {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut failures = Vec::new();
        let mut last_url = String::new();
        for scheme in schemes {
            let url = format!("{scheme}://{host}/v2/{repo}/manifests/{reference}");
            last_url = url.clone();
            match self.head(&url, None).await {
                Answer::Failed(problem) => failures.push(format!("{scheme}: {problem}")),
                Answer::Got {
                    status,
                    digest,
                    challenge,
                } => {
                    let (outcome, token) =
                        self.answered(&url, repo, status, digest, challenge).await;
                    return (url, outcome, token);
                }
            }
        }
        (
            last_url,
            Outcome::Unreachable {
                problem: failures.join("; "),
            },
            false,
        )
    }

    async fn answered(
        &self,
        url: &str,
        repo: &str,
        status: StatusCode,
        digest: Option<String>,
        challenge: Option<String>,
    ) -> (Outcome, bool) {
        if status != StatusCode::UNAUTHORIZED {
            return (outcome_of(status, digest, None), false);
        }
        let Some(challenge) = challenge.as_deref().and_then(Challenge::parse) else {
            return (
                Outcome::Denied {
                    detail: "401 Unauthorized without a WWW-Authenticate challenge".into(),
                },
                false,
            );
        };
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return (
                Outcome::Denied {
                    detail: format!(
                        "401 Unauthorized: it wants {} credentials, and kaddons only checks anonymously",
                        challenge.scheme
                    ),
                },
                false,
            );
        }
        let token = match self.anonymous_token(&challenge, repo).await {
            Ok(t) => t,
            Err(problem) => return (Outcome::Denied { detail: problem }, false),
        };
        match self.head(url, Some(&token)).await {
            Answer::Failed(problem) => (Outcome::Unreachable { problem }, true),
            Answer::Got { status, digest, .. } => (
                outcome_of(
                    status,
                    digest,
                    Some("the anonymous token was refused: the repository is private or does not exist"),
                ),
                true,
            ),
        }
    }

    async fn anonymous_token(&self, challenge: &Challenge, repo: &str) -> Result<String, String> {
        let realm = challenge
            .param("realm")
            .ok_or("401 Unauthorized with a Bearer challenge that names no realm")?;
        let mut query = Vec::new();
        if let Some(service) = challenge.param("service") {
            query.push(format!("service={}", percent_encode(service)));
        }
        let scope = challenge
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| format!("repository:{repo}:pull"));
        query.push(format!("scope={}", percent_encode(&scope)));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let fail = |what: String| format!("an anonymous token from {url}: {what}");
        let req = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::USER_AGENT, user_agent())
            .body(Empty::new())
            .map_err(|e| fail(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| fail(chain(&e)))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| fail(format!("reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("the answer is not JSON ({e})")))?;
        json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| fail("the answer has no token".into()))
    }

    async fn head(&self, url: &str, token: Option<&str>) -> Answer {
        let mut req = Request::builder()
            .method(Method::HEAD)
            .uri(url)
            .header(header::ACCEPT, MANIFEST_ACCEPT)
            .header(header::USER_AGENT, user_agent());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match req.body(Empty::new()) {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("invalid request URL {url}: {e}")),
        };
        match self.client.request(req).await {
            Err(e) => Answer::Failed(chain(&e)),
            Ok(resp) => {
                let text = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                Answer::Got {
                    status: resp.status(),
                    digest: text("docker-content-digest"),
                    challenge: text("www-authenticate"),
                }
            }
        }
    }
}

fn user_agent() -> String {
    format!("kaddons/{}", env!("CARGO_PKG_VERSION"))
}

fn outcome_of(status: StatusCode, digest: Option<String>, denied: Option<&str>) -> Outcome {
    match status.as_u16() {
        200..=299 => Outcome::Found { digest },
        404 => Outcome::NotFound,
        401 | 403 => Outcome::Denied {
            detail: denied
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}")),
        },
        code => Outcome::Status {
            status: code,
            detail: status.canonical_reason().unwrap_or("").to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_registries_send_them() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/ubuntu:pull"));
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "Basic");
        assert_eq!(c.param("realm"), Some("Registry Realm"));
        let c = Challenge::parse("Bearer realm=http://x/token, service=x").unwrap();
        assert_eq!(c.param("realm"), Some("http://x/token"));
        assert_eq!(c.param("service"), Some("x"));
    }

    #[test]
    fn endpoints() {
        let e = |s: &str| endpoint(&ImageRef::parse(s).unwrap());
        assert_eq!(
            e("kaddons/metrics-server:0.1.0"),
            (
                "registry-1.docker.io".into(),
                "kaddons/metrics-server".into(),
                "0.1.0".into()
            )
        );
        assert_eq!(
            e("registry.example.com/mirror/metrics-server@sha256:ab"),
            (
                "registry.example.com".into(),
                "mirror/metrics-server".into(),
                "sha256:ab".into()
            )
        );
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.k8s.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert_eq!(
            percent_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
