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
use std::sync::{Arc, PoisonError, RwLock};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::PartialObjectMeta;
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
/// Only what is used is kept, already in the form it is used in: for a node its scrape target
/// (or why it has none) and labels, for a pod its labels. Pods are watched as upstream's
/// metrics-server watches them: metadata only (`PartialObjectMetadata`, no spec or status on
/// the wire or in memory) and only Running ones (field selector `status.phase=Running`; a pod
/// that stops running leaves the watch as a deletion). A Pod object, even stripped of its spec
/// and status, keeps k8s-openapi's structs of mostly-`None` fields; a cluster has tens of
/// thousands of pods, so the cache holds compact records instead of objects.
pub struct KubeSource {
    nodes: Arc<RwLock<WatchMap<CachedNode>>>,
    pods: Arc<RwLock<WatchMap<CachedPod>>>,
    /// Node names whose target could not be computed, reported once per change.
    reported: RwLock<HashMap<String, SourceError>>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the cache keeps of a Node: its labels and where to scrape it.
#[derive(Debug, Clone, PartialEq)]
struct CachedNode {
    labels: BTreeMap<String, String>,
    /// The target without labels (they are filled in when it is handed out).
    target: Result<NodeTarget, SourceError>,
}

/// What the cache keeps of a Running pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedPod {
    labels: Box<[(Box<str>, Box<str>)]>,
}

/// The pod watch's field selector, as upstream's (`runningPodMetadataInformer`).
const RUNNING_PODS: &str = "status.phase=Running";

/// A map fed by a watch, keyed by `name` (nodes) or `namespace/name` (pods). A relist (the
/// watcher's `Init` .. `InitDone`) is collected aside and swapped in whole, so objects deleted
/// while the watch was down disappear and readers never see a half-listed cache.
#[derive(Debug)]
struct WatchMap<V> {
    live: HashMap<Box<str>, V>,
    relist: Option<HashMap<Box<str>, V>>,
    synced: bool,
}

impl<V> Default for WatchMap<V> {
    fn default() -> Self {
        WatchMap {
            live: HashMap::new(),
            relist: None,
            synced: false,
        }
    }
}

impl<V> WatchMap<V> {
    /// Applies one watch event, with the object already turned into `(key, value)`.
    fn apply(&mut self, event: watcher::Event<(Box<str>, V)>) {
        match event {
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply((k, v)) => {
                self.relist.get_or_insert_with(HashMap::new).insert(k, v);
            }
            watcher::Event::InitDone => {
                if let Some(mut listed) = self.relist.take() {
                    listed.shrink_to_fit();
                    self.live = listed;
                }
                self.synced = true;
            }
            watcher::Event::Apply((k, v)) => {
                self.live.insert(k, v);
            }
            watcher::Event::Delete((k, _)) => {
                self.live.remove(&k);
            }
        }
    }
}

impl KubeSource {
    /// Starts the node watch (restricted by `node_selector`, a label selector) and the pod
    /// watch in the background. Watch errors are retried with backoff and reported on stderr.
    pub fn start(client: Client, node_selector: Option<&str>, address: AddressConfig) -> Self {
        let mut node_config = watcher::Config::default();
        if let Some(sel) = node_selector.filter(|s| !s.is_empty()) {
            node_config = node_config.labels(sel);
        }
        let nodes = Arc::new(RwLock::new(WatchMap::default()));
        let pods = Arc::new(RwLock::new(WatchMap::default()));
        let node_stream = watcher(Api::<Node>::all(client.clone()), node_config)
            .default_backoff()
            .map_ok(move |e| map_event(e, |n| cached_node(&n, &address)));
        // `Api<PartialObjectMeta<_>>` asks for metadata-only lists and watches.
        let pod_stream = watcher(
            Api::<PartialObjectMeta<Pod>>::all(client),
            watcher::Config::default().fields(RUNNING_PODS),
        )
        .default_backoff()
        .map_ok(|e| map_event(e, cached_pod));
        let tasks = vec![
            tokio::spawn(drive(node_stream, nodes.clone(), "nodes")),
            tokio::spawn(drive(pod_stream, pods.clone(), "pods")),
        ];
        KubeSource {
            nodes,
            pods,
            reported: RwLock::default(),
            tasks,
        }
    }

    /// Whether both caches completed their initial list.
    pub fn is_synced(&self) -> bool {
        fn synced<V>(map: &RwLock<WatchMap<V>>) -> bool {
            map.read().unwrap_or_else(PoisonError::into_inner).synced
        }
        synced(&self.nodes) && synced(&self.pods)
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Turns the object of a watch event into what the cache keeps of it.
fn map_event<K, T>(event: watcher::Event<K>, mut f: impl FnMut(K) -> T) -> watcher::Event<T> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(f(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(f(o)),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(f(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Feeds a watch into its map; errors are logged (the watcher retries with backoff).
async fn drive<S, V, E>(stream: S, map: Arc<RwLock<WatchMap<V>>>, what: &'static str)
where
    S: futures::Stream<Item = Result<watcher::Event<(Box<str>, V)>, E>> + Send,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => map
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(event),
            Err(e) => tracing::warn!(watch = what, error = %e, "watch failed, retrying"),
        }
    }
}

fn cached_node(node: &Node, address: &AddressConfig) -> (Box<str>, CachedNode) {
    let name: Box<str> = node.metadata.name.as_deref().unwrap_or_default().into();
    let target = node_target(node, address).map(|mut t| {
        t.labels = BTreeMap::new();
        t
    });
    let labels = node.metadata.labels.clone().unwrap_or_default();
    (name, CachedNode { labels, target })
}

fn pod_key(namespace: &str, name: &str) -> Box<str> {
    let mut key = String::with_capacity(namespace.len() + 1 + name.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key.into_boxed_str()
}

fn cached_pod(pod: PartialObjectMeta<Pod>) -> (Box<str>, CachedPod) {
    let meta = pod.metadata;
    let key = pod_key(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    );
    let labels = meta
        .labels
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
        .collect();
    (key, CachedPod { labels })
}

impl NodeSource for KubeSource {
    fn nodes(&self) -> Vec<NodeTarget> {
        let mut out = Vec::new();
        let mut errors = HashMap::new();
        {
            let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
            out.reserve(nodes.live.len());
            for (name, node) in &nodes.live {
                match &node.target {
                    Ok(t) => out.push(NodeTarget {
                        labels: node.labels.clone(),
                        ..t.clone()
                    }),
                    Err(e) => {
                        errors.insert(name.to_string(), e.clone());
                    }
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
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .get(name)
            .map(|n| n.labels.clone())
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodMeta> {
        self.pods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .get(&*pod_key(namespace, name))
            .map(|p| PodMeta {
                labels: p
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                // Only Running pods are watched.
                running: true,
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

    fn pod_object(ns: &str, name: &str, app: &str) -> PartialObjectMeta<Pod> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    /// The pod cache keeps labels only, follows updates and deletes, and a relist replaces the
    /// whole map when it is done (a pod deleted while the watch was down goes).
    #[test]
    fn watch_map_follows_events_and_swaps_relists_whole() {
        let mut map = WatchMap::default();
        let ev = |e: watcher::Event<PartialObjectMeta<Pod>>| map_event(e, cached_pod);
        map.apply(ev(watcher::Event::Init));
        map.apply(ev(watcher::Event::InitApply(pod_object("ns", "a", "a"))));
        map.apply(ev(watcher::Event::InitApply(pod_object("ns", "b", "b"))));
        assert!(!map.synced, "not synced before InitDone");
        assert!(map.live.is_empty(), "a relist is not visible half-done");
        map.apply(ev(watcher::Event::InitDone));
        assert!(map.synced);
        assert_eq!(map.live.len(), 2);
        assert_eq!(&*map.live["ns/a"].labels, &[("app".into(), "a".into())]);

        map.apply(ev(watcher::Event::Apply(pod_object("ns", "b", "b2"))));
        assert_eq!(
            &*map.live["ns/b"].labels,
            &[("app".into(), "b2".into())],
            "an update replaces the record"
        );
        map.apply(ev(watcher::Event::Delete(pod_object("ns", "a", "a"))));
        assert!(!map.live.contains_key("ns/a"));

        // The watch broke and relisted: only what the new list holds survives.
        map.apply(ev(watcher::Event::Apply(pod_object("ns", "c", "c"))));
        map.apply(ev(watcher::Event::Init));
        map.apply(ev(watcher::Event::InitApply(pod_object("ns", "c", "c"))));
        assert_eq!(
            map.live.len(),
            2,
            "the old map serves until the relist is done"
        );
        map.apply(ev(watcher::Event::InitDone));
        assert_eq!(map.live.keys().map(|k| &**k).collect::<Vec<_>>(), ["ns/c"]);
    }

    /// A node is cached as its target (or the reason it has none) plus labels.
    #[test]
    fn node_cache_keeps_target_or_error() {
        let cfg = AddressConfig::default();
        let (name, ok) = cached_node(&node(&[("InternalIP", "10.0.0.1")], None), &cfg);
        assert_eq!(&*name, "n1");
        assert_eq!(ok.target.as_ref().unwrap().address, "10.0.0.1");
        assert!(
            ok.target.as_ref().unwrap().labels.is_empty(),
            "labels are kept once"
        );
        assert_eq!(ok.labels.get("zone").map(String::as_str), Some("a"));
        let internal_only = AddressConfig {
            preferred_types: vec![AddressType::InternalIP],
            ..cfg
        };
        let (_, bad) = cached_node(&node(&[("Hostname", "h")], None), &internal_only);
        assert!(matches!(bad.target, Err(SourceError::NoAddress { .. })));
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
