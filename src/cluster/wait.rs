//! Waiting until an enabled addon really works: rollouts complete, APIServices Available, and
//! (for metrics APIs) the API serving data. Conditions are pure functions over objects so they
//! can be tested without a cluster; the loops watch instead of polling, except where the API
//! offers nothing to watch (the metrics API itself), which is polled with backoff.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;

use super::client::{ClusterError, Connection};
use super::resources;

/// Progress of the wait steps, drawn by the CLI (a spinner on a terminal, lines otherwise).
pub trait Progress: Sync {
    fn start(&self, step: &str);
    fn finish(&self, step: &str, elapsed: Duration, ok: bool);
}

/// Progress that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str) {}
    fn finish(&self, _: &str, _: Duration, _: bool) {}
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("timed out after {}s waiting for {step}: {state}", .after.as_secs())]
    Timeout {
        step: String,
        state: String,
        after: Duration,
    },
}

/// `Ok` once a Deployment's rollout is complete (as `kubectl rollout status` judges it), else
/// what it is waiting for.
pub fn rollout_complete(d: &Deployment) -> Result<(), String> {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Err("no status yet".into());
    };
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err("the controller has not seen the latest spec yet".into());
    }
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Err(format!(
            "rollout stalled: {}",
            c.message.clone().unwrap_or_default()
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < want {
        return Err(format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return Err(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Err(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Ok(())
}

/// `Ok` once an APIService reports `Available=True`, else its reason and message.
pub fn apiservice_available(a: &APIService) -> Result<(), String> {
    let cond = a
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"));
    match cond {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!(
            "Available={} ({}): {}",
            c.status,
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        )),
        None => Err("no Available condition yet".into()),
    }
}

/// Number of items a metrics list returned (`NodeMetricsList`), for the last wait step.
pub fn metrics_items(list: &Value) -> usize {
    list["items"].as_array().map_or(0, Vec::len)
}

/// Waits for every Deployment and APIService in `objects`, then, if `metrics_api` is given
/// (e.g. `/apis/metrics.k8s.io/v1beta1/nodes`), for that path to list at least one item.
/// Returns the metrics list when it was asked for.
pub async fn wait_ready(
    conn: &Connection,
    objects: &[Value],
    metrics_api: Option<&str>,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<Option<Value>, WaitError> {
    let deadline = Instant::now() + timeout;
    for o in objects
        .iter()
        .filter(|o| resources::kind(o) == "Deployment")
    {
        let ns = resources::namespace(o).unwrap_or("default");
        let name = resources::name(o);
        let api: Api<Deployment> = Api::namespaced(conn.client.clone(), ns);
        let step = format!("rollout of Deployment {ns}/{name}");
        watch_until(conn, api, name, &step, deadline, progress, rollout_complete).await?;
    }
    for o in objects
        .iter()
        .filter(|o| resources::kind(o) == "APIService")
    {
        let name = resources::name(o);
        let api: Api<APIService> = Api::all(conn.client.clone());
        let step = format!("APIService {name} Available");
        watch_until(
            conn,
            api,
            name,
            &step,
            deadline,
            progress,
            apiservice_available,
        )
        .await?;
    }
    let Some(path) = metrics_api else {
        return Ok(None);
    };
    let step = format!("{path} serving data");
    progress.start(&step);
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut last: String;
    loop {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| WaitError::Timeout {
                step: step.clone(),
                state: e.to_string(),
                after: started.elapsed(),
            })?;
        match conn.call(conn.client.request::<Value>(req)).await {
            Ok(list) if metrics_items(&list) > 0 => {
                progress.finish(&step, started.elapsed(), true);
                return Ok(Some(list));
            }
            Ok(_) => last = "the API answers but has no data yet (it needs two scrapes)".into(),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() + delay > deadline {
            progress.finish(&step, started.elapsed(), false);
            return Err(WaitError::Timeout {
                step,
                state: last,
                after: timeout,
            });
        }
        // The metrics API cannot be watched; poll with backoff.
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn watch_until<K>(
    conn: &Connection,
    api: Api<K>,
    name: &str,
    step: &str,
    deadline: Instant,
    progress: &dyn Progress,
    ready: fn(&K) -> Result<(), String>,
) -> Result<(), WaitError>
where
    K: Clone
        + std::fmt::Debug
        + Send
        + Sync
        + serde::de::DeserializeOwned
        + kube::Resource
        + 'static,
{
    progress.start(step);
    let started = Instant::now();
    // Look first: if it is already there, no watch is needed.
    let current = conn.get_opt(api.get(name)).await?;
    let mut state = match current.as_ref().map(ready) {
        Some(Ok(())) => {
            progress.finish(step, started.elapsed(), true);
            return Ok(());
        }
        Some(Err(s)) => s,
        None => "not found".into(),
    };
    // The client's read timeout (--request-timeout) also bounds a watch stream that sees no
    // event, and a real API server can stay silent for longer. So the server is asked to end
    // each watch before that (timeoutSeconds), the watcher then watches again from where it
    // was, and a failed watch is retried with backoff until the deadline, not reported as the
    // outcome of the wait.
    let per_watch = conn
        .request_timeout
        .as_secs()
        .saturating_sub(1)
        .clamp(1, 290) as u32;
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(per_watch);
    let mut events = std::pin::pin!(watcher(api.clone(), config)
        .default_backoff()
        .applied_objects());
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut last_error = None;
    let watched = tokio::time::timeout(remaining, async {
        while let Some(event) = events.next().await {
            match event {
                Ok(o) => match ready(&o) {
                    Ok(()) => return true,
                    Err(s) => state = s,
                },
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        false
    })
    .await;
    if watched == Ok(true) {
        progress.finish(step, started.elapsed(), true);
        return Ok(());
    }
    progress.finish(step, started.elapsed(), false);
    if let Ok(Some(o)) = conn.get_opt(api.get(name)).await {
        if let Err(s) = ready(&o) {
            state = s;
        }
    } else if let Some(e) = last_error {
        state = format!("{state} (last watch error: {e})");
    }
    Err(WaitError::Timeout {
        step: step.to_string(),
        state,
        after: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rollout_states() {
        let base = json!({"metadata": {"name": "m", "generation": 2}, "spec": {"replicas": 1, "selector": {}, "template": {}}});
        let mut d = base.clone();
        assert!(rollout_complete(&deployment(d.clone())).is_err());
        d["status"] = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(rollout_complete(&deployment(d.clone()))
            .unwrap_err()
            .contains("latest spec"));
        d["status"] = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(rollout_complete(&deployment(d.clone()))
            .unwrap_err()
            .contains("old replicas"));
        d["status"] = json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0});
        assert!(rollout_complete(&deployment(d.clone()))
            .unwrap_err()
            .contains("0 of 1"));
        d["status"] = json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(rollout_complete(&deployment(d.clone())).is_ok());
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]);
        assert!(rollout_complete(&deployment(d))
            .unwrap_err()
            .contains("too slow"));
    }

    #[test]
    fn apiservice_states() {
        let a = |status: Value| -> APIService {
            serde_json::from_value(
                json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "status": status}),
            )
            .unwrap()
        };
        assert!(apiservice_available(&a(json!({}))).is_err());
        let failed = a(
            json!({"conditions": [{"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck", "message": "failing or missing response"}]}),
        );
        let e = apiservice_available(&failed).unwrap_err();
        assert!(e.contains("FailedDiscoveryCheck"), "{e}");
        let ok = a(json!({"conditions": [{"type": "Available", "status": "True"}]}));
        assert!(apiservice_available(&ok).is_ok());
    }

    #[test]
    fn metrics_item_count() {
        assert_eq!(metrics_items(&json!({"items": [{}, {}]})), 2);
        assert_eq!(metrics_items(&json!({})), 0);
    }
}
