//! `kaddons list`: the catalog, with each addon's state in the cluster.
//!
//! The cluster is asked concurrently for every addon. Without a reachable cluster the catalog
//! is still printed (STATUS unknown) with one notice on stderr, and the exit code stays 0.

use futures::future::join_all;
use kaddons::catalog::{versions, Addon, Profile};
use kaddons::cluster::client::Connection;
use kaddons::cluster::status::addon_status;
use kaddons::render::{self, Request};
use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::printer::{table, Printer};

use super::{cluster_target, connect, load_catalog, structured, ExitStatus};

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
    /// enabled, disabled, degraded, unmanaged or unknown.
    status: String,
    status_reason: String,
    /// Profile the enabled addon was applied with.
    profile: Option<String>,
    /// The addon version the cluster runs (from kaddons' annotations), when it is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    applied_version: Option<String>,
    /// The upstream version the cluster runs, when kaddons applied it.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_version: Option<String>,
    /// The upstream version `kaddons enable` would install on this cluster (the newest that
    /// supports its Kubernetes version), when the cluster could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    install_version: Option<String>,
    /// Why not: no version of the addon supports the cluster's Kubernetes version.
    #[serde(skip_serializing_if = "Option::is_none")]
    install_problem: Option<String>,
    source: String,
}

/// The VERSION cell: the upstream version running (else the one kaddons would install, else
/// the newest), and what kaddons would install when that differs from what runs.
fn version_cell(i: &Item) -> String {
    let shown = i
        .running_version
        .as_ref()
        .or(i.install_version.as_ref())
        .unwrap_or(&i.version);
    match (&i.running_version, &i.install_version, &i.applied_version) {
        (Some(run), Some(install), _) if run != install => {
            format!("{run} (would install {install})")
        }
        // Applied by a kaddons whose catalog did not have this version.
        (None, _, Some(applied)) if *applied != i.addon_version => {
            format!("{shown} (applied {applied})")
        }
        (_, None, _) if i.install_problem.is_some() => format!("{shown} (unsupported cluster)"),
        _ => shown.clone(),
    }
}

/// State of one addon as `list` shows it.
/// (status, reason, profile, applied addon version) of one addon.
type State = (String, String, Option<String>, Option<String>);

async fn state_of(conn: &Connection, addon: &Addon) -> State {
    let expected = match render::render(addon, &Request::new(Profile::Generic)) {
        Ok(r) => r.objects,
        Err(e) => return ("unknown".into(), format!("cannot render: {e}"), None, None),
    };
    match addon_status(conn, addon, &expected).await {
        Ok(s) => (
            s.state.as_str().to_string(),
            s.reason(),
            s.profile,
            s.addon_version,
        ),
        Err(e) => ("unknown".into(), e.to_string(), None, None),
    }
}

pub async fn run(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addons: Vec<&Addon> = catalog.addons().collect();
    let mut target = None;
    let mut connected = false;
    let states: Vec<State> = match connect(global).await {
        Ok(conn) => {
            let states = join_all(addons.iter().map(|a| state_of(&conn, a))).await;
            connected = !states.iter().any(|(s, ..)| s == "unknown");
            if connected {
                target = cluster_target(&conn, printer).await.ok().flatten();
            }
            states
        }
        Err(e) => addons
            .iter()
            .map(|_| ("unknown".to_string(), e.to_string(), None, None))
            .collect(),
    };
    // One notice, not one per addon, when the cluster could not be asked.
    if let Some((_, reason, _, _)) = states.iter().find(|(s, ..)| s == "unknown") {
        printer.warn(&format!("cluster state unknown: {reason}"));
    }
    let items: Vec<Item> = addons
        .iter()
        .zip(states)
        .map(|(a, (status, status_reason, profile, applied_version))| {
            let (install_version, install_problem) = if connected {
                match versions::choose(a.name(), a.versions(), target.as_ref(), None, false) {
                    Ok(c) => (Some(c.upstream), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            } else {
                (None, None)
            };
            Item {
                running_version: applied_version
                    .as_deref()
                    .and_then(|v| a.upstream_of(v))
                    .map(str::to_string),
                install_version,
                install_problem,
                name: a.def.name.clone(),
                version: a.def.upstream.version.clone(),
                addon_version: a.def.version.clone(),
                description: a.def.description.clone(),
                status_reason: if status == "unknown" {
                    "no cluster".into()
                } else {
                    status_reason
                },
                status,
                profile,
                applied_version,
                source: a.source.to_string(),
            }
        })
        .collect();
    let text = match global.output {
        OutputFormat::Text => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|i| {
                    let status = if i.status_reason.is_empty() {
                        i.status.clone()
                    } else {
                        format!("{} ({})", i.status, i.status_reason)
                    };
                    let version = version_cell(i);
                    vec![
                        i.name.clone(),
                        version,
                        i.profile.clone().unwrap_or_else(|| "-".into()),
                        i.description.clone(),
                        status,
                    ]
                })
                .collect();
            table(
                &["NAME", "VERSION", "PROFILE", "DESCRIPTION", "STATUS"],
                &rows,
            )
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
