//! The data and formatting behind `kaddons top nodes|pods`, with no I/O (that is in
//! [`crate::cluster::top`]).
//!
//! `kaddons top` reads usage from one of two places: the `metrics.k8s.io` API when a metrics
//! server is installed (`NodeMetricsList`/`PodMetricsList`), or, when none is, each node's
//! kubelet Summary API (`/api/v1/nodes/<node>/proxy/stats/summary`). Both are parsed here into
//! one usage model, so that everything after parsing (percentages, sorting, the table, `-o
//! json`) is shared and the two paths print the same table for the same usage.
//!
//! The table reproduces `kubectl top` byte for byte, including its rounding, which is *not*
//! plain integer division for CPU: kubectl prints `Quantity.MilliValue()`, which rounds up
//! (`123456789n` is `124m`). Memory is `Value() / 2^20`, rounded down. Percentages are
//! `int64(float64(usage milli) / float64(allocatable milli) * 100)`, computed in `f64` exactly
//! as kubectl does. Columns follow kubectl's tabwriter (minimum width 6, padding 3), which
//! also pads the last column, so every line ends in spaces like kubectl's.
//!
//! Kubernetes quantities are parsed by [`kaddons_model::quantity`], next to the canonical
//! formatting the metrics server uses.
//!
//! One file per concern: [`usage`] (the usage model), [`sources`] (the two sources' JSON) and
//! [`table`] (allocatable, sorting, kubectl's table and `-o json`).

pub mod sources;
pub mod table;
pub mod usage;

pub use kaddons_model::quantity::QuantityError;
pub use sources::{
    parse_kubelet_summary, parse_node_metrics_list, parse_pod_metrics_list, KubeletSummary,
};
pub use table::{
    node_usage_list, pod_usage_list, Allocatable, ContainerUsageItem, NodeUsageItem, NodeUsageList,
    PodTableOptions, PodUsageItem, PodUsageList, SortBy, UnknownSortKey,
};
pub use usage::{ContainerUsage, NodeUsage, PodUsage};

/// What can go wrong turning API responses (the sources, a node's allocatable) into usage.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("malformed {what} JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("expected a {expected}, got kind {found:?}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("{field}: {source}")]
    Quantity {
        /// Which value, e.g. `node "kind-control-plane" cpu`.
        field: String,
        #[source]
        source: QuantityError,
    },
}

/// Fixtures and builders the tests of every part share.
#[cfg(test)]
mod fixtures {
    use std::collections::BTreeMap;

    use super::*;

    pub const SUMMARY: &str = include_str!("../../tests/fixtures/kubelet-summary-2pods.json");
    pub const NODE_METRICS: &str = include_str!("../../tests/fixtures/metrics-k8s-io-nodes.json");
    pub const POD_METRICS: &str = include_str!("../../tests/fixtures/metrics-k8s-io-pods.json");
    pub const MI: u64 = 1024 * 1024;

    pub fn lines(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// The fixtures' node: kind's defaults on a 4-CPU, 8 GiB machine.
    pub fn kind_allocatable() -> BTreeMap<String, Allocatable> {
        let alloc = Allocatable::from_quantities(Some("4"), Some("8025424Ki")).unwrap();
        BTreeMap::from([("kind-control-plane".to_string(), alloc)])
    }

    pub fn container(name: &str, cpu_nanocores: u64, memory_bytes: u64) -> ContainerUsage {
        ContainerUsage {
            name: name.into(),
            cpu_nanocores,
            memory_bytes,
        }
    }

    pub fn pod(namespace: &str, name: &str, containers: Vec<ContainerUsage>) -> PodUsage {
        PodUsage {
            namespace: namespace.into(),
            name: name.into(),
            containers,
        }
    }

    pub fn node(name: &str, cpu_nanocores: u64, memory_bytes: u64) -> NodeUsage {
        NodeUsage {
            name: name.into(),
            cpu_nanocores,
            memory_bytes,
        }
    }

    pub fn fixture_pods() -> Vec<PodUsage> {
        vec![
            pod(
                "kube-system",
                "kube-apiserver-kind-control-plane",
                vec![container("kube-apiserver", 48_500_000, 256 * MI)],
            ),
            pod(
                "default",
                "web-6c8f9b7d5-xk2lp",
                vec![
                    container("log-shipper", 999_999, 3 * MI),
                    container("nginx", 1_000_000, 5 * MI),
                ],
            ),
            pod(
                "local-path-storage",
                "local-path-provisioner-57c5987fd4-rq2mf",
                vec![container("local-path-provisioner", 0, 7 * MI)],
            ),
            pod(
                "kube-system",
                "etcd-kind-control-plane",
                vec![container("etcd", 25_000_001, 44_608 * 1024)],
            ),
            pod(
                "kube-system",
                "coredns-7db6d8ff4d-4xk9p",
                vec![container("coredns", 2_345_678, 12_800 * 1024)],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    // --- the key property: both paths print the same table ---------------------------------
    // The expected tables are byte-identical to what kubectl v1.32.4 printed for the
    // metrics.k8s.io fixtures (served by a stub API server), trailing spaces included.

    #[test]
    fn both_sources_print_the_same_node_table() {
        let expected = lines(&[
            "NAME                 CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)   ",
            "kind-control-plane   413m         10%      1762Mi          22%         ",
        ]);
        let alloc = kind_allocatable();

        let summary = parse_kubelet_summary(SUMMARY).unwrap();
        let fallback: Vec<NodeUsage> = summary.node.into_iter().collect();
        let fallback_table = node_usage_list(&fallback, &alloc, SortBy::Name).to_table(false);

        let api = parse_node_metrics_list(NODE_METRICS).unwrap();
        let api_table = node_usage_list(&api, &alloc, SortBy::Name).to_table(false);

        assert_eq!(fallback_table, expected);
        assert_eq!(api_table, expected);
    }

    #[test]
    fn both_sources_print_the_same_pod_tables() {
        let all_namespaces = lines(&[
            "NAMESPACE            NAME                                      CPU(cores)   MEMORY(bytes)   ",
            "default              web-6c8f9b7d5-xk2lp                       2m           8Mi             ",
            "kube-system          coredns-7db6d8ff4d-4xk9p                  3m           12Mi            ",
            "kube-system          etcd-kind-control-plane                   26m          43Mi            ",
            "kube-system          kube-apiserver-kind-control-plane         49m          256Mi           ",
            "local-path-storage   local-path-provisioner-57c5987fd4-rq2mf   0m           7Mi             ",
        ]);
        let kube_system_by_cpu = lines(&[
            "NAME                                CPU(cores)   MEMORY(bytes)   ",
            "kube-apiserver-kind-control-plane   49m          256Mi           ",
            "etcd-kind-control-plane             26m          43Mi            ",
            "coredns-7db6d8ff4d-4xk9p            3m           12Mi            ",
        ]);
        let containers = lines(&[
            "NAMESPACE            POD                                       NAME                     CPU(cores)   MEMORY(bytes)   ",
            "default              web-6c8f9b7d5-xk2lp                       log-shipper              1m           3Mi             ",
            "default              web-6c8f9b7d5-xk2lp                       nginx                    1m           5Mi             ",
            "kube-system          coredns-7db6d8ff4d-4xk9p                  coredns                  3m           12Mi            ",
            "kube-system          etcd-kind-control-plane                   etcd                     26m          43Mi            ",
            "kube-system          kube-apiserver-kind-control-plane         kube-apiserver           49m          256Mi           ",
            "local-path-storage   local-path-provisioner-57c5987fd4-rq2mf   local-path-provisioner   0m           7Mi             ",
        ]);

        let fallback = parse_kubelet_summary(SUMMARY).unwrap().pods;
        let api = parse_pod_metrics_list(POD_METRICS).unwrap();
        for (source, pods) in [("summary", &fallback), ("metrics.k8s.io", &api)] {
            let all = PodTableOptions {
                all_namespaces: true,
                ..Default::default()
            };
            assert_eq!(
                pod_usage_list(pods, SortBy::Name).to_table(all),
                all_namespaces,
                "{source}"
            );

            let kube_system: Vec<PodUsage> = pods
                .iter()
                .filter(|p| p.namespace == "kube-system")
                .cloned()
                .collect();
            assert_eq!(
                pod_usage_list(&kube_system, SortBy::Cpu).to_table(PodTableOptions::default()),
                kube_system_by_cpu,
                "{source}"
            );

            let with_containers = PodTableOptions {
                all_namespaces: true,
                containers: true,
                no_headers: false,
            };
            assert_eq!(
                pod_usage_list(pods, SortBy::Name).to_table(with_containers),
                containers,
                "{source}"
            );
        }
    }
}
