//! From usage to what `kaddons top` prints: allocatable, percentages, sorting, the
//! kubectl-style table and the `-o json` shape.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kaddons_model::quantity::{cpu_nanocores, memory_bytes, QuantityError};
use serde::Serialize;

use super::usage::{ContainerUsage, NodeUsage, PodUsage};
use super::TopError;

// Allocatable

/// What a node can give to pods; the denominator of the percentage columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_nanocores: Option<u64>,
    pub memory_bytes: Option<u64>,
}

impl Allocatable {
    /// From quantity strings such as `"3920m"` and `"8025424Ki"`.
    pub fn from_quantities(cpu: Option<&str>, memory: Option<&str>) -> Result<Self, TopError> {
        let convert = |q: Option<&str>, f: fn(&str) -> Result<u64, QuantityError>, what| {
            q.map(f).transpose().map_err(|source| TopError::Quantity {
                field: format!("allocatable {what}"),
                source,
            })
        };
        Ok(Allocatable {
            cpu_nanocores: convert(cpu, cpu_nanocores, "cpu")?,
            memory_bytes: convert(memory, memory_bytes, "memory")?,
        })
    }

    /// From a resource list (`status.allocatable`, or `status.capacity` for kubectl's
    /// `--show-capacity`).
    pub fn from_resources(resources: &BTreeMap<String, ApiQuantity>) -> Result<Self, TopError> {
        Self::from_quantities(
            resources.get("cpu").map(|q| q.0.as_str()),
            resources.get("memory").map(|q| q.0.as_str()),
        )
    }

    /// From a Node's `status.allocatable` (empty when the node has no status yet).
    pub fn from_node(node: &Node) -> Result<Self, TopError> {
        match node.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
            Some(resources) => Self::from_resources(resources),
            None => Ok(Allocatable::default()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rows, sorting and JSON output

/// `--sort-by`: kubectl sorts by CPU or memory descending; the default is by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    #[default]
    Name,
    Cpu,
    Memory,
}

impl FromStr for SortBy {
    type Err = UnknownSortKey;

    fn from_str(s: &str) -> Result<Self, UnknownSortKey> {
        match s {
            "" | "name" => Ok(SortBy::Name),
            "cpu" => Ok(SortBy::Cpu),
            "memory" => Ok(SortBy::Memory),
            other => Err(UnknownSortKey(other.to_string())),
        }
    }
}

/// A `--sort-by` value other than `cpu` or `memory`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--sort-by accepts cpu or memory, not {0:?}")]
pub struct UnknownSortKey(pub String);

/// kubectl's `Quantity.MilliValue()` of a CPU figure: rounded up.
fn millicores(nanocores: u64) -> u64 {
    nanocores.div_ceil(1_000_000)
}

/// kubectl's percentage: `int64(float64(usage milli) / float64(allocatable milli) * 100)`.
fn percent(usage_milli: u128, allocatable_milli: u128) -> Option<u64> {
    if allocatable_milli == 0 {
        return None;
    }
    let fraction = usage_milli as f64 / allocatable_milli as f64 * 100.0;
    // `as` saturates; a NaN cannot occur (the denominator is positive).
    Some(fraction as u64)
}

/// One line of `kaddons top nodes`. Nodes known to the cluster but without usage have no
/// figures at all (`<unknown>` in the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUsageItem {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_millicores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<u64>,
}

/// `kaddons top nodes -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeUsageList {
    pub kind: &'static str,
    pub items: Vec<NodeUsageItem>,
}

/// Builds the node lines: usage with percentages of `allocatable` (keyed by node name), then,
/// like kubectl, one line per node in `allocatable` that has no usage, by name.
pub fn node_usage_list(
    usage: &[NodeUsage],
    allocatable: &BTreeMap<String, Allocatable>,
    sort_by: SortBy,
) -> NodeUsageList {
    let mut measured: Vec<&NodeUsage> = usage.iter().collect();
    match sort_by {
        SortBy::Name => measured.sort_by(|a, b| a.name.cmp(&b.name)),
        SortBy::Cpu => measured.sort_by_key(|n| (Reverse(millicores(n.cpu_nanocores)), &n.name)),
        SortBy::Memory => measured.sort_by_key(|n| (Reverse(n.memory_bytes), &n.name)),
    }
    let mut items: Vec<NodeUsageItem> = measured
        .into_iter()
        .map(|n| {
            let cpu_milli = millicores(n.cpu_nanocores);
            let alloc = allocatable.get(&n.name).copied().unwrap_or_default();
            NodeUsageItem {
                name: n.name.clone(),
                cpu_millicores: Some(cpu_milli),
                memory_bytes: Some(n.memory_bytes),
                cpu_percent: alloc
                    .cpu_nanocores
                    .and_then(|a| percent(u128::from(cpu_milli), u128::from(millicores(a)))),
                memory_percent: alloc
                    .memory_bytes
                    .and_then(|a| percent(u128::from(n.memory_bytes) * 1000, u128::from(a) * 1000)),
            }
        })
        .collect();
    items.extend(
        allocatable
            .keys()
            .filter(|name| !usage.iter().any(|n| &n.name == *name))
            .map(|name| NodeUsageItem {
                name: name.clone(),
                cpu_millicores: None,
                memory_bytes: None,
                cpu_percent: None,
                memory_percent: None,
            }),
    );
    NodeUsageList {
        kind: "NodeUsageList",
        items,
    }
}

/// One container of a pod line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsageItem {
    pub name: String,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
}

/// One line of `kaddons top pods`: totals over the containers (CPU summed in nanocores, then
/// rounded up, as kubectl adds quantities before printing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodUsageItem {
    pub namespace: String,
    pub name: String,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub containers: Vec<ContainerUsageItem>,
}

/// `kaddons top pods -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodUsageList {
    pub kind: &'static str,
    pub items: Vec<PodUsageItem>,
}

/// Builds the pod lines, sorted by namespace and name, or by CPU or memory descending (ties
/// by namespace and name). Containers are ordered the same way, as `kubectl top pod
/// --containers` does.
pub fn pod_usage_list(usage: &[PodUsage], sort_by: SortBy) -> PodUsageList {
    let mut items: Vec<PodUsageItem> = usage
        .iter()
        .map(|p| {
            let mut containers: Vec<&ContainerUsage> = p.containers.iter().collect();
            match sort_by {
                SortBy::Name => containers.sort_by(|a, b| a.name.cmp(&b.name)),
                SortBy::Cpu => {
                    containers.sort_by_key(|c| (Reverse(millicores(c.cpu_nanocores)), &c.name))
                }
                SortBy::Memory => containers.sort_by_key(|c| (Reverse(c.memory_bytes), &c.name)),
            }
            PodUsageItem {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                cpu_millicores: millicores(p.cpu_nanocores()),
                memory_bytes: p.memory_bytes(),
                containers: containers
                    .into_iter()
                    .map(|c| ContainerUsageItem {
                        name: c.name.clone(),
                        cpu_millicores: millicores(c.cpu_nanocores),
                        memory_bytes: c.memory_bytes,
                    })
                    .collect(),
            }
        })
        .collect();
    let by_name = |a: &PodUsageItem, b: &PodUsageItem| {
        (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
    };
    match sort_by {
        SortBy::Name => items.sort_by(by_name),
        SortBy::Cpu => items.sort_by(|a, b| {
            b.cpu_millicores
                .cmp(&a.cpu_millicores)
                .then_with(|| by_name(a, b))
        }),
        SortBy::Memory => items.sort_by(|a, b| {
            b.memory_bytes
                .cmp(&a.memory_bytes)
                .then_with(|| by_name(a, b))
        }),
    }
    PodUsageList {
        kind: "PodUsageList",
        items,
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

const UNKNOWN: &str = "<unknown>";

fn cpu_cell(millicores: u64) -> String {
    format!("{millicores}m")
}

fn memory_cell(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

fn percent_cell(percent: Option<u64>) -> String {
    percent.map_or_else(|| UNKNOWN.to_string(), |p| format!("{p}%"))
}

impl NodeUsageList {
    /// The `kubectl top node` table: `NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)`.
    /// Empty when there are no lines, as kubectl prints nothing then.
    pub fn to_table(&self, no_headers: bool) -> String {
        if self.items.is_empty() {
            return String::new();
        }
        let mut rows: Vec<Vec<String>> = Vec::with_capacity(self.items.len() + 1);
        if !no_headers {
            rows.push(
                ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
                    .map(String::from)
                    .to_vec(),
            );
        }
        for item in &self.items {
            rows.push(vec![
                item.name.clone(),
                item.cpu_millicores
                    .map_or_else(|| UNKNOWN.to_string(), cpu_cell),
                percent_cell(item.cpu_percent),
                item.memory_bytes
                    .map_or_else(|| UNKNOWN.to_string(), memory_cell),
                percent_cell(item.memory_percent),
            ]);
        }
        tabulate(&rows)
    }
}

/// Columns of `kaddons top pods`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodTableOptions {
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
    /// `--containers`: one line per container, with a POD column.
    pub containers: bool,
    pub no_headers: bool,
}

impl PodUsageList {
    /// The `kubectl top pod` table: `[NAMESPACE] [POD] NAME CPU(cores) MEMORY(bytes)`.
    /// Empty when there are no lines, as kubectl prints nothing then.
    pub fn to_table(&self, options: PodTableOptions) -> String {
        if self.items.is_empty() {
            return String::new();
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        if !options.no_headers {
            let mut header = Vec::new();
            if options.all_namespaces {
                header.push("NAMESPACE");
            }
            if options.containers {
                header.push("POD");
            }
            header.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"]);
            rows.push(header.into_iter().map(String::from).collect());
        }
        for pod in &self.items {
            let prefix = |row: &mut Vec<String>| {
                if options.all_namespaces {
                    row.push(pod.namespace.clone());
                }
            };
            if options.containers {
                for c in &pod.containers {
                    let mut row = Vec::with_capacity(5);
                    prefix(&mut row);
                    row.extend([
                        pod.name.clone(),
                        c.name.clone(),
                        cpu_cell(c.cpu_millicores),
                        memory_cell(c.memory_bytes),
                    ]);
                    rows.push(row);
                }
            } else {
                let mut row = Vec::with_capacity(4);
                prefix(&mut row);
                row.extend([
                    pod.name.clone(),
                    cpu_cell(pod.cpu_millicores),
                    memory_cell(pod.memory_bytes),
                ]);
                rows.push(row);
            }
        }
        tabulate(&rows)
    }
}

/// kubectl's tabwriter settings (`printers.GetNewTabWriter`).
const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

/// Lays out rows the way Go's `text/tabwriter` does for kubectl, where every cell (the last
/// one included) is terminated by a tab: each column is as wide as its widest cell plus
/// three spaces (at least six), left-aligned, and the last column is padded too.
fn tabulate(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::parse_kubelet_summary;
    use super::*;
    use serde_json::json;

    // --- kubectl's rounding and layout -----------------------------------------------------

    #[test]
    fn cpu_rounds_up_memory_rounds_down_like_kubectl() {
        let usage = [node("n", 123_456_789, 2 * MI - 1)];
        let list = node_usage_list(&usage, &BTreeMap::new(), SortBy::Name);
        assert_eq!(list.items[0].cpu_millicores, Some(124));
        assert_eq!(
            list.to_table(true),
            lines(&["n     124m   <unknown>   1Mi   <unknown>   "])
        );

        // A pod's CPU is summed in nanocores before rounding: 1m + 0.999999m = 2m, not 1m+1m.
        let p = pod(
            "ns",
            "p",
            vec![container("a", 1_000_000, 0), container("b", 999_999, 0)],
        );
        let pods = pod_usage_list(&[p], SortBy::Name);
        assert_eq!(pods.items[0].cpu_millicores, 2);
        let p = pod(
            "ns",
            "p",
            vec![container("a", 1_000_001, 0), container("b", 1_000_001, 0)],
        );
        assert_eq!(
            pod_usage_list(&[p], SortBy::Name).items[0].cpu_millicores,
            3
        );
    }

    /// Output captured from kubectl v1.32.4 (`kubectl top node`, then with `--sort-by=cpu
    /// --no-headers`) against a stub API server serving these figures.
    #[test]
    fn matches_captured_kubectl_output_for_rounding_quirks() {
        let alloc = BTreeMap::from([
            (
                "n1".to_string(),
                Allocatable::from_quantities(Some("4"), Some("8025424Ki")).unwrap(),
            ),
            (
                "n2".to_string(),
                Allocatable::from_quantities(Some("100m"), Some("100")).unwrap(),
            ),
        ]);
        let usage = [
            node("n1", cpu_nanocores("123456789n").unwrap(), 2_097_151),
            node("n2", cpu_nanocores("29m").unwrap(), 29),
        ];
        assert_eq!(
            node_usage_list(&usage, &alloc, SortBy::Name).to_table(false),
            lines(&[
                "NAME   CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)   ",
                "n1     124m         3%       1Mi             0%          ",
                "n2     29m          28%      0Mi             28%         ",
            ])
        );
        assert_eq!(
            node_usage_list(&usage, &alloc, SortBy::Cpu).to_table(true),
            lines(&[
                "n1    124m   3%    1Mi   0%    ",
                "n2    29m    28%   0Mi   28%   "
            ])
        );
    }

    #[test]
    fn percentages_follow_kubectls_float_arithmetic() {
        // float64(29)/float64(100)*100 is 28.999999999999996 in IEEE doubles; kubectl truncates
        // that to 28%, so integer arithmetic (29%) would not match kubectl.
        let alloc = BTreeMap::from([(
            "n".to_string(),
            Allocatable::from_quantities(Some("100m"), Some("100")).unwrap(),
        )]);
        let usage = [node("n", 29_000_000, 29)];
        let item = &node_usage_list(&usage, &alloc, SortBy::Name).items[0];
        assert_eq!(item.cpu_percent, Some(28));
        assert_eq!(item.memory_percent, Some(28));

        // Over-commit shows above 100%, like kubectl.
        let usage = [node("n", 150_000_000, 250)];
        let item = &node_usage_list(&usage, &alloc, SortBy::Name).items[0];
        assert_eq!(
            (item.cpu_percent, item.memory_percent),
            (Some(150), Some(250))
        );

        // Zero allocatable has no meaningful percentage.
        let zero = BTreeMap::from([(
            "n".to_string(),
            Allocatable::from_quantities(Some("0"), Some("0")).unwrap(),
        )]);
        let item = &node_usage_list(&usage, &zero, SortBy::Name).items[0];
        assert_eq!((item.cpu_percent, item.memory_percent), (None, None));
    }

    #[test]
    fn nodes_without_allocatable_or_without_metrics_show_unknown() {
        let alloc = BTreeMap::from([
            (
                "has-alloc".to_string(),
                Allocatable::from_quantities(Some("2"), None).unwrap(),
            ),
            ("no-metrics".to_string(), Allocatable::default()),
        ]);
        let usage = [
            node("has-alloc", 500_000_000, 512 * MI),
            node("no-alloc", 1_000_000_000, 1024 * MI),
        ];
        let table = node_usage_list(&usage, &alloc, SortBy::Cpu).to_table(false);
        assert_eq!(
            table,
            lines(&[
                "NAME         CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   ",
                "no-alloc     1000m        <unknown>   1024Mi          <unknown>   ",
                "has-alloc    500m         25%         512Mi           <unknown>   ",
                "no-metrics   <unknown>    <unknown>   <unknown>       <unknown>   ",
            ])
        );
    }

    #[test]
    fn sorting_by_cpu_and_memory_is_descending_with_name_ties() {
        let usage = [
            node("b", 2_000_000, 10 * MI),
            node("a", 1_000_001, 30 * MI),
            node("c", 1_500_000, 20 * MI),
            node("d", 3_000_000, 20 * MI),
        ];
        let names = |sort| {
            node_usage_list(&usage, &BTreeMap::new(), sort)
                .items
                .into_iter()
                .map(|i| i.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(SortBy::Name), ["a", "b", "c", "d"]);
        // a and b are both 2m after rounding up: tie broken by name.
        assert_eq!(names(SortBy::Cpu), ["d", "a", "b", "c"]);
        assert_eq!(names(SortBy::Memory), ["a", "c", "d", "b"]);

        let pods = [
            pod("z", "p", vec![container("c", 5_000_000, MI)]),
            pod("a", "q", vec![container("c", 1_000_000, 3 * MI)]),
            pod("a", "p", vec![container("c", 5_000_000, 2 * MI)]),
        ];
        let keys = |sort| {
            pod_usage_list(&pods, sort)
                .items
                .into_iter()
                .map(|i| format!("{}/{}", i.namespace, i.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(SortBy::Name), ["a/p", "a/q", "z/p"]);
        assert_eq!(keys(SortBy::Cpu), ["a/p", "z/p", "a/q"]);
        assert_eq!(keys(SortBy::Memory), ["a/q", "a/p", "z/p"]);

        // --containers with --sort-by orders the containers too.
        let multi = [pod(
            "ns",
            "p",
            vec![
                container("a", 1_000_000, 9 * MI),
                container("b", 9_000_000, MI),
            ],
        )];
        let order = |sort| {
            pod_usage_list(&multi, sort).items[0]
                .containers
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(SortBy::Cpu), ["b", "a"]);
        assert_eq!(order(SortBy::Memory), ["a", "b"]);
        assert_eq!(order(SortBy::Name), ["a", "b"]);
    }

    #[test]
    fn sort_keys_parse() {
        assert_eq!("cpu".parse(), Ok(SortBy::Cpu));
        assert_eq!("memory".parse(), Ok(SortBy::Memory));
        assert_eq!("".parse(), Ok(SortBy::Name));
        assert_eq!(
            "mem".parse::<SortBy>(),
            Err(UnknownSortKey("mem".to_string()))
        );
    }

    #[test]
    fn columns_have_kubectls_minimum_width_and_padding() {
        let rows = vec![
            vec!["a".to_string(), "bb".to_string()],
            vec!["ccccc".to_string(), "d".to_string()],
        ];
        assert_eq!(tabulate(&rows), "a       bb    \nccccc   d     \n");
        // Width counts characters, not bytes.
        let rows = vec![vec!["ñandú".to_string(), "x".to_string()]];
        assert_eq!(tabulate(&rows), "ñandú   x     \n");
    }

    #[test]
    fn empty_lists_print_nothing_and_headers_can_be_dropped() {
        assert_eq!(
            node_usage_list(&[], &BTreeMap::new(), SortBy::Name).to_table(false),
            ""
        );
        assert_eq!(
            pod_usage_list(&[], SortBy::Name).to_table(PodTableOptions::default()),
            ""
        );
        let pods = [pod("ns", "p", vec![container("c", 0, 0)])];
        let options = PodTableOptions {
            no_headers: true,
            ..Default::default()
        };
        assert_eq!(
            pod_usage_list(&pods, SortBy::Name).to_table(options),
            "p     0m    0Mi   \n"
        );
    }

    // --- JSON output ------------------------------------------------------------------------

    #[test]
    fn json_output_is_camel_case() {
        let summary = parse_kubelet_summary(SUMMARY).unwrap();
        let mut alloc = kind_allocatable();
        alloc.insert("worker-down".into(), Allocatable::default());
        let nodes = node_usage_list(
            &summary.node.into_iter().collect::<Vec<_>>(),
            &alloc,
            SortBy::Name,
        );
        assert_eq!(
            serde_json::to_value(&nodes).unwrap(),
            json!({"kind": "NodeUsageList", "items": [
                {"name": "kind-control-plane", "cpuMillicores": 413, "memoryBytes": 1_847_599_104u64,
                 "cpuPercent": 10, "memoryPercent": 22},
                {"name": "worker-down"}
            ]})
        );

        let pods = pod_usage_list(&summary.pods, SortBy::Memory);
        let value = serde_json::to_value(&pods).unwrap();
        assert_eq!(value["kind"], "PodUsageList");
        assert_eq!(value["items"].as_array().unwrap().len(), 5);
        assert_eq!(
            value["items"][0],
            json!({"namespace": "kube-system", "name": "kube-apiserver-kind-control-plane",
                   "cpuMillicores": 49, "memoryBytes": 268_435_456,
                   "containers": [{"name": "kube-apiserver", "cpuMillicores": 49, "memoryBytes": 268_435_456}]})
        );
        let web = value["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "web-6c8f9b7d5-xk2lp")
            .unwrap();
        assert_eq!(
            web,
            &json!({"namespace": "default", "name": "web-6c8f9b7d5-xk2lp",
            "cpuMillicores": 2, "memoryBytes": 8 * MI,
            "containers": [
                {"name": "nginx", "cpuMillicores": 1, "memoryBytes": 5 * MI},
                {"name": "log-shipper", "cpuMillicores": 1, "memoryBytes": 3 * MI}
            ]})
        );
    }

    #[test]
    fn allocatable_comes_from_the_node_status() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {
                "capacity": {"cpu": "4", "memory": "8127824Ki"},
                "allocatable": {"cpu": "3920m", "memory": "8025424Ki", "pods": "110"}
            }
        }))
        .unwrap();
        assert_eq!(
            Allocatable::from_node(&node).unwrap(),
            Allocatable {
                cpu_nanocores: Some(3_920_000_000),
                memory_bytes: Some(8_025_424 * 1024)
            }
        );
        let capacity = node.status.as_ref().unwrap().capacity.as_ref().unwrap();
        assert_eq!(
            Allocatable::from_resources(capacity).unwrap().cpu_nanocores,
            Some(4_000_000_000)
        );
        assert_eq!(
            Allocatable::from_node(&Node::default()).unwrap(),
            Allocatable::default()
        );
        let err = Allocatable::from_quantities(Some("lots"), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "allocatable cpu: invalid quantity \"lots\": expected a number such as 250m, 1.5, 512Mi or 1e3"
        );
    }
}
