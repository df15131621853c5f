//! Daily-use polish through the binary: the kubectl plugin name, shell completions, the
//! config file and its precedence, the JSON shapes, and clean stderr (no ANSI codes) when
//! piped or with NO_COLOR.

use std::path::Path;

use serde_json::Value;

use crate::util::{kaddons, parse_docs};

fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn stdout(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// --- kubectl plugin ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn as_kubectl_kaddons_the_help_says_kubectl_kaddons() {
    let h = home();
    let link = h.path().join("kubectl-kaddons");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("kaddons"), &link).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&link)
            .args(args)
            .env_clear()
            .env("HOME", h.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.contains("Usage: kubectl kaddons "), "{help}");
    assert!(help.contains("  kubectl kaddons list"), "{help}");
    let sub = run(&["render", "--help"]);
    assert!(sub.contains("Usage: kubectl kaddons render "), "{sub}");
    // And it still works as the plugin.
    assert!(run(&["list"]).contains("metrics-server"));
    // Under its own name, the help says kaddons.
    let plain = stdout(kaddons(h.path()).arg("--help"));
    assert!(plain.contains("Usage: kaddons "), "{plain}");
    assert!(!plain.contains("kubectl kaddons"), "{plain}");
}

// --- completions ------------------------------------------------------------------------------

#[test]
fn completion_scripts_have_the_commands_and_the_addon_names() {
    let h = home();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(kaddons(h.path()).args(["completion", shell]));
        for word in [
            "enable",
            "disable",
            "render",
            "apply",
            "config",
            "metrics-server",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let bash = stdout(kaddons(h.path()).args(["completion", "bash"]));
    assert!(bash.contains("complete -F _kaddons"), "{bash}");
}

#[test]
fn completion_of_an_unknown_shell_is_a_usage_error() {
    let h = home();
    kaddons(h.path())
        .args(["completion", "tcsh"])
        .assert()
        .code(2);
}

// --- config file and precedence ---------------------------------------------------------------

/// The profile annotation of `render metrics-server`: shows which profile was used.
fn rendered_profile(cmd: &mut assert_cmd::Command) -> String {
    let docs = parse_docs(&stdout(cmd));
    docs[0]["metadata"]["annotations"]["kaddons.io/profile"]
        .as_str()
        .unwrap()
        .to_string()
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join(".config/kaddons/config.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn profile_precedence_flag_env_config_default() {
    let h = home();
    let render = || {
        let mut c = kaddons(h.path());
        c.args(["render", "metrics-server"]);
        c
    };
    assert_eq!(rendered_profile(&mut render()), "generic");
    write_config(h.path(), "profile: minikube\n");
    assert_eq!(rendered_profile(&mut render()), "minikube");
    assert_eq!(
        rendered_profile(render().env("KADDONS_PROFILE", "kubeadm")),
        "kubeadm"
    );
    assert_eq!(
        rendered_profile(
            render()
                .env("KADDONS_PROFILE", "kubeadm")
                .args(["--profile", "kind"])
        ),
        "kind"
    );
}

#[test]
fn config_location_follows_xdg_and_kaddons_config() {
    let h = home();
    let xdg = h.path().join("xdg");
    std::fs::create_dir_all(xdg.join("kaddons")).unwrap();
    std::fs::write(xdg.join("kaddons/config.yaml"), "profile: kind\n").unwrap();
    write_config(h.path(), "profile: minikube\n");
    let render = || {
        let mut c = kaddons(h.path());
        c.args(["render", "metrics-server"]);
        c
    };
    assert_eq!(rendered_profile(&mut render()), "minikube");
    assert_eq!(
        rendered_profile(render().env("XDG_CONFIG_HOME", &xdg)),
        "kind"
    );
    let other = h.path().join("other.yaml");
    std::fs::write(&other, "profile: kubeadm\n").unwrap();
    assert_eq!(
        rendered_profile(
            render()
                .env("XDG_CONFIG_HOME", &xdg)
                .env("KADDONS_CONFIG", &other)
        ),
        "kubeadm"
    );
}

#[test]
fn config_set_get_unset_and_image_mirror_applies() {
    let h = home();
    kaddons(h.path())
        .args(["config", "set", "imageMirror", "cn"])
        .assert()
        .success();
    let got = stdout(kaddons(h.path()).args(["config", "get", "imageMirror"]));
    assert_eq!(got, "cn\n");
    let yaml = stdout(kaddons(h.path()).args(["render", "metrics-server"]));
    assert!(yaml.contains("registry.cn-hangzhou.aliyuncs.com"), "{yaml}");
    // A --registry flag replaces the configured mirror as a whole.
    let yaml = stdout(kaddons(h.path()).args([
        "render",
        "metrics-server",
        "--registry",
        "localhost:5000",
    ]));
    assert!(yaml.contains("image: localhost:5000/"), "{yaml}");
    assert!(!yaml.contains("aliyuncs"), "{yaml}");
    kaddons(h.path())
        .args(["config", "unset", "imageMirror"])
        .assert()
        .success();
    kaddons(h.path())
        .args(["config", "get", "imageMirror"])
        .assert()
        .code(1);
}

#[test]
fn unknown_config_keys_are_rejected_with_a_suggestion() {
    let h = home();
    let out = kaddons(h.path())
        .args(["config", "set", "imagemirror", "cn"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("did you mean \"imageMirror\""), "{err}");

    // In the file: every command refuses, naming the file and the line.
    let path = write_config(h.path(), "profile: kind\nrequestTimout: 30s\n");
    let out = kaddons(h.path()).arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
    assert!(err.contains("did you mean \"requestTimeout\""), "{err}");
}

#[test]
fn config_view_json_shows_each_source() {
    let h = home();
    write_config(
        h.path(),
        "profile: minikube\nrequestTimeout: 30s\ncontext: from-config\n",
    );
    let out = stdout(
        kaddons(h.path())
            .args(["config", "view", "-o", "json", "--context", "from-flag"])
            .env("KADDONS_PROFILE", "kind"),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_json_snapshot!("json-config-view", v, {".path" => "[PATH]"});
    });
}

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
