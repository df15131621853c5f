//! The usage `kaddons top` prints, whichever source it came from.
//!
//! [`ContainerUsage`] is the metrics server's own ([`kaddons_model::usage`]). Nodes and pods
//! are not: the server's carry a window, a timestamp and labels for selectors, which neither
//! the kubelet Summary path nor the table needs, so top keeps its smaller records.

pub use kaddons_model::usage::ContainerUsage;

/// Usage of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsage {
    pub name: String,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// Usage of one pod, per container; containers are in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerUsage>,
}

impl PodUsage {
    pub fn cpu_nanocores(&self) -> u64 {
        self.containers
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.cpu_nanocores))
    }

    pub fn memory_bytes(&self) -> u64 {
        self.containers
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.memory_bytes))
    }
}
