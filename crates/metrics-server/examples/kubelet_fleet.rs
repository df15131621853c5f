//! Kubelet fleet simulator for the scale and fault runs of the built-in metrics server
//! (scripts/bench-scale.sh): N simulated kubelets × M pods over HTTPS on 127.0.0.1, one port
//! each, as a process of its own so that its CPU is not counted as the server's.
//!
//! The model and the fault modes live in tests/kubelet_fleet.rs (shared with the fault test).
//! The node list (name, address, port, CA file, mode) is written to `--out`; the server side
//! (examples/metrics_harness.rs) reads it into a `StaticSource`: there is no API server.
//! The process exits by itself after `--duration-secs`.
//!
//! `cargo run --release --example kubelet_fleet -- --nodes 1000 --pods 30 --out /tmp/fleet \
//!     --faulty-per-mode 10 --duration-secs 300`

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kaddons_testkit::fleet;

struct Args {
    nodes: usize,
    pods: usize,
    out: PathBuf,
    faulty_per_mode: usize,
    duration: Duration,
    slow_delay: Duration,
    churn: Duration,
    threads: usize,
}

fn args() -> Args {
    let mut a = Args {
        nodes: 100,
        pods: 30,
        out: PathBuf::from("/tmp/kubelet-fleet"),
        faulty_per_mode: 0,
        duration: Duration::from_secs(300),
        slow_delay: Duration::from_secs(2),
        churn: Duration::from_secs(120),
        threads: 1,
    };
    for (flag, value) in fleet::example_flags() {
        let num = || fleet::flag_num(&flag, &value);
        match flag.as_str() {
            "--nodes" => a.nodes = num() as usize,
            "--pods" => a.pods = num() as usize,
            "--out" => a.out = PathBuf::from(&value),
            "--faulty-per-mode" => a.faulty_per_mode = num() as usize,
            "--duration-secs" => a.duration = Duration::from_secs(num()),
            "--slow-delay-ms" => a.slow_delay = Duration::from_millis(num()),
            "--churn-secs" => a.churn = Duration::from_secs(num()),
            "--threads" => a.threads = num() as usize,
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

fn main() {
    let a = args();
    kaddons_metrics_server::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config = fleet::FleetConfig::new(a.nodes, a.pods);
        config.faulty_per_mode = a.faulty_per_mode;
        config.slow_delay = a.slow_delay;
        config.churn_period = a.churn;
        let f = fleet::start(config)
            .await
            .expect("binding the fleet's listeners");
        std::fs::create_dir_all(&a.out).expect("output directory");
        let ca = a.out.join("ca.crt");
        std::fs::write(&ca, &f.ca_pem).expect("writing the CA");
        f.write_node_list(&a.out.join("nodes.tsv"), &ca)
            .expect("writing the node list");
        let faulty = f
            .nodes
            .iter()
            .filter(|n| n.mode != fleet::Mode::Healthy)
            .count();
        eprintln!(
            "kubelet fleet: {} nodes × {} pods ({faulty} faulty) on 127.0.0.1, list in {}",
            a.nodes,
            a.pods,
            a.out.join("nodes.tsv").display()
        );
        tokio::time::sleep(a.duration).await;
        let c = &f.counters;
        eprintln!(
            "kubelet fleet done: {} connections, {} requests, {} MB sent",
            c.connections.load(Ordering::Relaxed),
            c.requests.load(Ordering::Relaxed),
            c.bytes.load(Ordering::Relaxed) / 1_000_000
        );
    });
    // Do not wait for connection tasks: the process is done.
    rt.shutdown_timeout(Duration::from_millis(100));
}
