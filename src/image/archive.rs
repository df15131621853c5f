//! A reproducible image archive, written with the `tar` crate: one uncompressed layer, an OCI
//! image config and manifest, and both indexes importers look for — `manifest.json` (the
//! docker-archive of `docker save`, which `ctr images import`, `kind load image-archive`,
//! `minikube image load` and `docker load` read) and `index.json` + `oci-layout` (an OCI image
//! layout), blobs under `blobs/sha256/` as Docker 25+ writes them.
//!
//! Same entries in, same bytes out: entries are sorted, every mtime is the fixed epoch, owners
//! are root unless an entry says otherwise, user and group names are empty, and the JSON is
//! serialised from ordered structures. So the digest names the content.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The mtime of every entry, and the image's `created`: the Unix epoch.
pub const EPOCH: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown platform \"{0}\"; use linux/amd64 or linux/arm64")]
    UnknownPlatform(String),
    #[error("image entry \"{path}\" is not a relative path without `..` (write usr/local/bin/x, not /usr/local/bin/x)")]
    BadPath { path: String },
    #[error("image entry \"{path}\" appears twice")]
    Duplicate { path: String },
    #[error("cannot write the tar stream for {what}")]
    Tar {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CPU architectures kaddons writes images for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// `linux/amd64` or `linux/arm64` (also `amd64`, `arm64`, `linux/arm64/v8`).
    pub fn parse_platform(text: &str) -> Result<Arch> {
        match text.trim() {
            "linux/amd64" | "amd64" => Ok(Arch::Amd64),
            "linux/arm64" | "linux/arm64/v8" | "arm64" => Ok(Arch::Arm64),
            other => Err(Error::UnknownPlatform(other.to_string())),
        }
    }

    /// The architecture of the machine kaddons runs on, when it is one of ours.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The OCI `architecture`.
    pub fn oci(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The OCI `variant`, where one is conventional.
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Arch::Amd64 => None,
            Arch::Arm64 => Some("v8"),
        }
    }

    /// The Rust target that builds Linux binaries for it (glibc).
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// ELF `e_machine` of its binaries.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,
            Arch::Arm64 => 183,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux/{}", self.oci())
    }
}

/// One entry of the root filesystem. Paths are relative (`usr/local/bin/x`); parent
/// directories that are not listed are added as root-owned 0755.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry::Dir {
            path: path.to_string(),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry::File {
            path: path.to_string(),
            mode,
            data,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } => path,
        }
    }
}

/// What the image runs, and as whom.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Where the archive says the image belongs: `docker.io/kaddons/metrics-server:0.1.0`.
    pub reference: String,
    pub arch: Arch,
    pub entrypoint: Vec<String>,
    /// `UID:GID`.
    pub user: String,
    /// `10250/tcp`, ...
    pub exposed_ports: Vec<String>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A written archive and the digests it names.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The tarball.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the OCI manifest: the image's digest in a registry or containerd.
    pub manifest_digest: String,
    pub config_digest: String,
    /// Of the uncompressed layer tar (also its diff_id).
    pub layer_digest: String,
    pub layer_size: u64,
}

pub fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn tar_error(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Tar {
        what: what.to_string(),
        source,
    }
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The layer: `entries` plus their missing parent directories, sorted by path, with fixed
/// metadata.
pub fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut all: BTreeMap<String, Entry> = BTreeMap::new();
    for e in entries {
        let path = e.path().trim_end_matches('/');
        if !valid_path(path) {
            return Err(Error::BadPath {
                path: e.path().to_string(),
            });
        }
        let mut e = e.clone();
        match &mut e {
            Entry::Dir { path: p, .. } | Entry::File { path: p, .. } => *p = path.to_string(),
        }
        if all.insert(path.to_string(), e).is_some() {
            return Err(Error::Duplicate {
                path: path.to_string(),
            });
        }
    }
    let paths: Vec<String> = all.keys().cloned().collect();
    for path in paths {
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            all.entry(p.to_string())
                .or_insert_with(|| Entry::dir(p, 0o755));
            parent = p;
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, entry) in &all {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(EPOCH);
        match entry {
            Entry::Dir { mode, uid, gid, .. } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_uid(*uid);
                header.set_gid(*gid);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(tar_error(path))?;
            }
            Entry::File { mode, data, .. } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_uid(0);
                header.set_gid(0);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .map_err(tar_error(path))?;
            }
        }
    }
    builder.into_inner().map_err(tar_error("the layer"))
}

fn created() -> &'static str {
    "1970-01-01T00:00:00Z"
}

/// The image config (OCI image spec, `application/vnd.oci.image.config.v1+json`).
pub fn config_json(config: &ImageConfig, layer_digest: &str) -> serde_json::Value {
    let ports: BTreeMap<&str, serde_json::Value> = config
        .exposed_ports
        .iter()
        .map(|p| (p.as_str(), json!({})))
        .collect();
    let mut value = json!({
        "architecture": config.arch.oci(),
        "os": "linux",
        "created": created(),
        "config": {
            "User": config.user,
            "ExposedPorts": ports,
            "Env": config.env,
            "Entrypoint": config.entrypoint,
            "WorkingDir": "/",
            "Labels": config.labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": created(), "created_by": "kaddons image build"}],
    });
    if let (Some(variant), Some(obj)) = (config.arch.variant(), value.as_object_mut()) {
        obj.insert("variant".into(), json!(variant));
    }
    value
}

#[derive(Serialize)]
struct DockerManifest<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: [&'a str; 1],
    #[serde(rename = "Layers")]
    layers: [String; 1],
}

/// The tag of a reference (`...:0.1.0` → `0.1.0`), for `org.opencontainers.image.ref.name`.
fn tag_of(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag,
        _ => "latest",
    }
}

/// The OCI manifest of a one-layer image.
pub fn manifest_json(config: &[u8], layer: &[u8]) -> serde_json::Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": MEDIA_TYPE_LAYER, "digest": sha256(layer), "size": layer.len()}],
    })
}

/// Writes the archive: layer, config and manifest blobs, `index.json`, `manifest.json` and
/// `oci-layout`.
pub fn write(config: &ImageConfig, entries: &[Entry]) -> Result<Archive> {
    let layer = layer_tar(entries)?;
    let layer_digest = sha256(&layer);
    let config_bytes = to_json(&config_json(config, &layer_digest));
    let config_digest = sha256(&config_bytes);
    let manifest_bytes = to_json(&manifest_json(&config_bytes, &layer));
    let manifest_digest = sha256(&manifest_bytes);

    let mut platform = json!({"architecture": config.arch.oci(), "os": "linux"});
    if let (Some(variant), Some(obj)) = (config.arch.variant(), platform.as_object_mut()) {
        obj.insert("variant".into(), json!(variant));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [{
            "mediaType": MEDIA_TYPE_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {
                "io.containerd.image.name": config.reference,
                "org.opencontainers.image.ref.name": tag_of(&config.reference),
            },
            "platform": platform,
        }],
    });
    let blob = |d: &str| format!("blobs/sha256/{}", hex(d));
    let docker = [DockerManifest {
        config: blob(&config_digest),
        repo_tags: [&config.reference],
        layers: [blob(&layer_digest)],
    }];
    let index_bytes = to_json(&index);
    let docker_bytes = to_json(&docker);

    // Blobs first (sorted by digest), then the indexes, as `docker save` orders them.
    let mut blobs = [
        (blob(&layer_digest), &layer),
        (blob(&config_digest), &config_bytes),
        (blob(&manifest_digest), &manifest_bytes),
    ];
    blobs.sort();
    let mut files: Vec<(String, &[u8])> = blobs
        .iter()
        .map(|(p, d)| (p.clone(), d.as_slice()))
        .collect();
    files.push(("index.json".into(), &index_bytes));
    files.push(("manifest.json".into(), &docker_bytes));
    files.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#));

    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for dir in ["blobs", "blobs/sha256"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_mtime(EPOCH);
        header.set_size(0);
        builder
            .append_data(&mut header, format!("{dir}/"), std::io::empty())
            .map_err(tar_error(dir))?;
    }
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(EPOCH);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, &path, data)
            .map_err(tar_error(&path))?;
    }
    let bytes = builder.into_inner().map_err(tar_error("the archive"))?;
    Ok(Archive {
        bytes,
        manifest_digest,
        config_digest,
        layer_digest,
        layer_size: layer.len() as u64,
    })
}

/// The archive's JSON documents are maps with string keys and plain values, which always
/// serialise.
fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ImageConfig {
        ImageConfig {
            reference: "docker.io/kaddons/metrics-server:0.1.0".into(),
            arch: Arch::Amd64,
            entrypoint: vec!["/bin/x".into()],
            user: "65532:65532".into(),
            exposed_ports: vec!["10250/tcp".into()],
            env: vec![],
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn parents_are_added_and_paths_checked() {
        let layer = layer_tar(&[Entry::file("usr/local/bin/x", 0o755, b"x".to_vec())]).unwrap();
        let mut a = tar::Archive::new(layer.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            ["usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/x"]
        );
        assert!(matches!(
            layer_tar(&[Entry::dir("/tmp", 0o1777)]),
            Err(Error::BadPath { .. })
        ));
        assert!(matches!(
            layer_tar(&[Entry::dir("a/../b", 0o755)]),
            Err(Error::BadPath { .. })
        ));
        assert!(matches!(
            layer_tar(&[Entry::dir("tmp", 0o1777), Entry::dir("tmp/", 0o755)]),
            Err(Error::Duplicate { .. })
        ));
    }

    #[test]
    fn same_input_same_bytes() {
        let entries = [Entry::file("a", 0o644, b"1".to_vec())];
        let one = write(&config(), &entries).unwrap();
        let two = write(&config(), &entries).unwrap();
        assert_eq!(one.bytes, two.bytes);
        assert_eq!(one.manifest_digest, two.manifest_digest);
        let other = write(&config(), &[Entry::file("a", 0o644, b"2".to_vec())]).unwrap();
        assert_ne!(one.manifest_digest, other.manifest_digest);
    }

    #[test]
    fn platforms() {
        assert_eq!(Arch::parse_platform("linux/arm64").unwrap(), Arch::Arm64);
        assert_eq!(Arch::parse_platform("amd64").unwrap(), Arch::Amd64);
        assert!(Arch::parse_platform("linux/riscv64").is_err());
        assert_eq!(tag_of("docker.io/kaddons/metrics-server:0.1.0"), "0.1.0");
        assert_eq!(tag_of("localhost:5000/x"), "latest");
    }
}
