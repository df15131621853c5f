//! The binary's command line: every flag of upstream metrics-server v0.8.0, so that a manifest,
//! a Helm chart's `args` or a script written for upstream starts this server unchanged.
//!
//! Part of the `kaddons-metrics-server` binary, not of the library. Flags that mean something
//! here are fields of [`Flags`]; the rest (audit logging, HTTP/2 and in-flight limits, feature
//! gates, profiling, ...) are listed in [`IGNORED`]: they are parsed with the same value syntax
//! as upstream, so a typo or a bad value still fails, and each one given is logged once as a
//! warning saying it has no effect. Values follow Go's pflag: `--flag=value` or `--flag value`,
//! booleans as `--flag` or `--flag=false`, lists comma separated, durations in Go syntax; a
//! repeated flag keeps its last value, as pflag does for scalars.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use kaddons_model::duration::parse_go_duration;

/// Serves metrics.k8s.io/v1beta1 from kubelet resource metrics.
#[derive(Debug, Parser)]
#[command(
    name = "kaddons-metrics-server",
    version,
    about = "Serves metrics.k8s.io/v1beta1 from kubelet /metrics/resource",
    args_override_self = true
)]
pub struct Flags {
    /// Port of the HTTPS API.
    #[arg(long, default_value_t = 10250)]
    pub secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Directory for the generated self-signed serving certificate (ignored with
    /// --tls-cert-file).
    #[arg(long, default_value = "/tmp/kaddons-metrics-server")]
    pub cert_dir: PathBuf,
    /// Serving certificate (PEM chain, leaf first).
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Scrape period, e.g. 15s or 1m (at least 10s).
    #[arg(long, default_value = "15s", value_parser = parse_go_duration)]
    pub metric_resolution: Duration,
    /// Node address types to try, in order.
    #[arg(long, default_value = "InternalIP,ExternalIP,Hostname")]
    pub kubelet_preferred_address_types: String,
    /// Kubelet port.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Use the port in Node.status.daemonEndpoints.kubeletEndpoint instead of --kubelet-port.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub kubelet_use_node_status_port: bool,
    /// Do not verify kubelet serving certificates.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub kubelet_insecure_tls: bool,
    /// CA bundle to verify kubelet serving certificates (default: system roots).
    #[arg(long)]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Client certificate for kubelets (PEM).
    #[arg(long, requires = "kubelet_client_key")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// Client key for kubelets (PEM).
    #[arg(long, requires = "kubelet_client_certificate")]
    pub kubelet_client_key: Option<PathBuf>,
    /// Bearer token file for kubelets (default: the service account token when present).
    #[arg(long)]
    pub kubelet_bearer_token_file: Option<PathBuf>,
    /// Limit on one kubelet request, body included.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub kubelet_request_timeout: Duration,
    /// Kubelet requests in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub kubelet_max_concurrency: u16,
    /// Label selector of the nodes to scrape.
    #[arg(short = 'l', long)]
    pub node_selector: Option<String>,
    /// Front-proxy CA (default: from ConfigMap kube-system/extension-apiserver-authentication).
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Allowed front-proxy certificate CNs, comma separated (empty: any).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers holding the user name, with --requestheader-client-ca-file (default:
    /// X-Remote-User; without the flag the ConfigMap's names are used).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Vec<String>,
    /// Headers holding the groups, with --requestheader-client-ca-file (default: X-Remote-Group).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Vec<String>,
    /// Prefixes of extra-attribute headers, with --requestheader-client-ca-file (default:
    /// X-Remote-Extra-).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// CA for client certificates (default: from the same ConfigMap).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Do not read the ConfigMap kube-system/extension-apiserver-authentication for missing
    /// authentication settings.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub authentication_skip_lookup: bool,
    /// How long a TokenReview answer that accepts a token is cached (default 10s).
    #[arg(long, value_parser = parse_go_duration)]
    pub authentication_token_webhook_cache_ttl: Option<Duration>,
    /// How long an allowing SubjectAccessReview answer is cached (default 10s).
    #[arg(long, value_parser = parse_go_duration)]
    pub authorization_webhook_cache_authorized_ttl: Option<Duration>,
    /// How long a denying SubjectAccessReview answer is cached (default 5s).
    #[arg(long, value_parser = parse_go_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: Option<Duration>,
    /// kubeconfig to reach the API server (default: in-cluster configuration).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig for TokenReviews and the authentication ConfigMap (default: --kubeconfig).
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// kubeconfig for SubjectAccessReviews (default: --kubeconfig).
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Log verbosity, as upstream's klog `-v`/`--v=N`: 0-3 info, 4-5 debug (one line per
    /// scraped node and cycle), 6 and more trace. Logs go to stderr.
    #[arg(short = 'v', long = "v", value_name = "N", default_value_t = 0)]
    pub verbosity: u8,
}

/// The value syntax of an upstream flag that is accepted without effect; the value is checked
/// as upstream's pflag type would check it, then dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    Duration,
    Ip,
    /// string, strings and the other textual pflag types (quantities, maps, patterns).
    Text,
}

/// Upstream flags that have no effect here, with their value syntax. Everything upstream's
/// `--help` lists is either here or a field of [`Flags`] (checked by a test against the fixture
/// tests/fixtures/upstream-flags.tsv).
pub const IGNORED: &[(&str, Kind)] = &[
    // Generic API server flags: no HTTP/2, no CORS or HSTS, no in-flight limits.
    ("advertise-address", Kind::Ip),
    ("cors-allowed-origins", Kind::Text),
    ("emulated-version", Kind::Text),
    ("emulation-forward-compatible", Kind::Bool),
    ("external-hostname", Kind::Text),
    ("feature-gates", Kind::Text),
    ("goaway-chance", Kind::Float),
    ("livez-grace-period", Kind::Duration),
    ("max-mutating-requests-inflight", Kind::Int),
    ("max-requests-inflight", Kind::Int),
    ("min-request-timeout", Kind::Int),
    ("request-timeout", Kind::Duration),
    ("runtime-config-emulation-forward-compatible", Kind::Bool),
    ("shutdown-delay-duration", Kind::Duration),
    ("shutdown-send-retry-after", Kind::Bool),
    ("shutdown-watch-termination-grace-period", Kind::Duration),
    ("storage-initialization-timeout", Kind::Duration),
    ("strict-transport-security-directives", Kind::Text),
    // Kubelet client: kubelets are always reached over HTTPS.
    ("deprecated-kubelet-completely-insecure", Kind::Bool),
    // Secure serving: rustls' own cipher suites and versions (TLS 1.2 and 1.3), one certificate.
    ("disable-http2-serving", Kind::Bool),
    ("http2-max-streams-per-connection", Kind::Int),
    ("permit-address-sharing", Kind::Bool),
    ("permit-port-sharing", Kind::Bool),
    ("tls-cipher-suites", Kind::Text),
    ("tls-min-version", Kind::Text),
    ("tls-sni-cert-key", Kind::Text),
    // Authentication and authorization: a failed ConfigMap lookup is always logged and
    // tolerated; health paths are always open; no UID header.
    ("authentication-tolerate-lookup-failure", Kind::Bool),
    ("requestheader-uid-headers", Kind::Text),
    ("authorization-always-allow-paths", Kind::Text),
    // Audit logging: none.
    ("audit-log-batch-buffer-size", Kind::Int),
    ("audit-log-batch-max-size", Kind::Int),
    ("audit-log-batch-max-wait", Kind::Duration),
    ("audit-log-batch-throttle-burst", Kind::Int),
    ("audit-log-batch-throttle-enable", Kind::Bool),
    ("audit-log-batch-throttle-qps", Kind::Float),
    ("audit-log-compress", Kind::Bool),
    ("audit-log-format", Kind::Text),
    ("audit-log-maxage", Kind::Int),
    ("audit-log-maxbackup", Kind::Int),
    ("audit-log-maxsize", Kind::Int),
    ("audit-log-mode", Kind::Text),
    ("audit-log-path", Kind::Text),
    ("audit-log-truncate-enabled", Kind::Bool),
    ("audit-log-truncate-max-batch-size", Kind::Int),
    ("audit-log-truncate-max-event-size", Kind::Int),
    ("audit-log-version", Kind::Text),
    ("audit-policy-file", Kind::Text),
    ("audit-webhook-batch-buffer-size", Kind::Int),
    ("audit-webhook-batch-max-size", Kind::Int),
    ("audit-webhook-batch-max-wait", Kind::Duration),
    ("audit-webhook-batch-throttle-burst", Kind::Int),
    ("audit-webhook-batch-throttle-enable", Kind::Bool),
    ("audit-webhook-batch-throttle-qps", Kind::Float),
    ("audit-webhook-config-file", Kind::Text),
    ("audit-webhook-initial-backoff", Kind::Duration),
    ("audit-webhook-mode", Kind::Text),
    ("audit-webhook-truncate-enabled", Kind::Bool),
    ("audit-webhook-truncate-max-batch-size", Kind::Int),
    ("audit-webhook-truncate-max-event-size", Kind::Int),
    ("audit-webhook-version", Kind::Text),
    // Features: no profiling endpoints, no priority and fairness.
    ("contention-profiling", Kind::Bool),
    ("debug-socket-path", Kind::Text),
    ("enable-priority-and-fairness", Kind::Bool),
    ("profiling", Kind::Bool),
    // Logging: text lines on stderr, levels from -v only.
    ("log-flush-frequency", Kind::Duration),
    ("log-json-info-buffer-size", Kind::Text),
    ("log-json-split-stream", Kind::Bool),
    ("log-text-info-buffer-size", Kind::Text),
    ("log-text-split-stream", Kind::Bool),
    ("logging-format", Kind::Text),
    ("vmodule", Kind::Text),
];

/// What the command line asked for: the flags that take effect, and the ignored upstream flags
/// that were given (each once, in [`IGNORED`] order).
#[derive(Debug)]
pub struct Parsed {
    pub flags: Flags,
    pub ignored: Vec<&'static str>,
}

impl Parsed {
    /// One warning per ignored flag given; call once the logger is installed.
    pub fn warn_ignored(&self) {
        for name in &self.ignored {
            let flag = format!("--{name}");
            tracing::warn!(
                flag = flag.as_str(),
                "{flag} is accepted for compatibility with upstream metrics-server and has no effect"
            );
        }
    }
}

/// Go's strconv.ParseBool, which pflag uses for boolean flags.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (want true or false)")),
    }
}

fn ignored_arg(name: &'static str, kind: Kind) -> Arg {
    let arg = Arg::new(name).long(name).hide(true).action(ArgAction::Set);
    match kind {
        Kind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(parse_go_bool),
        Kind::Int => arg
            .allow_negative_numbers(true)
            .value_parser(clap::value_parser!(i64)),
        Kind::Float => arg
            .allow_negative_numbers(true)
            .value_parser(clap::value_parser!(f64)),
        Kind::Duration => arg
            .allow_hyphen_values(true)
            .value_parser(parse_go_duration),
        Kind::Ip => arg.value_parser(clap::value_parser!(IpAddr)),
        // pflag takes the next argument as the value even when it starts with '-'
        // (`--audit-log-path -` means stdout).
        Kind::Text => arg.allow_hyphen_values(true),
    }
}

/// The whole command: [`Flags`] plus the hidden [`IGNORED`] flags.
pub fn command() -> clap::Command {
    Flags::command().args(IGNORED.iter().map(|&(name, kind)| ignored_arg(name, kind)))
}

/// Parses a command line (program name first) as upstream would accept it.
pub fn parse_from<I, T>(argv: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(argv)?;
    let flags = Flags::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    // Upstream's options validation, by value (`--kubelet-insecure-tls=false` with a CA is fine).
    if flags.kubelet_insecure_tls && flags.kubelet_certificate_authority.is_some() {
        return Err(cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls",
        ));
    }
    Ok(Parsed {
        flags,
        ignored: given_ignored(&matches),
    })
}

fn given_ignored(matches: &ArgMatches) -> Vec<&'static str> {
    IGNORED
        .iter()
        .map(|&(name, _)| name)
        .filter(|name| matches.value_source(name) == Some(ValueSource::CommandLine))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of tests/fixtures/upstream-flags.tsv: (flag, pflag type, example, short).
    fn upstream_flags() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
        include_str!("../tests/fixtures/upstream-flags.tsv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                assert_eq!(cols.len(), 4, "bad fixture row {l:?}");
                (cols[0], cols[1], cols[2], cols[3])
            })
            .collect()
    }

    fn parse(args: &[String]) -> Result<Parsed, clap::Error> {
        parse_from(std::iter::once("kaddons-metrics-server".to_string()).chain(args.to_vec()))
    }

    #[test]
    fn every_upstream_flag_is_honoured_or_ignored_and_nothing_else_is_ignored() {
        let rows = upstream_flags();
        assert_eq!(rows.len(), 101, "upstream v0.8.0 lists 101 flags");
        let mut cmd = command();
        cmd.build();
        for (name, _, _, short) in &rows {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(name))
                .unwrap_or_else(|| panic!("--{name} is not accepted"));
            if *short != "-" {
                assert_eq!(arg.get_short().map(String::from).as_deref(), Some(*short));
            }
        }
        for (name, _) in IGNORED {
            assert!(
                rows.iter().any(|(n, ..)| n == name),
                "--{name} is ignored but is not an upstream flag"
            );
        }
    }

    #[test]
    fn upstream_flag_list_parses_with_both_value_syntaxes() {
        let rows: Vec<_> = upstream_flags()
            .into_iter()
            .filter(|(name, ..)| *name != "version")
            .collect();
        // All at once, `--flag=value`.
        let equals: Vec<String> = rows
            .iter()
            .map(|(n, _, v, _)| format!("--{n}={v}"))
            .collect();
        let parsed = parse(&equals).unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<&str> = IGNORED.iter().map(|(n, _)| *n).collect();
        assert_eq!(parsed.ignored, want);
        let f = &parsed.flags;
        assert_eq!(f.secure_port, 4443);
        assert_eq!(f.node_selector.as_deref(), Some("kubernetes.io/os=linux"));
        assert_eq!(
            f.requestheader_allowed_names,
            ["front-proxy-client", "aggregator"]
        );
        assert_eq!(f.requestheader_username_headers, ["X-Remote-User"]);
        assert!(f.authentication_skip_lookup && f.kubelet_use_node_status_port);
        assert!(!f.kubelet_insecure_tls);
        assert_eq!(f.verbosity, 2);
        // All at once, `--flag value` (booleans take no separate value in pflag).
        let spaced: Vec<String> = rows
            .iter()
            .flat_map(|(n, t, v, _)| {
                if *t == "bool" {
                    vec![format!("--{n}")]
                } else {
                    vec![format!("--{n}"), v.to_string()]
                }
            })
            .filter(|a| a != "--kubelet-insecure-tls")
            .collect();
        let parsed = parse(&spaced).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.ignored, want);
        // One at a time (with its partner where a pair is needed), so no flag hides another's
        // failure.
        let partner = |n: &str| match n {
            "tls-cert-file" => Some("--tls-private-key-file=/k"),
            "tls-private-key-file" => Some("--tls-cert-file=/c"),
            "kubelet-client-certificate" => Some("--kubelet-client-key=/k"),
            "kubelet-client-key" => Some("--kubelet-client-certificate=/c"),
            _ => None,
        };
        for (n, _, v, _) in &rows {
            let mut args = vec![format!("--{n}={v}")];
            args.extend(partner(n).map(String::from));
            parse(&args).unwrap_or_else(|e| panic!("--{n}={v}: {e}"));
        }
        let version = parse(&["--version".into()]).unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn pflag_value_syntax() {
        let p = |args: &[&str]| parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        for (arg, want) in [
            ("--kubelet-insecure-tls", true),
            ("--kubelet-insecure-tls=true", true),
            ("--kubelet-insecure-tls=false", false),
            ("--kubelet-insecure-tls=F", false),
            ("--kubelet-insecure-tls=1", true),
        ] {
            assert_eq!(p(&[arg]).unwrap().flags.kubelet_insecure_tls, want, "{arg}");
        }
        assert!(p(&["--kubelet-insecure-tls=yes"]).is_err());
        assert!(p(&["--profiling=maybe"]).is_err());
        assert!(p(&["--max-requests-inflight=lots"]).is_err());
        assert!(
            p(&["--request-timeout=10"]).is_err(),
            "Go durations need a unit"
        );
        assert!(p(&["--advertise-address=not-an-ip"]).is_err());
        assert!(p(&["--no-such-flag"]).is_err());
        // The last of repeated flags wins; ignored flags given twice are reported once.
        let parsed = p(&[
            "--secure-port=1",
            "--secure-port",
            "2",
            "--profiling=false",
            "--profiling",
            "--audit-log-path",
            "-",
            "-l",
            "a=b",
        ])
        .unwrap();
        assert_eq!(parsed.flags.secure_port, 2);
        assert_eq!(parsed.flags.node_selector.as_deref(), Some("a=b"));
        assert_eq!(parsed.ignored, ["audit-log-path", "profiling"]);
        // A false CA conflict is not one.
        assert!(p(&[
            "--kubelet-insecure-tls=false",
            "--kubelet-certificate-authority=/ca"
        ])
        .is_ok());
        let err = p(&[
            "--kubelet-insecure-tls",
            "--kubelet-certificate-authority=/ca",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
