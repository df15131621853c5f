//! The aggregation chain for real: Node and Pod objects in a real API server that point at
//! simulated kubelets, a metrics server process (upstream's `metrics-server` or
//! `kaddons-metrics-server`, started with the same arguments), and its registration as the
//! APIService `v1beta1.metrics.k8s.io` behind kube-aggregator.
//!
//! Why a network namespace: kube-apiserver refuses to proxy to loopback addresses
//! (`IsProxyableIP`), so the node proxy (`/api/v1/nodes/N/proxy/stats/summary`) cannot reach
//! kubelets on 127.0.0.1. The simulated kubelets therefore run inside a network namespace the
//! harness creates (`kaddons-<pid>-<n>`), reachable from the host only through a veth pair with
//! private addresses (10.251.X.1 host side, 10.251.X.2 inside). The fleet simulator binds
//! 10.251.X.2 directly, one port per node. No traffic leaves the host: the only addresses used
//! are 127.0.0.0/8 and that veth pair.
//!
//! Everything created is removed on drop (also after a failed test); namespaces left by dead
//! test processes are removed when the next one is created.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::cluster::{free_port, ControlPlane};
use crate::fleet::{self, FleetConfig, Mode};
use crate::pki::Ca;

/// The APIService the metrics servers register.
pub const APISERVICE: &str = "v1beta1.metrics.k8s.io";

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A temp dir under the test kit's base that carries its owner's pid (stale ones of dead test
/// processes are removed by the control plane's start).
fn own_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("kaddons-testkit").join(format!(
        "{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("creating a test kit dir");
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).expect("owner.pid");
    dir
}

// ---------------------------------------------------------------------------------------------
// Network namespace
// ---------------------------------------------------------------------------------------------

/// A network namespace with a veth pair to the host. Removed on drop.
pub struct Netns {
    pub name: String,
    host_if: String,
    /// The host side of the veth pair.
    pub host_ip: Ipv4Addr,
    /// The namespace side: where the simulated kubelets are reached.
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    /// Removes `kaddons-<pid>-<n>` namespaces whose owner process is gone.
    pub fn remove_stale() {
        let Ok(list) = run("ip", &["netns", "list"]) else {
            return;
        };
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            let Some(rest) = name.strip_prefix("kaddons-") else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !pid_alive(p)) {
                let _ = run("ip", &["netns", "del", name]);
            }
        }
    }

    /// Creates the namespace, the veth pair and its addresses (a 10.251.X.0/24 not yet in use).
    pub fn create() -> Result<Netns, String> {
        Netns::remove_stale();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("kaddons-{pid}-{n}");
        // Interface names have at most 15 bytes.
        let tag = format!("{:x}{n:x}", pid % 0xfffff);
        let (host_if, ns_if) = (format!("kah{tag}"), format!("kan{tag}"));
        let used = run("ip", &["-o", "-4", "addr", "show"])?;
        let octet = (0..=250u8)
            .map(|i| ((pid as usize + n * 7 + i as usize) % 250) as u8 + 1)
            .find(|o| !used.contains(&format!("10.251.{o}.")))
            .ok_or("no free 10.251.X.0/24")?;
        let host_ip = Ipv4Addr::new(10, 251, octet, 1);
        let ns_ip = Ipv4Addr::new(10, 251, octet, 2);
        run("ip", &["netns", "add", &name])?;
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip,
            ns_ip,
        };
        let steps: [&[&str]; 7] = [
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            &["link", "set", &ns_if, "netns", &name],
            &["addr", "add", &format!("{host_ip}/24"), "dev", &host_if],
            &["link", "set", &host_if, "up"],
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ns_ip}/24"),
                "dev",
                &ns_if,
            ],
            &["-n", &name, "link", "set", &ns_if, "up"],
            &["-n", &name, "link", "set", "lo", "up"],
        ];
        for args in steps {
            run("ip", args)?;
        }
        Ok(ns)
    }
}

impl Netns {
    /// Deletes the namespace and the veth pair (also through `&self`; safe to run twice).
    pub fn remove(&self) {
        // Deleting the namespace destroys its veth end, which destroys the host end.
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = run("ip", &["link", "del", &self.host_if]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

// ---------------------------------------------------------------------------------------------
// Simulated kubelets inside the namespace
// ---------------------------------------------------------------------------------------------

/// One simulated kubelet as the API server and the metrics servers see it.
#[derive(Clone, Debug)]
pub struct Kubelet {
    pub name: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub mode: Mode,
}

/// What a Pod object's status says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Running, with a container restarted (restartCount 3, lastState terminated).
    Restarting,
    /// Pending, containers waiting, no start time.
    Pending,
    /// Succeeded: every container terminated.
    Succeeded,
}

/// One simulated pod, as the fleet serves it.
#[derive(Clone, Debug)]
pub struct SimPod {
    pub node: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<String>,
    pub phase: Phase,
}

/// The fleet simulator running in a namespace of its own, listening on the namespace's veth
/// address. Stops (and removes the namespace) on drop.
pub struct Kubelets {
    pub nodes: Vec<Kubelet>,
    pub pods: Vec<SimPod>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub netns: Netns,
}

/// Pod lifetime that keeps every simulated pod's name stable for the whole test.
pub const STABLE_CHURN: Duration = Duration::from_secs(10_000_000);

impl Kubelets {
    /// Starts `config` in a new namespace. Use [`STABLE_CHURN`] as `churn_period` so that
    /// [`Kubelets::pods`] (computed from the model at start) stays what the fleet serves.
    pub fn start(config: FleetConfig) -> Result<Kubelets, String> {
        let netns = Netns::create()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<Vec<Kubelet>, String>>();
        let (ns_path, ns_ip) = (format!("/var/run/netns/{}", netns.name), netns.ns_ip);
        let (stop2, cfg) = (stop.clone(), config.clone());
        let thread = std::thread::Builder::new()
            .name("testkit-kubelets".into())
            .spawn(move || {
                if let Err(e) = enter_netns(&ns_path) {
                    let _ = tx.send(Err(e));
                    return;
                }
                serve_in_netns(cfg, ns_ip, stop2, tx);
            })
            .map_err(|e| format!("spawning the kubelet thread: {e}"))?;
        let nodes = rx
            .recv()
            .map_err(|_| "the kubelet thread died".to_string())??;
        let pods = model_pods(&config, &nodes);
        Ok(Kubelets {
            nodes,
            pods,
            stop,
            thread: Some(thread),
            netns,
        })
    }

    /// Pods of `node`.
    pub fn pods_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a SimPod> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }
}

impl Drop for Kubelets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // `netns` is dropped after this: the namespace goes once nothing holds it.
    }
}

/// Moves the calling thread into the named network namespace (sockets it creates live there).
fn enter_netns(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid descriptor; affects only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Runs the fleet on `ns_ip` (the namespace's veth address), on a
/// current-thread runtime so that every socket is made by this (namespaced) thread.
fn serve_in_netns(
    config: FleetConfig,
    ns_ip: Ipv4Addr,
    stop: Arc<AtomicBool>,
    tx: std::sync::mpsc::Sender<Result<Vec<Kubelet>, String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = tx.send(Err(format!("kubelet runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let fleet = match fleet::start_on(config, IpAddr::V4(ns_ip)).await {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(format!("starting the fleet on {ns_ip}: {e}")));
                return;
            }
        };
        let nodes: Vec<Kubelet> = fleet
            .nodes
            .iter()
            .map(|n| Kubelet {
                name: n.name.clone(),
                ip: ns_ip,
                port: n.addr.port(),
                mode: n.mode,
            })
            .collect();
        let _ = tx.send(Ok(nodes));
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(fleet);
    });
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// The pods the fleet serves, read from its model (names are stable with [`STABLE_CHURN`]),
/// with a phase per pod: one in five Pending, one in five Succeeded, one in five Restarting.
fn model_pods(config: &FleetConfig, nodes: &[Kubelet]) -> Vec<SimPod> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut pods = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let text = config.payload(i, now, now);
        let mut seen: Vec<SimPod> = Vec::new();
        for line in text.lines() {
            let Some(labels) = line
                .strip_prefix("container_cpu_usage_seconds_total{")
                .and_then(|l| l.split('}').next())
            else {
                continue;
            };
            let label = |k: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            let (ns, pod, c) = (label("namespace"), label("pod"), label("container"));
            match seen.iter_mut().find(|p| p.namespace == ns && p.name == pod) {
                Some(p) => p.containers.push(c),
                None => seen.push(SimPod {
                    node: node.name.clone(),
                    namespace: ns,
                    name: pod,
                    containers: vec![c],
                    phase: Phase::Running,
                }),
            }
        }
        for (k, p) in seen.iter_mut().enumerate() {
            p.phase = match (pods.len() + k) % 5 {
                1 => Phase::Pending,
                2 => Phase::Succeeded,
                3 => Phase::Restarting,
                _ => Phase::Running,
            };
        }
        pods.extend(seen);
    }
    pods
}

// ---------------------------------------------------------------------------------------------
// Node and Pod objects
// ---------------------------------------------------------------------------------------------

fn kubectl_json(cp: &ControlPlane, args: &[&str], json: &serde_json::Value) {
    let out = cp.kubectl_stdin(args, &json.to_string());
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a Node per kubelet, with InternalIP and kubelet port set through the status
/// subresource (plus capacity, allocatable and Ready, as a kubelet would report them). A Node
/// that exists already only gets the status (as `kubectl apply` of the same object would).
pub fn create_nodes(cp: &ControlPlane, kubelets: &Kubelets) {
    let nodes = &kubelets.nodes;
    bulk_write(cp, "Node objects", nodes.len(), |i| {
        let n = &nodes[i];
        let node = serde_json::json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name, "labels": {"kubernetes.io/hostname": n.name, "kaddons.io/simulated": "true"}}});
        Job {
            name: format!("node {}", n.name),
            steps: vec![
                Step::post("/api/v1/nodes".into(), &node),
                Step::merge_patch(format!("/api/v1/nodes/{}/status", n.name), &node_status(n)),
            ],
        }
    });
}

/// The status a kubelet would report for `n` (as a merge patch of the status subresource).
fn node_status(n: &Kubelet) -> serde_json::Value {
    serde_json::json!({"status": {
        "addresses": [{"type": "InternalIP", "address": n.ip.to_string()}, {"type": "Hostname", "address": n.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": n.port}},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated",
            "lastHeartbeatTime": "2026-12-03T00:00:00Z", "lastTransitionTime": "2026-12-03T00:00:00Z"}],
        "nodeInfo": {"kubeletVersion": crate::cluster::KUBERNETES_VERSION, "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64"}
    }})
}

/// Creates the namespaces and a Pod bound to its node for every simulated pod, with the status
/// of its [`Phase`] set through the status subresource. Objects that exist already are kept
/// (a Pod's spec cannot change anyway); they only get the status.
pub fn create_pods(cp: &ControlPlane, pods: &[SimPod]) {
    let mut namespaces: Vec<&str> = pods.iter().map(|p| p.namespace.as_str()).collect();
    namespaces.sort();
    namespaces.dedup();
    // All namespaces before any Pod: a Pod needs its namespace and, since no
    // kube-controller-manager makes it, the namespace's `default` ServiceAccount.
    bulk_write(cp, "namespaces", namespaces.len(), |i| {
        let ns = namespaces[i];
        Job {
            name: format!("namespace {ns}"),
            steps: vec![
                Step::post(
                    "/api/v1/namespaces".into(),
                    &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                ),
                Step::post(
                    format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                    &serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}),
                ),
            ],
        }
    });
    bulk_write(cp, "Pod objects", pods.len(), |i| {
        let p = &pods[i];
        let path = format!("/api/v1/namespaces/{}/pods", p.namespace);
        Job {
            name: format!("pod {}/{}", p.namespace, p.name),
            steps: vec![
                Step::post(path.clone(), &pod_object(p)),
                Step::merge_patch(format!("{path}/{}/status", p.name), &pod_status(p)),
            ],
        }
    });
}

/// The Pod object of a simulated pod (also for a pod that the fleet does not serve).
pub fn pod_object(p: &SimPod) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = p
        .containers
        .iter()
        .map(|c| serde_json::json!({"name": c, "image": "registry.k8s.io/pause:3.10"}))
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": p.name, "namespace": p.namespace, "labels": {"app": p.name.split('-').take(2).collect::<Vec<_>>().join("-")}},
        "spec": {"nodeName": p.node, "containers": containers, "terminationGracePeriodSeconds": 0, "automountServiceAccountToken": false}})
}

/// Sets the status of `p` as a kubelet would.
pub fn set_pod_status(cp: &ControlPlane, p: &SimPod) {
    bulk_write(cp, "Pod status", 1, |_| Job {
        name: format!("pod {}/{}", p.namespace, p.name),
        steps: vec![Step::merge_patch(
            format!("/api/v1/namespaces/{}/pods/{}/status", p.namespace, p.name),
            &pod_status(p),
        )],
    });
}

/// The status a kubelet would report for `p` (as a merge patch of the status subresource).
fn pod_status(p: &SimPod) -> serde_json::Value {
    let started = "2026-12-02T13:00:00Z";
    let statuses: Vec<serde_json::Value> = p
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let base = serde_json::json!({"name": c, "image": "registry.k8s.io/pause:3.10", "imageID": ""});
            let mut s = base.as_object().cloned().unwrap_or_default();
            let (state, ready, restarts, last) = match p.phase {
                Phase::Running => (serde_json::json!({"running": {"startedAt": started}}), true, 0, None),
                Phase::Restarting if i == 0 => (
                    serde_json::json!({"running": {"startedAt": "2026-12-03T13:00:00Z"}}),
                    true,
                    3,
                    Some(serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": started, "finishedAt": "2026-12-03T12:59:59Z"}})),
                ),
                Phase::Restarting => (serde_json::json!({"running": {"startedAt": started}}), true, 0, None),
                Phase::Pending => (serde_json::json!({"waiting": {"reason": "ContainerCreating"}}), false, 0, None),
                Phase::Succeeded => (
                    serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": "2026-12-03T12:00:00Z"}}),
                    false,
                    0,
                    None,
                ),
            };
            s.insert("state".into(), state);
            s.insert("ready".into(), ready.into());
            s.insert("started".into(), (ready).into());
            s.insert("restartCount".into(), restarts.into());
            if let Some(last) = last {
                s.insert("lastState".into(), last);
            }
            serde_json::Value::Object(s)
        })
        .collect();
    let ready = matches!(p.phase, Phase::Running | Phase::Restarting);
    let phase = match p.phase {
        Phase::Running | Phase::Restarting => "Running",
        Phase::Pending => "Pending",
        Phase::Succeeded => "Succeeded",
    };
    let cond = |t: &str, ok: bool| serde_json::json!({"type": t, "status": if ok {"True"} else {"False"}, "lastTransitionTime": started});
    let mut status = serde_json::json!({
        "phase": phase,
        "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", ready), cond("Ready", ready)],
        "containerStatuses": statuses,
        "hostIP": "10.251.0.2",
        "podIP": "10.252.0.10",
    });
    if p.phase != Phase::Pending {
        status["startTime"] = started.into();
    }
    serde_json::json!({ "status": status })
}

// ---------------------------------------------------------------------------------------------
// Bulk writes
// ---------------------------------------------------------------------------------------------
//
// Why not kubectl: one process per object costs ~0.1 s, so 1,000 Nodes took 126 s and the
// 150,000 Pods of a 5,000-node benchmark would take hours. Here the requests go straight to the
// API server as admin (the control plane's client certificate) over kept-alive HTTP/1.1
// connections, IN_FLIGHT at a time: the API server and etcd, not the client, set the pace.

/// Requests in flight (one kept-alive connection each): enough to keep kube-apiserver and
/// etcd busy on two cores; more only queues in the API server.
const IN_FLIGHT: usize = 48;
/// Tries of one request that fails with 429, a 5xx or a broken connection.
const TRIES: u32 = 6;
/// Bulk writes of at least this many objects report progress on stderr (every 10%).
const REPORT_FROM: usize = 1000;

/// One request of a bulk write.
struct Step {
    method: hyper::Method,
    path: String,
    body: Bytes,
}

impl Step {
    /// Creates `object` (a 409 AlreadyExists counts as done: an earlier try may have created
    /// it before its connection broke, or an earlier call did).
    fn post(path: String, object: &serde_json::Value) -> Step {
        Step {
            method: hyper::Method::POST,
            path,
            body: Bytes::from(object.to_string()),
        }
    }

    /// A JSON merge patch (RFC 7386) of `path`.
    fn merge_patch(path: String, patch: &serde_json::Value) -> Step {
        Step {
            method: hyper::Method::PATCH,
            path,
            body: Bytes::from(patch.to_string()),
        }
    }

    fn content_type(&self) -> &'static str {
        if self.method == hyper::Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        }
    }
}

/// The requests about one object, sent in order on one connection; `name` is for errors.
struct Job {
    name: String,
    steps: Vec<Step>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Where and how a bulk write connects: the API server of `cp`, as its admin.
struct Target {
    /// `host:port` to connect to, also the Host header.
    authority: String,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
}

impl Target {
    fn of(cp: &ControlPlane) -> Target {
        let authority = cp
            .server
            .strip_prefix("https://")
            .unwrap_or(&cp.server)
            .trim_end_matches('/')
            .to_string();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string())
            .unwrap_or_else(|e| panic!("API server host {host:?}: {e}"));
        let read =
            |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        // What the admin kubeconfig trusts: the cluster CA, or what makes a replaced serving
        // certificate verifiable (Options::serving_cert).
        let trust = std::fs::read_to_string(&cp.admin_kubeconfig)
            .ok()
            .and_then(|k| {
                k.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("certificate-authority: ")
                        .map(PathBuf::from)
                })
            })
            .unwrap_or_else(|| cp.pki.ca_crt.clone());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&read(&trust)) {
            roots
                .add(c.expect("a certificate PEM"))
                .unwrap_or_else(|e| panic!("trusting {}: {e}", trust.display()));
        }
        let chain = CertificateDer::pem_slice_iter(&read(&cp.pki.admin_crt))
            .collect::<Result<Vec<_>, _>>()
            .expect("the admin certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&read(&cp.pki.admin_key)).expect("the admin key");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("the admin client certificate");
        Target {
            authority,
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    async fn connect(&self) -> Result<Sender, String> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", self.authority))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP with {}: {e}", self.authority))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One request on `conn` (connected first if it is not): (status, body), or why the
    /// connection failed (then `conn` is dropped, to be made again).
    async fn exchange(
        &self,
        conn: &mut Option<Sender>,
        step: &Step,
    ) -> Result<(u16, Bytes), String> {
        let result = async {
            let sender = match conn {
                Some(s) => s,
                None => conn.insert(self.connect().await?),
            };
            sender
                .ready()
                .await
                .map_err(|e| format!("connection: {e}"))?;
            let req = hyper::Request::builder()
                .method(step.method.clone())
                .uri(&step.path)
                .header(hyper::header::HOST, &self.authority)
                .header(hyper::header::CONTENT_TYPE, step.content_type())
                .header(hyper::header::ACCEPT, "application/json")
                // The field manager of what it writes (managedFields).
                .header(hyper::header::USER_AGENT, "kaddons-testkit")
                .body(Full::new(step.body.clone()))
                .expect("a valid request");
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let code = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("response body: {e}"))?
                .to_bytes();
            Ok((code, body))
        }
        .await;
        if result.is_err() {
            *conn = None;
        }
        result
    }

    /// Sends `step`, retrying what may pass (429, 5xx, a broken connection) with a short
    /// backoff; panics with the object's name, the status and the body otherwise.
    async fn send(&self, conn: &mut Option<Sender>, job: &str, step: &Step) {
        let mut last = String::new();
        for attempt in 0..TRIES {
            if attempt > 0 {
                // 200 ms, 400 ms, ... 1.6 s: about 4.6 s in all before giving up.
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
            }
            match self.exchange(conn, step).await {
                Err(e) => last = e,
                Ok((code, _)) if (200..300).contains(&code) => return,
                Ok((409, _)) if step.method == hyper::Method::POST => return,
                Ok((code, body)) => {
                    let body = String::from_utf8_lossy(&body);
                    let body: String = body.chars().take(2000).collect();
                    if code != 429 && code < 500 {
                        panic!("{} {} ({job}): HTTP {code}: {body}", step.method, step.path);
                    }
                    last = format!("HTTP {code}: {body}");
                }
            }
        }
        panic!(
            "{} {} ({job}) failed {TRIES} times; the last: {last}",
            step.method, step.path
        );
    }
}

/// Progress of a bulk write on stderr: every 10% and at the end, for big ones.
struct Progress<'a> {
    label: &'a str,
    count: usize,
    done: AtomicUsize,
    requests: AtomicUsize,
    started: Instant,
}

impl Progress<'_> {
    fn job_done(&self, requests: usize) {
        self.requests.fetch_add(requests, Ordering::Relaxed);
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.count >= REPORT_FROM && done * 10 / self.count != (done - 1) * 10 / self.count {
            let s = self.started.elapsed().as_secs_f64();
            eprintln!(
                "testkit: {}: {done}/{} in {s:.1} s ({:.0} requests/s)",
                self.label,
                self.count,
                self.requests.load(Ordering::Relaxed) as f64 / s
            );
        }
    }
}

/// Makes `count` objects: `job(i)` says the requests for the i-th, sent in order on one of
/// [`IN_FLIGHT`] kept-alive connections to the API server, as admin. Jobs are made as they are
/// sent, so 150,000 Pods are never all in memory. On a small runtime of its own (callers stay
/// synchronous); from inside a tokio runtime it runs on a thread of its own.
fn bulk_write(cp: &ControlPlane, label: &str, count: usize, job: impl Fn(usize) -> Job + Sync) {
    if count == 0 {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        // block_on panics inside a runtime; a scoped thread has none.
        std::thread::scope(|s| {
            if let Err(panic) = s.spawn(|| write_jobs(cp, label, count, &job)).join() {
                std::panic::resume_unwind(panic);
            }
        });
    } else {
        write_jobs(cp, label, count, &job);
    }
}

fn write_jobs(cp: &ControlPlane, label: &str, count: usize, job: &(dyn Fn(usize) -> Job + Sync)) {
    let target = Target::of(cp);
    let next = AtomicUsize::new(0);
    let progress = Progress {
        label,
        count,
        done: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
        started: Instant::now(),
    };
    let worker = || async {
        let mut conn = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                return;
            }
            let job = job(i);
            for step in &job.steps {
                target.send(&mut conn, &job.name, step).await;
            }
            progress.job_done(job.steps.len());
        }
    };
    // One thread: TLS and JSON for the client are small next to what each request costs the
    // API server and etcd, which share the machine with it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the bulk write runtime");
    runtime.block_on(futures::future::join_all(
        (0..IN_FLIGHT.min(count)).map(|_| worker()),
    ));
    if count >= REPORT_FROM {
        let s = progress.started.elapsed().as_secs_f64();
        let requests = progress.requests.load(Ordering::Relaxed);
        eprintln!(
            "testkit: {label}: {count} made with {requests} requests in {s:.1} s ({:.0} requests/s, {IN_FLIGHT} in flight)",
            requests as f64 / s
        );
    }
}

// ---------------------------------------------------------------------------------------------
// kube-apiserver flags, RBAC and the metrics server's credentials
// ---------------------------------------------------------------------------------------------

/// kube-apiserver flags for the node proxy: kubelets by InternalIP, with a client certificate.
/// The certificate comes from a CA of its own (the harness does not expose the cluster CA's
/// key; the simulated kubelets do not check client certificates anyway). Files are in `dir`.
pub fn node_proxy_apiserver_args(dir: &Path) -> Vec<String> {
    let ca = Ca::new("kaddons-test-kubelet-client-ca");
    let (crt, key) = ca.client_cert("kube-apiserver-kubelet-client", &["system:masters"]);
    let (c, k) = (
        dir.join("apiserver-kubelet-client.crt"),
        dir.join("apiserver-kubelet-client.key"),
    );
    std::fs::write(&c, crt).expect("writing the kubelet client certificate");
    std::fs::write(&k, key).expect("writing the kubelet client key");
    vec![
        "--kubelet-preferred-address-types=InternalIP".into(),
        format!("--kubelet-client-certificate={}", c.display()),
        format!("--kubelet-client-key={}", k.display()),
    ]
}

/// The ServiceAccount and RBAC of upstream's manifest (v0.8.1 components.yaml, without the
/// Deployment, Service and APIService).
pub const RBAC_YAML: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  labels: {k8s-app: metrics-server}
  name: metrics-server
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  labels:
    k8s-app: metrics-server
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
  name: system:aggregated-metrics-reader
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  labels: {k8s-app: metrics-server}
  name: system:metrics-server
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  labels: {k8s-app: metrics-server}
  name: metrics-server-auth-reader
  namespace: kube-system
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects:
- {kind: ServiceAccount, name: metrics-server, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  labels: {k8s-app: metrics-server}
  name: metrics-server:system:auth-delegator
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects:
- {kind: ServiceAccount, name: metrics-server, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  labels: {k8s-app: metrics-server}
  name: system:metrics-server
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:metrics-server}
subjects:
- {kind: ServiceAccount, name: metrics-server, namespace: kube-system}
"#;

/// Applies [`RBAC_YAML`] and writes a kubeconfig for the ServiceAccount (a token from
/// `kubectl create token`) into `dir`.
pub fn service_account_kubeconfig(cp: &ControlPlane, dir: &Path) -> PathBuf {
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], RBAC_YAML);
    assert!(
        out.status.success(),
        "applying the RBAC: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = cp.kubectl_ok(&[
        "create",
        "token",
        "metrics-server",
        "-n",
        "kube-system",
        "--duration=24h",
    ]);
    let path = dir.join("metrics-server.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: metrics-server\n  user:\n    token: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: metrics-server\ncurrent-context: c\n",
            cp.server,
            cp.pki.ca_crt.display(),
            token.trim()
        ),
    )
    .expect("writing the metrics-server kubeconfig");
    path
}

// ---------------------------------------------------------------------------------------------
// Metrics server processes
// ---------------------------------------------------------------------------------------------

/// Which metrics server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// sigs.k8s.io/metrics-server v0.8.0, built by `metrics-server-upstream/build.sh`.
    Upstream,
    /// `kaddons-metrics-server` of this workspace.
    Builtin,
}

impl Implementation {
    pub const ALL: [Implementation; 2] = [Implementation::Upstream, Implementation::Builtin];

    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::Upstream => "upstream",
            Implementation::Builtin => "builtin",
        }
    }

    /// Path of the binary. `$KADDONS_METRICS_SERVER_BIN` overrides ours (a copy of a given
    /// build, so that a benchmark does not run whatever sits in the shared target dir).
    pub fn binary(self) -> PathBuf {
        match self {
            Implementation::Upstream => upstream_bin_dir().join("metrics-server"),
            Implementation::Builtin => match std::env::var_os("KADDONS_METRICS_SERVER_BIN") {
                Some(path) => PathBuf::from(path),
                None => {
                    crate::bins::workspace_bin("kaddons-metrics-server", "kaddons-metrics-server")
                }
            },
        }
    }
}

/// Directory of upstream's `metrics-server` (cached build; `$KADDONS_METRICS_SERVER_UPSTREAM_BIN`
/// overrides). Panics when the build fails.
pub fn upstream_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KADDONS_METRICS_SERVER_UPSTREAM_BIN") {
            return PathBuf::from(dir);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics-server-upstream/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed", script.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
    })
    .clone()
}

/// A metrics server process on 127.0.0.1. Killed on drop; its log is printed when a test
/// panics while it is alive.
pub struct MetricsServer {
    pub implementation: Implementation,
    pub port: u16,
    /// The arguments as given to [`MetricsServer::start`] (the same for both servers).
    pub args: Vec<String>,
    pub dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl MetricsServer {
    /// The arguments both servers get, except the binary: outside a cluster, kubelets by
    /// InternalIP and the port in the Node status, self-signed serving certificate in `cert_dir`.
    pub fn common_args(
        kubeconfig: &Path,
        port: u16,
        cert_dir: &Path,
        resolution: &str,
    ) -> Vec<String> {
        let kc = kubeconfig.display();
        vec![
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--cert-dir={}", cert_dir.display()),
            "--kubelet-insecure-tls".into(),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--kubelet-use-node-status-port".into(),
            format!("--metric-resolution={resolution}"),
            "--kubelet-request-timeout=5s".into(),
            "--v=2".into(),
        ]
    }

    /// Starts `implementation` with [`MetricsServer::common_args`] on a free port.
    pub fn start(implementation: Implementation, kubeconfig: &Path, resolution: &str) -> Self {
        let dir = own_dir(&format!("ms-{}", implementation.as_str()));
        let port = free_port();
        let args = MetricsServer::common_args(kubeconfig, port, &dir.join("certs"), resolution);
        MetricsServer::start_with(implementation, port, args, dir)
    }

    fn start_with(
        implementation: Implementation,
        port: u16,
        args: Vec<String>,
        dir: PathBuf,
    ) -> Self {
        let log = dir.join(format!("{}.log", implementation.as_str()));
        let file = std::fs::File::create(&log).expect("creating the server log");
        let file2 = file.try_clone().expect("cloning the log file");
        let mut cmd = Command::new(implementation.binary());
        cmd.args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", implementation.binary()));
        MetricsServer {
            implementation,
            port,
            args,
            dir,
            log,
            child: Some(child),
        }
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process (the chain breaks), and first its descendants: a wrapper in the
    /// binary's place (a script running heaptrack or valgrind) runs the server as its child,
    /// which would outlive the wrapper (PR_SET_PDEATHSIG is not inherited).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            for pid in descendants(c.id()) {
                // SAFETY: plain kill(2) of a process this server's child started.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A kubeconfig that talks to this server directly as the control plane's admin (client
    /// certificate from the cluster CA; the self-signed serving certificate is not verified).
    pub fn direct_kubeconfig(&self, cp: &ControlPlane) -> PathBuf {
        let path = self.dir.join("direct.kubeconfig");
        let mut text = String::new();
        let _ = write!(
            text,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: direct\n  cluster:\n    server: https://127.0.0.1:{}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: direct\n  context:\n    cluster: direct\n    user: admin\ncurrent-context: direct\n",
            self.port,
            cp.pki.admin_crt.display(),
            cp.pki.admin_key.display()
        );
        std::fs::write(&path, text).expect("writing the direct kubeconfig");
        path
    }

    /// The file the server's stdout and stderr go to; it is deleted with the server.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A guard that prints this server's log if the test panics while it is alive.
    pub fn failure_guard(&self) -> ServerLogGuard {
        ServerLogGuard {
            name: self.implementation.as_str(),
            log: self.log.clone(),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every descendant of `pid` (from the parent ids in `/proc/*/stat`), the deepest first.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // After the command's closing parenthesis: state, then the parent id.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, _) in parents.iter().filter(|(_, parent)| *parent == p) {
            found.push(child);
            frontier.push(child);
        }
    }
    found.reverse();
    found
}

/// Prints a metrics server's log tail when dropped during a panic.
pub struct ServerLogGuard {
    name: &'static str,
    log: PathBuf,
}

impl Drop for ServerLogGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = logs.lines().collect();
            let from = lines.len().saturating_sub(60);
            eprintln!(
                "----- {} metrics server log (last {} lines)\n{}",
                self.name,
                lines.len() - from,
                lines[from..].join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// Registers a server on 127.0.0.1:`port` as [`APISERVICE`]: a Service of `type: ExternalName`
/// (externalName 127.0.0.1, port `port`) and the APIService pointing at it.
pub fn register(cp: &ControlPlane, port: u16) {
    let objects = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "metrics-server", "namespace": "kube-system", "labels": {"k8s-app": "metrics-server"}},
         "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": APISERVICE, "labels": {"k8s-app": "metrics-server"}},
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": true,
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "service": {"name": "metrics-server", "namespace": "kube-system", "port": port}}}
    ]});
    kubectl_json(cp, &["apply", "-f", "-"], &objects);
}

/// Removes the APIService and its Service.
pub fn unregister(cp: &ControlPlane) {
    cp.kubectl_ok(&[
        "delete",
        "apiservice",
        APISERVICE,
        "--ignore-not-found",
        "--wait=false",
    ]);
    cp.kubectl_ok(&[
        "delete",
        "service",
        "-n",
        "kube-system",
        "metrics-server",
        "--ignore-not-found",
        "--wait=false",
    ]);
}

/// The APIService's Available condition: (status, reason, message).
pub fn available(cp: &ControlPlane) -> Option<(String, String, String)> {
    let out = cp
        .kubectl(&["get", "apiservice", APISERVICE, "-o", "json"])
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let c = v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Available")?
        .clone();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

/// Polls until the APIService's Available condition has `status` (bounded by `limit`, a guard
/// against hangs): the last condition seen on failure.
pub fn wait_available(cp: &ControlPlane, status: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < deadline {
        last = available(cp);
        if last.as_ref().is_some_and(|(s, _, _)| s == status) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "APIService {APISERVICE} not Available={status} after {limit:?}; last: {last:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_found_deepest_first() {
        // sh → sh → sleep, and sh → sleep.
        let mut child = Command::new("sh")
            .args(["-c", "sh -c 'sleep 30; true' & sleep 30; wait"])
            .spawn()
            .expect("running sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = descendants(child.id());
        while found.len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            found = descendants(child.id());
        }
        let ppid = |pid: u32| -> u32 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
            after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        let parents: Vec<u32> = found.iter().map(|p| ppid(*p)).collect();
        for pid in &found {
            // SAFETY: plain kill(2) of a process this test started.
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.len(), 3, "{found:?}");
        // Each one's parent is the shell started here or comes later in the list.
        for (i, parent) in parents.iter().enumerate() {
            assert!(
                *parent == child.id() || found[i + 1..].contains(parent),
                "{found:?} with parents {parents:?}"
            );
        }
        assert!(parents.iter().any(|p| *p != child.id()), "{parents:?}");
    }
}
