//! Server-side printing: `meta.k8s.io` Tables for node and pod metrics.
//!
//! kubectl renders whatever columns the server sends when it receives a Table; without one it
//! can only print NAME and AGE. The columns follow upstream metrics-server (Name, CPU, Memory,
//! Window), pod rows sum their containers, and each row carries the item's metadata as a
//! `PartialObjectMetadata` so `kubectl get -A` can show the NAMESPACE column.

use serde::Serialize;
use serde_json::{json, Value};

use kaddons_model::duration::go_duration;
use kaddons_model::quantity::{cpu_quantity, memory_quantity};
use kaddons_model::usage::{NodeUsage, PodUsage};

use kaddons_model::wire::{NodeMetrics, PodMetrics};

/// What each row's `object` holds (`?includeObject=`), as the apiserver supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full metrics object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value; unknown values fall back to the default.
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Column {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

const COLUMNS: [Column; 4] = [
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        description: "Name of the resource",
        priority: 0,
    },
    Column {
        name: "cpu",
        kind: "string",
        format: "quantity",
        description: "CPU usage",
        priority: 0,
    },
    Column {
        name: "memory",
        kind: "string",
        format: "quantity",
        description: "Memory usage",
        priority: 0,
    },
    Column {
        name: "Window",
        kind: "string",
        format: "duration",
        description: "Length of the window the usage was measured over",
        priority: 0,
    },
];

fn table(version: &str, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": {"resourceVersion": ""},
        "columnDefinitions": COLUMNS,
        "rows": rows,
    })
}

fn row(cells: [String; 4], object: Option<Value>) -> Value {
    match object {
        Some(o) => json!({"cells": cells, "object": o}),
        None => json!({"cells": cells}),
    }
}

fn row_object<T: Serialize>(
    version: &str,
    include: IncludeObject,
    item: &T,
    metadata: &kaddons_model::wire::ObjectMeta,
) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": metadata,
        })),
        IncludeObject::Object => serde_json::to_value(item).ok(),
    }
}

/// Table of node metrics; `items` pairs each usage with its already-built object (same order).
pub fn node_table(
    version: &str,
    include: IncludeObject,
    items: &[(NodeUsage, NodeMetrics)],
) -> Value {
    let rows = items
        .iter()
        .map(|(usage, obj)| {
            let obj = obj.clone().standalone();
            row(
                [
                    usage.name.clone(),
                    cpu_quantity(usage.cpu_nanocores),
                    memory_quantity(usage.memory_bytes),
                    go_duration(usage.window),
                ],
                row_object(version, include, &obj, &obj.metadata),
            )
        })
        .collect();
    table(version, rows)
}

/// Table of pod metrics; CPU and memory cells are the sums over the pod's containers.
pub fn pod_table(version: &str, include: IncludeObject, items: &[(PodUsage, PodMetrics)]) -> Value {
    let rows = items
        .iter()
        .map(|(usage, obj)| {
            let cpu: u64 = usage
                .containers
                .iter()
                .fold(0u64, |a, c| a.saturating_add(c.cpu_nanocores));
            let mem: u64 = usage
                .containers
                .iter()
                .fold(0u64, |a, c| a.saturating_add(c.memory_bytes));
            let obj = obj.clone().standalone();
            row(
                [
                    usage.name.clone(),
                    cpu_quantity(cpu),
                    memory_quantity(mem),
                    go_duration(usage.window),
                ],
                row_object(version, include, &obj, &obj.metadata),
            )
        })
        .collect();
    table(version, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaddons_model::usage::ContainerUsage;
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    fn pod() -> PodUsage {
        PodUsage {
            namespace: "ns1".into(),
            name: "p1".into(),
            labels: BTreeMap::new(),
            timestamp: UNIX_EPOCH + Duration::from_secs(100),
            window: Duration::from_secs(15),
            containers: vec![
                ContainerUsage {
                    name: "a".into(),
                    cpu_nanocores: 300_000_000,
                    memory_bytes: 256 * 1024 * 1024,
                },
                ContainerUsage {
                    name: "b".into(),
                    cpu_nanocores: 200_000_000,
                    memory_bytes: 256 * 1024 * 1024,
                },
            ],
        }
    }

    #[test]
    fn pod_table_sums_containers_and_carries_metadata() {
        let p = pod();
        let obj = PodMetrics::from_usage(&p, UNIX_EPOCH);
        let t = pod_table("v1", IncludeObject::Metadata, &[(p, obj)]);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "cpu", "memory", "Window"]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["cells"], json!(["p1", "500m", "512Mi", "15s"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "ns1");
    }

    #[test]
    fn include_object_variants() {
        let p = pod();
        let obj = PodMetrics::from_usage(&p, UNIX_EPOCH);
        let items = [(p, obj)];
        let none = pod_table("v1beta1", IncludeObject::None, &items);
        assert_eq!(none["apiVersion"], "meta.k8s.io/v1beta1");
        assert!(none["rows"][0].get("object").is_none());
        let full = pod_table("v1", IncludeObject::Object, &items);
        assert_eq!(full["rows"][0]["object"]["kind"], "PodMetrics");
        assert_eq!(full["rows"][0]["object"]["containers"][1]["name"], "b");
        assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
    }

    #[test]
    fn node_table_cells() {
        let n = NodeUsage {
            name: "n1".into(),
            labels: BTreeMap::new(),
            timestamp: UNIX_EPOCH,
            window: Duration::from_millis(20_037),
            cpu_nanocores: 123_456_789,
            memory_bytes: 1_616_273_408,
        };
        let obj = NodeMetrics::from_usage(&n, UNIX_EPOCH);
        let t = node_table("v1", IncludeObject::Metadata, &[(n, obj)]);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["n1", "123456789n", "1578392Ki", "20.037s"])
        );
        assert!(t["rows"][0]["object"]["metadata"]
            .get("namespace")
            .is_none());
    }
}
