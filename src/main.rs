//! The `kaddons` binary: parse, resolve settings, run, turn the outcome into an exit code.
//! Nothing else.

mod cli;
mod commands;
mod printer;
mod settings;

use std::process::ExitCode;

use clap::FromArgMatches;

use commands::ExitStatus;
use printer::Printer;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Installed or linked as kubectl-kaddons, the binary is `kubectl kaddons` in its help.
    let plugin = cli::invoked_as_plugin(args.first().map(|a| a.as_os_str()));
    let parsed = cli::command(plugin)
        .try_get_matches_from(args)
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    cli.command = cli.command.canonical();
    let printer = Printer::new(cli.global.quiet);
    let custom_filter = std::env::var("KADDONS_LOG").ok();
    printer::init_tracing(
        &printer,
        &printer::log_filter(
            cli.global.quiet,
            cli.global.verbose,
            custom_filter.as_deref(),
        ),
    );
    // Flags, KADDONS_* variables and the config file are merged here, once; commands only
    // read `cli`.
    let settings = match settings::resolve(&mut cli, &matches, &|k| std::env::var_os(k)) {
        Ok(s) => s,
        Err(e) => {
            printer.error(&e);
            return ExitCode::from(2);
        }
    };
    tracing::debug!(?settings.resolved, "settings");
    kaddons::cluster::client::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer.error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(cli, &settings, &printer)) {
        Ok(ExitStatus::Success) => ExitCode::SUCCESS,
        Ok(ExitStatus::Failure) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            printer.error(&err);
            ExitCode::from(2)
        }
    }
}

/// `kaddons render ... | head` closing the pipe early is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
