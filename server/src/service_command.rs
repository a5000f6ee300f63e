//! `rafting service list|show|resign|drain|undrain|join`: service groups through any node's REST API.
//!
//! `join` is a real member: it registers, keeps alive, prints every change of the role it may
//! act in (with the epoch), and on Ctrl-C or SIGTERM resigns if it is master and leaves, so
//! that two terminals show a failover by hand. Its timing and its acting rule are
//! [`rafting_core::member::Member`]'s: it prints `master` only while it may act as master.

use crate::client_command::{Failure, encode_key, send, send_with_headers};
use crate::signals;
use anyhow::{Context, Result};
use clap::Subcommand;
use rafting_core::Millis;
use rafting_core::member::{Action, Member, MemberConfig};
use rafting_core::store::services::{MemberView, Role};
use serde_json::{Value, json};
use std::io::Write;
use std::time::{Duration, Instant};

/// `rafting service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// The groups: name, mode, phase, master, epoch, member count.
    List,
    /// One group: settings, epoch, master, standbys in order, members.
    Show { name: String },
    /// Ask the master of a group to step down (as that member): the next standby takes over.
    Resign {
        name: String,
        #[arg(long)]
        instance: String,
        /// The epoch the member holds; a stale one is refused.
        #[arg(long)]
        epoch: u64,
        /// The member to hand over to (default: the next standby).
        #[arg(long)]
        to: Option<String>,
    },
    /// Take a farm member out of the picks as the operator: it stays registered, and its own
    /// keep-alives do not undo it (only `undrain` does).
    Drain { name: String, instance: String },
    /// Give a member the operator drained back to the picks (its own draining flag stays).
    Undrain { name: String, instance: String },
    /// Join a group as a member until Ctrl-C: prints every role change with its epoch.
    Join {
        name: String,
        /// This member's id, unique in the group.
        #[arg(long)]
        instance: String,
        /// An address to publish, as NAME=VALUE (repeatable): `--address http=10.0.0.5:8080`.
        #[arg(long = "address", value_parser = parse_pair)]
        addresses: Vec<(String, String)>,
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// Session time to live: a master that stops keeping alive is replaced after it.
        #[arg(long, default_value_t = 2_000)]
        ttl_ms: u64,
        /// Cold start: no master until this many members have joined.
        #[arg(long)]
        expected_members: Option<u32>,
        /// Hold-off after a master's session expires before a standby is appointed.
        #[arg(long)]
        failover_delay_ms: Option<u64>,
    },
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

/// Runs one `rafting service` command.
pub fn run(endpoint: &str, command: &ServiceCommand) -> Result<bool> {
    let base = endpoint.trim_end_matches('/');
    let mut out = std::io::stdout().lock();
    match command {
        ServiceCommand::List => {
            let answer: Value = send("GET", &format!("{base}/v1/services"), &[])?.json()?;
            writeln!(out, "{answer}")?;
        }
        ServiceCommand::Show { name } => {
            let url = format!("{base}/v1/services/{}", encode_key(name));
            let answer: Value = send("GET", &url, &[])?.json()?;
            writeln!(out, "{answer}")?;
        }
        ServiceCommand::Resign {
            name,
            instance,
            epoch,
            to,
        } => {
            let url = format!("{base}/v1/services/{}/resign", encode_key(name));
            let body = json!({"instance": instance, "epoch": epoch, "to": to}).to_string();
            let answer: Value = send("POST", &url, body.as_bytes())?.json()?;
            writeln!(out, "{answer}")?;
        }
        ServiceCommand::Drain { name, instance } | ServiceCommand::Undrain { name, instance } => {
            let action = match command {
                ServiceCommand::Drain { .. } => "drain",
                _ => "undrain",
            };
            let url = format!(
                "{base}/v1/services/{}/members/{}/{action}",
                encode_key(name),
                encode_segment(instance)
            );
            let answer: Value = send("POST", &url, &[])?.json()?;
            writeln!(out, "{answer}")?;
        }
        ServiceCommand::Join {
            name,
            instance,
            addresses,
            priority,
            ttl_ms,
            expected_members,
            failover_delay_ms,
        } => {
            let registration = json!({
                "instance": instance,
                "addresses": addresses.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "priority": priority,
                "ttl_ms": ttl_ms,
                "expected_members": expected_members,
                "failover_delay_ms": failover_delay_ms,
            });
            return join(base, name, instance, *ttl_ms, &registration);
        }
    }
    Ok(true)
}

/// Percent-encodes one path segment: an instance id's `/` too.
fn encode_segment(text: &str) -> String {
    encode_key(text).replace('/', "%2F")
}

/// A member's answer as the REST API gives it.
fn member_view(answer: &Value) -> Result<MemberView> {
    rafting_client::member_view(answer)
        .with_context(|| format!("an unexpected member answer: {answer}"))
}

/// Long-polls the group's changes (its mirror key under `/_services`) on a thread of its
/// own, and sends a signal on every change: a standby appointed by a resign hears of it one
/// commit later instead of at its next keep-alive.
fn watch_group(base: &str, name: &str) -> std::sync::mpsc::Receiver<(u64, Option<String>)> {
    let (changed, changes) = std::sync::mpsc::channel();
    let url = format!(
        "{base}/v1/kv/_services/{}?watch&timeout_ms=30000",
        encode_key(name)
    );
    // The prefix also covers groups named below this one: only this group's key counts.
    let key = format!("/_services/{}", name.trim_start_matches('/'));
    std::thread::spawn(move || {
        let mut since: Option<u64> = None;
        loop {
            let poll = match since {
                Some(since) => format!("{url}&since={since}"),
                None => url.clone(),
            };
            match send("GET", &poll, &[]).and_then(|answer| Ok(answer.json()?)) {
                Ok(batch) => {
                    since = batch["next_since"].as_u64().or(since);
                    let events = batch["events"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    for event in events.iter().filter(|event| event["key"] == key.as_str()) {
                        // The group's view, as the store wrote it: its epoch and master.
                        let Some(view) = event["value"]
                            .as_str()
                            .and_then(|text| serde_json::from_str::<Value>(text).ok())
                        else {
                            continue;
                        };
                        let epoch = view["epoch"].as_u64().unwrap_or(0);
                        let master = view["master"]["instance"].as_str().map(str::to_owned);
                        if changed.send((epoch, master)).is_err() {
                            return;
                        }
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    changes
}

/// Registers, keeps alive and reports role changes until a stop signal; then resigns (if
/// master) and leaves.
fn join(base: &str, name: &str, instance: &str, ttl_ms: u64, registration: &Value) -> Result<bool> {
    signals::install();
    let group = encode_key(name);
    let member_url = format!(
        "{base}/v1/services/{group}/members/{}",
        encode_key(instance)
    );
    let origin = Instant::now();
    let now = || Millis(origin.elapsed().as_millis() as u64);
    let mut member = Member::new(MemberConfig::with_ttl(ttl_ms));
    let mut printed: Option<(Role, u64)> = None;
    let mut out = std::io::stdout();
    let changes = watch_group(base, name);
    while !signals::stop_requested() {
        let action = member.next_action(now());
        let request = match action {
            Action::Register => Some((
                "POST",
                format!("{base}/v1/services/{group}/members"),
                registration.to_string().into_bytes(),
            )),
            Action::KeepAlive => Some(("PUT", format!("{member_url}/keepalive"), Vec::new())),
            Action::WaitUntil(_) => None,
        };
        if let Some((method, url, body)) = request {
            let sent_at = now();
            member.on_sent();
            // A request never outlives a keep-alive interval: a master must notice in time
            // that it can no longer renew.
            let timeout = Duration::from_millis(member.config().keep_alive_every_ms.max(50));
            match send_with_headers(method, &url, &[], &body, timeout) {
                Ok(response) => {
                    let answer: Value = response.json()?;
                    member.on_answer(sent_at, &member_view(&answer)?);
                }
                Err(Failure::Final(error)) => {
                    let text = error.to_string();
                    if text.starts_with("member_not_found") || text.starts_with("session_not_found")
                    {
                        eprintln!("the cluster no longer knows this member: registering again");
                        member.on_gone(now());
                    } else if text.starts_with("member_exists") {
                        // Its previous life's session is still alive: wait for it to end.
                        member.on_failure(now());
                    } else {
                        return Err(error);
                    }
                }
                Err(Failure::Retryable(error)) => {
                    tracing::debug!(%error, "keep-alive failed: retrying");
                    member.on_failure(now());
                }
            }
        }
        let acting = (member.acting_role(now()), member.epoch());
        if printed != Some(acting) && member.is_registered() {
            let role = match acting.0 {
                Role::Master => "master",
                Role::Standby => "standby",
                Role::Active => "active",
            };
            writeln!(
                out,
                "{role} epoch={} master={}",
                acting.1,
                member.master().unwrap_or("-")
            )?;
            out.flush()?;
            printed = Some(acting);
        }
        // Sleep until the next send, or the end of the acting window, whichever is first.
        let mut wake = match member.next_action(now()) {
            Action::WaitUntil(at) => at,
            _ => now(),
        };
        if member.acting_role(now()) == Role::Master {
            wake = wake.min(member.acting_until());
        }
        let pause = wake.since(now()).clamp(1, 20);
        if let Ok((epoch, master)) = changes.recv_timeout(Duration::from_millis(pause)) {
            member.on_observed(epoch, master.as_deref(), instance);
        }
    }
    // Stop acting first, then hand over, then leave.
    let was_master = member.acting_role(now()) == Role::Master;
    member.step_down();
    if was_master {
        writeln!(out, "resigning epoch={}", member.epoch())?;
        out.flush()?;
        let body = json!({"instance": instance, "epoch": member.epoch()}).to_string();
        let url = format!("{base}/v1/services/{group}/resign");
        if let Err(error) = send("POST", &url, body.as_bytes()) {
            eprintln!("resign failed: {error:#}");
        }
    }
    if let Err(error) = send("DELETE", &member_url, &[]) {
        eprintln!("leaving failed: {error:#}");
    }
    writeln!(out, "left")?;
    Ok(true)
}
