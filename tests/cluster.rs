//! What a real API server cannot be made to produce, against kube-fake-client (an in-memory
//! API server with server-side apply, managed fields and label selectors). Everything else
//! about enable, disable, ownership, pre-flight, dry run, waits and doctor is proven against
//! the real control plane in `tests/real/`. What stays here, and why:
//! - API errors injected at a chosen request (a 500 from etcd, a 409 on a patch) and an enable
//!   that fails at each object in turn: a healthy kube-apiserver returns neither on demand;
//! - request counting per call (interceptors see every request);
//! - pods, events and container logs in the states a node produces (CrashLoopBackOff,
//!   ErrImagePull, readiness 500 with the kubelet TLS log line, ...), for the diagnosis and
//!   doctor patterns, and an APIService reported Available (the real aggregator overwrites
//!   APIService status), until the real node of the node issue produces them for real;
//! - cluster facts from Node objects of other distributions.
//!
//! Every applied object is checked against the strict Kubernetes 1.32 OpenAPI schema by a
//! patch interceptor: the fake's own `validation` feature only covers its typed create/update
//! calls, not server-side apply over HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kaddons::catalog::{Addon, Catalog, Profile};
use kaddons::cluster::apply::{self, Change, EnableOptions};
use kaddons::cluster::client::Connection;
use kaddons::cluster::status::{addon_status, State};
use kaddons::render::{self, Request};
use kube::api::{Api, Patch, PatchParams};
use kube_fake_client::{interceptor, ClientBuilder, PatchType};
use serde_json::{json, Value};

use crate::util::check_schema;

fn addon() -> Addon {
    Catalog::builtin()
        .unwrap()
        .get("metrics-server")
        .unwrap()
        .clone()
}

fn objects(sets: &[&str]) -> Vec<Value> {
    let mut req = Request::new(Profile::Kind);
    req.sets = sets.iter().map(|s| s.to_string()).collect();
    render::render(&addon(), &req).unwrap().objects
}

fn aggregation_configmap() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {"requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----\n", "requestheader-allowed-names": "[\"front-proxy-client\"]"}
    })
}

/// Rejects an applied object that the Kubernetes 1.32 schema rejects, as a real API server
/// would; lets the fake store valid ones.
fn validate(ctx: &interceptor::PatchContext) -> kube_fake_client::Result<Option<Value>> {
    if ctx.patch_type == PatchType::ApplyPatch {
        check_schema(ctx.patch).map_err(|e| kube_fake_client::Error::ValidationFailed {
            kind: ctx.patch["kind"].as_str().unwrap_or("?").to_string(),
            errors: vec![e],
        })?;
    }
    Ok(None)
}

async fn fake_with(seed: Vec<Value>, funcs: Option<interceptor::Funcs>) -> Connection {
    let funcs = funcs.unwrap_or_else(|| interceptor::Funcs::new().patch(|ctx| validate(&ctx)));
    let client = ClientBuilder::new()
        .with_runtime_objects(seed)
        .with_interceptor_funcs(funcs)
        .build()
        .await
        .unwrap();
    Connection::from_client(client, "fake", "https://fake.invalid")
}

pub(crate) async fn fake(seed: Vec<Value>) -> Connection {
    let mut all = vec![aggregation_configmap()];
    all.extend(seed);
    fake_with(all, None).await
}

fn enable_opts() -> EnableOptions {
    EnableOptions::default()
}

/// Managed objects without what the API server sets, to compare two clusters' contents.
async fn contents(conn: &Connection) -> Vec<Value> {
    let mut out: Vec<Value> = apply::managed_objects(conn, &addon())
        .await
        .unwrap()
        .into_iter()
        .map(|mut o| {
            if let Some(m) = o["metadata"].as_object_mut() {
                for k in [
                    "resourceVersion",
                    "managedFields",
                    "uid",
                    "creationTimestamp",
                    "generation",
                ] {
                    m.remove(k);
                }
            }
            o
        })
        .collect();
    out.sort_by_key(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]));
    out
}

#[tokio::test]
async fn applied_objects_are_checked_against_the_openapi_schema() {
    // The fake rejects what a real API server would: prove validation is on.
    let conn = fake(vec![]).await;
    let mut objs = objects(&[]);
    let d = objs.iter_mut().find(|o| o["kind"] == "Deployment").unwrap();
    d["spec"]["replicas"] = json!("two");
    let err = apply::enable(&conn, &addon(), &objs, enable_opts())
        .await
        .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("422") && err.contains("replicas"), "{err}");
}

#[test]
fn every_render_validates_against_the_kubernetes_schema() {
    for profile in Profile::ALL {
        for sets in [&[][..], &["ha=true"], &["hostNetwork.enabled=true"]] {
            let mut req = Request::new(profile);
            req.sets = sets.iter().map(|s| s.to_string()).collect();
            for o in render::render(&addon(), &req).unwrap().objects {
                check_schema(&o).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn api_errors_name_the_server_and_the_code() {
    for (error, code) in [
        (
            kube_fake_client::Error::Internal("etcd is sad".into()),
            "500",
        ),
        (
            kube_fake_client::Error::Conflict("the object has been modified".into()),
            "409",
        ),
    ] {
        let error = Arc::new(Mutex::new(Some(error)));
        let funcs = interceptor::Funcs::new().patch(move |_| match error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(None),
        });
        let conn = fake_with(vec![aggregation_configmap()], Some(funcs)).await;
        let err = apply::enable(&conn, &addon(), &objects(&[]), enable_opts())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(code), "{err}");
        assert!(err.contains("https://fake.invalid"), "{err}");
        assert!(err.contains("\"fake\""), "{err}");
    }
}

#[tokio::test]
async fn an_interrupted_enable_converges_when_run_again() {
    let clean = fake(vec![]).await;
    let objs = objects(&[]);
    apply::enable(&clean, &addon(), &objs, enable_opts())
        .await
        .unwrap();
    let expected = contents(&clean).await;
    for k in 0..objs.len() {
        let seen = Arc::new(AtomicUsize::new(0));
        let funcs = interceptor::Funcs::new().patch(move |ctx| {
            if seen.fetch_add(1, Ordering::SeqCst) == k {
                Err(kube_fake_client::Error::Internal(format!(
                    "interrupted at object {k}"
                )))
            } else {
                validate(&ctx)
            }
        });
        let conn = fake_with(vec![aggregation_configmap()], Some(funcs)).await;
        assert!(apply::enable(&conn, &addon(), &objs, enable_opts())
            .await
            .is_err());
        apply::enable(&conn, &addon(), &objs, enable_opts())
            .await
            .unwrap();
        assert_eq!(
            contents(&conn).await,
            expected,
            "after an interruption at object {k}"
        );
    }
}

/// The fake ignores `dryRun`, so this test talks to a stand-in that records every request:
/// nothing exists, the aggregation layer is configured, and every apply is echoed back.
#[tokio::test]
async fn dry_run_sends_dry_run_applies_and_nothing_else() {
    use bytes::Bytes;
    use http_body_util::Full;

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let log = log.clone();
        async move {
            use http_body_util::BodyExt;
            let method = req.method().clone();
            let uri = req.uri().clone();
            log.lock().unwrap().push(format!("{method} {uri}"));
            let body = req.into_body().collect().await?.to_bytes();
            let (status, answer) = match method.as_str() {
                "GET" if uri.path().ends_with("/extension-apiserver-authentication") => {
                    (200, aggregation_configmap().to_string())
                }
                "GET" if uri.query().is_some_and(|q| q.contains("labelSelector")) => {
                    (200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}).to_string())
                }
                "GET" => (404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}).to_string()),
                "PATCH" => (200, String::from_utf8_lossy(&body).to_string()),
                _ => (405, String::new()),
            };
            let resp = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(answer)))?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(resp)
        }
    });
    let client = kube::Client::new(service, "default");
    let conn = Connection::from_client(client, "stand-in", "https://stand-in.invalid");
    let objs = objects(&[]);
    let opts = EnableOptions {
        dry_run: true,
        ..Default::default()
    };
    let report = apply::enable(&conn, &addon(), &objs, opts).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.count(Change::Created), objs.len());
    let requests = seen.lock().unwrap().clone();
    let patches: Vec<&String> = requests.iter().filter(|r| r.starts_with("PATCH")).collect();
    assert_eq!(patches.len(), objs.len());
    for p in &patches {
        assert!(p.contains("dryRun=All"), "{p}");
        assert!(p.contains("fieldManager=kaddons"), "{p}");
    }
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET") || r.starts_with("PATCH")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn status_follows_the_cluster() {
    let conn = fake(vec![]).await;
    let objs = objects(&[]);
    let st = addon_status(&conn, &addon(), &objs).await.unwrap();
    assert_eq!(st.state, State::Disabled);

    apply::enable(&conn, &addon(), &objs, enable_opts())
        .await
        .unwrap();
    let st = addon_status(&conn, &addon(), &objs).await.unwrap();
    assert_eq!(st.state, State::Degraded);
    assert_eq!(st.profile.as_deref(), Some("kind"));
    let reason = st.reason();
    assert!(
        reason.contains("Deployment kube-system/metrics-server"),
        "{reason}"
    );
    assert!(
        reason.contains("APIService v1beta1.metrics.k8s.io"),
        "{reason}"
    );

    // The controllers do their work.
    let deployments: Api<Deployment> = Api::namespaced(conn.client.clone(), "kube-system");
    let gen = deployments
        .get("metrics-server")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap_or(0);
    deployments
        .patch_status(
            "metrics-server",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": gen, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    let st = addon_status(&conn, &addon(), &objs).await.unwrap();
    assert_eq!(
        st.state,
        State::Degraded,
        "the APIService is not Available yet"
    );
    let apis: Api<APIService> = Api::all(conn.client.clone());
    apis.patch_status(
        "v1beta1.metrics.k8s.io",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed", "lastTransitionTime": "2026-11-25T00:00:00Z"}]}})),
    )
    .await
    .unwrap();
    let st = addon_status(&conn, &addon(), &objs).await.unwrap();
    assert_eq!(st.state, State::Enabled, "{:?}", st.objects);
}

/// How many API requests `enable metrics-server` makes (the figure quoted in the notes).
#[tokio::test]
async fn enable_request_count() {
    let count = Arc::new(AtomicUsize::new(0));
    let (c1, c2, c3) = (count.clone(), count.clone(), count.clone());
    let funcs = interceptor::Funcs::new()
        .get(move |_| {
            c1.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .list(move |_| {
            c2.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .patch(move |ctx| {
            c3.fetch_add(1, Ordering::SeqCst);
            validate(&ctx)
        });
    let conn = fake_with(vec![aggregation_configmap()], Some(funcs)).await;
    let objs = objects(&[]);
    apply::enable(&conn, &addon(), &objs, enable_opts())
        .await
        .unwrap();
    // 1 aggregation check + 9 reads + 9 applies + 8 label-selected lists for pruning.
    assert_eq!(count.load(Ordering::SeqCst), 1 + 9 + 9 + 8);
}

/// Logs fed by the test (the fake has no pods/log endpoint).
struct FedLogs(Vec<(&'static str, &'static str)>);

impl kaddons::cluster::observe::LogSource for FedLogs {
    fn tail<'a>(
        &'a self,
        _namespace: &'a str,
        pod: &'a str,
        _container: &'a str,
    ) -> futures::future::BoxFuture<'a, Option<String>> {
        let text = self
            .0
            .iter()
            .find(|(p, _)| *p == pod)
            .map(|(_, t)| t.to_string());
        Box::pin(async move { text })
    }
}

fn pod(name: &str, container_state: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": "metrics-server"}},
        "spec": {"containers": [{"name": "metrics-server", "image": "registry.k8s.io/metrics-server/metrics-server:v0.9.0"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "metrics-server", "image": "registry.k8s.io/metrics-server/metrics-server:v0.9.0",
            "imageID": "", "ready": false, "restartCount": 0, "state": container_state}]}
    })
}

async fn findings_for(seed: Vec<Value>, logs: FedLogs) -> Vec<kaddons::cluster::diagnose::Finding> {
    use kaddons::cluster::diagnose::{diagnose, known_failures};
    let conn = fake(seed).await;
    let objs = objects(&[]);
    let obs = kaddons::cluster::observe::observe(&conn, &objs, &logs)
        .await
        .unwrap();
    diagnose(&obs, &known_failures().unwrap())
}

#[tokio::test]
async fn a_stuck_enable_is_explained_from_pods_events_logs_and_apiservices() {
    // Image pull failure: the image and the mirror flag.
    let f = findings_for(
        vec![pod(
            "ms-a",
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
        )],
        FedLogs(vec![]),
    )
    .await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].hint.contains("--image-mirror cn"));

    // Kubelet certificates without IP SANs, seen in the container log, plus the readiness event.
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "ms-b.1", "namespace": "kube-system"},
        "involvedObject": {"kind": "Pod", "name": "ms-b", "namespace": "kube-system"},
        "reason": "Unhealthy", "type": "Warning",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"
    });
    let unrelated = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "other.1", "namespace": "kube-system"},
        "involvedObject": {"kind": "Pod", "name": "coredns-1", "namespace": "kube-system"},
        "reason": "Unhealthy", "type": "Warning",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"
    });
    let f = findings_for(
        vec![pod("ms-b", json!({"running": {"startedAt": "2026-11-25T00:00:00Z"}})), event, unrelated],
        FedLogs(vec![("ms-b", "E1125 scraper.go:149] \"Failed to scrape node\" err=\"Get \\\"https://172.18.0.2:10250/metrics/resource\\\": tls: failed to verify certificate: x509: cannot validate certificate for 172.18.0.2 because it doesn't contain any IP SANs\"\n")]),
    )
    .await;
    let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["kubelet-cert-no-ip-sans", "readiness-500"], "{f:?}");
    assert!(f[0].hint.contains("kubeletInsecureTLS=true"));
    assert!(
        f[1].summary.contains("ms-b"),
        "only the addon's pods count: {f:?}"
    );

    // The API server cannot reach the pod: hostNetwork.
    let api_service = json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"name": "metrics-server", "namespace": "kube-system"}},
        "status": {"conditions": [{"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck",
                                   "message": "failing or missing response from https://10.244.0.5:10250/apis/metrics.k8s.io/v1beta1: context deadline exceeded",
                                   "lastTransitionTime": "2026-11-25T00:00:00Z"}]}
    });
    let f = findings_for(vec![api_service], FedLogs(vec![])).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].hint.contains("hostNetwork.enabled=true"));

    // Healthy: nothing to say.
    let f = findings_for(
        vec![pod(
            "ms-c",
            json!({"running": {"startedAt": "2026-11-25T00:00:00Z"}}),
        )],
        FedLogs(vec![("ms-c", "I1125 Serving securely on [::]:10250\n")]),
    )
    .await;
    assert!(f.is_empty(), "{f:?}");
}

#[tokio::test]
async fn cluster_facts_refine_the_profile() {
    use kaddons::cluster::facts::cluster_facts;
    use kaddons::profile::detect;
    let node = |name: &str, provider: Option<&str>, labels: Value| {
        let mut n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                           "spec": {}, "status": {"nodeInfo": {"kubeletVersion": "v1.32.2", "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}});
        if let Some(p) = provider {
            n["spec"]["providerID"] = json!(p);
        }
        n
    };
    let kubeadm_cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"}, "data": {}});

    let kind = fake(vec![
        node(
            "dev-control-plane",
            Some("kind://docker/dev/dev-control-plane"),
            json!({}),
        ),
        kubeadm_cm.clone(),
    ])
    .await;
    let d = detect(&cluster_facts(&kind).await.unwrap());
    assert_eq!(d.profile, Profile::Kind, "{d:?}");

    let minikube = fake(vec![
        node(
            "minikube",
            None,
            json!({"minikube.k8s.io/name": "minikube"}),
        ),
        kubeadm_cm.clone(),
    ])
    .await;
    assert_eq!(
        detect(&cluster_facts(&minikube).await.unwrap()).profile,
        Profile::Minikube
    );

    let kubeadm = fake(vec![node("cp-1", None, json!({})), kubeadm_cm]).await;
    assert_eq!(
        detect(&cluster_facts(&kubeadm).await.unwrap()).profile,
        Profile::Kubeadm
    );

    let bare = fake(vec![node("n1", None, json!({}))]).await;
    assert_eq!(
        detect(&cluster_facts(&bare).await.unwrap()).profile,
        Profile::Generic
    );
}

async fn doctor_for(
    seed: Vec<Value>,
    aggregation: bool,
    logs: FedLogs,
) -> Vec<kaddons::cluster::doctor::Check> {
    let mut all = seed;
    if aggregation {
        all.push(aggregation_configmap());
    }
    let conn = fake_with(all, None).await;
    let expected = render::render(&addon(), &Request::new(Profile::Generic))
        .unwrap()
        .objects;
    kaddons::cluster::doctor::run(&conn, &addon(), &expected, &[], &logs).await
}

fn ids_with(checks: &[kaddons::cluster::doctor::Check], severity: &str) -> Vec<String> {
    checks
        .iter()
        .filter(|c| serde_json::to_value(c.severity).unwrap() == severity)
        .map(|c| c.id.clone())
        .collect()
}

#[tokio::test]
async fn doctor_reports_each_known_failure_with_its_fix() {
    let conn_seed = vec![pod("ms-x", json!({"waiting": {"reason": "ErrImagePull"}}))];
    let checks = doctor_for(conn_seed, true, FedLogs(vec![])).await;
    let errors = ids_with(&checks, "error");
    assert!(errors.contains(&"image-pull".to_string()), "{checks:?}");
    assert!(
        !errors.contains(&"aggregation-layer".to_string()),
        "{checks:?}"
    );
    let api = checks.iter().find(|c| c.id == "api-serves").unwrap();
    assert_eq!(serde_json::to_value(api.severity).unwrap(), "error");
}

#[tokio::test]
async fn doctor_on_a_healthy_install_finds_nothing_wrong_but_the_metrics_api() {
    // Everything kaddons manages is ready; the fake cannot serve metrics.k8s.io, which the
    // last check must report (and nothing else).
    let conn = fake(vec![]).await;
    let objs = objects(&[]);
    apply::enable(&conn, &addon(), &objs, enable_opts())
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(conn.client.clone(), "kube-system");
    let gen = deployments
        .get("metrics-server")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap_or(0);
    deployments
        .patch_status("metrics-server", &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": gen, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}})))
        .await
        .unwrap();
    let apis: Api<APIService> = Api::all(conn.client.clone());
    apis.patch_status("v1beta1.metrics.k8s.io", &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed", "lastTransitionTime": "2026-11-25T00:00:00Z"}]}})))
        .await
        .unwrap();
    let expected = render::render(&addon(), &Request::new(Profile::Generic))
        .unwrap()
        .objects;
    let checks =
        kaddons::cluster::doctor::run(&conn, &addon(), &expected, &[], &FedLogs(vec![])).await;
    assert_eq!(ids_with(&checks, "error"), ["api-serves"], "{checks:?}");
    assert!(ids_with(&checks, "warn").is_empty(), "{checks:?}");
    let ok = ids_with(&checks, "ok");
    for id in [
        "cluster-reachable",
        "profile",
        "aggregation-layer",
        "addon-objects",
    ] {
        assert!(ok.contains(&id.to_string()), "{id}: {checks:?}");
    }
    // The JSON shape scripts rely on.
    let agg =
        serde_json::to_value(checks.iter().find(|c| c.id == "aggregation-layer").unwrap()).unwrap();
    insta::assert_json_snapshot!("doctor-check-json-shape", agg);
}
