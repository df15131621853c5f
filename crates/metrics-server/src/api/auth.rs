//! Authentication and authorization the way a Kubernetes aggregated API server does it.
//!
//! The kube-apiserver proxies `metrics.k8s.io` requests to us with a front-proxy client
//! certificate and the already-authenticated user in `X-Remote-*` headers; we must trust those
//! headers only from a certificate signed by the requestheader CA with an allowed CN, or anybody
//! who can reach the port could claim to be `system:masters`. Direct clients (kubectl against
//! the port, Prometheus) authenticate with a client-CA certificate or a bearer token, which the
//! binary checks with TokenReview; access is then decided by SubjectAccessReview. Both reviews
//! are remote calls, so they sit behind traits here (the binary implements them against the
//! Kubernetes API) with a TTL cache, like the apiserver's webhook authenticator and authorizer.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A boxed future, so the review traits stay object-safe (`Arc<dyn TokenReviewer>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Group whose members skip authorization, as in Kubernetes.
pub const SYSTEM_MASTERS: &str = "system:masters";

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
    /// Extra attributes (from `X-Remote-Extra-*` or TokenReview), keys lower-cased.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups and no extras.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: BTreeMap::new(),
        }
    }

    /// Whether the user is in `system:masters` (authorization is skipped).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == SYSTEM_MASTERS)
    }
}

/// Failure of a remote review (network, API error). Not cached; answered with 401/500.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("token review failed: {0}")]
    TokenReview(String),
    #[error("authorization check failed: {0}")]
    Authorization(String),
}

/// Checks bearer tokens (the binary: `authentication.k8s.io/v1 TokenReview`).
pub trait TokenReviewer: Send + Sync + 'static {
    /// `Ok(Some(user))` for a valid token, `Ok(None)` for an invalid one.
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, AuthError>>;
}

/// What is being accessed: a metrics resource or a plain path (discovery, /metrics, openapi).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Resource {
        group: String,
        version: String,
        /// `nodes` or `pods`.
        resource: String,
        /// Empty for cluster scope.
        namespace: String,
        /// Empty for collections.
        name: String,
    },
    NonResource {
        path: String,
    },
}

/// SubjectAccessReview attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub user: UserInfo,
    /// `get`, `list` or `watch`.
    pub verb: String,
    pub target: Target,
}

impl Attributes {
    /// The apiserver's wording for a denial, so kubectl output reads as usual.
    pub fn forbidden_message(&self, reason: &str) -> String {
        let user = &self.user.name;
        let verb = &self.verb;
        let mut msg = match &self.target {
            Target::Resource {
                group,
                resource,
                namespace,
                name,
                ..
            } => {
                let qualified = format!("{resource}.{group}");
                let subject = if name.is_empty() {
                    qualified
                } else {
                    format!("{qualified} \"{name}\"")
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace \"{namespace}\"")
                };
                format!(
                    "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
                )
            }
            Target::NonResource { path } => {
                format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"")
            }
        };
        if !reason.is_empty() {
            msg.push_str(": ");
            msg.push_str(reason);
        }
        msg
    }
}

/// Outcome of an authorization check. "No opinion" from a SubjectAccessReview is a `Deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { reason: String },
}

/// Decides access (the binary: `authorization.k8s.io/v1 SubjectAccessReview`).
pub trait Authorizer: Send + Sync + 'static {
    fn authorize<'a>(&'a self, attrs: &'a Attributes)
        -> BoxFuture<'a, Result<Decision, AuthError>>;
}

/// Entries beyond which expired ones are purged on insert, bounding memory under token churn.
const CACHE_PURGE_THRESHOLD: usize = 4096;

/// TTL cache with separate lifetimes for positive and negative answers.
struct TtlCache<K, V> {
    allowed_ttl: Duration,
    denied_ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(allowed_ttl: Duration, denied_ttl: Duration) -> Self {
        TtlCache {
            allowed_ttl,
            denied_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        // A poisoned lock only means another request panicked mid-insert; the map is still
        // usable, and a cache must never take the server down.
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V, positive: bool) {
        let ttl = if positive {
            self.allowed_ttl
        } else {
            self.denied_ttl
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_PURGE_THRESHOLD {
            map.retain(|_, (expires, _)| *expires > now);
        }
        map.insert(key, (now + ttl, value));
    }
}

/// Default TTL of a positive review (the apiserver's webhook default is longer; metrics are
/// polled every few seconds, so 10 s already removes almost all remote calls).
pub const DEFAULT_ALLOWED_TTL: Duration = Duration::from_secs(10);
/// Default TTL of a negative review: short so fixing RBAC takes effect quickly.
pub const DEFAULT_DENIED_TTL: Duration = Duration::from_secs(5);

/// Caches a [`TokenReviewer`]'s answers keyed by the SHA-256 of the token, so raw tokens are not
/// kept in memory. Errors are not cached.
pub struct CachingTokenReviewer<R> {
    inner: R,
    cache: TtlCache<[u8; 32], Option<UserInfo>>,
}

impl<R: TokenReviewer> CachingTokenReviewer<R> {
    pub fn new(inner: R, allowed_ttl: Duration, denied_ttl: Duration) -> Self {
        CachingTokenReviewer {
            inner,
            cache: TtlCache::new(allowed_ttl, denied_ttl),
        }
    }

    /// With [`DEFAULT_ALLOWED_TTL`] and [`DEFAULT_DENIED_TTL`].
    pub fn with_defaults(inner: R) -> Self {
        Self::new(inner, DEFAULT_ALLOWED_TTL, DEFAULT_DENIED_TTL)
    }
}

impl<R: TokenReviewer> TokenReviewer for CachingTokenReviewer<R> {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, AuthError>> {
        Box::pin(async move {
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(hit) = self.cache.get(&key) {
                return Ok(hit);
            }
            let answer = self.inner.review(token).await?;
            self.cache.put(key, answer.clone(), answer.is_some());
            Ok(answer)
        })
    }
}

/// Caches an [`Authorizer`]'s decisions keyed by the full attributes. Errors are not cached.
pub struct CachingAuthorizer<A> {
    inner: A,
    cache: TtlCache<Attributes, Decision>,
}

impl<A: Authorizer> CachingAuthorizer<A> {
    pub fn new(inner: A, allowed_ttl: Duration, denied_ttl: Duration) -> Self {
        CachingAuthorizer {
            inner,
            cache: TtlCache::new(allowed_ttl, denied_ttl),
        }
    }

    /// With [`DEFAULT_ALLOWED_TTL`] and [`DEFAULT_DENIED_TTL`].
    pub fn with_defaults(inner: A) -> Self {
        Self::new(inner, DEFAULT_ALLOWED_TTL, DEFAULT_DENIED_TTL)
    }
}

impl<A: Authorizer> Authorizer for CachingAuthorizer<A> {
    fn authorize<'a>(
        &'a self,
        attrs: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, AuthError>> {
        Box::pin(async move {
            if let Some(hit) = self.cache.get(attrs) {
                return Ok(hit);
            }
            let decision = self.inner.authorize(attrs).await?;
            let allowed = decision == Decision::Allow;
            self.cache.put(attrs.clone(), decision.clone(), allowed);
            Ok(decision)
        })
    }
}

/// Header names of the requestheader (front-proxy) scheme; defaults match kube-apiserver's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderNames {
    /// First non-empty one wins.
    pub username: Vec<String>,
    /// All values of all of these are groups.
    pub group: Vec<String>,
    /// `<prefix><key>` headers become extra attributes.
    pub extra_prefix: Vec<String>,
}

impl Default for RequestHeaderNames {
    fn default() -> Self {
        RequestHeaderNames {
            username: vec!["X-Remote-User".into()],
            group: vec!["X-Remote-Group".into()],
            extra_prefix: vec!["X-Remote-Extra-".into()],
        }
    }
}

/// Reads the user the front proxy asserted. `None` when no username header is set.
pub fn user_from_headers(
    headers: &hyper::HeaderMap,
    names: &RequestHeaderNames,
) -> Option<UserInfo> {
    let name = names.username.iter().find_map(|h| {
        headers
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })?;
    let groups = names
        .group
        .iter()
        .flat_map(|h| headers.get_all(h.as_str()).iter())
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in headers {
        let lower = header.as_str();
        for prefix in &names.extra_prefix {
            let p = prefix.to_ascii_lowercase();
            if let Some(key) = lower.strip_prefix(p.as_str()).filter(|k| !k.is_empty()) {
                if let Ok(v) = value.to_str() {
                    // Keys are percent-encoded by the apiserver; decode so they match RBAC.
                    extra
                        .entry(percent_decode(key).to_ascii_lowercase())
                        .or_default()
                        .push(v.to_string());
                }
            }
        }
    }
    Some(UserInfo {
        name,
        groups,
        extra,
    })
}

/// Percent-decoding of a path segment or header key (`+` stays `+`, as in Go's
/// `url.PathUnescape`). Invalid escapes are kept literally where Go would reject the whole
/// string, and invalid UTF-8 becomes U+FFFD (a Rust `String` cannot hold raw bytes).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A client certificate whose subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("unsupported string type {tag} in the subject's {attribute}")]
    UnsupportedString { attribute: &'static str, tag: u32 },
}

/// Subject of a certificate as Kubernetes uses it: CN is the user, O values are the groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
}

/// Reads CN and O from a DER certificate's subject (with `x509-parser`).
///
/// As in Go's `pkix.Name`, the last CN wins and every O is kept in certificate order. Only CN
/// and O values are decoded, so an unusual string type in another attribute no longer rejects
/// the certificate (the hand-written reader this replaces decoded them all).
pub fn certificate_subject(der: &[u8]) -> Result<Subject, SubjectError> {
    use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_ORGANIZATION_NAME};
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| SubjectError::Malformed(e.to_string()))?;
    let mut subject = Subject::default();
    for atv in cert.subject().iter_attributes() {
        let attribute = if *atv.attr_type() == OID_X509_COMMON_NAME {
            "CN"
        } else if *atv.attr_type() == OID_X509_ORGANIZATION_NAME {
            "O"
        } else {
            continue;
        };
        let text = attribute_text(attribute, atv.attr_value())?;
        if attribute == "CN" {
            subject.common_name = Some(text);
        } else {
            subject.organizations.push(text);
        }
    }
    Ok(subject)
}

/// The directory-string types Go's `asn1` package reads, as UTF-8.
fn attribute_text(
    attribute: &'static str,
    value: &x509_parser::der_parser::asn1_rs::Any<'_>,
) -> Result<String, SubjectError> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let data = value.data;
    match value.tag() {
        // TeletexString is read as UTF-8 (lossy), like the reader this replaced.
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::T61String => {
            Ok(String::from_utf8_lossy(data).into_owned())
        }
        // BMPString: UTF-16BE.
        Tag::BmpString if data.len().is_multiple_of(2) => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Ok(String::from_utf16_lossy(&units))
        }
        Tag::BmpString => Err(SubjectError::Malformed("odd-length BMPString".into())),
        tag => Err(SubjectError::UnsupportedString {
            attribute,
            tag: tag.0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(user: &str, verb: &str, target: Target) -> Attributes {
        Attributes {
            user: UserInfo::new(user, &[]),
            verb: verb.into(),
            target,
        }
    }

    fn nodes(namespace: &str, name: &str) -> Target {
        Target::Resource {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            resource: if namespace.is_empty() {
                "nodes"
            } else {
                "pods"
            }
            .into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn forbidden_messages_match_apiserver_wording() {
        assert_eq!(
            attrs("x", "list", nodes("", "")).forbidden_message(""),
            "nodes.metrics.k8s.io is forbidden: User \"x\" cannot list resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope"
        );
        assert_eq!(
            attrs("x", "get", nodes("ns", "p")).forbidden_message("no RBAC"),
            "pods.metrics.k8s.io \"p\" is forbidden: User \"x\" cannot get resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"ns\": no RBAC"
        );
        assert_eq!(
            attrs(
                "x",
                "get",
                Target::NonResource {
                    path: "/apis".into()
                }
            )
            .forbidden_message(""),
            "forbidden: User \"x\" cannot get path \"/apis\""
        );
    }

    #[test]
    fn headers_to_user() {
        let mut h = hyper::HeaderMap::new();
        h.insert("x-remote-user", "bob".parse().unwrap());
        h.append("x-remote-group", "g1".parse().unwrap());
        h.append("X-Remote-Group", "g2".parse().unwrap());
        h.append("x-remote-extra-scopes%2Fa", "s1".parse().unwrap());
        let u = user_from_headers(&h, &RequestHeaderNames::default()).unwrap();
        assert_eq!(u.name, "bob");
        assert_eq!(u.groups, ["g1", "g2"]);
        assert_eq!(u.extra.get("scopes/a").unwrap(), &vec!["s1".to_string()]);
        h.remove("x-remote-user");
        assert!(user_from_headers(&h, &RequestHeaderNames::default()).is_none());
    }

    fn self_signed(dn: rcgen::DistinguishedName) -> rcgen::Certificate {
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    #[test]
    fn reads_subject_of_rcgen_certificate() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "jane");
        dn.push(rcgen::DnType::OrganizationName, "system:masters");
        let cert = self_signed(dn);
        let s = certificate_subject(cert.der()).unwrap();
        assert_eq!(s.common_name.as_deref(), Some("jane"));
        assert_eq!(s.organizations, ["system:masters"]);
        assert!(certificate_subject(&cert.der()[..40]).is_err());
        assert!(certificate_subject(b"").is_err());
    }

    #[test]
    fn reads_every_organization_in_order_across_string_types() {
        use rcgen::string::{BmpString, PrintableString};
        use rcgen::{DnType, DnValue};
        // rcgen keeps one value per DnType, so the second O goes in under its raw OID (2.5.4.10).
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            DnType::OrganizationName,
            DnValue::PrintableString(PrintableString::try_from("system:nodes").unwrap()),
        );
        dn.push(DnType::CountryName, "DE");
        dn.push(DnType::CommonName, DnValue::Utf8String("jürgen".into()));
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 10]),
            DnValue::Utf8String("équipe:ops".into()),
        );
        let s = certificate_subject(self_signed(dn).der()).unwrap();
        assert_eq!(s.common_name.as_deref(), Some("jürgen"));
        assert_eq!(s.organizations, ["system:nodes", "équipe:ops"]);

        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            DnType::OrganizationName,
            DnValue::BmpString(BmpString::try_from("ωmega").unwrap()),
        );
        let s = certificate_subject(self_signed(dn).der()).unwrap();
        assert_eq!(
            (s.common_name, s.organizations),
            (None, vec!["ωmega".to_string()])
        );
    }

    #[test]
    fn rejects_garbage_and_truncated_certificates() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "jane");
        let der = self_signed(dn).der().to_vec();
        for cut in [1, 2, 10, der.len() / 2, der.len() - 1] {
            assert!(certificate_subject(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(certificate_subject(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(certificate_subject(b"-----BEGIN CERTIFICATE-----").is_err());
        assert!(certificate_subject(&[0u8; 64]).is_err());
    }

    #[test]
    fn percent_decoding_of_keys_and_path_segments() {
        assert_eq!(percent_decode("scopes%2Fa"), "scopes/a");
        // `+` is literal outside a query string, as in Go's url.PathUnescape.
        assert_eq!(percent_decode("a+b"), "a+b");
        // Go rejects these; we keep them literally (the request then fails on its own terms).
        assert_eq!(percent_decode("a%zzb%4"), "a%zzb%4");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }
}
