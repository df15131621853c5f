//! Enabling and disabling an addon: ownership checks, server-side apply in dependency phases,
//! pruning, and deletion by label. The cluster is the only record: what carries kaddons'
//! labels for an addon is what that addon consists of.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{labels, phase, Addon, Bundled};

use super::client::{ClusterError, Connection};
use super::resources::{self, display, managed_by_kaddons, manager_of, Resource};

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "kaddons";
/// Requests in flight at once within one phase.
const CONCURRENCY: usize = 8;

/// The kube-apiserver flags that configure the aggregation layer.
pub const AGGREGATION_FLAGS: [&str; 7] = [
    "--requestheader-client-ca-file=<front-proxy CA certificate>",
    "--requestheader-allowed-names=front-proxy-client",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-username-headers=X-Remote-User",
    "--proxy-client-cert-file=<front-proxy client certificate>",
    "--proxy-client-key-file=<front-proxy client key>",
];

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the aggregation layer of this cluster is not configured (ConfigMap kube-system/extension-apiserver-authentication has no requestheader-client-ca-file), so the API server cannot serve {apis} from the addon.\nStart kube-apiserver with:\n  {}\n(`kaddons aggregator certs` can create the front-proxy files; kubeadm, kind and minikube configure this by default.)", AGGREGATION_FLAGS.join("\n  "))]
    AggregationDisabled { apis: String },
    #[error("{} object(s) of {addon} already exist and are not managed by kaddons:\n{}\n{}re-run with --force to take them over (kaddons will then update them, and delete them on disable)", .objects.len(), .objects.iter().map(|(o, m)| format!("  {o} (managed by {m})")).collect::<Vec<_>>().join("\n"), .hint.as_ref().map(|h| format!("{h}\n")).unwrap_or_default())]
    Conflicts {
        addon: String,
        /// (object, who manages it)
        objects: Vec<(String, String)>,
        /// What to do first, from the profile (a distribution that installs the addon itself).
        hint: Option<String>,
    },
}

impl ApplyError {
    /// Adds what a distribution that installs the addon itself needs done first.
    pub fn with_bundled(self, profile: &str, bundled: Option<&Bundled>) -> Self {
        match (self, bundled) {
            (ApplyError::Conflicts { addon, objects, .. }, Some(b)) => {
                ApplyError::Conflicts {
                    hint: Some(format!(
                    "{profile} {} its own {addon} ({}). To hand it to kaddons: {} (source: {}).",
                    if b.by_default { "installs" } else { "can install" },
                    b.manager,
                    b.turn_off,
                    b.source
                )),
                    addon,
                    objects,
                }
            }
            (e, _) => e,
        }
    }
}

pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, Default)]
pub struct EnableOptions {
    /// Take over objects that exist but are not kaddons'.
    pub force: bool,
    /// Server-side dry run: change nothing, report what would change.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    Pruned,
    Deleted,
}

impl Change {
    /// How a report line says it: `created`, or `would create` in a dry run.
    pub fn verb(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Change::Created, false) => "created",
            (Change::Created, true) => "would create",
            (Change::Configured, false) => "configured",
            (Change::Configured, true) => "would configure",
            (Change::Unchanged, _) => "unchanged",
            (Change::Pruned, false) => "pruned",
            (Change::Pruned, true) => "would prune",
            (Change::Deleted, false) => "deleted",
            (Change::Deleted, true) => "would delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    pub object: String,
    pub change: Change,
}

/// Outcome of enable or disable, one line per object.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub changes: Vec<ObjectChange>,
    /// Objects another installer had created, taken over with `--force`: (object, manager).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<(String, String)>,
    /// The objects deleted (or pruned), for waiting until they are gone.
    #[serde(skip)]
    pub deleted: Vec<Value>,
}

impl Report {
    pub fn count(&self, change: Change) -> usize {
        self.changes.iter().filter(|c| c.change == change).count()
    }
}

/// Applies `objects` (a render of `addon`) to the cluster.
pub async fn enable(
    conn: &Connection,
    addon: &Addon,
    objects: &[Value],
    opts: EnableOptions,
) -> Result<Report> {
    if !addon.def.api_services.is_empty() {
        check_aggregation(conn, &addon.def.api_services).await?;
    }
    // Resolve every kind once, then read what exists (concurrently).
    let mut targets = Vec::with_capacity(objects.len());
    for o in objects {
        let r = resources::resolve(conn, resources::api_version(o), resources::kind(o)).await?;
        targets.push((o, r));
    }
    let existing: Vec<Option<Value>> = stream::iter(targets.iter())
        .map(|(o, r)| get(conn, r, o))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let conflicts: Vec<(String, String)> = targets
        .iter()
        .zip(&existing)
        .filter_map(|((o, _), e)| {
            let e = e.as_ref()?;
            (!managed_by_kaddons(e, addon.name())).then(|| (display(o), manager_of(e)))
        })
        .collect();
    if !conflicts.is_empty() && !opts.force {
        return Err(ApplyError::Conflicts {
            addon: addon.name().to_string(),
            objects: conflicts,
            hint: None,
        });
    }

    let params = PatchParams {
        dry_run: opts.dry_run,
        ..PatchParams::apply(FIELD_MANAGER).force()
    };
    let mut report = Report {
        dry_run: opts.dry_run,
        taken_over: conflicts,
        ..Report::default()
    };
    // Phases in order; objects within a phase in parallel.
    let phases: BTreeSet<u8> = objects.iter().map(|o| phase(resources::kind(o))).collect();
    for p in phases {
        let batch: Vec<usize> = (0..targets.len())
            .filter(|&i| phase(resources::kind(targets[i].0)) == p)
            .collect();
        let applied: Vec<(usize, Value)> = stream::iter(batch)
            .map(|i| {
                let (o, r) = &targets[i];
                let params = &params;
                async move {
                    let api = r.api(conn, resources::namespace(o));
                    let obj: DynamicObject =
                        serde_json::from_value((*o).clone()).map_err(|e| ClusterError::Api {
                            server: conn.server.clone(),
                            context: conn.context.clone(),
                            code: 0,
                            reason: "Invalid".into(),
                            message: format!("{}: {e}", display(o)),
                        })?;
                    let out = conn
                        .call(api.patch(resources::name(o), params, &Patch::Apply(&obj)))
                        .await?;
                    Ok::<_, ClusterError>((i, serde_json::to_value(out).unwrap_or_default()))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut applied = applied;
        applied.sort_by_key(|(i, _)| *i);
        for (i, after) in applied {
            let change = match &existing[i] {
                None => Change::Created,
                Some(before) if same_content(before, &after) => Change::Unchanged,
                Some(_) => Change::Configured,
            };
            report.changes.push(ObjectChange {
                object: display(targets[i].0),
                change,
            });
        }
    }

    // Prune what an earlier enable created that this render no longer has.
    let wanted: BTreeSet<String> = objects.iter().map(identity).collect();
    for o in managed_objects(conn, addon).await? {
        if !wanted.contains(&identity(&o)) {
            if !opts.dry_run {
                delete(conn, &o).await?;
            }
            report.changes.push(ObjectChange {
                object: display(&o),
                change: Change::Pruned,
            });
            report.deleted.push(o);
        }
    }
    Ok(report)
}

/// Deletes every object labelled as kaddons' for `addon`: APIServices first (so discovery
/// never points at a missing service), then the other phases in reverse order.
pub async fn disable(conn: &Connection, addon: &Addon, dry_run: bool) -> Result<Report> {
    let mut objects = managed_objects(conn, addon).await?;
    objects.sort_by_key(|o| std::cmp::Reverse(phase(resources::kind(o))));
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    for o in objects {
        // The label selector already asked for kaddons' objects; check again before deleting.
        if !managed_by_kaddons(&o, addon.name()) {
            continue;
        }
        if !dry_run {
            delete(conn, &o).await?;
        }
        report.changes.push(ObjectChange {
            object: display(&o),
            change: Change::Deleted,
        });
        report.deleted.push(o);
    }
    Ok(report)
}

/// Waits (watching) until every object in `objects` is gone; returns those still present
/// when `timeout` runs out.
pub async fn wait_deleted(
    conn: &Connection,
    objects: &[Value],
    timeout: std::time::Duration,
) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut remaining = Vec::new();
    for o in objects {
        let r = resources::resolve(conn, resources::api_version(o), resources::kind(o)).await?;
        let api = r.api(conn, resources::namespace(o));
        let name = resources::name(o);
        // Foreground deletion keeps the object until its dependents are gone; only then watch.
        let Some(current) = conn.get_opt(api.get(name)).await? else {
            continue;
        };
        let uid = current.metadata.uid.clone().unwrap_or_default();
        let gone = tokio::time::timeout_at(
            deadline,
            kube::runtime::wait::await_condition(
                api.clone(),
                name,
                kube::runtime::wait::conditions::is_deleted(&uid),
            ),
        )
        .await;
        if !matches!(gone, Ok(Ok(_))) {
            remaining.push(display(o));
        }
    }
    Ok(remaining)
}

/// Objects in the cluster labelled as kaddons' for `addon`, of any kind the addon declares.
pub async fn managed_objects(conn: &Connection, addon: &Addon) -> Result<Vec<Value>> {
    let selector = format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::ADDON,
        addon.name()
    );
    let kinds = addon.declared_kinds();
    let lists: Vec<Vec<Value>> = stream::iter(kinds.iter())
        .map(|(v, k)| {
            let selector = &selector;
            async move {
                let r = resources::resolve(conn, v, k).await?;
                let api = r.api(conn, None);
                let list = conn
                    .call(api.list(&ListParams::default().labels(selector)))
                    .await?;
                Ok::<_, ApplyError>(
                    list.items
                        .into_iter()
                        .map(|item| with_type(item, v, k))
                        .collect(),
                )
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// Fails unless the aggregation layer is configured.
pub async fn check_aggregation(conn: &Connection, api_services: &[String]) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(conn.client.clone(), "kube-system");
    let cm = conn
        .get_opt(api.get("extension-apiserver-authentication"))
        .await?;
    let configured = cm
        .and_then(|c| c.data)
        .is_some_and(|d| d.contains_key("requestheader-client-ca-file"));
    if configured {
        Ok(())
    } else {
        Err(ApplyError::AggregationDisabled {
            apis: api_services.join(", "),
        })
    }
}

async fn get(conn: &Connection, r: &Resource, o: &Value) -> Result<Option<Value>, ClusterError> {
    let api = r.api(conn, resources::namespace(o));
    let found = conn.get_opt(api.get(resources::name(o))).await?;
    Ok(found.map(|d| with_type(d, resources::api_version(o), resources::kind(o))))
}

async fn delete(conn: &Connection, o: &Value) -> Result<(), ClusterError> {
    let r = resources::resolve(conn, resources::api_version(o), resources::kind(o)).await?;
    let api = r.api(conn, resources::namespace(o));
    // A 404 means someone else deleted it first: the goal is reached.
    conn.get_opt(api.delete(resources::name(o), &DeleteParams::foreground()))
        .await?;
    Ok(())
}

/// A listed or fetched object as JSON, with apiVersion and kind filled in (list items may
/// lack them).
fn with_type(d: DynamicObject, api_version: &str, kind: &str) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::from(api_version));
        m.insert("kind".into(), Value::from(kind));
    }
    v
}

/// group/kind/namespace/name.
fn identity(o: &Value) -> String {
    let group = resources::api_version(o)
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    format!(
        "{group}/{}/{}/{}",
        resources::kind(o),
        resources::namespace(o).unwrap_or(""),
        resources::name(o)
    )
}

/// Equal but for the bookkeeping the API server changes on every write.
fn same_content(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["resourceVersion", "managedFields", "generation"] {
                m.remove(k);
            }
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
        }
        v
    }
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_comparison_ignores_bookkeeping() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"a": 1}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "2", "managedFields": []}, "spec": {"a": 1}});
        assert!(same_content(&a, &b));
        let c = json!({"metadata": {"name": "x"}, "spec": {"a": 2}});
        assert!(!same_content(&a, &c));
    }

    #[test]
    fn identity_separates_groups_and_namespaces() {
        let a = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "a"}});
        let b = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "b"}});
        assert_ne!(identity(&a), identity(&b));
    }
}
