//! Service group handlers: members join, keep alive, leave and resign; anyone reads a group,
//! its master (with the fencing epoch) or the list of groups. Writes go through the log like
//! every store write (and redirect to the leader); reads are linearizable unless `?stale`.

use super::Api;
use super::errors::{ApiError, Reply};
use super::kv::write;
use super::routes::SERVICE_ACTIONS;
use rafting_core::replica::Numbered;
use rafting_core::store::services::{GroupView, Registration, ServiceMode};
use rafting_core::store::{Operation, Query, ReadAnswer, TenantId};
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
    api: &Api,
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
        meta: body.meta,
        ttl_ms: body.ttl_ms,
        mode: body.mode,
        expected_members: body.expected_members,
        start_after_ms: body.start_after_ms,
        failover_delay_ms: body.failover_delay_ms,
    };
    write(
        api,
        url,
        numbered,
        Operation::RegisterMember(Box::new(registration)),
    )
}

/// `PUT /v1/services/<name>/members/<instance>/keepalive`: the answer tells the member its
/// role, so one that only keeps alive still learns it was promoted or demoted.
pub fn keep_alive(
    api: &Api,
    url: &str,
    numbered: Option<Numbered>,
    group: &str,
    instance: &str,
) -> Result<Reply, ApiError> {
    let operation = Operation::MemberKeepAlive {
        group: group.to_owned(),
        instance: instance.to_owned(),
    };
    write(api, url, numbered, operation)
}

/// `DELETE /v1/services/<name>/members/<instance>`: a graceful leave.
pub fn leave(
    api: &Api,
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
    api: &Api,
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

/// `POST /v1/services/<name>/start`: a forming group starts with whoever is there.
pub fn start(
    api: &Api,
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

fn read(api: &Api, url: &str, query: Query, stale: bool) -> Result<ReadAnswer, ApiError> {
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
pub fn show(api: &Api, url: &str, group: &str, stale: bool) -> Result<Reply, ApiError> {
    let query = Query::Service {
        tenant: TenantId::DEFAULT,
        group: group.to_owned(),
    };
    match read(api, url, query, stale)? {
        ReadAnswer::Service(view) => Ok(Reply::json(&group_json(&view))),
        _ => Err(unexpected()),
    }
}

/// `GET /v1/services/<name>/master`: `{instance, epoch, addresses}`, or `null` fields when
/// the group has no master (with the epoch that says so).
pub fn master(api: &Api, url: &str, group: &str, stale: bool) -> Result<Reply, ApiError> {
    let query = Query::Service {
        tenant: TenantId::DEFAULT,
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
pub fn list(api: &Api, url: &str) -> Result<Reply, ApiError> {
    let query = Query::Services {
        tenant: TenantId::DEFAULT,
    };
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
