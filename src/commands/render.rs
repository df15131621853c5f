//! `kaddons render ADDON`: the manifests `enable` would apply, printed, never applied.

use anyhow::Context as _;
use kaddons::catalog::{Catalog, Profile};
use kaddons::render::{self, ImageOverrides, Request};
use serde_json::Value;

use crate::cli::{GlobalArgs, OutputFormat, RenderArgs, ValuesArgs};
use crate::printer::Printer;

use super::{choose_profile, load_catalog, ExitStatus};

pub async fn run(
    global: &GlobalArgs,
    args: &RenderArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    // Rendering is offline: auto-detection reads only the kubeconfig.
    let profile = choose_profile(args.values.profile, global, None, printer).await?;
    let rendered = render_addon(&catalog, &args.addon, &args.values, profile, printer)?;
    let text = match global.output {
        OutputFormat::Json => render::to_json(&rendered.objects),
        OutputFormat::Text | OutputFormat::Yaml => render::to_yaml(&rendered.objects)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}

/// Builds the render request from the flags and renders: the one path shared by `render` and
/// `enable`.
pub fn render_addon(
    catalog: &Catalog,
    addon: &str,
    args: &ValuesArgs,
    profile: Profile,
    printer: &Printer,
) -> anyhow::Result<render::Rendered> {
    let addon = catalog.get(addon)?;
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
