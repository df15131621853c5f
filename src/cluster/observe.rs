//! Gathering what the diagnosis needs about an addon: its pods, their events and recent logs,
//! and its APIServices. Logs come through [`LogSource`] so that tests can feed them (the fake
//! API has no log endpoint).

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use super::client::{ClusterError, Connection};
use super::diagnose::{ContainerLog, Observations};
use super::resources;

/// Where container logs come from.
pub trait LogSource: Sync {
    /// The last lines of one container's log; `None` when unavailable.
    fn tail<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
    ) -> BoxFuture<'a, Option<String>>;
}

/// Logs through the API server (`pods/log`).
pub struct ApiLogs<'c>(pub &'c Connection);

/// How much of a log the diagnosis reads.
const TAIL_LINES: i64 = 200;

impl LogSource for ApiLogs<'_> {
    fn tail<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(self.0.client.clone(), namespace);
            let params = LogParams {
                container: Some(container.to_string()),
                tail_lines: Some(TAIL_LINES),
                ..Default::default()
            };
            self.0.call(api.logs(pod, &params)).await.ok()
        })
    }
}

/// Pods, events, logs and APIServices of the workloads and APIServices in `objects`.
pub async fn observe(
    conn: &Connection,
    objects: &[Value],
    logs: &dyn LogSource,
) -> Result<Observations, ClusterError> {
    let mut obs = Observations::default();
    for o in objects {
        match resources::kind(o) {
            "Deployment" | "DaemonSet" | "StatefulSet" => {
                let ns = resources::namespace(o).unwrap_or("default");
                let Some(labels) = o["spec"]["selector"]["matchLabels"].as_object() else {
                    continue;
                };
                let selector: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                let pods: Api<Pod> = Api::namespaced(conn.client.clone(), ns);
                let list = conn
                    .call(pods.list(&ListParams::default().labels(&selector.join(","))))
                    .await?;
                let names: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                for pod in &list.items {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                        if let Some(text) = logs.tail(ns, &name, &c.name).await {
                            obs.logs.push(ContainerLog {
                                pod: name.clone(),
                                container: c.name.clone(),
                                text,
                            });
                        }
                    }
                    obs.pods.push(serde_json::to_value(pod).unwrap_or_default());
                }
                let events: Api<Event> = Api::namespaced(conn.client.clone(), ns);
                let list = conn.call(events.list(&ListParams::default())).await?;
                obs.events.extend(
                    list.items
                        .into_iter()
                        .filter(|e| {
                            e.involved_object
                                .name
                                .as_ref()
                                .is_some_and(|n| names.contains(n))
                        })
                        .map(|e| serde_json::to_value(e).unwrap_or_default()),
                );
            }
            "APIService" => {
                let r = resources::resolve(conn, resources::api_version(o), "APIService").await?;
                let api = r.api(conn, None);
                if let Some(a) = conn.get_opt(api.get(resources::name(o))).await? {
                    obs.api_services
                        .push(serde_json::to_value(a).unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    Ok(obs)
}
