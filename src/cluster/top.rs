//! The cluster I/O behind `kaddons top`: nodes' allocatable, the `metrics.k8s.io` lists, and
//! each kubelet's Summary through the API server's node proxy when no metrics API is served.
//! Parsing and printing are in [`crate::top`].

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

use super::client::{ClusterError, Connection};
use crate::top::{
    parse_kubelet_summary, parse_node_metrics_list, parse_pod_metrics_list, Allocatable,
    KubeletSummary, NodeUsage, PodUsage, TopError,
};

/// Kubelet Summary requests in flight at once.
const CONCURRENCY: usize = 8;

/// Where usage is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `metrics.k8s.io`, falling back to the kubelets when it is not served.
    Auto,
    /// `metrics.k8s.io` only.
    Metrics,
    /// The kubelets' Summary API only.
    Kubelet,
}

/// What can go wrong reading usage.
#[derive(Debug, thiserror::Error)]
pub enum TopIoError {
    /// The metrics API failed (and the source did not allow falling back).
    #[error(transparent)]
    Metrics(ClusterError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Usage(#[from] TopError),
}

/// One kubelet's Summary that could not be read; reported, not fatal.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Usage(#[from] TopError),
}

/// Usage read from a cluster, with how it was read.
#[derive(Debug)]
pub struct Fetched<T> {
    pub usage: Vec<T>,
    /// Nodes whose kubelet Summary failed, with why.
    pub failed_nodes: Vec<(String, SummaryError)>,
}

impl<T> Fetched<T> {
    fn metrics(usage: Vec<T>) -> Self {
        Fetched {
            usage,
            failed_nodes: Vec::new(),
        }
    }
}

/// The allocatable of every node the selector matches, by name.
pub async fn allocatable(
    conn: &Connection,
    selector: Option<&str>,
) -> Result<BTreeMap<String, Allocatable>, TopIoError> {
    let api: Api<Node> = Api::all(conn.client.clone());
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let list = conn.call(api.list(&lp)).await?;
    let mut allocatable = BTreeMap::new();
    for n in &list.items {
        if let Some(name) = &n.metadata.name {
            allocatable.insert(name.clone(), Allocatable::from_node(n)?);
        }
    }
    Ok(allocatable)
}

/// Usage of the given nodes (the keys of [`allocatable`]'s answer) from `source`.
/// `on_fallback` runs when [`Source::Auto`] finds no metrics API, before the kubelets are read.
pub async fn node_usage(
    conn: &Connection,
    source: Source,
    selector: Option<&str>,
    nodes: &[String],
    on_fallback: impl FnOnce(),
) -> Result<Fetched<NodeUsage>, TopIoError> {
    if source != Source::Kubelet {
        let path = format!("/apis/metrics.k8s.io/v1beta1/nodes{}", query(selector));
        match get_raw(conn, &path).await {
            Ok(body) => return Ok(Fetched::metrics(parse_node_metrics_list(body)?)),
            Err(e) if source == Source::Auto && not_served(&e) => on_fallback(),
            Err(e) => return Err(TopIoError::Metrics(e)),
        }
    }
    let (summaries, failed_nodes) = summaries(conn, nodes).await;
    Ok(Fetched {
        usage: summaries.into_iter().filter_map(|s| s.node).collect(),
        failed_nodes,
    })
}

/// Usage of the pods in `namespace` (every namespace for `None`) that the selector matches;
/// `on_fallback` as for [`node_usage`].
pub async fn pod_usage(
    conn: &Connection,
    source: Source,
    namespace: Option<&str>,
    selector: Option<&str>,
    on_fallback: impl FnOnce(),
) -> Result<Fetched<PodUsage>, TopIoError> {
    if source != Source::Kubelet {
        let path = match namespace {
            Some(ns) => format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                urlencode(ns)
            ),
            None => "/apis/metrics.k8s.io/v1beta1/pods".to_string(),
        } + &query(selector);
        match get_raw(conn, &path).await {
            Ok(body) => return Ok(Fetched::metrics(parse_pod_metrics_list(body)?)),
            Err(e) if source == Source::Auto && not_served(&e) => on_fallback(),
            Err(e) => return Err(TopIoError::Metrics(e)),
        }
    }
    let (usage, failed_nodes) = kubelet_pods(conn, namespace, selector).await?;
    Ok(Fetched {
        usage,
        failed_nodes,
    })
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

type Summaries = (Vec<KubeletSummary>, Vec<(String, SummaryError)>);

/// Summaries of the given nodes, concurrently; a node whose kubelet fails is returned apart.
async fn summaries(conn: &Connection, nodes: &[String]) -> Summaries {
    let results: Vec<(String, Result<KubeletSummary, SummaryError>)> = stream::iter(nodes.iter())
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
    let mut failed = Vec::new();
    for (node, r) in results {
        match r {
            Ok(s) => out.push(s),
            Err(e) => failed.push((node, e)),
        }
    }
    (out, failed)
}

/// Pods from every kubelet's Summary, narrowed to the namespace and (through the API, since
/// summaries carry no labels) to the pods the selector matches.
async fn kubelet_pods(
    conn: &Connection,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<(Vec<PodUsage>, Vec<(String, SummaryError)>), TopIoError> {
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
    let (summaries, failed) = summaries(conn, &names).await;
    let pods = summaries
        .into_iter()
        .flat_map(|s| s.pods)
        .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
        .filter(|p| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&(p.namespace.clone(), p.name.clone())))
        })
        .collect();
    Ok((pods, failed))
}
