//! Facts about the cluster itself for profile detection: node labels, providerIDs, kubelet
//! versions, and whether kubeadm's ConfigMap exists.

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
        for (k, v) in n.metadata.labels.unwrap_or_default() {
            if k.starts_with("minikube.k8s.io/") || k == "node.kubernetes.io/instance-type" {
                facts.push(Fact::NodeLabel(k, v));
            }
        }
        if let Some(p) = n.spec.and_then(|s| s.provider_id) {
            facts.push(Fact::ProviderId(p));
        }
        if let Some(v) = n
            .status
            .and_then(|s| s.node_info)
            .map(|i| i.kubelet_version)
        {
            facts.push(Fact::KubeletVersion(v));
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(conn.client.clone(), "kube-system");
    if conn.get_opt(cms.get("kubeadm-config")).await?.is_some() {
        facts.push(Fact::KubeadmConfigMap);
    }
    facts.dedup();
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
