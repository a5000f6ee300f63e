//! `rafting`: the RAFTiNG binary. It runs a cluster member (`rafting node`), a local
//! cluster of node processes (`rafting dev`), the client commands (`rafting kv ...`,
//! `rafting cluster status`) and the deterministic simulator (`rafting sim run|replay`).

mod cli;
mod client_command;
mod dev_command;
mod http;
mod node_command;
mod node_config;
mod port_holder;
mod rest;
mod signals;
mod sim_command;

use clap::Parser;
use std::process::ExitCode;

/// Exit codes: 0 all good, 1 a check was violated (or a node did not stop cleanly), 2 the
/// command could not run.
fn main() -> ExitCode {
    let raw = cli::RawCli::parse();
    let result = raw.validate().and_then(|command| match command {
        cli::Command::Node(config) => node_command::run(&config),
        cli::Command::Dev(config) => dev_command::run(&config),
        cli::Command::Kv { endpoint, command } => client_command::run_kv(&endpoint, &command),
        cli::Command::ClusterStatus { endpoint } => client_command::cluster_status(&endpoint),
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
