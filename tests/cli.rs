//! The binary as users run it: arguments, output streams, exit codes.

use std::io::Read;
use std::process::Stdio;

use predicates::prelude::*;
use serde_json::Value;

use crate::util::{home, kaddons, parse_docs, repo_path};

const KIND_KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
current-context: kind-dev
clusters:
- name: kind-dev
  cluster: {server: "https://127.0.0.1:40123"}
- name: minikube
  cluster: {server: "https://127.0.0.1:8443"}
contexts:
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev}
- name: minikube
  context: {cluster: minikube, user: minikube}
users:
- name: kind-dev
  user: {}
- name: minikube
  user: {}
"#;

#[test]
fn version_and_help() {
    let h = home();
    kaddons(h.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("kaddons "));
    kaddons(h.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes"))
        .stdout(predicate::str::contains("kaddons render metrics-server"));
    for cmd in ["list", "render", "profile", "info"] {
        kaddons(h.path())
            .args([cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn list_works_without_any_kubeconfig() {
    let h = home();
    kaddons(h.path())
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("NAME"))
        .stdout(predicate::str::contains("metrics-server"))
        .stdout(predicate::str::contains("unknown (no cluster)"));
}

#[test]
fn list_json_shape() {
    let h = home();
    let out = kaddons(h.path())
        .args(["list", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "AddonList");
    assert_eq!(v["apiVersion"], "kaddons.io/v1alpha1");
    let item = &v["items"][0];
    assert_eq!(item["name"], "metrics-server");
    assert_eq!(item["version"], "v0.9.0");
    assert_eq!(item["status"], "unknown");
    assert_eq!(item["source"], "builtin");
}

#[test]
fn minikube_style_addons_prefix() {
    let h = home();
    kaddons(h.path())
        .args(["addons", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("metrics-server"));
    kaddons(h.path())
        .args(["addons", "enable", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "kaddons enable metrics-server --dry-run",
        ));
    kaddons(h.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("\n  addons ").not());
}

#[test]
fn render_works_without_any_kubeconfig_and_says_which_profile() {
    let h = home();
    let out = kaddons(h.path())
        .args(["render", "metrics-server"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(parse_docs(&String::from_utf8(out.stdout).unwrap()).len(), 9);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("profile: generic"), "{err}");
}

#[test]
fn render_json_is_a_list_of_the_same_objects() {
    let h = home();
    let yaml = kaddons(h.path())
        .args(["render", "metrics-server", "--profile", "kind"])
        .output()
        .unwrap();
    let json = kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--profile",
            "kind",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(
        list["items"].as_array().unwrap(),
        &parse_docs(&String::from_utf8(yaml.stdout).unwrap())
    );
}

#[test]
fn quiet_render_prints_nothing_on_stderr() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "-q"])
        .assert()
        .success()
        .stderr(predicate::str::is_empty());
}

#[test]
fn image_mirror_cn_rewrites_every_image() {
    let h = home();
    let out = kaddons(h.path())
        .args(["render", "metrics-server", "--image-mirror", "cn"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let images: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert!(!images.is_empty());
    for i in images {
        assert!(
            i.starts_with("registry.cn-hangzhou.aliyuncs.com/google_containers/"),
            "{i}"
        );
    }
    assert!(!text.contains("registry.k8s.io"));
    assert!(!text.contains("k8s.gcr.io"));
}

#[test]
fn registry_and_image_overrides() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metrics-server", "--registry", "localhost:5000"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "image: localhost:5000/metrics-server/metrics-server:v0.9.0",
        ));
    kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--image",
            "metrics-server=:v0.8.0",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "image: registry.k8s.io/metrics-server/metrics-server:v0.8.0",
        ));
    // The frozen registry only when asked for, and then with a warning.
    kaddons(h.path())
        .args(["render", "metrics-server", "--registry", "k8s.gcr.io"])
        .assert()
        .success()
        .stderr(predicate::str::contains("frozen"));
    kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--registry",
            "r",
            "--image-mirror",
            "cn",
        ])
        .assert()
        .code(2);
}

#[test]
fn unknown_names_exit_2_with_the_closest_name() {
    let h = home();
    kaddons(h.path())
        .args(["render", "metric-server"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean \"metrics-server\""));
    kaddons(h.path())
        .args(["render", "metrics-server", "--profile", "kinf"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'kind'"));
    kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--set",
            "kubeletInsecureTls=true",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "did you mean \"kubeletInsecureTLS\"",
        ));
    kaddons(h.path())
        .args(["render", "metrics-server", "--image-mirror", "cm"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean \"cn\""));
    kaddons(h.path())
        .args(["render", "metrics-server", "--set", "ha=maybe"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expects true or false"));
    kaddons(h.path()).arg("frobnicate").assert().code(2);
}

#[test]
fn values_files_layer_and_errors_name_the_file() {
    let h = home();
    let f = h.path().join("v.yaml");
    std::fs::write(&f, "metricResolution: 45s\nhostNetwork:\n  enabled: true\n").unwrap();
    kaddons(h.path())
        .args(["render", "metrics-server", "--values"])
        .arg(&f)
        .args(["--set", "metricResolution=50s"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--metric-resolution=50s"))
        .stdout(predicate::str::contains("hostNetwork: true"));
    std::fs::write(&f, "metricResolutoin: 45s\n").unwrap();
    kaddons(h.path())
        .args(["render", "metrics-server", "-f"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("v.yaml"))
        .stderr(predicate::str::contains(
            "did you mean \"metricResolution\"",
        ));
    std::fs::write(&f, "a: [").unwrap();
    kaddons(h.path())
        .args(["render", "metrics-server", "-f"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not valid YAML"));
}

#[test]
fn profile_is_detected_from_the_kubeconfig() {
    let h = home();
    let kc = h.path().join("config");
    std::fs::write(&kc, KIND_KUBECONFIG).unwrap();
    kaddons(h.path())
        .arg("profile")
        .arg("--kubeconfig")
        .arg(&kc)
        .assert()
        .success()
        .stdout(predicate::str::contains("profile: kind"))
        .stdout(predicate::str::contains("kind-dev"));
    // KUBECONFIG is honoured, and --context switches.
    let out = kaddons(h.path())
        .env("KUBECONFIG", &kc)
        .args(["profile", "--context", "minikube", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["profile"], "minikube");
    assert_eq!(v["context"], "minikube");
    assert!(!v["evidence"].as_array().unwrap().is_empty());
    // A typo in --context.
    kaddons(h.path())
        .env("KUBECONFIG", &kc)
        .args(["profile", "--context", "kind-deb"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean \"kind-dev\""));
}

#[test]
fn render_auto_uses_the_detected_profile() {
    let h = home();
    let kc = h.path().join("config");
    std::fs::write(&kc, KIND_KUBECONFIG).unwrap();
    kaddons(h.path())
        .env("KUBECONFIG", &kc)
        .args(["render", "metrics-server"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--kubelet-insecure-tls"))
        .stderr(predicate::str::contains("profile: kind"));
}

#[test]
fn a_broken_kubeconfig_names_the_file_and_the_way_out() {
    let h = home();
    let kc = h.path().join("config");
    std::fs::write(&kc, "clusters: [").unwrap();
    kaddons(h.path())
        .args(["render", "metrics-server", "--kubeconfig"])
        .arg(&kc)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(kc.display().to_string()))
        .stderr(predicate::str::contains("--profile"));
    // An explicit profile needs no kubeconfig at all.
    kaddons(h.path())
        .args([
            "render",
            "metrics-server",
            "--profile",
            "kind",
            "--kubeconfig",
        ])
        .arg(&kc)
        .assert()
        .success();
}

#[test]
fn addons_dir_adds_and_overrides_addons() {
    let h = home();
    let dir = h.path().join("catalog");
    std::fs::create_dir_all(dir.join("addons/hello")).unwrap();
    std::fs::create_dir_all(dir.join("templates/hello")).unwrap();
    std::fs::write(
        dir.join("addons/hello/addon.yaml"),
        "name: hello\nversion: '1'\ndescription: A greeting\nupstream: {project: me/hello, version: v1}\nmaintainer: me\ndocs: https://example.invalid\nnamespace: default\nimages: {}\nvalues: {greeting: hi}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/hello/configmap.yaml.hbs"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n  namespace: {{yaml addon.namespace}}\ndata:\n  greeting: {{yaml values.greeting}}\n",
    )
    .unwrap();
    kaddons(h.path())
        .env("KADDONS_ADDONS_DIR", &dir)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("hello"))
        .stdout(predicate::str::contains("metrics-server"));
    kaddons(h.path())
        .args([
            "render",
            "hello",
            "--set",
            "greeting=hey: you",
            "--addons-dir",
        ])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("greeting: 'hey: you'"))
        .stdout(predicate::str::contains("kaddons.io/addon: hello"));
    // An unsafe template is refused with its name.
    std::fs::write(
        dir.join("templates/hello/configmap.yaml.hbs"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{values.greeting}}\n",
    )
    .unwrap();
    kaddons(h.path())
        .args(["render", "hello", "--addons-dir"])
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("configmap.yaml.hbs"))
        .stderr(predicate::str::contains("yaml"));
}

#[test]
fn the_repository_itself_is_a_catalog_directory() {
    let h = home();
    kaddons(h.path())
        .args(["info", "metrics-server", "--addons-dir"])
        .arg(repo_path(""))
        .assert()
        .success()
        .stdout(predicate::str::contains("kubeletInsecureTLS"))
        .stdout(predicate::str::contains("because:"));
}

#[test]
fn info_json_has_values_and_profiles() {
    let h = home();
    let out = kaddons(h.path())
        .args(["info", "metrics-server", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["values"]["securePort"], 10250);
    assert!(v["profiles"]["kind"]["patches"][0]["reason"].is_string());
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let h = home();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kaddons"))
        .env_clear()
        .env("HOME", h.path())
        .args([
            "render",
            "metrics-server",
            "--profile",
            "generic",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is dropped (closed) here, before the output is complete.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_ansi_codes_when_piped_or_no_color() {
    let h = home();
    let out = kaddons(h.path()).args(["render", "nope"]).output().unwrap();
    assert!(!out.stderr.contains(&0x1b));
    assert!(!out.stdout.contains(&0x1b));
}
