//! The config file through the binary: its location, keys, precedence against flags and
//! KADDONS_* variables, and `kaddons config get|set|unset|view`.

use std::path::Path;

use serde_json::Value;

use crate::util::{home, kaddons, parse_docs, stdout};

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
