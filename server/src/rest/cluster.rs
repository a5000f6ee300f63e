//! Administration handlers: this node's status, the cluster view (gathered from every
//! member's `/v1/status`), health, leadership transfer and Prometheus metrics.

use super::errors::{ApiError, Reply};
use super::{Api, NodeAddresses};
use rafting_core::NodeId;
use serde_json::{Value, json};
use std::time::Duration;

/// How long `/v1/cluster` waits for each other member's status.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// The node loop goes round at least every 100 ms; silent longer than this, it is dead or
/// wedged and the node is unhealthy whatever its last published status says.
const LOOP_SILENCE_MAX: Duration = Duration::from_secs(1);

/// `GET /v1/status`: this node's own view.
pub fn status_json(api: &Api) -> Value {
    let status = api.handle.status();
    let raft = &status.raft;
    let addresses = api.members.get(&raft.id);
    // A learner's Raft role is follower; the API names what it is.
    let role = if status.membership.is_learner(raft.id) && raft.role.as_str() == "follower" {
        "learner"
    } else {
        raft.role.as_str()
    };
    let progress: Vec<Value> = raft
        .peers
        .iter()
        .map(|peer| {
            json!({
                "id": peer.id.get(),
                "match_index": peer.match_index.get(),
                "next_index": peer.next_index.get(),
                "state": peer.state,
                "recent_active": peer.recent_active,
                "disk_lost": peer.disk_losses > 0,
                "disk_losses": peer.disk_losses,
                "appends_in_flight": peer.appends_in_flight,
                "bytes_in_flight": peer.bytes_in_flight,
            })
        })
        .collect();
    json!({
        "id": raft.id.get(),
        "http": addresses.map(|a| a.http.to_string()),
        "udp": addresses.map(|a| a.udp.to_string()),
        "reachable": true,
        "role": role,
        "term": raft.term.get(),
        "voters": raft.voters.iter().map(|id| id.get()).collect::<Vec<_>>(),
        "learners": raft.learners.iter().map(|id| id.get()).collect::<Vec<_>>(),
        "leader": raft.leader.map(|id| id.get()),
        "commit_index": raft.commit_index.get(),
        "applied_index": raft.applied_index.get(),
        "last_index": raft.last_index.get(),
        "durable_index": raft.durable_index.get(),
        "snapshot_index": raft.snapshot_index.get(),
        "first_log_index": raft.first_log_index.get(),
        "snapshots_installed": raft.snapshots_installed,
        "catching_up": raft.catching_up,
        "catch_up_target": raft.catch_up_target.map(|index| index.get()),
        "pending_reads": raft.pending_reads,
        "uncommitted_bytes": raft.uncommitted_bytes,
        "transfer_target": raft.transfer_target.map(|id| id.get()),
        "store_revision": status.store_revision,
        "storage_failed": status.storage_failed,
        "progress": progress,
    })
}

/// Fetches another member's `/v1/status`; an unreachable member is reported as such.
fn peer_status(api: &Api, id: NodeId, addresses: Option<NodeAddresses>) -> Value {
    let Some(addresses) = addresses else {
        return json!({"id": id.get(), "reachable": false});
    };
    let url = format!("http://{}/v1/status", addresses.http);
    let agent = ureq::AgentBuilder::new()
        .timeout(PEER_STATUS_TIMEOUT)
        .redirects(0)
        .build();
    let mut request = agent.get(&url);
    // Every member holds the same admin token: with tenants on, status needs a token.
    if let Some(token) = &api.admin_token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let fetched = request
        .call()
        .map_err(|error| error.to_string())
        .and_then(|response| response.into_json::<Value>().map_err(|e| e.to_string()));
    match fetched {
        Ok(status) => status,
        Err(error) => json!({
            "id": id.get(),
            "http": addresses.http.to_string(),
            "udp": addresses.udp.to_string(),
            "reachable": false,
            "error": error,
        }),
    }
}

/// `GET /v1/cluster`: every member's status (fetched in parallel), the leader and term as
/// the most advanced reachable member sees them, and the leader's view of each follower.
pub fn cluster(api: &Api) -> Reply {
    let own_id = api.handle.id();
    let members = api.member_addresses();
    let membership = api.handle.status().membership;
    let mut nodes: Vec<Value> = std::thread::scope(|scope| {
        let fetches: Vec<_> = members
            .iter()
            .filter(|&(&id, _)| id != own_id)
            .map(|(&id, &addresses)| scope.spawn(move || peer_status(api, id, Some(addresses))))
            .collect();
        let mut nodes = vec![status_json(api)];
        nodes.extend(fetches.into_iter().filter_map(|fetch| fetch.join().ok()));
        nodes
    });
    nodes.sort_by_key(|node| node["id"].as_u64().unwrap_or(0));
    let newest = nodes
        .iter()
        .filter(|node| node["reachable"] == json!(true))
        .max_by_key(|node| (node["term"].as_u64(), node["leader"].is_u64()));
    let term = newest
        .map(|node| node["term"].clone())
        .unwrap_or(Value::Null);
    let leader = newest
        .map(|node| node["leader"].clone())
        .unwrap_or(Value::Null);
    let progress = nodes
        .iter()
        .find(|node| node["role"] == json!("leader") && node["term"] == term)
        .map(|node| node["progress"].clone())
        .unwrap_or_else(|| json!([]));
    let ids = |set: &std::collections::BTreeSet<NodeId>| -> Vec<u64> {
        set.iter().map(|id| id.get()).collect()
    };
    Reply::json(&json!({
        "leader": leader,
        "term": term,
        "voters": ids(&membership.voters),
        "learners": ids(&membership.learners),
        "nodes": nodes,
        "progress": progress,
    }))
}

/// `GET /v1/health`: 200 when this node's loop went round within the last second, it sees a
/// leader and has applied everything it knows to be committed; 503 (with Retry-After)
/// otherwise.
pub fn health(api: &Api) -> Reply {
    let status = api.handle.status();
    let raft = &status.raft;
    let loop_silence = api.handle.loop_silence();
    let problem = if loop_silence > LOOP_SILENCE_MAX {
        Some(format!(
            "the node loop has not answered for {} ms",
            loop_silence.as_millis()
        ))
    } else if let Some(failure) = &status.storage_failed {
        Some(format!("storage failed: {failure}"))
    } else if raft.catching_up {
        Some(
            "started on an empty data directory: catching up from a leader before it may vote"
                .to_owned(),
        )
    } else if raft.leader.is_none() {
        Some("no leader is known".to_owned())
    } else if raft.applied_index < raft.commit_index {
        Some(format!(
            "applied index {} is behind commit index {}",
            raft.applied_index.get(),
            raft.commit_index.get()
        ))
    } else {
        None
    };
    match problem {
        None => Reply::json(&json!({
            "status": "ok",
            "id": raft.id.get(),
            "role": raft.role.as_str(),
            "leader": raft.leader.map(|id| id.get()),
            "term": raft.term.get(),
        })),
        Some(message) => ApiError::new(503, "unhealthy", message)
            .retry_after(1)
            .into_reply(),
    }
}

/// `POST /v1/cluster/transfer-leader?to=<id>`: redirected to the leader when sent elsewhere.
pub fn transfer_leader(api: &Api, url: &str, to: u64) -> Result<Reply, ApiError> {
    let target = NodeId(to);
    if !api.member_addresses().contains_key(&target) {
        return Err(ApiError::new(
            404,
            "unknown_node",
            format!("node {to} is not a member of this cluster"),
        ));
    }
    api.handle
        .transfer_leader(target)
        .map_err(|error| api.client_error(error, url))?;
    Ok(Reply::json(&json!({"transferring_to": to})))
}

/// `POST /v1/clients`: registers an exactly-once client record and answers `{"client": id}`.
/// Writes that carry `X-Rafting-Client: id` and `X-Rafting-Sequence: n` are then applied at
/// most once per `(id, n)`: a retry gets the first answer. Redirected to the leader.
pub fn register_client(api: &Api, url: &str) -> Result<Reply, ApiError> {
    let client = api
        .handle
        .register_client(api.request_timeout)
        .map_err(|error| api.client_error(error, url))?;
    Ok(Reply::json(&json!({"client": client.get()})))
}

/// `GET /metrics`: the node's metrics and the HTTP counters, in Prometheus text format.
pub fn metrics(api: &Api) -> Reply {
    let mut out = String::new();
    api.handle.metrics().render(&mut out);
    api.http_metrics.render(&mut out);
    Reply::text(out)
}

/// `POST /v1/debug/panic`: kills the node loop, to test fail-stop. Unless the node was started
/// with the test variable, the route does not exist (404), so no client can reach it.
pub fn debug_panic(api: &Api) -> Result<Reply, ApiError> {
    if !api.debug_panic_route {
        return Err(ApiError::not_found_route("POST", "/v1/debug/panic"));
    }
    tracing::warn!("a test asked for the node loop to panic");
    api.handle.inject_node_loop_panic();
    Ok(Reply::json(&json!({"panicking": "node loop"})))
}
