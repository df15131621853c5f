//! Wire types of `metrics.k8s.io/v1beta1` and the bits of `meta/v1` the server answers with.
//!
//! The server writes them and `kaddons top` reads them (leniently, as kubectl does: absent
//! fields read as empty, `null` lists as empty; nothing of that changes what is written).
//!
//! Hand-written instead of taken from k8s-openapi because k8s-openapi has no metrics types and
//! because the exact JSON (which fields are omitted, quantity and duration strings) is what
//! clients see; owning the structs keeps that visible in one place.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::duration::go_duration;
use crate::quantity::{cpu_quantity, memory_quantity, rfc3339};
use crate::usage::{ContainerUsage, NodeUsage, PodUsage};

/// API group served.
pub const GROUP: &str = "metrics.k8s.io";
/// Only version served.
pub const VERSION: &str = "v1beta1";
/// `group/version` as it appears in `apiVersion`.
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Reads `null` as the type's default (Go marshals nil slices as `null`).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Object metadata of a metrics item. Upstream fills name, namespace, labels and a creation
/// timestamp of "now" (the objects are synthesized per request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_timestamp: String,
}

/// `metadata` of a list; upstream sends it empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeta {}

/// `usage` map: only cpu and memory, both canonical quantity strings (empty when a client
/// reads an answer that left one out; kubectl counts that as zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub cpu: String,
    #[serde(default)]
    pub memory: String,
}

impl Usage {
    fn new(cpu_nanocores: u64, memory_bytes: u64) -> Self {
        Usage {
            cpu: cpu_quantity(cpu_nanocores),
            memory: memory_quantity(memory_bytes),
        }
    }
}

/// `NodeMetrics`. `kind`/`apiVersion` are set on a single GET and left out inside lists, as
/// upstream does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub window: String,
    #[serde(default)]
    pub usage: Usage,
}

impl NodeMetrics {
    /// Item for a list (no kind/apiVersion); `now` becomes the creation timestamp.
    pub fn from_usage(node: &NodeUsage, now: SystemTime) -> Self {
        NodeMetrics {
            kind: None,
            api_version: None,
            metadata: ObjectMeta {
                name: node.name.clone(),
                namespace: None,
                labels: node.labels.clone(),
                creation_timestamp: rfc3339(now),
            },
            timestamp: rfc3339(node.timestamp),
            window: go_duration(node.window),
            usage: Usage::new(node.cpu_nanocores, node.memory_bytes),
        }
    }

    /// Same object as a top-level answer (with kind/apiVersion).
    pub fn standalone(mut self) -> Self {
        self.kind = Some("NodeMetrics".into());
        self.api_version = Some(GROUP_VERSION.into());
        self
    }
}

/// `NodeMetricsList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetricsList {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ListMeta,
    /// Go writes an empty list's nil slice as `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<NodeMetrics>,
}

impl NodeMetricsList {
    pub fn new(items: Vec<NodeMetrics>) -> Self {
        NodeMetricsList {
            kind: "NodeMetricsList".into(),
            api_version: GROUP_VERSION.into(),
            metadata: ListMeta {},
            items,
        }
    }
}

/// One container of a `PodMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: Usage,
}

impl From<&ContainerUsage> for ContainerMetrics {
    fn from(c: &ContainerUsage) -> Self {
        ContainerMetrics {
            name: c.name.clone(),
            usage: Usage::new(c.cpu_nanocores, c.memory_bytes),
        }
    }
}

/// `PodMetrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub window: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<ContainerMetrics>,
}

impl PodMetrics {
    /// Item for a list (no kind/apiVersion); `now` becomes the creation timestamp.
    pub fn from_usage(pod: &PodUsage, now: SystemTime) -> Self {
        PodMetrics {
            kind: None,
            api_version: None,
            metadata: ObjectMeta {
                name: pod.name.clone(),
                namespace: Some(pod.namespace.clone()),
                labels: pod.labels.clone(),
                creation_timestamp: rfc3339(now),
            },
            timestamp: rfc3339(pod.timestamp),
            window: go_duration(pod.window),
            containers: pod.containers.iter().map(ContainerMetrics::from).collect(),
        }
    }

    /// Same object as a top-level answer (with kind/apiVersion).
    pub fn standalone(mut self) -> Self {
        self.kind = Some("PodMetrics".into());
        self.api_version = Some(GROUP_VERSION.into());
        self
    }
}

/// `PodMetricsList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsList {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub metadata: ListMeta,
    /// Go writes an empty list's nil slice as `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<PodMetrics>,
}

impl PodMetricsList {
    pub fn new(items: Vec<PodMetrics>) -> Self {
        PodMetricsList {
            kind: "PodMetricsList".into(),
            api_version: GROUP_VERSION.into(),
            metadata: ListMeta {},
            items,
        }
    }
}

/// `details` of a `Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `meta/v1 Status`: every error answer, so kubectl prints `Error from server (Reason): ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    pub metadata: ListMeta,
    pub status: String,
    pub message: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

impl Status {
    /// A `Failure` status with the given HTTP code, reason and message.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: ListMeta {},
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    /// 404 for a named object, worded like the apiserver (`nodes.metrics.k8s.io "x" not found`).
    pub fn not_found(resource: &str, name: &str) -> Self {
        let mut s = Status::failure(
            404,
            "NotFound",
            format!("{resource}.{GROUP} \"{name}\" not found"),
        );
        s.details = Some(StatusDetails {
            name: Some(name.into()),
            group: Some(GROUP.into()),
            kind: Some(resource.into()),
        });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn node_metrics_json_shape() {
        let node = NodeUsage {
            name: "n1".into(),
            labels: BTreeMap::from([("role".to_string(), "worker".to_string())]),
            timestamp: UNIX_EPOCH + Duration::from_secs(1_714_564_800),
            window: Duration::from_millis(20_037),
            cpu_nanocores: 250_000_000,
            memory_bytes: 536_870_912,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_714_564_810);
        let v = serde_json::to_value(NodeMetrics::from_usage(&node, now).standalone()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {
                    "name": "n1",
                    "labels": {"role": "worker"},
                    "creationTimestamp": "2024-05-01T12:00:10Z"
                },
                "timestamp": "2024-05-01T12:00:00Z",
                "window": "20.037s",
                "usage": {"cpu": "250m", "memory": "512Mi"}
            })
        );
    }

    #[test]
    fn not_found_status_shape() {
        let v = serde_json::to_value(Status::not_found("nodes", "nope")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "nodes.metrics.k8s.io \"nope\" not found",
                "reason": "NotFound",
                "details": {"name": "nope", "group": "metrics.k8s.io", "kind": "nodes"},
                "code": 404
            })
        );
    }
}
