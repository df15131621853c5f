//! `kaddons image build|load`, and the image pre-flight of `enable`: images without Docker,
//! put where the nodes can use them, and no image left to chance before applying.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::Node;
use kaddons::catalog::Profile;
use kaddons::cluster::client::Connection;
use kaddons::image::registry::{self, Lookup, Registries};
use kaddons::image::{archive, nodes, rootfs, Arch};
use kaddons::render::{ImageRef, Rendered};
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::cli::{GlobalArgs, ImageBuildArgs, ImageCommand, ImageLoadArgs, OutputFormat};
use crate::printer::Printer;

use super::{detect_profile, load_catalog, structured, ExitStatus};

/// The archive `image build` writes when no --out is given.
pub const DEFAULT_ARCHIVE: &str = "kaddons-metrics-server.tar";

pub async fn run(
    global: &GlobalArgs,
    cmd: &ImageCommand,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    match cmd {
        ImageCommand::Build(args) => build(global, args, printer),
        ImageCommand::Load(args) => load(global, args, printer).await,
    }
}

/// The image `implementation=builtin` renders, from the catalog.
fn builtin_reference(global: &GlobalArgs) -> anyhow::Result<String> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get("metrics-server")?;
    let def = addon.def.images.get("builtin").context(
        "the metrics-server addon of the catalog has no image \"builtin\" (images.builtin in addons/metrics-server/addon.yaml)",
    )?;
    Ok(ImageRef::from(def).to_string())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Built {
    file: String,
    image: String,
    platform: String,
    digest: String,
    config: String,
    layer: String,
    size: u64,
}

fn build(
    global: &GlobalArgs,
    args: &ImageBuildArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let arch = match &args.platform {
        Some(p) => Arch::parse_platform(p).context("--platform")?,
        None => Arch::host().context(
            "this machine is neither amd64 nor arm64; pass --platform linux/amd64|linux/arm64 and --binary",
        )?,
    };
    let reference = builtin_reference(global)?;
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => cargo_build(arch, printer)?,
    };
    let (config, entries) =
        rootfs::metrics_server(&binary, arch, &reference, &args.ca_certificates)
            .with_context(|| format!("building the {arch} image of {}", binary.display()))?;
    let written = archive::write(&config, &entries).context("writing the image archive")?;
    write_atomically(&args.out, &written.bytes)?;
    let built = Built {
        file: args.out.display().to_string(),
        image: reference.clone(),
        platform: arch.to_string(),
        digest: written.manifest_digest.clone(),
        config: written.config_digest.clone(),
        layer: written.layer_digest.clone(),
        size: written.bytes.len() as u64,
    };
    match global.output {
        OutputFormat::Text => printer.data(&format!(
            "{} {} {} {}\n",
            built.file, built.image, built.platform, built.digest
        ))?,
        format => printer.data(&structured(format, &built)?)?,
    }
    printer.status(&format!(
        "wrote {} ({} MiB): {reference} for {arch}; next: kaddons image load {} --into kind[=CLUSTER]|minikube[=PROFILE]|containerd",
        args.out.display(),
        written.bytes.len() / (1 << 20),
        args.out.display()
    ));
    Ok(ExitStatus::Success)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tar.partial");
    std::fs::write(&tmp, bytes)
        .with_context(|| format!("cannot write the image archive to {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to --out {}", tmp.display(), path.display()))
}

/// The kaddons source checkout this binary was built from, when it is still there.
fn source_checkout() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    root.join("crates/metrics-server/Cargo.toml")
        .is_file()
        .then_some(root)
}

/// `cargo build --release --locked -p kaddons-metrics-server` in the source checkout
/// (progress on stderr); the path of the binary cargo reports.
fn cargo_build(arch: Arch, printer: &Printer) -> anyhow::Result<PathBuf> {
    let how = "pass --binary PATH (a release build of kaddons-metrics-server, e.g. from `cargo build --release -p kaddons-metrics-server` in a kaddons checkout), or run kaddons from its source checkout with cargo installed";
    if Arch::host() != Some(arch) {
        bail!(
            "building a {arch} image needs a statically linked {arch} binary, which this machine does not build by itself: in a kaddons checkout run `rustup target add {t}` (plus a linker for it), `cargo build --release -p kaddons-metrics-server --target {t}`, then pass --binary target/{t}/release/kaddons-metrics-server",
            t = match arch {
                Arch::Amd64 => "x86_64-unknown-linux-musl",
                Arch::Arm64 => "aarch64-unknown-linux-musl",
            }
        );
    }
    let Some(checkout) = source_checkout() else {
        bail!(
            "no kaddons-metrics-server binary: kaddons was not run from a source checkout ({} is gone); {how}",
            env!("CARGO_MANIFEST_DIR")
        );
    };
    let cargo = which::which("cargo").map_err(|_| {
        anyhow::anyhow!(
            "no kaddons-metrics-server binary: `cargo` is not on PATH to build it in {}; {how}",
            checkout.display()
        )
    })?;
    printer.status(&format!(
        "building kaddons-metrics-server: cargo build --release --locked -p kaddons-metrics-server (in {})",
        checkout.display()
    ));
    let out = Command::new(&cargo)
        .current_dir(&checkout)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "kaddons-metrics-server",
            "--bin",
            "kaddons-metrics-server",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", cargo.display()))?;
    if !out.status.success() {
        bail!(
            "cargo build --release --locked -p kaddons-metrics-server failed in {} ({}); its errors are above; {how}",
            checkout.display(),
            out.status
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact" && m["target"]["name"] == "kaddons-metrics-server"
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| {
            format!("cargo built kaddons-metrics-server but reported no executable; {how}")
        })
}

/// Where `image load` puts an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Kind(String),
    Minikube(String),
    /// A k3d cluster (`k3d image import`).
    K3d(String),
    Containerd,
}

impl Target {
    pub fn parse(text: &str) -> anyhow::Result<Target> {
        let (tool, name) = match text.split_once('=') {
            Some((t, n)) => (t, Some(n.to_string()).filter(|n| !n.is_empty())),
            None => (text, None),
        };
        Ok(match tool {
            "kind" => Target::Kind(name.unwrap_or_else(|| "kind".into())),
            "minikube" => Target::Minikube(name.unwrap_or_else(|| "minikube".into())),
            // k3d's default cluster name.
            "k3d" => Target::K3d(name.unwrap_or_else(|| "k3s-default".into())),
            "containerd" | "ctr" if name.is_none() => Target::Containerd,
            _ => bail!(
                "--into \"{text}\": expected kind[=CLUSTER], minikube[=PROFILE], k3d[=CLUSTER] or containerd"
            ),
        })
    }

    /// The target that fits the kubeconfig context: kind's contexts are `kind-CLUSTER`,
    /// k3d's `k3d-CLUSTER`, minikube's are named after the profile.
    pub fn for_context(profile: Profile, context: &str) -> Option<Target> {
        match profile {
            Profile::Kind => Some(Target::Kind(
                context.strip_prefix("kind-").unwrap_or(context).to_string(),
            )),
            Profile::Minikube => Some(Target::Minikube(context.to_string())),
            Profile::K3d => Some(Target::K3d(
                context.strip_prefix("k3d-").unwrap_or(context).to_string(),
            )),
            _ => None,
        }
    }

    /// `--into` spelling.
    pub fn flag(&self) -> String {
        match self {
            Target::Kind(c) => format!("kind={c}"),
            Target::Minikube(p) => format!("minikube={p}"),
            Target::K3d(c) => format!("k3d={c}"),
            Target::Containerd => "containerd".into(),
        }
    }

    /// Tool, its arguments, and how to install it.
    fn command(&self, file: &Path) -> (&'static str, Vec<String>, &'static str) {
        let file = file.display().to_string();
        match self {
            Target::Kind(c) => (
                "kind",
                vec!["load".into(), "image-archive".into(), file, "--name".into(), c.clone()],
                "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or `go install sigs.k8s.io/kind@latest`)",
            ),
            Target::Minikube(p) => (
                "minikube",
                vec!["image".into(), "load".into(), file, "-p".into(), p.clone()],
                "install minikube: https://minikube.sigs.k8s.io/docs/start/",
            ),
            Target::K3d(c) => (
                "k3d",
                vec!["image".into(), "import".into(), file, "--cluster".into(), c.clone()],
                "install k3d: https://k3d.io/#installation",
            ),
            Target::Containerd => (
                "ctr",
                vec!["-n".into(), "k8s.io".into(), "images".into(), "import".into(), file],
                "ctr ships with containerd (`apt-get install containerd`); run it on the node, as a user that may open the containerd socket (usually root)",
            ),
        }
    }
}

async fn load(
    global: &GlobalArgs,
    args: &ImageLoadArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    if !args.file.is_file() {
        bail!(
            "image archive {} does not exist; write it with `kaddons image build metrics-server --out {}`",
            args.file.display(),
            args.file.display()
        );
    }
    let target = match &args.into {
        Some(text) => Target::parse(text)?,
        None => {
            let detected = detect_profile(global, None).await?;
            let context = detected.context.as_ref().map(|c| c.context.clone());
            match context
                .as_deref()
                .and_then(|c| Target::for_context(detected.detection.profile, c))
            {
                Some(t) => {
                    printer.status(&format!(
                        "loading into {} (profile {} of context {}; override with --into)",
                        t.flag(),
                        detected.detection.profile,
                        context.unwrap_or_default()
                    ));
                    t
                }
                None => bail!(
                    "cannot tell where to load {}: the context is not a kind or minikube cluster (profile {}); pass --into kind=CLUSTER, --into minikube=PROFILE or --into containerd (on the node)",
                    args.file.display(),
                    detected.detection.profile
                ),
            }
        }
    };
    let (tool, tool_args, install) = target.command(&args.file);
    let path = which::which(tool).map_err(|_| {
        anyhow::anyhow!(
            "`{tool}` is not on PATH, and --into {} runs `{tool} {}`; {install}",
            target.flag(),
            tool_args.join(" ")
        )
    })?;
    printer.status(&format!("running {tool} {}", tool_args.join(" ")));
    let status = Command::new(&path)
        .args(&tool_args)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {}", path.display()))?;
    if !status.success() {
        bail!(
            "`{tool} {}` failed ({status}); its output is above",
            tool_args.join(" ")
        );
    }
    printer.status(&format!(
        "loaded {} into {}",
        args.file.display(),
        target.flag()
    ));
    Ok(ExitStatus::Success)
}

/// One image of the render that the nodes cannot get.
struct Missing {
    name: String,
    image: String,
    presence: nodes::Presence,
    lookup: Option<Lookup>,
    problem: Option<String>,
}

/// The image pre-flight of `enable`: every image of the render is on every node, or in its
/// registry; otherwise an error (exit 2) that names each missing image, what its registry
/// answered, and the fix. Nothing is applied before it passes.
pub async fn preflight(
    conn: &Connection,
    rendered: &Rendered,
    profile: Profile,
    printer: &Printer,
) -> anyhow::Result<()> {
    let images = nodes::images_of(&rendered.objects);
    if images.is_empty() {
        return Ok(());
    }
    let names: BTreeMap<&str, &str> = rendered
        .images
        .iter()
        .map(|(k, v)| (v.as_str(), k.as_str()))
        .collect();
    let node_list: Vec<Node> = match conn
        .call(Api::<Node>::all(conn.client.clone()).list(&ListParams::default()))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            printer.warn(&format!(
                "image check: cannot list nodes ({e}); checking registries only"
            ));
            Vec::new()
        }
    };
    let registries = Registries::new(registry::DEFAULT_TIMEOUT)
        .context("image check (skip it with --skip-image-check)")?;
    let checks = images.iter().map(|image| {
        let name = names
            .get(image.as_str())
            .copied()
            .unwrap_or(image)
            .to_string();
        let registries = registries.clone();
        let nodes_ref = &node_list;
        async move {
            let parsed = match ImageRef::parse(image) {
                Ok(p) => p,
                Err(e) => {
                    return Some(Missing {
                        name,
                        image: image.clone(),
                        presence: nodes::Presence::default(),
                        lookup: None,
                        problem: Some(e.to_string()),
                    })
                }
            };
            let presence = nodes::presence(&parsed, nodes_ref);
            if presence.everywhere() {
                printer.debug(&format!("image {name}: {image} is on every node"));
                return None;
            }
            let lookup = registries.lookup(&parsed).await;
            if lookup.found() {
                printer.debug(&format!("image {name}: {image}: {lookup}"));
                return None;
            }
            Some(Missing {
                name,
                image: image.clone(),
                presence,
                lookup: Some(lookup),
                problem: None,
            })
        }
    });
    let missing: Vec<Missing> = futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if missing.is_empty() {
        printer.status(&format!(
            "images: {} of {} available (on the nodes or in their registries)",
            images.len(),
            images.len()
        ));
        return Ok(());
    }
    let target = Target::for_context(profile, &conn.context)
        .map(|t| t.flag())
        .unwrap_or_else(|| "kind=CLUSTER|minikube=PROFILE|containerd".into());
    let mut text = format!(
        "image check: {} of {} images of {} cannot be had by the nodes, so nothing was applied",
        missing.len(),
        images.len(),
        rendered.addon
    );
    for m in &missing {
        text.push_str(&format!("\n  image {}: {}", m.name, m.image));
        if let Some(p) = &m.problem {
            text.push_str(&format!("\n    {p}"));
            continue;
        }
        let nodes_line = match (m.presence.nodes, m.presence.on.len()) {
            (0, _) => "the cluster lists no nodes".to_string(),
            (n, 0) => format!("on none of the {n} nodes (Node.status.images)"),
            (n, k) => format!("on {k} of {n} nodes only ({})", m.presence.on.join(", ")),
        };
        text.push_str(&format!("\n    nodes: {nodes_line}"));
        if let Some(l) = &m.lookup {
            text.push_str(&format!("\n    {l}"));
        }
        if m.name == "builtin" {
            text.push_str(&format!(
                "\n    fix: kaddons' own server is in no registry; build and load its image: kaddons image build metrics-server && kaddons image load {DEFAULT_ARCHIVE} --into {target}"
            ));
        }
    }
    text.push_str(&format!(
        "\n  hint: pull from a registry that has it (--image-mirror cn, --registry HOST[:PORT]), pin another image (--image NAME=REF), or put it on the nodes (kaddons image load FILE --into {target}); --skip-image-check if the nodes see registries this machine does not"
    ));
    bail!(text)
}
