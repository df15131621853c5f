//! `kaddons doctor [ADDON]`: the troubleshooting checklist, run against the cluster.

use kaddons::catalog::Profile;
use kaddons::cluster::diagnose::Severity;
use kaddons::cluster::doctor::{self, Check};
use kaddons::cluster::kubeconfig;
use kaddons::cluster::observe::ApiLogs;
use kaddons::render::{self, Request};
use serde::Serialize;

use crate::cli::{DoctorArgs, GlobalArgs, OutputFormat};
use crate::printer::Printer;

use super::{connect, load_catalog, structured, ExitStatus};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    api_version: &'static str,
    kind: &'static str,
    addon: &'a str,
    errors: usize,
    warnings: usize,
    checks: &'a [Check],
}

pub async fn run(
    global: &GlobalArgs,
    args: &DoctorArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get(&args.addon)?;
    let conn = connect(global).await?;
    let expected = render::render(addon, &Request::new(Profile::Generic))?.objects;
    let facts = match kubeconfig::load(global.kubeconfig.as_deref())? {
        Some(k) => kubeconfig::select(&k, global.context.as_deref())?
            .map(|s| s.facts())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let checks = doctor::run(&conn, addon, &expected, &facts, &ApiLogs(&conn)).await;
    let count = |s: Severity| checks.iter().filter(|c| c.severity == s).count();
    let text = match global.output {
        OutputFormat::Text => render_text(&checks),
        format => structured(
            format,
            &Report {
                api_version: "kaddons.io/v1alpha1",
                kind: "DoctorReport",
                addon: addon.name(),
                errors: count(Severity::Error),
                warnings: count(Severity::Warn),
                checks: &checks,
            },
        )?,
    };
    printer.data(&text)?;
    Ok(if doctor::has_errors(&checks) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.severity {
            Severity::Ok => "ok   ",
            Severity::Warn => "warn ",
            Severity::Error => "error",
        };
        out.push_str(&format!("{mark} {}\n", c.summary));
        for e in &c.evidence {
            out.push_str(&format!("        {e}\n"));
        }
        if !c.hint.is_empty() {
            out.push_str(&format!("      hint: {}\n", c.hint));
        }
    }
    let errors = checks
        .iter()
        .filter(|c| c.severity == Severity::Error)
        .count();
    out.push_str(&match errors {
        0 => "no problems found\n".to_string(),
        n => format!("{n} problem(s) found\n"),
    });
    out
}
