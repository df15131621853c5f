//! End to end against a real cluster: the built `kaddons` binary enables metrics-server, the
//! real `kubectl top node` works, status and list agree, and disable leaves nothing behind.
//!
//! These tests change the cluster of the current kubeconfig context, so they are ignored by
//! default and refuse to run unless `KADDONS_E2E=1` says that this is intended.
//! scripts/e2e-kind.sh and scripts/e2e-minikube.sh create a throwaway cluster, set KUBECONFIG
//! to it and run them:
//!
//! ```sh
//! KADDONS_E2E=1 cargo test --locked --test tests e2e -- --ignored --test-threads=1
//! ```
//!
//! `KADDONS_E2E_PROFILE` (set by the scripts) is the profile detection must find.
//!
//! The same [`cycle`] runs in every test run on the test kit's real node
//! (`tests/real/node.rs`), for both implementations; these ignored tests are for kind and
//! minikube themselves.
//!
//! `builtin_*` runs the same cycle with `--set implementation=builtin` (kaddons' own metrics
//! server); the image must be loaded into the cluster first
//! (scripts/build-metrics-server-image.sh, which the e2e scripts run when docker is there).

use std::ffi::OsString;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::kaddons;

/// Longest a single kaddons run may take: enable waits (default --timeout 5m) for image pulls
/// and the first scrapes; this only stops a hang from blocking the suite forever.
const RUN_BOUND: Duration = Duration::from_secs(420);

/// The cluster under test, reached through the caller's KUBECONFIG (or ~/.kube/config) and
/// its current context. HOME is a fresh directory for both kaddons and kubectl, so that no
/// stale kubectl discovery cache (~/.kube/cache) hides the new metrics.k8s.io API.
pub struct Cluster {
    home: tempfile::TempDir,
    kubeconfig: OsString,
}

impl Cluster {
    /// The cluster of this kubeconfig (the real node of `tests/real/node.rs`).
    pub fn at(kubeconfig: impl Into<OsString>) -> Cluster {
        Cluster {
            home: tempfile::tempdir().unwrap(),
            kubeconfig: kubeconfig.into(),
        }
    }

    fn from_env() -> Cluster {
        assert_eq!(
            std::env::var("KADDONS_E2E").as_deref(),
            Ok("1"),
            "the e2e tests install and remove metrics-server in the cluster of the current \
             kubeconfig context; set KADDONS_E2E=1 to confirm, or use scripts/e2e-kind.sh"
        );
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .or_else(|| std::env::home_dir().map(|h| h.join(".kube").join("config").into()))
            .expect("KUBECONFIG or a home directory");
        Cluster {
            home: tempfile::tempdir().unwrap(),
            kubeconfig,
        }
    }

    pub fn kaddons(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = kaddons(self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .timeout(RUN_BOUND)
            .output()
            .unwrap();
        eprintln!(
            "$ kaddons {} -> {:?} in {:.1}s\n{}{}",
            args.join(" "),
            out.status.code(),
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let out = Command::new("kubectl")
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .output()
            .expect("kubectl on PATH");
        eprintln!(
            "$ kubectl {} -> {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Disables the addon if the test stops half way, so a kept cluster (KEEP_CLUSTER=1) can run
/// the tests again.
struct DisableOnDrop<'c> {
    cluster: &'c Cluster,
    armed: bool,
}

impl Drop for DisableOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self
                .cluster
                .kaddons(&["disable", "metrics-server", "--no-wait"]);
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_not_found(what: &str, out: &Output) {
    assert!(!out.status.success(), "{what} still exists");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("NotFound") || stderr.contains("not found"),
        "{what}: expected NotFound, got: {stderr}"
    );
}

#[test]
#[ignore = "needs cluster"]
fn upstream_enable_top_status_list_disable() {
    cycle(&Cluster::from_env(), &[]);
}

#[test]
#[ignore = "needs cluster and the kaddons-metrics-server image loaded into it"]
fn builtin_enable_top_status_list_disable() {
    cycle(&Cluster::from_env(), &["--set", "implementation=builtin"]);
}

/// enable (with `extra` flags) → kubectl top node → status → list → disable → nothing left.
pub fn cycle(cluster: &Cluster, extra: &[&str]) {
    // Detection: the throwaway cluster is recognised for what it is.
    let profile = cluster.kaddons(&["profile"]);
    assert!(profile.status.success());
    if let Ok(expected) = std::env::var("KADDONS_E2E_PROFILE") {
        let stdout = text(&profile.stdout);
        assert!(
            stdout.lines().any(
                |l| l.starts_with("profile:") && l.split_whitespace().nth(1) == Some(&expected)
            ),
            "expected profile {expected}:\n{stdout}"
        );
    }

    // A fresh cluster has no metrics-server: status says disabled (exit 1).
    let before = cluster.kaddons(&["status", "metrics-server"]);
    assert_eq!(
        before.status.code(),
        Some(1),
        "metrics-server must not be installed before the test"
    );

    let mut guard = DisableOnDrop {
        cluster,
        armed: true,
    };
    // Detected profile, default wait: exit 0 means the metrics API serves node metrics.
    let mut args = vec!["enable", "metrics-server"];
    args.extend_from_slice(extra);
    let enable = cluster.kaddons(&args);
    assert_eq!(enable.status.code(), Some(0), "enable failed");
    assert!(text(&enable.stderr).contains("is enabled and working"));
    let image = cluster.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "deploy",
        "metrics-server",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    let builtin = extra.contains(&"implementation=builtin");
    assert_eq!(
        text(&image.stdout).contains("kaddons/metrics-server"),
        builtin,
        "the Deployment runs the wrong implementation"
    );

    // kubectl's own view. enable waited for the API to serve node metrics, so this should work
    // at once; a few retries absorb the API server's aggregated discovery catching up.
    let mut top = cluster.kubectl(&["top", "node"]);
    for _ in 0..5 {
        if top.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
        top = cluster.kubectl(&["top", "node"]);
    }
    assert!(top.status.success(), "kubectl top node failed after enable");
    let rows: Vec<String> = text(&top.stdout)
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(!rows.is_empty(), "kubectl top node printed no node row");

    let status = cluster.kaddons(&["status", "metrics-server"]);
    assert_eq!(status.status.code(), Some(0));
    assert!(
        text(&status.stdout)
            .lines()
            .any(|l| l.starts_with("state:") && l.contains("enabled")),
        "status does not say enabled"
    );

    let list = cluster.kaddons(&["list", "-o", "json"]);
    assert!(list.status.success());
    let v: Value = serde_json::from_slice(&list.stdout).expect("list -o json is JSON");
    let item = v["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == "metrics-server"))
        .expect("metrics-server in list");
    assert_eq!(item["status"], "enabled", "{item}");

    // Disable waits (default) until the objects are gone.
    let disable = cluster.kaddons(&["disable", "metrics-server"]);
    assert_eq!(disable.status.code(), Some(0), "disable failed");
    guard.armed = false;
    assert_not_found(
        "APIService v1beta1.metrics.k8s.io",
        &cluster.kubectl(&["get", "apiservice", "v1beta1.metrics.k8s.io"]),
    );
    assert_not_found(
        "Deployment kube-system/metrics-server",
        &cluster.kubectl(&["-n", "kube-system", "get", "deploy", "metrics-server"]),
    );

    let after = cluster.kaddons(&["status", "metrics-server"]);
    assert_eq!(after.status.code(), Some(1), "status after disable");
}
