//! `kaddons image build` and `kaddons image load`: the archive's format (digests match
//! contents, the layer holds exactly the expected files with their modes and owners, two
//! builds are byte-identical) and the exact command lines of kind, minikube and ctr, proved
//! with stand-in tools on PATH that record their arguments (no containerd is started).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::kaddons;

/// A small host-architecture ELF executable to stand in for the server binary (dynamically
/// linked, so the libraries `ldd` lists are collected too).
fn small_binary() -> PathBuf {
    ["/usr/bin/true", "/bin/true"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("/usr/bin/true")
}

fn sha(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Builds an archive with the CLI; returns its bytes and stdout.
pub fn build(dir: &Path, name: &str) -> (Vec<u8>, String) {
    let ca = dir.join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = dir.join(name);
    let run = kaddons(dir)
        .args(["image", "build", "metrics-server", "--binary"])
        .arg(small_binary())
        .arg("--ca-certificates")
        .arg(&ca)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    (
        std::fs::read(&out).unwrap(),
        String::from_utf8_lossy(&run.stdout).into_owned(),
    )
}

/// Every regular file of a tar, by path.
pub fn files(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let path = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            out.insert(path, data);
        }
    }
    out
}

#[test]
fn archive_digests_match_contents_and_the_layer_is_the_minimal_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, stdout) = build(dir.path(), "a.tar");
    let f = files(&bytes);
    // docker-archive index, pointing at blobs whose names are their digests.
    let manifest: Value = serde_json::from_slice(&f["manifest.json"]).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["docker.io/kaddons/metrics-server:0.1.0"]),
        "the tag implementation=builtin renders"
    );
    for (path, data) in &f {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(sha(data), format!("sha256:{hex}"), "{path}");
        }
    }
    let config_path = manifest[0]["Config"].as_str().unwrap();
    let layer_path = manifest[0]["Layers"][0].as_str().unwrap();
    let config: Value = serde_json::from_slice(&f[config_path]).unwrap();
    let layer = &f[layer_path];
    assert_eq!(config["rootfs"]["diff_ids"][0], sha(layer));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/kaddons-metrics-server"])
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"10250/tcp": {}})
    );
    // OCI layout: index.json -> manifest -> the same config and layer.
    assert_eq!(f["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: Value = serde_json::from_slice(&f["index.json"]).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "docker.io/kaddons/metrics-server:0.1.0"
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "0.1.0"
    );
    let mdigest = m["digest"].as_str().unwrap();
    let oci_manifest_bytes = &f[&format!("blobs/sha256/{}", &mdigest[7..])];
    assert_eq!(m["size"], oci_manifest_bytes.len());
    let oci: Value = serde_json::from_slice(oci_manifest_bytes).unwrap();
    assert_eq!(oci["config"]["digest"], sha(&f[config_path]));
    assert_eq!(oci["config"]["size"], f[config_path].len());
    assert_eq!(oci["layers"][0]["digest"], sha(layer));
    assert_eq!(oci["layers"][0]["size"], layer.len());
    assert!(
        stdout.contains(mdigest),
        "stdout names the digest: {stdout}"
    );

    // The layer: exactly these entries, sorted, root-owned but the nonroot home, fixed mtime.
    let mut a = tar::Archive::new(layer.as_slice());
    let mut entries = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        entries.push((
            e.path().unwrap().display().to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
        ));
    }
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "sorted entries");
    let libs: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| p.contains(".so") && !p.ends_with('/'))
        .collect();
    assert!(
        libs.iter().any(|p| p.contains("libc.so")),
        "glibc collected: {paths:?}"
    );
    let non_lib: Vec<(String, u32, u64, u64)> = entries
        .iter()
        .filter(|e| !e.0.starts_with("lib"))
        .cloned()
        .collect();
    let e = |p: &str, mode: u32, id: u64| (p.to_string(), mode, id, id);
    assert_eq!(
        non_lib,
        vec![
            e("etc/", 0o755, 0),
            e("etc/group", 0o644, 0),
            e("etc/passwd", 0o644, 0),
            e("etc/ssl/", 0o755, 0),
            e("etc/ssl/certs/", 0o755, 0),
            e("etc/ssl/certs/ca-certificates.crt", 0o644, 0),
            e("home/", 0o755, 0),
            e("home/nonroot/", 0o700, 65532),
            e("root/", 0o700, 0),
            e("tmp/", 0o1777, 0),
            e("usr/", 0o755, 0),
            e("usr/local/", 0o755, 0),
            e("usr/local/bin/", 0o755, 0),
            e("usr/local/bin/kaddons-metrics-server", 0o755, 0),
        ]
    );
    let rootfs = files(layer);
    assert_eq!(
        rootfs["usr/local/bin/kaddons-metrics-server"],
        std::fs::read(small_binary()).unwrap()
    );
    let passwd = String::from_utf8(rootfs["etc/passwd"].clone()).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    let group = String::from_utf8(rootfs["etc/group"].clone()).unwrap();
    assert!(group.contains("nonroot:x:65532:"), "{group}");
}

#[test]
fn two_builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _) = build(dir.path(), "one.tar");
    let (two, _) = build(dir.path(), "two.tar");
    assert_eq!(sha(&one), sha(&two));
    assert!(one == two);
}

#[test]
fn build_errors_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = kaddons(dir.path())
            .args(["image", "build", "metrics-server"])
            .args(args)
            .arg("--out")
            .arg(dir.path().join("x.tar"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bin = small_binary();
    let bin = bin.to_str().unwrap();
    let err = run(&["--binary", bin, "--ca-certificates", "/nonexistent/ca.crt"]);
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = run(&["--binary", script.to_str().unwrap()]);
    assert!(err.contains("not an ELF executable"), "{err}");
    let err = run(&["--binary", bin, "--platform", "linux/arm64"]);
    assert!(err.contains("not linux/arm64"), "{err}");
    let err = run(&["--platform", "linux/arm64"]);
    assert!(err.contains("--binary"), "{err}");
    let err = run(&["--platform", "windows/amd64"]);
    assert!(err.contains("linux/amd64 or linux/arm64"), "{err}");
}

/// A directory with stand-in `kind`, `minikube`, `k3d` and `ctr` that append their argv to a log.
fn stand_in_tools(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("argv.log");
    for tool in ["kind", "minikube", "k3d", "ctr"] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\necho loaded\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (bin, log)
}

#[test]
fn load_runs_kind_minikube_k3d_and_ctr_with_these_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, log) = stand_in_tools(dir.path());
    let archive = dir.path().join("ms.tar");
    std::fs::write(&archive, b"archive").unwrap();
    let a = archive.display().to_string();
    for into in [
        "kind=dev",
        "kind",
        "minikube=p1",
        "k3d=dev",
        "k3d",
        "containerd",
    ] {
        kaddons(dir.path())
            .env("PATH", &bin)
            .args(["image", "load", &a, "--into", into])
            .assert()
            .success();
    }
    // Without --into: the kind cluster of the kubeconfig context.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-blue\nclusters:\n- name: kind-blue\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: kind-blue\n  context: {cluster: kind-blue, user: kind-blue}\nusers:\n- name: kind-blue\n  user: {}\n",
    )
    .unwrap();
    kaddons(dir.path())
        .env("PATH", &bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["image", "load", &a])
        .assert()
        .success();
    // And the k3d cluster of a k3d context.
    let k3d = dir.path().join("k3d.kubeconfig");
    std::fs::write(
        &k3d,
        "apiVersion: v1\nkind: Config\ncurrent-context: k3d-red\nclusters:\n- name: k3d-red\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: k3d-red\n  context: {cluster: k3d-red, user: admin@k3d-red}\nusers:\n- name: admin@k3d-red\n  user: {}\n",
    )
    .unwrap();
    kaddons(dir.path())
        .env("PATH", &bin)
        .arg("--kubeconfig")
        .arg(&k3d)
        .args(["image", "load", &a])
        .assert()
        .success();
    let seen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        seen.lines().collect::<Vec<_>>(),
        [
            format!("kind load image-archive {a} --name dev"),
            format!("kind load image-archive {a} --name kind"),
            format!("minikube image load {a} -p p1"),
            format!("k3d image import {a} --cluster dev"),
            format!("k3d image import {a} --cluster k3s-default"),
            format!("ctr -n k8s.io images import {a}"),
            format!("kind load image-archive {a} --name blue"),
            format!("k3d image import {a} --cluster red"),
        ]
    );
}

#[test]
fn load_names_a_missing_tool_and_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("ms.tar");
    std::fs::write(&archive, b"archive").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (into, tool, how) in [
        ("kind=dev", "`kind` is not on PATH", "kind.sigs.k8s.io"),
        (
            "minikube",
            "`minikube` is not on PATH",
            "minikube.sigs.k8s.io",
        ),
        ("k3d", "`k3d` is not on PATH", "k3d.io"),
        (
            "containerd",
            "`ctr` is not on PATH",
            "apt-get install containerd",
        ),
    ] {
        let out = kaddons(dir.path())
            .env("PATH", &empty)
            .args(["image", "load"])
            .arg(&archive)
            .args(["--into", into])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(tool) && err.contains(how), "{err}");
    }
    let out = kaddons(dir.path())
        .args(["image", "load", "/nonexistent.tar", "--into", "kind"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent.tar") && err.contains("kaddons image build"),
        "{err}"
    );
    let out = kaddons(dir.path())
        .args(["image", "load"])
        .arg(&archive)
        .args(["--into", "docker"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kind[=CLUSTER]"), "{err}");
    // No --into and no kind/minikube context.
    let out = kaddons(dir.path())
        .args(["image", "load"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--into"), "{err}");
}
