//! The server's own Prometheus metrics (`/metrics`), in the text exposition format.
//!
//! Other parts of the metrics server (the scraper, the store) plug their own series in through
//! [`MetricsSource`], so one endpoint serves everything.
//!
//! Hand-written on purpose: both well-kept Prometheus crates were tried and neither writes this
//! exposition unchanged (checked with the same series, prometheus 0.14 and prometheus-client
//! 0.24). The `prometheus` crate (tikv) writes the classic 0.0.4 format but sorts label pairs by
//! name (`{code="200",endpoint="nodes"}` instead of `{endpoint="nodes",code="200"}`), sorts
//! families by name (the duration histogram before `metrics_server_api_requests_total`) and drops
//! a family with no series yet, HELP and TYPE included (`metrics_server_kubelet_errors_total`
//! before the first node is known). `prometheus-client` writes OpenMetrics only: HELP/TYPE
//! without `_total`, a "." appended to every HELP text, `_sum`/`_count` before the buckets,
//! `le="1.0"`, and `# EOF`; it has no classic-format option. Rewriting either's output to match
//! would be more code than writing the lines, so the format stays here, a few `writeln!`s per
//! family, with a test per shape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the request-duration histogram buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Something that appends its own series (with `# HELP`/`# TYPE` lines) to the exposition.
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self, out: &mut String);
}

#[derive(Debug, Default, Clone)]
struct RequestStats {
    count: u64,
    sum_seconds: f64,
    /// Non-cumulative per-bucket counts; made cumulative when rendering.
    buckets: [u64; BUCKETS.len()],
}

/// Shared registry: request statistics by endpoint and status code plus plugged-in sources.
#[derive(Default)]
pub struct Registry {
    requests: Mutex<BTreeMap<(&'static str, u16), RequestStats>>,
    sources: Mutex<Vec<Arc<dyn MetricsSource>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source whose series are appended to every scrape.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Records one served request. `endpoint` is a fixed label (bounded cardinality).
    pub fn observe(&self, endpoint: &'static str, code: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let stats = map.entry((endpoint, code)).or_default();
        stats.count += 1;
        stats.sum_seconds += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            stats.buckets[i] += 1;
        }
    }

    /// How many requests were recorded for this endpoint and code (for tests and health logic).
    pub fn request_count(&self, endpoint: &str, code: u16) -> u64 {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|((e, c), _)| *e == endpoint && *c == code)
            .map(|(_, s)| s.count)
            .sum()
    }

    /// The full text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let snapshot = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        out.push_str("# HELP metrics_server_api_requests_total Requests served by the metrics API, by endpoint and HTTP status code.\n");
        out.push_str("# TYPE metrics_server_api_requests_total counter\n");
        for ((endpoint, code), s) in &snapshot {
            let _ = writeln!(
                out,
                "metrics_server_api_requests_total{{endpoint=\"{endpoint}\",code=\"{code}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP metrics_server_api_request_duration_seconds Time to answer a request of the metrics API.\n");
        out.push_str("# TYPE metrics_server_api_request_duration_seconds histogram\n");
        for ((endpoint, code), s) in &snapshot {
            let labels = format!("endpoint=\"{endpoint}\",code=\"{code}\"");
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "metrics_server_api_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "metrics_server_api_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "metrics_server_api_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "metrics_server_api_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for source in sources {
            source.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl MetricsSource for Fixed {
        fn render(&self, out: &mut String) {
            out.push_str("# TYPE scraper_runs_total counter\nscraper_runs_total 7\n");
        }
    }

    #[test]
    fn renders_counters_histogram_and_sources() {
        let r = Registry::new();
        r.observe("nodes", 200, Duration::from_millis(3));
        r.observe("nodes", 200, Duration::from_secs(10));
        r.observe("pods", 404, Duration::from_micros(10));
        r.add_source(Arc::new(Fixed));
        let text = r.render();
        assert!(
            text.contains("metrics_server_api_requests_total{endpoint=\"nodes\",code=\"200\"} 2\n")
        );
        assert!(
            text.contains("metrics_server_api_requests_total{endpoint=\"pods\",code=\"404\"} 1\n")
        );
        assert!(text.contains(
            "metrics_server_api_request_duration_seconds_bucket{endpoint=\"nodes\",code=\"200\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "metrics_server_api_request_duration_seconds_bucket{endpoint=\"nodes\",code=\"200\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.ends_with("scraper_runs_total 7\n"));
        assert_eq!(r.request_count("nodes", 200), 2);
    }
}
