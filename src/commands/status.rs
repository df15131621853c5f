//! `kaddons status ADDON`: every object of the addon with who manages it and its state.

use kaddons::catalog::Profile;
use kaddons::cluster::status::{addon_status, State};
use kaddons::render::{self, Request};

use crate::cli::{GlobalArgs, OutputFormat, StatusArgs};
use crate::printer::{table, Printer};

use super::{connect, load_catalog, structured, ExitStatus};

pub async fn run(
    global: &GlobalArgs,
    args: &StatusArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let addon = catalog.get(&args.addon)?;
    let conn = connect(global).await?;
    // Object names do not depend on the profile; the generic render tells what to look for.
    let expected = render::render(addon, &Request::new(Profile::Generic))?.objects;
    let status = addon_status(&conn, addon, &expected).await?;
    let text = match global.output {
        OutputFormat::Text => {
            let mut out = format!(
                "addon:   {}\nstate:   {}\n",
                status.addon,
                status.state.as_str()
            );
            if let Some(p) = &status.profile {
                out.push_str(&format!("profile: {p}\n"));
            }
            if let Some(v) = &status.addon_version {
                out.push_str(&format!("version: {v}\n"));
            }
            if !status.objects.is_empty() {
                out.push('\n');
                let rows: Vec<Vec<String>> = status
                    .objects
                    .iter()
                    .map(|o| {
                        vec![
                            o.object.clone(),
                            o.managed_by.clone(),
                            if o.ready { "yes".into() } else { "no".into() },
                            o.detail.clone(),
                        ]
                    })
                    .collect();
                out.push_str(&table(&["OBJECT", "MANAGED-BY", "READY", "DETAIL"], &rows));
            }
            out
        }
        format => structured(format, &status)?,
    };
    printer.data(&text)?;
    Ok(if status.state == State::Enabled {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
