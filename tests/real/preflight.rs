//! The seed's do-it-yourself cluster (issue 13, point 6), as one story on one control plane: a
//! kube-apiserver started without the aggregation flags, where `kaddons enable metrics-server`
//! stops at pre-flight naming the seven flags; then `kaddons aggregator certs --out DIR` and
//! the same kube-apiserver (same etcd, same port) restarted with exactly the flags it printed;
//! then pre-flight passes, and `kubectl top node` works through the real kube-aggregator to
//! kaddons-metrics-server.
//!
//! There is no node to run the addon's Deployment, so the chain puts the metrics server's
//! process in its place as tests/real/aggregation.rs does (simulated kubelets, Node objects, an
//! APIService through a Service of `type: ExternalName`).

use std::time::Duration;

use kaddons_testkit::aggregation::{self, Implementation, Kubelets, MetricsServer, STABLE_CHURN};
use kaddons_testkit::cluster::{printed_apiserver_flags, ControlPlane, FrontProxy, Options};
use kaddons_testkit::fleet::FleetConfig;

use super::{enable, eventually, kaddons, labelled_objects};

const SEVEN_FLAGS: [&str; 7] = [
    "--requestheader-client-ca-file",
    "--requestheader-allowed-names=front-proxy-client",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-username-headers=X-Remote-User",
    "--proxy-client-cert-file",
    "--proxy-client-key-file",
];

/// What the API server publishes for aggregated servers: requestheader-allowed-names.
fn allowed_names(cp: &ControlPlane) -> String {
    cp.kubectl_ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "jsonpath={.data.requestheader-allowed-names}",
    ])
}

#[test]
fn without_the_aggregation_layer_enable_stops_then_the_printed_flags_fix_it() {
    aggregation::Netns::remove_stale();
    let Some(cp) = ControlPlane::own(Options {
        front_proxy: FrontProxy::Off,
        controller_manager: false,
        ..Options::default()
    }) else {
        return;
    };
    let _guard = cp.failure_guard();

    // Without the flags: enable stops at pre-flight, names the seven flags, applies nothing.
    let r = enable(&cp, &[]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    for flag in SEVEN_FLAGS {
        assert!(r.stderr.contains(flag), "{flag} missing from: {}", r.stderr);
    }
    let sa = cp.kubectl_ok(&[
        "get",
        "serviceaccount",
        "-n",
        "kube-system",
        "metrics-server",
        "--ignore-not-found",
        "-o",
        "name",
    ]);
    assert!(sa.trim().is_empty(), "pre-flight applied something");
    assert_eq!(labelled_objects(&cp), Vec::<String>::new());
    // doctor says the same, with the evidence.
    let doctor = kaddons(&cp, &["doctor"]);
    assert_eq!(doctor.code, Some(1), "{}\n{}", doctor.stdout, doctor.stderr);
    assert!(
        doctor.stdout.contains("--requestheader-client-ca-file"),
        "{}",
        doctor.stdout
    );

    // The recipe: `kaddons aggregator certs --out DIR`, then kube-apiserver restarted with
    // exactly the flags it printed. DIR lives in the control plane's dir, as long as it does.
    let certs_dir = cp.dir.join("front-proxy");
    let certs = kaddons(
        &cp,
        &[
            "aggregator",
            "certs",
            "--out",
            &certs_dir.display().to_string(),
        ],
    )
    .expect(0);
    let flags = printed_apiserver_flags(&certs.stdout).unwrap();
    for flag in SEVEN_FLAGS {
        assert!(
            flags.iter().any(|f| f.starts_with(flag)),
            "pre-flight named {flag}, aggregator certs printed {flags:?}"
        );
    }
    cp.restart_apiserver(&flags).unwrap();
    // The API server publishes the front proxy's settings (its controller writes the
    // ConfigMap shortly after it is ready).
    let mut names = String::new();
    let published = eventually(|| {
        names = allowed_names(&cp);
        names == r#"["front-proxy-client"]"#
    });
    assert!(published, "requestheader-allowed-names: {names:?}");

    // Pre-flight passes now: enable applies the addon.
    let r = enable(&cp, &[]).expect(0);
    assert!(
        labelled_objects(&cp)
            .iter()
            .any(|o| o == &format!("APIService /{}", aggregation::APISERVICE)),
        "enable applied no APIService: {:?}\n{}",
        labelled_objects(&cp),
        r.stderr
    );
    // Its Deployment can never run here (no node): its objects go, and the chain puts the
    // process in its place. `kaddons disable` deletes in the foreground, which needs the
    // garbage collector of kube-controller-manager; kubectl deletes in the background.
    cp.kubectl_ok(&[
        "delete",
        "serviceaccounts,services,deployments,poddisruptionbudgets,clusterroles,clusterrolebindings,rolebindings,apiservices",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=kaddons,kaddons.io/addon=metrics-server",
        "--wait=false",
    ]);
    assert!(eventually(|| labelled_objects(&cp).is_empty()));

    // The chain through the restarted API server's aggregator: simulated kubelets, Node
    // objects, kaddons-metrics-server registered as the APIService.
    let mut fleet = FleetConfig::new(2, 2);
    fleet.churn_period = STABLE_CHURN;
    let kubelets = Kubelets::start(fleet).unwrap_or_else(|e| panic!("simulated kubelets: {e}"));
    aggregation::create_nodes(&cp, &kubelets);
    aggregation::create_pods(&cp, &kubelets.pods);
    let dir = tempfile::tempdir().unwrap();
    let sa_kubeconfig = aggregation::service_account_kubeconfig(&cp, dir.path());
    let server = MetricsServer::start(Implementation::Builtin, &sa_kubeconfig, "10s");
    let _logs = server.failure_guard();
    aggregation::register(&cp, server.port);
    aggregation::wait_available(&cp, "True", Duration::from_secs(120)).unwrap();

    // kubectl top node: every simulated node, with CPU and memory (after two scrapes).
    let mut top = String::new();
    let listed = eventually(|| {
        let Ok(out) = cp.kubectl(&["top", "node"]) else {
            return false;
        };
        top = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success()
            && kubelets.nodes.iter().all(|n| {
                top.lines()
                    .any(|l| l.starts_with(n.name.as_str()) && !l.contains("<unknown>"))
            })
    });
    assert!(listed, "kubectl top node:\n{top}");
    eprintln!("kubectl top node through the restarted kube-apiserver:\n{top}");
}
