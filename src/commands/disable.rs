//! `kaddons disable ADDON`: delete what kaddons created for the addon, APIServices first,
//! and wait until it is gone. Objects kaddons does not manage are never touched.

use kaddons::cluster::apply;

use crate::cli::{DisableArgs, GlobalArgs};
use crate::printer::Printer;

use super::enable::print_report;
use super::{connect, load_catalog, ExitStatus};

pub async fn run(
    global: &GlobalArgs,
    args: &DisableArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get(&args.addon)?;
    let conn = connect(global).await?;
    let report = apply::disable(&conn, addon, args.dry_run).await?;
    print_report(global, printer, &report)?;
    if report.changes.is_empty() {
        printer.status(&format!(
            "{} is not enabled (no objects managed by kaddons); nothing to do",
            addon.name()
        ));
        return Ok(ExitStatus::Success);
    }
    if args.dry_run || args.wait.no_wait {
        return Ok(ExitStatus::Success);
    }
    let remaining = apply::wait_deleted(&conn, &report.deleted, args.wait.timeout).await?;
    if remaining.is_empty() {
        printer.status(&format!("{} is disabled", addon.name()));
        Ok(ExitStatus::Success)
    } else {
        printer.warn(&format!(
            "still being deleted after {}s: {} (finalizers or dependents; check kubectl get with -o yaml)",
            args.wait.timeout.as_secs(),
            remaining.join(", ")
        ));
        Ok(ExitStatus::Failure)
    }
}
