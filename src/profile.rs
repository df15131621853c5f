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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// A node's name.
    NodeName(String),
    /// A label on a node (key, value).
    NodeLabel(String, String),
    /// A node's `spec.providerID`.
    ProviderId(String),
    /// ConfigMap `kube-system/kubeadm-config` exists.
    KubeadmConfigMap,
    /// A node's kubelet version string (k3s nodes report `+k3s1`, OrbStack's `+orb1`).
    KubeletVersion(String),
    /// A node's `status.nodeInfo.osImage`.
    OsImage(String),
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
    /// Observations that choose no profile but matter.
    pub notes: Vec<String>,
}

/// The distribution a profile is built on: its evidence counts for the profile too (a k3d
/// node is a k3s node, a kind cluster is a kubeadm cluster), once the profile has evidence of
/// its own.
fn base(p: Profile) -> Option<Profile> {
    use Profile::*;
    match p {
        K3d | RancherDesktop | Colima => Some(K3s),
        Kind | Minikube | DockerDesktop => Some(Kubeadm),
        _ => None,
    }
}

/// Ties go to the first: the more specific distribution before the one it is built on.
const PREFERENCE: [Profile; 10] = [
    Profile::K3d,
    Profile::RancherDesktop,
    Profile::Colima,
    Profile::Orbstack,
    Profile::DockerDesktop,
    Profile::Kind,
    Profile::Minikube,
    Profile::Microk8s,
    Profile::K3s,
    Profile::Kubeadm,
];

fn ev(profile: Profile, weight: u8, reason: String) -> Evidence {
    Evidence {
        profile,
        weight,
        reason,
    }
}

/// `colima` or `colima-NAME` (colima names everything after its profile).
fn is_colima(name: &str) -> bool {
    name == "colima" || name.starts_with("colima-")
}

/// k3d's node names: `k3d-CLUSTER-server-N` / `k3d-CLUSTER-agent-N`.
fn is_k3d_node(name: &str) -> bool {
    name.strip_prefix("k3d-").is_some_and(|rest| {
        rest.rsplit_once('-').is_some_and(|(head, n)| {
            n.bytes().all(|b| b.is_ascii_digit())
                && (head.ends_with("-server") || head.ends_with("-agent"))
        })
    })
}

/// The host of a URL such as `https://host:port/path`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn rules(fact: &Fact, evidence: &mut Vec<Evidence>) {
    use Profile::*;
    let mut add = |p, w, reason: String| evidence.push(ev(p, w, reason));
    match fact {
        Fact::Context(c) | Fact::Cluster(c) => {
            let what = if matches!(fact, Fact::Context(_)) {
                "context"
            } else {
                "cluster"
            };
            let named =
                |who: &str| format!("kubeconfig {what} is named \"{c}\", as {who} names it");
            if c == "minikube" {
                add(Minikube, 2, named("minikube"));
            } else if c.starts_with("kind-") {
                add(
                    Kind,
                    2,
                    format!("kubeconfig {what} \"{c}\" is named like kind's (kind-<cluster>)"),
                );
            } else if c.starts_with("k3d-") {
                add(
                    K3d,
                    3,
                    format!("kubeconfig {what} \"{c}\" is named like k3d's (k3d-<cluster>)"),
                );
            } else if c == "kubernetes-admin@kubernetes" || (what == "cluster" && c == "kubernetes")
            {
                add(
                    Kubeadm,
                    1,
                    format!("kubeconfig {what} \"{c}\" is kubeadm's default admin.conf name"),
                );
            } else if c == "default" {
                add(
                    K3s,
                    1,
                    format!(
                        "kubeconfig {what} is \"default\", as in k3s's /etc/rancher/k3s/k3s.yaml"
                    ),
                );
            } else if c == "docker-desktop" {
                add(DockerDesktop, 3, named("Docker Desktop"));
            } else if c == "rancher-desktop" {
                add(RancherDesktop, 3, named("Rancher Desktop"));
            } else if c == "orbstack" {
                add(Orbstack, 3, named("OrbStack"));
            } else if is_colima(c) {
                add(
                    Colima,
                    3,
                    format!(
                        "kubeconfig {what} \"{c}\" is named like colima's (colima[-<profile>])"
                    ),
                );
            } else if c == "microk8s" || c == "microk8s-cluster" {
                add(Microk8s, 3, named("MicroK8s"));
            }
        }
        Fact::User(u) => {
            if u == "kubernetes-admin" {
                add(
                    Kubeadm,
                    1,
                    "kubeconfig user is kubeadm's \"kubernetes-admin\"".into(),
                );
            } else if u.starts_with("admin@k3d-") {
                add(
                    K3d,
                    2,
                    format!("kubeconfig user \"{u}\" is named like k3d's (admin@k3d-<cluster>)"),
                );
            }
        }
        Fact::Server(s) => {
            let host = host_of(s);
            if s.ends_with(":8443") {
                add(
                    Minikube,
                    1,
                    format!("API server {s} listens on 8443, minikube's port"),
                );
            } else if s.ends_with(":16443") {
                add(
                    Microk8s,
                    1,
                    format!("API server {s} listens on 16443, MicroK8s' port"),
                );
            }
            if host == "kubernetes.docker.internal" {
                add(
                    DockerDesktop,
                    2,
                    format!("API server {s} is Docker Desktop's kubernetes.docker.internal"),
                );
            } else if host.ends_with(".orb.local") {
                add(
                    Orbstack,
                    2,
                    format!("API server {s} is on OrbStack's .orb.local domain"),
                );
            }
        }
        Fact::KubeconfigExtension(p) => {
            if p.starts_with("minikube") {
                add(
                    Minikube,
                    3,
                    format!("kubeconfig carries minikube's extension (provider {p})"),
                );
            }
        }
        Fact::NodeName(n) => {
            if n == "docker-desktop" {
                add(
                    DockerDesktop,
                    2,
                    format!("node \"{n}\" is Docker Desktop's (kubeadm provisioner)"),
                );
            } else if n == "lima-rancher-desktop" {
                add(
                    RancherDesktop,
                    2,
                    format!("node \"{n}\" is Rancher Desktop's Lima VM"),
                );
            } else if n == "orbstack" {
                add(Orbstack, 2, format!("node \"{n}\" is OrbStack's"));
            } else if is_colima(n) {
                add(
                    Colima,
                    1,
                    format!("node \"{n}\" is named like colima's VM (colima[-<profile>])"),
                );
            } else if is_k3d_node(n) {
                add(
                    K3d,
                    2,
                    format!("node \"{n}\" is named like k3d's (k3d-<cluster>-server|agent-<n>)"),
                );
            }
        }
        Fact::NodeLabel(k, v) => {
            if k.starts_with("minikube.k8s.io/") {
                add(Minikube, 3, format!("node label {k}={v}"));
            } else if k == "microk8s.io/cluster" || k.starts_with("node.kubernetes.io/microk8s-") {
                add(
                    Microk8s,
                    3,
                    format!("node label {k}={v} (set by MicroK8s' kubelet arguments)"),
                );
            } else if k == "node.kubernetes.io/instance-type" && v == "k3s" {
                add(K3s, 2, format!("node label {k}={v} (k3s's cloud provider)"));
            }
        }
        Fact::ProviderId(p) => {
            if let Some(rest) = p.strip_prefix("kind://") {
                add(Kind, 3, format!("node providerID {p}"));
                // kind://PROVIDER/CLUSTER/NODE: Docker Desktop's kind provisioner names its
                // cluster "desktop".
                if rest.split('/').nth(1) == Some("desktop") {
                    add(
                        DockerDesktop,
                        1,
                        format!(
                            "node providerID {p} names kind cluster \"desktop\", Docker Desktop's"
                        ),
                    );
                }
            } else if p.starts_with("k3s://") {
                add(
                    K3s,
                    3,
                    format!("node providerID {p} (k3s's cloud provider)"),
                );
            }
        }
        Fact::KubeadmConfigMap => {
            add(
                Kubeadm,
                2,
                "ConfigMap kube-system/kubeadm-config exists".into(),
            );
        }
        Fact::KubeletVersion(v) => {
            if v.contains("+k3s") {
                add(K3s, 3, format!("kubelet version {v} is a k3s build"));
            } else if v.contains("+orb") {
                add(
                    Orbstack,
                    3,
                    format!("kubelet version {v} is an OrbStack build"),
                );
            }
        }
        Fact::OsImage(os) => {
            if os.starts_with("OrbStack") {
                add(Orbstack, 2, format!("node OS image \"{os}\""));
            } else if os.starts_with("Docker Desktop") {
                add(DockerDesktop, 2, format!("node OS image \"{os}\""));
            }
        }
    }
}

/// Chooses the profile the facts support best; `generic` when nothing points anywhere.
pub fn detect(facts: &[Fact]) -> Detection {
    let mut evidence = Vec::new();
    for f in facts {
        rules(f, &mut evidence);
    }
    evidence.dedup();
    let mut totals = std::collections::BTreeMap::<Profile, u32>::new();
    for e in &evidence {
        *totals.entry(e.profile).or_default() += u32::from(e.weight);
    }
    let own = |p: Profile| -> u32 { totals.get(&p).copied().unwrap_or(0) };
    let score = |p: Profile| -> u32 {
        match own(p) {
            0 => 0,
            s => s + base(p).map_or(0, own),
        }
    };
    let mut best = Profile::Generic;
    let mut best_score = 0;
    for p in PREFERENCE {
        let s = score(p);
        if s > best_score {
            best = p;
            best_score = s;
        }
    }
    // The winner's evidence (and its base's) first, strongest first; the rest after.
    let rank = |e: &Evidence| {
        let ours = e.profile == best || Some(e.profile) == base(best);
        (!ours, std::cmp::Reverse(e.weight))
    };
    evidence.sort_by_key(rank);
    let mut notes = Vec::new();
    let rivals: Vec<Profile> = PREFERENCE
        .into_iter()
        .filter(|&p| p != best && Some(p) != base(best) && own(p) > 0)
        .collect();
    if !rivals.is_empty() {
        notes.push(format!(
            "some evidence points to {} too; pass --profile to choose",
            rivals
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
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

    /// kubeconfig names as each distribution writes them (the sources are in addon.yaml's
    /// profiles and the research behind them), and node facts as their nodes report them.
    fn kubeconfig(context: &str, cluster: &str, user: &str, server: &str) -> Vec<Fact> {
        vec![
            Fact::Context(context.into()),
            Fact::Cluster(cluster.into()),
            Fact::User(user.into()),
            Fact::Server(server.into()),
        ]
    }

    fn node(name: &str, provider: Option<&str>, kubelet: &str, os: &str) -> Vec<Fact> {
        let mut f = vec![
            Fact::NodeName(name.into()),
            Fact::KubeletVersion(kubelet.into()),
            Fact::OsImage(os.into()),
        ];
        f.extend(provider.map(|p| Fact::ProviderId(p.into())));
        f
    }

    fn k3s_node(name: &str) -> Vec<Fact> {
        let mut f = node(
            name,
            Some(&format!("k3s://{name}")),
            "v1.31.4+k3s1",
            "Ubuntu 24.04.1 LTS",
        );
        f.push(Fact::NodeLabel(
            "node.kubernetes.io/instance-type".into(),
            "k3s".into(),
        ));
        f
    }

    #[test]
    fn each_distribution_from_its_kubeconfig_and_nodes() {
        let cases: Vec<(Profile, Vec<Fact>)> = vec![
            (
                Profile::K3s,
                [
                    kubeconfig("default", "default", "default", "https://127.0.0.1:6443"),
                    k3s_node("pi-1"),
                ]
                .concat(),
            ),
            (
                Profile::K3d,
                [
                    kubeconfig(
                        "k3d-k3s-default",
                        "k3d-k3s-default",
                        "admin@k3d-k3s-default",
                        "https://0.0.0.0:41927",
                    ),
                    k3s_node("k3d-k3s-default-server-0"),
                ]
                .concat(),
            ),
            (
                Profile::RancherDesktop,
                [
                    kubeconfig(
                        "rancher-desktop",
                        "rancher-desktop",
                        "rancher-desktop",
                        "https://127.0.0.1:6443",
                    ),
                    k3s_node("lima-rancher-desktop"),
                ]
                .concat(),
            ),
            (
                Profile::Colima,
                [
                    kubeconfig("colima", "colima", "colima", "https://192.168.106.2:53811"),
                    k3s_node("colima"),
                ]
                .concat(),
            ),
            (
                Profile::Orbstack,
                [
                    kubeconfig(
                        "orbstack",
                        "orbstack",
                        "orbstack",
                        "https://127.0.0.1:26443",
                    ),
                    node("orbstack", None, "v1.32.6+orb1", "OrbStack"),
                ]
                .concat(),
            ),
            (
                Profile::DockerDesktop,
                [
                    kubeconfig(
                        "docker-desktop",
                        "docker-desktop",
                        "docker-desktop",
                        "https://kubernetes.docker.internal:6443",
                    ),
                    node("docker-desktop", None, "v1.29.1", "Docker Desktop"),
                    vec![Fact::KubeadmConfigMap],
                ]
                .concat(),
            ),
            (
                // The kind provisioner: kind's providerID, but Docker Desktop's context.
                Profile::DockerDesktop,
                [
                    kubeconfig(
                        "docker-desktop",
                        "docker-desktop",
                        "docker-desktop",
                        "https://127.0.0.1:6443",
                    ),
                    node(
                        "desktop-control-plane",
                        Some("kind://docker/desktop/desktop-control-plane"),
                        "v1.31.4",
                        "Debian GNU/Linux 12 (bookworm)",
                    ),
                    vec![Fact::KubeadmConfigMap],
                ]
                .concat(),
            ),
            (
                Profile::Microk8s,
                [
                    kubeconfig(
                        "microk8s",
                        "microk8s-cluster",
                        "admin",
                        "https://127.0.0.1:16443",
                    ),
                    node("laptop", None, "v1.32.3", "Ubuntu 24.04.2 LTS"),
                    vec![
                        Fact::NodeLabel("microk8s.io/cluster".into(), "true".into()),
                        Fact::NodeLabel(
                            "node.kubernetes.io/microk8s-controlplane".into(),
                            "microk8s-controlplane".into(),
                        ),
                    ],
                ]
                .concat(),
            ),
            (
                Profile::Kind,
                [
                    kubeconfig(
                        "kind-dev",
                        "kind-dev",
                        "kind-dev",
                        "https://127.0.0.1:40123",
                    ),
                    node(
                        "dev-control-plane",
                        Some("kind://docker/dev/dev-control-plane"),
                        "v1.34.0",
                        "Debian GNU/Linux 12 (bookworm)",
                    ),
                    vec![Fact::KubeadmConfigMap],
                ]
                .concat(),
            ),
        ];
        for (want, facts) in cases {
            let d = detect(&facts);
            assert_eq!(d.profile, want, "{facts:?}\n{d:#?}");
            assert!(
                d.evidence[0].profile == want || Some(d.evidence[0].profile) == base(want),
                "the winner's evidence comes first: {d:#?}"
            );
            // Nodes alone (a kubeconfig renamed by the user) still tell the distributions
            // whose nodes are distinctive.
            let nodes_only: Vec<Fact> = facts
                .iter()
                .filter(|f| {
                    !matches!(
                        f,
                        Fact::Context(_) | Fact::Cluster(_) | Fact::User(_) | Fact::Server(_)
                    )
                })
                .cloned()
                .collect();
            let by_nodes = detect(&nodes_only).profile;
            match want {
                // colima's node is named after the profile (a hint only); k3s wins on its own.
                Profile::Colima => assert_eq!(by_nodes, Profile::Colima),
                // Docker Desktop's kind provisioner looks like any kind cluster by its nodes.
                Profile::DockerDesktop
                    if nodes_only.iter().any(|f| matches!(f, Fact::ProviderId(_))) =>
                {
                    assert_eq!(by_nodes, Profile::Kind)
                }
                _ => assert_eq!(by_nodes, want, "{nodes_only:?}"),
            }
        }
    }

    #[test]
    fn the_base_distribution_counts_for_the_specific_one() {
        // Three conclusive k3s facts do not outvote one k3d context: a k3d node is a k3s node.
        let mut facts = kubeconfig("k3d-x", "k3d-x", "admin@k3d-x", "https://0.0.0.0:1");
        facts.extend(k3s_node("somehost"));
        let d = detect(&facts);
        assert_eq!(d.profile, Profile::K3d);
        assert!(
            d.notes.is_empty(),
            "k3s is k3d's base, not a rival: {:?}",
            d.notes
        );
    }

    #[test]
    fn contradicting_evidence_is_reported() {
        let mut facts = kubeconfig(
            "minikube",
            "minikube",
            "minikube",
            "https://192.168.49.2:8443",
        );
        facts.extend(k3s_node("minikube"));
        let d = detect(&facts);
        assert!(d.notes.iter().any(|n| n.contains("--profile")), "{d:#?}");
    }

    #[test]
    fn k3d_node_names_and_urls() {
        assert!(is_k3d_node("k3d-dev-server-0"));
        assert!(is_k3d_node("k3d-my-cluster-agent-12"));
        assert!(!is_k3d_node("k3d-dev-server-x"));
        assert!(!is_k3d_node("k3d-dev-0"));
        assert!(!is_k3d_node("dev-server-0"));
        assert_eq!(
            host_of("https://kubernetes.docker.internal:6443"),
            "kubernetes.docker.internal"
        );
        assert_eq!(host_of("https://k8s.orb.local"), "k8s.orb.local");
        assert_eq!(host_of("https://[::1]:6443/x"), "[::1]");
    }
}
