//! `kaddons profile`: the detected profile and the evidence behind it.

use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::printer::Printer;

use super::{connect, detect_profile, load_catalog, structured, ExitStatus};
use kaddons::catalog::{Bundled, Note};
use kaddons::profile::Evidence;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    profile: String,
    context: Option<&'a str>,
    server: Option<&'a str>,
    evidence: &'a [Evidence],
    notes: &'a [String],
    /// What the catalog's addons say about this profile (its notes, and a bundled copy).
    addons: Vec<AddonNotes<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddonNotes<'a> {
    addon: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    notes: &'a [Note],
    #[serde(skip_serializing_if = "Option::is_none")]
    bundled: Option<&'a Bundled>,
}

pub async fn run(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    // Ask the cluster too when one is configured; fall back to the kubeconfig alone.
    let mut cluster_note = None;
    let detected = match connect(global).await {
        Ok(conn) => match detect_profile(global, Some(&conn)).await {
            Ok(d) => d,
            Err(e) => {
                cluster_note = Some(format!(
                    "cluster not asked ({e:#}); evidence from the kubeconfig only"
                ));
                detect_profile(global, None).await?
            }
        },
        Err(_) => detect_profile(global, None).await?,
    };
    let d = &detected.detection;
    let catalog = load_catalog(global)?;
    let addons: Vec<AddonNotes> = catalog
        .addons()
        .filter_map(|a| {
            let overlay = a.profile(d.profile)?;
            (!overlay.notes.is_empty() || overlay.bundled.is_some()).then(|| AddonNotes {
                addon: a.name(),
                notes: &overlay.notes,
                bundled: overlay.bundled.as_ref(),
            })
        })
        .collect();
    let report = Report {
        profile: d.profile.to_string(),
        context: detected.context.as_ref().map(|c| c.context.as_str()),
        server: detected.context.as_ref().and_then(|c| c.server.as_deref()),
        evidence: &d.evidence,
        notes: &d.notes,
        addons,
    };
    let text = match global.output {
        OutputFormat::Text => {
            let mut out = format!("profile: {}\n", report.profile);
            match report.context {
                Some(c) => out.push_str(&format!("context: {c}\n")),
                None => out.push_str("context: (none: no kubeconfig or no current context)\n"),
            }
            if let Some(s) = report.server {
                out.push_str(&format!("server:  {s}\n"));
            }
            if d.evidence.is_empty() {
                out.push_str("evidence: none points to a specific profile, so generic applies\n");
            } else {
                out.push_str("evidence:\n");
                for e in &d.evidence {
                    let strength = match e.weight {
                        3.. => "conclusive",
                        2 => "strong",
                        _ => "hint",
                    };
                    out.push_str(&format!("  - {} ({strength}): {}\n", e.profile, e.reason));
                }
            }
            for n in d.notes.iter().chain(cluster_note.iter()) {
                out.push_str(&format!("note: {n}\n"));
            }
            for a in &report.addons {
                if let Some(b) = a.bundled {
                    out.push_str(&format!(
                        "{}: {} {} its own copy ({}); to let kaddons manage it: {}\n",
                        a.addon,
                        report.profile,
                        if b.by_default {
                            "installs"
                        } else {
                            "can install"
                        },
                        b.manager,
                        b.turn_off
                    ));
                }
                for n in a.notes {
                    out.push_str(&format!("{}: {}\n", a.addon, n.text));
                }
            }
            out
        }
        format => structured(format, &report)?,
    };
    printer.data(&text)?;
    Ok(ExitStatus::Success)
}
