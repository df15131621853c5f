//! A kube-rs client configured like kubectl, and errors that say which server, which context
//! and what failed, in one line.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{Config, KubeConfigOptions};

use super::{kubeconfig, tls};

/// Makes ring the process-wide TLS provider. rustls cannot choose by itself when more than
/// one provider is compiled in (test builds pull in aws-lc-rs through dev-dependencies), and
/// kube's client asks for the process default. Call once at start; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Upper bound for any single API request (kubectl's `--request-timeout`).
    pub request_timeout: Duration,
}

/// A client and what the user needs to know about where it points.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// kubeconfig context name, or `in-cluster`.
    pub context: String,
    pub server: String,
    pub request_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster configured: no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not running in a pod")]
    NoConfig,
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
    #[error("cannot use kubeconfig context \"{context}\": {message}")]
    BadContext { context: String, message: String },
    #[error("cannot reach the API server {server} (context \"{context}\"): {message}")]
    Unreachable {
        server: String,
        context: String,
        message: String,
    },
    #[error("cannot trust the API server {server} (context \"{context}\"): {message}")]
    UntrustedServer {
        server: String,
        context: String,
        message: String,
    },
    #[error("the API server {server} (context \"{context}\") did not answer within {}s; check that the cluster is running, or raise --request-timeout", .timeout.as_secs())]
    Timeout {
        server: String,
        context: String,
        timeout: Duration,
    },
    #[error("the API server {server} rejected the credentials of context \"{context}\" (401 Unauthorized); refresh them (kind export kubeconfig, minikube update-context) or pick another --context")]
    Unauthorized { server: String, context: String },
    #[error("forbidden (403) on {server}, context \"{context}\": {message}")]
    Forbidden {
        server: String,
        context: String,
        message: String,
    },
    #[error("the API server {server} (context \"{context}\") answered {code} {reason}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Api {
        server: String,
        context: String,
        code: u16,
        reason: String,
        message: String,
    },
}

impl ClusterError {
    /// The HTTP status of an API answer, if this is one.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Unauthorized { .. } => Some(401),
            ClusterError::Forbidden { .. } => Some(403),
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

impl Connection {
    /// Wraps an existing client (tests use a fake one).
    pub fn from_client(client: kube::Client, context: &str, server: &str) -> Self {
        Connection {
            client,
            context: context.to_string(),
            server: server.to_string(),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Builds a client from the kubeconfig (or the in-cluster service account when there is no
    /// kubeconfig). Makes no request.
    pub async fn connect(opts: &ClientOptions) -> Result<Self> {
        let (mut config, context, trust) = match kubeconfig::load(opts.kubeconfig.as_deref())? {
            Some(k) => {
                let selected = kubeconfig::select(&k, opts.context.as_deref())?;
                let trust = selected.as_ref().map(|s| trust_source(&k, s));
                let context =
                    selected
                        .map(|s| s.context)
                        .ok_or_else(|| ClusterError::BadContext {
                            context: "(none)".into(),
                            message: "the kubeconfig has no current-context; pass --context".into(),
                        })?;
                let options = KubeConfigOptions {
                    context: Some(context.clone()),
                    ..Default::default()
                };
                let config = Config::from_custom_kubeconfig(k, &options)
                    .await
                    .map_err(|e| ClusterError::BadContext {
                        context: context.clone(),
                        message: e.to_string(),
                    })?;
                let mut config = config;
                token_file_as_kubectl_reads_it(&mut config);
                (config, context, trust)
            }
            None => (
                Config::incluster().map_err(|_| ClusterError::NoConfig)?,
                "in-cluster".to_string(),
                None,
            ),
        };
        // kube's default retry layer retries 429/503/504 up to 15 times with a backoff that
        // grows towards 1000s. Under the hard bound of `call` that turns a server that answers
        // "503 Service Unavailable" at once into a silent wait of --request-timeout, reported as
        // "did not answer" although it did. A CLI should say what the server said, at once
        // (kubectl retries only when the server asks for it with Retry-After); the waits that
        // need patience are the watch loops in `wait`, which have their own --timeout.
        config.default_retry = false;
        config.connect_timeout = Some(opts.request_timeout);
        config.read_timeout = Some(opts.request_timeout);
        config.write_timeout = Some(opts.request_timeout);
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let bad_context = |message: String| ClusterError::BadContext {
            context: context.clone(),
            message,
        };
        // A CA bundle is checked as kubectl checks it (cluster::tls); without one (the system's
        // roots), with insecure-skip-tls-verify or through a proxy, kube's own client is used.
        let client = match config.root_cert.as_deref() {
            Some(roots) if !config.accept_invalid_certs && config.proxy_url.is_none() => {
                let trust = match (&config.root_cert_file, trust) {
                    (Some(file), _) => format!("the service account CA {}", file.display()),
                    (None, Some(trust)) => trust,
                    (None, None) => "the certificate authority".into(),
                };
                tls::KubectlVerifier::new(roots, trust)
                    .and_then(|verifier| tls::client(&config, verifier))
                    .map_err(|e| bad_context(e.to_string()))?
            }
            _ => kube::Client::try_from(config).map_err(|e| bad_context(e.to_string()))?,
        };
        Ok(Connection {
            client,
            context,
            server,
            request_timeout: opts.request_timeout,
        })
    }

    /// Runs one API call with the request timeout as a hard bound, and turns its error into
    /// one that names the server and context.
    pub async fn call<T>(&self, fut: impl Future<Output = kube::Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.request_timeout, fut).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => Err(ClusterError::Timeout {
                server: self.server.clone(),
                context: self.context.clone(),
                timeout: self.request_timeout,
            }),
        }
    }

    /// Like [`call`](Self::call), but a 404 is `Ok(None)`.
    pub async fn get_opt<T>(
        &self,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<Option<T>> {
        match self.call(fut).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn classify(&self, err: kube::Error) -> ClusterError {
        let server = self.server.clone();
        let context = self.context.clone();
        match err {
            kube::Error::Api(status) => match status.code {
                401 => ClusterError::Unauthorized { server, context },
                403 => ClusterError::Forbidden {
                    server,
                    context,
                    message: status.message.clone(),
                },
                code => {
                    let (reason, message) = api_reason_and_message(code, &status);
                    ClusterError::Api {
                        server,
                        context,
                        code,
                        reason,
                        message,
                    }
                }
            },
            other => {
                if let Some(rejected) = tls::rejection(&other) {
                    return ClusterError::UntrustedServer {
                        server,
                        context,
                        message: rejected.to_string(),
                    };
                }
                let message = root_cause(&other);
                if message.contains("timed out") || message.contains("deadline") {
                    ClusterError::Timeout {
                        server,
                        context,
                        timeout: self.request_timeout,
                    }
                } else {
                    ClusterError::Unreachable {
                        server,
                        context,
                        message,
                    }
                }
            }
        }
    }
}

/// A kubeconfig's `tokenFile` as client-go reads it: surrounding whitespace trimmed (files
/// written with `echo` end in a newline, which kube sends on and the server refuses as a
/// header value), and the file winning over an inline `token`. Read once; a file that cannot
/// be read is left to kube, which names it.
fn token_file_as_kubectl_reads_it(config: &mut Config) {
    let Some(path) = config.auth_info.token_file.as_deref() else {
        return;
    };
    if let Ok(text) = std::fs::read_to_string(path) {
        config.auth_info.token = Some(text.trim().to_string().into());
        config.auth_info.token_file = None;
    }
}

/// Where the selected cluster's CA bundle comes from, for messages: the file or the inline
/// data of the kubeconfig's cluster entry.
fn trust_source(k: &kube::config::Kubeconfig, selected: &kubeconfig::Selected) -> String {
    let name = selected.cluster.as_deref().unwrap_or("(none)");
    let cluster = k
        .clusters
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.cluster.as_ref());
    match cluster {
        Some(c) if c.certificate_authority_data.is_some() => {
            format!("the certificate-authority-data of cluster \"{name}\"")
        }
        Some(c) if c.certificate_authority.is_some() => format!(
            "certificate-authority {} of cluster \"{name}\"",
            c.certificate_authority.as_deref().unwrap_or_default()
        ),
        _ => format!("the certificate authority of cluster \"{name}\""),
    }
}

/// kube's reason when an error body is not a `metav1.Status` (a proxy's text or HTML page).
const UNPARSED_REASON: &str = "Failed to parse error data";
/// Longest server message shown; error pages from proxies can be whole HTML documents.
const MAX_MESSAGE: usize = 300;

/// The reason and message of an API error as one short line: the HTTP reason phrase when the
/// body was not a Status (instead of kube's placeholder), whitespace (newlines of HTML pages)
/// collapsed, and long bodies cut.
fn api_reason_and_message(code: u16, status: &kube::core::Status) -> (String, String) {
    let reason = if status.reason.is_empty() || status.reason == UNPARSED_REASON {
        http::StatusCode::from_u16(code)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("")
            .to_string()
    } else {
        status.reason.clone()
    };
    let mut message = status
        .message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE) {
        message.truncate(cut);
        message.push_str("...");
    }
    (reason, message)
}

/// The innermost error message: for connection failures that is the useful part
/// ("Connection refused (os error 111)"), not the layers of client wrappers around it.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reason: &str, message: &str) -> kube::core::Status {
        kube::core::Status {
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    fn api_error(code: u16, reason: &str, message: &str) -> String {
        let (reason, message) = api_reason_and_message(code, &status(reason, message));
        ClusterError::Api {
            server: "https://127.0.0.1:6443".into(),
            context: "c".into(),
            code,
            reason,
            message,
        }
        .to_string()
    }

    #[test]
    fn api_errors_read_as_one_line() {
        assert_eq!(
            api_error(500, "InternalError", "etcd is down"),
            "the API server https://127.0.0.1:6443 (context \"c\") answered 500 InternalError: etcd is down"
        );
        // No dangling colon when the server said nothing.
        assert!(api_error(500, "", "").ends_with("answered 500 Internal Server Error"));
        // kube's placeholder for bodies that are not a Status gives way to the HTTP phrase.
        assert!(
            api_error(502, UNPARSED_REASON, "<html>\n<body>bad</body>\n</html>\n")
                .ends_with("answered 502 Bad Gateway: <html> <body>bad</body> </html>")
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE + 50);
        let (_, message) = api_reason_and_message(500, &status("x", &long));
        assert_eq!(message.chars().count(), MAX_MESSAGE + 3);
        assert!(message.ends_with("..."));
    }
}
