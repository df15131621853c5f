//! Mapping rendered objects to API endpoints, and reading the few fields every cluster
//! operation needs (kind, name, namespace, ownership labels).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{pinned_kind, Scope};
use serde_json::Value;

use crate::catalog::labels;

use super::client::{Connection, Result};

/// A kind the cluster code knows how to address.
#[derive(Debug, Clone)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
}

/// Plural and scope of the built-in kinds that addons use; other kinds are looked up through
/// API discovery.
const KNOWN: &[(&str, &str, &str, bool)] = &[
    // (apiVersion, kind, plural, namespaced)
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "Service", "services", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "apiregistration.k8s.io/v1",
        "APIService",
        "apiservices",
        false,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

pub fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

/// The endpoint of a kind, from the table above or (for other kinds) from discovery.
pub async fn resolve(conn: &Connection, api_version: &str, kind: &str) -> Result<Resource> {
    let gvk = gvk(api_version, kind);
    if let Some((_, _, plural, namespaced)) = KNOWN
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
    {
        return Ok(Resource {
            api: ApiResource::from_gvk_with_plural(&gvk, plural),
            namespaced: *namespaced,
        });
    }
    let (api, caps) = conn.call(pinned_kind(&conn.client, &gvk)).await?;
    Ok(Resource {
        api,
        namespaced: caps.scope == Scope::Namespaced,
    })
}

impl Resource {
    /// The API for one object (namespaced kinds in `namespace`).
    pub fn api(&self, conn: &Connection, namespace: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(conn.client.clone(), ns, &self.api),
            (true, None) => Api::all_with(conn.client.clone(), &self.api),
            (false, _) => Api::all_with(conn.client.clone(), &self.api),
        }
    }
}

/// `Kind/name` or `Kind namespace/name`, as messages show objects.
pub fn display(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("?");
    let name = o["metadata"]["name"].as_str().unwrap_or("?");
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

pub fn api_version(o: &Value) -> &str {
    o["apiVersion"].as_str().unwrap_or_default()
}

pub fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(o: &Value) -> Option<&str> {
    o["metadata"]["namespace"].as_str()
}

/// Is the object in the cluster kaddons' (for `addon`)?
pub fn managed_by_kaddons(o: &Value, addon: &str) -> bool {
    let l = &o["metadata"]["labels"];
    l[labels::MANAGED_BY] == labels::MANAGED_BY_VALUE && l[labels::ADDON] == addon
}

/// Who manages an object that kaddons does not: the well-known markers of other installers,
/// then the field managers recorded by the API server.
pub fn manager_of(o: &Value) -> String {
    let l = &o["metadata"]["labels"];
    let a = &o["metadata"]["annotations"];
    if let Some(mode) = l["addonmanager.kubernetes.io/mode"].as_str() {
        return format!("addon-manager (minikube/kube-addons, mode {mode})");
    }
    if l["app.kubernetes.io/managed-by"] == "Helm" || a["meta.helm.sh/release-name"].is_string() {
        let release = a["meta.helm.sh/release-name"].as_str().unwrap_or("?");
        return format!("helm (release {release})");
    }
    if a["objectset.rio.cattle.io/hash"].is_string()
        || l["objectset.rio.cattle.io/hash"].is_string()
        || a["objectset.rio.cattle.io/owner-gvk"].is_string()
    {
        // k3s's deploy controller applies each packaged manifest as an Addon
        // (k3s.cattle.io/v1) and marks what it applied with wrangler's objectset keys.
        let gvk = a["objectset.rio.cattle.io/owner-gvk"]
            .as_str()
            .unwrap_or("");
        return match (
            gvk.contains("k3s.cattle.io"),
            a["objectset.rio.cattle.io/owner-namespace"].as_str(),
            a["objectset.rio.cattle.io/owner-name"].as_str(),
        ) {
            (true, Some(ns), Some(name)) => format!("k3s (packaged component, Addon {ns}/{name})"),
            _ if gvk.is_empty() => "k3s/rancher (objectset)".into(),
            _ => format!("k3s/rancher (objectset, owner {gvk})"),
        };
    }
    if let Some(by) = l["app.kubernetes.io/managed-by"].as_str() {
        if by != labels::MANAGED_BY_VALUE {
            return by.to_string();
        }
    }
    if let Some(addon) = l[labels::ADDON].as_str() {
        return format!("kaddons addon {addon}");
    }
    let managers: Vec<&str> = o["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    if managers.is_empty() {
        "unknown (no kaddons labels)".into()
    } else {
        let mut m = managers;
        m.dedup();
        m.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn managers_are_named() {
        let minikube =
            json!({"metadata": {"labels": {"addonmanager.kubernetes.io/mode": "Reconcile"}}});
        assert!(manager_of(&minikube).contains("addon-manager"));
        let helm = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}, "annotations": {"meta.helm.sh/release-name": "ms"}}});
        assert_eq!(manager_of(&helm), "helm (release ms)");
        let kubectl =
            json!({"metadata": {"managedFields": [{"manager": "kubectl-client-side-apply"}]}});
        assert_eq!(manager_of(&kubectl), "kubectl-client-side-apply");
    }

    #[test]
    fn ownership_needs_both_labels() {
        let ours = json!({"metadata": {"labels": {labels::MANAGED_BY: "kaddons", labels::ADDON: "metrics-server"}}});
        assert!(managed_by_kaddons(&ours, "metrics-server"));
        assert!(!managed_by_kaddons(&ours, "other"));
        assert!(!managed_by_kaddons(
            &json!({"metadata": {}}),
            "metrics-server"
        ));
    }
}
