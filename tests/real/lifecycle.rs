//! enable → enable again → enable with other values → dry run → status/list → disable, on the
//! real API server: field manager and phases, what "unchanged", "configured" and "pruned" mean
//! to a real server-side apply, `dryRun=All`, and foreground deletion that waits until gone.

use super::{changes, disabled, enable, exclusive, get, kaddons, labelled_objects};

fn count(changes: &[(String, String)], what: &str) -> usize {
    changes.iter().filter(|(_, c)| c == what).count()
}

/// Managers of `object` (as `kubectl get` args) with the operation they used.
fn managers(cp: &kaddons_testkit::cluster::ControlPlane, args: &[&str]) -> Vec<(String, String)> {
    let o = get(cp, args).expect("object exists");
    o["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn enable_again_change_values_dry_run_and_disable_on_a_real_api_server() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    disabled(cp);

    // First enable (HA: two replicas and a PodDisruptionBudget), without waiting: no node.
    let first = enable(cp, &["--set", "ha=true", "-o", "json"]).expect(0);
    let first = changes(&first.json());
    assert_eq!(count(&first, "created"), first.len(), "{first:?}");
    assert_eq!(first.len(), 10, "{first:?}");
    assert_eq!(labelled_objects(cp).len(), 10, "{:?}", labelled_objects(cp));
    // Server-side apply with field manager kaddons, and only that manager (besides the
    // status writers of the controllers).
    for args in [
        &["deployment", "-n", "kube-system", "metrics-server"][..],
        &["apiservice", "v1beta1.metrics.k8s.io"][..],
        &["clusterrole", "system:metrics-server"][..],
    ] {
        let m = managers(cp, args);
        assert!(
            m.contains(&("kaddons".to_string(), "Apply".to_string())),
            "{args:?}: {m:?}"
        );
        assert!(
            m.iter()
                .all(|(name, op)| name == "kaddons" || op == "Update"),
            "{args:?}: {m:?}"
        );
    }
    let deployment = get(cp, &["deployment", "-n", "kube-system", "metrics-server"]).unwrap();
    let rv = deployment["metadata"]["resourceVersion"].clone();

    // The same values again: nothing changes, not even a resourceVersion.
    let again = enable(cp, &["--set", "ha=true", "-o", "json"]).expect(0);
    let again = changes(&again.json());
    assert_eq!(count(&again, "unchanged"), again.len(), "{again:?}");
    let deployment = get(cp, &["deployment", "-n", "kube-system", "metrics-server"]).unwrap();
    assert_eq!(deployment["metadata"]["resourceVersion"], rv);

    // Without HA: the Deployment is configured, the PodDisruptionBudget pruned.
    let plain = enable(cp, &["-o", "json"]).expect(0);
    let plain = changes(&plain.json());
    assert!(
        plain.contains(&(
            "Deployment kube-system/metrics-server".to_string(),
            "configured".to_string()
        )),
        "{plain:?}"
    );
    assert!(
        plain.contains(&(
            "PodDisruptionBudget kube-system/metrics-server".to_string(),
            "pruned".to_string()
        )),
        "{plain:?}"
    );
    // Every other object is rewritten too: its kaddons.io/values-digest label records the new
    // values, and the real server bumps each resourceVersion. Nothing is created.
    assert_eq!(count(&plain, "pruned"), 1, "{plain:?}");
    assert_eq!(count(&plain, "created"), 0, "{plain:?}");
    // Pruned in the foreground: the real server keeps the PodDisruptionBudget, with a
    // deletionTimestamp, until kube-controller-manager's garbage collector lets it go.
    if let Some(pdb) = get(cp, &["pdb", "-n", "kube-system", "metrics-server"]) {
        assert!(pdb["metadata"]["deletionTimestamp"].is_string(), "{pdb}");
        cp.kubectl_ok(&[
            "wait",
            "--for=delete",
            "pdb/metrics-server",
            "-n",
            "kube-system",
            "--timeout=60s",
        ]);
    }
    let deployment = get(cp, &["deployment", "-n", "kube-system", "metrics-server"]).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    // kube-controller-manager made the ReplicaSet and its Pod (Pending: there is no node).
    assert!(
        super::eventually(|| !cp
            .kubectl_ok(&[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=metrics-server",
                "-o",
                "name"
            ])
            .trim()
            .is_empty()),
        "kube-controller-manager made no ReplicaSet and Pod"
    );

    // A dry run reports the change and the server persists nothing (dryRun=All).
    let dry = kaddons(
        cp,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--set",
            "metricResolution=30s",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .expect(0);
    let dry_json = dry.json();
    assert_eq!(dry_json["dryRun"], true);
    let dry = changes(&dry_json);
    assert!(
        dry.contains(&(
            "Deployment kube-system/metrics-server".to_string(),
            "configured".to_string()
        )),
        "{dry:?}"
    );
    let after = get(cp, &["deployment", "-n", "kube-system", "metrics-server"]).unwrap();
    // (kube-controller-manager keeps writing the status, so compare the spec's generation.)
    assert_eq!(
        after["metadata"]["generation"], deployment["metadata"]["generation"],
        "a dry run wrote"
    );
    let args = after["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--metric-resolution=15s"), "{args}");

    // list and status tell the truth: enabled, but not working (the Pod cannot run).
    let list = kaddons(cp, &["list", "-o", "json"]).expect(0).json();
    let entry = list["items"]
        .as_array()
        .expect("AddonList items")
        .iter()
        .find(|a| a["name"] == "metrics-server")
        .cloned()
        .expect("metrics-server listed");
    assert_eq!(entry["status"], "degraded", "{entry}");
    assert_eq!(entry["profile"], "kubeadm", "{entry}");
    let status = kaddons(cp, &["status", "metrics-server"]);
    assert_eq!(status.code, Some(1), "{}\n{}", status.stdout, status.stderr);

    // An unmanaged look-alike survives disable.
    cp.kubectl_ok(&["create", "serviceaccount", "lookalike", "-n", "kube-system"]);
    cp.kubectl_ok(&[
        "label",
        "serviceaccount",
        "lookalike",
        "-n",
        "kube-system",
        "kaddons.io/addon=metrics-server",
    ]);

    let gone = kaddons(cp, &["disable", "metrics-server", "-o", "json"]).expect(0);
    let gone = changes(&gone.json());
    assert_eq!(gone.len(), 9, "{gone:?}");
    assert!(
        gone[0].0.starts_with("APIService"),
        "APIService first: {gone:?}"
    );
    // disable waited until the objects were gone, dependents included (foreground).
    assert!(
        labelled_objects(cp).is_empty(),
        "{:?}",
        labelled_objects(cp)
    );
    let left = cp.kubectl_ok(&[
        "get",
        "rs,pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=metrics-server",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "dependents left: {left}");
    assert!(get(cp, &["serviceaccount", "-n", "kube-system", "lookalike"]).is_some());
    cp.kubectl_ok(&["delete", "serviceaccount", "lookalike", "-n", "kube-system"]);

    // Disabling again succeeds and changes nothing.
    let none = kaddons(cp, &["disable", "metrics-server", "-o", "json"]).expect(0);
    assert!(changes(&none.json()).is_empty());
}
