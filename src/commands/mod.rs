//! One module per command. Each takes parsed arguments and a [`Printer`] and returns an
//! [`ExitStatus`]; errors carry context for the user and become exit code 2 in `main`.

pub mod aggregator;
pub mod apply;
pub mod completion;
pub mod config;
pub mod disable;
pub mod doctor;
pub mod enable;
pub mod image;
pub mod info;
pub mod list;
pub mod profile;
pub mod render;
pub mod reporters;
pub mod status;
pub mod top;

use anyhow::Context as _;
use kaddons::catalog::versions::{self, KubeTarget, KubeVersion};
use kaddons::catalog::{Addon, Catalog, Profile};
use kaddons::cluster::client::{ClientOptions, Connection};
use kaddons::cluster::{facts, kubeconfig};
use kaddons::profile::{detect, Detection, Evidence, Fact};

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat, ProfileArg};
use crate::printer::Printer;
use crate::settings::Settings;

/// What a command reports through the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done.
    Success,
    /// 1: the command ran, and the answer is "no" (not ready, a check failed).
    Failure,
}

pub async fn run(cli: Cli, settings: &Settings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let global = &cli.global;
    match &cli.command {
        Command::List => list::run(global, printer).await,
        Command::Enable(args) => enable::run(global, args, printer).await,
        Command::Disable(args) => disable::run(global, args, printer).await,
        Command::Status(args) => status::run(global, args, printer).await,
        Command::Doctor(args) => doctor::run(global, args, printer).await,
        Command::Top(cmd) => top::run(global, cmd, printer).await,
        Command::Aggregator(cmd) => aggregator::run(global, cmd, printer),
        Command::Render(args) => render::run(global, args, printer).await,
        Command::Info(args) => info::run(global, args, printer),
        Command::Profile => profile::run(global, printer).await,
        Command::Apply(args) => apply::run(global, args, printer).await,
        Command::Completion(args) => completion::run(args, global, printer),
        Command::Config(cmd) => config::run(global, cmd, settings, printer),
        Command::Image(cmd) => image::run(global, cmd, printer).await,
        Command::Addons { .. } => {
            unreachable!("main resolves `addons ...` with Command::canonical before settings")
        }
    }
}

/// A client for the selected context (no request is made yet).
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Connection> {
    let opts = ClientOptions {
        kubeconfig: global.kubeconfig.clone(),
        context: global.context.clone(),
        request_timeout: global.request_timeout,
    };
    Ok(Connection::connect(&opts).await?)
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

/// Detects the profile from the kubeconfig, plus the cluster's own facts when a connection
/// is given.
pub async fn detect_profile(
    global: &GlobalArgs,
    conn: Option<&Connection>,
) -> anyhow::Result<Detected> {
    let hint = "pass --profile NAME (see `kaddons profile --help`) to skip detection";
    let config = kubeconfig::load(global.kubeconfig.as_deref()).context(hint)?;
    let selected = match &config {
        Some(c) => kubeconfig::select(c, global.context.as_deref()).context(hint)?,
        None => None,
    };
    let mut all: Vec<Fact> = selected.as_ref().map(|s| s.facts()).unwrap_or_default();
    if let Some(conn) = conn {
        all.extend(facts::cluster_facts(conn).await?);
    }
    Ok(Detected {
        detection: detect(&all),
        context: selected,
    })
}

/// The profile to use: the one given, or the detected one (with a status line saying so).
pub async fn choose_profile(
    arg: ProfileArg,
    global: &GlobalArgs,
    conn: Option<&Connection>,
    printer: &Printer,
) -> anyhow::Result<Profile> {
    if let Some(p) = arg.explicit() {
        return Ok(p);
    }
    let detected = detect_profile(global, conn).await?;
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

/// The Kubernetes version of the connected cluster, from `/version`. A cluster that cannot be
/// asked is an error (nothing else would work either); one without `/version` (404) or with
/// an unreadable one gets a warning and `None`: the newest addon version is then used.
pub async fn cluster_target(
    conn: &Connection,
    printer: &Printer,
) -> anyhow::Result<Option<KubeTarget>> {
    match facts::kube_version(conn).await {
        Ok((_, Some(version))) => Ok(Some(KubeTarget {
            version,
            from: format!("context {}'s /version", conn.context),
        })),
        Ok((git, None)) => {
            printer.warn(&format!(
                "the cluster reports Kubernetes \"{git}\", which is not MAJOR.MINOR; choosing the newest addon version (pin one with --addon-version)"
            ));
            Ok(None)
        }
        Err(e) if e.code() == Some(404) => {
            printer.warn(&format!(
                "the cluster serves no /version ({e}); choosing the newest addon version (pin one with --addon-version)"
            ));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `--kube-version X.Y` as a target.
pub fn flag_target(text: &str) -> anyhow::Result<KubeTarget> {
    let version = KubeVersion::parse(text).context("--kube-version")?;
    Ok(KubeTarget {
        version,
        from: "--kube-version".into(),
    })
}

/// The addon at the version to install: the pin (checked against the target unless `force`),
/// else the newest that supports the target. Says which, and why, on stderr.
pub fn select_version(
    addon: &Addon,
    target: Option<&KubeTarget>,
    pin: Option<&str>,
    force: bool,
    printer: &Printer,
) -> anyhow::Result<Addon> {
    let choice = versions::choose(addon.name(), addon.versions(), target, pin, force)?;
    if let Some(w) = &choice.warning {
        printer.warn(w);
    }
    let line = format!("{} {}: {}", addon.name(), choice.upstream, choice.why);
    if target.is_some() || pin.is_some() {
        printer.status(&line);
    } else {
        printer.debug(&line);
    }
    Ok(addon.at(choice.index))
}

/// Serialises `value` for `-o json` / `-o yaml`.
pub fn structured(format: OutputFormat, value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Yaml => serde_yaml::to_string(value)?,
        _ => serde_json::to_string_pretty(value)? + "\n",
    })
}
