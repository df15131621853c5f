//! `kaddons enable ADDON`: render, check, apply (server-side, in phases), prune, then wait
//! until the addon really works; on failure, say what is stuck and the likely fix.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kaddons::cluster::apply::{self, EnableOptions, Report};
use kaddons::cluster::client::Connection;
use kaddons::cluster::diagnose::{self, Finding, Severity};
use kaddons::cluster::observe::{observe, ApiLogs};
use kaddons::cluster::wait::{self, WaitError};
use kaddons::top;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::cli::{EnableArgs, GlobalArgs, OutputFormat};
use crate::printer::Printer;

use super::render::render_addon;
use super::reporters::StepReporter;
use super::{
    choose_profile, cluster_target, connect, load_catalog, select_version, structured, ExitStatus,
};

pub async fn run(
    global: &GlobalArgs,
    args: &EnableArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get(&args.addon)?;
    let conn = connect(global).await?;
    let target = cluster_target(&conn, printer).await?;
    let addon = &select_version(
        addon,
        target.as_ref(),
        args.values.addon_version.as_deref(),
        args.force,
        printer,
    )?;
    let profile = choose_profile(args.values.profile, global, Some(&conn), printer).await?;
    let rendered = render_addon(&catalog, addon, &args.values, profile, printer)?;
    if !args.skip_image_check {
        super::image::preflight(&conn, &rendered, profile, printer).await?;
    }
    printer.status(&format!(
        "{} {} on {} (context {}, profile {profile})",
        if args.dry_run {
            "dry run: enabling"
        } else {
            "enabling"
        },
        addon.name(),
        conn.server,
        conn.context
    ));
    let bundled = addon.profile(profile).and_then(|o| o.bundled.as_ref());
    let report = apply::enable(
        &conn,
        addon,
        &rendered.objects,
        EnableOptions {
            force: args.force,
            dry_run: args.dry_run,
        },
    )
    .await
    .map_err(|e| e.with_bundled(profile.as_str(), bundled))?;
    if let (Some(b), false) = (bundled, report.taken_over.is_empty()) {
        if b.by_default {
            printer.warn(&format!(
                "took over {} of {profile}'s own {}; unless it is turned off, {} will put it back: {}",
                report.taken_over.len(),
                addon.name(),
                profile,
                b.turn_off
            ));
        }
    }
    print_report(global, printer, &report)?;
    if args.dry_run || args.wait.no_wait {
        return Ok(ExitStatus::Success);
    }
    // A pruned object deleted in the foreground lingers (deletionTimestamp set) until the
    // garbage collector has removed its dependents: the addon is not in its new shape before.
    let lingering = apply::wait_deleted(&conn, &report.deleted, args.wait.timeout).await?;
    if !lingering.is_empty() {
        printer.warn(&format!(
            "{} is applied but pruned objects are still being deleted after {}s: {}",
            addon.name(),
            args.wait.timeout.as_secs(),
            lingering.join(", ")
        ));
        return Ok(ExitStatus::Failure);
    }
    let progress = StepReporter::new(printer);
    match wait::wait_ready(
        &conn,
        &rendered.objects,
        addon.def.ready_check.as_deref(),
        args.wait.timeout,
        &progress,
    )
    .await
    {
        Ok(metrics) => {
            printer.status(&format!("{} is enabled and working", addon.name()));
            if let Some(list) = metrics {
                if global.output == OutputFormat::Text {
                    printer.data(&usage_table(&conn, &list).await)?;
                }
            }
            Ok(ExitStatus::Success)
        }
        Err(WaitError::Timeout { step, state, after }) => {
            printer.warn(&format!(
                "{} is applied but not working after {}s: {step}: {state}",
                addon.name(),
                after.as_secs()
            ));
            let findings = explain(&conn, &rendered.objects).await;
            print_findings(printer, &findings);
            Ok(ExitStatus::Failure)
        }
        Err(WaitError::Cluster(e)) => Err(e.into()),
    }
}

/// Diagnosis of a failed wait; failures to gather are reported as a finding, not an error.
pub async fn explain(
    conn: &kaddons::cluster::client::Connection,
    objects: &[Value],
) -> Vec<Finding> {
    let patterns = match diagnose::known_failures() {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding {
                id: "known-failures-unreadable".into(),
                severity: Severity::Warn,
                summary: format!("the built-in known-failure patterns do not parse: {e}"),
                hint: "this is a kaddons bug; please report it".into(),
            }]
        }
    };
    match observe(conn, objects, &ApiLogs(conn)).await {
        Ok(obs) => diagnose::diagnose(&obs, &patterns),
        Err(e) => vec![Finding {
            id: "observe-failed".into(),
            severity: Severity::Warn,
            summary: format!("could not read pods, events or logs: {e}"),
            hint: "check your permissions (kubectl auth can-i list pods -n kube-system)".into(),
        }],
    }
}

pub fn print_findings(printer: &Printer, findings: &[Finding]) {
    if findings.is_empty() {
        printer.status("no known cause found; run `kaddons status ADDON` and look at the pod logs");
    }
    for f in findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warn => "warning",
            Severity::Ok => "ok",
        };
        printer.status(&format!("  {level}: {}\n    hint: {}", f.summary, f.hint));
    }
}

/// One line per object (stdout in a dry run, where it is the answer; status otherwise), or the
/// report as JSON/YAML. Shared by enable and disable.
pub fn print_report(global: &GlobalArgs, printer: &Printer, report: &Report) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Text => {
            for c in &report.changes {
                let line = format!("{} {}", c.object, c.change.verb(report.dry_run));
                if report.dry_run {
                    printer.data(&(line + "\n"))?;
                } else {
                    printer.status(&line);
                }
            }
        }
        format => printer.data(&structured(format, report)?)?,
    }
    Ok(())
}

/// `kubectl top node`-style table from the NodeMetricsList the wait ended with (percentages
/// need the nodes' allocatable; without them the table still shows usage).
async fn usage_table(conn: &Connection, list: &Value) -> String {
    let usage = match top::parse_node_metrics_list(list.to_string()) {
        Ok(u) => u,
        Err(e) => return format!("(cannot read node metrics: {e})\n"),
    };
    let nodes: Api<Node> = Api::all(conn.client.clone());
    let mut allocatable = BTreeMap::new();
    if let Ok(list) = conn.call(nodes.list(&ListParams::default())).await {
        for n in &list.items {
            if let (Some(name), Ok(a)) = (&n.metadata.name, top::Allocatable::from_node(n)) {
                allocatable.insert(name.clone(), a);
            }
        }
    }
    top::node_usage_list(&usage, &allocatable, top::SortBy::Name).to_table(false)
}
