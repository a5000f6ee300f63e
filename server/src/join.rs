//! `rafting node --join URL`: a new node grows a running cluster by itself. Before it starts,
//! it learns the cluster's members from the member at URL; once running, it asks to be added
//! as a learner, waits until it has caught up with the leader, and asks to be promoted
//! (retrying while the leader answers `not_caught_up`). A restart resumes where it stopped:
//! a node already in the configuration is not added again, a voter is done.

use crate::members_command::{self, MemberCommand};
use crate::rest::{Api, NodeAddresses};
use crate::signals;
use anyhow::{Context, Result};
use rafting_core::NodeId;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The cluster as a member lists it (`GET /v1/cluster/members`).
pub struct Listed {
    pub members: BTreeMap<NodeId, NodeAddresses>,
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

/// Asks the member at `url` who the cluster's members are.
pub fn cluster_members(url: &str, token: Option<&str>) -> Result<Listed> {
    let answer = members_command::list(url, token)
        .with_context(|| format!("--join {url}: learning the cluster's members"))?;
    let ids = |name: &str| -> BTreeSet<NodeId> {
        answer[name]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(NodeId)
            .collect()
    };
    let mut members = BTreeMap::new();
    for member in answer["members"].as_array().into_iter().flatten() {
        let address = |name: &str| member[name].as_str().and_then(|text| text.parse().ok());
        if let (Some(id), Some(udp), Some(http)) =
            (member["id"].as_u64(), address("udp"), address("http"))
        {
            members.insert(NodeId(id), NodeAddresses { udp, http });
        }
    }
    let listed = Listed {
        members,
        voters: ids("voters"),
        learners: ids("learners"),
    };
    tracing::info!(
        voters = ?listed.voters,
        learners = ?listed.learners,
        "--join: learned the cluster's members"
    );
    Ok(listed)
}

const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long one add or promote request is retried while the cluster answers "not now".
const CHANGE_WINDOW: Duration = Duration::from_secs(30);

/// Adds this node as a learner and promotes it once caught up; returns when it is a voter or
/// the node stops.
pub fn run(api: &Arc<Api>, url: &str) {
    let own = api.handle.id();
    let token = api.admin_token.as_deref();
    let Some(addresses) = api.members.get(&own).copied() else {
        return;
    };
    let mut added = false;
    while !signals::stop_requested() {
        let status = api.handle.status();
        let member = status.membership_learned && status.membership.contains(own);
        if member && status.membership.is_voter(own) {
            tracing::info!("--join: this node is a voter of the cluster");
            return;
        }
        let step = if !member && !added {
            let add = MemberCommand::Add {
                id: own.get(),
                udp: addresses.udp.to_string(),
                http: addresses.http.to_string(),
                learner: true,
            };
            tracing::info!(%url, "--join: asking to be added as a learner");
            let result = members_command::change(url, &add, token, CHANGE_WINDOW);
            added = result.is_ok() || refused_with(&result, "already_member");
            result.map(|_| ())
        } else if !member || status.raft.catching_up {
            // Added: the leader's entries and snapshot are on their way.
            Ok(())
        } else {
            tracing::info!(%url, "--join: caught up; asking to be promoted to a voter");
            let promote = MemberCommand::Promote { id: own.get() };
            let result = members_command::change(url, &promote, token, CHANGE_WINDOW);
            if refused_with(&result, "already_voter") {
                Ok(())
            } else {
                result.map(|_| ())
            }
        };
        if let Err(error) = step {
            tracing::warn!(error = %format!("{error:#}"), "--join: will try again");
            std::thread::sleep(Duration::from_secs(1));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn refused_with(result: &Result<Value>, code: &str) -> bool {
    let Err(error) = result else {
        return false;
    };
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<rafting_client::Error>())
        .any(|error| error.code() == Some(code))
}
