//! `kaddons-metrics-server`: the metrics server kaddons deploys as its metrics-server addon.
//!
//! A thin main: flags (named as upstream metrics-server's, so manifests and muscle memory carry
//! over) are mapped onto the library's scraper, node source and API server configs, and the
//! pieces are started. Nothing here depends on the kaddons CLI (src/cli.rs, src/commands):
//! the binary ships in its own image and must stay small.

mod flags;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kaddons_metrics_server::api::auth::{DEFAULT_ALLOWED_TTL, DEFAULT_DENIED_TTL};
use kaddons_metrics_server::api::{
    self, CachingAuthorizer, CachingTokenReviewer, HealthChecks, Registry, RequestHeaderConfig,
    RequestHeaderNames, ServerConfig, TlsSource,
};
use kaddons_metrics_server::install_crypto_provider;
use kaddons_metrics_server::reviews::{
    read_authentication_configmap, KubeAuthorizer, KubeTokenReviewer,
};
use kaddons_metrics_server::scrape::{
    check_resolution, store_has_data, BearerToken, KubeletVerify, ScrapeConfig, Scraper,
};
use kaddons_metrics_server::source::{
    parse_address_types, AddressConfig, KubeSource, LabeledProvider,
};
use kaddons_metrics_server::store::SharedStore;

use crate::flags::Flags;

/// mimalloc instead of glibc's malloc: each scrape allocates and frees an HTTPS exchange's
/// buffers, and glibc spent 15% of the server's CPU on that at 1,000 nodes (perf) and kept
/// much of it resident between cycles (BENCHMARKS.md, "Side by side").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc options by their number in `mi_option_e` (mimalloc v3's mimalloc.h, as bundled by
/// libmimalloc-sys 0.1.49, which names neither; documented defaults: eager arena commit 2,
/// purge delay 1000 ms).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Commits arena memory only as it is used and returns freed memory to the OS at once. With
/// mimalloc's defaults (its first 1 GiB arena committed eagerly, purges after 1 s) the server
/// at 1,000 nodes held 72-85 MiB resident; with these, 48 MiB at the same CPU (BENCHMARKS.md).
/// Before main: the first arena is reserved at the first allocation, and the Rust runtime
/// allocates before main; set later, eager commit no longer applies to that arena.
#[ctor::ctor(unsafe)]
fn configure_allocator() {
    // SAFETY: mi_option_set only stores an integer option; any value is valid for these two.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// The log level for klog's `-v N`.
fn log_level(verbosity: u8) -> tracing::Level {
    match verbosity {
        0..=3 => tracing::Level::INFO,
        4..=5 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// Logs to stderr at the `-v` level; targets outside this package stay at warn and above
/// unless -v asks for trace.
fn install_logger(verbosity: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = log_level(verbosity);
    let others = if level == tracing::Level::TRACE {
        LevelFilter::TRACE
    } else {
        LevelFilter::WARN
    };
    let filter = Targets::new()
        .with_default(others)
        .with_target("kaddons_metrics_server", level)
        .with_target("kaddons_model", level);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .try_init();
}

/// Header names from the `--requestheader-*-headers` flags; an empty flag keeps the default.
fn request_header_names(flags: &Flags) -> RequestHeaderNames {
    let pick = |given: &[String], default: Vec<String>| {
        if given.is_empty() {
            default
        } else {
            given.to_vec()
        }
    };
    let default = RequestHeaderNames::default();
    RequestHeaderNames {
        username: pick(&flags.requestheader_username_headers, default.username),
        group: pick(&flags.requestheader_group_headers, default.group),
        extra_prefix: pick(
            &flags.requestheader_extra_headers_prefix,
            default.extra_prefix,
        ),
    }
}

fn read_file(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {what} {}: {e}", path.display()))
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::incluster().map_err(|e| {
            format!("in-cluster configuration (use --kubeconfig outside a pod): {e}")
        })?,
    };
    kube::Client::try_from(config).map_err(|e| format!("building API client: {e}"))
}

async fn run(flags: Flags) -> Result<(), String> {
    check_resolution(flags.metric_resolution).map_err(|e| e.to_string())?;
    let preferred_types =
        parse_address_types(&flags.kubelet_preferred_address_types).map_err(|e| e.to_string())?;
    let client = kube_client(flags.kubeconfig.as_ref()).await?;
    // Delegated authentication and authorization may go through their own kubeconfigs, as
    // upstream's --authentication-kubeconfig and --authorization-kubeconfig.
    let authn_client = match &flags.authentication_kubeconfig {
        Some(path) => kube_client(Some(path)).await?,
        None => client.clone(),
    };
    let authz_client = match &flags.authorization_kubeconfig {
        Some(path) => kube_client(Some(path)).await?,
        None => client.clone(),
    };

    // Authentication settings: flags first, the kube-apiserver's ConfigMap for the rest.
    let mut client_ca_pem = match &flags.client_ca_file {
        Some(p) => Some(read_file(p, "--client-ca-file")?),
        None => None,
    };
    let mut request_header = match &flags.requestheader_client_ca_file {
        Some(p) => Some(RequestHeaderConfig {
            ca_pem: read_file(p, "--requestheader-client-ca-file")?,
            allowed_names: flags.requestheader_allowed_names.clone(),
            headers: request_header_names(&flags),
        }),
        None => None,
    };
    if (client_ca_pem.is_none() || request_header.is_none()) && !flags.authentication_skip_lookup {
        match read_authentication_configmap(authn_client.clone()).await {
            Ok(found) => {
                client_ca_pem = client_ca_pem.or(found.client_ca_pem);
                if request_header.is_none() {
                    request_header = found.request_header.map(|mut rh| {
                        if !flags.requestheader_allowed_names.is_empty() {
                            rh.allowed_names = flags.requestheader_allowed_names.clone();
                        }
                        rh
                    });
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "requests through the API aggregator will not authenticate"
            ),
        }
    }

    let mut scrape = ScrapeConfig::new(flags.metric_resolution);
    scrape.request_timeout = flags.kubelet_request_timeout;
    scrape.max_concurrency = usize::from(flags.kubelet_max_concurrency);
    scrape.verify = if flags.kubelet_insecure_tls {
        KubeletVerify::Insecure
    } else if let Some(ca) = &flags.kubelet_certificate_authority {
        KubeletVerify::CaFile(ca.clone())
    } else {
        KubeletVerify::SystemRoots
    };
    scrape.client_cert = flags
        .kubelet_client_certificate
        .clone()
        .zip(flags.kubelet_client_key.clone());
    scrape.token = match &flags.kubelet_bearer_token_file {
        Some(p) => BearerToken::File(p.clone()),
        None => BearerToken::in_cluster_default(),
    };

    let source = Arc::new(KubeSource::start(
        client.clone(),
        flags.node_selector.as_deref(),
        AddressConfig {
            preferred_types,
            port: flags.kubelet_port,
            use_node_status_port: flags.kubelet_use_node_status_port,
        },
    ));
    let store = Arc::new(SharedStore::new(flags.metric_resolution));
    let scraper = Scraper::new(scrape, source.clone(), store.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(LabeledProvider::new(store.clone(), source.clone()));

    let registry = Arc::new(Registry::new());
    registry.add_source(Arc::new(scraper.clone()));
    let live = scraper.clone();
    let ready_store = store.clone();
    let ready_source = source.clone();
    let health = HealthChecks::default()
        .with_liveness("metric-collection-timely", move || live.check_liveness())
        .with_readiness("metric-storage-ready", move || store_has_data(&ready_store))
        .with_readiness("metadata-informer-sync", move || {
            if ready_source.is_synced() {
                Ok(())
            } else {
                Err("node and pod caches not synced yet".into())
            }
        });

    let tls = match (&flags.tls_cert_file, &flags.tls_private_key_file) {
        (Some(cert_file), Some(key_file)) => TlsSource::Files {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        },
        _ => TlsSource::SelfSigned {
            cert_dir: flags.cert_dir.clone(),
            hosts: self_signed_hosts(flags.bind_address),
        },
    };
    let mut config = ServerConfig::new(SocketAddr::new(flags.bind_address, flags.secure_port), tls);
    config.client_ca_pem = client_ca_pem;
    config.request_header = request_header;
    config.token_reviewer = Some(Arc::new(CachingTokenReviewer::new(
        KubeTokenReviewer::new(authn_client),
        flags
            .authentication_token_webhook_cache_ttl
            .unwrap_or(DEFAULT_ALLOWED_TTL),
        DEFAULT_DENIED_TTL,
    )));
    config.authorizer = Some(Arc::new(CachingAuthorizer::new(
        KubeAuthorizer::new(authz_client),
        flags
            .authorization_webhook_cache_authorized_ttl
            .unwrap_or(DEFAULT_ALLOWED_TTL),
        flags
            .authorization_webhook_cache_unauthorized_ttl
            .unwrap_or(DEFAULT_DENIED_TTL),
    )));
    config.health = health;
    config.registry = registry;

    let server = api::start(config, provider)
        .await
        .map_err(|e| format!("starting the API server: {e}"))?;
    tracing::info!(
        address = %server.local_addr(),
        metric_resolution = ?flags.metric_resolution,
        "kaddons-metrics-server serving on https://{}",
        server.local_addr()
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The scraper runs on a thread and single-threaded runtime of its own: a cycle is
    // thousands of small HTTPS exchanges, and on the shared multi-threaded runtime their tasks
    // hopped between workers (futex wake-ups and context switches were ~10% of the server's
    // CPU at 1,000 nodes, perf). The API keeps the multi-threaded runtime.
    let scrape_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the scraper's runtime: {e}"))?;
    let scraping = std::thread::Builder::new()
        .name("scraper".into())
        .spawn({
            let scraper = scraper.clone();
            let resolution = flags.metric_resolution;
            move || {
                scrape_runtime.block_on(async move {
                    // As upstream, the first cycle waits for the node and pod caches: a cycle before
                    // the initial node list scrapes nothing, and the first rates would then wait a
                    // whole resolution longer. Bounded, so that a cache that cannot sync (RBAC) does
                    // not stop scraping for good.
                    let deadline = tokio::time::Instant::now() + resolution;
                    while !source.is_synced() && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    if !source.is_synced() {
                        tracing::warn!(
                            "node and pod caches not synced after {resolution:?}; scraping anyway"
                        );
                    }
                    scraper.run(stop_rx).await
                })
            }
        })
        .map_err(|e| format!("starting the scraper thread: {e}"))?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || scraping.join()).await;
    server.shutdown().await;
    Ok(())
}

/// Names for the generated serving certificate: the pod's host name (when known) and the bind
/// address; the API layer adds localhost and 127.0.0.1.
fn self_signed_hosts(bind: IpAddr) -> Vec<String> {
    let mut hosts = Vec::new();
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.is_empty() {
            hosts.push(h);
        }
    }
    if !bind.is_unspecified() {
        hosts.push(bind.to_string());
    }
    hosts
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    install_crypto_provider();
    let parsed = match flags::parse_from(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    };
    install_logger(parsed.flags.verbosity);
    parsed.warn_ignored();
    let flags = parsed.flags;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "starting the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The options are set before main (the test binary has the same constructor); the purge
    /// delay is the option just before the first one libmimalloc-sys names after it.
    #[test]
    fn allocator_options_are_set_before_main() {
        assert_eq!(
            MI_OPTION_PURGE_DELAY,
            libmimalloc_sys::mi_option_use_numa_nodes - 1
        );
        // SAFETY: mi_option_get only reads an integer option.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 0);
        assert_eq!(get(MI_OPTION_ARENA_EAGER_COMMIT), 0);
    }

    #[test]
    fn flags_parse_and_resolution_floor_is_checked() {
        let f = flags::parse_from(["kaddons-metrics-server"]).unwrap().flags;
        assert_eq!(f.metric_resolution, Duration::from_secs(15));
        assert_eq!(f.kubelet_port, 10250);
        assert_eq!(f.secure_port, 10250);
        assert!(check_resolution(f.metric_resolution).is_ok());
        let f = flags::parse_from([
            "kaddons-metrics-server",
            "--metric-resolution=5s",
            "--kubelet-insecure-tls",
            "--requestheader-allowed-names=front-proxy-client,aggregator",
        ])
        .unwrap()
        .flags;
        assert_eq!(f.requestheader_allowed_names.len(), 2);
        let err = check_resolution(f.metric_resolution).unwrap_err();
        assert!(err.to_string().contains("minimum"), "{err}");
        assert!(flags::parse_from([
            "kaddons-metrics-server",
            "--kubelet-insecure-tls",
            "--kubelet-certificate-authority=/ca.crt",
        ])
        .is_err());
        assert!(flags::parse_from(["kaddons-metrics-server", "--tls-cert-file=/x"]).is_err());
    }

    #[test]
    fn klog_verbosity_flag_sets_the_log_level() {
        let v = |args: &[&str]| {
            let mut argv = vec!["kaddons-metrics-server"];
            argv.extend_from_slice(args);
            flags::parse_from(argv).map(|p| log_level(p.flags.verbosity))
        };
        use tracing::Level;
        assert_eq!(v(&[]).unwrap(), Level::INFO);
        assert_eq!(v(&["--v=2"]).unwrap(), Level::INFO);
        assert_eq!(v(&["-v", "4"]).unwrap(), Level::DEBUG);
        assert_eq!(v(&["-v4"]).unwrap(), Level::DEBUG);
        assert_eq!(v(&["--v", "6"]).unwrap(), Level::TRACE);
        assert_eq!(v(&["--v=10"]).unwrap(), Level::TRACE);
        assert!(v(&["--v=x"]).is_err());
        assert!(v(&["--v=-1"]).is_err());
    }
}
