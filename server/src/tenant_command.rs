//! `rafting tenant create|list|show|caps|weight|token|delete`: tenant administration through any
//! node's REST API, with the admin token in `RAFTING_TOKEN` (see `rafting dev --secure`).

use crate::client_command::send;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::io::Write;

/// `rafting tenant ...`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints it with its first token (shown only this once).
    Create {
        name: String,
        /// Caps as JSON, e.g. '{"keys":1000,"write_rate":100}' (absent fields: unlimited);
        /// without it the defaults for new tenants apply
        #[arg(long)]
        caps: Option<String>,
        /// Its share of the leader's batches under contention, 1 to 100 (default 1: every
        /// tenant alike)
        #[arg(long, allow_negative_numbers = true)]
        weight: Option<i64>,
    },
    /// Every tenant with its caps and usage.
    List,
    /// One tenant with its caps, usage and token ids.
    Show { name: String },
    /// Replace a tenant's caps (JSON; absent fields: unlimited).
    Caps { name: String, caps: String },
    /// Set a tenant's weight in the leader's fair queuing: 1 to 100, a share of each batch
    /// under contention relative to other tenants' (every tenant starts at 1).
    Weight {
        name: String,
        #[arg(allow_negative_numbers = true)]
        weight: i64,
    },
    /// Issue a new token for a tenant, or revoke one by id.
    Token {
        name: String,
        /// Revoke the token with this id instead of issuing one
        #[arg(long)]
        revoke: Option<u64>,
    },
    /// Delete a tenant; refused while it holds data unless --purge.
    Delete {
        name: String,
        /// Delete its keys, sessions and service groups too
        #[arg(long)]
        purge: bool,
    },
}

fn caps_json(text: &str) -> Result<Value> {
    let caps: Value = serde_json::from_str(text).context("the caps are not JSON")?;
    if !caps.is_object() {
        bail!("the caps are a JSON object, like {{\"keys\": 1000}}");
    }
    Ok(caps)
}

/// Runs one `rafting tenant` command and prints the node's JSON answer.
pub fn run(endpoint: &str, command: &TenantCommand) -> Result<bool> {
    let base = endpoint.trim_end_matches('/');
    let tenants = format!("{base}/v1/tenants");
    let response = match command {
        TenantCommand::Create { name, caps, weight } => {
            let mut body = json!({ "name": name });
            if let Some(caps) = caps {
                body["caps"] = caps_json(caps)?;
            }
            if let Some(weight) = weight {
                body["weight"] = json!(weight);
            }
            send("POST", &tenants, body.to_string().as_bytes())?
        }
        TenantCommand::List => send("GET", &tenants, &[])?,
        TenantCommand::Show { name } => send("GET", &format!("{tenants}/{name}"), &[])?,
        TenantCommand::Caps { name, caps } => {
            let body = caps_json(caps)?.to_string();
            send("PUT", &format!("{tenants}/{name}"), body.as_bytes())?
        }
        TenantCommand::Weight { name, weight } => {
            let body = json!({ "weight": weight }).to_string();
            send("PUT", &format!("{tenants}/{name}/weight"), body.as_bytes())?
        }
        TenantCommand::Token { name, revoke: None } => {
            send("POST", &format!("{tenants}/{name}/tokens"), &[])?
        }
        TenantCommand::Token {
            name,
            revoke: Some(id),
        } => send("DELETE", &format!("{tenants}/{name}/tokens/{id}"), &[])?,
        TenantCommand::Delete { name, purge } => {
            let query = if *purge { "?purge" } else { "" };
            send("DELETE", &format!("{tenants}/{name}{query}"), &[])?
        }
    };
    let answer: Value = response.json().context("reading the JSON answer")?;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&answer)?
    )?;
    Ok(true)
}
