//! Every value of metrics-server obeys its schema (addons/metrics-server/values.schema.yaml):
//! a hostile value for each key is refused, naming the key, the value, the rule and where it
//! came from, and nothing is rendered.

use predicates::prelude::*;

use crate::util::{home, kaddons};

/// `render --set EXPR` fails with exit 2, nothing on stdout, and an error naming `key`.
fn refused_set(expr: &str, key: &str) {
    let h = home();
    let out = kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--profile",
            "generic",
            "--set",
            expr,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{expr}: {stderr}");
    assert!(out.stdout.is_empty(), "{expr} rendered something");
    assert!(
        stderr.contains(&format!("\"{key}")),
        "{expr}: key not named: {stderr}"
    );
    assert!(
        stderr.contains("--set"),
        "{expr}: origin not named: {stderr}"
    );
}

#[test]
fn the_issues_four_values_are_refused_with_the_key_named() {
    refused_set("metricResolution=banana", "metricResolution");
    refused_set("metricResolution=5s", "metricResolution");
    refused_set("securePort=99999", "securePort");
    refused_set(
        "kubeletPreferredAddressTypes=Foo",
        "kubeletPreferredAddressTypes",
    );
}

#[test]
fn the_rule_and_the_value_are_in_the_message() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "--set", "metricResolution=5s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--set metricResolution=5s"))
        .stderr(predicate::str::contains("\"5s\""))
        .stderr(predicate::str::contains("at least 10s"));
    kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--set",
            "kubeletPreferredAddressTypes=InternalIP,Foo",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "InternalIP, ExternalDNS, ExternalIP",
        ));
}

#[test]
fn a_hostile_value_for_every_key_is_refused() {
    for (expr, key) in [
        ("implementation=kaddons", "implementation"),
        ("ha=maybe", "ha"),
        ("securePort=0", "securePort"),
        ("metricResolution=10", "metricResolution"),
        ("metricResolution=-1m", "metricResolution"),
        (
            "kubeletPreferredAddressTypes=[]",
            "kubeletPreferredAddressTypes",
        ),
        (
            "kubeletPreferredAddressTypes=InternalIP,InternalIP",
            "kubeletPreferredAddressTypes",
        ),
        ("kubeletUseNodeStatusPort=1", "kubeletUseNodeStatusPort"),
        ("kubeletInsecureTLS=yes", "kubeletInsecureTLS"),
        ("hostNetwork.enabled=on", "hostNetwork.enabled"),
        ("hostNetwork.securePort=10250", "hostNetwork.securePort"),
        ("hostNetwork.securePort=70000", "hostNetwork.securePort"),
        ("extraArgs=$(reboot)", "extraArgs"),
        ("imagePullPolicy=Sometimes", "imagePullPolicy"),
        ("priorityClassName=System Critical", "priorityClassName"),
        (
            "apiServiceInsecureSkipTLSVerify=nah",
            "apiServiceInsecureSkipTLSVerify",
        ),
    ] {
        refused_set(expr, key);
    }
}

/// Free-form keys take Kubernetes structures, but of the right shape; a --values file error
/// names the file and the line.
#[test]
fn values_files_are_checked_with_file_and_line() {
    let h = home();
    for (yaml, key, line) in [
        ("nodeSelector:\n  kubernetes.io/os: 1\n", "nodeSelector", 1),
        ("tolerations: [1]\n", "tolerations", 1),
        ("resources: []\n", "resources", 1),
        (
            "ha: true\nhostNetwork:\n  enabled: true\n  securePort: 99999\n",
            "hostNetwork.securePort",
            4,
        ),
        ("metricResolution: 1s\n", "metricResolution", 1),
    ] {
        let file = h.path().join("values.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = kaddons(h.path())
            .args(["render", "metrics-server", "--profile", "generic", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {stderr}");
        assert!(stderr.contains(key), "{yaml}: {stderr}");
        assert!(
            stderr.contains(&format!("{}:{line}", file.display())),
            "{yaml}: line {line} not named: {stderr}"
        );
    }
}

#[test]
fn an_addon_set_entry_goes_through_the_same_check() {
    let h = home();
    let file = h.path().join("addons.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaddons.io/v1alpha1\nkind: AddonSet\naddons:\n  - name: metrics-server\n    set: {metricResolution: 2s}\n",
    )
    .unwrap();
    let catalog = kaddons::catalog::Catalog::builtin().unwrap();
    let checked = kaddons::addonset::Checked::load(&file, &catalog).unwrap();
    let req = checked
        .request(
            &catalog,
            0,
            &kaddons::addonset::Defaults::default(),
            kaddons::catalog::Profile::Generic,
        )
        .unwrap();
    let addon = catalog.get("metrics-server").unwrap();
    let err = kaddons::render::render(addon, &req)
        .unwrap_err()
        .to_string();
    assert!(err.contains("addons[0].set"), "{err}");
    assert!(
        err.contains("metricResolution") && err.contains("10s"),
        "{err}"
    );
}

#[test]
fn info_shows_each_values_constraint() {
    let h = home();
    kaddons(h.path())
        .args(["info", "metrics-server"])
        .assert()
        .success()
        .stdout(predicate::str::contains("metricResolution"))
        .stdout(predicate::str::contains("Go duration >= 10s"))
        .stdout(predicate::str::contains("integer 1..65535"))
        .stdout(predicate::str::contains(
            "one of: Always, IfNotPresent, Never",
        ));
}
