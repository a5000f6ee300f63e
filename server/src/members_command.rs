//! `rafting cluster add|promote|remove`, and the calls `rafting node --join` makes: membership
//! changes through any member's REST API (a follower redirects them to the leader).
//!
//! A change that cannot go now is retried for a while: the leader has not committed an entry
//! of its term yet (`leader_not_ready`), another change is still uncommitted
//! (`change_in_progress`), there is no leader (503), or — for a promotion — the learner still
//! trails (`not_caught_up`).

use crate::client_command::{self, ENDPOINT_DEFAULT, Failure};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One membership change, as validated from the command line.
#[derive(Debug, Clone)]
pub enum MemberCommand {
    Add {
        id: u64,
        udp: String,
        http: String,
        learner: bool,
    },
    Promote {
        id: u64,
    },
    Remove {
        id: u64,
    },
}

/// How long one exchange may take (the leader answers once the change has committed).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a change is retried while the cluster answers "not now".
const RETRY_WINDOW: Duration = Duration::from_secs(60);
const RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Runs `rafting cluster add|promote|remove` and prints the new configuration.
pub fn run(endpoint: &str, command: &MemberCommand) -> Result<bool> {
    let base = client_command::endpoints(endpoint)
        .first()
        .copied()
        .unwrap_or(ENDPOINT_DEFAULT)
        .to_owned();
    let answer = change(&base, command, None, RETRY_WINDOW)?;
    println!(
        "configuration at index {}: voters {} learners {}",
        answer["index"], answer["voters"], answer["learners"]
    );
    Ok(true)
}

/// Sends one change to `base` (any member), retrying while the answer is "not now", for up to
/// `window`. `token` overrides `RAFTING_TOKEN` (a joining node uses its own admin token).
pub fn change(
    base: &str,
    command: &MemberCommand,
    token: Option<&str>,
    window: Duration,
) -> Result<Value> {
    let (method, path, body) = match command {
        MemberCommand::Add {
            id,
            udp,
            http,
            learner,
        } => (
            "POST",
            "/v1/cluster/members".to_owned(),
            json!({"id": id, "udp": udp, "http": http, "learner": learner}).to_string(),
        ),
        MemberCommand::Promote { id } => (
            "POST",
            format!("/v1/cluster/members/{id}/promote"),
            String::new(),
        ),
        MemberCommand::Remove { id } => {
            ("DELETE", format!("/v1/cluster/members/{id}"), String::new())
        }
    };
    let url = format!("{base}{path}");
    let headers: Vec<(&str, String)> = token
        .map(|token| vec![("Authorization", format!("Bearer {token}"))])
        .unwrap_or_default();
    let started = Instant::now();
    loop {
        let result = client_command::send_with_headers(
            method,
            &url,
            &headers,
            body.as_bytes(),
            EXCHANGE_TIMEOUT,
        );
        let error = match result {
            Ok(answer) => {
                return serde_json::from_slice(&answer.body).context("the answer is not JSON");
            }
            Err(Failure::Retryable(error)) => error,
            Err(Failure::Final(error)) if worth_retrying(&error) => error,
            Err(Failure::Final(error)) => return Err(error),
        };
        if started.elapsed() >= window {
            return Err(error.context(format!("gave up after {} s of retries", window.as_secs())));
        }
        tracing::debug!(%error, "membership change not possible yet; retrying");
        std::thread::sleep(RETRY_INTERVAL);
    }
}

/// Refusals that go away by themselves: another change committing, a learner catching up.
fn worth_retrying(error: &anyhow::Error) -> bool {
    let code = error
        .downcast_ref::<rafting_client::Error>()
        .and_then(|error| error.code());
    matches!(
        code,
        Some("change_in_progress" | "not_caught_up" | "leader_not_ready")
    )
}

/// `GET /v1/cluster/members` of `base`: the members and their addresses.
pub fn list(base: &str, token: Option<&str>) -> Result<Value> {
    let url = format!("{base}/v1/cluster/members");
    let headers: Vec<(&str, String)> = token
        .map(|token| vec![("Authorization", format!("Bearer {token}"))])
        .unwrap_or_default();
    let answer = client_command::send_with_headers("GET", &url, &headers, &[], EXCHANGE_TIMEOUT)
        .map_err(Failure::into_error)
        .with_context(|| format!("asking {base} for the cluster's members"))?;
    let value: Value = serde_json::from_slice(&answer.body).context("the answer is not JSON")?;
    if !value["members"].is_array() {
        bail!("{base} answered without a member list");
    }
    Ok(value)
}
