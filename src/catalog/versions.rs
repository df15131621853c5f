//! Upstream versions of an addon and the Kubernetes versions each supports, and the choice of
//! one for a cluster.
//!
//! An addon's `versions:` list is data (addon.yaml): per upstream release, the oldest
//! Kubernetes minor it supports, its image tags, the defaults it changes and the template
//! features it has. Templates are shared; they test `version.features.NAME`. Choosing is a
//! pure function of the list, the cluster's Kubernetes version (from `/version` or
//! `--kube-version`) and an optional pin (`--addon-version`, `version:` in an AddonSet entry).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{closest, did_you_mean};

/// One upstream release of an addon.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VersionDef {
    /// The upstream (application) version, e.g. `v0.8.1`.
    pub upstream: String,
    /// kaddons' own version of the addon at this upstream version (the `addon-version`
    /// annotation of what it applies).
    pub addon_version: String,
    /// The oldest Kubernetes minor this release supports (upstream's compatibility matrix).
    pub kubernetes: KubeVersion,
    /// Where the matrix comes from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Image name -> tag at this release.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Defaults this release changes (e.g. v0.6.4 serves on 4443).
    #[serde(default, skip_serializing_if = "is_empty_object")]
    pub values: Value,
    /// Template features of this release: every version names the same features.
    #[serde(default)]
    pub features: BTreeMap<String, bool>,
}

fn is_empty_object(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|m| m.is_empty())
}

/// A Kubernetes `major.minor`, as `/version` reports it (`minor` may read `34+` on managed
/// clusters) or as a user writes it (`1.34`, `v1.34.4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl KubeVersion {
    pub fn new(major: u32, minor: u32) -> Self {
        KubeVersion { major, minor }
    }

    /// `1.34`, `v1.34`, `v1.34.4`, `1.34.4+k3s1`, `1.34+`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError::BadKubeVersion {
            text: text.to_string(),
        };
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let mut parts = t.split('.');
        let digits = |s: Option<&str>| -> Option<u32> {
            let s = s?;
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            if end == 0 {
                return None;
            }
            s[..end].parse().ok()
        };
        let major = digits(parts.next()).ok_or_else(bad)?;
        let minor = digits(parts.next()).ok_or_else(bad)?;
        Ok(KubeVersion { major, minor })
    }

    /// From the `major` and `minor` fields of `/version` (falling back to `gitVersion`).
    pub fn from_info(major: &str, minor: &str, git_version: &str) -> Result<Self, VersionError> {
        KubeVersion::parse(&format!("{major}.{minor}")).or_else(|_| KubeVersion::parse(git_version))
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for KubeVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KubeVersion::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("\"{text}\" is not a Kubernetes version; write MAJOR.MINOR, e.g. 1.31")]
    BadKubeVersion { text: String },
    #[error("{addon} has no version \"{pin}\"{}; its versions: {known}", did_you_mean(.suggestion))]
    UnknownVersion {
        addon: String,
        pin: String,
        suggestion: Option<String>,
        known: String,
    },
    #[error("the cluster runs Kubernetes {cluster} ({from}), but {addon} needs Kubernetes {oldest} or newer (its versions support: {matrix}); upgrade the cluster, or pass --addon-version with --force to install anyway")]
    ClusterTooOld {
        addon: String,
        cluster: KubeVersion,
        from: String,
        oldest: KubeVersion,
        matrix: String,
    },
    #[error("{addon} {pin} needs Kubernetes {needs} or newer, but the cluster runs {cluster} ({from}); pick a version that supports it ({matrix}), or pass --force to install {pin} anyway")]
    PinUnsupported {
        addon: String,
        pin: String,
        needs: KubeVersion,
        cluster: KubeVersion,
        from: String,
        matrix: String,
    },
}

/// Where the Kubernetes version came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    pub version: KubeVersion,
    /// `the cluster's /version`, `--kube-version`.
    pub from: String,
}

/// The version chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Index into the addon's versions (newest first).
    pub index: usize,
    pub upstream: String,
    /// A sentence: "newest supporting Kubernetes 1.31 (the cluster's /version)".
    pub why: String,
    /// Set when the choice was forced outside the supported range.
    pub warning: Option<String>,
}

/// Compares `v0.10.0` and `v0.9.0` as versions, not text.
pub fn compare_upstream(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// `0.9.x: 1.34+, 0.8.x: 1.31+, ...` for messages and `info`.
pub fn matrix(versions: &[VersionDef]) -> String {
    versions
        .iter()
        .map(|v| format!("{}: Kubernetes {}+", v.upstream, v.kubernetes))
        .collect::<Vec<_>>()
        .join(", ")
}

fn same_version(pin: &str, upstream: &str) -> bool {
    pin.trim_start_matches('v') == upstream.trim_start_matches('v')
}

/// Chooses one of `versions` (newest first): the pin when given (checked against the target
/// unless `force`), else the newest that supports the target, else (no target) the newest.
pub fn choose(
    addon: &str,
    versions: &[VersionDef],
    target: Option<&KubeTarget>,
    pin: Option<&str>,
    force: bool,
) -> Result<Choice, VersionError> {
    let matrix = matrix(versions);
    if let Some(pin) = pin {
        let Some(index) = versions.iter().position(|v| same_version(pin, &v.upstream)) else {
            return Err(VersionError::UnknownVersion {
                addon: addon.to_string(),
                pin: pin.to_string(),
                suggestion: closest(pin, versions.iter().map(|v| v.upstream.as_str())),
                known: versions
                    .iter()
                    .map(|v| v.upstream.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let v = &versions[index];
        let mut warning = None;
        if let Some(t) = target {
            if t.version < v.kubernetes {
                if !force {
                    return Err(VersionError::PinUnsupported {
                        addon: addon.to_string(),
                        pin: v.upstream.clone(),
                        needs: v.kubernetes,
                        cluster: t.version,
                        from: t.from.clone(),
                        matrix,
                    });
                }
                warning = Some(format!(
                    "{addon} {} needs Kubernetes {} or newer and the cluster runs {}; installing it anyway (--force)",
                    v.upstream, v.kubernetes, t.version
                ));
            }
        }
        return Ok(Choice {
            index,
            upstream: v.upstream.clone(),
            why: "pinned with --addon-version".into(),
            warning,
        });
    }
    let Some(t) = target else {
        return Ok(Choice {
            index: 0,
            upstream: versions[0].upstream.clone(),
            why: "newest; no Kubernetes version known (pass --kube-version to choose for one)"
                .into(),
            warning: None,
        });
    };
    if let Some(index) = versions.iter().position(|v| v.kubernetes <= t.version) {
        return Ok(Choice {
            index,
            upstream: versions[index].upstream.clone(),
            why: format!("newest supporting Kubernetes {} ({})", t.version, t.from),
            warning: None,
        });
    }
    let oldest = versions
        .iter()
        .map(|v| v.kubernetes)
        .min()
        .unwrap_or(t.version);
    Err(VersionError::ClusterTooOld {
        addon: addon.to_string(),
        cluster: t.version,
        from: t.from.clone(),
        oldest,
        matrix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(upstream: &str, minor: u32) -> VersionDef {
        VersionDef {
            upstream: upstream.into(),
            addon_version: format!("{upstream}-k.1"),
            kubernetes: KubeVersion::new(1, minor),
            source: String::new(),
            images: BTreeMap::new(),
            values: Value::Null,
            features: BTreeMap::new(),
        }
    }

    fn list() -> Vec<VersionDef> {
        vec![
            v("v0.9.0", 34),
            v("v0.8.1", 31),
            v("v0.7.2", 27),
            v("v0.6.4", 25),
        ]
    }

    fn target(minor: u32) -> KubeTarget {
        KubeTarget {
            version: KubeVersion::new(1, minor),
            from: "test".into(),
        }
    }

    #[test]
    fn parses_the_spellings_of_kubernetes_versions() {
        for (text, minor) in [
            ("1.31", 31),
            ("v1.34.4", 34),
            ("1.30.2+k3s1", 30),
            ("1.29+", 29),
        ] {
            assert_eq!(
                KubeVersion::parse(text).unwrap(),
                KubeVersion::new(1, minor),
                "{text}"
            );
        }
        assert!(KubeVersion::parse("banana").is_err());
        assert!(KubeVersion::parse("1").is_err());
        assert_eq!(
            KubeVersion::from_info("1", "33+", "v1.33.1-eks").unwrap(),
            KubeVersion::new(1, 33)
        );
    }

    #[test]
    fn each_boundary_chooses_the_newest_supporting_version() {
        let cases = [
            (25, "v0.6.4"),
            (26, "v0.6.4"),
            (27, "v0.7.2"),
            (30, "v0.7.2"),
            (31, "v0.8.1"),
            (33, "v0.8.1"),
            (34, "v0.9.0"),
            (36, "v0.9.0"),
        ];
        for (minor, want) in cases {
            let c = choose("ms", &list(), Some(&target(minor)), None, false).unwrap();
            assert_eq!(c.upstream, want, "1.{minor}");
        }
        let err = choose("ms", &list(), Some(&target(24)), None, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs Kubernetes 1.25 or newer"), "{err}");
        assert_eq!(
            choose("ms", &list(), None, None, false).unwrap().upstream,
            "v0.9.0"
        );
    }

    #[test]
    fn a_pin_outside_the_range_needs_force() {
        let err = choose("ms", &list(), Some(&target(30)), Some("v0.9.0"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("v0.9.0 needs Kubernetes 1.34"), "{err}");
        assert!(err.contains("--force"), "{err}");
        let c = choose("ms", &list(), Some(&target(30)), Some("0.9.0"), true).unwrap();
        assert_eq!(c.upstream, "v0.9.0");
        assert!(c.warning.is_some());
        let c = choose("ms", &list(), Some(&target(34)), Some("v0.6.4"), false).unwrap();
        assert_eq!(c.index, 3);
        let err = choose("ms", &list(), None, Some("v0.8.0"), false).unwrap_err();
        assert!(err.to_string().contains("v0.9.0, v0.8.1"), "{err}");
    }

    #[test]
    fn upstream_versions_compare_numerically() {
        assert_eq!(compare_upstream("v0.10.0", "v0.9.0"), Ordering::Greater);
        assert_eq!(compare_upstream("v0.6.4", "v0.7.2"), Ordering::Less);
    }
}
