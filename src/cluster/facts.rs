//! Facts about the cluster itself for profile detection: node names, labels, providerIDs,
//! kubelet versions and OS images, and whether kubeadm's ConfigMap exists.

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, ListParams};

use crate::profile::Fact;

use super::client::{ClusterError, Connection};

/// How many nodes to look at: the first few tell the story on a local cluster.
const NODES: u32 = 20;

pub async fn cluster_facts(conn: &Connection) -> Result<Vec<Fact>, ClusterError> {
    let mut facts = Vec::new();
    let nodes: Api<Node> = Api::all(conn.client.clone());
    let list = conn
        .call(nodes.list(&ListParams::default().limit(NODES)))
        .await?;
    for n in list.items {
        facts.extend(n.metadata.name.map(Fact::NodeName));
        for (k, v) in n.metadata.labels.unwrap_or_default() {
            if k.starts_with("minikube.k8s.io/")
                || k.starts_with("microk8s.io/")
                || k.starts_with("node.kubernetes.io/microk8s-")
                || k == "node.kubernetes.io/instance-type"
            {
                facts.push(Fact::NodeLabel(k, v));
            }
        }
        if let Some(p) = n.spec.and_then(|s| s.provider_id) {
            facts.push(Fact::ProviderId(p));
        }
        if let Some(info) = n.status.and_then(|s| s.node_info) {
            facts.push(Fact::KubeletVersion(info.kubelet_version));
            facts.push(Fact::OsImage(info.os_image));
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(conn.client.clone(), "kube-system");
    if conn.get_opt(cms.get("kubeadm-config")).await?.is_some() {
        facts.push(Fact::KubeadmConfigMap);
    }
    // Many nodes say the same thing; each fact counts once.
    let mut seen = std::collections::HashSet::new();
    facts.retain(|f| seen.insert(f.clone()));
    Ok(facts)
}

/// The cluster's Kubernetes version from `/version`: its `gitVersion` as reported, and the
/// `major.minor` kaddons chooses addon versions by (`None` when it cannot be read from it).
pub async fn kube_version(
    conn: &Connection,
) -> Result<(String, Option<crate::catalog::versions::KubeVersion>), ClusterError> {
    let info = conn.call(conn.client.apiserver_version()).await?;
    let parsed = crate::catalog::versions::KubeVersion::from_info(
        &info.major,
        &info.minor,
        &info.git_version,
    )
    .ok();
    Ok((info.git_version, parsed))
}
