//! Which profile fits the cluster, and why.
//!
//! Detection is a pure function over [`Fact`]s. Facts come from sources: the kubeconfig today
//! ([`crate::cluster::kubeconfig`]), and the cluster itself (node labels, providerIDs, the
//! kubeadm-config ConfigMap) once a client is available. Each rule that matches adds weighted
//! evidence for one profile; the heaviest profile wins, and `kaddons profile` prints the
//! evidence so the choice can be checked and overridden with `--profile`.

use serde::Serialize;

use crate::catalog::Profile;

/// Something observed about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// Name of the kubeconfig context in use.
    Context(String),
    /// Name of the kubeconfig cluster entry of that context.
    Cluster(String),
    /// Name of the kubeconfig user entry of that context.
    User(String),
    /// API server URL.
    Server(String),
    /// `provider` of a kubeconfig extension on the cluster or context (minikube writes one).
    KubeconfigExtension(String),
    /// A label on a node (key, value).
    NodeLabel(String, String),
    /// A node's `spec.providerID`.
    ProviderId(String),
    /// ConfigMap `kube-system/kubeadm-config` exists.
    KubeadmConfigMap,
    /// A node's kubelet version string (k3s nodes report `+k3s`).
    KubeletVersion(String),
}

/// One piece of evidence for a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub profile: Profile,
    /// 3 = conclusive, 2 = strong, 1 = a hint.
    pub weight: u8,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub profile: Profile,
    pub evidence: Vec<Evidence>,
    /// Observations that choose no profile but matter (e.g. a distribution that ships its own
    /// metrics-server).
    pub notes: Vec<String>,
}

fn ev(profile: Profile, weight: u8, reason: String) -> Evidence {
    Evidence {
        profile,
        weight,
        reason,
    }
}

fn rules(fact: &Fact, evidence: &mut Vec<Evidence>, notes: &mut Vec<String>) {
    use Profile::*;
    match fact {
        Fact::Context(c) | Fact::Cluster(c) => {
            let what = if matches!(fact, Fact::Context(_)) {
                "context"
            } else {
                "cluster"
            };
            if c == "minikube" {
                evidence.push(ev(
                    Minikube,
                    2,
                    format!("kubeconfig {what} is named \"minikube\""),
                ));
            } else if c.starts_with("kind-") {
                evidence.push(ev(
                    Kind,
                    2,
                    format!("kubeconfig {what} \"{c}\" is named like kind's (kind-<cluster>)"),
                ));
            } else if c == "kubernetes-admin@kubernetes" || (what == "cluster" && c == "kubernetes")
            {
                evidence.push(ev(
                    Kubeadm,
                    1,
                    format!("kubeconfig {what} \"{c}\" is kubeadm's default admin.conf name"),
                ));
            } else if c.starts_with("k3d-") || c == "default" {
                notes.push(format!(
                    "kubeconfig {what} \"{c}\" looks like k3s/k3d, which ships its own metrics-server"
                ));
            } else if ["docker-desktop", "rancher-desktop", "orbstack", "colima"]
                .contains(&c.as_str())
            {
                notes.push(format!(
                    "kubeconfig {what} \"{c}\" is a desktop distribution; the generic profile applies"
                ));
            }
        }
        Fact::User(u) => {
            if u == "kubernetes-admin" {
                evidence.push(ev(
                    Kubeadm,
                    1,
                    "kubeconfig user is kubeadm's \"kubernetes-admin\"".into(),
                ));
            }
        }
        Fact::Server(s) => {
            if s.ends_with(":8443") {
                evidence.push(ev(
                    Minikube,
                    1,
                    format!("API server {s} listens on 8443, minikube's port"),
                ));
            }
        }
        Fact::KubeconfigExtension(p) => {
            if p.starts_with("minikube") {
                evidence.push(ev(
                    Minikube,
                    3,
                    format!("kubeconfig carries minikube's extension (provider {p})"),
                ));
            }
        }
        Fact::NodeLabel(k, v) => {
            if k.starts_with("minikube.k8s.io/") {
                evidence.push(ev(Minikube, 3, format!("node label {k}={v}")));
            }
        }
        Fact::ProviderId(p) => {
            if p.starts_with("kind://") {
                evidence.push(ev(Kind, 3, format!("node providerID {p}")));
            } else if p.starts_with("k3s://") {
                notes.push(format!(
                    "node providerID {p}: k3s ships its own metrics-server"
                ));
            }
        }
        Fact::KubeadmConfigMap => {
            evidence.push(ev(
                Kubeadm,
                2,
                "ConfigMap kube-system/kubeadm-config exists".into(),
            ));
        }
        Fact::KubeletVersion(v) => {
            if v.contains("+k3s") {
                notes.push(format!(
                    "kubelet {v} is k3s, which ships its own metrics-server"
                ));
            }
        }
    }
}

/// Chooses the profile the facts support best; `generic` when nothing points anywhere.
///
/// kind and minikube clusters are built with kubeadm too, so their evidence outranks
/// kubeadm's at equal weight.
pub fn detect(facts: &[Fact]) -> Detection {
    let mut evidence = Vec::new();
    let mut notes = Vec::new();
    for f in facts {
        rules(f, &mut evidence, &mut notes);
    }
    notes.dedup();
    evidence.dedup();
    let score = |p: Profile| -> u32 {
        evidence
            .iter()
            .filter(|e| e.profile == p)
            .map(|e| u32::from(e.weight))
            .sum()
    };
    let preference = [Profile::Kind, Profile::Minikube, Profile::Kubeadm];
    let mut best = Profile::Generic;
    let mut best_score = 0;
    for p in preference {
        let s = score(p);
        if s > best_score {
            best = p;
            best_score = s;
        }
    }
    Detection {
        profile: best,
        evidence,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(context: &str, cluster: &str, server: &str) -> Vec<Fact> {
        vec![
            Fact::Context(context.into()),
            Fact::Cluster(cluster.into()),
            Fact::Server(server.into()),
        ]
    }

    #[test]
    fn kind_contexts() {
        let d = detect(&ctx("kind-dev", "kind-dev", "https://127.0.0.1:40123"));
        assert_eq!(d.profile, Profile::Kind);
        assert!(d.evidence.iter().any(|e| e.reason.contains("kind-dev")));
    }

    #[test]
    fn minikube_context_and_extension() {
        let d = detect(&ctx("minikube", "minikube", "https://192.168.49.2:8443"));
        assert_eq!(d.profile, Profile::Minikube);
        let mut facts = ctx("dev", "dev", "https://192.168.49.2:8443");
        facts.push(Fact::KubeconfigExtension("minikube.sigs.k8s.io".into()));
        assert_eq!(detect(&facts).profile, Profile::Minikube);
    }

    #[test]
    fn kubeadm_admin_conf() {
        let mut facts = ctx(
            "kubernetes-admin@kubernetes",
            "kubernetes",
            "https://10.0.0.5:6443",
        );
        facts.push(Fact::User("kubernetes-admin".into()));
        assert_eq!(detect(&facts).profile, Profile::Kubeadm);
    }

    #[test]
    fn kind_outranks_kubeadm_configmap_when_cluster_facts_are_added() {
        let mut facts = ctx("kind-x", "kind-x", "https://127.0.0.1:1");
        facts.push(Fact::KubeadmConfigMap);
        facts.push(Fact::ProviderId("kind://docker/x/x-control-plane".into()));
        assert_eq!(detect(&facts).profile, Profile::Kind);
    }

    #[test]
    fn unknown_or_no_facts_is_generic() {
        assert_eq!(detect(&[]).profile, Profile::Generic);
        let d = detect(&ctx("prod-eu", "prod-eu", "https://api.example.com"));
        assert_eq!(d.profile, Profile::Generic);
        assert!(d.evidence.is_empty());
    }

    #[test]
    fn k3d_is_generic_with_a_note() {
        let d = detect(&ctx("k3d-dev", "k3d-dev", "https://0.0.0.0:6550"));
        assert_eq!(d.profile, Profile::Generic);
        assert!(d.notes.iter().any(|n| n.contains("own metrics-server")));
    }
}
