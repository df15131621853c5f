//! The state of an addon, read from the cluster: which of its objects exist, whether kaddons
//! manages them, and whether they are ready.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{labels, Addon};

use super::apply::{managed_objects, ApplyError};
use super::client::Connection;
use super::resources::{self, display, managed_by_kaddons, manager_of};
use super::wait::{apiservice_available, rollout_complete};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Every object kaddons applied is present and ready.
    Enabled,
    /// Nothing of the addon is in the cluster.
    Disabled,
    /// kaddons' objects are present but some are not ready.
    Degraded,
    /// The addon's objects exist but something else installed them.
    Unmanaged,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Enabled => "enabled",
            State::Disabled => "disabled",
            State::Degraded => "degraded",
            State::Unmanaged => "unmanaged",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectState {
    pub object: String,
    /// `kaddons`, or who else manages it.
    pub managed_by: String,
    pub ready: bool,
    /// Why not ready, or a short state ("Available", "1/1 available").
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonStatus {
    pub addon: String,
    pub state: State,
    pub profile: Option<String>,
    pub addon_version: Option<String>,
    pub objects: Vec<ObjectState>,
}

impl AddonStatus {
    /// One line: what is wrong, for `list`.
    pub fn reason(&self) -> String {
        match self.state {
            State::Degraded => self
                .objects
                .iter()
                .filter(|o| !o.ready)
                .map(|o| format!("{}: {}", o.object, o.detail))
                .collect::<Vec<_>>()
                .join("; "),
            State::Unmanaged => self
                .objects
                .first()
                .map(|o| format!("installed by {}", o.managed_by))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// Readiness of one object from its live state.
pub fn readiness(o: &Value) -> (bool, String) {
    match resources::kind(o) {
        "Deployment" => match serde_json::from_value::<Deployment>(o.clone()) {
            Ok(d) => match rollout_complete(&d) {
                Ok(()) => (true, "rollout complete".into()),
                Err(e) => (false, e),
            },
            Err(e) => (false, format!("unreadable: {e}")),
        },
        "APIService" => match serde_json::from_value::<APIService>(o.clone()) {
            Ok(a) => match apiservice_available(&a) {
                Ok(()) => (true, "Available".into()),
                Err(e) => (false, e),
            },
            Err(e) => (false, format!("unreadable: {e}")),
        },
        _ => (true, "present".into()),
    }
}

/// Reads the state of `addon`. `expected` is a render of it (any profile): its object names are
/// used to find copies installed by something else.
pub async fn addon_status(
    conn: &Connection,
    addon: &Addon,
    expected: &[Value],
) -> Result<AddonStatus, ApplyError> {
    let managed = managed_objects(conn, addon).await?;
    if managed.is_empty() {
        // Not ours: is it there anyway (minikube's addon manager, helm, kubectl apply)?
        let mut objects = Vec::new();
        for o in expected {
            let r = resources::resolve(conn, resources::api_version(o), resources::kind(o)).await?;
            let api = r.api(conn, resources::namespace(o));
            if let Some(found) = conn.get_opt(api.get(resources::name(o))).await? {
                let mut found = serde_json::to_value(found).unwrap_or_default();
                found["apiVersion"] = o["apiVersion"].clone();
                found["kind"] = o["kind"].clone();
                if managed_by_kaddons(&found, addon.name()) {
                    continue;
                }
                let (ready, detail) = readiness(&found);
                objects.push(ObjectState {
                    object: display(o),
                    managed_by: manager_of(&found),
                    ready,
                    detail,
                });
            }
        }
        let state = if objects.is_empty() {
            State::Disabled
        } else {
            State::Unmanaged
        };
        return Ok(AddonStatus {
            addon: addon.name().to_string(),
            state,
            profile: None,
            addon_version: None,
            objects,
        });
    }
    let annotation = |key: &str| {
        managed.iter().find_map(|o| {
            o["metadata"]["annotations"][key]
                .as_str()
                .map(str::to_string)
        })
    };
    let objects: Vec<ObjectState> = managed
        .iter()
        .map(|o| {
            let (ready, detail) = readiness(o);
            ObjectState {
                object: display(o),
                managed_by: labels::MANAGED_BY_VALUE.to_string(),
                ready,
                detail,
            }
        })
        .collect();
    let state = if objects.iter().all(|o| o.ready) {
        State::Enabled
    } else {
        State::Degraded
    };
    Ok(AddonStatus {
        addon: addon.name().to_string(),
        state,
        profile: annotation(labels::PROFILE),
        addon_version: annotation(labels::ADDON_VERSION),
        objects,
    })
}
