//! `rafting`: the RAFTiNG binary. Today it runs the deterministic simulator
//! (`rafting sim run|replay`); node, dev-cluster and client commands come with their issues.

mod cli;
mod sim_command;

use clap::Parser;
use std::process::ExitCode;

/// Exit codes: 0 all good, 1 a check was violated, 2 the command could not run.
fn main() -> ExitCode {
    let raw = cli::RawCli::parse();
    let result = raw.validate().and_then(|command| match command {
        cli::Command::SimRun(run) => sim_command::run(&run),
        cli::Command::SimReplay(replay) => sim_command::replay(&replay),
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
