//! `kaddons list`: the catalog, with each addon's status.
//!
//! Without cluster access the status is `unknown`; the cluster commands fill it in from the
//! labels kaddons puts on what it applies.

use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::printer::{table, Printer};

use super::{load_catalog, structured, ExitStatus};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddonList {
    api_version: &'static str,
    kind: &'static str,
    items: Vec<Item>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    name: String,
    /// Upstream (application) version.
    version: String,
    /// The addon's own version.
    addon_version: String,
    description: String,
    status: &'static str,
    status_reason: String,
    source: String,
}

pub fn run(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let items: Vec<Item> = catalog
        .addons()
        .map(|a| Item {
            name: a.def.name.clone(),
            version: a.def.upstream.version.clone(),
            addon_version: a.def.version.clone(),
            description: a.def.description.clone(),
            status: "unknown",
            status_reason: "no cluster".into(),
            source: a.source.to_string(),
        })
        .collect();
    let text = match global.output {
        OutputFormat::Text => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        i.version.clone(),
                        i.description.clone(),
                        format!("{} ({})", i.status, i.status_reason),
                    ]
                })
                .collect();
            table(&["NAME", "VERSION", "DESCRIPTION", "STATUS"], &rows)
        }
        format => structured(
            format,
            &AddonList {
                api_version: "kaddons.io/v1alpha1",
                kind: "AddonList",
                items,
            },
        )?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}
