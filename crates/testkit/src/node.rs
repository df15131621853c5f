//! A real one-node Kubernetes cluster for tests: the control plane of [`crate::cluster`] plus
//! kube-scheduler, and a node made of kubelet and kube-proxy (the same v1.34.4 build), Debian's
//! containerd and runc, and Debian's CNI plugins (bridge, host-local, portmap, loopback).
//!
//! Everything runs inside one network namespace the harness creates (`kaddons-<pid>-<n>`),
//! reached from the host through a veth pair: the API server, the kubelet and every pod have
//! addresses of that namespace only, and the namespace has no default route, so a pull from a
//! registry fails at once with "network is unreachable" and nothing leaves the machine. As on a
//! kubeadm node, kube-apiserver runs on the node's network, kube-proxy (iptables mode) serves
//! the `kubernetes` Service and the ClusterIPs the aggregator dials, and the kubelet's serving
//! certificate is its own self-signed one (no IP SANs).
//!
//! What differs from a stock node, each because of this machine (the note of #14 has the
//! errors): the kubelet runs with `failCgroupV1: false` (the VM mounts cgroup v1),
//! `cgroupsPerQOS: false` and no enforced allocatable; containerd has
//! `restrict_oom_score_adj` because the VM withholds CAP_SYS_RESOURCE, without which runc
//! cannot lower a sandbox's oom_score_adj to -998 ("can't get final child's PID from pipe").
//!
//! Images: no registry is reachable, so [`Node::import`] puts archives into containerd
//! (`ctr -n k8s.io images import`); the pause image is built from `pause/` (Go) by
//! [`pause_binary`] and written by the caller.
//!
//! Cleanup: dropping the [`Node`] stops kube-proxy, the kubelet and containerd, kills and
//! deletes every container through runc's state dir of this node, stops the shims, unmounts
//! what the kubelet and containerd mounted under the node's dir, removes the pods' network
//! namespaces and the node's namespace (its iptables rules go with it), and restores the
//! kernel settings the kubelet changes. A test process killed before that leaves a dir whose
//! owner is dead; the next start cleans it the same way ([`cleanup_dir`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::aggregation::Netns;
use crate::cluster::{ControlPlane, InNetns, Options, Unavailable};

/// The node's name (its Node object).
pub const NODE_NAME: &str = "kaddons-node";
/// The sandbox image containerd uses (built here, never pulled).
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The pods' addresses (host-local IPAM on the bridge `cni0`).
pub const POD_SUBNET: &str = "10.244.0.0/24";
/// The Service ClusterIP range (kube-apiserver's `--service-cluster-ip-range`).
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// The kernel settings the kubelet sets when `protectKernelDefaults` is off; read before it
/// starts and written back when the node stops.
const KUBELET_SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

pub struct Node {
    cp: Option<ControlPlane>,
    /// The node's InternalIP (the namespace's address).
    pub ip: Ipv4Addr,
    /// containerd's socket (`ctr --address`).
    pub containerd_address: PathBuf,
    /// `<control plane dir>/node`.
    pub dir: PathBuf,
    netns: Option<Netns>,
    sysctls: Vec<(String, String)>,
}

/// What the tests need to run a node.
fn tools() -> Result<(), String> {
    let mut missing = Vec::new();
    for tool in [
        "containerd",
        "runc",
        "ctr",
        "ip",
        "iptables",
        "mount",
        "umount",
    ] {
        if which(tool).is_none() {
            missing.push(tool);
        }
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        missing.push("/usr/lib/cni/bridge");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a real node needs {} (apt-get install containerd runc containernetworking-plugins iptables iproute2)",
            missing.join(", ")
        ))
    }
}

/// `tool` on PATH, or in /usr/sbin and /sbin (where Debian puts runc, ip and iptables, and
/// which a user's PATH may lack).
fn which(tool: &str) -> Option<PathBuf> {
    which::which(tool).ok().or_else(|| {
        ["/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
    })
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Node {
    /// Starts the control plane and the node in a new network namespace, imports `images`
    /// (archives; the pause image among them) and waits until the Node is Ready. `Err` of
    /// [`Unavailable::NoGo`] when Go is missing (a skip, except under `CI=true`).
    pub fn start(images: &[PathBuf]) -> Result<Node, Unavailable> {
        let failed = Unavailable::Failed;
        // A missing node tool is skipped like a missing Go (and fails under CI=true).
        tools().map_err(Unavailable::NoGo)?;
        Netns::remove_stale();
        let netns = Netns::create().map_err(failed)?;
        // The namespace has no default route, so a connect(2) to a Service ClusterIP would
        // fail with "network is unreachable" before kube-proxy's DNAT in OUTPUT could rewrite
        // it (a real node routes it by its default route). The service range goes to the
        // namespace's loopback, with the node's address as source: rewritten packets are
        // routed again to the pods, the rest go nowhere. (No dummy device: this kernel has
        // no modules.)
        let ns_ip = netns.ns_ip.to_string();
        run(
            "ip",
            &[
                "-n",
                &netns.name,
                "route",
                "add",
                SERVICE_CIDR,
                "dev",
                "lo",
                "src",
                &ns_ip,
            ],
        )
        .map_err(Unavailable::Failed)?;
        let in_netns = InNetns {
            name: netns.name.clone(),
            ip: netns.ns_ip,
        };
        // A node of its own: no default route out of the namespace.
        let cp = ControlPlane::start(Options {
            netns: Some(in_netns),
            scheduler: true,
            ..Options::default()
        })?;
        let dir = cp.dir.join("node");
        let mut node = Node {
            ip: netns.ns_ip,
            containerd_address: dir.join("containerd.sock"),
            dir,
            cp: Some(cp),
            netns: Some(netns),
            sysctls: Vec::new(),
        };
        node.start_node(images)
            .map_err(|e| Unavailable::Failed(format!("{e}\n{}", node.cp().log_tails(30))))?;
        Ok(node)
    }

    pub fn cp(&self) -> &ControlPlane {
        self.cp.as_ref().expect("the control plane runs until drop")
    }

    fn start_node(&mut self, images: &[PathBuf]) -> Result<(), String> {
        let t0 = Instant::now();
        let dir = self.dir.clone();
        for sub in [
            "cni",
            "containerd",
            "kubelet",
            "kubelet-pki",
            "pod-logs",
            "plugins",
        ] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("creating {}: {e}", dir.join(sub).display()))?;
        }
        let d = |p: &str| dir.join(p).display().to_string();
        let ip = self.ip;
        let cp = self.cp.as_ref().ok_or("no control plane")?;
        std::fs::write(
            dir.join("cni/10-kaddons.conflist"),
            format!(
                r#"{{"cniVersion":"0.4.0","name":"kaddons","plugins":[
 {{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,
   "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{POD_SUBNET}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}},
 {{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}
"#,
                d("cni-ipam")
            ),
        )
        .map_err(|e| format!("writing the CNI config: {e}"))?;
        std::fs::write(
            dir.join("containerd/config.toml"),
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
oom_score = 0
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This VM withholds CAP_SYS_RESOURCE: without this runc cannot set a sandbox's
  # oom_score_adj of -998 and every pod fails to start.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "{runc}"
"#,
                root = d("containerd/root"),
                state = d("containerd/state"),
                sock = self.containerd_address.display(),
                opt = d("containerd/opt"),
                cni = d("cni"),
                runc = d("runc"),
            ),
        )
        .map_err(|e| format!("writing containerd's config: {e}"))?;
        cp.spawn(
            "containerd",
            &which("containerd").ok_or("containerd is not on PATH")?,
            vec![format!("--config={}", d("containerd/config.toml"))],
            Vec::new(),
        )?;
        self.wait("containerd to answer", Duration::from_secs(60), |n| {
            n.ctr(&["version"]).is_ok_and(|o| o.status.success())
        })?;
        for image in images {
            self.import(image)?;
        }

        let cp = self.cp.as_ref().ok_or("no control plane")?;
        let kubelet_kubeconfig = cp.client_kubeconfig(
            "kubelet",
            &format!("system:node:{NODE_NAME}"),
            &["system:nodes"],
        );
        let proxy_kubeconfig = cp.client_kubeconfig("kube-proxy", "system:kube-proxy", &[]);
        std::fs::write(
            dir.join("kubelet.yaml"),
            format!(
                r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This VM mounts cgroup v1.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
containerRuntimeEndpoint: unix://{sock}
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: {logs}
volumePluginDir: {plugins}
resolvConf: /etc/resolv.conf
syncFrequency: 10s
"#,
                ca = cp.pki.ca_crt.display(),
                sock = self.containerd_address.display(),
                logs = d("pod-logs"),
                plugins = d("plugins"),
            ),
        )
        .map_err(|e| format!("writing the kubelet's config: {e}"))?;
        self.sysctls = KUBELET_SYSCTLS
            .iter()
            .filter_map(|k| {
                let v = std::fs::read_to_string(Path::new("/proc/sys").join(k)).ok()?;
                Some((k.to_string(), v.trim().to_string()))
            })
            .collect();
        std::fs::write(
            dir.join("sysctls"),
            self.sysctls
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect::<String>(),
        )
        .map_err(|e| format!("writing {}: {e}", dir.join("sysctls").display()))?;
        cp.spawn(
            "kubelet",
            &cp.bin_dir().join("kubelet"),
            vec![
                format!("--config={}", d("kubelet.yaml")),
                format!("--kubeconfig={}", kubelet_kubeconfig.display()),
                format!("--root-dir={}", d("kubelet")),
                format!("--cert-dir={}", d("kubelet-pki")),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={ip}"),
                "--v=1".into(),
            ],
            Vec::new(),
        )?;
        std::fs::write(
            dir.join("kube-proxy.yaml"),
            format!(
                r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {{kubeconfig: {kc}}}
clusterCIDR: 10.244.0.0/16
hostnameOverride: {NODE_NAME}
bindAddress: {ip}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
# 0: leave the host's conntrack table size and timeouts as they are.
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"#,
                kc = proxy_kubeconfig.display()
            ),
        )
        .map_err(|e| format!("writing kube-proxy's config: {e}"))?;
        cp.spawn(
            "kube-proxy",
            &cp.bin_dir().join("kube-proxy"),
            vec![format!("--config={}", d("kube-proxy.yaml"))],
            Vec::new(),
        )?;
        self.wait("the Node to be Ready", Duration::from_secs(180), |n| {
            n.cp()
                .kubectl(&[
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .is_ok_and(|o| o.stdout == b"True")
        })?;
        // The Service ClusterIPs the aggregator and the pods dial exist once kube-proxy has
        // written its rules for the `kubernetes` Service.
        self.wait("kube-proxy's rules", Duration::from_secs(60), |n| {
            n.in_netns("iptables", &["-t", "nat", "-S", "KUBE-SERVICES"])
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("default/kubernetes"))
        })?;
        eprintln!(
            "testkit: node {NODE_NAME} ({ip}) Ready in {:.1}s (control plane {:.1}s)",
            t0.elapsed().as_secs_f64(),
            self.cp().started_in().as_secs_f64()
        );
        Ok(())
    }

    fn wait(
        &self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&Node) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if ready(self) {
                return Ok(());
            }
            for name in ["containerd", "kubelet", "kube-proxy"] {
                if let Some(status) = self.cp().exited(name) {
                    return Err(format!("{name} exited ({status}) while waiting for {what}"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("gave up waiting {limit:?} for {what}"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `ctr --address <this node's containerd> -n k8s.io ARGS`.
    pub fn ctr(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.containerd_address)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
    }

    /// Imports an image archive (docker-archive or OCI layout) into the node's containerd.
    pub fn import(&self, archive: &Path) -> Result<(), String> {
        let path = archive.display().to_string();
        let out = self
            .ctr(&["images", "import", &path])
            .map_err(|e| format!("running ctr: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ctr images import {path} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs `program` inside the node's network namespace (`nsenter --net`), e.g. iptables.
    pub fn in_netns(&self, program: &str, args: &[&str]) -> std::io::Result<Output> {
        let ns = self
            .cp()
            .netns()
            .map(InNetns::path)
            .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
        Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .arg("--")
            .arg(program)
            .args(args)
            .output()
    }

    /// The last `lines` lines of a node component's log (containerd, kubelet, kube-proxy).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.cp().dir.join(format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Node {
    /// Stops every process (kube-proxy, the kubelet and containerd first, then the control
    /// plane), then removes the containers, mounts and pod namespaces they leave, and the
    /// node's network namespace. Through `&self`, so that the exit handler of [`shared`] can.
    pub fn shutdown(&self) {
        if let Some(cp) = &self.cp {
            cp.stop_processes();
        }
        cleanup_dir(&self.dir);
        if let Some(ns) = &self.netns {
            ns.remove();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
        drop(self.cp.take());
        drop(self.netns.take());
    }
}

/// The node shared by every test of this process, started once with the archives `images`
/// returns (the pause image among them). Statics are never dropped, so an exit handler
/// (atexit) shuts it down when the test process exits. `None` (after a notice) when Go or a
/// node tool is missing, outside CI; under `CI=true` that is a failure.
pub fn shared(images: impl FnOnce() -> Result<Vec<PathBuf>, String>) -> Option<&'static Node> {
    static SHARED: OnceLock<Result<Node, String>> = OnceLock::new();
    extern "C" fn at_exit() {
        if let Some(Ok(node)) = SHARED.get() {
            node.shutdown();
            if let Some(cp) = &node.cp {
                let _ = std::fs::remove_dir_all(&cp.dir);
            }
        }
    }
    let node = SHARED.get_or_init(|| {
        let archives = images().map_err(|e| format!("building the node's images: {e}"))?;
        let node = match Node::start(&archives) {
            Ok(node) => node,
            Err(Unavailable::NoGo(m)) => return Err(format!("NOGO:{m}")),
            Err(Unavailable::Failed(m)) => return Err(m),
        };
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe {
            libc::atexit(at_exit);
        }
        Ok(node)
    });
    match node {
        Ok(node) => Some(node),
        Err(m) => crate::cluster::skip_or_fail(m),
    }
}

/// Cleans what a node left under `dir` (`<control plane dir>/node`): kills and deletes its
/// containers (runc's state in `dir/runc`), stops its shims, unmounts everything mounted
/// below `dir`, removes its pods' network namespaces and the `/var/log/containers` links into
/// it, and writes back the kernel settings recorded in `dir/sysctls`. Safe to run twice.
pub fn cleanup_dir(dir: &Path) {
    let runc_root = dir.join("runc");
    // The pods' network namespaces, read from the sandboxes' OCI specs before they go.
    let mut pod_netns = Vec::new();
    let tasks = dir.join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
    if let Ok(entries) = std::fs::read_dir(&tasks) {
        for e in entries.flatten() {
            let Ok(spec) = std::fs::read_to_string(e.path().join("config.json")) else {
                continue;
            };
            let Ok(spec) = serde_json::from_str::<serde_json::Value>(&spec) else {
                continue;
            };
            for ns in spec["linux"]["namespaces"].as_array().into_iter().flatten() {
                if ns["type"] == "network" {
                    if let Some(p) = ns["path"].as_str() {
                        pod_netns.push(PathBuf::from(p));
                    }
                }
            }
        }
    }
    // The shim gives runc `<Root>/<containerd namespace>` (k8s.io).
    let roots: Vec<PathBuf> = std::fs::read_dir(&runc_root)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for runc_root in roots.iter().filter(|p| p.is_dir()) {
        let root = runc_root.display().to_string();
        let ids = run("runc", &["--root", &root, "list", "-q"]).unwrap_or_default();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = run("runc", &["--root", &root, "kill", id, "KILL"]);
        }
        for id in ids.lines().filter(|l| !l.is_empty()) {
            for _ in 0..20 {
                if run("runc", &["--root", &root, "delete", "--force", id]).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // The shims: their command line names this node's containerd socket.
    let address = dir.join("containerd.sock").display().to_string();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&address) {
                // SAFETY: plain kill(2) of a shim this node started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    // Mounts below dir, deepest first (secrets and tokens of the kubelet, rootfs overlays).
    let prefix = format!("{}/", dir.display());
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    for m in &mounts {
        let _ = run("umount", &["--lazy", m]);
    }
    for ns in pod_netns {
        if let Some(name) = ns.file_name().and_then(|n| n.to_str()) {
            if name.starts_with("cni-") {
                let _ = run("umount", &["--lazy", &ns.display().to_string()]);
                let _ = std::fs::remove_file(&ns);
            }
        }
    }
    if let Ok(links) = std::fs::read_dir("/var/log/containers") {
        for l in links.flatten() {
            if std::fs::read_link(l.path()).is_ok_and(|t| t.starts_with(dir)) {
                let _ = std::fs::remove_file(l.path());
            }
        }
    }
    if let Ok(saved) = std::fs::read_to_string(dir.join("sysctls")) {
        for line in saved.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let _ = std::fs::write(Path::new("/proc/sys").join(k), v);
            }
        }
        let _ = std::fs::remove_file(dir.join("sysctls"));
    }
}

/// The pause binary of the sandbox image: `pause/` (Go, static), built into
/// `${XDG_CACHE_HOME:-~/.cache}/kaddons/pause/<hash>/pause` once.
pub fn pause_binary() -> Result<PathBuf, Unavailable> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("pause");
    let main = std::fs::read(src.join("main.go"))
        .map_err(|e| Unavailable::Failed(format!("reading pause/main.go: {e}")))?;
    let gomod = std::fs::read(src.join("go.mod"))
        .map_err(|e| Unavailable::Failed(format!("reading pause/go.mod: {e}")))?;
    let mut key: u64 = 0xcbf29ce484222325;
    for b in main.iter().chain(&gomod) {
        key = (key ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("kaddons/pause/{key:016x}"));
    let bin = cache.join("pause");
    if bin.is_file() {
        return Ok(bin);
    }
    if which("go").is_none() {
        return Err(Unavailable::NoGo(
            "go is not on PATH; it builds the pause image's binary (crates/testkit/pause)".into(),
        ));
    }
    std::fs::create_dir_all(&cache).map_err(|e| Unavailable::Failed(e.to_string()))?;
    let tmp = cache.join(format!(".pause.{}", std::process::id()));
    let out = Command::new("go")
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .args(["build", "-mod=readonly", "-trimpath", "-buildvcs=false"])
        .args(["-ldflags", "-s -w", "-o"])
        .arg(&tmp)
        .arg(".")
        .output()
        .map_err(|e| Unavailable::Failed(format!("running go build: {e}")))?;
    if !out.status.success() {
        return Err(Unavailable::Failed(format!(
            "go build of crates/testkit/pause failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    std::fs::rename(&tmp, &bin).map_err(|e| Unavailable::Failed(e.to_string()))?;
    Ok(bin)
}
