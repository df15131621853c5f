//! Image references and the overrides users ask for: a whole registry (`--registry`), a mirror
//! preset (`--image-mirror cn`), or one image (`--image NAME=REF`).

use std::collections::BTreeMap;
use std::fmt;

use crate::catalog::{closest, did_you_mean, ImageDef, MirrorPreset, FROZEN_REGISTRY};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("--image \"{arg}\": expected NAME=REF, e.g. --image metrics-server=registry.example.com/metrics-server:v0.9.0")]
    BadOverride { arg: String },
    #[error("--image: the addon has no image \"{name}\"{}; its images: {known}", did_you_mean(.suggestion))]
    UnknownImage {
        name: String,
        suggestion: Option<String>,
        known: String,
    },
    #[error("invalid image reference \"{reference}\": {problem}")]
    BadReference { reference: String, problem: String },
}

/// A parsed image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl From<&ImageDef> for ImageRef {
    fn from(d: &ImageDef) -> Self {
        ImageRef {
            registry: d.registry.clone(),
            repository: d.repository.clone(),
            tag: Some(d.tag.clone()),
            digest: d.digest.clone(),
        }
    }
}

impl ImageRef {
    /// Parses a reference the way container runtimes do: the first path component is a
    /// registry when it has a `.` or `:` or is `localhost`; otherwise the image is on Docker Hub.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let bad = |problem: &str| ImageError::BadReference {
            reference: reference.to_string(),
            problem: problem.to_string(),
        };
        if reference.is_empty()
            || reference
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("it must be non-empty and have no spaces"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) if d.contains(':') => (r, Some(d.to_string())),
            Some(_) => return Err(bad("a digest looks like @sha256:<hex>")),
            None => (reference, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), repo.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        if repository.is_empty() || tag.as_deref() == Some("") {
            return Err(bad("the repository and tag must not be empty"));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// What the user asked to change about images.
#[derive(Debug, Clone, Default)]
pub struct ImageOverrides {
    /// `--registry`: every image of the addon comes from this registry (path prefix allowed).
    pub registry: Option<String>,
    /// `--image-mirror`: a mirror preset, already looked up.
    pub mirror: Option<(String, MirrorPreset)>,
    /// `--image NAME=REF`, in order. REF may be `:tag` or `@digest` to change only that.
    pub images: Vec<String>,
}

/// The images an addon will use, and the warnings worth showing about them.
#[derive(Debug, Clone, Default)]
pub struct ResolvedImages {
    pub images: BTreeMap<String, ImageRef>,
    pub warnings: Vec<String>,
}

pub fn resolve(
    defs: &BTreeMap<String, ImageDef>,
    overrides: &ImageOverrides,
) -> Result<ResolvedImages, ImageError> {
    let mut out = ResolvedImages::default();
    for (name, def) in defs {
        let mut image = ImageRef::from(def);
        if let Some(registry) = &overrides.registry {
            image.registry = registry.trim_end_matches('/').to_string();
        }
        if let Some((mirror_name, mirror)) = &overrides.mirror {
            match mirror.rewrites.get(&image.registry) {
                Some(prefix) => {
                    image.registry = prefix.clone();
                    if mirror.flatten {
                        if let Some(last) = image.repository.rsplit('/').next() {
                            image.repository = last.to_string();
                        }
                    }
                }
                None => out.warnings.push(format!(
                    "image {name} ({image}) is not on a registry that mirror \"{mirror_name}\" covers; left as it is"
                )),
            }
        }
        out.images.insert(name.clone(), image);
    }
    for arg in &overrides.images {
        let Some((name, reference)) = arg.split_once('=') else {
            return Err(ImageError::BadOverride { arg: arg.clone() });
        };
        let Some(image) = out.images.get_mut(name) else {
            return Err(ImageError::UnknownImage {
                name: name.to_string(),
                suggestion: closest(name, defs.keys().map(String::as_str)),
                known: defs.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        if let Some(tag) = reference.strip_prefix(':') {
            if tag.is_empty() || tag.contains(['/', '@', ':']) {
                return Err(ImageError::BadReference {
                    reference: reference.to_string(),
                    problem: "a tag-only override looks like :v1.2.3".into(),
                });
            }
            image.tag = Some(tag.to_string());
            image.digest = None;
        } else if let Some(digest) = reference.strip_prefix('@') {
            if !digest.contains(':') {
                return Err(ImageError::BadReference {
                    reference: reference.to_string(),
                    problem: "a digest-only override looks like @sha256:<hex>".into(),
                });
            }
            image.digest = Some(digest.to_string());
        } else {
            *image = ImageRef::parse(reference)?;
        }
    }
    for (name, image) in &out.images {
        if image.registry == FROZEN_REGISTRY || image.registry.starts_with("k8s.gcr.io/") {
            out.warnings.push(format!(
                "image {name} is on {FROZEN_REGISTRY}, which is frozen and misses newer images; registry.k8s.io is its successor"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> BTreeMap<String, ImageDef> {
        let mut m = BTreeMap::new();
        m.insert(
            "metrics-server".to_string(),
            ImageDef {
                registry: "registry.k8s.io".into(),
                repository: "metrics-server/metrics-server".into(),
                tag: "v0.9.0".into(),
                digest: None,
            },
        );
        m
    }

    fn cn() -> (String, MirrorPreset) {
        let mut rewrites = BTreeMap::new();
        rewrites.insert(
            "registry.k8s.io".to_string(),
            "registry.cn-hangzhou.aliyuncs.com/google_containers".to_string(),
        );
        (
            "cn".into(),
            MirrorPreset {
                description: String::new(),
                flatten: true,
                rewrites,
            },
        )
    }

    fn one(overrides: ImageOverrides) -> String {
        resolve(&defs(), &overrides).unwrap().images["metrics-server"].to_string()
    }

    #[test]
    fn defaults_are_kept() {
        assert_eq!(
            one(ImageOverrides::default()),
            "registry.k8s.io/metrics-server/metrics-server:v0.9.0"
        );
    }

    #[test]
    fn mirror_cn_flattens_into_google_containers() {
        let o = ImageOverrides {
            mirror: Some(cn()),
            ..Default::default()
        };
        assert_eq!(
            one(o),
            "registry.cn-hangzhou.aliyuncs.com/google_containers/metrics-server:v0.9.0"
        );
    }

    #[test]
    fn registry_replaces_the_registry_only() {
        let o = ImageOverrides {
            registry: Some("localhost:5000/".into()),
            ..Default::default()
        };
        assert_eq!(
            one(o),
            "localhost:5000/metrics-server/metrics-server:v0.9.0"
        );
    }

    #[test]
    fn image_override_by_full_ref_tag_or_digest() {
        let full = ImageOverrides {
            images: vec!["metrics-server=quay.io/me/ms:dev".into()],
            ..Default::default()
        };
        assert_eq!(one(full), "quay.io/me/ms:dev");
        let tag = ImageOverrides {
            images: vec!["metrics-server=:v0.8.0".into()],
            ..Default::default()
        };
        assert_eq!(
            one(tag),
            "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
        );
        let digest = ImageOverrides {
            images: vec!["metrics-server=@sha256:abc".into()],
            ..Default::default()
        };
        assert_eq!(
            one(digest),
            "registry.k8s.io/metrics-server/metrics-server:v0.9.0@sha256:abc"
        );
    }

    #[test]
    fn unknown_image_name_suggests() {
        let o = ImageOverrides {
            images: vec!["metric-server=x/y:z".into()],
            ..Default::default()
        };
        let err = resolve(&defs(), &o).unwrap_err().to_string();
        assert!(err.contains("did you mean \"metrics-server\""), "{err}");
    }

    #[test]
    fn explicit_frozen_registry_is_honoured_with_a_warning() {
        let o = ImageOverrides {
            registry: Some("k8s.gcr.io".into()),
            ..Default::default()
        };
        let r = resolve(&defs(), &o).unwrap();
        assert_eq!(r.images["metrics-server"].registry, "k8s.gcr.io");
        assert!(r.warnings.iter().any(|w| w.contains("frozen")));
    }

    #[test]
    fn parse_references() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        let r = ImageRef::parse("localhost:5000/a/b:1@sha256:ff").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.digest.as_deref(), Some("sha256:ff"));
        assert!(ImageRef::parse("a b").is_err());
        assert!(ImageRef::parse("x/y:").is_err());
    }
}
