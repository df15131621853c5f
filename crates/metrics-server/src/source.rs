//! Where the scraper's targets and the API's label metadata come from.
//!
//! The scraper needs, for every node, an address, port and path to GET; the API needs node and
//! pod labels to answer label selectors, and must only serve pods that are Running (as upstream
//! metrics-server does: a pod that finished or has not started yet has no meaningful usage, and
//! its kubelet may still report stale container series). Both come from the Kubernetes API, so
//! this module hides them behind two small traits:
//!
//! * [`NodeSource`]: the scrape targets, computed from Node objects with the kubelet address
//!   flags ([`AddressConfig`]);
//! * [`ObjectMetadata`]: node labels and pod labels/phase by name.
//!
//! [`KubeSource`] implements both with kube-rs reflectors (watch-backed caches; no API call per
//! scrape or per API request). [`StaticSource`] implements both from fixed data for tests.
//! [`LabeledProvider`] joins the store's usage with the metadata, dropping nodes and pods the
//! metadata does not know (deleted, filtered out by `--node-selector`, or not Running).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use kaddons_model::usage::{MetricsProvider, NodeUsage, PodUsage};

/// Node annotation that overrides the kubelet path to scrape.
pub const RESOURCE_METRICS_PATH_ANNOTATION: &str = "metrics.k8s.io/resource-metrics-path";
/// The kubelet's resource metrics endpoint.
pub const DEFAULT_RESOURCE_METRICS_PATH: &str = "/metrics/resource";
/// The kubelet's secure port.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// One node to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub name: String,
    /// IP address or host name (also the TLS server name).
    pub address: String,
    pub port: u16,
    /// Absolute path, e.g. `/metrics/resource`.
    pub path: String,
    pub labels: BTreeMap<String, String>,
}

impl NodeTarget {
    /// `address:port`, with an IPv6 address in brackets (the HTTP `Host` and log form).
    pub fn host_port(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// Provides the current scrape targets. Called once per cycle; must be cheap.
pub trait NodeSource: Send + Sync + 'static {
    fn nodes(&self) -> Vec<NodeTarget>;
}

/// Pod metadata the API needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodMeta {
    pub labels: BTreeMap<String, String>,
    /// `status.phase == Running`.
    pub running: bool,
}

/// Labels and phase by object name, for the [`LabeledProvider`].
pub trait ObjectMetadata: Send + Sync + 'static {
    /// Labels of a known node; `None` when the node is unknown (or excluded by the selector).
    fn node_labels(&self, name: &str) -> Option<BTreeMap<String, String>>;
    fn pod(&self, namespace: &str, name: &str) -> Option<PodMeta>;
}

/// A `Node.status.addresses[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressType {
    Hostname,
    InternalIP,
    ExternalIP,
    InternalDNS,
    ExternalDNS,
}

impl AddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::Hostname => "Hostname",
            AddressType::InternalIP => "InternalIP",
            AddressType::ExternalIP => "ExternalIP",
            AddressType::InternalDNS => "InternalDNS",
            AddressType::ExternalDNS => "ExternalDNS",
        }
    }
}

/// Errors of the target and address configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("unknown node address type {0:?} (expected Hostname, InternalIP, ExternalIP, InternalDNS or ExternalDNS)")]
    UnknownAddressType(String),
    #[error("no node address types given")]
    NoAddressTypes,
    #[error("node {node}: no address of the preferred types {wanted}")]
    NoAddress { node: String, wanted: String },
    #[error("node {node}: invalid kubelet port {port} in status.daemonEndpoints")]
    BadPort { node: String, port: i32 },
    #[error("node {node}: annotation {RESOURCE_METRICS_PATH_ANNOTATION} must be an absolute path, got {path:?}")]
    BadPath { node: String, path: String },
}

impl FromStr for AddressType {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Kubernetes spells these exactly; accept any case so `internalip` is not a trap.
        [
            AddressType::Hostname,
            AddressType::InternalIP,
            AddressType::ExternalIP,
            AddressType::InternalDNS,
            AddressType::ExternalDNS,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| SourceError::UnknownAddressType(s.to_string()))
    }
}

/// Parses `--kubelet-preferred-address-types` (comma separated, order = preference).
pub fn parse_address_types(list: &str) -> Result<Vec<AddressType>, SourceError> {
    let types = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(AddressType::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    if types.is_empty() {
        return Err(SourceError::NoAddressTypes);
    }
    Ok(types)
}

/// The kubelet address flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressConfig {
    /// First type with an address wins.
    pub preferred_types: Vec<AddressType>,
    /// `--kubelet-port`.
    pub port: u16,
    /// `--kubelet-use-node-status-port`: use `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub use_node_status_port: bool,
}

impl Default for AddressConfig {
    fn default() -> Self {
        AddressConfig {
            preferred_types: vec![
                AddressType::InternalIP,
                AddressType::ExternalIP,
                AddressType::Hostname,
            ],
            port: DEFAULT_KUBELET_PORT,
            use_node_status_port: false,
        }
    }
}

/// Computes where to scrape a node.
pub fn node_target(node: &Node, config: &AddressConfig) -> Result<NodeTarget, SourceError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let address = config
        .preferred_types
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|a| a.type_ == t.as_str() && !a.address.is_empty())
        })
        .map(|a| a.address.clone())
        .ok_or_else(|| SourceError::NoAddress {
            node: name.clone(),
            wanted: config
                .preferred_types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
        })?;
    let port = if config.use_node_status_port {
        let raw = node
            .status
            .as_ref()
            .and_then(|s| s.daemon_endpoints.as_ref())
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .map(|e| e.port);
        match raw {
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or(SourceError::BadPort {
                    node: name.clone(),
                    port: p,
                })?,
            // A node without daemon endpoints (not yet reported): fall back to the flag.
            None => config.port,
        }
    } else {
        config.port
    };
    let path = match node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESOURCE_METRICS_PATH_ANNOTATION))
    {
        Some(p) if p.starts_with('/') && !p.chars().any(char::is_whitespace) => p.clone(),
        Some(p) => {
            return Err(SourceError::BadPath {
                node: name,
                path: p.clone(),
            })
        }
        None => DEFAULT_RESOURCE_METRICS_PATH.to_string(),
    };
    Ok(NodeTarget {
        name,
        address,
        port,
        path,
        labels: node.metadata.labels.clone().unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// Static source (tests, fixed clusters)
// ---------------------------------------------------------------------------------------------

/// Fixed targets and pod metadata; both can be replaced at any time.
#[derive(Debug, Default)]
pub struct StaticSource {
    nodes: RwLock<Vec<NodeTarget>>,
    pods: RwLock<HashMap<(String, String), PodMeta>>,
}

impl StaticSource {
    pub fn new(nodes: Vec<NodeTarget>) -> Self {
        StaticSource {
            nodes: RwLock::new(nodes),
            pods: RwLock::default(),
        }
    }

    pub fn set_nodes(&self, nodes: Vec<NodeTarget>) {
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = nodes;
    }

    /// Adds or replaces a pod's metadata.
    pub fn set_pod(&self, namespace: &str, name: &str, meta: PodMeta) {
        self.pods
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.to_string(), name.to_string()), meta);
    }
}

impl NodeSource for StaticSource {
    fn nodes(&self) -> Vec<NodeTarget> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ObjectMetadata for StaticSource {
    fn node_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.labels.clone())
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodMeta> {
        self.pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

// ---------------------------------------------------------------------------------------------
// Joining usage with metadata
// ---------------------------------------------------------------------------------------------

/// A [`MetricsProvider`] that serves the inner provider's usage with labels from `meta`, and
/// only for known nodes and known Running pods.
pub struct LabeledProvider<P: ?Sized, M: ?Sized> {
    inner: Arc<P>,
    meta: Arc<M>,
}

impl<P: ?Sized, M: ?Sized> LabeledProvider<P, M> {
    pub fn new(inner: Arc<P>, meta: Arc<M>) -> Self {
        LabeledProvider { inner, meta }
    }
}

impl<P, M> MetricsProvider for LabeledProvider<P, M>
where
    P: MetricsProvider + ?Sized,
    M: ObjectMetadata + ?Sized,
{
    fn nodes(&self) -> Vec<NodeUsage> {
        self.inner
            .nodes()
            .into_iter()
            .filter_map(|mut n| {
                n.labels = self.meta.node_labels(&n.name)?;
                Some(n)
            })
            .collect()
    }

    fn pods(&self) -> Vec<PodUsage> {
        self.inner
            .pods()
            .into_iter()
            .filter_map(|mut p| {
                let meta = self.meta.pod(&p.namespace, &p.name)?;
                if !meta.running {
                    return None;
                }
                p.labels = meta.labels;
                Some(p)
            })
            .collect()
    }

    fn node(&self, name: &str) -> Option<NodeUsage> {
        let labels = self.meta.node_labels(name)?;
        let mut n = self.inner.node(name)?;
        n.labels = labels;
        Some(n)
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let meta = self.meta.pod(namespace, name).filter(|m| m.running)?;
        let mut p = self.inner.pod(namespace, name)?;
        p.labels = meta.labels;
        Some(p)
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes-backed source
// ---------------------------------------------------------------------------------------------

/// Nodes and pods from watch-backed caches.
///
/// Only what is used is kept in the caches (labels, the path annotation, addresses, the kubelet
/// port, the pod phase): a pod object can be tens of kilobytes, and a cluster has many.
pub struct KubeSource {
    nodes: reflector::Store<Node>,
    pods: reflector::Store<Pod>,
    address: AddressConfig,
    nodes_synced: Arc<AtomicBool>,
    pods_synced: Arc<AtomicBool>,
    /// Node names whose target could not be computed, reported once per change.
    reported: RwLock<HashMap<String, SourceError>>,
    tasks: Vec<JoinHandle<()>>,
}

impl KubeSource {
    /// Starts the node watch (restricted by `node_selector`, a label selector) and the pod
    /// watch in the background. Watch errors are retried with backoff and reported on stderr.
    pub fn start(client: Client, node_selector: Option<&str>, address: AddressConfig) -> Self {
        let mut node_config = watcher::Config::default();
        if let Some(sel) = node_selector.filter(|s| !s.is_empty()) {
            node_config = node_config.labels(sel);
        }
        let (nodes, node_writer) = reflector::store::<Node>();
        let (pods, pod_writer) = reflector::store::<Pod>();
        let node_stream = watcher(Api::<Node>::all(client.clone()), node_config)
            .default_backoff()
            .modify(slim_node)
            .reflect(node_writer);
        let pod_stream = watcher(Api::<Pod>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(slim_pod)
            .reflect(pod_writer);
        let nodes_synced = Arc::new(AtomicBool::new(false));
        let pods_synced = Arc::new(AtomicBool::new(false));
        let tasks = vec![
            tokio::spawn(drive(node_stream, "nodes")),
            tokio::spawn(drive(pod_stream, "pods")),
            tokio::spawn(mark_ready(nodes.clone(), nodes_synced.clone())),
            tokio::spawn(mark_ready(pods.clone(), pods_synced.clone())),
        ];
        KubeSource {
            nodes,
            pods,
            address,
            nodes_synced,
            pods_synced,
            reported: RwLock::default(),
            tasks,
        }
    }

    /// Whether both caches completed their initial list.
    pub fn is_synced(&self) -> bool {
        self.nodes_synced.load(Ordering::Acquire) && self.pods_synced.load(Ordering::Acquire)
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn drive<S, T, E>(stream: S, what: &'static str)
where
    S: futures::Stream<Item = Result<T, E>> + Send,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            tracing::warn!(watch = what, error = %e, "watch failed, retrying");
        }
    }
}

async fn mark_ready<K>(store: reflector::Store<K>, flag: Arc<AtomicBool>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    if store.wait_until_ready().await.is_ok() {
        flag.store(true, Ordering::Release);
    }
}

/// Keeps only the fields the source reads.
fn slim_node(node: &mut Node) {
    let meta = &mut node.metadata;
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k == RESOURCE_METRICS_PATH_ANNOTATION);
    }
    node.spec = None;
    if let Some(s) = node.status.as_mut() {
        s.images = None;
        s.conditions = None;
        s.capacity = None;
        s.allocatable = None;
        s.node_info = None;
        s.volumes_attached = None;
        s.volumes_in_use = None;
        s.config = None;
    }
}

fn slim_pod(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    pod.spec = None;
    if let Some(s) = pod.status.as_mut() {
        *s = k8s_openapi::api::core::v1::PodStatus {
            phase: s.phase.take(),
            ..Default::default()
        };
    }
}

impl NodeSource for KubeSource {
    fn nodes(&self) -> Vec<NodeTarget> {
        let mut out = Vec::new();
        let mut errors = HashMap::new();
        for node in self.nodes.state() {
            match node_target(&node, &self.address) {
                Ok(t) => out.push(t),
                Err(e) => {
                    errors.insert(node.metadata.name.clone().unwrap_or_default(), e);
                }
            }
        }
        let mut reported = self
            .reported
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (node, e) in &errors {
            if reported.get(node) != Some(e) {
                tracing::warn!(node = %node, error = %e, "skipping node");
            }
        }
        *reported = errors;
        out
    }
}

impl ObjectMetadata for KubeSource {
    fn node_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.nodes
            .get(&ObjectRef::new(name))
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodMeta> {
        self.pods
            .get(&ObjectRef::new(name).within(namespace))
            .map(|p| PodMeta {
                labels: p.metadata.labels.clone().unwrap_or_default(),
                running: p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::time::{Duration, SystemTime};

    fn node(addresses: &[(&str, &str)], status_port: Option<i32>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some([("zone".to_string(), "a".to_string())].into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NodeStatus {
                addresses: Some(
                    addresses
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                daemon_endpoints: status_port.map(|p| NodeDaemonEndpoints {
                    kubelet_endpoint: Some(DaemonEndpoint { port: p }),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn address_follows_preferred_type_order() {
        let n = node(
            &[
                ("Hostname", "kind-worker"),
                ("ExternalIP", "203.0.113.5"),
                ("InternalIP", "172.18.0.2"),
            ],
            None,
        );
        let mut cfg = AddressConfig::default();
        assert_eq!(node_target(&n, &cfg).unwrap().address, "172.18.0.2");
        cfg.preferred_types = parse_address_types("Hostname,InternalIP").unwrap();
        assert_eq!(node_target(&n, &cfg).unwrap().address, "kind-worker");
        cfg.preferred_types = parse_address_types("ExternalDNS,externalip").unwrap();
        assert_eq!(node_target(&n, &cfg).unwrap().address, "203.0.113.5");
        cfg.preferred_types = vec![AddressType::InternalDNS];
        assert!(matches!(
            node_target(&n, &cfg),
            Err(SourceError::NoAddress { .. })
        ));
    }

    #[test]
    fn address_type_parsing_rejects_unknown_and_empty() {
        assert_eq!(
            parse_address_types("InternalIP, Hostname").unwrap(),
            vec![AddressType::InternalIP, AddressType::Hostname]
        );
        assert!(matches!(
            parse_address_types("InternalIP,Bogus"),
            Err(SourceError::UnknownAddressType(t)) if t == "Bogus"
        ));
        assert_eq!(parse_address_types(" , "), Err(SourceError::NoAddressTypes));
    }

    #[test]
    fn port_from_flag_or_node_status() {
        let n = node(&[("InternalIP", "10.0.0.1")], Some(10255));
        let mut cfg = AddressConfig {
            port: 4443,
            ..AddressConfig::default()
        };
        assert_eq!(node_target(&n, &cfg).unwrap().port, 4443);
        cfg.use_node_status_port = true;
        assert_eq!(node_target(&n, &cfg).unwrap().port, 10255);
        let bad = node(&[("InternalIP", "10.0.0.1")], Some(70000));
        assert!(matches!(
            node_target(&bad, &cfg),
            Err(SourceError::BadPort { port: 70000, .. })
        ));
        let unreported = node(&[("InternalIP", "10.0.0.1")], None);
        assert_eq!(node_target(&unreported, &cfg).unwrap().port, 4443);
    }

    #[test]
    fn path_from_annotation() {
        let mut n = node(&[("InternalIP", "10.0.0.1")], None);
        let cfg = AddressConfig::default();
        let t = node_target(&n, &cfg).unwrap();
        assert_eq!(t.path, "/metrics/resource");
        assert_eq!(t.labels.get("zone").map(String::as_str), Some("a"));
        n.metadata.annotations = Some(
            [(
                RESOURCE_METRICS_PATH_ANNOTATION.to_string(),
                "/metrics/resource/v1alpha1".to_string(),
            )]
            .into(),
        );
        assert_eq!(
            node_target(&n, &cfg).unwrap().path,
            "/metrics/resource/v1alpha1"
        );
        n.metadata.annotations = Some(
            [(
                RESOURCE_METRICS_PATH_ANNOTATION.to_string(),
                "metrics".to_string(),
            )]
            .into(),
        );
        assert!(matches!(
            node_target(&n, &cfg),
            Err(SourceError::BadPath { .. })
        ));
    }

    struct Fixed;
    impl MetricsProvider for Fixed {
        fn nodes(&self) -> Vec<NodeUsage> {
            ["n1", "gone"]
                .into_iter()
                .map(|name| NodeUsage {
                    name: name.into(),
                    labels: BTreeMap::new(),
                    timestamp: SystemTime::UNIX_EPOCH,
                    window: Duration::from_secs(15),
                    cpu_nanocores: 1,
                    memory_bytes: 1,
                })
                .collect()
        }
        fn pods(&self) -> Vec<PodUsage> {
            ["running", "succeeded", "unknown"]
                .into_iter()
                .map(|name| PodUsage {
                    namespace: "ns".into(),
                    name: name.into(),
                    labels: BTreeMap::new(),
                    timestamp: SystemTime::UNIX_EPOCH,
                    window: Duration::from_secs(15),
                    containers: vec![],
                })
                .collect()
        }
    }

    #[test]
    fn labeled_provider_joins_labels_and_drops_unknown_or_not_running() {
        let src = StaticSource::new(vec![NodeTarget {
            name: "n1".into(),
            address: "127.0.0.1".into(),
            port: 1,
            path: "/".into(),
            labels: [("role".to_string(), "worker".to_string())].into(),
        }]);
        let app: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        src.set_pod(
            "ns",
            "running",
            PodMeta {
                labels: app.clone(),
                running: true,
            },
        );
        src.set_pod(
            "ns",
            "succeeded",
            PodMeta {
                labels: app.clone(),
                running: false,
            },
        );
        let p = LabeledProvider::new(Arc::new(Fixed), Arc::new(src));
        let nodes = p.nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].name, "n1");
        assert_eq!(
            nodes[0].labels.get("role").map(String::as_str),
            Some("worker")
        );
        let pods = p.pods();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].name, "running");
        assert_eq!(pods[0].labels, app);
    }
}
