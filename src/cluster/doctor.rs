//! `kaddons doctor`: every check that explains why `kubectl top node` does not work, each a
//! finding with its evidence and a one-line fix. The checks run in order and later ones are
//! skipped when an earlier one makes them meaningless (no cluster, no aggregation layer).

use serde::Serialize;
use serde_json::Value;

use crate::catalog::Addon;
use crate::profile::{detect, Fact};

use super::apply::{check_aggregation, ApplyError, AGGREGATION_FLAGS};
use super::client::Connection;
use super::diagnose::{diagnose, known_failures, Severity};
use super::facts::cluster_facts;
use super::observe::{observe, LogSource};
use super::status::{addon_status, State};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier (for scripts reading `-o json`).
    pub id: String,
    pub severity: Severity,
    pub summary: String,
    /// Supporting detail (what was seen); empty when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// The fix; empty for checks that passed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

fn check(id: &str, severity: Severity, summary: String, hint: &str) -> Check {
    Check {
        id: id.to_string(),
        severity,
        summary,
        evidence: Vec::new(),
        hint: hint.to_string(),
    }
}

/// Runs every check for `addon`. `expected` is a render of the addon (for object names and
/// selectors); `kubeconfig_facts` are the facts of the selected context.
pub async fn run(
    conn: &Connection,
    addon: &Addon,
    expected: &[Value],
    kubeconfig_facts: &[Fact],
    logs: &dyn LogSource,
) -> Vec<Check> {
    let mut out = Vec::new();

    // 1. Reachable, and what it is.
    let facts = match cluster_facts(conn).await {
        Ok(f) => f,
        Err(e) => {
            out.push(check(
                "cluster-reachable",
                Severity::Error,
                e.to_string(),
                "check the context (kubectl config current-context) and that the cluster is running",
            ));
            return out;
        }
    };
    let version = conn
        .call(conn.client.apiserver_version())
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|_| "unknown".into());
    out.push(check(
        "cluster-reachable",
        Severity::Ok,
        format!(
            "{} (context {}) answers, Kubernetes {version}",
            conn.server, conn.context
        ),
        "",
    ));
    let mut all_facts = kubeconfig_facts.to_vec();
    all_facts.extend(facts);
    let detection = detect(&all_facts);
    let mut profile = check(
        "profile",
        Severity::Ok,
        format!("profile {}", detection.profile),
        "",
    );
    profile.evidence = detection
        .evidence
        .iter()
        .map(|e| e.reason.clone())
        .chain(detection.notes.iter().cloned())
        .collect();
    out.push(profile);

    // 2. The aggregation layer, for addons that serve an API through it.
    if !addon.def.api_services.is_empty() {
        match check_aggregation(conn, &addon.def.api_services).await {
            Ok(()) => out.push(check(
                "aggregation-layer",
                Severity::Ok,
                "aggregation layer configured (requestheader-client-ca-file is set)".into(),
                "",
            )),
            Err(ApplyError::AggregationDisabled { .. }) => {
                let mut c = check(
                    "aggregation-layer",
                    Severity::Error,
                    "aggregation layer not configured: ConfigMap kube-system/extension-apiserver-authentication has no requestheader-client-ca-file".into(),
                    "create front-proxy certificates with `kaddons aggregator certs --out DIR` and start kube-apiserver with the flags it prints",
                );
                c.evidence = AGGREGATION_FLAGS.iter().map(|f| f.to_string()).collect();
                out.push(c);
            }
            Err(e) => out.push(check(
                "aggregation-layer",
                Severity::Warn,
                e.to_string(),
                "",
            )),
        }
    }

    // 3. Who manages the addon's objects, and their readiness.
    match addon_status(conn, addon, expected).await {
        Ok(st) => {
            let (severity, hint) = match st.state {
                State::Enabled => (Severity::Ok, ""),
                State::Disabled => (Severity::Error, "enable it: kaddons enable ADDON"),
                State::Degraded => (Severity::Error, "see the findings below"),
                State::Unmanaged => (
                    Severity::Warn,
                    "installed by something else; kaddons enable --force takes it over",
                ),
            };
            let mut c = check(
                "addon-objects",
                severity,
                format!("{} is {}", st.addon, st.state.as_str()),
                &hint.replace("ADDON", &st.addon),
            );
            c.evidence = st
                .objects
                .iter()
                .map(|o| {
                    format!(
                        "{} (managed by {}): {}",
                        o.object,
                        o.managed_by,
                        if o.ready {
                            "ready".to_string()
                        } else {
                            o.detail.clone()
                        }
                    )
                })
                .collect();
            out.push(c);
        }
        Err(e) => out.push(check("addon-objects", Severity::Warn, e.to_string(), "")),
    }

    // 4. Known failures in pods, events, logs and APIServices.
    match (known_failures(), observe(conn, expected, logs).await) {
        (Ok(patterns), Ok(obs)) => {
            for f in diagnose(&obs, &patterns) {
                out.push(Check {
                    id: f.id,
                    severity: f.severity,
                    summary: f.summary,
                    evidence: Vec::new(),
                    hint: f.hint,
                });
            }
        }
        (Err(e), _) => out.push(check("known-failures", Severity::Warn, e.to_string(), "")),
        (_, Err(e)) => out.push(check("observe", Severity::Warn, e.to_string(), "")),
    }

    // 5. kube-aggregator's aggregated discovery: a group listed Stale (or missing) is one
    //    kubectl cannot find ("Metrics API not available") even when its paths answer.
    out.extend(discovery_checks(conn, &addon.def.api_services).await);

    // 6. The API itself (what `kubectl top node` asks).
    if let Some(path) = &addon.def.ready_check {
        let served = match http::Request::get(path.as_str()).body(Vec::new()) {
            Ok(req) => conn.call(conn.client.request::<Value>(req)).await,
            Err(e) => {
                out.push(check("api-serves", Severity::Warn, e.to_string(), ""));
                return out;
            }
        };
        out.push(match served {
            Ok(list) if list["items"].as_array().is_some_and(|i| !i.is_empty()) => check(
                "api-serves",
                Severity::Ok,
                format!("{path} lists {} item(s)", list["items"].as_array().map_or(0, Vec::len)),
                "",
            ),
            Ok(_) => check(
                "api-serves",
                Severity::Error,
                format!("{path} answers but lists nothing yet"),
                "metrics-server needs two scrapes (about 30 s at 15 s resolution); see the findings above if it stays empty",
            ),
            Err(e) => check(
                "api-serves",
                Severity::Error,
                format!("{path} is not served: {e}"),
                "see the findings above; `kaddons top nodes --source kubelet` shows usage without a metrics server",
            ),
        });
    }
    out
}

/// One check per APIService (`v1beta1.metrics.k8s.io`) from `/apis` as
/// `apidiscovery.k8s.io/v2`. Servers that do not answer in that form get no check.
async fn discovery_checks(conn: &Connection, api_services: &[String]) -> Vec<Check> {
    if api_services.is_empty() {
        return Vec::new();
    }
    let request = http::Request::get("/apis")
        .header(
            http::header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )
        .body(Vec::new());
    let Ok(request) = request else {
        return Vec::new();
    };
    let Ok(list) = conn.call(conn.client.request::<Value>(request)).await else {
        return Vec::new();
    };
    if list["kind"] != "APIGroupDiscoveryList" {
        return Vec::new();
    }
    let items = list["items"].as_array().cloned().unwrap_or_default();
    api_services
        .iter()
        .filter_map(|name| name.split_once('.'))
        .map(|(version, group)| {
            let listed = items
                .iter()
                .find(|i| i["metadata"]["name"] == group)
                .and_then(|i| i["versions"].as_array())
                .and_then(|vs| vs.iter().find(|v| v["version"] == version).cloned());
            match listed {
                Some(v) if v["freshness"] == "Stale" => check(
                    "aggregated-discovery",
                    Severity::Error,
                    format!("kube-aggregator lists {group}/{version} as Stale: it could not read the server's discovery (GET /apis), so kubectl cannot find its resources"),
                    // Seen on the real node: every APIService that is not Available is also
                    // Stale here, so its own finding comes first.
                    "an APIService that is not Available is always Stale: fix that first (see its finding above); if it is Available, the server must answer /apis as apidiscovery.k8s.io/v2 or with 406 (see its log)",
                ),
                Some(_) => check(
                    "aggregated-discovery",
                    Severity::Ok,
                    format!("discovery lists {group}/{version}"),
                    "",
                ),
                None => check(
                    "aggregated-discovery",
                    Severity::Error,
                    format!("discovery does not list {group}/{version}"),
                    "the APIService is missing or not Available; see the findings above",
                ),
            }
        })
        .collect()
}

/// True when any check is an error (doctor exits 1).
pub fn has_errors(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.severity == Severity::Error)
}
