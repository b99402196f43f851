//! `staker-agent`: thin main — parse, set up logging, run. Data on stdout, logs on stderr.
//! Exit codes: 0 success, 1 failure, 3 `run` stopped because the stake is no longer active,
//! 64 bad usage.

mod amount;
mod chain;
mod cli;
mod enclave;
mod join;
mod master;
mod notify;
mod run;
mod state_dir;
mod token;
mod wallet;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // `run` is a service: its supervision and the agent's own lines belong in the journal.
    let default_level = match cli.command {
        cli::Command::Run(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAAS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // No colour codes in the journal or in files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<run::Revoked>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
