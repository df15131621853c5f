//! Why an addon does not work: observations (pods, events, APIServices, container logs)
//! matched against known failures (`known_failures.yaml`), each giving a finding with a fix.
//! `kaddons enable` uses it when waiting fails; `kaddons doctor` uses it for its report.
//! Matching is a pure function; gathering observations is the only part that needs a cluster.

use serde::{Deserialize, Serialize};
use serde_json::Value;

static KNOWN_FAILURES: &str = include_str!("known_failures.yaml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Waiting,
    Terminated,
    Log,
    Event,
    Apiservice,
}

/// One entry of `known_failures.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    pub id: String,
    pub source: Source,
    #[serde(default)]
    pub any: Vec<String>,
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
    pub severity: Severity,
    pub summary: String,
    pub fix: String,
}

/// Something found, with the evidence and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub summary: String,
    pub hint: String,
}

/// Recent log text of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerLog {
    pub pod: String,
    pub container: String,
    pub text: String,
}

/// What was seen in the cluster about one addon.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Pods of the addon's workloads (JSON of core/v1 Pod).
    pub pods: Vec<Value>,
    /// Events about those pods (JSON of core/v1 Event).
    pub events: Vec<Value>,
    /// The addon's APIServices (JSON).
    pub api_services: Vec<Value>,
    pub logs: Vec<ContainerLog>,
}

/// The built-in known failures.
pub fn known_failures() -> Result<Vec<Pattern>, serde_yaml::Error> {
    serde_yaml::from_str(KNOWN_FAILURES)
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn push(out: &mut Vec<Finding>, p: &Pattern, vars: &[(&str, &str)]) {
    let f = Finding {
        id: p.id.clone(),
        severity: p.severity,
        summary: fill(&p.summary, vars),
        hint: fill(&p.fix, vars),
    };
    // One finding per pattern and subject is enough (a log repeats its errors every scrape).
    if !out.iter().any(|x| x.id == f.id && x.summary == f.summary) {
        out.push(f);
    }
}

/// Lines longer than this are cut in findings (kubelet errors can be very long).
const MAX_LINE: usize = 300;

/// Matches observations against patterns. Pure: same input, same findings, in pattern order.
pub fn diagnose(obs: &Observations, patterns: &[Pattern]) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in patterns {
        match p.source {
            Source::Waiting | Source::Terminated => {
                for pod in &obs.pods {
                    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("?");
                    let statuses = pod["status"]["containerStatuses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(
                            pod["status"]["initContainerStatuses"]
                                .as_array()
                                .into_iter()
                                .flatten(),
                        );
                    for cs in statuses {
                        let reason = if p.source == Source::Waiting {
                            cs["state"]["waiting"]["reason"].as_str()
                        } else {
                            cs["lastState"]["terminated"]["reason"].as_str()
                        };
                        if let Some(reason) = reason.filter(|r| p.any.iter().any(|a| a == r)) {
                            let container = cs["name"].as_str().unwrap_or("?");
                            let image = cs["image"].as_str().unwrap_or("?");
                            // The kubelet's message says why (a real ErrImagePull names the
                            // registry's answer or the network error).
                            let state = if p.source == Source::Waiting {
                                &cs["state"]["waiting"]
                            } else {
                                &cs["lastState"]["terminated"]
                            };
                            let detail = match state["message"].as_str().map(str::trim) {
                                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                                _ => reason.to_string(),
                            };
                            push(
                                &mut out,
                                p,
                                &[
                                    ("pod", pod_name),
                                    ("container", container),
                                    ("image", image),
                                    ("detail", &detail),
                                ],
                            );
                        }
                    }
                }
            }
            Source::Log => {
                for log in &obs.logs {
                    if let Some(line) = log.text.lines().find(|l| {
                        p.all
                            .iter()
                            .all(|s| l.to_lowercase().contains(&s.to_lowercase()))
                    }) {
                        let line: String = line.trim().chars().take(MAX_LINE).collect();
                        push(
                            &mut out,
                            p,
                            &[
                                ("pod", &log.pod),
                                ("container", &log.container),
                                ("line", &line),
                            ],
                        );
                    }
                }
            }
            Source::Event => {
                for e in &obs.events {
                    let message = e["message"].as_str().unwrap_or_default();
                    let reason_ok = p
                        .reason
                        .as_deref()
                        .is_none_or(|r| e["reason"].as_str() == Some(r));
                    if reason_ok && p.all.iter().all(|s| message.contains(s.as_str())) {
                        let pod = e["involvedObject"]["name"].as_str().unwrap_or("?");
                        let message: String = message.chars().take(MAX_LINE).collect();
                        push(&mut out, p, &[("pod", pod), ("message", &message)]);
                    }
                }
            }
            Source::Apiservice => {
                for a in &obs.api_services {
                    let name = a["metadata"]["name"].as_str().unwrap_or("?");
                    let cond = a["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["type"] == "Available");
                    if let Some(c) = cond {
                        let reason = c["reason"].as_str().unwrap_or_default();
                        if c["status"] != "True" && p.any.iter().any(|r| r == reason) {
                            let message = c["message"].as_str().unwrap_or_default();
                            push(&mut out, p, &[("apiservice", name), ("message", message)]);
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(obs: Observations) -> Vec<Finding> {
        diagnose(&obs, &known_failures().unwrap())
    }

    fn ids(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn the_data_file_parses_and_ids_are_unique() {
        let p = known_failures().unwrap();
        let mut ids: Vec<&str> = p.iter().map(|p| p.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        for p in &p {
            assert!(!p.any.is_empty() || !p.all.is_empty(), "{}", p.id);
        }
    }

    #[test]
    fn healthy_observations_give_no_findings() {
        let obs = Observations {
            pods: vec![
                json!({"metadata": {"name": "ms-1"}, "status": {"containerStatuses": [{"name": "metrics-server", "ready": true, "state": {"running": {}}}]}}),
            ],
            api_services: vec![
                json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed"}]}}),
            ],
            logs: vec![ContainerLog {
                pod: "ms-1".into(),
                container: "metrics-server".into(),
                text: "I1125 Serving securely on [::]:10250\n".into(),
            }],
            ..Default::default()
        };
        assert!(run(obs).is_empty());
    }

    #[test]
    fn image_pull_names_the_image_and_the_mirror() {
        let obs = Observations {
            pods: vec![
                json!({"metadata": {"name": "ms-1"}, "status": {"containerStatuses": [{"name": "metrics-server", "image": "registry.k8s.io/metrics-server/metrics-server:v0.9.0", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}),
            ],
            ..Default::default()
        };
        let f = run(obs);
        assert_eq!(ids(&f), ["image-pull"]);
        assert!(f[0]
            .summary
            .contains("registry.k8s.io/metrics-server/metrics-server:v0.9.0"));
        assert!(f[0].hint.contains("--image-mirror cn"));
    }

    #[test]
    fn kubelet_ip_sans_log_line_points_at_insecure_tls() {
        let line = r#"E1125 10:00:00.000000 1 scraper.go:149] "Failed to scrape node" err="Get \"https://172.18.0.2:10250/metrics/resource\": x509: cannot validate certificate for 172.18.0.2 because it doesn't contain any IP SANs" node="kind-control-plane""#;
        let obs = Observations {
            logs: vec![ContainerLog {
                pod: "ms-1".into(),
                container: "metrics-server".into(),
                text: format!("I1125 start\n{line}\n{line}\n"),
            }],
            ..Default::default()
        };
        let f = run(obs);
        assert_eq!(ids(&f), ["kubelet-cert-no-ip-sans"]);
        assert!(f[0].hint.contains("kubeletInsecureTLS=true"));
    }

    #[test]
    fn failed_discovery_points_at_host_network() {
        let obs = Observations {
            api_services: vec![
                json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "status": {"conditions": [{"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck", "message": "failing or missing response from https://10.96.0.10:443"}]}}),
            ],
            ..Default::default()
        };
        let f = run(obs);
        assert_eq!(ids(&f), ["apiservice-failed-discovery"]);
        assert!(f[0].hint.contains("hostNetwork.enabled=true"));
    }

    #[test]
    fn readiness_event_and_scrape_errors() {
        let obs = Observations {
            events: vec![json!({"reason": "Unhealthy", "involvedObject": {"name": "ms-1"}, "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"})],
            logs: vec![ContainerLog { pod: "ms-1".into(), container: "metrics-server".into(), text: "E1 scraper.go] \"Failed to scrape node\" err=\"Get ...: context deadline exceeded\"\nE2 nodes \"n1\" is forbidden: User \"system:serviceaccount:kube-system:metrics-server\" cannot get resource \"nodes/metrics\"\n".into() }],
            ..Default::default()
        };
        let f = run(obs);
        assert_eq!(
            ids(&f),
            ["scrape-timeout", "nodes-metrics-forbidden", "readiness-500"]
        );
    }
}
