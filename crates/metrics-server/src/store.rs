//! The point store: the last two samples of every node and container, and the usage rates
//! computed from them.
//!
//! kubelet reports cumulative CPU counters, while `metrics.k8s.io` serves rates, so the
//! server must remember the previous sample of everything it scrapes. This module does that
//! with upstream metrics-server's rules (`pkg/storage`):
//!
//! * each scrape cycle replaces the whole picture: a node or pod absent from the cycle is
//!   forgotten, including a node that failed to scrape (the scraper simply leaves it out).
//!   Serving stale points of an unreachable node would be worse than serving none, and the
//!   next successful scrape gives it a window again after one more cycle;
//! * CPU rate = Δcumulative CPU / Δt between the two samples, over a window of Δt, stamped
//!   with the later sample's time;
//! * a container whose start time changed, or whose counter went backwards, restarted: its
//!   previous sample is discarded, so it has no rate until the next scrape;
//! * a container that started at least 10 s but less than one metric resolution before its
//!   only sample gets a rate from its start time (its counter was zero then);
//! * a pod is served only when every one of its containers has a rate; its time and window
//!   are those of its container with the earliest sample, as upstream.
//!
//! Where upstream differs, on purpose: a container whose counter went backwards makes upstream
//! serve its pod without that container (under-reporting the pod); here the pod waits one
//! cycle. Upstream treats a container as restarted only when its new start time is after the
//! stored sample; here any change of start time counts. Upstream prefers the start-time window
//! for a fresh container even when it has a real previous sample; here the real one wins and
//! the start time is only used for a container with a single sample.
//!
//! Memory is kept small on purpose: a container costs one compact record (names interned as
//! shared `Arc<str>` across pods and cycles); 1000 nodes x 30 pods (40 000 containers) hold
//! about 5 MiB (see [`Store::stats`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::decode::{ms_to_time, ContainerPoint, MetricsBatch, PodPoint};
use kaddons_model::usage::{ContainerUsage, MetricsProvider, NodeUsage, PodUsage};

/// Below this, a fresh container's only sample is too close to its start for a usable rate
/// (upstream's `freshContainerMinMetricsResolution`).
pub const FRESH_CONTAINER_MIN_AGE: Duration = Duration::from_secs(10);

/// A cumulative CPU sample. `NonZeroU64` lets `Option<Cpu>` stay 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cpu {
    core_ns: u64,
    ms: NonZeroU64,
}

impl Cpu {
    fn new(core_ns: u64, ms: u64) -> Option<Cpu> {
        NonZeroU64::new(ms).map(|ms| Cpu { core_ns, ms })
    }
}

/// How a new sample relates to what was stored for the same node or container.
fn previous_for(new: Cpu, last: Cpu, prev: Option<Cpu>) -> Option<Cpu> {
    if new.ms > last.ms {
        // A newer sample: the stored one becomes the previous, unless the counter went
        // backwards (a reset we did not see through the start time).
        (new.core_ns >= last.core_ns).then_some(last)
    } else {
        // The same (or an older) sample again: keep the previous one if it still precedes it.
        prev.filter(|p| p.ms < new.ms && p.core_ns <= new.core_ns)
    }
}

/// nanocores and window between two samples; `None` if they do not form a usable window.
fn rate(last: Cpu, prev: Cpu) -> Option<(u64, Duration)> {
    let dt_ms = last
        .ms
        .get()
        .checked_sub(prev.ms.get())
        .filter(|&d| d > 0)?;
    let d_ns = last.core_ns.checked_sub(prev.core_ns)?;
    let nanocores = u128::from(d_ns) * 1000 / u128::from(dt_ms);
    Some((
        u64::try_from(nanocores).unwrap_or(u64::MAX),
        Duration::from_millis(dt_ms),
    ))
}

#[derive(Debug)]
struct NodeSeries {
    cycle: u64,
    last: Cpu,
    memory: u64,
    prev: Option<Cpu>,
}

#[derive(Debug, Clone)]
struct ContainerSeries {
    name: Arc<str>,
    start_ms: Option<NonZeroU64>,
    last: Cpu,
    memory: u64,
    prev: Option<Cpu>,
}

impl ContainerSeries {
    /// First sight of a container (or of a new instance after a restart).
    fn first(name: Arc<str>, point: &ContainerPoint<'_>, last: Cpu, resolution_ms: u64) -> Self {
        let start_ms = point.start_time_ms.and_then(NonZeroU64::new);
        ContainerSeries {
            name,
            start_ms,
            last,
            memory: point.memory.bytes,
            prev: fresh_prev(start_ms, last, resolution_ms),
        }
    }

    fn advance(&mut self, point: &ContainerPoint<'_>, new: Cpu, resolution_ms: u64) {
        let start_ms = point.start_time_ms.and_then(NonZeroU64::new);
        let prev = if start_ms != self.start_ms {
            // Restarted: the old samples belong to another instance.
            fresh_prev(start_ms, new, resolution_ms)
        } else if new.ms > self.last.ms && new.core_ns < self.last.core_ns {
            // Counter went backwards without a start time change: no rate this cycle.
            None
        } else {
            previous_for(new, self.last, self.prev)
                .or_else(|| fresh_prev(start_ms, new, resolution_ms))
        };
        *self = ContainerSeries {
            name: self.name.clone(),
            start_ms,
            last: new,
            memory: point.memory.bytes,
            prev,
        };
    }
}

/// The synthetic "zero at start time" sample of a container seen only once, when it started
/// between [`FRESH_CONTAINER_MIN_AGE`] and one resolution before the sample.
fn fresh_prev(start_ms: Option<NonZeroU64>, last: Cpu, resolution_ms: u64) -> Option<Cpu> {
    let start = start_ms?;
    let age = last.ms.get().checked_sub(start.get())?;
    let min = FRESH_CONTAINER_MIN_AGE.as_millis() as u64;
    (age >= min && age < resolution_ms).then_some(Cpu {
        core_ns: 0,
        ms: start,
    })
}

#[derive(Debug)]
struct PodSeries {
    cycle: u64,
    /// Sorted by name, no duplicates.
    containers: Box<[ContainerSeries]>,
}

/// Counts and an estimate of the heap the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub nodes: usize,
    pub pods: usize,
    pub containers: usize,
    /// Stored samples (last + prev) over nodes and containers.
    pub points: usize,
    /// Approximate heap bytes: table capacities, records and name strings.
    pub approx_bytes: usize,
}

/// Two samples per node and container, updated once per scrape cycle. Not thread-safe on its
/// own; see [`SharedStore`].
#[derive(Debug)]
pub struct Store {
    resolution_ms: u64,
    cycle: u64,
    nodes: HashMap<Box<str>, NodeSeries>,
    /// namespace -> pod name -> series. Two levels so that lookups borrow the batch's `&str`s
    /// instead of building a combined key.
    pods: HashMap<Arc<str>, HashMap<Box<str>, PodSeries>>,
    /// Namespaces and container names, shared by every pod that uses them.
    names: HashSet<Arc<str>>,
}

impl Store {
    /// `metric_resolution` is the scrape period; it bounds the fresh-container rule.
    pub fn new(metric_resolution: Duration) -> Self {
        Store {
            resolution_ms: u64::try_from(metric_resolution.as_millis()).unwrap_or(u64::MAX),
            cycle: 0,
            nodes: HashMap::new(),
            pods: HashMap::new(),
            names: HashSet::new(),
        }
    }

    /// Records one scrape cycle: the batches of every node that was scraped successfully,
    /// with the node's name. Nodes and pods missing from the cycle are forgotten. When a pod
    /// shows up in two batches (it moved between scrapes), the first one wins.
    pub fn store<'a, I>(&mut self, cycle: I)
    where
        I: IntoIterator<Item = (&'a str, &'a MetricsBatch)>,
    {
        self.cycle += 1;
        let now = self.cycle;
        let resolution_ms = self.resolution_ms;
        for (node_name, batch) in cycle {
            if let Some(point) = batch.node {
                self.store_node(
                    node_name,
                    point.cpu.core_ns,
                    point.cpu.timestamp_ms,
                    point.memory.bytes,
                );
            }
            for pod in batch.pods() {
                self.store_pod(&pod, now, resolution_ms);
            }
        }
        self.nodes.retain(|_, n| n.cycle == now);
        shrink_if_sparse(&mut self.nodes);
        self.pods.retain(|_, pods| {
            pods.retain(|_, p| p.cycle == now);
            shrink_if_sparse(pods);
            !pods.is_empty()
        });
        shrink_if_sparse(&mut self.pods);
        // Names only the interner still holds belong to pods that are gone.
        self.names.retain(|n| Arc::strong_count(n) > 1);
    }

    fn store_node(&mut self, name: &str, core_ns: u64, ms: u64, memory: u64) {
        let Some(new) = Cpu::new(core_ns, ms) else {
            return;
        };
        let now = self.cycle;
        match self.nodes.get_mut(name) {
            Some(n) if n.cycle == now => {} // duplicate node in one cycle: first wins
            Some(n) => {
                n.prev = previous_for(new, n.last, n.prev);
                n.last = new;
                n.memory = memory;
                n.cycle = now;
            }
            None => {
                self.nodes.insert(
                    name.into(),
                    NodeSeries {
                        cycle: now,
                        last: new,
                        memory,
                        prev: None,
                    },
                );
            }
        }
    }

    fn store_pod(&mut self, pod: &PodPoint<'_>, now: u64, resolution_ms: u64) {
        if !self.pods.contains_key(pod.namespace) {
            let namespace = intern(&mut self.names, pod.namespace);
            self.pods.insert(namespace, HashMap::new());
        }
        let Some(pods) = self.pods.get_mut(pod.namespace) else {
            return;
        };
        if let Some(series) = pods.get_mut(pod.name) {
            // A second sighting in one cycle is a duplicate: the first one wins.
            if series.cycle != now {
                update_pod(series, pod, now, resolution_ms, &mut self.names);
            }
            return;
        }
        let mut series = PodSeries {
            cycle: now,
            containers: Box::default(),
        };
        update_pod(&mut series, pod, now, resolution_ms, &mut self.names);
        pods.insert(pod.name.into(), series);
    }
}

/// Moves one pod's series to this cycle's samples.
fn update_pod(
    series: &mut PodSeries,
    pod: &PodPoint<'_>,
    now: u64,
    resolution_ms: u64,
    names: &mut HashSet<Arc<str>>,
) {
    series.cycle = now;
    // Fast path: same containers as last cycle (the normal case) -> update in place.
    let n = pod.container_count();
    if series.containers.len() == n
        && series
            .containers
            .iter()
            .zip(pod.containers())
            .all(|(s, c)| *s.name == *c.name)
    {
        for (s, c) in series.containers.iter_mut().zip(pod.containers()) {
            match Cpu::new(c.cpu.core_ns, c.cpu.timestamp_ms) {
                Some(cpu) => s.advance(&c, cpu, resolution_ms),
                None => s.prev = None,
            }
        }
        return;
    }

    // The container set changed: rebuild, carrying over what matches by name.
    let mut points: Vec<ContainerPoint<'_>> = pod.containers().collect();
    points.sort_unstable_by(|a, b| a.name.cmp(b.name));
    points.dedup_by(|a, b| a.name == b.name);
    let mut rebuilt = Vec::with_capacity(points.len());
    for c in &points {
        let Some(cpu) = Cpu::new(c.cpu.core_ns, c.cpu.timestamp_ms) else {
            continue;
        };
        let old = series
            .containers
            .binary_search_by(|s| (*s.name).cmp(c.name))
            .ok()
            .and_then(|i| series.containers.get(i));
        rebuilt.push(match old {
            Some(old) => {
                let mut s = old.clone();
                s.advance(c, cpu, resolution_ms);
                s
            }
            None => ContainerSeries::first(intern(names, c.name), c, cpu, resolution_ms),
        });
    }
    series.containers = rebuilt.into_boxed_slice();
}

impl Store {
    /// Counts and approximate memory held.
    pub fn stats(&self) -> StoreStats {
        // hashbrown uses one control byte per bucket on top of the entry.
        fn table<K, V>(capacity: usize) -> usize {
            capacity * (std::mem::size_of::<(K, V)>() + 1)
        }
        let mut s = StoreStats {
            nodes: self.nodes.len(),
            ..StoreStats::default()
        };
        s.approx_bytes += table::<Box<str>, NodeSeries>(self.nodes.capacity());
        for (name, n) in &self.nodes {
            s.approx_bytes += name.len();
            s.points += 1 + usize::from(n.prev.is_some());
        }
        s.approx_bytes += table::<Arc<str>, HashMap<Box<str>, PodSeries>>(self.pods.capacity());
        for pods in self.pods.values() {
            s.approx_bytes += table::<Box<str>, PodSeries>(pods.capacity());
            s.pods += pods.len();
            for (name, p) in pods {
                s.approx_bytes += name.len() + std::mem::size_of_val(&*p.containers);
                s.containers += p.containers.len();
                s.points += p
                    .containers
                    .iter()
                    .map(|c| 1 + usize::from(c.prev.is_some()))
                    .sum::<usize>();
            }
        }
        s.approx_bytes += table::<Arc<str>, ()>(self.names.capacity());
        // Arc<str> allocation: two counters plus the bytes.
        s.approx_bytes += self.names.iter().map(|n| n.len() + 16).sum::<usize>();
        s
    }
}

/// Gives memory back after a cluster shrinks (hash tables never shrink by themselves), with
/// enough slack that a table near its size is not reallocated every cycle.
fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

fn intern(names: &mut HashSet<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(existing) = names.get(name) {
        return existing.clone();
    }
    let arc: Arc<str> = Arc::from(name);
    names.insert(arc.clone());
    arc
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

impl MetricsProvider for Store {
    fn nodes(&self) -> Vec<NodeUsage> {
        self.nodes
            .iter()
            .filter_map(|(name, n)| {
                let (cpu_nanocores, window) = rate(n.last, n.prev?)?;
                Some(NodeUsage {
                    name: name.to_string(),
                    labels: labels(),
                    timestamp: ms_to_time(n.last.ms.get()),
                    window,
                    cpu_nanocores,
                    memory_bytes: n.memory,
                })
            })
            .collect()
    }

    fn pods(&self) -> Vec<PodUsage> {
        let mut out = Vec::new();
        for (namespace, pods) in &self.pods {
            for (name, p) in pods {
                if let Some(usage) = pod_usage(namespace, name, &p.containers) {
                    out.push(usage);
                }
            }
        }
        out
    }

    fn node(&self, name: &str) -> Option<NodeUsage> {
        let n = self.nodes.get(name)?;
        let (cpu_nanocores, window) = rate(n.last, n.prev?)?;
        Some(NodeUsage {
            name: name.to_string(),
            labels: labels(),
            timestamp: ms_to_time(n.last.ms.get()),
            window,
            cpu_nanocores,
            memory_bytes: n.memory,
        })
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let p = self.pods.get(namespace)?.get(name)?;
        pod_usage(namespace, name, &p.containers)
    }
}

/// A pod's usage if every container has a rate. Like upstream, the pod's time and window
/// are those of its container with the earliest sample.
fn pod_usage(namespace: &str, name: &str, containers: &[ContainerSeries]) -> Option<PodUsage> {
    let mut earliest: Option<(NonZeroU64, Duration)> = None;
    let mut usages = Vec::with_capacity(containers.len());
    for c in containers {
        let (cpu_nanocores, window) = rate(c.last, c.prev?)?;
        if earliest.is_none_or(|(ms, _)| c.last.ms < ms) {
            earliest = Some((c.last.ms, window));
        }
        usages.push(ContainerUsage {
            name: c.name.to_string(),
            cpu_nanocores,
            memory_bytes: c.memory,
        });
    }
    let (ms, window) = earliest?;
    Some(PodUsage {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: labels(),
        timestamp: ms_to_time(ms.get()),
        window,
        containers: usages,
    })
}

/// The store shared between the scraper (one writer per cycle) and the API (many readers).
///
/// A plain `RwLock`: a cycle's update takes a few milliseconds even for a thousand nodes, so
/// readers wait at most that long, and std has everything needed. A poisoned lock is
/// recovered, because the store is consistent after every individual field update and a
/// metrics server that stops serving after one panic would be worse.
#[derive(Debug)]
pub struct SharedStore {
    inner: RwLock<Store>,
}

impl SharedStore {
    pub fn new(metric_resolution: Duration) -> Self {
        SharedStore {
            inner: RwLock::new(Store::new(metric_resolution)),
        }
    }

    /// See [`Store::store`].
    pub fn store<'a, I>(&self, cycle: I)
    where
        I: IntoIterator<Item = (&'a str, &'a MetricsBatch)>,
    {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .store(cycle);
    }

    pub fn stats(&self) -> StoreStats {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }
}

impl MetricsProvider for SharedStore {
    fn nodes(&self) -> Vec<NodeUsage> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .nodes()
    }

    fn pods(&self) -> Vec<PodUsage> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .pods()
    }

    fn node(&self, name: &str) -> Option<NodeUsage> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .node(name)
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .pod(namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use std::fmt::Write;
    use std::time::UNIX_EPOCH;

    const RES: Duration = Duration::from_secs(60);
    /// An arbitrary but realistic epoch offset for sample times (ms).
    const T0: u64 = 1_700_000_000_000;

    /// One container sample: (namespace, pod, container, cpu seconds, memory bytes, ms,
    /// start seconds).
    #[derive(Clone, Copy)]
    struct C<'a> {
        ns: &'a str,
        pod: &'a str,
        name: &'a str,
        cpu_s: f64,
        mem: u64,
        ms: u64,
        start_s: Option<f64>,
    }

    fn c<'a>(pod: &'a str, name: &'a str, cpu_s: f64, ms: u64) -> C<'a> {
        C {
            ns: "default",
            pod,
            name,
            cpu_s,
            mem: 1000,
            ms,
            start_s: None,
        }
    }

    /// Builds a payload in kubelet text format and decodes it, so store tests exercise the
    /// real input path.
    fn batch(node: Option<(f64, u64, u64)>, containers: &[C<'_>]) -> MetricsBatch {
        let mut s = String::new();
        for x in containers {
            let l = format!(
                "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
                x.name, x.ns, x.pod
            );
            let _ = writeln!(
                s,
                "container_cpu_usage_seconds_total{l} {} {}",
                x.cpu_s, x.ms
            );
            let _ = writeln!(
                s,
                "container_memory_working_set_bytes{l} {} {}",
                x.mem, x.ms
            );
            if let Some(st) = x.start_s {
                let _ = writeln!(s, "container_start_time_seconds{l} {st} {}", x.ms);
            }
        }
        if let Some((cpu_s, mem, ms)) = node {
            let _ = writeln!(s, "node_cpu_usage_seconds_total {cpu_s} {ms}");
            let _ = writeln!(s, "node_memory_working_set_bytes {mem} {ms}");
        }
        decode(s.as_bytes(), UNIX_EPOCH).expect("test payload decodes")
    }

    fn node_batch(cpu_s: f64, mem: u64, ms: u64) -> MetricsBatch {
        batch(Some((cpu_s, mem, ms)), &[])
    }

    fn pod(store: &Store, name: &str) -> Option<PodUsage> {
        store.pods().into_iter().find(|p| p.name == name)
    }

    #[test]
    fn node_rate_window_and_timestamp() {
        let mut s = Store::new(RES);
        s.store([("n1", &node_batch(100.0, 500, T0))]);
        assert!(s.nodes().is_empty(), "one sample has no rate");
        s.store([("n1", &node_batch(115.0, 700, T0 + 15_000))]);
        let nodes = s.nodes();
        assert_eq!(nodes.len(), 1);
        let n = &nodes[0];
        assert_eq!(n.name, "n1");
        // 15 core-seconds over 15 s = 1 core.
        assert_eq!(n.cpu_nanocores, 1_000_000_000);
        assert_eq!(n.window, Duration::from_secs(15));
        assert_eq!(n.timestamp, ms_to_time(T0 + 15_000));
        assert_eq!(n.memory_bytes, 700);
        assert!(n.labels.is_empty());
    }

    #[test]
    fn container_rate_is_truncated_nanocores() {
        let mut s = Store::new(RES);
        s.store([("n", &batch(None, &[c("p", "a", 1.0, T0)]))]);
        s.store([("n", &batch(None, &[c("p", "a", 1.25, T0 + 3_000)]))]);
        let p = pod(&s, "p").expect("pod served");
        // 0.25 s over 3 s = 83_333_333.33 nanocores, truncated.
        assert_eq!(p.containers[0].cpu_nanocores, 83_333_333);
        assert_eq!(p.window, Duration::from_secs(3));
        assert_eq!(p.namespace, "default");
        assert_eq!(p.containers[0].memory_bytes, 1000);
    }

    #[test]
    fn same_sample_twice_keeps_the_previous_one() {
        let mut s = Store::new(RES);
        s.store([("n", &node_batch(10.0, 1, T0))]);
        s.store([("n", &node_batch(20.0, 1, T0 + 10_000))]);
        // The kubelet served the cached sample again.
        s.store([("n", &node_batch(20.0, 1, T0 + 10_000))]);
        let nodes = s.nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].window, Duration::from_secs(10));
        assert_eq!(nodes[0].cpu_nanocores, 1_000_000_000);
    }

    #[test]
    fn node_counter_going_backwards_has_no_rate_until_next_scrape() {
        let mut s = Store::new(RES);
        s.store([("n", &node_batch(100.0, 1, T0))]);
        s.store([("n", &node_batch(50.0, 1, T0 + 10_000))]);
        assert!(s.nodes().is_empty());
        s.store([("n", &node_batch(60.0, 1, T0 + 20_000))]);
        assert_eq!(s.nodes()[0].cpu_nanocores, 1_000_000_000);
    }

    #[test]
    fn container_restart_by_start_time_discards_previous() {
        let mut s = Store::new(RES);
        let mut a = c("p", "a", 100.0, T0);
        a.start_s = Some((T0 / 1000 - 3600) as f64);
        s.store([("n", &batch(None, &[a]))]);
        a.cpu_s = 110.0;
        a.ms = T0 + 10_000;
        s.store([("n", &batch(None, &[a]))]);
        assert!(pod(&s, "p").is_some());

        // Restarted long enough ago that the fresh rule does not apply; counter still grew.
        a.start_s = Some(((T0 + 10_000) / 1000 - 300) as f64);
        a.cpu_s = 120.0;
        a.ms = T0 + 20_000;
        s.store([("n", &batch(None, &[a]))]);
        assert!(pod(&s, "p").is_none(), "restart: no rate this cycle");
        a.cpu_s = 121.0;
        a.ms = T0 + 30_000;
        s.store([("n", &batch(None, &[a]))]);
        let p = pod(&s, "p").expect("rate again after one more scrape");
        assert_eq!(p.containers[0].cpu_nanocores, 100_000_000);
    }

    #[test]
    fn container_counter_going_backwards_drops_it_for_one_cycle() {
        let mut s = Store::new(RES);
        s.store([("n", &batch(None, &[c("p", "a", 50.0, T0)]))]);
        s.store([("n", &batch(None, &[c("p", "a", 60.0, T0 + 10_000)]))]);
        assert!(pod(&s, "p").is_some());
        s.store([("n", &batch(None, &[c("p", "a", 5.0, T0 + 20_000)]))]);
        assert!(pod(&s, "p").is_none());
        s.store([("n", &batch(None, &[c("p", "a", 15.0, T0 + 30_000)]))]);
        assert_eq!(
            pod(&s, "p").unwrap().containers[0].cpu_nanocores,
            1_000_000_000
        );
    }

    fn fresh(age_ms: u64) -> Option<PodUsage> {
        let mut s = Store::new(RES);
        let mut a = c("p", "a", 2.0, T0);
        a.start_s = Some((T0 - age_ms) as f64 / 1000.0);
        s.store([("n", &batch(None, &[a]))]);
        pod(&s, "p")
    }

    #[test]
    fn fresh_container_gets_a_rate_from_its_start_time() {
        let p = fresh(20_000).expect("fresh container served");
        // 2 core-seconds since start 20 s ago.
        assert_eq!(p.containers[0].cpu_nanocores, 100_000_000);
        assert_eq!(p.window, Duration::from_secs(20));
        assert_eq!(p.timestamp, ms_to_time(T0));
    }

    #[test]
    fn fresh_container_boundaries() {
        assert!(fresh(9_999).is_none(), "younger than 10 s");
        assert!(fresh(10_000).is_some(), "exactly 10 s");
        assert!(fresh(59_999).is_some(), "just under one resolution");
        assert!(fresh(60_000).is_none(), "exactly one resolution");
        assert!(fresh(600_000).is_none(), "old container seen once");
    }

    #[test]
    fn restarted_container_recently_started_gets_a_fresh_rate() {
        let mut s = Store::new(RES);
        let mut a = c("p", "a", 500.0, T0);
        a.start_s = Some((T0 / 1000 - 3600) as f64);
        s.store([("n", &batch(None, &[a]))]);
        // New instance started 20 s before this sample, 4 core-seconds since.
        a.start_s = Some((T0 + 10_000) as f64 / 1000.0);
        a.cpu_s = 4.0;
        a.ms = T0 + 30_000;
        s.store([("n", &batch(None, &[a]))]);
        let p = pod(&s, "p").expect("fresh rule after restart");
        assert_eq!(p.containers[0].cpu_nanocores, 200_000_000);
        assert_eq!(p.window, Duration::from_secs(20));
    }

    #[test]
    fn backwards_counter_is_not_rescued_by_the_fresh_rule() {
        let mut s = Store::new(RES);
        let mut a = c("p", "a", 5.0, T0);
        a.start_s = Some((T0 - 15_000) as f64 / 1000.0);
        s.store([("n", &batch(None, &[a]))]);
        assert!(pod(&s, "p").is_some(), "fresh on first sight");
        a.cpu_s = 4.0;
        a.ms = T0 + 10_000;
        s.store([("n", &batch(None, &[a]))]);
        assert!(pod(&s, "p").is_none());
    }

    #[test]
    fn fresh_rule_uses_the_configured_resolution() {
        let mut s = Store::new(Duration::from_secs(15));
        let mut a = c("p", "a", 2.0, T0);
        a.start_s = Some((T0 - 20_000) as f64 / 1000.0);
        s.store([("n", &batch(None, &[a]))]);
        assert!(pod(&s, "p").is_none());
    }

    #[test]
    fn nodes_and_pods_absent_from_a_cycle_disappear() {
        let mut s = Store::new(RES);
        let b1 = batch(
            Some((10.0, 5, T0)),
            &[c("p1", "a", 1.0, T0), c("p2", "a", 1.0, T0)],
        );
        let b2 = node_batch(10.0, 5, T0);
        s.store([("n1", &b1), ("n2", &b2)]);
        let b1 = batch(
            Some((20.0, 5, T0 + 10_000)),
            &[
                c("p1", "a", 2.0, T0 + 10_000),
                c("p2", "a", 2.0, T0 + 10_000),
            ],
        );
        let b2 = node_batch(20.0, 5, T0 + 10_000);
        s.store([("n1", &b1), ("n2", &b2)]);
        assert_eq!(s.nodes().len(), 2);
        assert_eq!(s.pods().len(), 2);

        // n2 failed to scrape, p2 is gone from n1.
        let b1 = batch(
            Some((30.0, 5, T0 + 20_000)),
            &[c("p1", "a", 3.0, T0 + 20_000)],
        );
        s.store([("n1", &b1)]);
        let names: Vec<String> = s.nodes().into_iter().map(|n| n.name).collect();
        assert_eq!(names, vec!["n1".to_string()]);
        assert_eq!(s.pods().len(), 1);
        assert_eq!(s.stats().nodes, 1);
        assert_eq!(s.stats().pods, 1);

        // n2 comes back: it needs two samples again before it is served.
        let b2 = node_batch(40.0, 5, T0 + 30_000);
        s.store([("n1", &b1), ("n2", &b2)]);
        assert_eq!(
            s.nodes().len(),
            1,
            "n2 restarted from scratch, n1 still served"
        );
    }

    #[test]
    fn pod_with_a_container_lacking_a_rate_is_not_served() {
        let mut s = Store::new(RES);
        s.store([("n", &batch(None, &[c("p", "a", 1.0, T0)]))]);
        // Container b appears (e.g. a sidecar): it has no previous sample.
        s.store([(
            "n",
            &batch(
                None,
                &[c("p", "a", 2.0, T0 + 10_000), c("p", "b", 1.0, T0 + 10_000)],
            ),
        )]);
        assert!(pod(&s, "p").is_none());
        s.store([(
            "n",
            &batch(
                None,
                &[c("p", "a", 3.0, T0 + 20_000), c("p", "b", 2.0, T0 + 20_000)],
            ),
        )]);
        let p = pod(&s, "p").expect("both containers have rates");
        let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn pod_time_is_its_earliest_container_sample() {
        let mut s = Store::new(RES);
        s.store([(
            "n",
            &batch(None, &[c("p", "a", 1.0, T0), c("p", "b", 1.0, T0 + 1_000)]),
        )]);
        s.store([(
            "n",
            &batch(
                None,
                &[c("p", "a", 2.0, T0 + 10_000), c("p", "b", 2.0, T0 + 12_000)],
            ),
        )]);
        let p = pod(&s, "p").unwrap();
        assert_eq!(p.timestamp, ms_to_time(T0 + 10_000));
        assert_eq!(p.window, Duration::from_secs(10));
        assert_eq!(p.containers[1].cpu_nanocores, 1_000_000_000 / 11);
    }

    #[test]
    fn duplicate_pod_across_nodes_first_wins() {
        let mut s = Store::new(RES);
        for (i, ms) in [T0, T0 + 10_000].into_iter().enumerate() {
            let a = batch(None, &[c("p", "a", 1.0 + i as f64, ms)]);
            let b = batch(None, &[c("p", "a", 100.0 + 50.0 * i as f64, ms)]);
            s.store([("n1", &a), ("n2", &b)]);
        }
        assert_eq!(s.pods().len(), 1);
        assert_eq!(
            pod(&s, "p").unwrap().containers[0].cpu_nanocores,
            100_000_000
        );
    }

    #[test]
    fn same_pod_name_in_two_namespaces_is_two_pods() {
        let mut s = Store::new(RES);
        for (i, ms) in [T0, T0 + 10_000].into_iter().enumerate() {
            let mut a = c("p", "a", 1.0 + i as f64, ms);
            let mut b = a;
            a.ns = "x";
            b.ns = "y";
            s.store([("n", &batch(None, &[a, b]))]);
        }
        let mut ns: Vec<String> = s.pods().into_iter().map(|p| p.namespace).collect();
        ns.sort();
        assert_eq!(ns, vec!["x", "y"]);
    }

    #[test]
    fn names_are_interned_and_released() {
        let mut s = Store::new(RES);
        let many: Vec<String> = (0..50).map(|i| format!("pod-{i}")).collect();
        let cs: Vec<C<'_>> = many.iter().map(|p| c(p, "sidecar", 1.0, T0)).collect();
        s.store([("n", &batch(None, &cs))]);
        // "default" and "sidecar", each stored once for 50 pods.
        assert_eq!(s.names.len(), 2);
        let ns = s.pods.keys().next().unwrap().clone();
        // The map key, the interner and this clone.
        assert_eq!(Arc::strong_count(&ns), 3);
        let st = s.stats();
        assert_eq!((st.pods, st.containers, st.points), (50, 50, 50));
        assert!(st.approx_bytes > 50 * std::mem::size_of::<ContainerSeries>());
        drop(ns);
        s.store(std::iter::empty());
        assert_eq!(s.names.len(), 0);
        let st = s.stats();
        assert_eq!((st.nodes, st.pods, st.containers, st.points), (0, 0, 0, 0));
    }

    #[test]
    fn memory_is_returned_when_the_cluster_shrinks() {
        let mut s = Store::new(RES);
        let names: Vec<String> = (0..2000).map(|i| format!("node-{i}")).collect();
        let b = node_batch(1.0, 1, T0);
        s.store(names.iter().map(|n| (n.as_str(), &b)));
        let big = s.stats().approx_bytes;
        s.store([("node-0", &b)]);
        let small = s.stats().approx_bytes;
        assert_eq!(s.stats().nodes, 1);
        assert!(small * 10 < big, "{small} vs {big}");
    }

    #[test]
    fn real_payload_end_to_end() {
        const FIXTURE: &str =
            include_str!("../tests/fixtures/kubelet-metrics-resource-kind-70pods.txt");
        // The same payload 10 000 s later (every timestamp starts with 163325), with the
        // node's counter 1000 core-seconds further.
        let later = FIXTURE.replace(" 163325", " 163326").replace(
            "node_cpu_usage_seconds_total 357.35491",
            "node_cpu_usage_seconds_total 1357.35491",
        );
        let first = decode(FIXTURE.as_bytes(), UNIX_EPOCH).unwrap();
        let second = decode(later.as_bytes(), UNIX_EPOCH).unwrap();
        let shared = SharedStore::new(RES);
        shared.store([("kind-control-plane", &first)]);
        assert!(shared.pods().is_empty());
        shared.store([("kind-control-plane", &second)]);
        let nodes = shared.nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].cpu_nanocores, 100_000_000);
        assert_eq!(nodes[0].window, Duration::from_secs(10_000));
        assert_eq!(nodes[0].memory_bytes, 1_616_273_408);
        let pods = shared.pods();
        assert_eq!(pods.len(), 70);
        let etcd = pods
            .iter()
            .find(|p| p.name == "etcd-e2e-control-plane")
            .unwrap();
        assert_eq!(etcd.containers[0].name, "etcd");
        assert_eq!(etcd.containers[0].cpu_nanocores, 0);
        assert_eq!(etcd.containers[0].memory_bytes, 40_783_872);
        assert_eq!(etcd.timestamp, ms_to_time(1_633_263_814_387));
        let st = shared.stats();
        assert_eq!(
            (st.nodes, st.pods, st.containers, st.points),
            (1, 70, 70, 142)
        );
    }

    #[test]
    fn stats_count_prev_points() {
        let mut s = Store::new(RES);
        s.store([("n", &batch(Some((1.0, 1, T0)), &[c("p", "a", 1.0, T0)]))]);
        assert_eq!(s.stats().points, 2);
        s.store([(
            "n",
            &batch(Some((2.0, 1, T0 + 1)), &[c("p", "a", 2.0, T0 + 1)]),
        )]);
        assert_eq!(s.stats().points, 4);
    }

    #[test]
    fn shared_store_serves_readers() {
        let shared = Arc::new(SharedStore::new(RES));
        shared.store([("n", &node_batch(1.0, 1, T0))]);
        shared.store([("n", &node_batch(2.0, 1, T0 + 1_000))]);
        let reader = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.nodes().len())
        };
        assert_eq!(reader.join().unwrap(), 1);
        let provider: &dyn MetricsProvider = &*shared;
        assert_eq!(provider.nodes()[0].cpu_nanocores, 1_000_000_000);
        assert_eq!(shared.stats().nodes, 1);
    }
}
