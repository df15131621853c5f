//! One module per command. Each takes parsed arguments and a [`Printer`] and returns an
//! [`ExitStatus`]; errors carry context for the user and become exit code 2 in `main`.

pub mod info;
pub mod list;
pub mod profile;
pub mod render;

use anyhow::Context as _;
use kaddons::catalog::{Catalog, Profile};
use kaddons::cluster::kubeconfig;
use kaddons::profile::{detect, Detection, Evidence};

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat, ProfileArg};
use crate::printer::Printer;

/// What a command reports through the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done.
    Success,
    /// 1: the command ran, and the answer is "no" (not ready, a check failed).
    #[allow(dead_code)] // used by the cluster commands (wait, doctor)
    Failure,
}

pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let global = &cli.global;
    match &cli.command {
        Command::List => list::run(global, printer),
        Command::Render(args) => render::run(global, args, printer),
        Command::Info(args) => info::run(global, args, printer),
        Command::Profile => profile::run(global, printer),
    }
}

/// The built-in catalog plus `--addons-dir`.
pub fn load_catalog(global: &GlobalArgs) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::builtin().context("the built-in catalog is broken")?;
    if let Some(dir) = &global.addons_dir {
        catalog
            .add_dir(dir)
            .with_context(|| format!("loading --addons-dir {}", dir.display()))?;
    }
    Ok(catalog)
}

/// What profile detection found, and about which context.
pub struct Detected {
    pub context: Option<kubeconfig::Selected>,
    pub detection: Detection,
}

/// Detects the profile from the kubeconfig (no cluster access).
pub fn detect_profile(global: &GlobalArgs) -> anyhow::Result<Detected> {
    let hint = "pass --profile generic|minikube|kind|kubeadm to skip detection";
    let config = kubeconfig::load(global.kubeconfig.as_deref()).context(hint)?;
    let selected = match &config {
        Some(c) => kubeconfig::select(c, global.context.as_deref()).context(hint)?,
        None => None,
    };
    let facts = selected.as_ref().map(|s| s.facts()).unwrap_or_default();
    Ok(Detected {
        detection: detect(&facts),
        context: selected,
    })
}

/// The profile to use: the one given, or the detected one (with a status line saying so).
pub fn choose_profile(
    arg: ProfileArg,
    global: &GlobalArgs,
    printer: &Printer,
) -> anyhow::Result<Profile> {
    if let Some(p) = arg.explicit() {
        return Ok(p);
    }
    let detected = detect_profile(global)?;
    let why = match (&detected.context, detected.detection.evidence.first()) {
        (None, _) => "no kubeconfig context".to_string(),
        (Some(_), Some(Evidence { reason, .. })) => reason.clone(),
        (Some(c), None) => format!("nothing specific in context \"{}\"", c.context),
    };
    printer.status(&format!(
        "profile: {} (auto: {why}; override with --profile)",
        detected.detection.profile
    ));
    Ok(detected.detection.profile)
}

/// Serialises `value` for `-o json` / `-o yaml`.
pub fn structured(format: OutputFormat, value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Yaml => serde_yaml::to_string(value)?,
        _ => serde_json::to_string_pretty(value)? + "\n",
    })
}
