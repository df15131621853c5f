//! The seed's whole story on a real node (`kaddons_testkit::node`): kubelet, kube-proxy,
//! containerd, runc and CNI in a network namespace of their own, joined to a real control
//! plane. No registry is reachable, so the images are built here: the pause image and
//! upstream metrics-server v0.8.0 (its binary built from its Go module) with
//! `kaddons::image::archive`, and kaddons-metrics-server with `kaddons image build` and
//! `kaddons image load --into containerd`, as a user does.
//!
//! - both implementations: enable, the real `kubectl top node`, status, list, disable, nothing
//!   left;
//! - the seed's failures, for real: an image on the frozen k8s.gcr.io (ErrImagePull), the
//!   kubelet's self-signed serving certificate with `--profile generic` (readiness 500, the
//!   x509 IP SANs line), an APIService the aggregator cannot reach (FailedDiscoveryCheck),
//!   and `kaddons doctor` on each.
//!
//! One node serves every test here; [`node`] hands it to one test at a time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kaddons::image::archive::{self, Arch, Entry, ImageConfig};
use kaddons_testkit::node::{Node, NODE_NAME, PAUSE_IMAGE, POD_SUBNET};

use crate::e2e::{cycle, Cluster};

/// The image name the upstream binary is tagged with: its true version.
const UPSTREAM_IMAGE: &str = "registry.k8s.io/metrics-server/metrics-server:v0.8.0";
/// The image of `implementation=builtin` (addons/metrics-server/addon.yaml).
const BUILTIN_IMAGE: &str = "docker.io/kaddons/metrics-server:0.1.0";

/// The shared node and the right to use it alone.
fn node() -> Option<(MutexGuard<'static, ()>, &'static Node)> {
    static ONE: Mutex<()> = Mutex::new(());
    let guard = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let node = kaddons_testkit::node::shared(images)?;
    Some((guard, node))
}

/// Writes a one-layer image of a static binary (as upstream's distroless-static images are).
fn write_image(
    out: &Path,
    reference: &str,
    binary: &Path,
    path: &str,
    user: &str,
) -> Result<(), String> {
    let data = std::fs::read(binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    let arch = Arch::host().ok_or("this machine is neither amd64 nor arm64")?;
    let config = ImageConfig {
        reference: reference.to_string(),
        arch,
        entrypoint: vec![format!("/{path}")],
        user: user.to_string(),
        exposed_ports: Vec::new(),
        env: Vec::new(),
        labels: Default::default(),
    };
    let written = archive::write(
        &config,
        &[Entry::file(path, 0o755, data), Entry::dir("tmp", 0o1777)],
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(out, &written.bytes).map_err(|e| format!("writing {}: {e}", out.display()))
}

fn images() -> Result<Vec<PathBuf>, String> {
    let dir = std::env::temp_dir().join(format!("kaddons-node-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pause = kaddons_testkit::node::pause_binary().map_err(|e| e.to_string())?;
    let pause_tar = dir.join("pause.tar");
    write_image(&pause_tar, PAUSE_IMAGE, &pause, "pause", "65535:65535")?;
    let upstream = kaddons_testkit::aggregation::upstream_bin_dir().join("metrics-server");
    let upstream_tar = dir.join("metrics-server-v0.8.0.tar");
    write_image(
        &upstream_tar,
        UPSTREAM_IMAGE,
        &upstream,
        "metrics-server",
        "65534:65534",
    )?;
    Ok(vec![pause_tar, upstream_tar])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A kaddons run against the node's cluster, printed for the test log.
fn kaddons(node: &Node, args: &[&str]) -> crate::real::Run {
    kaddons_env(node, args, &[])
}

fn kaddons_env(node: &Node, args: &[&str], env: &[(&str, &str)]) -> crate::real::Run {
    let started = Instant::now();
    let mut cmd = crate::real::kaddons_command(&node.cp().admin_kubeconfig);
    for (k, v) in env {
        // An empty value removes the variable (KADDONS_SKIP_IMAGE_CHECK: check images).
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let out = cmd.args(args).output().expect("running kaddons");
    let run = crate::real::Run {
        code: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    };
    eprintln!(
        "$ kaddons {} -> {:?} in {:.1}s\n{}{}",
        args.join(" "),
        run.code,
        started.elapsed().as_secs_f64(),
        run.stdout,
        run.stderr
    );
    run
}

/// Disables metrics-server when a test stops half way, so the next test finds none.
struct Disable<'n>(&'n Node);

impl Drop for Disable<'_> {
    fn drop(&mut self) {
        let run = kaddons(self.0, &["disable", "metrics-server", "--timeout", "2m"]);
        if run.code != Some(0) {
            eprintln!("disable after the test failed: {}", run.stderr);
        }
    }
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "{n:?} missing from:\n{haystack}");
    }
}

/// The kubelet's and containerd's log tails, for a failing test's output.
fn node_logs(node: &Node) -> String {
    format!(
        "--- kubelet\n{}\n--- containerd\n{}",
        node.log_tail("kubelet", 20),
        node.log_tail("containerd", 10)
    )
}

#[test]
fn upstream_metrics_server_enable_top_status_list_disable_on_a_real_node() {
    let Some((_one, node)) = node() else { return };
    let cluster = Cluster::at(&node.cp().admin_kubeconfig);
    cycle(
        &cluster,
        &[
            "--profile",
            "kubeadm",
            "--image",
            &format!("metrics-server={UPSTREAM_IMAGE}"),
        ],
    );
    assert!(
        node.log_tail("kubelet", 2000).contains("metrics-server"),
        "{}",
        node_logs(node)
    );
}

#[test]
fn builtin_metrics_server_from_kaddons_image_build_and_load_on_a_real_node() {
    let Some((_one, node)) = node() else { return };
    // Not on the node yet: the pre-flight finds it on no node (Node.status.images, from the
    // real kubelet) and stops before applying. Its registry lookup goes to a stand-in on
    // 127.0.0.1, so nothing leaves the machine.
    let registry = kaddons_testkit::standin::StandIn::start(|_| {
        (404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.into())
    });
    let host = registry
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let absent = format!("{host}/kaddons/metrics-server:0.1.0");
    let refused = kaddons_env(
        node,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--set",
            "implementation=builtin",
            "--image",
            &format!("builtin={absent}"),
        ],
        &[("KADDONS_SKIP_IMAGE_CHECK", "")],
    );
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert_contains(
        &refused.stderr,
        &[&absent, "404", "nothing was applied", "kaddons image load"],
    );
    let sa = node.cp().kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "serviceaccount",
        "metrics-server",
        "--ignore-not-found",
        "-o",
        "name",
    ]);
    assert_eq!(sa.trim(), "", "the refused enable applied something");

    // What a user does: build the archive (no Docker), load it into the node's containerd.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("kaddons-metrics-server.tar");
    let binary =
        kaddons_testkit::bins::workspace_bin("kaddons-metrics-server", "kaddons-metrics-server");
    let archive_s = archive.display().to_string();
    kaddons(
        node,
        &[
            "image",
            "build",
            "metrics-server",
            "--binary",
            &binary.display().to_string(),
            "--out",
            &archive_s,
        ],
    )
    .expect(0);
    let address = node.containerd_address.display().to_string();
    let load = kaddons_env(
        node,
        &["image", "load", &archive_s, "--into", "containerd"],
        &[("CONTAINERD_ADDRESS", &address)],
    )
    .expect(0);
    assert!(load.stderr.contains("loaded"), "{}", load.stderr);
    let listed = node.ctr(&["images", "ls", "-q"]).unwrap();
    assert!(
        text(&listed.stdout).lines().any(|l| l == BUILTIN_IMAGE),
        "ctr images ls: {}",
        text(&listed.stdout)
    );
    // The kubelet reports it in Node.status.images (it lists images every node status
    // update), which is where the pre-flight looks.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let images = node.cp().kubectl_ok(&[
            "get",
            "node",
            NODE_NAME,
            "-o",
            "jsonpath={.status.images[*].names}",
        ]);
        if images.contains(BUILTIN_IMAGE) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not in Node.status.images: {images}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    // Now the pre-flight passes on the node's word alone (no registry is asked: the image is
    // on every node), and the whole cycle runs on the loaded image.
    let checked = kaddons_env(
        node,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--set",
            "implementation=builtin",
            "--dry-run",
        ],
        &[("KADDONS_SKIP_IMAGE_CHECK", "")],
    );
    assert_eq!(checked.code, Some(0), "{}", checked.stderr);
    let cluster = Cluster::at(&node.cp().admin_kubeconfig);
    cycle(
        &cluster,
        &["--profile", "kubeadm", "--set", "implementation=builtin"],
    );
}

/// (a) The image the seed's guide named, on the frozen k8s.gcr.io: the node cannot pull it
/// (here: no route out of the namespace), the pod ends in ErrImagePull / ImagePullBackOff,
/// and `enable` exits 1 naming the image and the fix; doctor says the same.
#[test]
fn an_image_on_an_unreachable_registry_fails_enable_with_err_image_pull() {
    let Some((_one, node)) = node() else { return };
    let _disable = Disable(node);
    let frozen = "k8s.gcr.io/metrics-server/metrics-server:v0.3.7";
    let run = kaddons(
        node,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--image",
            &format!("metrics-server={frozen}"),
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stderr, node_logs(node));
    // The kubelet's own reason and message: the pull really failed on the node.
    assert_contains(
        &run.stderr,
        &[
            &format!("cannot pull image {frozen}"),
            "network is unreachable",
            "--image-mirror",
            "kaddons image load",
        ],
    );
    assert!(
        run.stderr.contains("(ErrImagePull: ") || run.stderr.contains("(ImagePullBackOff: "),
        "{}",
        run.stderr
    );
    let doctor = kaddons(node, &["doctor"]);
    assert_eq!(doctor.code, Some(1), "{}", doctor.stdout);
    let all = format!("{}{}", doctor.stdout, doctor.stderr);
    assert_contains(&all, &[frozen]);
}

/// (b) The kubelet's own self-signed serving certificate has no IP SANs. With `--profile
/// generic` (no `--kubelet-insecure-tls`) upstream cannot scrape, its readiness answers 500,
/// and its log has the x509 line; kaddons names the cause and `kubeletInsecureTLS`.
/// Enabling again with the profile for such clusters fixes it.
#[test]
fn a_kubelet_certificate_without_ip_sans_is_named_and_the_right_profile_fixes_it() {
    let Some((_one, node)) = node() else { return };
    let _disable = Disable(node);
    let image = format!("metrics-server={UPSTREAM_IMAGE}");
    let run = kaddons(
        node,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "generic",
            "--image",
            &image,
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stderr, node_logs(node));
    let logs = node.cp().kubectl_ok(&[
        "-n",
        "kube-system",
        "logs",
        "deploy/metrics-server",
        "--tail=200",
    ]);
    assert_contains(
        &logs,
        &[&format!(
            "x509: cannot validate certificate for {} because it doesn't contain any IP SANs",
            node.ip
        )],
    );
    assert_contains(&run.stderr, &["IP SANs", "kubeletInsecureTLS"]);
    let doctor = kaddons(node, &["doctor"]);
    assert_eq!(doctor.code, Some(1), "{}", doctor.stdout);
    assert_contains(
        &format!("{}{}", doctor.stdout, doctor.stderr),
        &["IP SANs", "kubeletInsecureTLS"],
    );
    kaddons(
        node,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--image",
            &image,
        ],
    )
    .expect(0);
}

/// (c) The aggregator cannot reach the pod: inside the node's namespace, packets addressed
/// to a Service ClusterIP (what the aggregator dials) are dropped, while the kubelet's probes
/// (to the pod IP) still pass. The APIService reports FailedDiscoveryCheck and kaddons points
/// at `hostNetwork.enabled=true`; doctor reports it.
#[test]
fn an_apiservice_the_aggregator_cannot_reach_gets_the_host_network_hint() {
    let Some((_one, node)) = node() else { return };
    let _disable = Disable(node);
    let rule = [
        "OUTPUT",
        "-d",
        POD_SUBNET,
        "-m",
        "conntrack",
        "--ctdir",
        "ORIGINAL",
        "--ctorigdst",
        "10.96.0.0/16",
        "-j",
        "DROP",
    ];
    let mut add = vec!["-I"];
    add.extend(rule);
    let out = node.in_netns("iptables", &add).unwrap();
    assert!(out.status.success(), "iptables: {}", text(&out.stderr));
    struct Unblock<'n>(&'n Node, Vec<&'static str>);
    impl Drop for Unblock<'_> {
        fn drop(&mut self) {
            let mut del = vec!["-D"];
            del.extend(self.1.iter().copied());
            let _ = self.0.in_netns("iptables", &del);
        }
    }
    let _unblock = Unblock(node, rule.to_vec());
    let run = kaddons(
        node,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--image",
            &format!("metrics-server={UPSTREAM_IMAGE}"),
            "--timeout",
            "90s",
        ],
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stderr, node_logs(node));
    assert_contains(
        &run.stderr,
        &["FailedDiscoveryCheck", "hostNetwork.enabled=true"],
    );
    let doctor = kaddons(node, &["doctor"]);
    assert_eq!(doctor.code, Some(1), "{}", doctor.stdout);
    assert_contains(
        &format!("{}{}", doctor.stdout, doctor.stderr),
        &["FailedDiscoveryCheck", "hostNetwork.enabled=true"],
    );
}

/// The node runs a pod: the scheduler binds it, containerd starts it from the imported pause
/// image, and CNI gives it an address of the pod subnet.
#[test]
fn the_node_runs_pods_on_its_bridge() {
    let Some((_one, node)) = node() else { return };
    let ns = "kaddons-node-smoke";
    let _ = node.cp().kubectl(&["create", "namespace", ns]);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pause, namespace: {ns}}}\nspec:\n  containers: [{{name: pause, image: \"{PAUSE_IMAGE}\", imagePullPolicy: Never}}]\n"
    );
    // The namespace's default ServiceAccount comes from kube-controller-manager, a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = node.cp().kubectl_stdin(&["apply", "-f", "-"], &pod);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = node.cp().kubectl(&[
        "-n",
        ns,
        "wait",
        "pod/pause",
        "--for=condition=Ready",
        "--timeout=90s",
    ]);
    assert!(
        out.unwrap().status.success(),
        "the pause pod did not become Ready\n{}",
        node_logs(node)
    );
    let ip = node.cp().kubectl_ok(&[
        "-n",
        ns,
        "get",
        "pod",
        "pause",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    assert!(ip.starts_with("10.244.0."), "pod IP {ip}");
    let _ = node
        .cp()
        .kubectl(&["delete", "namespace", ns, "--wait=false"]);
}
