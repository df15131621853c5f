//! `kaddons apply -f addons.yaml [--prune] [--dry-run]`: make the cluster's addons match a
//! file. The file, the plan and its execution are library code (`kaddons::addonset`), so that
//! the cluster semantics are tested against kube-fake-client; this module reads the file,
//! chooses the default profile, prints the plan and the result, and waits like `enable`.

use std::io::Read as _;

use anyhow::Context as _;
use kaddons::addonset::{self, Action, AddonResult, Checked, Defaults, ExecOptions, Step};
use kaddons::cluster::apply::{self, Change};
use kaddons::cluster::wait::{self, WaitError};
use serde::Serialize;

use crate::cli::{ApplyArgs, GlobalArgs, OutputFormat, ProfileArg};
use crate::printer::Printer;

use super::enable::{explain, print_findings};
use super::reporters::StepReporter;
use super::{choose_profile, cluster_target, connect, load_catalog, structured, ExitStatus};

/// `-o json|yaml`: the plan and what happened (or would happen) to every object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplyResult<'a> {
    api_version: &'static str,
    kind: &'static str,
    dry_run: bool,
    plan: &'a [Step],
    addons: &'a [AddonResult],
}

pub async fn run(
    global: &GlobalArgs,
    args: &ApplyArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let file = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the addon set from standard input")?;
        Checked::parse(&text, "<stdin>", &catalog)?
    } else {
        Checked::load(&args.file, &catalog)?
    };
    let defaults = Defaults {
        profile: args.profile.into(),
        image_mirror: args.image_mirror.clone(),
        registry: args.registry.clone(),
    };
    let conn = connect(global).await?;
    // Detect once, and only when an entry relies on auto-detection.
    let needs_detection = file
        .set
        .addons
        .iter()
        .any(|e| e.profile.unwrap_or(defaults.profile).explicit().is_none());
    let detected = if needs_detection {
        choose_profile(ProfileArg::AUTO, global, Some(&conn), printer).await?
    } else {
        kaddons::catalog::Profile::Generic
    };
    let kube = cluster_target(&conn, printer).await?.map(|t| t.version);
    let states = addonset::current_states(&conn, &catalog).await?;
    let steps = addonset::plan(&file.set, &states, args.prune);
    printer.status(&format!(
        "{}applying {} on {} (context {}): {}",
        if args.dry_run { "dry run: " } else { "" },
        file.path,
        conn.server,
        conn.context,
        if steps.is_empty() {
            "nothing listed, nothing to prune".to_string()
        } else {
            steps
                .iter()
                .map(|s| format!("{} {} ({})", s.action.as_str(), s.addon, s.state.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let results = addonset::execute(
        &conn,
        &catalog,
        &file,
        &steps,
        &defaults,
        detected,
        ExecOptions {
            dry_run: args.dry_run,
            force: args.force,
            kube,
        },
    )
    .await?;
    match global.output {
        OutputFormat::Text => print_text(printer, &results, args.dry_run)?,
        format => printer.data(&structured(
            format,
            &ApplyResult {
                api_version: "kaddons.io/v1alpha1",
                kind: "ApplyResult",
                dry_run: args.dry_run,
                plan: &steps,
                addons: &results,
            },
        )?)?,
    }
    if args.dry_run || args.wait.no_wait {
        return Ok(ExitStatus::Success);
    }
    wait_all(&conn, &catalog, &results, args, printer).await
}

/// Per object: on stdout for a dry run (the answer asked for), as status otherwise. Then one
/// summary line per addon.
fn print_text(printer: &Printer, results: &[AddonResult], dry_run: bool) -> anyhow::Result<()> {
    for r in results {
        for w in &r.warnings {
            printer.warn(&format!("{}: {w}", r.addon));
        }
        for c in &r.changes {
            let line = format!("{}: {} {}", r.addon, c.object, c.change.verb(dry_run));
            if dry_run {
                printer.data(&(line + "\n"))?;
            } else {
                printer.status(&line);
            }
        }
        let summary = if r.unchanged() && r.action != Action::Prune {
            "unchanged".to_string()
        } else {
            let mut counts: Vec<String> = Vec::new();
            for change in [
                Change::Created,
                Change::Configured,
                Change::Unchanged,
                Change::Pruned,
                Change::Deleted,
            ] {
                let n = r.changes.iter().filter(|c| c.change == change).count();
                if n > 0 {
                    counts.push(format!("{n} {}", change.verb(dry_run)));
                }
            }
            format!("{} ({})", r.action.as_str(), counts.join(", "))
        };
        let profile = r
            .profile
            .map(|p| format!(", profile {p}"))
            .unwrap_or_default();
        let version = r
            .version
            .as_deref()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default();
        printer.status(&format!("{}: {summary}{profile}{version}", r.addon));
    }
    Ok(())
}

/// Waits for every applied addon to work and every pruned one to be gone.
async fn wait_all(
    conn: &kaddons::cluster::client::Connection,
    catalog: &kaddons::catalog::Catalog,
    results: &[AddonResult],
    args: &ApplyArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let mut ok = true;
    let progress = StepReporter::new(printer);
    for r in results {
        if r.action == Action::Prune {
            let remaining = apply::wait_deleted(conn, &r.deleted, args.wait.timeout).await?;
            if !remaining.is_empty() {
                ok = false;
                printer.warn(&format!(
                    "{}: still being deleted after {}s: {}",
                    r.addon,
                    args.wait.timeout.as_secs(),
                    remaining.join(", ")
                ));
            }
            continue;
        }
        let addon = catalog.get(&r.addon)?;
        match wait::wait_ready(
            conn,
            &r.objects,
            addon.def.ready_check.as_deref(),
            args.wait.timeout,
            &progress,
        )
        .await
        {
            Ok(_) => printer.status(&format!("{} is enabled and working", r.addon)),
            Err(WaitError::Timeout { step, state, after }) => {
                ok = false;
                printer.warn(&format!(
                    "{} is applied but not working after {}s: {step}: {state}",
                    r.addon,
                    after.as_secs()
                ));
                print_findings(printer, &explain(conn, &r.objects).await);
            }
            Err(WaitError::Cluster(e)) => return Err(e.into()),
        }
    }
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
