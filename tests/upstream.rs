//! The `generic` profile must reproduce upstream metrics-server's release manifests, for every
//! version in the catalog, object for object and field for field; kaddons may only add its own
//! labels and annotations.

use std::collections::BTreeMap;

use kaddons::catalog::{Addon, Catalog, Profile};
use kaddons::render::{self, Request};
use serde_json::Value;

use crate::util::{fixture_docs, key, render_with, strip_kaddons};

fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects.into_iter().map(|o| (key(&o), o)).collect()
}

fn assert_same(ours: Vec<Value>, upstream: Vec<Value>) {
    let ours = by_key(ours.into_iter().map(strip_kaddons).collect());
    let upstream = by_key(upstream);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        upstream.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (k, theirs) in &upstream {
        assert_eq!(&ours[k], theirs, "object {k} differs from upstream");
    }
}

/// metrics-server at upstream version `upstream`.
fn at(upstream: &str) -> Addon {
    let catalog = Catalog::builtin().expect("catalog");
    let ms = catalog.get("metrics-server").expect("addon");
    let index = ms
        .versions()
        .iter()
        .position(|v| v.upstream == upstream)
        .unwrap_or_else(|| panic!("the catalog has metrics-server {upstream}"));
    ms.at(index)
}

fn render_at(upstream: &str, sets: &[&str]) -> Vec<Value> {
    let mut req = Request::new(Profile::Generic);
    req.sets = sets.iter().map(|s| s.to_string()).collect();
    render::render(&at(upstream), &req).expect("render").objects
}

/// components.yaml and ha.yaml of one version from tests/fixtures/upstream-metrics-server/.
fn assert_version_matches(upstream: &str, dir: &str) {
    assert_same(
        render_at(upstream, &[]),
        fixture_docs(&format!("{dir}/components.yaml")),
    );
    assert_same(
        render_at(upstream, &["ha=true"]),
        fixture_docs(&format!("{dir}/ha.yaml")),
    );
}

#[test]
fn the_catalog_has_exactly_the_versions_with_fixtures() {
    let catalog = Catalog::builtin().unwrap();
    let ms = catalog.get("metrics-server").unwrap();
    let versions: Vec<(&str, String)> = ms
        .versions()
        .iter()
        .map(|v| (v.upstream.as_str(), v.kubernetes.to_string()))
        .collect();
    assert_eq!(
        versions,
        [
            ("v0.9.0", "1.34".to_string()),
            ("v0.8.1", "1.31".to_string()),
            ("v0.7.2", "1.27".to_string()),
            ("v0.6.4", "1.25".to_string()),
        ]
    );
}

#[test]
fn v0_8_1_equals_upstream() {
    assert_version_matches("v0.8.1", "tests/fixtures/upstream-metrics-server/v0.8.1");
}

#[test]
fn v0_7_2_equals_upstream() {
    assert_version_matches("v0.7.2", "tests/fixtures/upstream-metrics-server/v0.7.2");
}

/// v0.6.4 serves on 4443, has no capabilities.drop or seccompProfile, and its PDB no label.
#[test]
fn v0_6_4_equals_upstream() {
    assert_version_matches("v0.6.4", "tests/fixtures/upstream-metrics-server/v0.6.4");
}

#[test]
fn generic_render_equals_upstream_components_yaml() {
    let ours = render_with(Profile::Generic, &[]).objects;
    assert_same(
        ours.clone(),
        fixture_docs("tests/fixtures/upstream-metrics-server/components.yaml"),
    );
    // The newest is the default: the same as asking for v0.9.0.
    assert_eq!(ours.len(), render_at("v0.9.0", &[]).len());
}

#[test]
fn generic_render_only_adds_kaddons_labels_and_annotations() {
    let catalog = Catalog::builtin().unwrap();
    let ms = catalog.get("metrics-server").unwrap();
    for index in 0..ms.versions().len() {
        let mut req = Request::new(Profile::Generic);
        req.sets = vec!["ha=true".into()];
        for o in render::render(&ms.at(index), &req).unwrap().objects {
            let meta = &o["metadata"];
            for field in ["labels", "annotations"] {
                for k in meta[field]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    assert!(
                        k == "k8s-app"
                            || k.starts_with("rbac.authorization.k8s.io/")
                            || k.starts_with("kaddons.io/")
                            || k == "app.kubernetes.io/managed-by",
                        "{} has an unexpected {field} key {k}",
                        key(&o)
                    );
                }
            }
        }
    }
}

/// This copy of upstream's v0.9.0 ha.yaml still uses policy/v1beta1 for the
/// PodDisruptionBudget, an API that Kubernetes 1.25 removed; kaddons renders policy/v1 (same
/// fields; upstream's own release-ha-1.21+ overlay renders policy/v1 too). Everything else
/// must match.
#[test]
fn ha_render_equals_upstream_ha_yaml_except_the_removed_pdb_api() {
    let ours = render_with(Profile::Generic, &["ha=true"]).objects;
    let mut upstream = fixture_docs("tests/fixtures/upstream-metrics-server/ha.yaml");
    let pdb = upstream
        .iter_mut()
        .find(|o| o["kind"] == "PodDisruptionBudget")
        .expect("upstream ha.yaml has a PDB");
    assert_eq!(pdb["apiVersion"], "policy/v1beta1");
    pdb["apiVersion"] = Value::from("policy/v1");
    assert_same(ours, upstream);
}

/// Profiles and mirrors hold for every version: the kind patch and `--image-mirror cn`
/// rewrite each release's own image.
#[test]
fn profiles_and_mirrors_apply_to_every_version() {
    let catalog = Catalog::builtin().unwrap();
    let ms = catalog.get("metrics-server").unwrap();
    let cn = catalog.mirror("cn").unwrap().clone();
    for (index, v) in ms.versions().iter().enumerate() {
        let mut req = Request::new(Profile::Kind);
        req.images.mirror = Some(("cn".into(), cn.clone()));
        let r = render::render(&ms.at(index), &req).unwrap();
        let d = r
            .objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap();
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let image = c["image"].as_str().unwrap();
        assert!(image.ends_with(&format!(":{}", v.upstream)), "{image}");
        assert!(!image.starts_with("registry.k8s.io"), "{image}");
        assert!(
            c["args"]
                .as_array()
                .unwrap()
                .contains(&Value::from("--kubelet-insecure-tls")),
            "{}",
            v.upstream
        );
    }
}
