//! The readiness waits against real watches: kube-controller-manager turns the Deployment into
//! a ReplicaSet and a Pod, the test plays the kubelet through the Pod's status subresource, the
//! rollout wait sees it, and the APIService wait ends with the real aggregator's reason (the
//! Pod has no IP, so the Service has no endpoints). The watch stays silent for longer than
//! `--request-timeout`, which once ended the wait early with a broken-stream error.

use super::{disabled, eventually, exclusive, kaddons_command};

const READY_STATUS: &str = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"},{"type":"ContainersReady","status":"True"}],"containerStatuses":[{"name":"metrics-server","ready":true,"restartCount":0,"image":"metrics-server","imageID":"","started":true,"state":{"running":{"startedAt":"2026-12-03T00:00:00Z"}}}]}}"#;

#[test]
fn rollout_wait_follows_the_pod_and_apiservice_wait_reports_the_aggregators_reason() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    disabled(cp);

    let child = kaddons_command(&cp.admin_kubeconfig)
        .args([
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--timeout",
            "12s",
            "--request-timeout",
            "3s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting kaddons enable");

    let mut pod = String::new();
    assert!(
        eventually(|| {
            pod = cp.kubectl_ok(&[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=metrics-server",
                "-o",
                "name",
            ]);
            !pod.trim().is_empty()
        }),
        "no Pod"
    );
    cp.kubectl_ok(&[
        "patch",
        pod.trim(),
        "-n",
        "kube-system",
        "--subresource=status",
        "--type=merge",
        "-p",
        READY_STATUS,
    ]);

    let out = child.wait_with_output().expect("kaddons enable");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ready: rollout of Deployment kube-system/metrics-server"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Available=False (MissingEndpoints)"),
        "the aggregator's own reason: {stderr}"
    );
    assert!(!stderr.contains("watch failed"), "{stderr}");
    // The APIService step outlived the 3 s request timeout (it ran to the 12 s deadline).
    let step: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("NOT ready: APIService v1beta1.metrics.k8s.io Available ("))
        .and_then(|rest| rest.strip_suffix("s)"))
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no APIService step line: {stderr}"));
    assert!(
        step > 3.0,
        "the watch ended with the request timeout: {stderr}"
    );
    disabled(cp);
}
