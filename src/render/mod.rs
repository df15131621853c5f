//! Rendering: catalog + profile + user values -> Kubernetes objects.
//!
//! Pure: no network, no cluster, no files (callers read `--values` files). `kaddons render`
//! prints what this returns and `kaddons enable` applies the same objects.
//! Values are layered as defaults <- profile patches <- `--values` files <- `--set`.

pub mod images;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::values::{merge, ValuesError};
use crate::catalog::{labels, phase, Addon, Profile};
pub use images::{ImageError, ImageOverrides, ImageRef};
pub use template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{origin}: {source}")]
    Values {
        origin: String,
        #[source]
        source: ValuesError,
    },
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template {file} did not produce valid YAML: {source}")]
    Yaml {
        file: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("template {file}, document {index}: not a Kubernetes object ({problem})")]
    NotAnObject {
        file: String,
        index: usize,
        problem: String,
    },
    #[error("{kind} {name} is rendered twice (templates {first} and {second})")]
    Duplicate {
        kind: String,
        name: String,
        first: String,
        second: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to render, beyond the addon itself.
#[derive(Debug, Clone)]
pub struct Request {
    pub profile: Profile,
    /// `--values` files, already parsed, with the name to blame in errors.
    pub values_files: Vec<(String, Value)>,
    /// `--set key.path=value`, in order.
    pub sets: Vec<String>,
    /// The text of `values_files` by name, when there is one, to point errors at a line.
    pub texts: BTreeMap<String, String>,
    pub images: ImageOverrides,
}

impl Request {
    pub fn new(profile: Profile) -> Self {
        Request {
            profile,
            values_files: Vec::new(),
            sets: Vec::new(),
            texts: BTreeMap::new(),
            images: ImageOverrides::default(),
        }
    }
}

/// The result of rendering one addon.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub addon: String,
    pub profile: Profile,
    /// Effective values after every layer.
    pub values: Value,
    /// Image name -> reference.
    pub images: BTreeMap<String, String>,
    /// `sha256:<16 hex>` of the effective values and images.
    pub digest: String,
    /// In apply order.
    pub objects: Vec<Value>,
    /// Things worth telling the user (e.g. a frozen registry asked for explicitly).
    pub warnings: Vec<String>,
}

/// Layers values, resolves images, renders every template and labels every object.
pub fn render(addon: &Addon, req: &Request) -> Result<Rendered> {
    let values = effective_values(addon, req)?;
    let resolved = images::resolve(&addon.def.images, &req.images)?;
    let image_refs: BTreeMap<String, String> = resolved
        .images
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let digest = digest(&values, &image_refs);
    let context = json!({
        "values": values,
        "images": image_refs,
        "addon": {
            "name": addon.def.name,
            "namespace": addon.def.namespace,
            "version": addon.def.version,
        },
        "version": {
            "upstream": addon.version().upstream,
            "features": addon.version().features,
        },
    });
    let engine = template::Engine::new(&addon.templates)?;
    engine.check_paths(&values)?;
    let mut objects: Vec<(String, Value)> = Vec::new();
    for (file, text) in engine.render_all(&context)? {
        for (index, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(doc).map_err(|source| Error::Yaml {
                file: file.clone(),
                source,
            })?;
            if value.is_null() {
                continue;
            }
            check_object(&value).map_err(|problem| Error::NotAnObject {
                file: file.clone(),
                index,
                problem,
            })?;
            objects.push((file.clone(), value));
        }
    }
    check_unique(&objects)?;
    objects.sort_by_key(|(_, o)| install_rank(kind_of(o)));
    let mut objects: Vec<Value> = objects.into_iter().map(|(_, o)| o).collect();
    for o in &mut objects {
        label(o, addon, req.profile, &digest);
    }
    Ok(Rendered {
        addon: addon.def.name.clone(),
        profile: req.profile,
        values,
        images: image_refs,
        digest,
        objects,
        warnings: resolved.warnings,
    })
}

/// defaults <- profile patches <- --values files <- --set.
pub fn effective_values(addon: &Addon, req: &Request) -> Result<Value> {
    let schema = addon.schema();
    let mut values = addon.profile_values(req.profile);
    for (origin, file) in &req.values_files {
        let blame = |source: ValuesError| {
            let line = match &source {
                ValuesError::Constraint { key, .. } | ValuesError::WrongType { key, .. } => {
                    req.texts.get(origin).and_then(|text| line_of(text, key))
                }
                _ => None,
            };
            Error::Values {
                origin: match line {
                    Some(l) => format!("{origin}:{l}"),
                    None => origin.clone(),
                },
                source,
            }
        };
        schema.check(file).map_err(blame)?;
        addon.check_constraints(file).map_err(blame)?;
        merge(&mut values, file);
    }
    for expr in &req.sets {
        let blame = |source| Error::Values {
            origin: format!("--set {expr}"),
            source,
        };
        let tree = schema.parse_set(expr, &values).map_err(blame)?;
        addon.check_constraints(&tree).map_err(blame)?;
        merge(&mut values, &tree);
    }
    addon
        .check_constraints(&values)
        .map_err(|source| Error::Values {
            origin: "values".into(),
            source,
        })?;
    schema
        .check_choices(&values)
        .map_err(|source| Error::Values {
            origin: "values".into(),
            source,
        })?;
    Ok(values)
}

/// The 1-based line of a dotted key (`hostNetwork.securePort`, `a[0]`) in a YAML text: each
/// part is looked for below the line of the one before, deeper indented. Best effort.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let parts: Vec<&str> = key
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .filter(|p| !p.is_empty())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let (mut from, mut indent, mut found) = (0usize, -1i64, None);
    for part in parts {
        let Some(hit) = lines.iter().enumerate().skip(from).find(|(_, l)| {
            let body = l.trim_start().trim_start_matches("- ");
            let depth = (l.len() - l.trim_start().len()) as i64;
            depth > indent
                && [
                    format!("{part}:"),
                    format!("\"{part}\":"),
                    format!("'{part}':"),
                ]
                .iter()
                .any(|k| body.starts_with(k.as_str()))
        }) else {
            // A part not found (a key with dots inside, like a label): the parent's line.
            return found;
        };
        indent = (hit.1.len() - hit.1.trim_start().len()) as i64;
        from = hit.0 + 1;
        found = Some(hit.0 + 1);
    }
    found
}

fn digest(values: &Value, images: &BTreeMap<String, String>) -> String {
    // serde_json's Map keeps keys sorted, so this text is canonical.
    let text = json!({"values": values, "images": images}).to_string();
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn check_object(v: &Value) -> std::result::Result<(), String> {
    let Some(m) = v.as_object() else {
        return Err("a document must be a mapping".into());
    };
    for field in ["apiVersion", "kind"] {
        if !m.get(field).is_some_and(Value::is_string) {
            return Err(format!("`{field}` is missing or not a string"));
        }
    }
    let name = v.pointer("/metadata/name").and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        return Err("`metadata.name` is missing".into());
    }
    Ok(())
}

fn kind_of(o: &Value) -> &str {
    o.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn check_unique(objects: &[(String, Value)]) -> Result<()> {
    let mut seen: BTreeMap<(String, String, String, String), &str> = BTreeMap::new();
    for (file, o) in objects {
        let group = o
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.rsplit_once('/').map(|(g, _)| g))
            .unwrap_or("")
            .to_string();
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = (group, kind_of(o).to_string(), ns, name.clone());
        if let Some(first) = seen.insert(key, file) {
            return Err(Error::Duplicate {
                kind: kind_of(o).to_string(),
                name,
                first: first.to_string(),
                second: file.clone(),
            });
        }
    }
    Ok(())
}

/// Order of kinds in rendered output (and of apply within a phase): upstream manifests'
/// order, which is also a safe install order.
fn install_rank(kind: &str) -> (u8, u8) {
    let within = match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" => 0,
        "ClusterRole" => 1,
        "Role" => 2,
        "RoleBinding" => 3,
        "ClusterRoleBinding" => 4,
        "ConfigMap" | "Secret" => 0,
        "Service" => 1,
        "DaemonSet" | "Deployment" | "StatefulSet" => 2,
        "PodDisruptionBudget" => 3,
        _ => 4,
    };
    (phase(kind), within)
}

/// Adds kaddons' ownership labels and annotations; nothing else is changed.
fn label(o: &mut Value, addon: &Addon, profile: Profile, digest: &str) {
    let Some(obj) = o.as_object_mut() else {
        return;
    };
    let metadata = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let mut set = |field: &str, pairs: &[(&str, &str)]| {
        let entry = metadata
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Some(m) = entry.as_object_mut() {
            for (k, v) in pairs {
                m.insert((*k).to_string(), Value::String((*v).to_string()));
            }
        }
    };
    set(
        "labels",
        &[
            (labels::MANAGED_BY, labels::MANAGED_BY_VALUE),
            (labels::ADDON, &addon.def.name),
        ],
    );
    set(
        "annotations",
        &[
            (labels::VERSION, env!("CARGO_PKG_VERSION")),
            (labels::ADDON_VERSION, &addon.def.version),
            (labels::PROFILE, profile.as_str()),
            (labels::VALUES_DIGEST, digest),
        ],
    );
}

/// Multi-document YAML, `---` between objects.
pub fn to_yaml(objects: &[Value]) -> std::result::Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(o)?);
    }
    Ok(out)
}

/// A `v1` `List` of the objects, as `kubectl get -o json` prints several objects.
pub fn to_json(objects: &[Value]) -> String {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
}

/// Kinds present in a render, for summaries.
pub fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(|o| kind_of(o).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn ms() -> Addon {
        Catalog::builtin()
            .unwrap()
            .get("metrics-server")
            .unwrap()
            .clone()
    }

    #[test]
    fn generic_render_has_upstream_objects_in_upstream_order() {
        let r = render(&ms(), &Request::new(Profile::Generic)).unwrap();
        let kinds: Vec<&str> = r.objects.iter().map(kind_of).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRole",
                "RoleBinding",
                "ClusterRoleBinding",
                "ClusterRoleBinding",
                "Service",
                "Deployment",
                "APIService"
            ]
        );
    }

    #[test]
    fn every_object_is_labelled_and_annotated() {
        let r = render(&ms(), &Request::new(Profile::Kind)).unwrap();
        for o in &r.objects {
            assert_eq!(o["metadata"]["labels"][labels::MANAGED_BY], "kaddons");
            assert_eq!(o["metadata"]["labels"][labels::ADDON], "metrics-server");
            assert_eq!(o["metadata"]["annotations"][labels::PROFILE], "kind");
            assert_eq!(
                o["metadata"]["annotations"][labels::VALUES_DIGEST],
                r.digest
            );
        }
    }

    #[test]
    fn digest_changes_with_values_and_images_only() {
        let a = render(&ms(), &Request::new(Profile::Generic)).unwrap();
        let b = render(&ms(), &Request::new(Profile::Generic)).unwrap();
        assert_eq!(a.digest, b.digest);
        let mut req = Request::new(Profile::Generic);
        req.sets.push("metricResolution=30s".into());
        assert_ne!(render(&ms(), &req).unwrap().digest, a.digest);
        let mut req = Request::new(Profile::Generic);
        req.images.images.push("metrics-server=:v0.8.0".into());
        assert_ne!(render(&ms(), &req).unwrap().digest, a.digest);
    }

    #[test]
    fn layers_apply_in_order_defaults_profile_files_sets() {
        let mut req = Request::new(Profile::Kind);
        req.values_files.push((
            "a.yaml".into(),
            serde_json::json!({"metricResolution": "20s", "kubeletInsecureTLS": false}),
        ));
        req.values_files.push((
            "b.yaml".into(),
            serde_json::json!({"metricResolution": "25s"}),
        ));
        req.sets.push("metricResolution=30s".into());
        let v = effective_values(&ms(), &req).unwrap();
        assert_eq!(v["metricResolution"], "30s");
        // The file overrides the kind profile's patch.
        assert_eq!(v["kubeletInsecureTLS"], false);
    }

    #[test]
    fn values_file_errors_name_the_file() {
        let mut req = Request::new(Profile::Generic);
        req.values_files.push((
            "my-values.yaml".into(),
            serde_json::json!({"metricResolutoin": "1m"}),
        ));
        let err = render(&ms(), &req).unwrap_err().to_string();
        assert!(err.starts_with("my-values.yaml: "), "{err}");
        assert!(err.contains("did you mean \"metricResolution\""), "{err}");
    }
}
