//! `rafting`: the RAFTiNG binary. It runs a cluster member (`rafting node`), a local
//! cluster of node processes (`rafting dev`), the client commands (`rafting kv ...`,
//! `rafting session ...`, `rafting cluster status`) and the deterministic simulator (`rafting sim run|replay`).

mod cli;
mod client_command;
mod dev_command;
mod fail_stop;
mod http;
mod join;
mod members_command;
mod membership_record;
mod node_command;
mod node_config;
mod port_holder;
mod rest;
mod service_command;
mod session_command;
mod signals;
mod sim_command;
mod tenant_command;
mod timeline;

use clap::Parser;
use std::process::ExitCode;

/// Exit codes: 0 all good, 1 a check was violated (or a node did not stop cleanly), 2 the
/// command could not run, 70 a node stopped because a thread it cannot live without died
/// ([`fail_stop`]).
fn main() -> ExitCode {
    let raw = cli::RawCli::parse();
    let result = raw.validate().and_then(|command| match command {
        cli::Command::Node(config) => node_command::run(&config),
        cli::Command::Dev(config) => dev_command::run(&config),
        cli::Command::Kv { endpoint, command } => client_command::run_kv(&endpoint, &command),
        cli::Command::Session { endpoint, command } => session_command::run(&endpoint, &command),
        cli::Command::Service { endpoint, command } => service_command::run(&endpoint, &command),
        cli::Command::ClusterStatus { endpoint } => client_command::cluster_status(&endpoint),
        cli::Command::ClusterChange { endpoint, change } => {
            members_command::run(&endpoint, &change)
        }
        cli::Command::Tenant { endpoint, command } => tenant_command::run(&endpoint, &command),
        cli::Command::SimRun(run) => sim_command::run(&run),
        cli::Command::SimReplay(replay) => sim_command::replay(&replay),
        cli::Command::SimTimeline(timeline) => sim_command::timeline(&timeline).map(|()| true),
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, `outer: inner: root`. A cause whose text the message
/// before it already includes (a wrapper that prints its source, as many `thiserror` types
/// and `io::Error`s do) is not repeated.
fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !previous.is_empty() && previous.contains(&message) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&message);
        previous = message;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot bind UDP 127.0.0.1:1: {source}")]
    struct BindError {
        #[source]
        source: std::io::Error,
    }

    /// A wrapper that prints its source is not followed by the source again, while context
    /// that does not repeat its cause keeps the whole chain.
    #[test]
    fn each_cause_is_printed_once() {
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let error = anyhow::Error::new(BindError { source: in_use }).context("starting the node");
        assert_eq!(
            error_chain(&error),
            "starting the node: cannot bind UDP 127.0.0.1:1: address in use"
        );
        let plain = anyhow::anyhow!("root cause")
            .context("middle")
            .context("outer");
        assert_eq!(error_chain(&plain), "outer: middle: root cause");
    }
}
