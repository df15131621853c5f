//! Objects another installer made: refused with the installer named (from the real server's
//! managedFields and labels), nothing applied, then taken over with `--force`.

use super::{disabled, enable, exclusive, get, kaddons};

const OTHERS_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: metrics-server
  namespace: kube-system
  labels:
    k8s-app: metrics-server
    LABELS
spec:
  selector:
    matchLabels:
      k8s-app: metrics-server
  template:
    metadata:
      labels:
        k8s-app: metrics-server
    spec:
      containers:
      - name: metrics-server
        image: registry.k8s.io/metrics-server/metrics-server:v0.7.2
"#;

fn installed_by(cp: &kaddons_testkit::cluster::ControlPlane, how: &[&str], labels: &str) {
    let manifest = OTHERS_DEPLOYMENT.replace("LABELS", labels);
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(how);
    let out = cp.kubectl_stdin(&args, &manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn refused_then_forced(cp: &kaddons_testkit::cluster::ControlPlane, installer: &str) {
    let r = enable(cp, &[]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("Deployment kube-system/metrics-server"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(installer),
        "installer {installer:?} not named: {}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(
        get(
            cp,
            &["serviceaccount", "-n", "kube-system", "metrics-server"]
        )
        .is_none(),
        "something was applied"
    );
    let st = kaddons(cp, &["status", "metrics-server"]);
    assert!(
        format!("{}{}", st.stdout, st.stderr).contains(installer),
        "status does not name {installer}: {}\n{}",
        st.stdout,
        st.stderr
    );

    enable(cp, &["--force"]).expect(0);
    let d = get(cp, &["deployment", "-n", "kube-system", "metrics-server"]).unwrap();
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kaddons"
    );
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(!image.ends_with("v0.7.2"), "{image}");
    disabled(cp);
}

/// Another installer's Deployment (applied with kubectl `how`, carrying `labels`) is refused
/// naming `installer`, then taken over with `--force`.
fn installed_by_then_refused_then_forced(how: &[&str], labels: &str, installer: &str) {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    disabled(cp);
    installed_by(cp, how, labels);
    refused_then_forced(cp, installer);
}

#[test]
fn helm_server_side_apply_is_refused_then_taken_over() {
    installed_by_then_refused_then_forced(
        &["--server-side", "--field-manager=helm"],
        "app.kubernetes.io/managed-by: Helm",
        "helm",
    );
}

#[test]
fn minikube_addon_manager_objects_are_refused_then_taken_over() {
    installed_by_then_refused_then_forced(
        &["--server-side", "--field-manager=kubectl"],
        "addonmanager.kubernetes.io/mode: Reconcile",
        "addon-manager",
    );
}

#[test]
fn plain_kubectl_apply_is_refused_then_taken_over() {
    installed_by_then_refused_then_forced(&[], "app: by-hand", "kubectl");
}
