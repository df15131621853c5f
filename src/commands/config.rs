//! `kaddons config get|set|unset|view`: the defaults file, without opening an editor.
//!
//! `view` shows the settings in effect for this very invocation (flags and `KADDONS_*`
//! variables included) with the source of each, because "why is it using the cn mirror?" is
//! the question people ask; `get` shows what the file itself says.

use anyhow::Context as _;
use kaddons::config::Config;
use serde::Serialize;

use crate::cli::{ConfigCommand, GlobalArgs, OutputFormat};
use crate::printer::{table, Printer};
use crate::settings::{Resolved, Settings};

use super::{structured, ExitStatus};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct View<'a> {
    api_version: &'static str,
    kind: &'static str,
    /// The config file consulted (it may not exist).
    path: Option<String>,
    settings: &'a [Resolved],
}

pub fn run(
    global: &GlobalArgs,
    cmd: &ConfigCommand,
    settings: &Settings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    match cmd {
        ConfigCommand::Get { key } => match settings.config.get(key)? {
            Some(v) => {
                let text = match global.output {
                    OutputFormat::Text => format!("{v}\n"),
                    format => structured(format, &serde_json::json!({"key": key, "value": v}))?,
                };
                printer.data(&text)?;
                Ok(ExitStatus::Success)
            }
            None => {
                printer.status(&format!("{key} is not set in the config file"));
                Ok(ExitStatus::Failure)
            }
        },
        ConfigCommand::Set { key, value } => update(settings, printer, key, Some(value)),
        ConfigCommand::Unset { key } => update(settings, printer, key, None),
        ConfigCommand::View => {
            let path = settings
                .config_path
                .as_ref()
                .map(|p| p.display().to_string());
            let text = match global.output {
                OutputFormat::Text => {
                    let mut out = match &path {
                        Some(p) if std::path::Path::new(p).exists() => {
                            format!("config file: {p}\n\n")
                        }
                        Some(p) => format!("config file: {p} (not created yet)\n\n"),
                        None => {
                            "config file: none (no HOME, XDG_CONFIG_HOME or KADDONS_CONFIG)\n\n"
                                .to_string()
                        }
                    };
                    let rows: Vec<Vec<String>> = settings
                        .resolved
                        .iter()
                        .map(|r| {
                            vec![
                                r.key.to_string(),
                                r.value.clone().unwrap_or_else(|| "-".into()),
                                serde_json::to_value(r.source)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_string))
                                    .unwrap_or_default(),
                            ]
                        })
                        .collect();
                    out.push_str(&table(&["KEY", "VALUE", "SOURCE"], &rows));
                    out
                }
                format => structured(
                    format,
                    &View {
                        api_version: "kaddons.io/v1alpha1",
                        kind: "Config",
                        path,
                        settings: &settings.resolved,
                    },
                )?,
            };
            printer.data(&text)?;
            Ok(ExitStatus::Success)
        }
    }
}

fn update(
    settings: &Settings,
    printer: &Printer,
    key: &str,
    value: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    let path = settings.require_path()?;
    // Re-read: the file as it is now is what gets changed.
    let mut config = Config::load(path)?;
    config.set(key, value)?;
    config
        .save(path)
        .with_context(|| format!("cannot update {}", path.display()))?;
    match value {
        Some(v) => printer.status(&format!("{key} set to {v} in {}", path.display())),
        None => printer.status(&format!("{key} removed from {}", path.display())),
    }
    Ok(ExitStatus::Success)
}
