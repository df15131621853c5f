//! Shared test helpers: the built binary in a clean environment, rendering, and comparisons.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kaddons::catalog::{labels, Catalog, Profile};
use kaddons::render::{self, Request};
use serde::Deserialize;
use serde_json::Value;

/// `kaddons` with no kubeconfig, no colours and an empty HOME, so that the developer's own
/// cluster never leaks into a test.
pub fn kaddons(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaddons").expect("binary built");
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        // Only the image tests ask registries (they remove it); the others have no network.
        .env("KADDONS_SKIP_IMAGE_CHECK", "1");
    cmd
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every document of a multi-document YAML text, nulls skipped.
pub fn parse_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn fixture_docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_path(rel)).expect("fixture");
    parse_docs(&text)
}

pub fn render_with(profile: Profile, sets: &[&str]) -> render::Rendered {
    let catalog = Catalog::builtin().expect("catalog");
    let addon = catalog.get("metrics-server").expect("addon");
    let mut req = Request::new(profile);
    req.sets = sets.iter().map(|s| s.to_string()).collect();
    render::render(addon, &req).expect("render")
}

/// Removes what kaddons adds (its labels and annotations), leaving the addon's own fields.
pub fn strip_kaddons(mut o: Value) -> Value {
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations"] {
            let now_empty = match meta.get_mut(field).and_then(Value::as_object_mut) {
                Some(m) => {
                    m.retain(|k, _| k != labels::MANAGED_BY && !k.starts_with("kaddons.io/"));
                    m.is_empty()
                }
                None => false,
            };
            if now_empty {
                meta.remove(field);
            }
        }
    }
    o
}

/// `Kind/namespace/name`, the identity used to pair objects.
pub fn key(o: &Value) -> String {
    format!(
        "{}/{}/{}",
        o["kind"].as_str().unwrap_or(""),
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// JSON pointers at which two values differ (leaves, or the node where the types differ).
pub fn diff_paths(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_paths(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    format!("{at}/{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_paths(p, q, format!("{at}/{i}"), out);
            }
        }
        (p, q) if p != q => out.push(at),
        _ => {}
    }
}

/// kubectl, or `None` when it is missing outside CI (inside CI a missing kubectl fails).
pub fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubectl is required in CI (CI=true) but is not on PATH"
        );
        eprintln!("kubectl not found: skipping the kubectl part of this test");
    }
    found
}

/// Kubernetes 1.32 OpenAPI definition name of an apiVersion + kind the addons use.
fn definition(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let prefix = match group {
        "" => "io.k8s.api.core".to_string(),
        "apiregistration.k8s.io" => "io.k8s.kube-aggregator.pkg.apis.apiregistration".to_string(),
        "rbac.authorization.k8s.io" => "io.k8s.api.rbac".to_string(),
        g if !g.contains('.') => format!("io.k8s.api.{g}"),
        _ => return None,
    };
    Some(format!("{prefix}.{version}.{kind}"))
}

/// Validates an object against the strict Kubernetes 1.32 schema (unknown fields rejected),
/// from tests/fixtures/k8s-v1.32-definitions.json (trimmed from the kubernetes-validate
/// package's v1.32.0-local-strict definitions).
pub fn check_schema(o: &Value) -> Result<(), String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DEFS: OnceLock<Value> = OnceLock::new();
    static CACHE: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
        OnceLock::new();
    let defs = DEFS.get_or_init(|| {
        let text = std::fs::read_to_string(repo_path("tests/fixtures/k8s-v1.32-definitions.json"))
            .expect("definitions fixture");
        serde_json::from_str(&text).expect("definitions parse")
    });
    let api_version = o["apiVersion"].as_str().unwrap_or_default();
    let kind = o["kind"].as_str().unwrap_or_default();
    let name = definition(api_version, kind)
        .filter(|n| defs["definitions"].get(n).is_some())
        .ok_or_else(|| format!("no schema for {api_version} {kind}"))?;
    let validator = {
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .expect("cache lock");
        cache
            .entry(name.clone())
            .or_insert_with(|| {
                let schema = serde_json::json!({
                    "definitions": defs["definitions"],
                    "$ref": format!("#/definitions/{name}"),
                });
                std::sync::Arc::new(jsonschema::validator_for(&schema).expect("schema compiles"))
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(o)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{kind} {}: {}",
            o["metadata"]["name"],
            errors.join("; ")
        ))
    }
}

/// A fresh HOME for one test, removed when dropped.
pub fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The stdout of a command that must succeed (its stderr in the failure message).
pub fn stdout(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
