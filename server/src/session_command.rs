//! `rafting session create|keepalive|close`: a client's sessions through any node's REST API
//! (a session keeps the keys bound to it alive while its owner renews it).

use crate::client_command::send;
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::Value;
use std::io::Write;

/// `rafting session ...`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a session; prints its id and when it expires unless kept alive.
    Create {
        /// Time to live in milliseconds, renewed by each keepalive
        #[arg(long)]
        ttl_ms: u64,
    },
    /// Renew a session for another TTL.
    Keepalive { session: u64 },
    /// Close a session and delete the keys bound to it.
    Close { session: u64 },
}

/// Runs one `rafting session` command and prints the node's JSON answer.
pub fn run(endpoint: &str, command: &SessionCommand) -> Result<bool> {
    let base = endpoint.trim_end_matches('/');
    let response = match command {
        SessionCommand::Create { ttl_ms } => {
            let body = serde_json::json!({ "ttl_ms": ttl_ms }).to_string();
            send("POST", &format!("{base}/v1/sessions"), body.as_bytes())?
        }
        SessionCommand::Keepalive { session } => send(
            "PUT",
            &format!("{base}/v1/sessions/{session}/keepalive"),
            &[],
        )?,
        SessionCommand::Close { session } => {
            send("DELETE", &format!("{base}/v1/sessions/{session}"), &[])?
        }
    };
    let answer: Value = response.json().context("reading the JSON answer")?;
    writeln!(std::io::stdout().lock(), "{answer}")?;
    Ok(true)
}
