//! `kaddons doctor`'s API-only checks and `kaddons apply -f` with `--prune`, on the real API
//! server (no node: the addon can be applied but never work, which doctor must say).

use super::{disabled, enable, exclusive, kaddons, labelled_objects};

fn checks(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn doctor_reports_what_the_real_cluster_shows() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    disabled(cp);

    let r = kaddons(cp, &["doctor", "-o", "json"]).expect(1);
    let report = r.json();
    let found = checks(&report);
    for want in [
        ("cluster-reachable", "ok"),
        ("aggregation-layer", "ok"),
        ("addon-objects", "error"),
        ("api-serves", "error"),
        // kube-aggregator's aggregated discovery does not list metrics.k8s.io/v1beta1.
        ("aggregated-discovery", "error"),
    ] {
        assert!(
            found.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {found:?}"
        );
    }
    let summary = |id: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["summary"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(summary("cluster-reachable").contains("v1.34.4"), "{report}");
    assert!(summary("api-serves").contains("404"), "{report}");

    // Enabled but not working: the aggregator's own reason is the evidence.
    enable(cp, &[]).expect(0);
    let enabled = kaddons(cp, &["doctor", "-o", "json"]).expect(1).json();
    let found = checks(&enabled);
    assert!(
        found.contains(&(
            "apiservice-missing-endpoints".to_string(),
            "error".to_string()
        )),
        "{found:?}"
    );
    assert!(enabled.to_string().contains("503"), "{enabled}");
    disabled(cp);
}

#[test]
fn apply_file_enables_then_prune_disables_what_the_file_no_longer_lists() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    disabled(cp);
    let file = crate::util::repo_path("examples/addons.yaml");
    let r = kaddons(
        cp,
        &[
            "apply",
            "-f",
            file.to_str().unwrap(),
            "--no-wait",
            "-o",
            "json",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(r["addons"][0]["action"], "enable", "{r}");
    assert_eq!(labelled_objects(cp).len(), 9);
    // Again: nothing to do.
    let again = kaddons(
        cp,
        &[
            "apply",
            "-f",
            file.to_str().unwrap(),
            "--no-wait",
            "-o",
            "json",
        ],
    )
    .expect(0)
    .json();
    assert!(
        again["addons"][0]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["change"] == "unchanged"),
        "{again}"
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none.yaml");
    std::fs::write(
        &empty,
        "apiVersion: kaddons.io/v1alpha1\nkind: AddonSet\naddons: []\n",
    )
    .unwrap();
    // Without --prune an empty file leaves the addon alone.
    kaddons(cp, &["apply", "-f", empty.to_str().unwrap(), "--no-wait"]).expect(0);
    assert_eq!(labelled_objects(cp).len(), 9);
    let pruned = kaddons(
        cp,
        &[
            "apply",
            "-f",
            empty.to_str().unwrap(),
            "--prune",
            "-o",
            "json",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(pruned["addons"][0]["action"], "prune", "{pruned}");
    assert!(
        labelled_objects(cp).is_empty(),
        "{:?}",
        labelled_objects(cp)
    );
}
