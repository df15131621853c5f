//! Choosing metrics-server's version by Kubernetes version, offline (`render --kube-version`),
//! at every boundary of upstream's compatibility matrix; pins and `--force`; `info`'s matrix.

use predicates::prelude::*;
use serde_json::Value;

use crate::util::{home, kaddons, parse_docs};

/// The metrics-server image `render --kube-version KV [extra]` renders.
fn image_for(kube_version: &str, extra: &[&str]) -> String {
    let h = home();
    let out = kaddons(h.path())
        .args(["render", "metrics-server", "--profile", "generic"])
        .args(["--kube-version", kube_version])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{kube_version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = parse_docs(&String::from_utf8_lossy(&out.stdout));
    let d = docs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn tag(kube_version: &str) -> String {
    image_for(kube_version, &[])
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn kubernetes_1_24_is_refused_naming_the_supported_range() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "--kube-version", "1.24"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("needs Kubernetes 1.25 or newer"))
        .stderr(predicate::str::contains("v0.6.4: Kubernetes 1.25+"));
}

#[test]
fn kubernetes_1_25_gets_v0_6_4() {
    assert_eq!(tag("1.25"), "v0.6.4");
}

#[test]
fn kubernetes_1_26_gets_v0_6_4() {
    assert_eq!(tag("v1.26.15"), "v0.6.4");
}

#[test]
fn kubernetes_1_27_gets_v0_7_2() {
    assert_eq!(tag("1.27"), "v0.7.2");
}

#[test]
fn kubernetes_1_30_gets_v0_7_2() {
    assert_eq!(tag("1.30"), "v0.7.2");
}

#[test]
fn kubernetes_1_31_gets_v0_8_1() {
    assert_eq!(tag("1.31"), "v0.8.1");
}

#[test]
fn kubernetes_1_33_gets_v0_8_1() {
    assert_eq!(tag("1.33"), "v0.8.1");
}

#[test]
fn kubernetes_1_34_gets_v0_9_0() {
    assert_eq!(tag("1.34"), "v0.9.0");
}

#[test]
fn without_a_cluster_or_kube_version_the_newest_is_rendered() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "--profile", "generic"])
        .assert()
        .success()
        .stdout(predicate::str::contains("metrics-server:v0.9.0"));
}

#[test]
fn a_pin_inside_the_range_is_taken_and_outside_needs_force() {
    assert!(image_for("1.34", &["--addon-version", "v0.6.4"]).ends_with(":v0.6.4"));
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "--kube-version", "1.30"])
        .args(["--addon-version", "0.9.0"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "v0.9.0 needs Kubernetes 1.34 or newer",
        ))
        .stderr(predicate::str::contains("--force"));
    assert!(image_for("1.30", &["--addon-version", "0.9.0", "--force"]).ends_with(":v0.9.0"));
    kaddons(h.path())
        .args(["render", "metrics-server", "--addon-version", "v0.8.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no version \"v0.8.0\""))
        .stderr(predicate::str::contains("v0.8.1"));
}

#[test]
fn bad_kube_version_is_refused() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "--kube-version", "latest"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--kube-version"))
        .stderr(predicate::str::contains(
            "\"latest\" is not a Kubernetes version",
        ));
}

#[test]
fn the_mirror_rewrites_the_chosen_versions_image() {
    let image = image_for("1.28", &["--image-mirror", "cn"]);
    assert!(image.ends_with(":v0.7.2"), "{image}");
    assert!(!image.starts_with("registry.k8s.io/"), "{image}");
}

#[test]
fn v0_6_4_serves_on_4443_and_host_network_still_moves_the_port() {
    let h = home();
    let out = kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--kube-version",
            "1.25",
            "--profile",
            "kind",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--secure-port=4443"), "{text}");
    assert!(text.contains("--kubelet-insecure-tls"), "{text}");
}

#[test]
fn info_prints_the_compatibility_matrix() {
    let h = home();
    let out = kaddons(h.path())
        .args(["info", "metrics-server"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "v0.9.0",
        "Kubernetes 1.34+",
        "v0.8.1",
        "Kubernetes 1.31+",
        "v0.7.2",
        "Kubernetes 1.27+",
        "v0.6.4",
        "Kubernetes 1.25+",
    ] {
        assert!(text.contains(row), "{row} missing:\n{text}");
    }
    assert!(text.contains("securePort=4443"), "{text}");
    let out = kaddons(h.path())
        .args(["info", "metrics-server", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["versions"][3]["upstream"], "v0.6.4");
    assert_eq!(v["versions"][3]["kubernetes"], "1.25");
}
