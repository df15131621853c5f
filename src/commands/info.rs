//! `kaddons info ADDON`: what an addon is and what can be configured: upstream, images,
//! values with their defaults, and each profile's patches with their reasons and sources,
//! its notes, and whether the distribution installs the addon itself.

use serde::Serialize;

use crate::cli::{GlobalArgs, InfoArgs, OutputFormat};
use crate::printer::Printer;

use super::{load_catalog, structured, ExitStatus};

#[derive(Serialize)]
struct Info<'a> {
    #[serde(flatten)]
    def: &'a kaddons::catalog::AddonDef,
    source: String,
    /// The JSON Schema of the values, when the addon has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    values_schema: Option<&'a serde_json::Value>,
}

pub fn run(global: &GlobalArgs, args: &InfoArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get(&args.addon)?;
    let def = &addon.def;
    let text = match global.output {
        OutputFormat::Text => {
            let mut out = format!(
                "{} {} — {}\nupstream: {} {}\ndocs: {}\nnamespace: {}\nsource: {}\n",
                def.name,
                def.version,
                def.description,
                def.upstream.project,
                def.upstream.version,
                def.docs,
                def.namespace,
                addon.source
            );
            out.push_str(
                "\nversions (newest first; enable/render take the newest the cluster's Kubernetes supports, --addon-version pins one):\n",
            );
            let rows: Vec<Vec<String>> = addon
                .versions()
                .iter()
                .map(|v| {
                    let mut differs: Vec<String> = Vec::new();
                    if let Some(m) = v.values.as_object() {
                        differs.extend(m.iter().map(|(k, x)| format!("{k}={x}")));
                    }
                    differs.extend(
                        v.features
                            .iter()
                            .filter(|(_, on)| !**on)
                            .map(|(f, _)| format!("no {f}")),
                    );
                    vec![
                        format!("  {}", v.upstream),
                        format!("Kubernetes {}+", v.kubernetes),
                        v.addon_version.clone(),
                        differs.join(", "),
                    ]
                })
                .collect();
            out.push_str(&crate::printer::table(
                &[
                    "  UPSTREAM",
                    "KUBERNETES",
                    "ADDON-VERSION",
                    "DIFFERS FROM THE NEWEST",
                ],
                &rows,
            ));
            out.push_str("\nimages:\n");
            for (name, i) in &def.images {
                out.push_str(&format!(
                    "  {name}: {}/{}:{}\n",
                    i.registry, i.repository, i.tag
                ));
            }
            out.push_str("\nvalues (defaults; change with --set KEY=VALUE or --values FILE):\n");
            for line in serde_yaml::to_string(&def.values)?.lines() {
                out.push_str(&format!("  {line}\n"));
            }
            if let Some(schema) = &addon.values_schema {
                out.push_str("\nconstraints (values.schema.yaml; checked on --set, --values, AddonSet set:):\n");
                let rows: Vec<Vec<String>> = schema
                    .constraints()
                    .into_iter()
                    .map(|(k, c)| vec![format!("  {k}"), c])
                    .collect();
                out.push_str(&crate::printer::table(&["  KEY", "CONSTRAINT"], &rows));
            }
            if !def.freeform.is_empty() {
                out.push_str(&format!(
                    "  (free-form, not checked below the top level: {})\n",
                    def.freeform.join(", ")
                ));
            }
            out.push_str("\nprofiles:\n");
            for (profile, overlay) in &def.profiles {
                out.push_str(&format!("  {profile}: {}\n", overlay.description));
                for patch in &overlay.patches {
                    out.push_str(&format!("    sets {}\n", patch.values));
                    out.push_str(&format!("      because: {}\n", patch.reason));
                    if let Some(source) = &patch.source {
                        out.push_str(&format!("      source: {source}\n"));
                    }
                }
                for note in &overlay.notes {
                    out.push_str(&format!(
                        "    note: {}\n      source: {}\n",
                        note.text, note.source
                    ));
                }
                if let Some(b) = &overlay.bundled {
                    out.push_str(&format!(
                        "    bundled: installed by {}\n      to hand it to kaddons: {}\n      source: {}\n",
                        b.manager, b.turn_off, b.source
                    ));
                }
            }
            out
        }
        format => structured(
            format,
            &Info {
                def,
                source: addon.source.to_string(),
                values_schema: addon.values_schema.as_deref().map(|s| s.raw()),
            },
        )?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}
