//! Stand-in token reviewers and authorizers for the metrics server's delegated authentication
//! and authorization: fixed tables and closures instead of a TokenReview/SubjectAccessReview
//! round trip, with call counters so cache tests can see hits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kaddons_metrics_server::api::{
    Attributes, AuthError, Authorizer, BoxFuture, Decision, ServerConfig, TlsSource, TokenReviewer,
    UserInfo,
};

/// Fixed token → user table. `calls` counts reviews (shared, so a test keeps a handle after
/// moving the reviewer into a cache).
#[derive(Default)]
pub struct StaticTokens {
    pub tokens: HashMap<String, UserInfo>,
    pub calls: Arc<AtomicUsize>,
}

impl StaticTokens {
    pub fn new(tokens: impl IntoIterator<Item = (String, UserInfo)>) -> Self {
        StaticTokens {
            tokens: tokens.into_iter().collect(),
            calls: Arc::default(),
        }
    }
}

impl TokenReviewer for StaticTokens {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>, AuthError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(self.tokens.get(token).cloned()) })
    }
}

/// Authorizer from a closure; `calls` counts decisions.
pub struct FnAuthorizer<F> {
    pub decide: F,
    pub calls: Arc<AtomicUsize>,
}

impl<F> FnAuthorizer<F>
where
    F: Fn(&Attributes) -> Decision + Send + Sync + 'static,
{
    pub fn new(decide: F) -> Self {
        FnAuthorizer {
            decide,
            calls: Arc::default(),
        }
    }
}

impl<F> Authorizer for FnAuthorizer<F>
where
    F: Fn(&Attributes) -> Decision + Send + Sync + 'static,
{
    fn authorize<'a>(
        &'a self,
        attrs: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, AuthError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let d = (self.decide)(attrs);
        Box::pin(async move { Ok(d) })
    }
}

/// A metrics API server config on 127.0.0.1:0 with a self-signed certificate kept in
/// `cert_dir`, whose one way in is the bearer `token` of user `admin` in `system:masters` (so
/// no authorizer is consulted): what the in-process tests, the bench and the scale harness
/// serve through.
pub fn admin_config(cert_dir: PathBuf, token: &str) -> ServerConfig {
    let mut cfg = ServerConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TlsSource::SelfSigned {
            cert_dir,
            hosts: vec![],
        },
    );
    cfg.token_reviewer = Some(Arc::new(StaticTokens::new([(
        token.to_string(),
        UserInfo::new("admin", &["system:masters"]),
    )])));
    cfg
}
