//! `kaddons completion SHELL`: a static completion script generated from the command
//! definition by clap_complete.
//!
//! Addon names are completed too: for the script only, every ADDON argument is given the
//! catalog's names (built-in, plus `--addons-dir` when given) as possible values, which the
//! generators turn into a fixed word list. Parsing never uses that list, so addons from an
//! `--addons-dir` added later still work; they are just not completed. This needs no runtime
//! hook in the shell (no dynamic completion), so the script works offline and is fast.

use clap::builder::PossibleValuesParser;
use clap::Command;

use crate::cli::{CompletionArgs, GlobalArgs};
use crate::printer::Printer;

use super::{load_catalog, ExitStatus};

/// Argument id of the ADDON positional in every command that takes one.
const ADDON_ARG: &str = "addon";

pub fn run(
    args: &CompletionArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let catalog = load_catalog(global)?;
    let names: Vec<String> = catalog.addons().map(|a| a.name().to_string()).collect();
    let mut cmd = with_addon_names(crate::cli::command(false), &names);
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kaddons", &mut script);
    printer.data(&String::from_utf8_lossy(&script))?;
    Ok(ExitStatus::Success)
}

/// `cmd` with `names` as the possible values of every ADDON argument, recursively.
pub fn with_addon_names(mut cmd: Command, names: &[String]) -> Command {
    if cmd.get_arguments().any(|a| a.get_id() == ADDON_ARG) {
        let names = names.to_vec();
        cmd = cmd.mut_arg(ADDON_ARG, |a| {
            a.value_parser(PossibleValuesParser::new(names))
        });
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, |s| with_addon_names(s, names));
    }
    cmd
}
