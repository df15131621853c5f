//! The two places `kaddons top` reads usage from, parsed into [`super::usage`]: the
//! `metrics.k8s.io` lists a metrics server serves and each kubelet's Summary API.

use kaddons_model::quantity::{cpu_nanocores, memory_bytes, QuantityError};
use kaddons_model::wire::{NodeMetricsList, PodMetricsList};
use serde::Deserialize;

use super::usage::{ContainerUsage, NodeUsage, PodUsage};
use super::TopError;

// ---------------------------------------------------------------------------------------------
// Kubelet Summary API

/// Usage read from one node's kubelet Summary (`/stats/summary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletSummary {
    /// `None` when the node's name, CPU rate or working set is missing (e.g. right after a
    /// kubelet restart, before it has two CPU samples).
    pub node: Option<NodeUsage>,
    /// The pods running on this node, in every namespace (filter for `-n`), that have at
    /// least one container with both a CPU rate and a working set.
    /// Containers lacking either are left out (as metrics-server does); pods without a
    /// `podRef` or with no usable container are left out.
    pub pods: Vec<PodUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSummary {
    node: Option<RawSummaryNode>,
    pods: Option<Vec<RawSummaryPod>>,
}

// `systemContainers` (kubelet, runtime, pods) is deliberately not read: kubectl top shows the
// node's own figures and the pods' containers, never the system cgroups.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSummaryNode {
    node_name: Option<String>,
    cpu: Option<RawCpu>,
    memory: Option<RawMemory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSummaryPod {
    pod_ref: Option<RawPodRef>,
    containers: Option<Vec<RawSummaryContainer>>,
}

#[derive(Deserialize)]
struct RawPodRef {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct RawSummaryContainer {
    name: Option<String>,
    cpu: Option<RawCpu>,
    memory: Option<RawMemory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCpu {
    usage_nano_cores: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMemory {
    working_set_bytes: Option<u64>,
}

fn cpu_rate(cpu: &Option<RawCpu>) -> Option<u64> {
    cpu.as_ref()?.usage_nano_cores
}

fn working_set(memory: &Option<RawMemory>) -> Option<u64> {
    memory.as_ref()?.working_set_bytes
}

/// Parses a kubelet Summary. Missing figures drop the node, pod or container they belong to;
/// only JSON that is not a Summary at all (bad syntax, wrong types) is an error.
pub fn parse_kubelet_summary(json: impl AsRef<[u8]>) -> Result<KubeletSummary, TopError> {
    let raw: RawSummary =
        serde_json::from_slice(json.as_ref()).map_err(|source| TopError::Json {
            what: "kubelet Summary",
            source,
        })?;

    let node = raw.node.and_then(|n| {
        Some(NodeUsage {
            name: n.node_name.filter(|name| !name.is_empty())?,
            cpu_nanocores: cpu_rate(&n.cpu)?,
            memory_bytes: working_set(&n.memory)?,
        })
    });

    let pods = raw
        .pods
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let pod_ref = p.pod_ref?;
            let mut containers: Vec<ContainerUsage> = p
                .containers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| {
                    Some(ContainerUsage {
                        name: c.name?,
                        cpu_nanocores: cpu_rate(&c.cpu)?,
                        memory_bytes: working_set(&c.memory)?,
                    })
                })
                .collect();
            if containers.is_empty() {
                return None;
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            Some(PodUsage {
                namespace: pod_ref.namespace?,
                name: pod_ref.name?,
                containers,
            })
        })
        .collect();

    Ok(KubeletSummary { node, pods })
}

// ---------------------------------------------------------------------------------------------
// metrics.k8s.io

/// The list's items, after checking its `kind` (when it has one).
fn items<T>(kind: &str, expected: &'static str, items: Vec<T>) -> Result<Vec<T>, TopError> {
    if !kind.is_empty() && kind != expected {
        return Err(TopError::WrongKind {
            expected,
            found: kind.to_string(),
        });
    }
    Ok(items)
}

/// Reads one quantity of a `usage` map with `convert`; an absent (empty) entry counts as
/// zero, as in kubectl.
fn usage_of(
    quantity: &str,
    convert: fn(&str) -> Result<u64, QuantityError>,
    field: impl FnOnce() -> String,
) -> Result<u64, TopError> {
    if quantity.is_empty() {
        return Ok(0);
    }
    convert(quantity).map_err(|source| TopError::Quantity {
        field: field(),
        source,
    })
}

/// Parses a `metrics.k8s.io` `NodeMetricsList`.
pub fn parse_node_metrics_list(json: impl AsRef<[u8]>) -> Result<Vec<NodeUsage>, TopError> {
    let list: NodeMetricsList =
        serde_json::from_slice(json.as_ref()).map_err(|source| TopError::Json {
            what: "NodeMetricsList",
            source,
        })?;
    items(&list.kind, "NodeMetricsList", list.items)?
        .into_iter()
        .map(|m| {
            let name = m.metadata.name;
            Ok(NodeUsage {
                cpu_nanocores: usage_of(&m.usage.cpu, cpu_nanocores, || {
                    format!("node {name:?} cpu")
                })?,
                memory_bytes: usage_of(&m.usage.memory, memory_bytes, || {
                    format!("node {name:?} memory")
                })?,
                name,
            })
        })
        .collect()
}

/// Parses a `metrics.k8s.io` `PodMetricsList`.
pub fn parse_pod_metrics_list(json: impl AsRef<[u8]>) -> Result<Vec<PodUsage>, TopError> {
    let list: PodMetricsList =
        serde_json::from_slice(json.as_ref()).map_err(|source| TopError::Json {
            what: "PodMetricsList",
            source,
        })?;
    items(&list.kind, "PodMetricsList", list.items)?
        .into_iter()
        .map(|m| {
            let (namespace, name) = (m.metadata.namespace.unwrap_or_default(), m.metadata.name);
            let mut containers = m
                .containers
                .into_iter()
                .map(|c| {
                    let field = |resource: &str| {
                        format!("pod {namespace}/{name} container {:?} {resource}", c.name)
                    };
                    Ok(ContainerUsage {
                        cpu_nanocores: usage_of(&c.usage.cpu, cpu_nanocores, || field("cpu"))?,
                        memory_bytes: usage_of(&c.usage.memory, memory_bytes, || field("memory"))?,
                        name: c.name,
                    })
                })
                .collect::<Result<Vec<_>, TopError>>()?;
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(PodUsage {
                namespace,
                name,
                containers,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_fixture_parses_to_node_and_container_figures() {
        let summary = parse_kubelet_summary(SUMMARY).unwrap();
        // The node's own figures, not the sum of systemContainers or of the pods.
        assert_eq!(
            summary.node,
            Some(node("kind-control-plane", 412_345_678, 1_804_296 * 1024))
        );
        // Pod-level cpu/memory are ignored (containers are summed instead); the container
        // without a CPU rate and the pod with no usable container are left out.
        assert_eq!(summary.pods, fixture_pods());
    }

    #[test]
    fn summary_with_missing_figures_skips_instead_of_failing() {
        let json = json!({
            "node": {"nodeName": "n1", "cpu": {"usageCoreNanoSeconds": 5}, "memory": {"workingSetBytes": 1}},
            "pods": [
                {"containers": [{"name": "c", "cpu": {"usageNanoCores": 1}, "memory": {"workingSetBytes": 1}}]},
                {"podRef": {"name": "no-namespace"},
                 "containers": [{"name": "c", "cpu": {"usageNanoCores": 1}, "memory": {"workingSetBytes": 1}}]},
                {"podRef": {"name": "p", "namespace": "ns"},
                 "containers": [
                    {"name": "zeta", "cpu": {"usageNanoCores": 7}, "memory": {"workingSetBytes": 8}},
                    {"cpu": {"usageNanoCores": 1}, "memory": {"workingSetBytes": 1}},
                    {"name": "no-memory", "cpu": {"usageNanoCores": 1}},
                    {"name": "null-cpu", "cpu": null, "memory": {"workingSetBytes": 1}},
                    {"name": "alpha", "cpu": {"usageNanoCores": 5}, "memory": {"workingSetBytes": 6}}
                 ]},
                {"podRef": {"name": "no-containers", "namespace": "ns"}}
            ]
        })
        .to_string();
        let summary = parse_kubelet_summary(json).unwrap();
        assert_eq!(summary.node, None, "no CPU rate yet");
        assert_eq!(
            summary.pods,
            vec![pod(
                "ns",
                "p",
                vec![container("alpha", 5, 6), container("zeta", 7, 8)]
            )]
        );

        let empty = parse_kubelet_summary("{}").unwrap();
        assert_eq!(empty.node, None);
        assert!(empty.pods.is_empty());
        let null_pods = parse_kubelet_summary(r#"{"node": null, "pods": null}"#).unwrap();
        assert!(null_pods.pods.is_empty());
    }

    #[test]
    fn malformed_summary_is_a_typed_error() {
        for bad in [
            "",
            "{",
            "not json",
            r#"{"node": {"nodeName": "n", "cpu": {"usageNanoCores": "12"}}}"#,
            r#"{"node": {"nodeName": "n", "cpu": {"usageNanoCores": -1}}}"#,
            r#"{"pods": {"podRef": {}}}"#,
        ] {
            let err = parse_kubelet_summary(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    TopError::Json {
                        what: "kubelet Summary",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
            assert!(err
                .to_string()
                .starts_with("malformed kubelet Summary JSON"));
        }
    }

    // --- metrics.k8s.io ---------------------------------------------------------------------

    #[test]
    fn metrics_api_fixtures_parse_to_the_same_usage_as_the_summary() {
        let summary = parse_kubelet_summary(SUMMARY).unwrap();
        let nodes = parse_node_metrics_list(NODE_METRICS).unwrap();
        assert_eq!(nodes, vec![summary.node.clone().unwrap()]);

        let mut from_api = parse_pod_metrics_list(POD_METRICS).unwrap();
        let mut from_summary = summary.pods;
        let key = |p: &PodUsage| (p.namespace.clone(), p.name.clone());
        from_api.sort_by_key(key);
        from_summary.sort_by_key(key);
        assert_eq!(from_api, from_summary);
    }

    #[test]
    fn metrics_lists_check_kind_and_quantities() {
        let err = parse_node_metrics_list(POD_METRICS).unwrap_err();
        assert!(
            matches!(&err, TopError::WrongKind { expected: "NodeMetricsList", found } if found == "PodMetricsList"),
            "{err:?}"
        );
        let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#;
        assert!(matches!(
            parse_pod_metrics_list(status),
            Err(TopError::WrongKind { .. })
        ));

        let bad = json!({"kind": "PodMetricsList", "items": [{
            "metadata": {"name": "p", "namespace": "ns"},
            "containers": [{"name": "c", "usage": {"cpu": "12 cores", "memory": "1Mi"}}]
        }]})
        .to_string();
        let err = parse_pod_metrics_list(bad).unwrap_err();
        assert!(
            matches!(
                &err,
                TopError::Quantity {
                    source: QuantityError::UnknownSuffix { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "pod ns/p container \"c\" cpu: invalid quantity \"12 cores\": unknown suffix \" cores\""
        );

        let bad_node =
            r#"{"items":[{"metadata":{"name":"n"},"usage":{"cpu":"1","memory":"-5Mi"}}]}"#;
        let err = parse_node_metrics_list(bad_node).unwrap_err();
        assert!(err.to_string().starts_with("node \"n\" memory: "), "{err}");

        assert!(matches!(
            parse_node_metrics_list("{"),
            Err(TopError::Json {
                what: "NodeMetricsList",
                ..
            })
        ));
        // Missing usage counts as zero, like kubectl; no kind and no items is an empty list.
        let sparse = r#"{"items":[{"metadata":{"name":"n"},"usage":{"cpu":"5m"}}]}"#;
        assert_eq!(
            parse_node_metrics_list(sparse).unwrap(),
            vec![node("n", 5_000_000, 0)]
        );
        assert!(parse_pod_metrics_list("{}").unwrap().is_empty());
    }

    #[test]
    fn metrics_lists_read_leniently_through_the_shared_wire_types() {
        // Go writes an empty list as `"items": null`; kubectl counts an absent usage as zero.
        assert!(
            parse_node_metrics_list(r#"{"kind":"NodeMetricsList","items":null}"#)
                .unwrap()
                .is_empty()
        );
        let nodes = parse_node_metrics_list(
            r#"{"items":[{"metadata":{"name":"n1"},"usage":{"cpu":"250m"}}]}"#,
        )
        .unwrap();
        assert_eq!(nodes[0].cpu_nanocores, 250_000_000);
        assert_eq!(nodes[0].memory_bytes, 0);
        let pods = parse_pod_metrics_list(
            r#"{"kind":"PodMetricsList","items":[{"metadata":{"name":"p","namespace":"ns"},"containers":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            (pods[0].namespace.as_str(), pods[0].containers.len()),
            ("ns", 0)
        );
    }
}
