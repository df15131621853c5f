//! Profile detection from real Node objects: each local distribution's nodes (names, labels,
//! providerIDs, kubelet versions, OS images, as their kubelets and cloud providers report
//! them) are created in a real kube-apiserver and set through the status subresource, and
//! each is reached through a kubeconfig whose names are the ones that distribution writes.
//! Then k3s's own metrics-server, with the objectset annotations k3s's deploy controller puts
//! on what it applies: `status` names k3s, `enable` stops and says how to turn it off, and
//! `--force` takes it over with a warning that k3s will put it back.

use std::path::{Path, PathBuf};

use kaddons_testkit::cluster::{ControlPlane, FrontProxy, Options};
use serde_json::{json, Value};

use super::kaddons_with;

/// A kubeconfig with one context per distribution, each named as that distribution names
/// it, all reaching `cp` as its admin; plus `lab`, named like none of them.
fn kubeconfig(cp: &ControlPlane) -> PathBuf {
    // (context, cluster, user)
    let names = [
        ("default", "default", "default"),
        ("k3d-dev", "k3d-dev", "admin@k3d-dev"),
        ("rancher-desktop", "rancher-desktop", "rancher-desktop"),
        ("colima", "colima", "colima"),
        ("orbstack", "orbstack", "orbstack"),
        ("docker-desktop", "docker-desktop", "docker-desktop"),
        ("microk8s", "microk8s-cluster", "admin"),
        ("lab", "lab", "lab"),
    ];
    let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for (_, cluster, _) in names {
        text.push_str(&format!(
            "- name: {cluster}\n  cluster:\n    server: {}\n    certificate-authority: {}\n",
            cp.server,
            cp.pki.ca_crt.display()
        ));
    }
    text.push_str("users:\n");
    for (_, _, user) in names {
        text.push_str(&format!(
            "- name: {user}\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            cp.pki.admin_crt.display(),
            cp.pki.admin_key.display()
        ));
    }
    text.push_str("contexts:\n");
    for (context, cluster, user) in names {
        text.push_str(&format!(
            "- name: {context}\n  context:\n    cluster: {cluster}\n    user: {user}\n"
        ));
    }
    text.push_str("current-context: lab\n");
    let path = cp.dir.join("distributions.kubeconfig");
    std::fs::write(&path, text).expect("writing the kubeconfig");
    path
}

/// A node as a distribution's kubelet registers it: labels and providerID on the object,
/// nodeInfo through the status subresource.
struct NodeSpec {
    name: &'static str,
    labels: Value,
    provider_id: Option<String>,
    kubelet: &'static str,
    os_image: &'static str,
    runtime: &'static str,
}

fn k3s_node(name: &'static str, kubelet: &'static str) -> NodeSpec {
    NodeSpec {
        name,
        labels: json!({
            "node.kubernetes.io/instance-type": "k3s",
            "node-role.kubernetes.io/control-plane": "true",
            "node-role.kubernetes.io/master": "true",
        }),
        provider_id: Some(format!("k3s://{name}")),
        kubelet,
        os_image: "Ubuntu 24.04.1 LTS",
        runtime: "containerd://1.7.23-k3s2",
    }
}

fn create(cp: &ControlPlane, nodes: &[NodeSpec]) {
    for n in nodes {
        let mut labels = n.labels.clone();
        labels["kubernetes.io/hostname"] = json!(n.name);
        labels["kubernetes.io/os"] = json!("linux");
        let mut node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name, "labels": labels}, "spec": {}});
        if let Some(p) = &n.provider_id {
            node["spec"]["providerID"] = json!(p);
        }
        let out = cp.kubectl_stdin(&["apply", "-f", "-"], &node.to_string());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = json!({"status": {"nodeInfo": {
            "kubeletVersion": n.kubelet, "kubeProxyVersion": "", "osImage": n.os_image,
            "containerRuntimeVersion": n.runtime, "operatingSystem": "linux", "architecture": "arm64",
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.8.0-49-generic"}}});
        cp.kubectl_ok(&[
            "patch",
            "node",
            n.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
}

fn profile(kubeconfig: &Path, context: &str) -> Value {
    kaddons_with(kubeconfig, &["profile", "--context", context, "-o", "json"])
        .expect(0)
        .json()
}

fn reasons(report: &Value) -> Vec<String> {
    report["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["profile"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn each_distribution_is_detected_from_its_kubeconfig_and_its_real_nodes() {
    let Some(cp) = ControlPlane::own(Options {
        controller_manager: false,
        ..Options::default()
    }) else {
        return;
    };
    let _guard = cp.failure_guard();
    let kc = kubeconfig(&cp);

    // Before any node: the kubeconfig alone.
    let r = profile(&kc, "lab");
    assert_eq!(r["profile"], "generic", "{r}");

    // (context, the nodes, profile expected, a reason that only the nodes give)
    let cases: Vec<(&str, Vec<NodeSpec>, &str, &str)> = vec![
        (
            "default",
            vec![
                k3s_node("pi-1", "v1.31.4+k3s1"),
                k3s_node("pi-2", "v1.31.4+k3s1"),
            ],
            "k3s",
            "node providerID k3s://pi-1",
        ),
        (
            "k3d-dev",
            vec![
                k3s_node("k3d-dev-server-0", "v1.31.5+k3s1"),
                k3s_node("k3d-dev-agent-0", "v1.31.5+k3s1"),
            ],
            "k3d",
            "node \"k3d-dev-server-0\" is named like k3d's",
        ),
        (
            "rancher-desktop",
            vec![k3s_node("lima-rancher-desktop", "v1.32.2+k3s1")],
            "rancher-desktop",
            "node \"lima-rancher-desktop\" is Rancher Desktop's Lima VM",
        ),
        (
            "colima",
            vec![k3s_node("colima", "v1.35.0+k3s1")],
            "colima",
            "kubelet version v1.35.0+k3s1 is a k3s build",
        ),
        (
            "orbstack",
            vec![NodeSpec {
                name: "orbstack",
                labels: json!({"node-role.kubernetes.io/control-plane": "true"}),
                provider_id: None,
                kubelet: "v1.32.6+orb1",
                os_image: "OrbStack",
                runtime: "docker://28.3.3",
            }],
            "orbstack",
            "kubelet version v1.32.6+orb1 is an OrbStack build",
        ),
        (
            "docker-desktop",
            vec![NodeSpec {
                name: "docker-desktop",
                labels: json!({"node-role.kubernetes.io/control-plane": ""}),
                provider_id: None,
                kubelet: "v1.29.1",
                os_image: "Docker Desktop",
                runtime: "docker://25.0.3",
            }],
            "docker-desktop",
            "node \"docker-desktop\" is Docker Desktop's",
        ),
        (
            "microk8s",
            vec![NodeSpec {
                name: "laptop",
                labels: json!({"microk8s.io/cluster": "true",
                    "node.kubernetes.io/microk8s-controlplane": "microk8s-controlplane"}),
                provider_id: None,
                kubelet: "v1.32.3",
                os_image: "Ubuntu 24.04.2 LTS",
                runtime: "containerd://1.6.36",
            }],
            "microk8s",
            "node label microk8s.io/cluster=true",
        ),
    ];
    for (context, nodes, want, node_reason) in cases {
        create(&cp, &nodes);
        let r = profile(&kc, context);
        let why = reasons(&r);
        assert_eq!(r["profile"], want, "context {context}: {why:#?}");
        assert!(
            why.iter().any(|w| w.contains(node_reason)),
            "context {context}: the real nodes were read: {why:#?}"
        );
        // The same cluster through a context named like none of them: the nodes decide.
        // (Docker Desktop's kubeadm node and colima's node are told by their names alone.)
        let by_nodes = profile(&kc, "lab");
        assert_eq!(
            by_nodes["profile"],
            want,
            "nodes only: {:#?}",
            reasons(&by_nodes)
        );
        cp.kubectl_ok(&["delete", "nodes", "--all", "--wait=true"]);
    }
}

/// k3s's metrics-server as its deploy controller leaves it: each packaged manifest file is an
/// Addon (k3s.cattle.io/v1) named after the file, and wrangler's objectset annotations on
/// every object it applied name that Addon.
fn k3s_metrics_server(cp: &ControlPlane) {
    let marks = |file: &str| {
        json!({
            "objectset.rio.cattle.io/applied": "H4sIAAAAAAAA/wEAAP//AAAAAAAAAAA",
            "objectset.rio.cattle.io/id": "",
            "objectset.rio.cattle.io/owner-gvk": "k3s.cattle.io/v1, Kind=Addon",
            "objectset.rio.cattle.io/owner-name": file,
            "objectset.rio.cattle.io/owner-namespace": "kube-system",
        })
    };
    let hash = json!({"objectset.rio.cattle.io/hash": "6b1c5d2e0c0f7a3b4d9e8f7a6b5c4d3e2f1a0b9c"});
    let deployment_labels = {
        let mut l = hash.clone();
        l["k8s-app"] = json!("metrics-server");
        l
    };
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "metrics-server", "namespace": "kube-system",
            "labels": hash, "annotations": marks("metrics-server-deployment")}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "metrics-server", "namespace": "kube-system",
            "labels": deployment_labels, "annotations": marks("metrics-server-deployment")},
         "spec": {"selector": {"matchLabels": {"k8s-app": "metrics-server"}},
            "template": {"metadata": {"labels": {"k8s-app": "metrics-server"}},
                "spec": {"serviceAccountName": "metrics-server", "priorityClassName": "system-node-critical",
                    "containers": [{"name": "metrics-server",
                        "image": "rancher/mirrored-metrics-server:v0.7.2",
                        "args": ["--cert-dir=/tmp", "--secure-port=10250",
                            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                            "--kubelet-use-node-status-port", "--metric-resolution=15s"]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "metrics-server", "namespace": "kube-system",
            "labels": {"kubernetes.io/name": "Metrics-server", "kubernetes.io/cluster-service": "true",
                "objectset.rio.cattle.io/hash": hash["objectset.rio.cattle.io/hash"]},
            "annotations": marks("metrics-server-service")},
         "spec": {"selector": {"k8s-app": "metrics-server"},
            "ports": [{"port": 443, "protocol": "TCP", "targetPort": "https"}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": hash,
            "annotations": marks("metrics-apiservice")},
         "spec": {"service": {"name": "metrics-server", "namespace": "kube-system"},
            "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": true,
            "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]});
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &objects.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn k3s_own_metrics_server_is_named_and_handed_over_only_when_asked() {
    // kube-controller-manager runs: disable deletes in the foreground, which its garbage
    // collector completes.
    let Some(cp) = ControlPlane::own(Options {
        controller_manager: true,
        front_proxy: FrontProxy::Kaddons,
        ..Options::default()
    }) else {
        return;
    };
    let _guard = cp.failure_guard();
    let kc = kubeconfig(&cp);
    create(&cp, &[k3s_node("pi-1", "v1.34.2+k3s1")]);
    k3s_metrics_server(&cp);
    // A field of the Deployment kube-system/metrics-server.
    let deployment = |field: &str| {
        cp.kubectl_ok(&[
            "get",
            "deployment",
            "-n",
            "kube-system",
            "metrics-server",
            "-o",
            &format!("jsonpath={{{field}}}"),
        ])
    };

    // `kaddons profile` says k3s installs its own, and how to hand it over.
    let r = kaddons_with(&kc, &["profile", "--context", "default"]).expect(0);
    assert!(r.stdout.contains("profile: k3s"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("metrics-server: k3s installs its own copy")
            && r.stdout.contains("--disable=metrics-server"),
        "{}",
        r.stdout
    );

    // status and list: unmanaged, installed by k3s's packaged component.
    let r = kaddons_with(&kc, &["--context", "default", "status", "metrics-server"]);
    assert!(
        r.stdout.contains("unmanaged")
            && r.stdout
                .contains("k3s (packaged component, Addon kube-system/metrics-server-deployment)"),
        "stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    let r = kaddons_with(&kc, &["--context", "default", "list"]).expect(0);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("metrics-server")
            && l.contains("unmanaged")
            && l.contains("k3s")),
        "{}",
        r.stdout
    );

    // enable refuses, naming every object's manager and how to turn k3s's copy off first;
    // nothing changes.
    let before = deployment(".metadata.resourceVersion");
    let r = kaddons_with(
        &kc,
        &[
            "--context",
            "default",
            "enable",
            "metrics-server",
            "--no-wait",
        ],
    )
    .expect(2);
    for want in [
        "Deployment kube-system/metrics-server (managed by k3s (packaged component, Addon kube-system/metrics-server-deployment))",
        "APIService v1beta1.metrics.k8s.io (managed by k3s (packaged component, Addon kube-system/metrics-apiservice))",
        "k3s installs its own metrics-server",
        "start k3s with --disable=metrics-server",
        "https://docs.k3s.io/installation/packaged-components",
        "--force",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?}:\n{}", r.stderr);
    }
    let after = deployment(".metadata.resourceVersion");
    assert_eq!(before, after, "a refused enable changed the Deployment");

    // With --force it is taken over, with the warning that k3s will put it back.
    let r = kaddons_with(
        &kc,
        &[
            "--context",
            "default",
            "enable",
            "metrics-server",
            "--no-wait",
            "--force",
        ],
    )
    .expect(0);
    assert!(
        r.stderr.contains("took over") && r.stderr.contains("k3s will put it back"),
        "{}",
        r.stderr
    );
    assert_eq!(
        deployment(".spec.template.spec.containers[0].image"),
        "registry.k8s.io/metrics-server/metrics-server:v0.9.0"
    );
    let r = kaddons_with(
        &kc,
        &[
            "--context",
            "default",
            "disable",
            "metrics-server",
            "--timeout",
            "60s",
        ],
    )
    .expect(0);
    let _ = r;
    let left = cp.kubectl_ok(&[
        "get",
        "deployment,service,serviceaccount",
        "-n",
        "kube-system",
        "--ignore-not-found",
        "-o",
        "name",
    ]);
    assert!(!left.contains("metrics-server"), "left behind: {left}");
}
