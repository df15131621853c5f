//! The image pre-flight on a real API server: an image no node has and no registry serves
//! stops `enable` before anything is applied (exit 2), naming the image, what its registry
//! answered and the fixes. The registry is a stand-in on 127.0.0.1: nothing leaves the machine.

use kaddons_testkit::standin::StandIn;

use super::exclusive;

#[test]
fn an_image_that_no_registry_has_stops_enable_before_anything_is_applied() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    super::disabled(cp);
    let registry = StandIn::start(|_| (404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.into()));
    let host = registry
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let image = format!("metrics-server={host}/missing:v1");
    let home = tempfile::tempdir().unwrap();
    let out = crate::util::kaddons(home.path())
        .env_remove("KADDONS_SKIP_IMAGE_CHECK")
        .arg("--kubeconfig")
        .arg(&cp.admin_kubeconfig)
        .args([
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--no-wait",
            "--image",
            &image,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        format!("{host}/missing:v1").as_str(),
        "404 Not Found",
        "nothing was applied",
        "--image-mirror",
        "--registry",
        "kaddons image load",
        "--skip-image-check",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
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
    assert!(
        sa.trim().is_empty(),
        "the pre-flight applied something: {sa}"
    );
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.method == "HEAD" && r.path == "/v2/missing/manifests/v1"),
        "{:?}",
        registry.requests()
    );

    // The builtin server's image is in no registry: the one command to run is named.
    let out = crate::util::kaddons(home.path())
        .env_remove("KADDONS_SKIP_IMAGE_CHECK")
        .arg("--kubeconfig")
        .arg(&cp.admin_kubeconfig)
        .args([
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--no-wait",
        ])
        .args(["--set", "implementation=builtin", "--registry", &host])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kaddons image build metrics-server && kaddons image load kaddons-metrics-server.tar --into"),
        "{stderr}"
    );
    super::disabled(cp);
}
