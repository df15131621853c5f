//! A real Kubernetes control plane for tests: etcd, kube-apiserver (with its in-process
//! kube-aggregator) and kube-controller-manager, v1.34.4, built from their Go modules by
//! `crates/testkit/k8s/build.sh` and started on free 127.0.0.1 ports in a temp dir.
//!
//! Why real components: kaddons lives exactly where a fake API server differs from a real one
//! (managed fields and apply conflicts, `dryRun=All`, foreground deletion, watches, discovery,
//! RBAC, APIService conditions), so every claim about Kubernetes is proven against this.
//!
//! The flags follow `crates/testkit/k8s/run-control-plane.sh`, the hand-run reference. Every
//! process is started from a thread that lives as long as the [`ControlPlane`] and with
//! `PR_SET_PDEATHSIG`, so the processes die with it: on drop, on a panic, and when the test
//! process itself is killed. Logs of every component are kept in the temp dir; a
//! [`ControlPlane::failure_guard`] prints their tails when a test fails.
//! [`ControlPlane::restart_apiserver`] restarts kube-apiserver alone with more flags, on the same
//! port and etcd, as a user does after editing its flags.
//!
//! With [`Options::netns`] every component runs inside a network namespace instead, bound to
//! its address, with kube-scheduler and a real node beside it ([`crate::node`]).
//!
//! Tests share one control plane ([`ControlPlane::shared`]) when they keep to their own
//! namespaces and names, and start their own ([`ControlPlane::start`]) when they need other
//! flags (e.g. the aggregation layer off). Where Go is missing and the binary is not built, the
//! tests are skipped with a one-line notice, except under `CI=true`, where that is a failure.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::pki::Ca;

/// The Kubernetes version the harness builds and runs.
pub const KUBERNETES_VERSION: &str = "v1.34.4";

/// How the front proxy (kube-aggregator → aggregated servers) is configured.
#[derive(Debug, Clone, Default)]
pub enum FrontProxy {
    /// What a user of kaddons does: `kaddons aggregator certs --out DIR` (the workspace's
    /// built binary) makes the front-proxy CA and client certificate, and the seven flags it
    /// prints go to kube-apiserver verbatim. The default.
    #[default]
    Kaddons,
    /// A front-proxy CA and client certificate made by the harness, with the seven flags.
    Generated,
    /// The files `kaddons aggregator certs --out DIR` wrote, with the flags it printed
    /// (passed through verbatim, so the recipe kaddons prints is what runs).
    Flags(Vec<String>),
    /// No aggregation layer: none of the seven `--requestheader-*`/`--proxy-client-*` flags.
    Off,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub front_proxy: FrontProxy,
    /// Start kube-controller-manager (Deployments get ReplicaSets and Pods).
    pub controller_manager: bool,
    /// Extra kube-apiserver flags, appended last (a later flag wins).
    pub apiserver_args: Vec<String>,
    /// Replace the serving certificate: (certificate file, key file, and the PEM file that
    /// makes it verifiable — its CA, or itself — which the harness's kubeconfigs trust).
    pub serving_cert: Option<(PathBuf, PathBuf, PathBuf)>,
    /// Run every component inside this network namespace (see [`crate::node`]): the API
    /// server binds and advertises the namespace's address, the `kubernetes` Service gets it
    /// as its endpoint, and the kubeconfigs reach it there through the veth pair.
    pub netns: Option<InNetns>,
    /// Start kube-scheduler (pods get a node).
    pub scheduler: bool,
}

/// A network namespace the control plane runs in, and its address.
#[derive(Debug, Clone)]
pub struct InNetns {
    /// Name under `/run/netns` (`ip netns add NAME`).
    pub name: String,
    /// The namespace's own address, reachable from the host through a veth pair.
    pub ip: std::net::Ipv4Addr,
}

impl InNetns {
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            front_proxy: FrontProxy::Kaddons,
            controller_manager: true,
            apiserver_args: Vec::new(),
            serving_cert: None,
            netns: None,
            scheduler: false,
        }
    }
}

/// Paths of the certificates and keys a control plane uses.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    /// Cluster CA: signs the serving certificate and every client certificate.
    pub ca_crt: PathBuf,
    pub apiserver_crt: PathBuf,
    pub apiserver_key: PathBuf,
    pub admin_crt: PathBuf,
    pub admin_key: PathBuf,
}

/// A running control plane. Dropping it stops every process and removes its directory.
pub struct ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    pub port: u16,
    /// Kubeconfig of `admin` (group system:masters), by client certificate.
    pub admin_kubeconfig: PathBuf,
    /// Kubeconfig of `jane`, authenticated by client certificate and granted nothing.
    pub restricted_kubeconfig: PathBuf,
    pub pki: Pki,
    /// The temp dir holding certificates, kubeconfigs, etcd's data and the logs.
    pub dir: PathBuf,
    bin_dir: PathBuf,
    kubectl: PathBuf,
    stop: Option<mpsc::Sender<Msg>>,
    owner: Option<std::thread::JoinHandle<()>>,
    started_in: Duration,
    /// The cluster CA: signs the serving certificate and the client certificates.
    ca: Ca,
    netns: Option<InNetns>,
    /// The flags the running kube-apiserver was started with (for a restart; behind a lock so
    /// that a test can restart it while a [`FailureGuard`] borrows the control plane).
    apiserver_args: Mutex<Vec<String>>,
}

/// Why a control plane could not be had.
#[derive(Debug)]
pub enum Unavailable {
    /// Go is missing and the binary was never built (a skip, except under `CI=true`).
    NoGo(String),
    /// Anything else (a failed build, a component that did not come up).
    Failed(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NoGo(m) | Unavailable::Failed(m) => f.write_str(m),
        }
    }
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Directory with the `k8s` multi-call binary and its component symlinks: `$KADDONS_K8S_BIN`,
/// else what `build.sh` prints (building it on first use, progress on stderr). Built once
/// per test process.
pub fn k8s_bin_dir() -> Result<PathBuf, Unavailable> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KADDONS_K8S_BIN") {
            return Ok(PathBuf::from(dir));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/build.sh");
        eprintln!(
            "testkit: making sure Kubernetes {KUBERNETES_VERSION} is built ({}; the first build takes many minutes)",
            script.display()
        );
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        match out.status.code() {
            Some(0) => {}
            Some(127) => return Err(format!("NOGO:{} needs Go to build Kubernetes", script.display())),
            _ => return Err(format!("{} failed ({})", script.display(), out.status)),
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = stdout.lines().last().unwrap_or_default().trim();
        Ok(PathBuf::from(dir))
    });
    match found {
        Ok(dir) => Ok(dir.clone()),
        Err(m) if m.starts_with("NOGO:") => Err(Unavailable::NoGo(m[5..].to_string())),
        Err(m) => Err(Unavailable::Failed(m.clone())),
    }
}

/// A kubectl within one minor version of the control plane: the machine's `kubectl.1.33`
/// next to the real kubectl binary when present (Debian's package ships 1.27…1.33), else
/// `$KUBECTL`, else `kubectl`.
pub fn kubectl_path() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return PathBuf::from(k);
    }
    let found = which_on_path("kubectl").and_then(|k| std::fs::canonicalize(k).ok());
    if let Some(real) = found {
        let skewed = real.with_file_name("kubectl.1.33");
        if skewed.is_file() {
            return skewed;
        }
        return real;
    }
    PathBuf::from("kubectl")
}

fn which_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The kube-apiserver flags in what `kaddons aggregator certs` printed on standard output: the
/// lines that start with `--`, verbatim. An error unless they are the seven.
pub fn printed_apiserver_flags(stdout: &str) -> Result<Vec<String>, String> {
    let flags: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("--"))
        .map(str::to_string)
        .collect();
    if flags.len() != 7 {
        return Err(format!(
            "kaddons aggregator certs printed {} flags, not the seven: {flags:?}",
            flags.len()
        ));
    }
    Ok(flags)
}

/// Runs `kaddons aggregator certs --out dir` and returns the kube-apiserver flags it prints
/// ([`printed_apiserver_flags`]).
pub fn kaddons_aggregator_flags(dir: &Path) -> Result<Vec<String>, Unavailable> {
    let kaddons = crate::bins::workspace_bin("kaddons", "kaddons");
    let out = Command::new(&kaddons)
        .args(["aggregator", "certs", "--out"])
        .arg(dir)
        .env("HOME", dir.parent().unwrap_or(dir))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Unavailable::Failed(format!("running {}: {e}", kaddons.display())))?;
    if !out.status.success() {
        return Err(Unavailable::Failed(format!(
            "kaddons aggregator certs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    printed_apiserver_flags(&String::from_utf8_lossy(&out.stdout)).map_err(Unavailable::Failed)
}

/// A free TCP port on 127.0.0.1 (the kernel picks it; a small race until the server binds).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// Root of the control planes' directories; stale ones of dead test processes are removed.
fn base_dir() -> PathBuf {
    let base = std::env::temp_dir().join("kaddons-testkit");
    let _ = std::fs::create_dir_all(&base);
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let pid = std::fs::read_to_string(e.path().join("owner.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0);
            if !alive {
                // A node's containers, mounts and pod namespaces outlive a killed test.
                if e.path().join("node").is_dir() {
                    crate::node::cleanup_dir(&e.path().join("node"));
                }
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    base
}

fn write(path: &Path, data: &str) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn kubeconfig(server: &str, ca: &Path, user: &str, crt: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kaddons-test\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: {user}\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: kaddons-test\n  context:\n    cluster: kaddons-test\n    user: {user}\ncurrent-context: kaddons-test\n",
        ca.display(),
        crt.display(),
        key.display()
    )
}

impl ControlPlane {
    /// The control plane shared by every test of this process (default [`Options`]). `None`
    /// (after a one-line notice) when Go is missing and the binary is not built, outside CI.
    pub fn shared() -> Option<&'static ControlPlane> {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        let cp = SHARED.get_or_init(|| match ControlPlane::start(Options::default()) {
            Ok(cp) => Ok(cp),
            Err(Unavailable::NoGo(m)) => Err(format!("NOGO:{m}")),
            Err(Unavailable::Failed(m)) => Err(m),
        });
        match cp {
            Ok(cp) => Some(cp),
            Err(m) => skip_or_fail(m),
        }
    }

    /// Starts a control plane of its own (for tests that need other flags). `None` as for
    /// [`ControlPlane::shared`].
    pub fn own(options: Options) -> Option<ControlPlane> {
        match ControlPlane::start(options) {
            Ok(cp) => Some(cp),
            Err(Unavailable::NoGo(m)) => skip_or_fail(&format!("NOGO:{m}")),
            Err(Unavailable::Failed(m)) => panic!("{m}"),
        }
    }

    /// Starts etcd, kube-apiserver and (unless told not to) kube-controller-manager, and
    /// waits until the API server is ready and its system namespaces exist.
    pub fn start(options: Options) -> Result<ControlPlane, Unavailable> {
        let bin_dir = k8s_bin_dir()?;
        let t0 = Instant::now();
        let dir = base_dir().join(format!(
            "cp-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("pki")).map_err(|e| Unavailable::Failed(e.to_string()))?;
        write(&dir.join("owner.pid"), &std::process::id().to_string());

        let pki_dir = dir.join("pki");
        let p = |name: &str| pki_dir.join(name);
        let ca = Ca::new("kaddons-test-ca");
        write(&p("ca.crt"), &ca.pem());
        let host = match &options.netns {
            Some(ns) => ns.ip.to_string(),
            None => "127.0.0.1".to_string(),
        };
        let (crt, key) = ca.server_cert(
            "kube-apiserver",
            &[
                &host,
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "10.96.0.1",
            ],
        );
        write(&p("apiserver.crt"), &crt);
        write(&p("apiserver.key"), &key);
        for (name, cn, orgs) in [
            ("admin", "admin", &["system:masters"][..]),
            ("jane", "jane", &[][..]),
            (
                "controller-manager",
                "system:kube-controller-manager",
                &[][..],
            ),
            ("scheduler", "system:kube-scheduler", &[][..]),
            // What kube-apiserver shows kubelets (logs, exec), as kubeadm's
            // apiserver-kubelet-client.
            (
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                &["system:masters"][..],
            ),
        ] {
            let (crt, key) = ca.client_cert(cn, orgs);
            write(&p(&format!("{name}.crt")), &crt);
            write(&p(&format!("{name}.key")), &key);
        }
        let sa = rcgen::KeyPair::generate().map_err(|e| Unavailable::Failed(e.to_string()))?;
        write(&p("sa.key"), &sa.serialize_pem());
        write(&p("sa.pub"), &sa.public_key_pem());

        let port = free_port();
        let server = format!("https://{host}:{port}");
        // What the kubeconfigs trust: the cluster CA, or what makes a replaced serving
        // certificate verifiable.
        let server_trust = match &options.serving_cert {
            Some((_, _, trust)) => trust.clone(),
            None => p("ca.crt"),
        };
        let kc = |user: &str| {
            let path = dir.join(format!("{user}.kubeconfig"));
            write(
                &path,
                &kubeconfig(
                    &server,
                    &server_trust,
                    user,
                    &p(&format!("{user}.crt")),
                    &p(&format!("{user}.key")),
                ),
            );
            path
        };
        let admin_kubeconfig = kc("admin");
        let restricted_kubeconfig = kc("jane");
        let kcm_kubeconfig = kc("controller-manager");
        let scheduler_kubeconfig = kc("scheduler");

        let (etcd_client, etcd_peer) = (free_port(), free_port());
        let s = |p: &Path| p.display().to_string();
        let etcd: Vec<String> = vec![
            "--name=default".into(),
            format!("--data-dir={}", s(&dir.join("etcd"))),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
            "--initial-cluster-state=new".into(),
            "--log-level=warn".into(),
            // Test data is thrown away with the temp dir: no fsync on every write.
            "--unsafe-no-fsync".into(),
        ];
        let (serving_crt, serving_key) = match &options.serving_cert {
            Some((crt, key, _)) => (crt.clone(), key.clone()),
            None => (p("apiserver.crt"), p("apiserver.key")),
        };
        let mut apiserver: Vec<String> = vec![
            format!("--advertise-address={host}"),
            format!("--bind-address={host}"),
            format!("--secure-port={port}"),
            format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=Node,RBAC".into(),
            format!("--client-ca-file={}", s(&p("ca.crt"))),
            format!("--tls-cert-file={}", s(&serving_crt)),
            format!("--tls-private-key-file={}", s(&serving_key)),
            format!("--service-account-key-file={}", s(&p("sa.pub"))),
            format!("--service-account-signing-key-file={}", s(&p("sa.key"))),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--kubelet-client-certificate={}",
                s(&p("apiserver-kubelet-client.crt"))
            ),
            format!(
                "--kubelet-client-key={}",
                s(&p("apiserver-kubelet-client.key"))
            ),
            "--profiling=false".into(),
        ];
        if options.netns.is_none() {
            // Endpoints reject loopback addresses; nothing reconciles the kubernetes Service.
            apiserver.push("--endpoint-reconciler-type=none".into());
        } else {
            // As kubeadm: reach kubelets (logs, exec) by address, not by a host name that no
            // DNS knows.
            apiserver
                .push("--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into());
        }
        match &options.front_proxy {
            FrontProxy::Generated => {
                let fp = Ca::new("kaddons-test-front-proxy-ca");
                write(&p("front-proxy-ca.crt"), &fp.pem());
                let (crt, key) = fp.client_cert("front-proxy-client", &[]);
                write(&p("front-proxy-client.crt"), &crt);
                write(&p("front-proxy-client.key"), &key);
                apiserver.extend([
                    format!(
                        "--requestheader-client-ca-file={}",
                        s(&p("front-proxy-ca.crt"))
                    ),
                    "--requestheader-allowed-names=front-proxy-client".into(),
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                    "--requestheader-group-headers=X-Remote-Group".into(),
                    "--requestheader-username-headers=X-Remote-User".into(),
                    format!(
                        "--proxy-client-cert-file={}",
                        s(&p("front-proxy-client.crt"))
                    ),
                    format!(
                        "--proxy-client-key-file={}",
                        s(&p("front-proxy-client.key"))
                    ),
                ]);
            }
            FrontProxy::Kaddons => {
                apiserver.extend(kaddons_aggregator_flags(&dir.join("front-proxy"))?)
            }
            FrontProxy::Flags(flags) => apiserver.extend(flags.iter().cloned()),
            FrontProxy::Off => {}
        }
        apiserver.extend(options.apiserver_args.iter().cloned());
        let kcm: Vec<String> = vec![
            format!("--kubeconfig={}", s(&kcm_kubeconfig)),
            format!("--authentication-kubeconfig={}", s(&kcm_kubeconfig)),
            format!("--authorization-kubeconfig={}", s(&kcm_kubeconfig)),
            "--use-service-account-credentials".into(),
            format!("--service-account-private-key-file={}", s(&p("sa.key"))),
            format!("--root-ca-file={}", s(&p("ca.crt"))),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
            "--controllers=*".into(),
            // Else it creates /usr/libexec/kubernetes/kubelet-plugins/volume/exec on the host.
            format!("--flex-volume-plugin-dir={}", s(&dir.join("flexvolume"))),
        ];
        let scheduler: Vec<String> = vec![
            format!("--kubeconfig={}", s(&scheduler_kubeconfig)),
            format!("--authentication-kubeconfig={}", s(&scheduler_kubeconfig)),
            format!("--authorization-kubeconfig={}", s(&scheduler_kubeconfig)),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
        ];

        let netns_path = options.netns.as_ref().map(InNetns::path);
        let (stop, owner) = spawn_owner(&bin_dir, &dir, netns_path)?;
        spawn_via(&stop, "etcd", etcd)?;
        spawn_via(&stop, "kube-apiserver", apiserver.clone())?;
        let mut cp = ControlPlane {
            server,
            port,
            admin_kubeconfig,
            restricted_kubeconfig,
            pki: Pki {
                dir: pki_dir.clone(),
                ca_crt: p("ca.crt"),
                apiserver_crt: p("apiserver.crt"),
                apiserver_key: p("apiserver.key"),
                admin_crt: p("admin.crt"),
                admin_key: p("admin.key"),
            },
            dir,
            bin_dir,
            kubectl: kubectl_path(),
            stop: Some(stop),
            owner: Some(owner),
            started_in: Duration::ZERO,
            ca,
            netns: options.netns.clone(),
            apiserver_args: Mutex::new(apiserver),
        };
        cp.wait_ready(Duration::from_secs(120))
            .map_err(|e| Unavailable::Failed(format!("{e}\n{}", cp.log_tails(30))))?;
        // After the API server is ready: kube-controller-manager exits when the RBAC roles
        // that let it read its configuration are not bootstrapped yet.
        if options.controller_manager {
            if let Some(owner) = &cp.stop {
                spawn_via(owner, "kube-controller-manager", kcm)?;
            }
        }
        if options.scheduler {
            if let Some(owner) = &cp.stop {
                spawn_via(owner, "kube-scheduler", scheduler)?;
            }
        }
        cp.started_in = t0.elapsed();
        eprintln!(
            "testkit: control plane {KUBERNETES_VERSION} at {} ready in {:.1}s ({})",
            cp.server,
            cp.started_in.as_secs_f64(),
            cp.dir.display()
        );
        Ok(cp)
    }

    /// Stops kube-apiserver and starts it again with the flags it had plus `extra_args`
    /// (appended last: a later flag wins), on the same port and etcd, and waits until it is
    /// ready as [`ControlPlane::start`] does. etcd's data stays; kube-controller-manager, when
    /// running, keeps running and reconnects. The log goes on in the same file, after a line
    /// that says so. A later restart starts from these flags.
    pub fn restart_apiserver(&self, extra_args: &[String]) -> Result<(), String> {
        let t0 = Instant::now();
        // Held to the end: two restarts at once would not know each other's flags.
        let mut current = self
            .apiserver_args
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut args = current.clone();
        args.extend(extra_args.iter().cloned());
        let owner = self.stop.as_ref().ok_or("the control plane is stopped")?;
        let (tx, rx) = mpsc::channel();
        owner
            .send(Msg::Restart("kube-apiserver", args.clone(), tx))
            .map_err(|_| "the owner thread died".to_string())?;
        rx.recv()
            .map_err(|_| "the owner thread died".to_string())??;
        *current = args;
        self.wait_ready(Duration::from_secs(120))
            .map_err(|e| format!("after a restart: {e}\n{}", self.log_tails(30)))?;
        eprintln!(
            "testkit: kube-apiserver at {} restarted with {} more flags, ready in {:.1}s",
            self.server,
            extra_args.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Starts `program` beside the components, in the control plane's network namespace if it
    /// has one, with its log in `<dir>/<name>.log`; it is stopped before every component
    /// started earlier (stopping goes in reverse order).
    pub fn spawn(
        &self,
        name: &'static str,
        program: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<(), String> {
        let owner = self.stop.as_ref().ok_or("the control plane is stopped")?;
        let (tx, rx) = mpsc::channel();
        owner
            .send(Msg::SpawnProgram(
                name,
                program.to_path_buf(),
                args,
                env,
                tx,
            ))
            .map_err(|_| "the owner thread died".to_string())?;
        rx.recv().map_err(|_| "the owner thread died".to_string())?
    }

    /// How `name` (a component or a program of [`ControlPlane::spawn`]) exited, if it has.
    pub fn exited(&self, name: &'static str) -> Option<String> {
        let owner = self.stop.as_ref()?;
        let (tx, rx) = mpsc::channel();
        owner.send(Msg::Exited(name, tx)).ok()?;
        rx.recv().ok()?
    }

    /// A kubeconfig at `<dir>/<file>.kubeconfig` for a client certificate with this common
    /// name and these organisations (groups), signed by the cluster CA.
    pub fn client_kubeconfig(&self, file: &str, cn: &str, orgs: &[&str]) -> PathBuf {
        let (crt, key) = self.ca.client_cert(cn, orgs);
        let crt_path = self.pki.dir.join(format!("{file}.crt"));
        let key_path = self.pki.dir.join(format!("{file}.key"));
        write(&crt_path, &crt);
        write(&key_path, &key);
        let path = self.dir.join(format!("{file}.kubeconfig"));
        write(
            &path,
            &kubeconfig(&self.server, &self.pki.ca_crt, file, &crt_path, &key_path),
        );
        path
    }

    /// Stops every process now, in reverse order of their start, through a shared reference
    /// (an exit handler has no other); the directory stays until drop.
    pub fn stop_processes(&self) {
        if let Some(owner) = &self.stop {
            let (tx, rx) = mpsc::channel();
            if owner.send(Msg::StopAll(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }

    /// The network namespace the control plane runs in, if any.
    pub fn netns(&self) -> Option<&InNetns> {
        self.netns.as_ref()
    }

    /// How kube-apiserver exited, if it has (`None` while it runs).
    fn apiserver_exited(&self) -> Option<String> {
        let owner = self.stop.as_ref()?;
        let (tx, rx) = mpsc::channel();
        owner.send(Msg::Exited("kube-apiserver", tx)).ok()?;
        rx.recv().ok()?
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.apiserver_exited() {
                return Err(format!("kube-apiserver exited ({status})"));
            }
            let ready = self
                .kubectl(&["get", "--raw", "/readyz", "--request-timeout=5s"])
                .ok()
                .is_some_and(|o| o.status.success());
            let namespaced = ready
                && self
                    .kubectl(&[
                        "get",
                        "-n",
                        "kube-system",
                        "configmap",
                        "extension-apiserver-authentication",
                        "-o",
                        "name",
                    ])
                    .ok()
                    .is_some_and(|o| o.status.success());
            if namespaced {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the control plane at {} was not ready after {limit:?}",
                    self.server
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs kubectl (within one minor version of the server) as admin.
    pub fn kubectl(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs kubectl as admin and returns stdout; panics with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).expect("running kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl as admin with `stdin` as standard input (for `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())
            .expect("writing kubectl's stdin");
        child.wait_with_output().expect("waiting for kubectl")
    }

    /// Path of the kubectl the harness uses.
    pub fn kubectl_bin(&self) -> &Path {
        &self.kubectl
    }

    /// Directory holding the component binaries (`kube-apiserver`, `etcd`, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Time from the start of [`ControlPlane::start`] to ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The last `lines` lines of every component's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            let path = self.dir.join(format!("{name}.log"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            let _ = writeln!(
                out,
                "----- {} (last {} lines)",
                path.display(),
                all.len() - from
            );
            for l in &all[from..] {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }

    /// A guard that prints every component's log tail if the test panics while it is alive.
    pub fn failure_guard(&self) -> FailureGuard<'_> {
        FailureGuard(self)
    }

    /// A copy of the admin kubeconfig that reaches the API server through 127.0.0.1:`port`
    /// (e.g. a [`SlowProxy`]); the serving certificate names 127.0.0.1, so it verifies.
    pub fn admin_kubeconfig_via(&self, port: u16) -> PathBuf {
        let path = self.dir.join(format!("admin-via-{port}.kubeconfig"));
        let text = std::fs::read_to_string(&self.admin_kubeconfig)
            .expect("reading the admin kubeconfig")
            .replace(&self.server, &format!("https://127.0.0.1:{port}"));
        write(&path, &text);
        path
    }

    /// A namespace of its own for one test (created now; names must be unique per process).
    pub fn namespace(&self, name: &str) -> String {
        let ns = format!("{name}-{}", std::process::id());
        self.kubectl_ok(&["create", "namespace", &ns]);
        ns
    }
}

/// A TCP proxy on 127.0.0.1 that holds every chunk a client sends for `delay` before passing
/// it to `upstream` (TLS passes through untouched). It makes each API request take at least
/// `delay`, so a test can stop a client between two of its requests. Stops when dropped.
pub struct SlowProxy {
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl SlowProxy {
    pub fn start(upstream: u16, delay: Duration) -> SlowProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("proxy address").port();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            tokio::time::sleep(delay).await;
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        SlowProxy {
            port,
            _runtime: runtime,
        }
    }
}

/// Prints the control plane's logs when dropped during a panic (a failing test).
pub struct FailureGuard<'a>(&'a ControlPlane);

impl Drop for FailureGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.0.log_tails(40));
        }
    }
}

impl ControlPlane {
    /// Stops every process (in reverse order of their start) and keeps the directory.
    pub fn stop(&mut self) {
        // Dropping the sender ends the owner thread, which stops every process.
        drop(self.stop.take());
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

enum Msg {
    /// Start a component.
    Spawn(&'static str, Vec<String>, mpsc::Sender<Result<(), String>>),
    /// Start another program (containerd, a node's kubelet), with extra environment.
    SpawnProgram(
        &'static str,
        PathBuf,
        Vec<String>,
        Vec<(String, String)>,
        mpsc::Sender<Result<(), String>>,
    ),
    /// Stop a running component and start it again with these flags, in its place (so that
    /// the stopping order stays).
    Restart(&'static str, Vec<String>, mpsc::Sender<Result<(), String>>),
    /// How a component exited, if it has.
    Exited(&'static str, mpsc::Sender<Option<String>>),
    /// Stop every process now (reverse order) and answer when they are gone.
    StopAll(mpsc::Sender<()>),
}

/// A thread that starts components and keeps them alive until its sender is dropped (or the
/// process dies: `PR_SET_PDEATHSIG` ties each child to this thread).
fn spawn_owner(
    bin_dir: &Path,
    dir: &Path,
    netns: Option<PathBuf>,
) -> Result<(mpsc::Sender<Msg>, std::thread::JoinHandle<()>), Unavailable> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let (bin_dir, dir) = (bin_dir.to_path_buf(), dir.to_path_buf());
    let owner = std::thread::Builder::new()
        .name("testkit-control-plane".into())
        .spawn(move || {
            let mut children: Vec<(&str, Child)> = Vec::new();
            // Ends when the ControlPlane drops its sender.
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Spawn(name, args, reply) => {
                        let program = bin_dir.join(name);
                        let started =
                            spawn_component(&program, &dir, name, &args, netns.as_deref())
                                .map(|child| children.push((name, child)));
                        let _ = reply.send(started);
                    }
                    Msg::SpawnProgram(name, program, args, env, reply) => {
                        let started =
                            spawn_program(&program, &dir, name, &args, &env, netns.as_deref())
                                .map(|child| children.push((name, child)));
                        let _ = reply.send(started);
                    }
                    Msg::Restart(name, args, reply) => {
                        let _ = reply.send(restart_component(
                            &bin_dir,
                            &dir,
                            &mut children,
                            name,
                            &args,
                            netns.as_deref(),
                        ));
                    }
                    Msg::StopAll(reply) => {
                        stop_all(&mut children);
                        children.clear();
                        let _ = reply.send(());
                    }
                    Msg::Exited(name, reply) => {
                        let exited = children
                            .iter_mut()
                            .find(|(n, _)| *n == name)
                            .and_then(|(_, child)| child.try_wait().ok().flatten())
                            .map(|status| status.to_string());
                        let _ = reply.send(exited);
                    }
                }
            }
            stop_all(&mut children);
        })
        .map_err(|e| Unavailable::Failed(format!("spawning the owner thread: {e}")))?;
    Ok((tx, owner))
}

fn spawn_via(
    owner: &mpsc::Sender<Msg>,
    name: &'static str,
    args: Vec<String>,
) -> Result<(), Unavailable> {
    let (tx, rx) = mpsc::channel();
    owner
        .send(Msg::Spawn(name, args, tx))
        .map_err(|_| Unavailable::Failed("the owner thread died".into()))?;
    rx.recv()
        .map_err(|_| Unavailable::Failed("the owner thread died".into()))?
        .map_err(Unavailable::Failed)
}

/// Stops `name` (SIGTERM, then SIGKILL after 30 s) and starts it again with `args` in the same
/// place of `children`, after a line in its log that says so.
fn restart_component(
    bin_dir: &Path,
    dir: &Path,
    children: &mut [(&str, Child)],
    name: &'static str,
    args: &[String],
    netns: Option<&Path>,
) -> Result<(), String> {
    let (_, child) = children
        .iter_mut()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| format!("{name} was never started"))?;
    stop_child(child, Duration::from_secs(30));
    let log_path = dir.join(format!("{name}.log"));
    let note = format!(
        "----- testkit: {name} stopped, restarting with: {}\n",
        args.join(" ")
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", log_path.display()))?;
    *child = spawn_component(&bin_dir.join(name), dir, name, args, netns)?;
    Ok(())
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; reaps the process.
fn stop_child(child: &mut Child, grace: Duration) {
    // SAFETY: plain kill(2) of our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn spawn_component(
    program: &Path,
    dir: &Path,
    name: &str,
    args: &[String],
    netns: Option<&Path>,
) -> Result<Child, String> {
    spawn_program(program, dir, name, args, &[], netns)
}

/// Starts `program` with its output in `<dir>/<name>.log`, tied to this thread by
/// `PR_SET_PDEATHSIG`, and inside the network namespace `netns` when given (setns(2) between
/// fork and exec: only the network namespace changes, the mounts and cgroups stay the host's).
fn spawn_program(
    program: &Path,
    dir: &Path,
    name: &str,
    args: &[String],
    env: &[(String, String)],
    netns: Option<&Path>,
) -> Result<Child, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let ns_file = netns
        .map(|p| std::fs::File::open(p).map_err(|e| format!("opening {}: {e}", p.display())))
        .transpose()?;
    let ns_fd = ns_file.as_ref().map(|f| f.as_raw_fd());
    // Appended: a restarted component's log follows its first run's.
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cloning {}: {e}", log_path.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: prctl and setns are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = ns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()));
    drop(ns_file);
    child
}

fn stop_all(children: &mut [(&str, Child)]) {
    // Reverse order: controller-manager, then the API server, then etcd.
    for (_, child) in children.iter_mut().rev() {
        // SAFETY: plain kill(2) of our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (_, child) in children.iter_mut().rev() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub(crate) fn skip_or_fail<T>(message: &str) -> Option<T> {
    let (no_go, text) = match message.strip_prefix("NOGO:") {
        Some(m) => (true, m),
        None => (false, message),
    };
    if no_go && !under_ci() {
        static NOTICE: OnceLock<()> = OnceLock::new();
        NOTICE.get_or_init(|| {
            eprintln!("testkit: skipping the real-cluster tests: {text} (install Go; under CI=true this fails)")
        });
        return None;
    }
    panic!("real control plane unavailable: {text}");
}

/// The real kube-apiserver for a test, or return from the test (skip, outside CI).
#[macro_export]
macro_rules! control_plane {
    () => {
        match $crate::cluster::ControlPlane::shared() {
            Some(cp) => cp,
            None => return,
        }
    };
}
