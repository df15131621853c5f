//! The usage figures that flow from the point store to the `metrics.k8s.io` API.
//!
//! These are the seam between the two halves of the metrics server: the store computes rates
//! from kubelet points and produces these; the API layer formats them as `NodeMetrics` and
//! `PodMetrics` (quantities, windows, Tables). Neither half needs to know how the other works.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Resource usage of one node over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsage {
    pub name: String,
    /// Labels of the Node object (for label selectors); empty when unknown.
    pub labels: BTreeMap<String, String>,
    /// End of the window (the later of the two samples).
    pub timestamp: SystemTime,
    /// Length of the window the CPU rate was computed over.
    pub window: Duration,
    /// CPU usage in nanocores (core-nanoseconds per second).
    pub cpu_nanocores: u64,
    /// Memory working set in bytes.
    pub memory_bytes: u64,
}

/// Resource usage of one pod's containers over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    /// Labels of the Pod object (for label selectors); empty when unknown.
    pub labels: BTreeMap<String, String>,
    pub timestamp: SystemTime,
    pub window: Duration,
    /// Containers in name order.
    pub containers: Vec<ContainerUsage>,
}

/// Resource usage of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// Where the API layer reads usage from. The store implements it; tests use fixed data.
pub trait MetricsProvider: Send + Sync + 'static {
    /// Every node with a usable window, in no particular order.
    fn nodes(&self) -> Vec<NodeUsage>;
    /// Every pod with a usable window, in no particular order.
    fn pods(&self) -> Vec<PodUsage>;

    /// One node by name. The default scans [`MetricsProvider::nodes`]; providers with an index
    /// override it, so that a single GET does not cost a full listing.
    fn node(&self, name: &str) -> Option<NodeUsage> {
        self.nodes().into_iter().find(|n| n.name == name)
    }

    /// One pod by namespace and name. The default scans [`MetricsProvider::pods`]; the store
    /// overrides it with a hash lookup (at 150,000 pods a scan costs a full listing per GET).
    fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        self.pods()
            .into_iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }
}
