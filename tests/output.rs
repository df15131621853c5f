//! What the offline commands print: the JSON shapes, clean stderr (no ANSI codes) when piped
//! or with NO_COLOR, and -v/-q.

use serde_json::Value;

use crate::util::{home, kaddons, stdout};

// --- JSON shapes ------------------------------------------------------------------------------

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
current-context: kind-dev
clusters:
- name: kind-dev
  cluster: {server: \"https://127.0.0.1:1\"}
contexts:
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev}
users:
- name: kind-dev
  user: {}
";

#[test]
fn json_shapes_of_the_offline_commands() {
    let h = home();
    let kubeconfig = h.path().join("kubeconfig");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    let json = |args: &[&str]| -> Value {
        let out = stdout(
            kaddons(h.path())
                .args(args)
                .args(["-o", "json", "--request-timeout", "1s"])
                .arg("--kubeconfig")
                .arg(&kubeconfig),
        );
        serde_json::from_str(&out).unwrap()
    };
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
    }, {
        // Without a reachable cluster list still answers, with status unknown.
        insta::assert_json_snapshot!("json-list", json(&["list"]), {
            ".items[].version" => "[VERSION]",
            ".items[].addonVersion" => "[VERSION]",
        });
        insta::assert_json_snapshot!("json-profile", json(&["profile"]), {".notes" => "[NOTES]"});
    });
    let render = json(&["render", "metrics-server"]);
    assert_eq!(render["kind"], "List");
    assert_eq!(render["items"].as_array().unwrap().len(), 9);
    let info = json(&["info", "metrics-server"]);
    assert_eq!(info["name"], "metrics-server");
    assert!(info["values"].is_object());
}

// --- output discipline ------------------------------------------------------------------------

fn assert_no_ansi(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b),
        "{what} has an escape sequence: {}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn no_ansi_codes_when_piped_or_with_no_color() {
    let h = home();
    for no_color in [false, true] {
        // Warnings, errors and -vv tracing output, all on a piped stderr.
        let mut cmd = kaddons(h.path());
        if !no_color {
            cmd.env_remove("NO_COLOR").env("TERM", "xterm-256color");
        }
        let out = cmd
            .args(["-vv", "render", "metrics-server"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(!out.stderr.is_empty(), "-vv printed nothing");
        assert_no_ansi("render -vv stderr", &out.stderr);
        assert_no_ansi("render stdout", &out.stdout);
        let mut cmd = kaddons(h.path());
        if !no_color {
            cmd.env_remove("NO_COLOR").env("TERM", "xterm-256color");
        }
        let out = cmd.args(["-v", "enable", "nope"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_no_ansi("error stderr", &out.stderr);
        let out = kaddons(h.path())
            .env_remove("NO_COLOR")
            .args(["render"])
            .output()
            .unwrap();
        assert_no_ansi("usage error stderr", &out.stderr);
    }
}

#[test]
fn verbosity_and_quiet() {
    let h = home();
    let stderr = |args: &[&str]| {
        let out = kaddons(h.path()).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let detail = "rendered 9 objects";
    assert!(!stderr(&["render", "metrics-server"]).contains(detail));
    let v = stderr(&["-v", "render", "metrics-server"]);
    assert!(v.contains(detail) && v.contains("INFO"), "{v}");
    assert!(!v.contains("DEBUG"), "{v}");
    assert!(stderr(&["-vv", "render", "metrics-server"]).contains("DEBUG"));
    assert_eq!(stderr(&["-q", "-vv", "render", "metrics-server"]), "");
    let custom = kaddons(h.path())
        .env("KADDONS_LOG", "kaddons=debug")
        .args(["render", "metrics-server"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&custom.stderr).contains("DEBUG"));
}
