//! Request handling: routing, authentication, authorization, and the answers themselves.
//!
//! Kept independent of sockets and TLS (the connection's certificate facts arrive as a
//! [`PeerIdentity`]) so the order of checks is readable in one place: health first (always open,
//! the kubelet probes without credentials), then authentication (401), method (405),
//! authorization (403, skipped for `system:masters`), then the resource.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::{
    Attributes, AuthError, Authorizer, Decision, RequestHeaderNames, Target, TokenReviewer,
    UserInfo,
};
use super::media::{
    negotiate_discovery, negotiate_resource, Discovery, Representation, DISCOVERY_V2,
};
use super::selector::{FieldSelector, LabelSelector, SelectorError};
use super::serve::PeerIdentity;
use super::table::{node_table, pod_table, IncludeObject};
use super::telemetry::Registry;
use kaddons_model::usage::MetricsProvider;
use kaddons_model::wire::{
    NodeMetrics, NodeMetricsList, PodMetrics, PodMetricsList, Status, StatusDetails, GROUP,
    GROUP_VERSION, VERSION,
};

/// A health check: `Ok(())` when healthy, `Err(reason)` otherwise.
pub type CheckFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Named liveness and readiness checks supplied by the binary (e.g. live = scrapes are on
/// time, ready = the store has data). `/livez` runs liveness checks, `/readyz` and `/healthz`
/// run both. Every endpoint also has an always-passing `ping`.
#[derive(Clone, Default)]
pub struct HealthChecks {
    pub liveness: Vec<(String, CheckFn)>,
    pub readiness: Vec<(String, CheckFn)>,
}

impl HealthChecks {
    /// Adds a liveness check.
    pub fn with_liveness(
        mut self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.liveness.push((name.into(), Arc::new(check)));
        self
    }

    /// Adds a readiness check.
    pub fn with_readiness(
        mut self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.readiness.push((name.into(), Arc::new(check)));
        self
    }
}

/// Shared per-server state.
pub(crate) struct AppState {
    pub provider: Arc<dyn MetricsProvider>,
    /// Allowed proxy CNs and header names, when front-proxy auth is configured.
    pub request_header: Option<(Vec<String>, RequestHeaderNames)>,
    pub token_reviewer: Option<Arc<dyn TokenReviewer>>,
    pub authorizer: Option<Arc<dyn Authorizer>>,
    pub health: HealthChecks,
    pub registry: Arc<Registry>,
    /// Advertised in `/api` (`serverAddressByClientCIDRs`).
    pub server_address: String,
}

type Resp = Response<Full<Bytes>>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health(&'static str),
    Metrics,
    CoreApi,
    CoreV1,
    Apis,
    Group,
    GroupVersion,
    OpenApiV2,
    OpenApiV3,
    OpenApiV3GroupVersion,
    Nodes(Option<String>),
    Pods {
        namespace: Option<String>,
        name: Option<String>,
    },
    Unknown,
}

impl Route {
    fn parse(path: &str) -> Route {
        let trimmed = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
        match segs.as_slice() {
            ["livez", ..] => Route::Health("livez"),
            ["readyz", ..] => Route::Health("readyz"),
            ["healthz", ..] => Route::Health("healthz"),
            ["metrics"] => Route::Metrics,
            ["api"] => Route::CoreApi,
            ["api", "v1"] => Route::CoreV1,
            ["apis"] => Route::Apis,
            ["apis", GROUP] => Route::Group,
            ["apis", GROUP, VERSION] => Route::GroupVersion,
            ["openapi", "v2"] => Route::OpenApiV2,
            ["openapi", "v3"] => Route::OpenApiV3,
            ["openapi", "v3", "apis", GROUP, VERSION] => Route::OpenApiV3GroupVersion,
            ["apis", GROUP, VERSION, "nodes"] => Route::Nodes(None),
            ["apis", GROUP, VERSION, "nodes", name] => Route::Nodes(Some(decode(name))),
            ["apis", GROUP, VERSION, "pods"] => Route::Pods {
                namespace: None,
                name: None,
            },
            ["apis", GROUP, VERSION, "namespaces", ns, "pods"] => Route::Pods {
                namespace: Some(decode(ns)),
                name: None,
            },
            ["apis", GROUP, VERSION, "namespaces", ns, "pods", name] => Route::Pods {
                namespace: Some(decode(ns)),
                name: Some(decode(name)),
            },
            _ => Route::Unknown,
        }
    }

    /// Fixed metric label for the route (bounded cardinality).
    fn endpoint(&self) -> &'static str {
        match self {
            Route::Health(name) => name,
            Route::Metrics => "metrics",
            Route::CoreApi | Route::CoreV1 | Route::Apis | Route::Group | Route::GroupVersion => {
                "discovery"
            }
            Route::OpenApiV2 | Route::OpenApiV3 | Route::OpenApiV3GroupVersion => "openapi",
            Route::Nodes(None) => "nodes",
            Route::Nodes(Some(_)) => "node",
            Route::Pods { name: None, .. } => "pods",
            Route::Pods { name: Some(_), .. } => "pod",
            Route::Unknown => "unknown",
        }
    }
}

/// Answers one request. Never fails: every problem becomes a Status response.
pub(crate) async fn handle<B>(
    state: Arc<AppState>,
    peer: Arc<PeerIdentity>,
    req: Request<B>,
) -> Resp {
    let started = Instant::now();
    let route = Route::parse(req.uri().path());
    let resp = respond(&state, &peer, &route, &req).await;
    state
        .registry
        .observe(route.endpoint(), resp.status().as_u16(), started.elapsed());
    resp
}

async fn respond<B>(
    state: &AppState,
    peer: &PeerIdentity,
    route: &Route,
    req: &Request<B>,
) -> Resp {
    let query = parse_query(req.uri().query().unwrap_or(""));
    let read_only = req.method() == Method::GET || req.method() == Method::HEAD;
    if let Route::Health(kind) = route {
        // Open to everyone (kubelet probes carry no credentials), but still read-only.
        if !read_only {
            return method_not_allowed(req.method());
        }
        return health(state, kind, query.contains_key("verbose"));
    }

    let user = match authenticate(state, peer, req).await {
        Ok(Some(user)) => user,
        // A failed token review (API unreachable) is a 401 too, as in the apiserver; its
        // details are not echoed to a caller who has not proven who they are.
        Ok(None) | Err(_) => return status(&Status::failure(401, "Unauthorized", "Unauthorized")),
    };

    // After authentication, so anonymous callers learn nothing beyond "401".
    if !read_only {
        return method_not_allowed(req.method());
    }
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));

    let attrs = attributes(user, route, req.uri().path(), watch);
    if let Some(resp) = authorize(state, &attrs).await {
        return resp;
    }
    if watch {
        return status(&Status::failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource (watch)",
        ));
    }

    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    match route {
        // Answered before authentication above; repeated here only for exhaustiveness.
        Route::Health(kind) => health(state, kind, query.contains_key("verbose")),
        Route::Metrics => text(
            StatusCode::OK,
            state.registry.render(),
            "text/plain; version=0.0.4",
        ),
        // No core group is served: an empty version list tells discovery clients to skip it
        // (an advertised but empty `v1` makes `kubectl api-resources` report a failure).
        Route::CoreApi => ok_json(&json!({
            "kind": "APIVersions",
            "versions": [],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": state.server_address}
            ]
        })),
        Route::CoreV1 => ok_json(&json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": []
        })),
        // kube-aggregator asks for aggregated discovery only; kubectl for it first.
        Route::Apis => match negotiate_discovery(accept) {
            Some(Discovery::V2) => {
                let mut resp = ok_json(&aggregated_discovery());
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(DISCOVERY_V2));
                resp
            }
            Some(Discovery::Legacy) => ok_json(&json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [api_group()]
            })),
            None => not_acceptable(),
        },
        Route::Group => {
            let mut g = api_group();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            ok_json(&g)
        }
        Route::GroupVersion => ok_json(&api_resource_list()),
        Route::OpenApiV2 => ok_json(&openapi_v2()),
        Route::OpenApiV3 => ok_json(&json!({
            "paths": {
                format!("apis/{GROUP_VERSION}"): {
                    "serverRelativeURL": format!("/openapi/v3/apis/{GROUP_VERSION}")
                }
            }
        })),
        Route::OpenApiV3GroupVersion => ok_json(&openapi_v3()),
        Route::Nodes(name) => {
            let Some(repr) = negotiate_resource(accept) else {
                return not_acceptable();
            };
            if name.is_some() {
                // A lookup is cheap: answer it here, never behind a queued listing.
                return nodes(&*state.provider, name.as_deref(), &query, repr);
            }
            let provider = state.provider.clone();
            off_the_workers(move || nodes(&*provider, None, &query, repr)).await
        }
        Route::Pods { namespace, name } => {
            let Some(repr) = negotiate_resource(accept) else {
                return not_acceptable();
            };
            if name.is_some() {
                return pods(
                    &*state.provider,
                    namespace.as_deref(),
                    name.as_deref(),
                    &query,
                    repr,
                );
            }
            let (provider, namespace) = (state.provider.clone(), namespace.clone());
            off_the_workers(move || pods(&*provider, namespace.as_deref(), None, &query, repr))
                .await
        }
        Route::Unknown => status(&Status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

/// A listing waiting for the lister thread, and where its answer goes.
type Listing = Box<dyn FnOnce() + Send>;

/// The one thread that runs listings, one after another. Listing 150,000 pods costs about a
/// second of CPU: on the async workers that would starve the scraper (whose cycle deadline then
/// cuts healthy nodes), and on the blocking pool every new thread gets its own allocator arena,
/// which kept hundreds of MB per thread after large lists (measured: 2.3 GB peak at 5,000
/// nodes). One thread, one arena, and listings queue behind each other on two cores anyway.
fn lister() -> Option<std::sync::mpsc::Sender<Listing>> {
    static LISTER: std::sync::OnceLock<Option<std::sync::Mutex<std::sync::mpsc::Sender<Listing>>>> =
        std::sync::OnceLock::new();
    LISTER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Listing>();
            std::thread::Builder::new()
                .name("metrics-lister".into())
                .spawn(move || {
                    for job in rx {
                        // A panicking listing fails its own request (its answer is dropped),
                        // not every listing after it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .ok()
                .map(|_| std::sync::Mutex::new(tx))
        })
        .as_ref()
        .and_then(|m| m.lock().ok().map(|tx| tx.clone()))
}

/// Runs a listing on the lister thread (inline if that thread could not be started).
async fn off_the_workers(read: impl FnOnce() -> Resp + Send + 'static) -> Resp {
    let Some(tx) = lister() else {
        return read();
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Listing = Box::new(move || {
        let _ = answer.send(read());
    });
    if tx.send(job).is_err() {
        return status(&Status::failure(
            500,
            "InternalError",
            "the lister thread is gone",
        ));
    }
    answered.await.unwrap_or_else(|_| {
        status(&Status::failure(
            500,
            "InternalError",
            "reading the metrics failed",
        ))
    })
}

fn method_not_allowed(method: &Method) -> Resp {
    status(&Status::failure(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
    ))
}

/// Identity of the caller: front proxy headers, client-CA certificate, bearer token, in that
/// order (the apiserver's union authenticator order), with `system:authenticated` added as
/// k8s.io/apiserver's AuthenticatedGroupAdder does. Without it RBAC's `system:discovery`
/// role does not apply, and kube-aggregator (user system:aggregator, no groups) was refused
/// `/openapi/v2`. `Err` is a failed token review.
async fn authenticate<B>(
    state: &AppState,
    peer: &PeerIdentity,
    req: &Request<B>,
) -> Result<Option<UserInfo>, AuthError> {
    Ok(identify(state, peer, req).await?.map(|mut user| {
        if !user.groups.iter().any(|g| g == SYSTEM_AUTHENTICATED) {
            user.groups.push(SYSTEM_AUTHENTICATED.to_string());
        }
        user
    }))
}

const SYSTEM_AUTHENTICATED: &str = "system:authenticated";

async fn identify<B>(
    state: &AppState,
    peer: &PeerIdentity,
    req: &Request<B>,
) -> Result<Option<UserInfo>, AuthError> {
    if let (Some(cn), Some((allowed, names))) = (&peer.proxy_cn, &state.request_header) {
        // A proxy certificate whose CN is not allowed proves nothing; fall through so that
        // the other methods (not the headers) decide.
        if allowed.is_empty() || allowed.iter().any(|a| a == cn) {
            if let Some(user) = super::auth::user_from_headers(req.headers(), names) {
                return Ok(Some(user));
            }
        }
    }
    if let Some(user) = &peer.client_user {
        return Ok(Some(user.clone()));
    }
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    if let (Some(token), Some(reviewer)) = (bearer, &state.token_reviewer) {
        return reviewer.review(token).await;
    }
    Ok(None)
}

fn attributes(user: UserInfo, route: &Route, path: &str, watch: bool) -> Attributes {
    let resource = |resource: &str, namespace: Option<&str>, name: Option<&str>| Target::Resource {
        group: GROUP.into(),
        version: VERSION.into(),
        resource: resource.into(),
        namespace: namespace.unwrap_or("").into(),
        name: name.unwrap_or("").into(),
    };
    let (target, named) = match route {
        Route::Nodes(name) => (resource("nodes", None, name.as_deref()), name.is_some()),
        Route::Pods { namespace, name } => (
            resource("pods", namespace.as_deref(), name.as_deref()),
            name.is_some(),
        ),
        _ => (
            Target::NonResource {
                path: path.to_string(),
            },
            true,
        ),
    };
    let verb = match (&target, watch, named) {
        (Target::NonResource { .. }, _, _) => "get",
        (_, true, _) => "watch",
        (_, false, true) => "get",
        (_, false, false) => "list",
    };
    Attributes {
        user,
        verb: verb.into(),
        target,
    }
}

async fn authorize(state: &AppState, attrs: &Attributes) -> Option<Resp> {
    if attrs.user.is_master() {
        return None;
    }
    let decision = match &state.authorizer {
        Some(a) => a.authorize(attrs).await,
        None => Ok(Decision::Deny {
            reason: "no authorizer configured".into(),
        }),
    };
    match decision {
        Ok(Decision::Allow) => None,
        Ok(Decision::Deny { reason }) => {
            let mut s = Status::failure(403, "Forbidden", attrs.forbidden_message(&reason));
            if let Target::Resource { resource, name, .. } = &attrs.target {
                s.details = Some(StatusDetails {
                    name: (!name.is_empty()).then(|| name.clone()),
                    group: Some(GROUP.into()),
                    kind: Some(resource.clone()),
                });
            }
            Some(status(&s))
        }
        Err(e) => Some(status(&Status::failure(
            500,
            "InternalError",
            format!("Internal error occurred: {e}"),
        ))),
    }
}

/// Label and field selectors of a list request.
fn selectors(
    query: &BTreeMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), SelectorError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?;
    Ok((labels, fields))
}

/// 400 for a selector that does not parse, so typos are not silently "no results".
fn bad_selector(e: SelectorError) -> Resp {
    status(&Status::failure(400, "BadRequest", e.to_string()))
}

fn nodes(
    provider: &dyn MetricsProvider,
    name: Option<&str>,
    query: &BTreeMap<String, String>,
    repr: Representation,
) -> Resp {
    let now = SystemTime::now();
    let include = IncludeObject::from_query(query.get("includeObject").map(String::as_str));
    if let Some(name) = name {
        // A lookup, not a listing: one GET must not cost a full read of the store.
        let Some(node) = provider.node(name) else {
            return status(&Status::not_found("nodes", name));
        };
        let obj = NodeMetrics::from_usage(&node, now);
        return match repr {
            Representation::Json => ok_json(&obj.standalone()),
            Representation::Table(v) => ok_json(&node_table(v, include, &[(node, obj)])),
        };
    }
    let (labels, fields) = match selectors(query) {
        Ok(s) => s,
        Err(e) => return bad_selector(e),
    };
    let mut all = provider.nodes();
    all.retain(|n| labels.matches(&n.labels) && fields.matches(&n.name, ""));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let items: Vec<_> = all
        .into_iter()
        .map(|n| {
            let obj = NodeMetrics::from_usage(&n, now);
            (n, obj)
        })
        .collect();
    match repr {
        Representation::Json => ok_json(&NodeMetricsList::new(
            items.into_iter().map(|(_, o)| o).collect(),
        )),
        Representation::Table(v) => ok_json(&node_table(v, include, &items)),
    }
}

fn pods(
    provider: &dyn MetricsProvider,
    namespace: Option<&str>,
    name: Option<&str>,
    query: &BTreeMap<String, String>,
    repr: Representation,
) -> Resp {
    let now = SystemTime::now();
    let include = IncludeObject::from_query(query.get("includeObject").map(String::as_str));
    if let (Some(ns), Some(name)) = (namespace, name) {
        let Some(pod) = provider.pod(ns, name) else {
            return status(&Status::not_found("pods", name));
        };
        let obj = PodMetrics::from_usage(&pod, now);
        return match repr {
            Representation::Json => ok_json(&obj.standalone()),
            Representation::Table(v) => ok_json(&pod_table(v, include, &[(pod, obj)])),
        };
    }
    let (labels, fields) = match selectors(query) {
        Ok(s) => s,
        Err(e) => return bad_selector(e),
    };
    let mut all = provider.pods();
    all.retain(|p| {
        namespace.is_none_or(|ns| p.namespace == ns)
            && labels.matches(&p.labels)
            && fields.matches(&p.name, &p.namespace)
    });
    all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let items: Vec<_> = all
        .into_iter()
        .map(|p| {
            let obj = PodMetrics::from_usage(&p, now);
            (p, obj)
        })
        .collect();
    match repr {
        Representation::Json => ok_json(&PodMetricsList::new(
            items.into_iter().map(|(_, o)| o).collect(),
        )),
        Representation::Table(v) => ok_json(&pod_table(v, include, &items)),
    }
}

fn health(state: &AppState, kind: &str, verbose: bool) -> Resp {
    let mut checks: Vec<&(String, CheckFn)> = state.health.liveness.iter().collect();
    if kind != "livez" {
        checks.extend(state.health.readiness.iter());
    }
    let mut lines = vec!["[+]ping ok".to_string()];
    let mut failed = false;
    for (name, check) in checks {
        match check() {
            Ok(()) => lines.push(format!("[+]{name} ok")),
            Err(reason) => {
                failed = true;
                // The reason is only shown with ?verbose; the default output stays terse like
                // the apiserver's, which hides failure details from unauthenticated callers.
                if verbose {
                    lines.push(format!("[-]{name} failed: {reason}"));
                } else {
                    lines.push(format!("[-]{name} failed: reason withheld"));
                }
            }
        }
    }
    if failed {
        lines.push(format!("{kind} check failed"));
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            lines.join("\n") + "\n",
            "text/plain; charset=utf-8",
        );
    }
    if verbose {
        lines.push(format!("{kind} check passed"));
        return text(
            StatusCode::OK,
            lines.join("\n") + "\n",
            "text/plain; charset=utf-8",
        );
    }
    text(StatusCode::OK, "ok".into(), "text/plain; charset=utf-8")
}

fn api_group() -> Value {
    let gv = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({
        "name": GROUP,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

/// `/apis` as `apidiscovery.k8s.io/v2` (what k8s.io/apiserver serves): the one group, its one
/// version, and the two resources with their verbs and scope.
fn aggregated_discovery() -> Value {
    let resource = |name: &str, kind: &str, scope: &str| {
        json!({
            "resource": name,
            "responseKind": {"group": "", "version": "", "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": ["get", "list"]
        })
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{
            "metadata": {"name": GROUP, "creationTimestamp": null},
            "versions": [{
                "version": VERSION,
                "resources": [
                    resource("nodes", "NodeMetrics", "Cluster"),
                    resource("pods", "PodMetrics", "Namespaced")
                ],
                "freshness": "Current"
            }]
        }]
    })
}

fn api_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}
        ]
    })
}

fn openapi_v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "kaddons-metrics-server", "version": VERSION},
        "paths": {},
        "definitions": {}
    })
}

fn openapi_v3() -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "kaddons-metrics-server", "version": VERSION},
        "paths": {},
        "components": {"schemas": {}}
    })
}

fn not_acceptable() -> Resp {
    status(&Status::failure(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
    ))
}

fn ok_json<T: Serialize>(body: &T) -> Resp {
    json_response(StatusCode::OK, body)
}

fn status(s: &Status) -> Resp {
    let code = StatusCode::from_u16(s.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, s)
}

fn json_response<T: Serialize>(code: StatusCode, body: &T) -> Resp {
    match serde_json::to_vec(body) {
        Ok(bytes) => with_type(code, bytes, "application/json"),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding response: {e}"),
            "text/plain; charset=utf-8",
        ),
    }
}

fn text(code: StatusCode, body: String, content_type: &'static str) -> Resp {
    with_type(code, body.into_bytes(), content_type)
}

fn with_type(code: StatusCode, body: Vec<u8>, content_type: &'static str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Query string to a map, split and decoded like Go's `url.ParseQuery` (`+` is a space,
/// `%XX` a byte, invalid UTF-8 becomes U+FFFD). Deliberate differences from the apiserver: the
/// last value of a repeated key wins, and a pair with an invalid escape (`%zz`) is kept with
/// the escape literal instead of being dropped, so a mistyped selector fails rather than
/// silently selecting everything.
fn parse_query(q: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A percent-encoded path segment (`+` stays `+`).
fn decode(s: &str) -> String {
    super::auth::percent_decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use kaddons_model::usage::{ContainerUsage, NodeUsage, PodUsage};
    use std::time::Duration;

    struct Fixed;
    impl MetricsProvider for Fixed {
        fn nodes(&self) -> Vec<NodeUsage> {
            ["c", "a", "b"]
                .iter()
                .map(|n| NodeUsage {
                    name: n.to_string(),
                    labels: BTreeMap::from([("zone".to_string(), format!("z-{n}"))]),
                    timestamp: SystemTime::UNIX_EPOCH,
                    window: Duration::from_secs(15),
                    cpu_nanocores: 1_000_000,
                    memory_bytes: 1 << 20,
                })
                .collect()
        }
        fn pods(&self) -> Vec<PodUsage> {
            [("b", "p2"), ("a", "p9"), ("b", "p1")]
                .iter()
                .map(|(ns, n)| PodUsage {
                    namespace: ns.to_string(),
                    name: n.to_string(),
                    labels: BTreeMap::new(),
                    timestamp: SystemTime::UNIX_EPOCH,
                    window: Duration::from_secs(15),
                    containers: vec![ContainerUsage {
                        name: "c".into(),
                        cpu_nanocores: 5,
                        memory_bytes: 5,
                    }],
                })
                .collect()
        }
    }

    fn state(authorizer: Option<Arc<dyn Authorizer>>) -> Arc<AppState> {
        Arc::new(AppState {
            provider: Arc::new(Fixed),
            request_header: None,
            token_reviewer: None,
            authorizer,
            health: HealthChecks::default().with_readiness("store", || Err("no data".into())),
            registry: Arc::new(Registry::new()),
            server_address: "127.0.0.1:1".into(),
        })
    }

    fn master() -> Arc<PeerIdentity> {
        Arc::new(PeerIdentity {
            proxy_cn: None,
            client_user: Some(UserInfo::new("admin", &["system:masters"])),
        })
    }

    async fn call(
        st: &Arc<AppState>,
        peer: Arc<PeerIdentity>,
        method: Method,
        uri: &str,
    ) -> (u16, Value) {
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        let resp = handle(st.clone(), peer, req).await;
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (code, v)
    }

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse("/apis/metrics.k8s.io/v1beta1/nodes/"),
            Route::Nodes(None)
        );
        assert_eq!(
            Route::parse("/apis/metrics.k8s.io/v1beta1/namespaces/a%2Db/pods/x"),
            Route::Pods {
                namespace: Some("a-b".into()),
                name: Some("x".into())
            }
        );
        assert_eq!(
            Route::parse("/apis/metrics.k8s.io/v1/nodes"),
            Route::Unknown
        );
        assert_eq!(Route::parse("/readyz/ping"), Route::Health("readyz"));
        assert_eq!(
            parse_query("labelSelector=app%3Dx%2Cb+in+(c)&x"),
            BTreeMap::from([
                ("labelSelector".to_string(), "app=x,b in (c)".to_string()),
                ("x".to_string(), String::new())
            ])
        );
    }

    #[test]
    fn query_strings_decode_like_go_parse_query() {
        let q = parse_query("a=x+y&b=ns%2Fname&c=caf%C3%A9&d=50%25&&e&=v&f=1&f=2&g=%zz%4");
        let get = |k: &str| q.get(k).map(String::as_str);
        assert_eq!(get("a"), Some("x y"));
        assert_eq!(get("b"), Some("ns/name"));
        assert_eq!(get("c"), Some("café"));
        assert_eq!(get("d"), Some("50%"));
        assert_eq!(get("e"), Some(""));
        assert_eq!(get(""), Some("v"));
        // Differences from Go, on purpose (see parse_query): last value, literal bad escapes.
        assert_eq!(get("f"), Some("2"));
        assert_eq!(get("g"), Some("%zz%4"));
        assert_eq!(parse_query("k=%FF").get("k").unwrap(), "\u{fffd}");
        assert_eq!(parse_query("k%3Dx=1").get("k=x").unwrap(), "1");
        // Path segments keep `+`.
        assert_eq!(
            Route::parse("/apis/metrics.k8s.io/v1beta1/nodes/a+b%2Ec"),
            Route::Nodes(Some("a+b.c".into()))
        );
    }

    #[tokio::test]
    async fn lists_are_sorted() {
        let st = state(None);
        let (code, v) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/nodes",
        )
        .await;
        assert_eq!(code, 200);
        let names: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let (_, v) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/pods",
        )
        .await;
        let keys: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["metadata"]["namespace"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(keys, ["a/p9", "b/p1", "b/p2"]);
    }

    #[tokio::test]
    async fn selectors_errors_and_methods() {
        let st = state(None);
        let (code, v) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Dz-b",
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
        let (code, v) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3D%3D%3D",
        )
        .await;
        assert_eq!(code, 400);
        assert_eq!(v["reason"], "BadRequest");
        let (code, _) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.x%3Dy",
        )
        .await;
        assert_eq!(code, 400);
        let (code, v) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/namespaces/b/pods?fieldSelector=metadata.name!%3Dp1",
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(v["items"][0]["metadata"]["name"], "p2");
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
        let (code, v) = call(
            &st,
            master(),
            Method::POST,
            "/apis/metrics.k8s.io/v1beta1/nodes",
        )
        .await;
        assert_eq!(code, 405);
        assert_eq!(v["reason"], "MethodNotAllowed");
        let (code, v) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/p1",
        )
        .await;
        assert_eq!(code, 404);
        assert_eq!(v["details"]["kind"], "pods");
        let (code, _) = call(
            &st,
            master(),
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/nodes?watch=true",
        )
        .await;
        assert_eq!(code, 405);
    }

    #[tokio::test]
    async fn auth_order() {
        struct DenyAll;
        impl Authorizer for DenyAll {
            fn authorize<'a>(
                &'a self,
                _: &'a crate::api::Attributes,
            ) -> crate::api::BoxFuture<'a, Result<Decision, crate::api::AuthError>> {
                Box::pin(async {
                    Ok(Decision::Deny {
                        reason: "rbac says no".into(),
                    })
                })
            }
        }
        let st = state(Some(Arc::new(DenyAll)));
        let anon = Arc::new(PeerIdentity::default());
        let (code, v) = call(&st, anon.clone(), Method::GET, "/apis").await;
        assert_eq!((code, v["reason"].as_str()), (401, Some("Unauthorized")));
        let (code, _) = call(&st, anon.clone(), Method::GET, "/livez").await;
        assert_eq!(code, 200);
        let (code, _) = call(&st, anon.clone(), Method::DELETE, "/livez").await;
        assert_eq!(code, 405);
        let (code, _) = call(
            &st,
            anon,
            Method::POST,
            "/apis/metrics.k8s.io/v1beta1/nodes",
        )
        .await;
        assert_eq!(code, 401, "authentication before method checks");
        let (code, body) = call(&st, master(), Method::GET, "/readyz?verbose").await;
        assert_eq!(code, 500);
        assert!(body.as_str().unwrap().contains("[-]store failed: no data"));
        let user = Arc::new(PeerIdentity {
            proxy_cn: None,
            client_user: Some(UserInfo::new("jane", &["devs"])),
        });
        let (code, v) = call(
            &st,
            user,
            Method::GET,
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods",
        )
        .await;
        assert_eq!(code, 403);
        assert_eq!(
            v["message"],
            "pods.metrics.k8s.io is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"a\": rbac says no"
        );
        assert_eq!(st.registry.request_count("pods", 403), 1);
    }

    struct BrokenReviewer;
    impl TokenReviewer for BrokenReviewer {
        fn review<'a>(
            &'a self,
            _token: &'a str,
        ) -> crate::api::BoxFuture<'a, Result<Option<UserInfo>, AuthError>> {
            Box::pin(async { Err(AuthError::TokenReview("connection refused".into())) })
        }
    }

    #[tokio::test]
    async fn token_review_failure_is_a_plain_401() {
        let st = Arc::new(AppState {
            provider: Arc::new(Fixed),
            request_header: None,
            token_reviewer: Some(Arc::new(BrokenReviewer)),
            authorizer: None,
            health: HealthChecks::default(),
            registry: Arc::new(Registry::new()),
            server_address: "127.0.0.1:1".into(),
        });
        let req = Request::builder()
            .uri("/apis/metrics.k8s.io/v1beta1/nodes")
            .header("Authorization", "Bearer abc")
            .body(())
            .unwrap();
        let resp = handle(st, Arc::new(PeerIdentity::default()), req).await;
        assert_eq!(resp.status().as_u16(), 401);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], "Unauthorized", "no internal details leak");
    }
}
