//! kubectl-grade connections: kaddons reaches every API server kubectl reaches with the same
//! kubeconfig and refuses the ones kubectl refuses, side by side against a real kube-apiserver
//! serving certificates made with openssl the way people make them (issue 12 point 4; kube-rs
//! issue 1767 is the bug this pins).
//!
//! kubectl runs `get --raw` (`/version` for the TLS shapes, a namespaced list where the
//! credentials matter); kaddons runs `list -o json`, which reached the cluster when no addon's
//! state is `unknown`.
//!
//! The harness's own kubeconfigs trust what makes each serving certificate verifiable
//! (`Options::serving_cert`), so it can tell when the API server is ready.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kaddons_testkit::cluster::{ControlPlane, FrontProxy, Options};

use super::{kaddons_with, Run};

/// A static token of the `--token-auth-file` (group system:masters).
const TOKEN: &str = "kaddons-tls-test-token";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("running openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req -x509 -newkey rsa:2048 -nodes`: self-signed, `CA:TRUE` (openssl's default).
fn self_signed(dir: &Path, name: &str, cn: &str, san: Option<&str>) -> (PathBuf, PathBuf) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let subj = format!("/CN={cn}");
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", &key, "-out",
        &crt, "-subj", &subj,
    ];
    let ext = san.map(|s| format!("subjectAltName={s}"));
    if let Some(ext) = &ext {
        args.extend(["-addext", ext]);
    }
    openssl(dir, &args);
    (dir.join(crt), dir.join(key))
}

/// A leaf signed by `ca` the classic way (`req` + `x509 -req -extfile`): no basicConstraints.
fn signed(
    dir: &Path,
    name: &str,
    ca: &(PathBuf, PathBuf),
    cn: &str,
    san: &str,
) -> (PathBuf, PathBuf) {
    let (crt, key, csr, ext) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).unwrap();
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj,
        ],
    );
    let (ca_crt, ca_key) = (ca.0.display().to_string(), ca.1.display().to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
            "-extfile",
            &ext,
        ],
    );
    (dir.join(crt), dir.join(key))
}

/// OpenSSL 3's one-liner `req -x509 -CA ca.crt -CAkey ca.key`: signed by the CA, and `CA:TRUE`
/// like every `req -x509` certificate.
fn signed_ca_true(
    dir: &Path,
    name: &str,
    ca: &(PathBuf, PathBuf),
    cn: &str,
    san: &str,
) -> (PathBuf, PathBuf) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let (subj, ext) = (format!("/CN={cn}"), format!("subjectAltName={san}"));
    let (ca_crt, ca_key) = (ca.0.display().to_string(), ca.1.display().to_string());
    openssl(
        dir,
        &[
            "req", "-x509", "-CA", &ca_crt, "-CAkey", &ca_key, "-newkey", "rsa:2048", "-nodes",
            "-days", "2", "-keyout", &key, "-out", &crt, "-subj", &subj, "-addext", &ext,
        ],
    );
    (dir.join(crt), dir.join(key))
}

/// A control plane serving `serving`, whose harness kubeconfigs trust `harness_trust` (the
/// self-signed certificate itself, or its CA) so the harness can see it become ready.
fn serving(
    serving: &(PathBuf, PathBuf),
    harness_trust: &Path,
    extra: &[String],
) -> Option<ControlPlane> {
    ControlPlane::own(Options {
        serving_cert: Some((
            serving.0.clone(),
            serving.1.clone(),
            harness_trust.to_path_buf(),
        )),
        controller_manager: false,
        front_proxy: FrontProxy::Generated,
        apiserver_args: extra.to_vec(),
        ..Options::default()
    })
}

/// A kubeconfig of one cluster `tls-test` (`cluster` and `user` are YAML lines, indented by
/// the caller's four spaces).
fn kubeconfig(
    dir: &Path,
    name: &str,
    server: &str,
    cluster: &[String],
    user: &[String],
) -> PathBuf {
    let mut text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tls-test\n  cluster:\n    server: {server}\n"
    );
    for l in cluster {
        text.push_str(&format!("    {l}\n"));
    }
    text.push_str("users:\n- name: tls-user\n  user:");
    if user.is_empty() {
        text.push_str(" {}\n");
    } else {
        text.push('\n');
        for l in user {
            text.push_str(&format!("    {l}\n"));
        }
    }
    text.push_str("contexts:\n- name: tls-test\n  context:\n    cluster: tls-test\n    user: tls-user\ncurrent-context: tls-test\n");
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

fn ca_file(path: &Path) -> Vec<String> {
    vec![format!("certificate-authority: {}", path.display())]
}

fn ca_data(path: &Path) -> Vec<String> {
    let out = Command::new("base64")
        .arg("-w0")
        .arg(path)
        .output()
        .expect("base64");
    vec![format!(
        "certificate-authority-data: {}",
        String::from_utf8_lossy(&out.stdout)
    )]
}

fn admin(cp: &ControlPlane) -> Vec<String> {
    vec![
        format!("client-certificate: {}", cp.pki.admin_crt.display()),
        format!("client-key: {}", cp.pki.admin_key.display()),
    ]
}

/// What kubectl and kaddons made of one kubeconfig.
struct SideBySide {
    kubectl_ok: bool,
    kubectl_stderr: String,
    kaddons_reached: bool,
    kaddons: Run,
}

fn side_by_side(cp: &ControlPlane, kc: &Path, raw: &str) -> SideBySide {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(cp.kubectl_bin())
        .env("HOME", home.path())
        .arg("--kubeconfig")
        .arg(kc)
        .args(["get", "--raw", raw, "--request-timeout=20s"])
        .stdin(Stdio::null())
        .output()
        .expect("running kubectl");
    let kaddons = kaddons_with(kc, &["list", "-o", "json"]);
    assert_eq!(
        kaddons.code,
        Some(0),
        "{}\n{}",
        kaddons.stdout,
        kaddons.stderr
    );
    let items = kaddons.json();
    let items = items["items"].as_array().expect("list -o json has items");
    assert!(!items.is_empty());
    let kaddons_reached = items.iter().all(|i| i["status"] != "unknown");
    SideBySide {
        kubectl_ok: out.status.success(),
        kubectl_stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        kaddons_reached,
        kaddons,
    }
}

/// Both reach the server (`true`) or both refuse (`false`); the kaddons run for more checks.
fn agree(cp: &ControlPlane, kc: &Path, raw: &str, reach: bool) -> Run {
    let s = side_by_side(cp, kc, raw);
    let kubeconfig = std::fs::read_to_string(kc).unwrap();
    assert_eq!(
        (s.kubectl_ok, s.kaddons_reached),
        (reach, reach),
        "kubectl ok: {}, kaddons reached: {} (expected both {reach})\nkubeconfig:\n{kubeconfig}\nkubectl stderr:\n{}\nkaddons stderr:\n{}",
        s.kubectl_ok,
        s.kaddons_reached,
        s.kubectl_stderr,
        s.kaddons.stderr
    );
    s.kaddons
}

#[test]
fn a_self_signed_ca_true_serving_certificate_is_its_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = self_signed(d, "self", "kube-apiserver", Some("IP:127.0.0.1"));
    let other = self_signed(d, "other", "other-ca", None);
    let Some(cp) = serving(&cert, &cert.0, &[]) else {
        return;
    };
    let _guard = cp.failure_guard();

    // The certificate is the CA: webpki's CaUsedAsEndEntity, Go's pool treats it as a root.
    let kc = kubeconfig(d, "file", &cp.server, &ca_file(&cert.0), &admin(&cp));
    agree(&cp, &kc, "/version", true);
    let kc = kubeconfig(d, "data", &cp.server, &ca_data(&cert.0), &admin(&cp));
    agree(&cp, &kc, "/version", true);

    // insecure-skip-tls-verify (kubectl refuses it together with a CA, so alone).
    let kc = kubeconfig(
        d,
        "insecure",
        &cp.server,
        &["insecure-skip-tls-verify: true".into()],
        &admin(&cp),
    );
    agree(&cp, &kc, "/version", true);

    // A wrong CA: both refuse, and kaddons names the certificate and the CA.
    let kc = kubeconfig(d, "wrong", &cp.server, &ca_file(&other.0), &admin(&cp));
    let r = agree(&cp, &kc, "/version", false);
    let want = format!(
        "the server's certificate CN=kube-apiserver (self-signed) does not verify against certificate-authority {} of cluster \"tls-test\": unknown issuer",
        other.0.display()
    );
    assert!(r.stderr.contains(&want), "{want}\nnot in:\n{}", r.stderr);
    assert!(
        r.stderr.contains("kubectl would refuse it too"),
        "{}",
        r.stderr
    );
    let kc = kubeconfig(d, "wrong-data", &cp.server, &ca_data(&other.0), &admin(&cp));
    let r = agree(&cp, &kc, "/version", false);
    assert!(
        r.stderr.contains(
            "does not verify against the certificate-authority-data of cluster \"tls-test\""
        ),
        "{}",
        r.stderr
    );

    // Trusted, but checked for another name: refused by both, the names said.
    let mut cluster = ca_file(&cert.0);
    cluster.push("tls-server-name: kubernetes.default".into());
    let kc = kubeconfig(d, "misnamed", &cp.server, &cluster, &admin(&cp));
    let r = agree(&cp, &kc, "/version", false);
    assert!(
        r.stderr
            .contains("it is not valid for kubernetes.default (it names IP:127.0.0.1)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_leaf_signed_by_a_ca_with_every_kind_of_credential() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = self_signed(d, "ca", "my-ca", None);
    let leaf = signed(d, "leaf", &ca, "kube-apiserver", "IP:127.0.0.1");
    // Only for the name kubernetes.default, served when a client asks for it (SNI).
    let dns = signed(
        d,
        "dns",
        &ca,
        "kube-apiserver-dns",
        "DNS:kubernetes.default",
    );
    let other = self_signed(d, "other", "other-ca", None);
    let tokens = d.join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{TOKEN},tok-user,tok-uid,\"system:masters\"\n"),
    )
    .unwrap();
    let token_file = d.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let plugin = d.join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        format!("#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(cp) = serving(
        &leaf,
        &ca.0,
        &[
            format!("--token-auth-file={}", tokens.display()),
            format!(
                "--tls-sni-cert-key={},{}:kubernetes.default",
                dns.0.display(),
                dns.1.display()
            ),
        ],
    ) else {
        return;
    };
    let _guard = cp.failure_guard();

    // The CA, the leaf itself (Go: a pooled certificate is a chain of its own), a wrong CA.
    let kc = kubeconfig(d, "ca", &cp.server, &ca_file(&ca.0), &admin(&cp));
    agree(&cp, &kc, "/version", true);
    let kc = kubeconfig(d, "direct", &cp.server, &ca_file(&leaf.0), &admin(&cp));
    agree(&cp, &kc, "/version", true);
    let kc = kubeconfig(d, "wrong", &cp.server, &ca_file(&other.0), &admin(&cp));
    let r = agree(&cp, &kc, "/version", false);
    assert!(
        r.stderr.contains("the server's certificate CN=kube-apiserver (issued by CN=my-ca) does not verify against certificate-authority"),
        "{}",
        r.stderr
    );

    // tls-server-name: a certificate for DNS:kubernetes.default only, reached at 127.0.0.1.
    let mut cluster = ca_file(&ca.0);
    cluster.push("tls-server-name: kubernetes.default".into());
    let kc = kubeconfig(d, "server-name", &cp.server, &cluster, &admin(&cp));
    agree(&cp, &kc, "/version", true);
    let mut cluster = ca_file(&dns.0);
    cluster.push("tls-server-name: kubernetes.default".into());
    let kc = kubeconfig(d, "server-name-direct", &cp.server, &cluster, &admin(&cp));
    agree(&cp, &kc, "/version", true);

    // Credentials, where they matter: a list in kube-system needs an authorized user.
    let raw = "/apis/apps/v1/namespaces/kube-system/deployments?limit=1";
    let creds: [(&str, Vec<String>, bool); 5] = [
        ("client-cert", admin(&cp), true),
        ("token", vec![format!("token: {TOKEN}")], true),
        (
            "token-file",
            vec![format!("tokenFile: {}", token_file.display())],
            true,
        ),
        (
            "exec",
            vec![
                "exec:".into(),
                "  apiVersion: client.authentication.k8s.io/v1beta1".into(),
                format!("  command: {}", plugin.display()),
                "  interactiveMode: Never".into(),
            ],
            true,
        ),
        ("bad-token", vec!["token: not-a-valid-token".into()], false),
    ];
    for (name, user, reach) in creds {
        let kc = kubeconfig(d, name, &cp.server, &ca_file(&ca.0), &user);
        let r = agree(&cp, &kc, raw, reach);
        if !reach {
            assert!(
                r.stderr.contains("401 Unauthorized"),
                "{name}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn openssl_3_req_x509_with_a_ca_makes_a_ca_true_leaf_that_kubectl_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = self_signed(d, "ca", "my-ca", None);
    let leaf = signed_ca_true(d, "leaf", &ca, "kube-apiserver", "IP:127.0.0.1");
    let Some(cp) = serving(&leaf, &ca.0, &[]) else {
        return;
    };
    let _guard = cp.failure_guard();
    let kc = kubeconfig(d, "ca", &cp.server, &ca_file(&ca.0), &admin(&cp));
    agree(&cp, &kc, "/version", true);
    let kc = kubeconfig(d, "direct", &cp.server, &ca_file(&leaf.0), &admin(&cp));
    agree(&cp, &kc, "/version", true);
}
