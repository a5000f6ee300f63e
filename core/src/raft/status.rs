//! A plain copy of a node's state (a status view, not a Raft snapshot), for status pages, metrics and traces.

use super::role::RoleName;
use crate::types::{LogIndex, NodeId, Term};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: RoleName,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit_index: LogIndex,
    pub applied_index: LogIndex,
    pub last_index: LogIndex,
    pub durable_index: LogIndex,
    /// Started on an empty disk and not yet caught up: it neither votes nor campaigns.
    pub catching_up: bool,
    /// While catching up: the index its log must hold durably before it may vote again (the
    /// commit index of the first leader it heard from); `None` before it heard from one.
    pub catch_up_target: Option<LogIndex>,
    /// Reads a leader holds (waiting for its term's first commit, for a heartbeat round, or
    /// for the state machine); zero on other roles. At most `pending_reads_max`.
    pub pending_reads: usize,
    /// The size of the entries after the commit index, as counted for `uncommitted_bytes_max`.
    pub uncommitted_bytes: usize,
    /// The voter a leader is handing leadership to (proposals wait meanwhile); `None` on
    /// other roles and when no transfer is in progress.
    pub transfer_target: Option<NodeId>,
    /// The last entry the newest snapshot this node holds covers (zero: none).
    pub snapshot_index: LogIndex,
    /// The first index the in-memory log holds an entry for.
    pub first_log_index: LogIndex,
    /// Snapshots installed from a leader since this node started.
    pub snapshots_installed: u64,
    /// Assembled snapshots refused because their checksum did not match.
    pub snapshot_checksum_failures: u64,
    /// The newest configuration in this node's log: who votes and who only learns.
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// The leader's view of each follower; empty on other roles.
    pub peers: Vec<PeerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: NodeId,
    pub match_index: LogIndex,
    pub next_index: LogIndex,
    pub state: &'static str,
    pub recent_active: bool,
    /// Times this leader saw the follower's log end below what it had acknowledged: its disk
    /// lost data (wiped, replaced, or a lying fsync).
    pub disk_losses: u64,
    /// Probing at the match point because the follower's heartbeat answer reported a shorter
    /// log than it had acknowledged (see `Progress::on_short_log_reported`).
    pub doubted: bool,
    /// Appends sent and not yet acknowledged while replicating (zero while probing or
    /// streaming a snapshot): at most `inflight_messages_max`.
    pub appends_in_flight: usize,
    /// Their size in bytes: the window closes at `inflight_bytes_max`.
    pub bytes_in_flight: usize,
}
