//! The metrics server's delegated authentication and authorization against the Kubernetes API,
//! and the front-proxy settings the kube-apiserver publishes.
//!
//! An aggregated API server does not hold users or RBAC rules itself: it asks the
//! kube-apiserver with `TokenReview` (who is this bearer token?) and `SubjectAccessReview` (may
//! this user do this?), and learns which front-proxy CA and names to trust from the
//! `kube-system/extension-apiserver-authentication` ConfigMap. These are the kube-rs
//! implementations of the API layer's [`TokenReviewer`] and [`Authorizer`] traits; the API
//! layer wraps them in its TTL caches. The mapping from our types to the review objects is kept
//! in plain functions so it is testable without a cluster.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::{Api, Client};

use super::api::{
    Attributes, AuthError, Authorizer, BoxFuture, Decision, RequestHeaderConfig,
    RequestHeaderNames, Target, TokenReviewer, UserInfo,
};

/// `authentication.k8s.io/v1 TokenReview` against the cluster.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: Client,
}

impl KubeTokenReviewer {
    pub fn new(client: Client) -> Self {
        KubeTokenReviewer { client }
    }
}

/// The review object for a token.
pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The user of an answered review; `None` when not authenticated.
pub fn reviewed_user(review: &TokenReview) -> Option<UserInfo> {
    let status = review.status.as_ref()?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.as_ref()?;
    Some(UserInfo {
        name: user.username.clone().unwrap_or_default(),
        groups: user.groups.clone().unwrap_or_default(),
        extra: user
            .extra
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
    })
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, AuthError>> {
        Box::pin(async move {
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let answer = api
                .create(&PostParams::default(), &token_review(token))
                .await
                .map_err(|e| AuthError::TokenReview(e.to_string()))?;
            Ok(reviewed_user(&answer))
        })
    }
}

/// `authorization.k8s.io/v1 SubjectAccessReview` against the cluster.
#[derive(Clone)]
pub struct KubeAuthorizer {
    client: Client,
}

impl KubeAuthorizer {
    pub fn new(client: Client) -> Self {
        KubeAuthorizer { client }
    }
}

/// The review object for an access check.
pub fn access_review(attrs: &Attributes) -> SubjectAccessReview {
    let (resource_attributes, non_resource_attributes) = match &attrs.target {
        Target::Resource {
            group,
            version,
            resource,
            namespace,
            name,
        } => (
            Some(ResourceAttributes {
                group: Some(group.clone()),
                version: Some(version.clone()),
                resource: Some(resource.clone()),
                namespace: Some(namespace.clone()).filter(|s| !s.is_empty()),
                name: Some(name.clone()).filter(|s| !s.is_empty()),
                verb: Some(attrs.verb.clone()),
                ..Default::default()
            }),
            None,
        ),
        Target::NonResource { path } => (
            None,
            Some(NonResourceAttributes {
                path: Some(path.clone()),
                verb: Some(attrs.verb.clone()),
            }),
        ),
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(attrs.user.name.clone()),
            groups: Some(attrs.user.groups.clone()),
            extra: (!attrs.user.extra.is_empty()).then(|| attrs.user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The decision of an answered review. "No opinion" (neither allowed nor denied) is a denial.
pub fn review_decision(review: &SubjectAccessReview) -> Decision {
    match &review.status {
        Some(s) if s.allowed && s.denied != Some(true) => Decision::Allow,
        Some(s) => Decision::Deny {
            reason: s.reason.clone().unwrap_or_default(),
        },
        None => Decision::Deny {
            reason: String::new(),
        },
    }
}

impl Authorizer for KubeAuthorizer {
    fn authorize<'a>(
        &'a self,
        attrs: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, AuthError>> {
        Box::pin(async move {
            let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
            let answer = api
                .create(&PostParams::default(), &access_review(attrs))
                .await
                .map_err(|e| AuthError::Authorization(e.to_string()))?;
            Ok(review_decision(&answer))
        })
    }
}

/// Namespace and name of the ConfigMap the kube-apiserver publishes its client and front-proxy
/// authentication settings in.
pub const AUTHENTICATION_CONFIGMAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// Why the authentication ConfigMap could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigMapError {
    #[error("reading ConfigMap kube-system/extension-apiserver-authentication: {0}")]
    Get(#[from] kube::Error),
    #[error("ConfigMap kube-system/extension-apiserver-authentication: key {key}: {source}")]
    BadList {
        key: &'static str,
        source: serde_json::Error,
    },
}

/// What the ConfigMap says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterAuthentication {
    /// `client-ca-file`.
    pub client_ca_pem: Option<Vec<u8>>,
    /// From the `requestheader-*` keys; `None` when the front proxy is not configured.
    pub request_header: Option<RequestHeaderConfig>,
}

/// Parses the ConfigMap's data. The list-valued keys are JSON arrays of strings.
pub fn parse_authentication_configmap(
    cm: &ConfigMap,
) -> Result<ClusterAuthentication, ConfigMapError> {
    let data = cm.data.clone().unwrap_or_default();
    let list = |key: &'static str| -> Result<Option<Vec<String>>, ConfigMapError> {
        match data.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(s) => serde_json::from_str(s)
                .map(Some)
                .map_err(|source| ConfigMapError::BadList { key, source }),
            None => Ok(None),
        }
    };
    let pem = |key: &str| {
        data.get(key)
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.as_bytes().to_vec())
    };
    let request_header = match pem("requestheader-client-ca-file") {
        Some(ca_pem) => {
            let defaults = RequestHeaderNames::default();
            Some(RequestHeaderConfig {
                ca_pem,
                allowed_names: list("requestheader-allowed-names")?.unwrap_or_default(),
                headers: RequestHeaderNames {
                    username: list("requestheader-username-headers")?.unwrap_or(defaults.username),
                    group: list("requestheader-group-headers")?.unwrap_or(defaults.group),
                    extra_prefix: list("requestheader-extra-headers-prefix")?
                        .unwrap_or(defaults.extra_prefix),
                },
            })
        }
        None => None,
    };
    Ok(ClusterAuthentication {
        client_ca_pem: pem("client-ca-file"),
        request_header,
    })
}

/// Reads and parses the ConfigMap.
pub async fn read_authentication_configmap(
    client: Client,
) -> Result<ClusterAuthentication, ConfigMapError> {
    let api: Api<ConfigMap> = Api::namespaced(client, AUTHENTICATION_CONFIGMAP.0);
    let cm = api.get(AUTHENTICATION_CONFIGMAP.1).await?;
    parse_authentication_configmap(&cm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo as K8sUser};
    use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;

    #[test]
    fn token_review_maps_user_and_lowercases_extra_keys() {
        let mut r = token_review("t0k");
        assert_eq!(r.spec.token.as_deref(), Some("t0k"));
        assert_eq!(reviewed_user(&r), None, "unanswered review is no user");
        r.status = Some(TokenReviewStatus {
            authenticated: Some(true),
            user: Some(K8sUser {
                username: Some("system:serviceaccount:ns:sa".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: Some([("Scopes".to_string(), vec!["a".to_string()])].into()),
                uid: None,
            }),
            ..Default::default()
        });
        let u = reviewed_user(&r).unwrap();
        assert_eq!(u.name, "system:serviceaccount:ns:sa");
        assert_eq!(u.groups, vec!["system:serviceaccounts"]);
        assert_eq!(u.extra.get("scopes"), Some(&vec!["a".to_string()]));
        if let Some(s) = r.status.as_mut() {
            s.authenticated = Some(false);
        }
        assert_eq!(reviewed_user(&r), None);
    }

    #[test]
    fn access_review_for_resources_and_paths() {
        let attrs = Attributes {
            user: UserInfo::new("alice", &["dev"]),
            verb: "list".into(),
            target: Target::Resource {
                group: "metrics.k8s.io".into(),
                version: "v1beta1".into(),
                resource: "pods".into(),
                namespace: "default".into(),
                name: String::new(),
            },
        };
        let r = access_review(&attrs);
        let ra = r.spec.resource_attributes.as_ref().unwrap();
        assert_eq!(ra.group.as_deref(), Some("metrics.k8s.io"));
        assert_eq!(ra.resource.as_deref(), Some("pods"));
        assert_eq!(ra.namespace.as_deref(), Some("default"));
        assert_eq!(ra.name, None);
        assert_eq!(ra.verb.as_deref(), Some("list"));
        assert_eq!(r.spec.user.as_deref(), Some("alice"));
        assert_eq!(r.spec.extra, None);

        let path = Attributes {
            target: Target::NonResource {
                path: "/metrics".into(),
            },
            verb: "get".into(),
            ..attrs
        };
        let r = access_review(&path);
        assert!(r.spec.resource_attributes.is_none());
        assert_eq!(
            r.spec.non_resource_attributes.unwrap().path.as_deref(),
            Some("/metrics")
        );
    }

    #[test]
    fn decision_from_status() {
        let mut r = SubjectAccessReview::default();
        assert!(matches!(review_decision(&r), Decision::Deny { .. }));
        r.status = Some(SubjectAccessReviewStatus {
            allowed: true,
            ..Default::default()
        });
        assert_eq!(review_decision(&r), Decision::Allow);
        r.status = Some(SubjectAccessReviewStatus {
            allowed: false,
            reason: Some("no RBAC rule".into()),
            ..Default::default()
        });
        assert_eq!(
            review_decision(&r),
            Decision::Deny {
                reason: "no RBAC rule".into()
            }
        );
    }

    #[test]
    fn configmap_parsing() {
        let cm = ConfigMap {
            data: Some(
                [
                    ("client-ca-file", "CLIENT"),
                    ("requestheader-client-ca-file", "PROXY"),
                    ("requestheader-allowed-names", "[\"front-proxy-client\"]"),
                    ("requestheader-username-headers", "[\"X-Remote-User\"]"),
                    ("requestheader-group-headers", "[\"X-Remote-Group\"]"),
                    (
                        "requestheader-extra-headers-prefix",
                        "[\"X-Remote-Extra-\"]",
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..Default::default()
        };
        let a = parse_authentication_configmap(&cm).unwrap();
        assert_eq!(a.client_ca_pem.as_deref(), Some(&b"CLIENT"[..]));
        let rh = a.request_header.unwrap();
        assert_eq!(rh.ca_pem, b"PROXY");
        assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
        assert_eq!(rh.headers, RequestHeaderNames::default());

        let mut bad = cm.clone();
        if let Some(d) = bad.data.as_mut() {
            d.insert("requestheader-allowed-names".into(), "front-proxy".into());
        }
        assert!(matches!(
            parse_authentication_configmap(&bad),
            Err(ConfigMapError::BadList { .. })
        ));
        let empty = parse_authentication_configmap(&ConfigMap::default()).unwrap();
        assert_eq!(empty, ClusterAuthentication::default());
    }
}
