//! `kaddons render ADDON`: the manifests `enable` would apply, printed, never applied.

use anyhow::Context as _;
use kaddons::catalog::versions::KubeTarget;
use kaddons::catalog::{Addon, Catalog, Profile};
use kaddons::cluster::kubeconfig;
use kaddons::render::{self, ImageOverrides, Request};
use serde_json::Value;

use crate::cli::{GlobalArgs, OutputFormat, RenderArgs, ValuesArgs};
use crate::printer::Printer;

use super::{
    choose_profile, cluster_target, connect, flag_target, load_catalog, select_version, ExitStatus,
};

pub async fn run(
    global: &GlobalArgs,
    args: &RenderArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get(&args.addon)?;
    let target = match &args.kube_version {
        Some(v) => Some(flag_target(v)?),
        None => kubeconfig_target(global, printer).await,
    };
    let addon = select_version(
        addon,
        target.as_ref(),
        args.values.addon_version.as_deref(),
        args.force,
        printer,
    )?;
    // Profile auto-detection reads only the kubeconfig: rendering writes nothing and reads
    // no more of the cluster than its /version.
    let profile = choose_profile(args.values.profile, global, None, printer).await?;
    let rendered = render_addon(&catalog, &addon, &args.values, profile, printer)?;
    let text = match global.output {
        OutputFormat::Json => render::to_json(&rendered.objects),
        OutputFormat::Text | OutputFormat::Yaml => render::to_yaml(&rendered.objects)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}

/// The Kubernetes version of the kubeconfig's current (or `--context`) cluster, when there is
/// one; `None` without a kubeconfig or context. An unreachable cluster is a warning: the
/// newest version is rendered.
async fn kubeconfig_target(global: &GlobalArgs, printer: &Printer) -> Option<KubeTarget> {
    let selected = kubeconfig::load(global.kubeconfig.as_deref())
        .ok()
        .flatten()
        .and_then(|k| {
            kubeconfig::select(&k, global.context.as_deref())
                .ok()
                .flatten()
        });
    selected.as_ref()?;
    match connect(global).await {
        Ok(conn) => match cluster_target(&conn, printer).await {
            Ok(target) => target,
            Err(e) => {
                printer.warn(&format!(
                    "cannot read the cluster's Kubernetes version ({e:#}); rendering the newest addon version (pass --kube-version X.Y to choose offline)"
                ));
                None
            }
        },
        Err(e) => {
            printer.warn(&format!(
                "cannot reach the cluster to read its Kubernetes version ({e:#}); rendering the newest addon version (pass --kube-version X.Y to choose offline)"
            ));
            None
        }
    }
}

/// Builds the render request from the flags and renders: the one path shared by `render` and
/// `enable`. `addon` is already at the version to render.
pub fn render_addon(
    catalog: &Catalog,
    addon: &Addon,
    args: &ValuesArgs,
    profile: Profile,
    printer: &Printer,
) -> anyhow::Result<render::Rendered> {
    let mut req = Request::new(profile);
    for path in &args.values_files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --values file {}", path.display()))?;
        let value: Value = if text.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_yaml::from_str(&text)
                .with_context(|| format!("--values file {} is not valid YAML", path.display()))?
        };
        req.texts.insert(path.display().to_string(), text.clone());
        req.values_files.push((path.display().to_string(), value));
    }
    req.sets = args.sets.clone();
    req.images = ImageOverrides {
        registry: args.registry.clone(),
        mirror: match &args.image_mirror {
            Some(name) => Some((name.clone(), catalog.mirror(name)?.clone())),
            None => None,
        },
        images: args.images.clone(),
    };
    let rendered = render::render(addon, &req)
        .with_context(|| format!("cannot render addon {}", addon.name()))?;
    for w in &rendered.warnings {
        printer.warn(w);
    }
    printer.debug(&format!(
        "rendered {} objects, values digest {}",
        rendered.objects.len(),
        rendered.digest
    ));
    Ok(rendered)
}
