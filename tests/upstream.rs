//! The `generic` profile must reproduce upstream metrics-server v0.9.0 object for object and
//! field for field; kaddons may only add its own labels and annotations.

use std::collections::BTreeMap;

use kaddons::catalog::Profile;
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

#[test]
fn generic_render_equals_upstream_components_yaml() {
    let ours = render_with(Profile::Generic, &[]).objects;
    assert_same(
        ours,
        fixture_docs("tests/fixtures/upstream-metrics-server/components.yaml"),
    );
}

#[test]
fn generic_render_only_adds_kaddons_labels_and_annotations() {
    for o in render_with(Profile::Generic, &[]).objects {
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

/// Upstream's ha.yaml still uses policy/v1beta1 for the PodDisruptionBudget, an API that
/// Kubernetes 1.25 removed; kaddons renders policy/v1 (same fields). Everything else must match.
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
