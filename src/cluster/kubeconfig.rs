//! Reading the kubeconfig the way kubectl does (`--kubeconfig`, else the merged `KUBECONFIG`
//! list, else `~/.kube/config`; `--context` overrides the current context), and turning the
//! selected context into [`Fact`]s for profile detection. Reading never touches the network.

use std::path::{Path, PathBuf};

use kube::config::{Kubeconfig, KubeconfigError};

use crate::profile::Fact;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {}: {source}", .path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "(from KUBECONFIG or ~/.kube/config)".into()))]
    Read {
        path: Option<PathBuf>,
        #[source]
        source: KubeconfigError,
    },
    #[error("kubeconfig has no context \"{name}\"{}; contexts: {known}", crate::catalog::did_you_mean(.suggestion))]
    UnknownContext {
        name: String,
        suggestion: Option<String>,
        known: String,
    },
}

/// The context kaddons will use, with what the kubeconfig says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub context: String,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub server: Option<String>,
    pub extensions: Vec<String>,
}

impl Selected {
    pub fn facts(&self) -> Vec<Fact> {
        let mut facts = vec![Fact::Context(self.context.clone())];
        facts.extend(self.cluster.clone().map(Fact::Cluster));
        facts.extend(self.user.clone().map(Fact::User));
        facts.extend(self.server.clone().map(Fact::Server));
        facts.extend(
            self.extensions
                .iter()
                .cloned()
                .map(Fact::KubeconfigExtension),
        );
        facts
    }
}

/// Loads the kubeconfig. `Ok(None)` when there is none at all (no flag, no `KUBECONFIG`, no
/// `~/.kube/config`), which commands that need no cluster treat as normal.
pub fn load(explicit: Option<&Path>) -> Result<Option<Kubeconfig>, Error> {
    if let Some(path) = explicit {
        return Kubeconfig::read_from(path)
            .map(Some)
            .map_err(|source| Error::Read {
                path: Some(path.to_path_buf()),
                source,
            });
    }
    match Kubeconfig::from_env() {
        Ok(Some(k)) => return Ok(Some(k)),
        Ok(None) => {}
        Err(source) => return Err(Error::Read { path: None, source }),
    }
    let Some(default) = std::env::home_dir().map(|h| h.join(".kube").join("config")) else {
        return Ok(None);
    };
    if !default.exists() {
        return Ok(None);
    }
    Kubeconfig::read_from(&default)
        .map(Some)
        .map_err(|source| Error::Read {
            path: Some(default),
            source,
        })
}

/// The context to use: `--context` if given, else `current-context`. `Ok(None)` when the
/// kubeconfig names no current context.
pub fn select(config: &Kubeconfig, context: Option<&str>) -> Result<Option<Selected>, Error> {
    let Some(name) = context
        .map(str::to_string)
        .or(config.current_context.clone())
    else {
        return Ok(None);
    };
    let Some(named) = config.contexts.iter().find(|c| c.name == name) else {
        let names: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(Error::UnknownContext {
            suggestion: crate::catalog::closest(&name, names.iter().copied()),
            known: if names.is_empty() {
                "(none)".into()
            } else {
                names.join(", ")
            },
            name,
        });
    };
    let ctx = named.context.as_ref();
    let cluster_name = ctx.map(|c| c.cluster.clone()).filter(|c| !c.is_empty());
    let cluster = cluster_name
        .as_ref()
        .and_then(|n| config.clusters.iter().find(|c| &c.name == n))
        .and_then(|c| c.cluster.as_ref());
    let mut extensions = Vec::new();
    let mut collect = |exts: Option<&Vec<kube::config::NamedExtension>>| {
        for e in exts.into_iter().flatten() {
            if let Some(p) = e.extension.get("provider").and_then(|p| p.as_str()) {
                extensions.push(p.to_string());
            }
        }
    };
    collect(cluster.and_then(|c| c.extensions.as_ref()));
    collect(ctx.and_then(|c| c.extensions.as_ref()));
    extensions.dedup();
    Ok(Some(Selected {
        context: name,
        cluster: cluster_name,
        user: ctx.and_then(|c| c.user.clone()),
        server: cluster.and_then(|c| c.server.clone()),
        extensions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIKUBE: &str = r#"
apiVersion: v1
kind: Config
current-context: minikube
clusters:
- name: minikube
  cluster:
    server: https://192.168.49.2:8443
    extensions:
    - name: cluster_info
      extension:
        provider: minikube.sigs.k8s.io
        version: v1.34.0
contexts:
- name: minikube
  context: {cluster: minikube, user: minikube}
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev}
users:
- name: minikube
  user: {}
"#;

    #[test]
    fn current_context_facts_include_the_minikube_extension() {
        let k = Kubeconfig::from_yaml(MINIKUBE).unwrap();
        let s = select(&k, None).unwrap().unwrap();
        assert_eq!(s.server.as_deref(), Some("https://192.168.49.2:8443"));
        assert!(s
            .facts()
            .contains(&Fact::KubeconfigExtension("minikube.sigs.k8s.io".into())));
    }

    #[test]
    fn context_flag_overrides_and_typos_suggest() {
        let k = Kubeconfig::from_yaml(MINIKUBE).unwrap();
        let s = select(&k, Some("kind-dev")).unwrap().unwrap();
        assert_eq!(s.cluster.as_deref(), Some("kind-dev"));
        let err = select(&k, Some("kind-deb")).unwrap_err().to_string();
        assert!(err.contains("did you mean \"kind-dev\""), "{err}");
    }

    #[test]
    fn explicit_missing_file_is_an_error_naming_it() {
        let err = load(Some(Path::new("/nonexistent/kubeconfig")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    }
}
