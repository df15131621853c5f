//! Claims about Kubernetes proven against Kubernetes: the `kaddons` binary against a real
//! etcd + kube-apiserver (+ kube-aggregator) + kube-controller-manager, v1.34.4, started by
//! `kaddons_testkit::cluster` on 127.0.0.1. There is no node there, so Pods stay Pending unless a
//! test drives their status through the status subresource; `node.rs` has its own cluster with a
//! real node (`kaddons_testkit::node`).
//!
//! The metrics-server addon is cluster-wide (kube-system objects, ClusterRoles, an APIService),
//! so the tests that enable it on the shared control plane take [`exclusive`] and leave the
//! addon disabled. Tests that need other API server flags start a control plane of their own.

mod aggregation;
mod converge;
mod doctor_apply;
mod images;
mod lifecycle;
mod node;
mod ownership;
mod preflight;
mod profiles;
mod tls;
mod versions;
mod waits;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use kaddons_testkit::cluster::ControlPlane;
use serde_json::Value;

/// One test at a time touches the metrics-server addon of the shared control plane.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The result of one `kaddons` run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The built `kaddons` against `kubeconfig` in a clean environment, to spawn.
pub fn kaddons_command(kubeconfig: &Path) -> std::process::Command {
    let home = std::env::temp_dir().join(format!("kaddons-real-home-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kaddons"));
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        // Only real/images.rs asks registries; the control plane has no network and no node.
        .env("KADDONS_SKIP_IMAGE_CHECK", "1")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs the built `kaddons` against `kubeconfig`, in a clean environment.
pub fn kaddons_with(kubeconfig: &Path, args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let out = crate::util::kaddons(home.path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("running kaddons");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `kaddons` as the control plane's admin.
pub fn kaddons(cp: &ControlPlane, args: &[&str]) -> Run {
    kaddons_with(&cp.admin_kubeconfig, args)
}

/// `kubectl get -o json` of one object, or `None` when it does not exist.
pub fn get(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json", "--ignore-not-found", "--show-managed-fields"]);
    let out = cp.kubectl_ok(&all);
    if out.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(&out).expect("kubectl JSON"))
    }
}

/// Every object of the metrics-server addon that carries kaddons' labels, as `Kind ns/name`.
pub fn labelled_objects(cp: &ControlPlane) -> Vec<String> {
    let out = cp.kubectl_ok(&[
        "get",
        "serviceaccounts,services,deployments,poddisruptionbudgets,clusterroles,clusterrolebindings,rolebindings,apiservices",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=kaddons,kaddons.io/addon=metrics-server",
        "-o",
        "jsonpath={range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ]);
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Disables the addon (as a test's first and last step), so each test starts clean.
pub fn disabled(cp: &ControlPlane) {
    let r = kaddons(cp, &["disable", "metrics-server", "--timeout", "60s"]);
    assert!(
        matches!(r.code, Some(0)),
        "disable failed:\n{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// Polls `check` every 200 ms for up to a minute (a bound against hangs, not a timing goal):
/// controllers act asynchronously.
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// `kaddons enable metrics-server --profile kubeadm --no-wait EXTRA...` as admin (no node:
/// nothing would become ready).
pub fn enable(cp: &ControlPlane, extra: &[&str]) -> Run {
    let mut args = vec![
        "enable",
        "metrics-server",
        "--profile",
        "kubeadm",
        "--no-wait",
    ];
    args.extend_from_slice(extra);
    kaddons(cp, &args)
}

/// `(object, change)` of every line of an enable, disable or apply report (`-o json`).
pub fn changes(report: &Value) -> Vec<(String, String)> {
    report["changes"]
        .as_array()
        .expect("a report with changes")
        .iter()
        .map(|c| {
            (
                c["object"].as_str().unwrap_or_default().to_string(),
                c["change"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
