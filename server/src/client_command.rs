//! The client commands, `rafting kv put|get|del|list|txn|watch` and `rafting cluster status`:
//! small HTTP calls against any node's REST API. A 307 from a follower is followed to the
//! leader (with the body re-sent), so any node's address works as the endpoint.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

pub const ENDPOINT_DEFAULT: &str = "http://127.0.0.1:8001";

#[derive(Debug, Args)]
pub struct Endpoint {
    /// Base URL of any node's REST API. Several, comma-separated, let `kv watch` resume on the
    /// next one when a node fails; the other commands use the first
    #[arg(long, default_value = ENDPOINT_DEFAULT, global = true)]
    pub endpoint: String,
}

/// The base URLs of a comma-separated `--endpoint`, without trailing slashes.
pub fn endpoints(endpoint: &str) -> Vec<&str> {
    endpoint
        .split(',')
        .map(|base| base.trim().trim_end_matches('/'))
        .filter(|base| !base.is_empty())
        .collect()
}

/// `rafting kv ...`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Write a key: VALUE is stored as its UTF-8 bytes; without VALUE, or with `-`, the value
    /// is standard input, byte for byte. Exactly once: the write is numbered on a client record
    /// of its own and retried (on each endpoint in turn, for up to 30 s) while its outcome is
    /// unknown, and a retry is never applied twice.
    Put {
        key: String,
        value: Option<String>,
        /// Compare-and-set: write only if the key's version is this (0: only if absent)
        #[arg(long)]
        cas: Option<u64>,
        /// Bind the key to a session: it is deleted when the session ends
        #[arg(long)]
        session: Option<u64>,
    },
    /// Print a key's value (raw bytes on standard output).
    Get {
        key: String,
        /// Read this node's copy, which may lag, instead of a linearizable read
        #[arg(long)]
        stale: bool,
        /// Also print the version and revisions (on standard error)
        #[arg(long)]
        verbose: bool,
    },
    /// Delete a key.
    Del { key: String },
    /// List the keys under a prefix, one per line: key, version, value.
    List {
        #[arg(default_value = "/")]
        prefix: String,
        /// At most this many keys (0: the server's maximum)
        #[arg(long, default_value_t = 0)]
        limit: u32,
        #[arg(long)]
        stale: bool,
    },
    /// Run a transaction: compares, then the success or the failure operations (the JSON of
    /// POST /v1/txn). Prints the answer; exits 1 when the comparison failed.
    Txn {
        /// The transaction as JSON; without it, or with `-`, standard input
        json: Option<String>,
    },
    /// Print every change under a prefix as it happens, until Ctrl-C. With several
    /// endpoints, a failed node is replaced by the next, resuming where the watch stopped.
    Watch {
        #[arg(default_value = "/")]
        prefix: String,
        /// First revision to report (default: changes from now on)
        #[arg(long)]
        since: Option<u64>,
    },
}

/// Requests wait this long at most (a watch long poll takes up to 60 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(70);

/// A node's answer.
pub use rafting_client::Answer;
/// Percent-encodes a key for a URL path, keeping its `/` separators.
pub use rafting_client::encode as encode_key;

/// Sends a request to one node, following 307/308 redirects with the same method and body
/// (the client library's HTTP layer).
pub fn send(method: &str, url: &str, body: &[u8]) -> Result<Answer> {
    send_with_headers(method, url, &[], body, REQUEST_TIMEOUT).map_err(Failure::into_error)
}

/// Why a request failed, and whether sending it again may succeed.
#[derive(Debug)]
pub enum Failure {
    /// The node could not be reached, or answered that it cannot decide now (no leader,
    /// timeout, outcome unknown, overloaded, shutting down).
    Retryable(anyhow::Error),
    Final(anyhow::Error),
}

impl Failure {
    pub fn into_error(self) -> anyhow::Error {
        match self {
            Failure::Retryable(error) | Failure::Final(error) => error,
        }
    }
}

/// [`send`] with extra headers, sent again on every redirect, and a timeout for each
/// exchange.
pub fn send_with_headers(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, Failure> {
    let mut headers = headers.to_vec();
    if let Some(token) = bearer_from_environment(&headers) {
        headers.push(("Authorization", token));
    }
    // The error says what failed: the API's code and message, or the request that could not
    // be sent (`rafting service join` matches on the codes).
    rafting_client::send_to(method, url, body, &headers, timeout).map_err(|error| {
        if error.is_retryable() {
            Failure::Retryable(error.into())
        } else {
            Failure::Final(error.into())
        }
    })
}

/// The variable that carries the token of every client command (`rafting dev --secure`
/// prints how to set it); the client library reads the same one.
pub use rafting_client::TOKEN_VARIABLE;

/// `Authorization: Bearer $RAFTING_TOKEN`, unless the caller sets the header itself or the
/// variable is unset or empty.
fn bearer_from_environment(headers: &[(&str, String)]) -> Option<String> {
    if headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("Authorization"))
    {
        return None;
    }
    let token = std::env::var(TOKEN_VARIABLE).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| format!("Bearer {token}"))
}

/// How long `kv put` goes on retrying a write whose outcome it does not know.
const PUT_RETRY_WINDOW: Duration = Duration::from_secs(30);

/// Sends a write exactly once, through the client library: a client record of its own, the
/// write numbered, and retried with the same numbering on each endpoint in turn while its
/// outcome is unknown, so it is applied at most once however many attempts it takes.
fn write_exactly_once(endpoints: &[&str], path: &str, body: &[u8]) -> Result<Value> {
    let endpoints = if endpoints.is_empty() {
        ENDPOINT_DEFAULT.to_owned()
    } else {
        endpoints.join(",")
    };
    let token = std::env::var(TOKEN_VARIABLE).unwrap_or_default();
    let rafting = rafting_client::Connect::new(&endpoints)
        .token(&token)
        .timeout(REQUEST_TIMEOUT)
        .retry_window(PUT_RETRY_WINDOW)
        .connect()?;
    rafting.write("PUT", path, body).map_err(|error| {
        let gave_up = error.is_retryable();
        let error = anyhow::Error::new(error);
        if gave_up {
            error.context(format!(
                "gave up after {} s; the write may or may not have been applied",
                PUT_RETRY_WINDOW.as_secs()
            ))
        } else {
            error
        }
    })
}

/// Runs one `rafting kv` command.
pub fn run_kv(endpoint: &str, command: &KvCommand) -> Result<bool> {
    let endpoints = endpoints(endpoint);
    let base = endpoints.first().copied().unwrap_or(ENDPOINT_DEFAULT);
    let mut out = std::io::stdout().lock();
    match command {
        KvCommand::Put {
            key,
            value,
            cas,
            session,
        } => {
            let mut path = format!("/v1/kv/{}?", encode_key(key));
            if let Some(version) = cas {
                path.push_str(&format!("cas={version}&"));
            }
            if let Some(session) = session {
                path.push_str(&format!("session={session}&"));
            }
            let value = argument_or_stdin(value.as_deref())?;
            let answer = write_exactly_once(&endpoints, &path, &value)?;
            writeln!(out, "{answer}")?;
        }
        KvCommand::Get {
            key,
            stale,
            verbose,
        } => {
            let flag = if *stale { "?stale" } else { "" };
            let url = format!("{base}/v1/kv/{}{flag}", encode_key(key));
            let answer = send("GET", &url, &[])?;
            if *verbose {
                for name in ["X-Rafting-Version", "X-Rafting-Create-Revision"] {
                    eprintln!("{name}: {}", answer.header(name).unwrap_or("-"));
                }
                let modify = answer.header("X-Rafting-Modify-Revision").unwrap_or("-");
                eprintln!("X-Rafting-Modify-Revision: {modify}");
            }
            out.write_all(&answer.body)?;
            if std::io::IsTerminal::is_terminal(&out) {
                writeln!(out)?;
            }
        }
        KvCommand::Del { key } => {
            let url = format!("{base}/v1/kv/{}", encode_key(key));
            writeln!(out, "{}", json(&send("DELETE", &url, &[])?)?)?;
        }
        KvCommand::List {
            prefix,
            limit,
            stale,
        } => list(base, prefix, *limit, *stale, &mut out)?,
        KvCommand::Txn { json: body } => {
            let body = argument_or_stdin(body.as_deref())?;
            let answer = json(&send("POST", &format!("{base}/v1/txn"), &body)?)?;
            writeln!(out, "{answer}")?;
            return Ok(answer["succeeded"] == Value::Bool(true));
        }
        KvCommand::Watch { prefix, since } => watch(&endpoints, prefix, *since, &mut out)?,
    }
    Ok(true)
}

/// The bytes of an argument, or all of standard input when it is absent or `-`.
pub fn argument_or_stdin(argument: Option<&str>) -> Result<Vec<u8>> {
    match argument {
        Some(text) if text != "-" => Ok(text.as_bytes().to_vec()),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("reading standard input")?;
            Ok(bytes)
        }
    }
}

fn value_text(entry: &Value) -> String {
    match (&entry["value"], &entry["value_base64"]) {
        (Value::String(text), _) => text.clone(),
        (_, Value::String(encoded)) => format!("base64:{encoded}"),
        _ => String::new(),
    }
}

fn list(base: &str, prefix: &str, limit: u32, stale: bool, out: &mut impl Write) -> Result<()> {
    let stale = if stale { "&stale" } else { "" };
    let url = format!(
        "{base}/v1/kv/{}?list&limit={limit}{stale}",
        encode_key(prefix)
    );
    let answer = json(&send("GET", &url, &[])?)?;
    let entries = answer["entries"].as_array().cloned().unwrap_or_default();
    for entry in &entries {
        let key = entry["key"].as_str().unwrap_or("");
        writeln!(out, "{key}\tv{}\t{}", entry["version"], value_text(entry))?;
    }
    if let Some(after) = answer["continue_after"].as_str() {
        writeln!(out, "(more keys after {after}; use --limit)")?;
    }
    Ok(())
}

/// Polls that fail in a row, on every endpoint, before `kv watch` gives up.
const WATCH_FAILED_ROUNDS_MAX: usize = 5;
/// The pause after a failed poll before the next endpoint is tried.
const WATCH_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why one watch poll failed.
enum PollFailure {
    /// The node could not serve it (unreachable, stopping, failing): another node can.
    NodeUnavailable(anyhow::Error),
    /// The request itself was refused (a bad prefix, a compacted revision): no node will
    /// serve it.
    Refused(anyhow::Error),
}

/// One long poll (any node serves watches).
fn poll_watch(url: &str) -> Result<Value, PollFailure> {
    match send_with_headers("GET", url, &[], &[], REQUEST_TIMEOUT) {
        Ok(answer) => json(&answer).map_err(PollFailure::NodeUnavailable),
        Err(Failure::Final(error))
            if error.downcast_ref::<rafting_client::Error>().is_some_and(
                |error| matches!(error, rafting_client::Error::Api { status, .. } if *status < 500),
            ) =>
        {
            Err(PollFailure::Refused(error))
        }
        Err(Failure::Final(error) | Failure::Retryable(error)) => Err(
            PollFailure::NodeUnavailable(error.context(format!("GET {url}"))),
        ),
    }
}

fn json(answer: &Answer) -> Result<Value> {
    answer.json().context("reading the JSON answer")
}

/// Prints the changes under `prefix` until Ctrl-C, polling the endpoints in turn: when one
/// fails, the next continues from the revision where the watch stopped, so no change is
/// missed or printed twice. Without `since`, the first poll starts from the node's current
/// revision.
fn watch(endpoints: &[&str], prefix: &str, since: Option<u64>, out: &mut impl Write) -> Result<()> {
    let path = encode_key(prefix);
    let mut since = since;
    let mut endpoint_index = 0;
    let mut failures_in_a_row = 0;
    crate::signals::install();
    while !crate::signals::stop_requested() {
        let base = endpoints[endpoint_index % endpoints.len()];
        let mut url = format!("{base}/v1/kv/{path}?watch&timeout_ms=1000");
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        let answer = match poll_watch(&url) {
            Ok(answer) => answer,
            Err(PollFailure::Refused(error)) => return Err(error),
            Err(PollFailure::NodeUnavailable(error)) => {
                failures_in_a_row += 1;
                if failures_in_a_row >= endpoints.len() * WATCH_FAILED_ROUNDS_MAX {
                    return Err(error.context("no endpoint answers the watch"));
                }
                endpoint_index += 1;
                let next = endpoints[endpoint_index % endpoints.len()];
                eprintln!("watch: {base} failed ({error:#}); going on with {next}");
                std::thread::sleep(WATCH_RETRY_PAUSE);
                continue;
            }
        };
        failures_in_a_row = 0;
        for event in answer["events"].as_array().into_iter().flatten() {
            let kind = event["type"].as_str().unwrap_or("?");
            let key = event["key"].as_str().unwrap_or("");
            writeln!(
                out,
                "{}\t{kind}\t{key}\t{}",
                event["revision"],
                value_text(event)
            )?;
        }
        out.flush()?;
        since = answer["next_since"].as_u64().or(since);
    }
    Ok(())
}

/// `rafting cluster status`: a table of the members as the endpoint's node gathers them.
pub fn cluster_status(endpoint: &str) -> Result<bool> {
    let base = endpoints(endpoint)
        .first()
        .copied()
        .unwrap_or(ENDPOINT_DEFAULT);
    let url = format!("{base}/v1/cluster");
    let answer = json(&send("GET", &url, &[])?)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "leader: {}   term: {}",
        answer["leader"], answer["term"]
    )?;
    writeln!(
        out,
        "{:<4} {:<13} {:>6} {:>9} {:>9} {:>9}  {:<21} {:<21}",
        "ID", "ROLE", "TERM", "COMMIT", "APPLIED", "LAST", "HTTP", "UDP"
    )?;
    for node in answer["nodes"].as_array().into_iter().flatten() {
        let text = |name: &str| match &node[name] {
            Value::String(text) => text.clone(),
            Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        let role = if node["reachable"] == Value::Bool(true) {
            text("role")
        } else {
            "unreachable".to_owned()
        };
        writeln!(
            out,
            "{:<4} {:<13} {:>6} {:>9} {:>9} {:>9}  {:<21} {:<21}",
            text("id"),
            role,
            text("term"),
            text("commit_index"),
            text("applied_index"),
            text("last_index"),
            text("http"),
            text("udp")
        )?;
    }
    for peer in answer["progress"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "progress of node {}: match {} next {} {} {}",
            peer["id"],
            peer["match_index"],
            peer["next_index"],
            peer["state"].as_str().unwrap_or("?"),
            if peer["recent_active"] == Value::Bool(true) {
                "active"
            } else {
                "inactive"
            },
        )?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_but_keep_their_slashes() {
        assert_eq!(encode_key("/services/web/n1"), "services/web/n1");
        assert_eq!(encode_key("/a b/ü?"), "a%20b/%C3%BC%3F");
    }

    #[test]
    fn several_endpoints_are_separated_by_commas() {
        // Proves the `--endpoint` list: commas separate, blanks and trailing slashes go.
        assert_eq!(
            endpoints("http://a:1/, http://b:2,,"),
            ["http://a:1", "http://b:2"]
        );
        assert_eq!(endpoints("http://a:1"), ["http://a:1"]);
    }
}
