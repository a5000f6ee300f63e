//! Service group handlers: members join, keep alive, leave and resign; the operator drains
//! and undrains farm members; anyone reads a group,
//! its master (with the fencing epoch) or the list of groups. Writes go through the log like
//! every store write (and redirect to the leader); reads are linearizable unless `?stale`.

use super::Scoped;
use super::errors::{ApiError, Reply};
use super::kv::write;
use super::routes::SERVICE_ACTIONS;
use rafting_core::replica::Numbered;
use rafting_core::store::services::{GroupView, MemberUpdate, Registration, ServiceMode};
use rafting_core::store::{Operation, Query, ReadAnswer};
use rafting_net::runtime::Consistency;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The body of `POST /v1/services/<name>/members`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    instance: String,
    #[serde(default)]
    addresses: BTreeMap<String, String>,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    ttl_ms: u64,
    #[serde(default)]
    mode: Option<ServiceMode>,
    #[serde(default)]
    expected_members: Option<u32>,
    #[serde(default)]
    start_after_ms: Option<u64>,
    #[serde(default)]
    failover_delay_ms: Option<u64>,
    #[serde(default)]
    draining: bool,
}

/// The body of `POST /v1/services/<name>/resign`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResignBody {
    instance: String,
    epoch: u64,
    #[serde(default)]
    to: Option<String>,
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid {what} body: {error}")))
}

/// `POST /v1/services/<name>/members`: registers a member (creating the group with its
/// settings if it is the first) and answers its role, the epoch and the master.
pub fn join(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: JoinBody = decode(body, "member")?;
    let last = group.rsplit('/').next().unwrap_or_default();
    if SERVICE_ACTIONS.contains(&last) {
        return Err(ApiError::bad_request(format!(
            "a group's name may not end with the segment {last:?} (it names an action)"
        )));
    }
    let registration = Registration {
        group: group.to_owned(),
        instance: body.instance,
        addresses: body.addresses,
        priority: body.priority,
        weight: body.weight,
        meta: body.meta,
        ttl_ms: body.ttl_ms,
        mode: body.mode,
        expected_members: body.expected_members,
        start_after_ms: body.start_after_ms,
        failover_delay_ms: body.failover_delay_ms,
        draining: body.draining,
    };
    write(
        api,
        url,
        numbered,
        Operation::RegisterMember(Box::new(registration)),
    )
}

/// The body of a member's report: `{"load"?, "draining"?, "weight"?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    load: Option<u64>,
    #[serde(default)]
    draining: Option<bool>,
    #[serde(default)]
    weight: Option<u32>,
}

/// `PUT /v1/services/<name>/members/<instance>` with `{"load"?, "draining"?, "weight"?}`:
/// a member reports its load, drains for maintenance, or changes its weight (and is kept
/// alive).
pub fn update(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    instance: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: UpdateBody = decode(body, "member update")?;
    let operation = Operation::MemberUpdate {
        group: group.to_owned(),
        instance: instance.to_owned(),
        update: MemberUpdate {
            load: body.load,
            draining: body.draining,
            weight: body.weight,
        },
    };
    write(api, url, numbered, operation)
}

/// `GET /v1/services/<name>/pick?strategy=round_robin|monte_carlo&n=K`: K distinct members
/// that are not draining (round robin rotates per serving node).
pub fn pick(
    api: &Scoped,
    url: &str,
    group: &str,
    monte_carlo: bool,
    n: u64,
    stale: bool,
) -> Result<Reply, ApiError> {
    let query = Query::Service {
        tenant: api.tenant,
        group: group.to_owned(),
    };
    let ReadAnswer::Service(view) = read(api, url, query, stale)? else {
        return Err(unexpected());
    };
    let candidates = super::pick::candidates(&view.members);
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let picked = if monte_carlo {
        super::pick::monte_carlo(&candidates, &mut rand::rng(), n)
    } else {
        let counter = {
            let mut counters = api
                .pick_counters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let counter = counters.entry(group.to_owned()).or_insert(0);
            let taken = *counter;
            *counter = counter.wrapping_add(n as u64);
            taken
        };
        super::pick::round_robin(&candidates, counter, n)
    };
    if picked.is_empty() {
        return Err(ApiError::new(
            503,
            "no_member",
            format!("{group} has no member to pick (none registered, or all draining)"),
        )
        .retry_after(1));
    }
    let members: Vec<Value> = picked
        .iter()
        .map(|member| {
            json!({
                "instance": member.instance,
                "addresses": member.addresses,
                "weight": member.weight,
                "load": member.load,
            })
        })
        .collect();
    Ok(Reply::json(&json!({
        "strategy": if monte_carlo { "monte_carlo" } else { "round_robin" },
        "members": members,
    })))
}

/// `PUT /v1/services/<name>/members/<instance>/keepalive`: the answer tells the member its
/// role, so one that only keeps alive still learns it was promoted or demoted. A body
/// (`{"load", "draining", "weight"}`) reports them in the same request.
pub fn keep_alive(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    instance: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    if !body.is_empty() {
        return update(api, url, numbered, group, instance, body);
    }
    let operation = Operation::MemberKeepAlive {
        group: group.to_owned(),
        instance: instance.to_owned(),
    };
    write(api, url, numbered, operation)
}

/// `DELETE /v1/services/<name>/members/<instance>`: a graceful leave.
pub fn leave(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    instance: &str,
) -> Result<Reply, ApiError> {
    let operation = Operation::Deregister {
        group: group.to_owned(),
        instance: instance.to_owned(),
    };
    write(api, url, numbered, operation)
}

/// `POST /v1/services/<name>/resign` with `{"instance", "epoch", "to"?}`.
pub fn resign(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: ResignBody = decode(body, "resign")?;
    let operation = Operation::Resign {
        group: group.to_owned(),
        instance: body.instance,
        epoch: body.epoch,
        to: body.to,
    };
    write(api, url, numbered, operation)
}

/// `POST /v1/services/<name>/members/<instance>/drain` or `.../undrain`: the operator takes a
/// farm member out of the picks, or gives it back. The flag is the operator's own: the
/// member's keep-alives, which carry its self-reported `draining`, never clear it.
pub fn drain(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    instance: &str,
    draining: bool,
) -> Result<Reply, ApiError> {
    let operation = Operation::DrainMember {
        group: group.to_owned(),
        instance: instance.to_owned(),
        draining,
    };
    write(api, url, numbered, operation)
}

/// `POST /v1/services/<name>/start`: a forming group starts with whoever is there.
pub fn start(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
) -> Result<Reply, ApiError> {
    let operation = Operation::StartGroup {
        group: group.to_owned(),
    };
    write(api, url, numbered, operation)
}

fn consistency(stale: bool) -> Consistency {
    if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    }
}

fn read(api: &Scoped, url: &str, query: Query, stale: bool) -> Result<ReadAnswer, ApiError> {
    api.handle
        .read(query, consistency(stale), api.request_timeout)
        .map_err(|error| api.client_error(error, url))
}

fn unexpected() -> ApiError {
    ApiError::new(
        500,
        "internal",
        "the node answered a service read unexpectedly",
    )
}

/// The JSON of a group: everything a reader needs.
pub fn group_json(view: &GroupView) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// `GET /v1/services/<name>`.
pub fn show(api: &Scoped, url: &str, group: &str, stale: bool) -> Result<Reply, ApiError> {
    let query = Query::Service {
        tenant: api.tenant,
        group: group.to_owned(),
    };
    match read(api, url, query, stale)? {
        ReadAnswer::Service(view) => Ok(Reply::json(&group_json(&view))),
        _ => Err(unexpected()),
    }
}

/// `GET /v1/services/<name>/master`: `{instance, epoch, addresses}`, or `null` fields when
/// the group has no master (with the epoch that says so).
pub fn master(api: &Scoped, url: &str, group: &str, stale: bool) -> Result<Reply, ApiError> {
    let query = Query::Service {
        tenant: api.tenant,
        group: group.to_owned(),
    };
    match read(api, url, query, stale)? {
        ReadAnswer::Service(view) => Ok(Reply::json(&match &view.master {
            Some(master) => serde_json::to_value(master).unwrap_or(Value::Null),
            None => json!({"instance": null, "epoch": view.epoch, "addresses": {}}),
        })),
        _ => Err(unexpected()),
    }
}

/// `GET /v1/services`: every group's name, mode, phase, master, epoch and member count.
pub fn list(api: &Scoped, url: &str) -> Result<Reply, ApiError> {
    let query = Query::Services { tenant: api.tenant };
    match read(api, url, query, false)? {
        ReadAnswer::Services(views) => {
            let groups: Vec<Value> = views
                .iter()
                .map(|view| {
                    json!({
                        "name": view.name,
                        "mode": view.mode,
                        "phase": view.phase,
                        "epoch": view.epoch,
                        "master": view.master.as_ref().map(|master| &master.instance),
                        "members": view.members.len(),
                    })
                })
                .collect();
            Ok(Reply::json(&json!({"services": groups})))
        }
        _ => Err(unexpected()),
    }
}
