//! `kaddons top nodes|pods`: usage from metrics.k8s.io when it is served, otherwise from each
//! kubelet's Summary API through the API server, so usage is visible with no metrics server.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kaddons::cluster::client::{ClusterError, Connection};
use kaddons::top::{
    self, node_usage_list, parse_kubelet_summary, parse_node_metrics_list, parse_pod_metrics_list,
    pod_usage_list, Allocatable, NodeUsage, PodTableOptions, PodUsage, SortBy,
};
use kube::api::{Api, ListParams};

use crate::cli::{
    GlobalArgs, OutputFormat, SortArg, SourceArg, TopCommand, TopNodesArgs, TopPodsArgs,
};
use crate::printer::Printer;

use super::{connect, structured, ExitStatus};

/// Kubelet Summary requests in flight at once.
const CONCURRENCY: usize = 8;

pub async fn run(
    global: &GlobalArgs,
    cmd: &TopCommand,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let conn = connect(global).await?;
    match cmd {
        TopCommand::Nodes(args) => nodes(global, &conn, args, printer).await,
        TopCommand::Pods(args) => pods(global, &conn, args, printer).await,
    }
}

fn sort(s: SortArg) -> SortBy {
    match s {
        SortArg::Name => SortBy::Name,
        SortArg::Cpu => SortBy::Cpu,
        SortArg::Memory => SortBy::Memory,
    }
}

async fn get_raw(conn: &Connection, path: &str) -> Result<Vec<u8>, ClusterError> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| ClusterError::Api {
            server: conn.server.clone(),
            context: conn.context.clone(),
            code: 0,
            reason: "BadRequest".into(),
            message: e.to_string(),
        })?;
    conn.call(conn.client.request_text(req))
        .await
        .map(String::into_bytes)
}

/// Is this the answer of a cluster without a metrics API (as opposed to a real failure)?
fn not_served(e: &ClusterError) -> bool {
    matches!(e.code(), Some(404) | Some(503))
}

fn query(selector: Option<&str>) -> String {
    selector
        .map(|s| format!("?labelSelector={}", urlencode(s)))
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Summaries of the given nodes, concurrently; a node whose kubelet fails is reported, not fatal.
async fn summaries(
    conn: &Connection,
    nodes: &[String],
    printer: &Printer,
) -> Vec<top::KubeletSummary> {
    let results: Vec<(String, anyhow::Result<top::KubeletSummary>)> = stream::iter(nodes.iter())
        .map(|n| async move {
            let path = format!("/api/v1/nodes/{}/proxy/stats/summary", urlencode(n));
            let r = async {
                let body = get_raw(conn, &path).await?;
                Ok(parse_kubelet_summary(body)?)
            }
            .await;
            (n.clone(), r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    for (node, r) in results {
        match r {
            Ok(s) => out.push(s),
            Err(e) => printer.warn(&format!("node {node}: kubelet Summary API failed: {e:#}")),
        }
    }
    out
}

async fn nodes(
    global: &GlobalArgs,
    conn: &Connection,
    args: &TopNodesArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let api: Api<Node> = Api::all(conn.client.clone());
    let mut lp = ListParams::default();
    if let Some(s) = &args.selector {
        lp = lp.labels(s);
    }
    let list = conn.call(api.list(&lp)).await?;
    let mut allocatable = BTreeMap::new();
    for n in &list.items {
        if let Some(name) = &n.metadata.name {
            allocatable.insert(name.clone(), Allocatable::from_node(n)?);
        }
    }
    let usage: Vec<NodeUsage> = match usage_source(args.source) {
        Source::Metrics | Source::Auto => {
            let path = format!(
                "/apis/metrics.k8s.io/v1beta1/nodes{}",
                query(args.selector.as_deref())
            );
            match get_raw(conn, &path).await {
                Ok(body) => parse_node_metrics_list(body)?,
                Err(e) if args.source == SourceArg::Auto && not_served(&e) => {
                    printer.status(
                        "metrics.k8s.io is not served; reading the kubelets' Summary API instead",
                    );
                    kubelet_nodes(conn, &allocatable, printer).await
                }
                Err(e) => {
                    return Err(e).context(
                        "metrics.k8s.io (use --source kubelet to read the kubelets directly)",
                    )
                }
            }
        }
        Source::Kubelet => kubelet_nodes(conn, &allocatable, printer).await,
    };
    let list = node_usage_list(&usage, &allocatable, sort(args.sort_by));
    let text = match global.output {
        OutputFormat::Text => list.to_table(false),
        format => structured(format, &list)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}

async fn kubelet_nodes(
    conn: &Connection,
    allocatable: &BTreeMap<String, Allocatable>,
    printer: &Printer,
) -> Vec<NodeUsage> {
    let names: Vec<String> = allocatable.keys().cloned().collect();
    summaries(conn, &names, printer)
        .await
        .into_iter()
        .filter_map(|s| s.node)
        .collect()
}

#[derive(Clone, Copy)]
enum Source {
    Auto,
    Metrics,
    Kubelet,
}

fn usage_source(s: SourceArg) -> Source {
    match s {
        SourceArg::Auto => Source::Auto,
        SourceArg::Metrics => Source::Metrics,
        SourceArg::Kubelet => Source::Kubelet,
    }
}

async fn pods(
    global: &GlobalArgs,
    conn: &Connection,
    args: &TopPodsArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| conn.client.default_namespace().to_string()),
        )
    };
    let metrics_path = match &namespace {
        Some(ns) => format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
            urlencode(ns)
        ),
        None => "/apis/metrics.k8s.io/v1beta1/pods".to_string(),
    } + &query(args.selector.as_deref());
    let usage: Vec<PodUsage> = match usage_source(args.source) {
        Source::Metrics | Source::Auto => match get_raw(conn, &metrics_path).await {
            Ok(body) => parse_pod_metrics_list(body)?,
            Err(e) if args.source == SourceArg::Auto && not_served(&e) => {
                printer.status(
                    "metrics.k8s.io is not served; reading the kubelets' Summary API instead",
                );
                kubelet_pods(
                    conn,
                    namespace.as_deref(),
                    args.selector.as_deref(),
                    printer,
                )
                .await?
            }
            Err(e) => {
                return Err(e)
                    .context("metrics.k8s.io (use --source kubelet to read the kubelets directly)")
            }
        },
        Source::Kubelet => {
            kubelet_pods(
                conn,
                namespace.as_deref(),
                args.selector.as_deref(),
                printer,
            )
            .await?
        }
    };
    let list = pod_usage_list(&usage, sort(args.sort_by));
    let text = match global.output {
        OutputFormat::Text => list.to_table(PodTableOptions {
            all_namespaces: args.all_namespaces,
            containers: args.containers,
            no_headers: false,
        }),
        format => structured(format, &list)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}

/// Pods from every kubelet's Summary, narrowed to the namespace and (through the API, since
/// summaries carry no labels) to the pods the selector matches.
async fn kubelet_pods(
    conn: &Connection,
    namespace: Option<&str>,
    selector: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<Vec<PodUsage>> {
    let nodes: Api<Node> = Api::all(conn.client.clone());
    let names: Vec<String> = conn
        .call(nodes.list(&ListParams::default()))
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let wanted: Option<BTreeSet<(String, String)>> = match selector {
        Some(s) => {
            let api: Api<Pod> = match namespace {
                Some(ns) => Api::namespaced(conn.client.clone(), ns),
                None => Api::all(conn.client.clone()),
            };
            let list = conn
                .call(api.list(&ListParams::default().labels(s)))
                .await?;
            Some(
                list.items
                    .into_iter()
                    .map(|p| {
                        (
                            p.metadata.namespace.unwrap_or_default(),
                            p.metadata.name.unwrap_or_default(),
                        )
                    })
                    .collect(),
            )
        }
        None => None,
    };
    Ok(summaries(conn, &names, printer)
        .await
        .into_iter()
        .flat_map(|s| s.pods)
        .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
        .filter(|p| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&(p.namespace.clone(), p.name.clone())))
        })
        .collect())
}
