//! The `metrics.k8s.io/v1beta1` aggregated API: what `kubectl top`, the HPA and the
//! kube-apiserver's aggregator talk to.
//!
//! Split by concern so each rule that clients depend on has one home (the wire types and the
//! exact text forms of quantities and durations live in [`kaddons_model`]): selectors
//! ([`selector`]), content negotiation ([`media`]), server-side printing ([`table`]),
//! authentication/authorization ([`auth`]), the server's own metrics ([`telemetry`]), routing
//! ([`handler`]) and HTTPS serving ([`serve`]). Usage data comes only through
//! [`kaddons_model::usage::MetricsProvider`], so this layer does not know how it is collected.

pub mod auth;
pub mod handler;
pub mod media;
pub mod selector;
pub mod serve;
pub mod table;
pub mod telemetry;

pub use auth::{
    Attributes, AuthError, Authorizer, BoxFuture, CachingAuthorizer, CachingTokenReviewer,
    Decision, RequestHeaderNames, Target, TokenReviewer, UserInfo,
};
pub use handler::{CheckFn, HealthChecks};
pub use serve::{start, RequestHeaderConfig, ServeError, ServerConfig, ServerHandle, TlsSource};
pub use telemetry::{MetricsSource, Registry};
