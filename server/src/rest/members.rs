//! Membership change through the REST API: `GET /v1/cluster/members` (the configuration in
//! force, with addresses), `POST /v1/cluster/members` (add a learner or a voter),
//! `POST /v1/cluster/members/<id>/promote` and `DELETE /v1/cluster/members/<id>`.
//!
//! Changes go to the leader (a follower answers 307 to it, like any write) and are answered
//! once the configuration entry has committed and been applied. Refusals keep the replica's
//! stable codes: `409 change_in_progress`, `409 not_caught_up`, `409 already_member`,
//! `404 unknown_member`, `503 leader_not_ready` (retry shortly).

use super::Api;
use super::errors::{ApiError, Reply};
use rafting_core::NodeId;
use rafting_core::raft::{Membership, MembershipChange};
use rafting_net::runtime::MembershipApplied;
use rafting_net::runtime::members::MemberAddress;
use serde::Deserialize;
use serde_json::{Value, json};

/// The body of `POST /v1/cluster/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    id: u64,
    /// `HOST:PORT` the new member receives Raft datagrams on.
    udp: String,
    /// `HOST:PORT` of its REST API.
    http: String,
    /// A learner (the default) replicates without voting until promoted.
    #[serde(default = "learner_default")]
    learner: bool,
}

fn learner_default() -> bool {
    true
}

/// `GET /v1/cluster/members`: voters and learners of this node's newest configuration, each
/// with its addresses, and whether the configuration has committed.
pub fn list(api: &Api) -> Reply {
    let status = api.handle.status();
    let addresses = api.member_addresses();
    let membership = &status.membership;
    let members: Vec<Value> = membership
        .members()
        .map(|id| {
            let role = if membership.is_voter(id) {
                "voter"
            } else {
                "learner"
            };
            let address = addresses.get(&id);
            json!({
                "id": id.get(),
                "role": role,
                "udp": address.map(|a| a.udp.to_string()),
                "http": address.map(|a| a.http.to_string()),
            })
        })
        .collect();
    Reply::json(&json!({
        "voters": ids(&membership.voters),
        "learners": ids(&membership.learners),
        "committed": status.committed_membership.as_ref() == Some(membership)
            || !status.membership_learned,
        "members": members,
    }))
}

/// `POST /v1/cluster/members`: adds one member (a learner unless `"learner": false`).
pub fn add(api: &Api, url: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let body: AddBody = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid member body: {error}")))?;
    if body.id == 0 {
        return Err(ApiError::new(
            400,
            "invalid_member",
            "node id 0 is reserved",
        ));
    }
    let udp = crate::node_config::resolve(body.udp.trim(), "udp")
        .map_err(|error| ApiError::bad_request(format!("{error:#}")))?;
    let http = crate::node_config::resolve(body.http.trim(), "http")
        .map_err(|error| ApiError::bad_request(format!("{error:#}")))?;
    let change = MembershipChange::Add {
        id: NodeId(body.id),
        address: MemberAddress { udp, http }.encode(),
        learner: body.learner,
    };
    change_membership(api, url, change)
}

/// `POST /v1/cluster/members/<id>/promote`: a caught-up learner becomes a voter.
pub fn promote(api: &Api, url: &str, id: u64) -> Result<Reply, ApiError> {
    change_membership(api, url, MembershipChange::Promote { id: NodeId(id) })
}

/// `DELETE /v1/cluster/members/<id>`: a voter or a learner leaves.
pub fn remove(api: &Api, url: &str, id: u64) -> Result<Reply, ApiError> {
    change_membership(api, url, MembershipChange::Remove { id: NodeId(id) })
}

fn change_membership(api: &Api, url: &str, change: MembershipChange) -> Result<Reply, ApiError> {
    let described = format!("{change:?}");
    let applied = api
        .handle
        .change_membership(change, api.request_timeout)
        .map_err(|error| api.client_error(error, url))?;
    tracing::info!(change = %described, index = applied.index.get(), "membership changed");
    Ok(Reply::json(&applied_json(&applied)))
}

fn applied_json(applied: &MembershipApplied) -> Value {
    let Membership {
        voters, learners, ..
    } = &applied.membership;
    json!({
        "index": applied.index.get(),
        "term": applied.term.get(),
        "voters": ids(voters),
        "learners": ids(learners),
    })
}

fn ids(set: &std::collections::BTreeSet<NodeId>) -> Vec<u64> {
    set.iter().map(|id| id.get()).collect()
}
