//! The `kaddons` binary: parse, run, turn the outcome into an exit code. Nothing else.

mod cli;
mod commands;
mod printer;

use std::process::ExitCode;

use clap::Parser;

use commands::ExitStatus;
use printer::Printer;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_from(cli::normalize_args(std::env::args_os())) {
        Ok(cli) => cli,
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
    let printer = Printer::new(cli.global.quiet, cli.global.verbose);
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
    match runtime.block_on(commands::run(cli, &printer)) {
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
