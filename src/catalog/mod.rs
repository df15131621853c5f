//! The addon catalog: addon definitions (`addons/<name>/addon.yaml`), their templates
//! (`templates/<name>/*.yaml.hbs`) and registry mirror presets (`addons/mirrors.yaml`).
//!
//! The catalog is data. It is embedded in the binary so that kaddons works offline, and an
//! extra catalog with the same layout can be loaded from a directory (`--addons-dir`) to add
//! or override addons without rebuilding. Loading validates everything that can be checked
//! without rendering, so that a broken addon.yaml is reported with its file and field.

pub mod labels;
pub mod schema;
pub mod values;
pub mod versions;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};
use serde_json::Value;

static EMBEDDED_ADDONS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/addons");
static EMBEDDED_TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The registry that Kubernetes froze in 2023; nothing in the catalog may point at it.
pub const FROZEN_REGISTRY: &str = "k8s.gcr.io";

/// Errors found while loading a catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}: field `{field}`: {problem}")]
    Invalid {
        path: String,
        field: String,
        problem: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a kaddons catalog (expected an `addons/` directory, with `templates/` beside it)")]
    NotACatalog { path: String },
    #[error("unknown addon \"{name}\"{}; run `kaddons list` to see the catalog", did_you_mean(.suggestion))]
    UnknownAddon {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unknown image mirror \"{name}\"{}; known mirrors: {known}", did_you_mean(.suggestion))]
    UnknownMirror {
        name: String,
        suggestion: Option<String>,
        known: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats an optional suggestion as ` (did you mean "x"?)`.
pub fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean \"{s}\"?)"),
        None => String::new(),
    }
}

/// The closest candidate to `input`, if any is close enough to be a plausible typo: a
/// different case, at most one edit per four characters (at least one), or a high
/// Jaro-Winkler similarity (which catches dropped letters in long names).
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lower = input.to_ascii_lowercase();
    let max_edits = (lower.chars().count() / 4).max(1);
    let mut best: Option<(usize, f64, &str)> = None;
    for candidate in candidates {
        let c = candidate.to_ascii_lowercase();
        if c == lower {
            return Some(candidate.to_string());
        }
        let edits = strsim::damerau_levenshtein(&lower, &c);
        let similarity = strsim::jaro_winkler(&lower, &c);
        if edits > max_edits && similarity < 0.85 {
            continue;
        }
        let better = best.is_none_or(|(e, s, _)| edits < e || (edits == e && similarity > s));
        if better {
            best = Some((edits, similarity, candidate));
        }
    }
    best.map(|(_, _, c)| c.to_string())
}

/// Apply phase of a kind: 0 namespaces and CRDs; 1 service accounts and RBAC; 2 services and
/// workloads; 3 APIServices, last, so that discovery never points at a service that does not
/// exist yet. Rendering orders its output by it and enabling applies in this order.
pub fn phase(kind: &str) -> u8 {
    match kind {
        "Namespace" | "CustomResourceDefinition" => 0,
        "ServiceAccount" | "ClusterRole" | "Role" | "RoleBinding" | "ClusterRoleBinding" => 1,
        "APIService" => 3,
        _ => 2,
    }
}

/// The kinds of cluster an addon can be adapted to. `generic` is upstream's defaults; every
/// other profile is a local distribution, detected by [`crate::profile`] from the kubeconfig
/// and the cluster's nodes, and described per addon in its `profiles:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    Generic,
    Minikube,
    Kind,
    Kubeadm,
    K3s,
    K3d,
    DockerDesktop,
    RancherDesktop,
    Orbstack,
    Colima,
    Microk8s,
}

impl Profile {
    pub const ALL: [Profile; 11] = [
        Profile::Generic,
        Profile::Minikube,
        Profile::Kind,
        Profile::Kubeadm,
        Profile::K3s,
        Profile::K3d,
        Profile::DockerDesktop,
        Profile::RancherDesktop,
        Profile::Orbstack,
        Profile::Colima,
        Profile::Microk8s,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::Minikube => "minikube",
            Profile::Kind => "kind",
            Profile::Kubeadm => "kubeadm",
            Profile::K3s => "k3s",
            Profile::K3d => "k3d",
            Profile::DockerDesktop => "docker-desktop",
            Profile::RancherDesktop => "rancher-desktop",
            Profile::Orbstack => "orbstack",
            Profile::Colima => "colima",
            Profile::Microk8s => "microk8s",
        }
    }

    /// The profile of that name (as written in addon.yaml, `--profile` and the config file).
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `addons/<name>/addon.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddonDef {
    pub name: String,
    /// The addon's own version: changes when its templates or defaults change.
    pub version: String,
    pub description: String,
    pub upstream: Upstream,
    pub maintainer: String,
    pub docs: String,
    pub namespace: String,
    /// APIServices the addon registers (enabling it needs the aggregation layer).
    #[serde(default)]
    pub api_services: Vec<String>,
    /// A GET path that must list at least one item before the addon counts as working
    /// (metrics-server: its node metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_check: Option<String>,
    pub images: BTreeMap<String, ImageDef>,
    /// Default values; a mapping.
    pub values: Value,
    /// Top-level value keys whose contents are free-form Kubernetes structures.
    #[serde(default)]
    pub freeform: Vec<String>,
    /// Value keys (dotted) restricted to a list of strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub choices: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub profiles: BTreeMap<Profile, ProfileOverlay>,
    /// Upstream releases kaddons can install, each with the Kubernetes versions it supports.
    /// Absent: one release, `upstream.version`, for any Kubernetes version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<versions::VersionDef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub project: String,
    pub version: String,
}

/// An image as registry, repository and tag (and optionally a digest), kept apart so that
/// registries can be swapped without touching templates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileOverlay {
    pub description: String,
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// What a user of this distribution needs to know that no value can change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// The distribution installs this addon itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundled: Option<Bundled>,
}

/// One documented change a profile makes to the default values.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub reason: String,
    /// Where the reason is documented: the distribution's docs, code or issue tracker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub values: Value,
}

/// A fact about a distribution that matters for an addon but is not a value.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub text: String,
    pub source: String,
}

/// A distribution's own copy of an addon: who manages it and how to turn it off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bundled {
    pub manager: String,
    /// Installed on every new cluster (k3s), rather than on request (minikube's addons).
    pub by_default: bool,
    pub turn_off: String,
    pub source: String,
}

/// A registry mirror preset from `addons/mirrors.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPreset {
    pub description: String,
    /// Keep only the last path component of the repository.
    #[serde(default)]
    pub flatten: bool,
    /// Source registry -> mirror prefix.
    pub rewrites: BTreeMap<String, String>,
}

/// Where an addon came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin,
    Dir(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin => f.write_str("builtin"),
            Source::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One template file of an addon.
#[derive(Debug, Clone)]
pub struct TemplateFile {
    /// File name, e.g. `deployment.yaml.hbs`.
    pub name: String,
    pub source: String,
}

/// A loaded, validated addon, at one of its upstream versions (the newest unless
/// [`Addon::at`] chose another). `def` holds the values, images and versions of that release.
#[derive(Debug, Clone)]
pub struct Addon {
    pub def: AddonDef,
    /// Sorted by file name.
    pub templates: Vec<TemplateFile>,
    pub source: Source,
    /// Newest first; never empty.
    versions: Vec<versions::VersionDef>,
    /// Index into `versions` of the release `def` describes.
    selected: usize,
    /// `def` at the newest release, which [`Addon::at`] starts from.
    newest: Box<AddonDef>,
    /// `addons/<name>/values.schema.yaml`, when the addon has one.
    pub values_schema: Option<std::sync::Arc<schema::ValuesSchema>>,
}

impl Addon {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The upstream releases, newest first.
    pub fn versions(&self) -> &[versions::VersionDef] {
        &self.versions
    }

    /// The release this addon renders.
    pub fn version(&self) -> &versions::VersionDef {
        &self.versions[self.selected]
    }

    /// The addon at release `index` of [`Addon::versions`]: its image tags, its defaults and
    /// its template features. What the releases share stays as written once in addon.yaml.
    pub fn at(&self, index: usize) -> Addon {
        let mut def = (*self.newest).clone();
        let v = &self.versions[index.min(self.versions.len() - 1)];
        def.upstream.version = v.upstream.clone();
        def.version = v.addon_version.clone();
        for (name, tag) in &v.images {
            if let Some(image) = def.images.get_mut(name) {
                image.tag = tag.clone();
            }
        }
        if v.values.is_object() {
            values::merge(&mut def.values, &v.values);
        }
        Addon {
            def,
            templates: self.templates.clone(),
            source: self.source.clone(),
            versions: self.versions.clone(),
            selected: index.min(self.versions.len() - 1),
            newest: self.newest.clone(),
            values_schema: self.values_schema.clone(),
        }
    }

    /// The upstream version an applied addon version (the `addon-version` annotation) stands
    /// for, when it is one of this addon's releases.
    pub fn upstream_of(&self, addon_version: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.addon_version == addon_version)
            .map(|v| v.upstream.as_str())
    }

    /// The overlay for `profile`; an addon without one gets no patches.
    pub fn profile(&self, profile: Profile) -> Option<&ProfileOverlay> {
        self.def.profiles.get(&profile)
    }

    /// Default values with the profile's patches applied.
    pub fn profile_values(&self, profile: Profile) -> Value {
        let mut v = self.def.values.clone();
        if let Some(overlay) = self.profile(profile) {
            for patch in &overlay.patches {
                values::merge(&mut v, &patch.values);
            }
        }
        v
    }

    /// Every (apiVersion, kind) the addon's templates can produce, whatever the values: read
    /// from the templates' top-level `apiVersion:`/`kind:` lines. Pruning and disabling look
    /// for objects of exactly these kinds.
    pub fn declared_kinds(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for t in &self.templates {
            let mut api_version: Option<&str> = None;
            for line in t.source.lines() {
                if let Some(v) = line.strip_prefix("apiVersion:") {
                    api_version = Some(v.trim());
                } else if let (Some(k), Some(v)) = (line.strip_prefix("kind:"), api_version) {
                    let pair = (v.to_string(), k.trim().to_string());
                    if !out.contains(&pair) {
                        out.push(pair);
                    }
                    api_version = None;
                }
            }
        }
        out
    }

    /// Checks a tree of values (one layer, or all of them) against the values schema.
    pub fn check_constraints(&self, values: &Value) -> Result<(), values::ValuesError> {
        match &self.values_schema {
            Some(s) => s
                .check(values)
                .map_err(|v| values::ValuesError::Constraint {
                    key: v.key,
                    value: v.value,
                    rule: v.rule,
                }),
            None => Ok(()),
        }
    }

    pub fn schema(&self) -> values::Schema<'_> {
        values::Schema {
            defaults: &self.def.values,
            freeform: &self.def.freeform,
            choices: &self.def.choices,
        }
    }
}

/// Every addon and mirror preset kaddons knows about.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    addons: BTreeMap<String, Addon>,
    mirrors: BTreeMap<String, MirrorPreset>,
}

/// Read access to a catalog tree, embedded or on disk.
trait Tree {
    fn label(&self, rel: &str) -> String;
    fn read(&self, rel: &str) -> Result<Option<String>>;
    /// Names of subdirectories of `rel`.
    fn dirs(&self, rel: &str) -> Result<Vec<String>>;
    /// Names of files in `rel`.
    fn files(&self, rel: &str) -> Result<Vec<String>>;
}

struct Embedded;

impl Tree for Embedded {
    fn label(&self, rel: &str) -> String {
        format!("(builtin) {rel}")
    }
    fn read(&self, rel: &str) -> Result<Option<String>> {
        let (root, rest) = split_root(rel);
        let dir = if root == "addons" {
            &EMBEDDED_ADDONS
        } else {
            &EMBEDDED_TEMPLATES
        };
        Ok(dir
            .get_file(rest)
            .and_then(|f| f.contents_utf8())
            .map(str::to_string))
    }
    fn dirs(&self, rel: &str) -> Result<Vec<String>> {
        let (root, rest) = split_root(rel);
        let top = if root == "addons" {
            &EMBEDDED_ADDONS
        } else {
            &EMBEDDED_TEMPLATES
        };
        let dir = if rest.is_empty() {
            Some(top)
        } else {
            top.get_dir(rest)
        };
        Ok(dir
            .map(|d| {
                d.dirs()
                    .filter_map(|s| s.path().file_name()?.to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
    fn files(&self, rel: &str) -> Result<Vec<String>> {
        let (root, rest) = split_root(rel);
        let top = if root == "addons" {
            &EMBEDDED_ADDONS
        } else {
            &EMBEDDED_TEMPLATES
        };
        Ok(top
            .get_dir(rest)
            .map(|d| {
                d.files()
                    .filter_map(|f| f.path().file_name()?.to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn split_root(rel: &str) -> (&str, &str) {
    match rel.split_once('/') {
        Some((root, rest)) => (root, rest),
        None => (rel, ""),
    }
}

struct OnDisk<'a>(&'a Path);

impl OnDisk<'_> {
    fn list(&self, rel: &str, want_dirs: bool) -> Result<Vec<String>> {
        let path = self.0.join(rel);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            let is_dir = entry.path().is_dir();
            if is_dir == want_dirs {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    }
}

impl Tree for OnDisk<'_> {
    fn label(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
    fn read(&self, rel: &str) -> Result<Option<String>> {
        let path = self.0.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
    fn dirs(&self, rel: &str) -> Result<Vec<String>> {
        self.list(rel, true)
    }
    fn files(&self, rel: &str) -> Result<Vec<String>> {
        self.list(rel, false)
    }
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> Result<Self> {
        let mut catalog = Catalog::default();
        catalog.load(&Embedded, &Source::Builtin)?;
        Ok(catalog)
    }

    /// Adds the addons (and mirror presets) of a catalog directory laid out like the built-in
    /// one (`DIR/addons/<name>/addon.yaml`, `DIR/templates/<name>/`). An addon with the name
    /// of one already loaded replaces it.
    pub fn add_dir(&mut self, dir: &Path) -> Result<()> {
        if !dir.join("addons").is_dir() {
            return Err(Error::NotACatalog {
                path: dir.display().to_string(),
            });
        }
        self.load(&OnDisk(dir), &Source::Dir(dir.to_path_buf()))
    }

    fn load(&mut self, tree: &dyn Tree, source: &Source) -> Result<()> {
        if let Some(text) = tree.read("addons/mirrors.yaml")? {
            let label = tree.label("addons/mirrors.yaml");
            let mirrors: BTreeMap<String, MirrorPreset> =
                serde_yaml::from_str(&text).map_err(|source| Error::Parse {
                    path: label,
                    source,
                })?;
            self.mirrors.extend(mirrors);
        }
        let mut names = tree.dirs("addons")?;
        names.sort();
        for dir_name in names {
            let rel = format!("addons/{dir_name}/addon.yaml");
            let label = tree.label(&rel);
            let Some(text) = tree.read(&rel)? else {
                continue;
            };
            let def: AddonDef = serde_yaml::from_str(&text).map_err(|source| Error::Parse {
                path: label.clone(),
                source,
            })?;
            let mut files = tree.files(&format!("templates/{dir_name}"))?;
            files.retain(|f| f.ends_with(".yaml.hbs"));
            files.sort();
            let mut templates = Vec::new();
            for name in files {
                let rel = format!("templates/{dir_name}/{name}");
                let source = tree.read(&rel)?.unwrap_or_default();
                templates.push(TemplateFile { name, source });
            }
            let schema_rel = format!("addons/{dir_name}/values.schema.yaml");
            let values_schema = match tree.read(&schema_rel)? {
                None => None,
                Some(text) => {
                    let schema_label = tree.label(&schema_rel);
                    let raw: Value =
                        serde_yaml::from_str(&text).map_err(|source| Error::Parse {
                            path: schema_label.clone(),
                            source,
                        })?;
                    let compiled =
                        schema::ValuesSchema::compile(&raw).map_err(|problem| Error::Invalid {
                            path: schema_label,
                            field: "(schema)".into(),
                            problem,
                        })?;
                    Some(std::sync::Arc::new(compiled))
                }
            };
            let versions = sorted_versions(&def);
            let addon = Addon {
                newest: Box::new(def.clone()),
                def,
                templates,
                source: source.clone(),
                versions,
                selected: 0,
                values_schema,
            };
            validate(
                &addon,
                &dir_name,
                &label,
                &tree.label(&format!("templates/{dir_name}")),
            )?;
            validate_versions(&addon, &label)?;
            self.addons.insert(dir_name, addon);
        }
        Ok(())
    }

    pub fn addons(&self) -> impl Iterator<Item = &Addon> {
        self.addons.values()
    }

    pub fn get(&self, name: &str) -> Result<&Addon> {
        self.addons.get(name).ok_or_else(|| Error::UnknownAddon {
            name: name.to_string(),
            suggestion: closest(name, self.addons.keys().map(String::as_str)),
        })
    }

    pub fn mirrors(&self) -> &BTreeMap<String, MirrorPreset> {
        &self.mirrors
    }

    pub fn mirror(&self, name: &str) -> Result<&MirrorPreset> {
        self.mirrors.get(name).ok_or_else(|| Error::UnknownMirror {
            name: name.to_string(),
            suggestion: closest(name, self.mirrors.keys().map(String::as_str)),
            known: self.mirrors.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// The addon's releases newest first; one for `upstream.version`, supporting any Kubernetes,
/// when addon.yaml lists none.
fn sorted_versions(def: &AddonDef) -> Vec<versions::VersionDef> {
    let mut list = def.versions.clone();
    if list.is_empty() {
        list.push(versions::VersionDef {
            upstream: def.upstream.version.clone(),
            addon_version: def.version.clone(),
            kubernetes: versions::KubeVersion::new(1, 0),
            source: String::new(),
            images: BTreeMap::new(),
            values: Value::Null,
            features: BTreeMap::new(),
        });
    }
    list.sort_by(|a, b| versions::compare_upstream(&b.upstream, &a.upstream));
    list
}

/// The releases: the newest is the one `upstream`, `version` and `images` describe; every
/// release names the same features, only known images and only known values.
fn validate_versions(addon: &Addon, label: &str) -> Result<()> {
    let invalid = |field: String, problem: String| Error::Invalid {
        path: label.to_string(),
        field,
        problem,
    };
    let def = &addon.newest;
    if def.versions.is_empty() {
        return Ok(());
    }
    let newest = &addon.versions[0];
    if newest.upstream != def.upstream.version || newest.addon_version != def.version {
        return Err(invalid(
            "versions".into(),
            format!(
                "the newest release is {} (addon version {}), but `upstream.version` is {} and `version` is {}; they must describe the newest",
                newest.upstream, newest.addon_version, def.upstream.version, def.version
            ),
        ));
    }
    let features: Vec<&String> = newest.features.keys().collect();
    for (i, v) in addon.versions.iter().enumerate() {
        let field = format!(
            "versions[{}]",
            def.versions
                .iter()
                .position(|d| d.upstream == v.upstream)
                .unwrap_or(i)
        );
        if addon.versions[..i].iter().any(|o| o.upstream == v.upstream) {
            return Err(invalid(field, format!("{} is listed twice", v.upstream)));
        }
        if v.features.keys().collect::<Vec<_>>() != features {
            return Err(invalid(
                format!("{field}.features"),
                format!(
                    "{} names features {:?}, the newest names {:?}; every release must name the same ones",
                    v.upstream,
                    v.features.keys().collect::<Vec<_>>(),
                    features
                ),
            ));
        }
        for name in v.images.keys() {
            if !def.images.contains_key(name) {
                return Err(invalid(
                    format!("{field}.images.{name}"),
                    "is not an image of `images`".into(),
                ));
            }
        }
        if !v.values.is_null() {
            addon
                .schema()
                .check(&v.values)
                .map_err(|e| invalid(format!("{field}.values"), e.to_string()))?;
        }
    }
    // Every release's defaults, with every profile, obey the values schema.
    for i in 0..addon.versions.len() {
        let at = addon.at(i);
        for profile in Profile::ALL {
            at.check_constraints(&at.profile_values(profile))
                .map_err(|e| {
                    invalid(
                        "values".into(),
                        format!("{} with profile {profile}: {e}", at.def.upstream.version),
                    )
                })?;
        }
    }
    Ok(())
}

/// Checks what serde cannot: names, registries, and that every profile patch only sets keys
/// that exist, with the types of their defaults.
fn validate(addon: &Addon, dir_name: &str, label: &str, templates_label: &str) -> Result<()> {
    let invalid = |field: &str, problem: String| Error::Invalid {
        path: label.to_string(),
        field: field.to_string(),
        problem,
    };
    let def = &addon.def;
    if def.name != dir_name {
        return Err(invalid(
            "name",
            format!(
                "is \"{}\" but the directory is \"{dir_name}\"; they must match",
                def.name
            ),
        ));
    }
    if !def.values.is_object() {
        return Err(invalid(
            "values",
            "must be a mapping of value names to defaults".into(),
        ));
    }
    for key in &def.freeform {
        if def.values.get(key).is_none() {
            return Err(invalid(
                "freeform",
                format!("names \"{key}\", which is not a key of `values`"),
            ));
        }
    }
    for (name, image) in &def.images {
        if image.registry == FROZEN_REGISTRY {
            return Err(invalid(
                &format!("images.{name}.registry"),
                format!(
                    "{FROZEN_REGISTRY} is frozen and serves no new images; use registry.k8s.io"
                ),
            ));
        }
        if image.registry.is_empty() || image.repository.is_empty() || image.tag.is_empty() {
            return Err(invalid(
                &format!("images.{name}"),
                "registry, repository and tag must not be empty".into(),
            ));
        }
    }
    let schema = addon.schema();
    schema
        .check_choices(&def.values)
        .map_err(|e| invalid("values", e.to_string()))?;
    for (profile, overlay) in &def.profiles {
        for (i, patch) in overlay.patches.iter().enumerate() {
            let field = format!("profiles.{profile}.patches[{i}].values");
            if patch.reason.trim().is_empty() {
                return Err(invalid(
                    &format!("profiles.{profile}.patches[{i}].reason"),
                    "every patch must say why it exists".into(),
                ));
            }
            schema
                .check(&patch.values)
                .and_then(|()| schema.check_choices(&addon.profile_values(*profile)))
                .map_err(|e| invalid(&field, e.to_string()))?;
        }
    }
    if addon.templates.is_empty() {
        return Err(Error::Invalid {
            path: templates_label.to_string(),
            field: "templates".into(),
            problem: "no *.yaml.hbs templates for this addon".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads_and_has_metrics_server() {
        let catalog = Catalog::builtin().unwrap();
        let ms = catalog.get("metrics-server").unwrap();
        assert_eq!(ms.def.upstream.version, "v0.9.0");
        assert!(ms.templates.len() >= 7);
        assert!(catalog.mirror("cn").is_ok());
    }

    #[test]
    fn every_profile_patch_has_a_reason_and_every_profile_is_described() {
        let catalog = Catalog::builtin().unwrap();
        for addon in catalog.addons() {
            for (profile, overlay) in &addon.def.profiles {
                assert!(
                    !overlay.description.is_empty(),
                    "{} {profile}",
                    addon.name()
                );
                for patch in &overlay.patches {
                    assert!(patch.reason.len() > 20, "{} {profile}", addon.name());
                }
            }
        }
    }

    #[test]
    fn phases_put_apiservices_last() {
        assert!(phase("APIService") > phase("Deployment"));
        assert!(phase("Deployment") > phase("ClusterRole"));
        assert!(phase("ClusterRole") > phase("Namespace"));
    }

    #[test]
    fn declared_kinds_include_conditional_templates() {
        let catalog = Catalog::builtin().unwrap();
        let kinds = catalog.get("metrics-server").unwrap().declared_kinds();
        assert!(kinds.contains(&("policy/v1".into(), "PodDisruptionBudget".into())));
        assert!(kinds.contains(&("apiregistration.k8s.io/v1".into(), "APIService".into())));
        assert_eq!(kinds.len(), 8, "{kinds:?}");
    }

    #[test]
    fn no_builtin_image_uses_the_frozen_registry() {
        let catalog = Catalog::builtin().unwrap();
        for addon in catalog.addons() {
            for image in addon.def.images.values() {
                assert_ne!(image.registry, FROZEN_REGISTRY);
            }
        }
    }

    #[test]
    fn unknown_addon_suggests_the_closest_name() {
        let catalog = Catalog::builtin().unwrap();
        let err = catalog.get("metric-server").unwrap_err().to_string();
        assert!(err.contains("did you mean \"metrics-server\""), "{err}");
        let err = catalog.get("zzzz").unwrap_err().to_string();
        assert!(!err.contains("did you mean"), "{err}");
        assert_eq!(closest("cm", ["cn", "eu"]), Some("cn".into()));
        assert_eq!(closest("ab", ["cd"]), None);
        assert_eq!(
            closest("metrcs-srv", ["metrics-server"]),
            Some("metrics-server".into())
        );
    }

    #[test]
    fn unknown_mirror_lists_the_known_ones() {
        let catalog = Catalog::builtin().unwrap();
        let err = catalog.mirror("CN").unwrap_err().to_string();
        assert!(err.contains("did you mean \"cn\""), "{err}");
    }

    fn write_catalog(dir: &Path, addon_yaml: &str) {
        std::fs::create_dir_all(dir.join("addons/demo")).unwrap();
        std::fs::create_dir_all(dir.join("templates/demo")).unwrap();
        std::fs::write(dir.join("addons/demo/addon.yaml"), addon_yaml).unwrap();
        std::fs::write(
            dir.join("templates/demo/configmap.yaml.hbs"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n",
        )
        .unwrap();
    }

    const DEMO: &str = "name: demo\nversion: '1'\ndescription: d\nupstream: {project: p, version: v1}\nmaintainer: m\ndocs: https://example.invalid\nnamespace: default\nimages: {}\nvalues: {a: 1}\n";

    #[test]
    fn a_directory_catalog_adds_addons() {
        let tmp = tempfile::tempdir().unwrap();
        write_catalog(tmp.path(), DEMO);
        let mut catalog = Catalog::builtin().unwrap();
        catalog.add_dir(tmp.path()).unwrap();
        assert!(catalog.get("demo").is_ok());
        assert!(catalog.get("metrics-server").is_ok());
        assert_eq!(
            catalog.get("demo").unwrap().source,
            Source::Dir(tmp.path().to_path_buf())
        );
    }

    #[test]
    fn a_broken_addon_yaml_names_the_file_and_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        write_catalog(tmp.path(), &DEMO.replace("maintainer", "maintainr"));
        let err = Catalog::default()
            .add_dir(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("addons/demo/addon.yaml"), "{err}");
        assert!(err.contains("maintainr"), "{err}");
    }

    #[test]
    fn a_profile_patch_with_an_unknown_key_is_rejected_at_load() {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = format!("{DEMO}profiles:\n  kind:\n    description: k\n    patches:\n      - reason: because of a documented reason\n        values: {{b: 2}}\n");
        write_catalog(tmp.path(), &yaml);
        let err = Catalog::default()
            .add_dir(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("profiles.kind.patches[0].values"), "{err}");
        assert!(err.contains("\"b\""), "{err}");
    }

    #[test]
    fn a_frozen_registry_in_the_catalog_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = DEMO.replace(
            "images: {}",
            "images: {x: {registry: k8s.gcr.io, repository: a/b, tag: v1}}",
        );
        write_catalog(tmp.path(), &yaml);
        let err = Catalog::default()
            .add_dir(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("images.x.registry"), "{err}");
    }

    #[test]
    fn a_directory_without_addons_is_not_a_catalog() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Catalog::default()
            .add_dir(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a kaddons catalog"), "{err}");
    }
}
