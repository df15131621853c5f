//! The bootstrap file of `kaddons apply -f addons.yaml`: which addons a cluster should have,
//! each with its profile, values and image source.
//!
//! A file in git says what a dev cluster looks like, so that recreating it is one command and
//! re-running that command changes nothing. This module holds the schema (strict: a misspelt
//! field is an error naming its line, an unknown addon gets the closest name), the plan (which
//! addons are enabled, re-applied or pruned, from their state in the cluster) and its execution
//! through the same library calls as `kaddons enable` and `kaddons disable`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{self, closest, did_you_mean, versions, Catalog, Profile};
use crate::cluster::apply::{self, ApplyError, EnableOptions, ObjectChange};
use crate::cluster::client::Connection;
use crate::cluster::status::{addon_status, State};
use crate::config::ProfileChoice;
use crate::render::{self, ImageOverrides, Request};

pub const API_VERSION: &str = "kaddons.io/v1alpha1";
pub const KIND: &str = "AddonSet";

#[derive(Debug, thiserror::Error)]
pub enum AddonSetError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad YAML or a field the schema does not have; serde_yaml's message names the field
    /// path (`addons[0]`) and the line and column.
    #[error("{path}: {source}")]
    Syntax {
        path: String,
        line: Option<usize>,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}:{line}: {field} is \"{found}\"; expected \"{expected}\"")]
    Header {
        path: String,
        line: usize,
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("{}: unknown addon \"{name}\"{}; run `kaddons list` to see the catalog", place(.path, .index, .line, "name"), did_you_mean(.suggestion))]
    UnknownAddon {
        path: String,
        index: usize,
        line: Option<usize>,
        name: String,
        suggestion: Option<String>,
    },
    #[error("{}: addon \"{name}\" is already listed as addons[{first}]; list each addon once", place(.path, .index, .line, "name"))]
    Duplicate {
        path: String,
        index: usize,
        line: Option<usize>,
        name: String,
        first: usize,
    },
    #[error("{}: {problem}", place(.path, .index, .line, .field))]
    Invalid {
        path: String,
        index: usize,
        line: Option<usize>,
        field: String,
        problem: String,
    },
}

/// `file:line: addons[i].field` (the line when it could be found).
fn place(path: &str, index: &usize, line: &Option<usize>, field: &str) -> String {
    match line {
        Some(l) => format!("{path}:{l}: addons[{index}].{field}"),
        None => format!("{path}: addons[{index}].{field}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    #[error("cannot render addon {addon}: {source}")]
    Render {
        addon: String,
        // Boxed: render errors are large and this enum is returned on every path.
        #[source]
        source: Box<render::Error>,
    },
    #[error("{place}: {source}")]
    Version {
        /// `file addons[i].version` (or `.name` when the entry pins nothing).
        place: String,
        /// Boxed: this enum travels through every `?`.
        #[source]
        source: Box<crate::catalog::versions::VersionError>,
    },
    #[error("{addon}: {source}")]
    Apply {
        addon: String,
        /// Boxed: an apply error is large, and this enum travels through every `?`.
        #[source]
        source: Box<ApplyError>,
    },
}

/// The file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddonSet {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub addons: Vec<Entry>,
}

/// One addon and how to configure it: the same choices as `kaddons enable` flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    /// Absent: the default profile (`--profile`, `KADDONS_PROFILE`, the config file, else auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileChoice>,
    /// Pins the addon's upstream version (`--addon-version`); absent: the newest that supports
    /// the cluster's Kubernetes version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Values, like the content of a `--values` file.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub set: serde_json::Map<String, Value>,
    /// A mirror preset (`--image-mirror`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_mirror: Option<String>,
    /// Every image from this registry (`--registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Image NAME -> REF, `:TAG` or `@DIGEST` (`--image NAME=REF`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
}

/// Defaults for what an entry leaves out (resolved from flags, environment and config file).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub profile: ProfileChoice,
    pub image_mirror: Option<String>,
    pub registry: Option<String>,
}

/// A checked file: every name in the catalog, each once, every mirror known.
#[derive(Debug, Clone)]
pub struct Checked {
    pub path: String,
    pub set: AddonSet,
}

/// The 1-based line of the `occurrence`-th (0-based) `name: <name>` in the text, the best
/// available pointer to an entry (serde_yaml keeps no positions after parsing).
fn name_line(text: &str, name: &str, occurrence: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start().trim_start_matches('-').trim_start();
            let Some(rest) = l.strip_prefix("name:") else {
                return false;
            };
            let v = rest.split(" #").next().unwrap_or("").trim();
            v.trim_matches(|c| c == '"' || c == '\'') == name
        })
        .nth(occurrence)
        .map(|(i, _)| i + 1)
}

/// The line of the first top-level `key:`.
fn top_key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(&format!("{key}:")))
        .map_or(1, |i| i + 1)
}

impl Checked {
    /// Reads and checks a file.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<Self, AddonSetError> {
        let text = std::fs::read_to_string(path).map_err(|source| AddonSetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Checked::parse(&text, &path.display().to_string(), catalog)
    }

    /// Parses and checks a file's text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str, catalog: &Catalog) -> Result<Self, AddonSetError> {
        let set: AddonSet = serde_yaml::from_str(text).map_err(|source| AddonSetError::Syntax {
            path: path.to_string(),
            line: source.location().map(|l| l.line()),
            source,
        })?;
        for (field, found, expected) in [
            ("apiVersion", &set.api_version, API_VERSION),
            ("kind", &set.kind, KIND),
        ] {
            if found != expected {
                return Err(AddonSetError::Header {
                    path: path.to_string(),
                    line: top_key_line(text, field),
                    field,
                    found: found.clone(),
                    expected,
                });
            }
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, e) in set.addons.iter().enumerate() {
            let occurrence = set.addons[..index]
                .iter()
                .filter(|o| o.name == e.name)
                .count();
            let line = name_line(text, &e.name, occurrence);
            let invalid = |field: &str, problem: String| AddonSetError::Invalid {
                path: path.to_string(),
                index,
                line,
                field: field.to_string(),
                problem,
            };
            let known: Vec<&str> = catalog.addons().map(|a| a.name()).collect();
            if !known.contains(&e.name.as_str()) {
                return Err(AddonSetError::UnknownAddon {
                    path: path.to_string(),
                    index,
                    line,
                    name: e.name.clone(),
                    suggestion: closest(&e.name, known),
                });
            }
            if let Some(first) = seen.insert(&e.name, index) {
                return Err(AddonSetError::Duplicate {
                    path: path.to_string(),
                    index,
                    line,
                    name: e.name.clone(),
                    first,
                });
            }
            if e.image_mirror.is_some() && e.registry.is_some() {
                return Err(invalid(
                    "registry",
                    "registry and imageMirror both choose where images come from; set only one"
                        .into(),
                ));
            }
            if let Some(m) = &e.image_mirror {
                catalog
                    .mirror(m)
                    .map_err(|err| invalid("imageMirror", err.to_string()))?;
            }
            if let Some(v) = &e.version {
                let addon = catalog
                    .get(&e.name)
                    .map_err(|err| invalid("name", err.to_string()))?;
                crate::catalog::versions::choose(&e.name, addon.versions(), None, Some(v), false)
                    .map_err(|err| invalid("version", err.to_string()))?;
            }
        }
        Ok(Checked {
            path: path.to_string(),
            set,
        })
    }

    /// The render request for entry `index`: its own choices over `defaults`, its `set` as a
    /// values layer named after the file.
    pub fn request(
        &self,
        catalog: &Catalog,
        index: usize,
        defaults: &Defaults,
        detected: Profile,
    ) -> Result<Request, ExecError> {
        let e = &self.set.addons[index];
        let choice = e.profile.unwrap_or(defaults.profile);
        let mut req = Request::new(choice.explicit().unwrap_or(detected));
        if !e.set.is_empty() {
            req.values_files.push((
                format!("{} addons[{index}].set", self.path),
                Value::Object(e.set.clone()),
            ));
        }
        // The entry's image source replaces the default one as a whole: a default mirror must
        // not combine with the entry's registry.
        let (mirror, registry) = if e.image_mirror.is_some() || e.registry.is_some() {
            (e.image_mirror.clone(), e.registry.clone())
        } else {
            (defaults.image_mirror.clone(), defaults.registry.clone())
        };
        req.images = ImageOverrides {
            registry,
            mirror: match mirror {
                Some(name) => Some((name.clone(), catalog.mirror(&name)?.clone())),
                None => None,
            },
            images: e.images.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        };
        Ok(req)
    }
}

/// What happens to one addon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Listed, not in the cluster (or installed by something else: enabling needs --force).
    Enable,
    /// Listed and already enabled by kaddons: re-applied (usually no change).
    Update,
    /// Enabled by kaddons, not listed, and --prune given.
    Prune,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Enable => "enable",
            Action::Update => "update",
            Action::Prune => "prune",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub addon: String,
    pub action: Action,
    /// The state the plan was made from.
    pub state: State,
    /// Index into the file's `addons` (none for prunes).
    #[serde(skip)]
    pub entry: Option<usize>,
}

/// Listed addons in file order, then prunes in catalog order.
pub fn plan(set: &AddonSet, states: &BTreeMap<String, State>, prune: bool) -> Vec<Step> {
    let state = |name: &str| states.get(name).copied().unwrap_or(State::Disabled);
    let mut steps: Vec<Step> = set
        .addons
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let s = state(&e.name);
            Step {
                addon: e.name.clone(),
                action: match s {
                    State::Enabled | State::Degraded => Action::Update,
                    State::Disabled | State::Unmanaged => Action::Enable,
                },
                state: s,
                entry: Some(i),
            }
        })
        .collect();
    if prune {
        let listed: BTreeSet<&str> = set.addons.iter().map(|e| e.name.as_str()).collect();
        for (name, s) in states {
            // Only what kaddons manages: an install by helm or minikube is never pruned.
            if !listed.contains(name.as_str()) && matches!(s, State::Enabled | State::Degraded) {
                steps.push(Step {
                    addon: name.clone(),
                    action: Action::Prune,
                    state: *s,
                    entry: None,
                });
            }
        }
    }
    steps
}

/// The state of every addon in the catalog.
pub async fn current_states(
    conn: &Connection,
    catalog: &Catalog,
) -> Result<BTreeMap<String, State>, ExecError> {
    let mut states = BTreeMap::new();
    for addon in catalog.addons() {
        // Object names do not depend on the profile; the generic render tells what to look for.
        let expected = render::render(addon, &Request::new(Profile::Generic))
            .map_err(|source| ExecError::Render {
                addon: addon.name().to_string(),
                source: Box::new(source),
            })?
            .objects;
        let status = addon_status(conn, addon, &expected)
            .await
            .map_err(|source| ExecError::Apply {
                addon: addon.name().to_string(),
                source: Box::new(source),
            })?;
        states.insert(addon.name().to_string(), status.state);
    }
    Ok(states)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    pub dry_run: bool,
    /// Take over objects another installer created (as `enable --force`), and install a
    /// pinned version the cluster is too old for.
    pub force: bool,
    /// The cluster's Kubernetes version (`/version`): each addon gets its newest version that
    /// supports it. `None`: the newest.
    pub kube: Option<crate::catalog::versions::KubeVersion>,
}

/// What was done to one addon, object by object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonResult {
    pub addon: String,
    pub action: Action,
    /// The upstream version applied (none for prunes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The profile rendered with (none for prunes).
    pub profile: Option<Profile>,
    pub changes: Vec<ObjectChange>,
    /// Rendering notices (e.g. a frozen registry asked for explicitly).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The applied objects, to wait for (empty for prunes).
    #[serde(skip)]
    pub objects: Vec<Value>,
    /// The deleted objects, to wait until they are gone.
    #[serde(skip)]
    pub deleted: Vec<Value>,
}

impl AddonResult {
    /// True when nothing in the cluster changed (or would change) for this addon.
    pub fn unchanged(&self) -> bool {
        self.changes
            .iter()
            .all(|c| c.change == apply::Change::Unchanged)
    }
}

/// Executes `steps` in order: each listed addon rendered and applied as `kaddons enable`
/// does (server-side apply in phases, with its own pruning), then each prune as
/// `kaddons disable`. Stops at the first error; what was applied before it stays applied, and
/// running again continues from there.
pub async fn execute(
    conn: &Connection,
    catalog: &Catalog,
    file: &Checked,
    steps: &[Step],
    defaults: &Defaults,
    detected: Profile,
    opts: ExecOptions,
) -> Result<Vec<AddonResult>, ExecError> {
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        let addon = catalog.get(&step.addon)?;
        let apply_err = |source| ExecError::Apply {
            addon: step.addon.clone(),
            source: Box::new(source),
        };
        match step.entry {
            Some(index) => {
                let pin = file.set.addons[index].version.as_deref();
                let target = opts.kube.map(|version| versions::KubeTarget {
                    version,
                    from: "the cluster's /version".into(),
                });
                let choice = versions::choose(
                    addon.name(),
                    addon.versions(),
                    target.as_ref(),
                    pin,
                    opts.force,
                )
                .map_err(|source| ExecError::Version {
                    place: format!(
                        "{} addons[{index}].{}",
                        file.path,
                        if pin.is_some() { "version" } else { "name" }
                    ),
                    source: Box::new(source),
                })?;
                let addon = &addon.at(choice.index);
                let req = file.request(catalog, index, defaults, detected)?;
                let mut rendered =
                    render::render(addon, &req).map_err(|source| ExecError::Render {
                        addon: step.addon.clone(),
                        source: Box::new(source),
                    })?;
                let bundled = addon.profile(req.profile).and_then(|o| o.bundled.as_ref());
                let report = apply::enable(
                    conn,
                    addon,
                    &rendered.objects,
                    EnableOptions {
                        force: opts.force,
                        dry_run: opts.dry_run,
                    },
                )
                .await
                .map_err(|e| apply_err(e.with_bundled(req.profile.as_str(), bundled)))?;
                rendered.warnings.extend(choice.warning);
                results.push(AddonResult {
                    addon: step.addon.clone(),
                    action: step.action,
                    version: Some(choice.upstream),
                    profile: Some(rendered.profile),
                    changes: report.changes,
                    warnings: rendered.warnings,
                    objects: rendered.objects,
                    deleted: report.deleted,
                });
            }
            None => {
                let report = apply::disable(conn, addon, opts.dry_run)
                    .await
                    .map_err(apply_err)?;
                results.push(AddonResult {
                    addon: step.addon.clone(),
                    action: step.action,
                    version: None,
                    profile: None,
                    changes: report.changes,
                    warnings: Vec::new(),
                    objects: Vec::new(),
                    deleted: report.deleted,
                });
            }
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    const GOOD: &str = "apiVersion: kaddons.io/v1alpha1\nkind: AddonSet\naddons:\n  - name: metrics-server\n    profile: kind\n    set: {kubeletInsecureTLS: true}\n    imageMirror: cn\n";

    #[test]
    fn parses_the_documented_example() {
        let c = Checked::parse(GOOD, "a.yaml", &catalog()).unwrap();
        let e = &c.set.addons[0];
        assert_eq!(e.profile, Some(ProfileChoice::Named(Profile::Kind)));
        assert_eq!(e.set["kubeletInsecureTLS"], Value::Bool(true));
        let req = c
            .request(&catalog(), 0, &Defaults::default(), Profile::Generic)
            .unwrap();
        assert_eq!(req.profile, Profile::Kind);
        assert_eq!(req.values_files[0].0, "a.yaml addons[0].set");
        assert!(req.images.mirror.is_some());
    }

    #[test]
    fn a_pinned_version_must_be_one_of_the_addons() {
        let text = "apiVersion: kaddons.io/v1alpha1\nkind: AddonSet\naddons:\n  - name: metrics-server\n    version: v0.8.0\n";
        let err = Checked::parse(text, "a.yaml", &catalog())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.yaml:4: addons[0].version"), "{err}");
        assert!(err.contains("did you mean \"v0.8.1\""), "{err}");
        let ok = text.replace("v0.8.0", "v0.6.4");
        let c = Checked::parse(&ok, "a.yaml", &catalog()).unwrap();
        assert_eq!(c.set.addons[0].version.as_deref(), Some("v0.6.4"));
    }

    #[test]
    fn unknown_field_names_its_line() {
        let text = GOOD.replace("    set:", "    sett:");
        let e = Checked::parse(&text, "a.yaml", &catalog()).unwrap_err();
        assert!(
            matches!(e, AddonSetError::Syntax { line: Some(6), .. }),
            "{e}"
        );
        assert!(e.to_string().contains("sett"), "{e}");
    }

    #[test]
    fn unknown_addon_names_line_and_suggests() {
        let text = GOOD.replace("name: metrics-server", "name: metrics-srever");
        let e = Checked::parse(&text, "a.yaml", &catalog()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("a.yaml:4: addons[0].name"), "{msg}");
        assert!(msg.contains("did you mean \"metrics-server\""), "{msg}");
    }

    #[test]
    fn header_duplicates_and_mirrors_are_checked() {
        let e = Checked::parse(&GOOD.replace("AddonSet", "AddonList"), "a.yaml", &catalog())
            .unwrap_err();
        assert!(e.to_string().starts_with("a.yaml:2: kind"), "{e}");
        let dup = format!("{GOOD}  - name: metrics-server\n");
        let e = Checked::parse(&dup, "a.yaml", &catalog()).unwrap_err();
        assert!(e.to_string().starts_with("a.yaml:8: addons[1].name"), "{e}");
        let e = Checked::parse(&GOOD.replace(": cn", ": cm"), "a.yaml", &catalog()).unwrap_err();
        assert!(e.to_string().contains("did you mean \"cn\""), "{e}");
    }

    #[test]
    fn entry_image_source_replaces_the_default_one() {
        let text = GOOD.replace("imageMirror: cn", "registry: localhost:5000");
        let c = Checked::parse(&text, "a.yaml", &catalog()).unwrap();
        let defaults = Defaults {
            image_mirror: Some("cn".into()),
            profile: ProfileChoice::Named(Profile::Minikube),
            ..Defaults::default()
        };
        let req = c
            .request(&catalog(), 0, &defaults, Profile::Generic)
            .unwrap();
        assert!(req.images.mirror.is_none());
        assert_eq!(req.images.registry.as_deref(), Some("localhost:5000"));
    }

    #[test]
    fn plan_enables_updates_and_prunes_only_managed() {
        let set = AddonSet {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            addons: vec![
                Entry {
                    name: "a".into(),
                    ..Entry::default()
                },
                Entry {
                    name: "b".into(),
                    ..Entry::default()
                },
            ],
        };
        let states: BTreeMap<String, State> = [
            ("a", State::Disabled),
            ("b", State::Enabled),
            ("c", State::Degraded),
            ("d", State::Unmanaged),
            ("e", State::Disabled),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let actions = |steps: Vec<Step>| -> Vec<(String, Action)> {
            steps.into_iter().map(|s| (s.addon, s.action)).collect()
        };
        assert_eq!(
            actions(plan(&set, &states, false)),
            [("a".into(), Action::Enable), ("b".into(), Action::Update)]
        );
        assert_eq!(
            actions(plan(&set, &states, true)),
            [
                ("a".into(), Action::Enable),
                ("b".into(), Action::Update),
                ("c".into(), Action::Prune)
            ]
        );
    }
}
