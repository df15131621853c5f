//! `kaddons top` through the binary, against a plain-HTTP stand-in API server on 127.0.0.1
//! that serves the same usage two ways: metrics.k8s.io lists and a kubelet Summary. Both
//! sources must print the same table; without metrics.k8s.io, auto falls back with a notice.

use kaddons_testkit::standin::{not_found, StandIn};

use crate::util::{kaddons, repo_path};

/// Serves until dropped. `metrics` false answers metrics.k8s.io 404.
fn stand_in(metrics: bool) -> StandIn {
    let read = |rel: &str| std::fs::read_to_string(repo_path(rel)).unwrap();
    let nodes = read("tests/fixtures/metrics-k8s-io-nodes.json");
    let pods = read("tests/fixtures/metrics-k8s-io-pods.json");
    let summary = read("tests/fixtures/kubelet-summary-2pods.json");
    let node_list = serde_json::json!({
        "apiVersion": "v1", "kind": "NodeList", "metadata": {},
        "items": [{"metadata": {"name": "kind-control-plane"},
                   "status": {"allocatable": {"cpu": "4", "memory": "8025424Ki"}}}]
    })
    .to_string();
    StandIn::start(move |req| match req.path.as_str() {
        "/api/v1/nodes" => (200, node_list.clone()),
        "/api/v1/nodes/kind-control-plane/proxy/stats/summary" => (200, summary.clone()),
        "/apis/metrics.k8s.io/v1beta1/nodes" if metrics => (200, nodes.clone()),
        "/apis/metrics.k8s.io/v1beta1/pods" if metrics => (200, pods.clone()),
        _ => not_found(),
    })
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\nclusters:\n- name: stand-in\n  cluster: {{server: \"{server}\"}}\ncontexts:\n- name: stand-in\n  context: {{cluster: stand-in, user: me}}\nusers:\n- name: me\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

fn top(home: &std::path::Path, kc: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = kaddons(home)
        .arg("--kubeconfig")
        .arg(kc)
        .args(["--request-timeout", "5s", "top"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn both_sources_print_the_same_tables() {
    let server = stand_in(true);
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), server.url());
    for args in [
        &["nodes"][..],
        &["pods", "-A"],
        &["pods", "-A", "--sort-by", "cpu"],
        &["pods", "-A", "--containers"],
    ] {
        let metrics: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--source", "metrics"])
            .collect();
        let kubelet: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--source", "kubelet"])
            .collect();
        let (c1, a, e1) = top(home.path(), &kc, &metrics);
        let (c2, b, e2) = top(home.path(), &kc, &kubelet);
        assert_eq!((c1, c2), (0, 0), "{args:?}: {e1} {e2}");
        assert_eq!(a, b, "{args:?}");
        assert!(a.lines().count() > 1, "{args:?}: {a}");
    }
    let (_, nodes, _) = top(home.path(), &kc, &["nodes"]);
    assert!(nodes.starts_with("NAME "), "{nodes}");
    assert!(
        nodes.contains("kind-control-plane   413m         10%      1762Mi          22%"),
        "{nodes}"
    );
}

#[test]
fn without_a_metrics_api_auto_reads_the_kubelets_with_a_notice() {
    let server = stand_in(false);
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), server.url());
    let (code, out, err) = top(home.path(), &kc, &["nodes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind-control-plane"), "{out}");
    assert!(err.contains("not served"), "{err}");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/api/v1/nodes/kind-control-plane/proxy/stats/summary".to_string()),
        "{paths:?}"
    );
    // Asking for metrics.k8s.io explicitly fails, and says how to do without it.
    let (code, _, err) = top(home.path(), &kc, &["nodes", "--source", "metrics"]);
    assert_eq!(code, 2);
    assert!(err.contains("--source kubelet"), "{err}");
}

#[test]
fn json_output_has_the_documented_shape() {
    let server = stand_in(true);
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), server.url());
    let (code, out, _) = top(home.path(), &kc, &["nodes", "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "NodeUsageList");
    assert_eq!(v["items"][0]["name"], "kind-control-plane");
    assert_eq!(v["items"][0]["cpuPercent"], 10);
}

/// The kubelet fleet simulator's Summary API (what the metrics server tests and the scale
/// harness serve) parses as `kaddons top` reads a real kubelet's.
#[test]
fn fleet_simulator_summary_parses_as_top_reads_it() {
    let body = kaddons_testkit::fleet::summary_payload(3, 12, 30.0, 1_700_000_000.0, 120.0);
    let summary = kaddons::top::parse_kubelet_summary(&body).unwrap();
    assert_eq!(
        summary.node.map(|n| n.name),
        Some(kaddons_testkit::fleet::node_name(3))
    );
    assert_eq!(summary.pods.len(), 12);
}
