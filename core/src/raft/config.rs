//! A node's configuration: who it is, who its peers are, its timing and its limits.

use crate::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// Everything a node needs to know before its first input. Defaults are the ones users
/// otherwise discover in outages: PreVote and CheckQuorum on, bounded in-flight windows, and a
/// cap on uncommitted entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// The voting members the cluster starts with (this node among them, unless it joins as
    /// a learner). Only a bootstrap: once the log or a snapshot holds a configuration, that
    /// one is in force (see [`super::membership`]).
    pub voters: BTreeSet<NodeId>,
    /// The learners the cluster starts with (a node that joins a running cluster starts as
    /// the only learner of its own bootstrap, and learns the real configuration from the
    /// leader).
    #[serde(default)]
    pub learners: BTreeSet<NodeId>,
    /// Seeds the node's own generator (election timeout jitter). Same seed, same behaviour.
    pub seed: u64,
    pub heartbeat_interval_ms: u64,
    /// Election timeouts are drawn uniformly from `[min, max)` each time the timer is reset.
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// Ask for pre-votes before campaigning (thesis §9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum within an election timeout,
    /// and followers that heard from a live leader recently refuse to vote (thesis §6.2).
    pub check_quorum: bool,
    /// Limits of one AppendEntries message.
    pub entries_per_append_max: usize,
    pub bytes_per_append_max: usize,
    /// In-flight window per follower while replicating: unacknowledged appends, in messages
    /// and in bytes.
    pub inflight_messages_max: usize,
    pub inflight_bytes_max: usize,
    /// Proposals are refused once the leader holds this many entries (or bytes) beyond its
    /// commit index.
    pub uncommitted_entries_max: usize,
    pub uncommitted_bytes_max: usize,
    /// Largest payload a single proposal may carry.
    pub proposal_bytes_max: usize,
    /// Pending ReadIndex requests a leader holds at once.
    pub pending_reads_max: usize,
    /// This node starts on an empty disk in a cluster that already exists: its data was lost
    /// (a wiped or replaced disk) or it never had any. Raft assumes a voter never forgets
    /// what it acknowledged, so such a node must not vote or campaign until a leader has
    /// brought its log up to that leader's commit index; otherwise it could elect a stale node
    /// and every write it had helped commit could be lost. A brand-new cluster is bootstrapped
    /// with this off (the runtime's `--initial-cluster-state new`).
    pub catch_up_before_voting: bool,
    /// Bytes of snapshot image per [`super::InstallSnapshot`] chunk: small enough that a
    /// chunk fits one datagram. Chunks in flight share the append window
    /// (`inflight_messages_max`, `inflight_bytes_max`).
    pub snapshot_chunk_bytes: usize,
    /// The largest snapshot a follower accepts from a leader (a bound against a damaged or
    /// hostile length; far above any store the tenant caps allow).
    pub snapshot_bytes_max: u64,
    /// Test-only planted bug: a follower installs an assembled snapshot without checking its
    /// CRC32C. The simulator's `snapshot_state_matches` checker must catch it once a chunk is
    /// damaged in transit.
    pub planted_snapshot_unverified: bool,
    /// Test-only planted bug: a leader proposes a configuration change before an entry of its
    /// own term has committed, and while another change is still uncommitted (the
    /// single-server change bug). The simulator's election and membership checkers must catch
    /// it.
    #[serde(default)]
    pub planted_membership_unguarded: bool,
    /// Test-only planted bug: a leader commits an entry of an earlier term by counting the
    /// followers that hold it, without waiting for an entry of its own term (the Raft paper's
    /// Figure 8). The simulator's `figure8_paper` scenario must catch it.
    #[serde(default)]
    pub planted_commit_by_counting: bool,
}

impl Config {
    /// The configuration the cluster starts with, before the log holds one.
    pub fn bootstrap_membership(&self) -> super::membership::Membership {
        super::membership::Membership::new(
            self.voters.iter().copied(),
            self.learners.iter().copied(),
        )
    }

    /// A configuration with the default timing and limits.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>, seed: u64) -> Self {
        Config {
            id,
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
            seed,
            heartbeat_interval_ms: 100,
            election_timeout_ms_min: 1000,
            election_timeout_ms_max: 2000,
            pre_vote: true,
            check_quorum: true,
            entries_per_append_max: 256,
            bytes_per_append_max: 48 * 1024,
            inflight_messages_max: 64,
            inflight_bytes_max: 4 * 1024 * 1024,
            uncommitted_entries_max: 10_000,
            uncommitted_bytes_max: 32 * 1024 * 1024,
            proposal_bytes_max: 1024 * 1024,
            pending_reads_max: 10_000,
            catch_up_before_voting: false,
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
            snapshot_bytes_max: 4 << 30,
            planted_snapshot_unverified: false,
            planted_membership_unguarded: false,
            planted_commit_by_counting: false,
        }
    }

    /// Checks the relations between the settings; a node refuses to start on a bad config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId::ZERO {
            return Err(ConfigError::ZeroNodeId);
        }
        if self.voters.contains(&NodeId::ZERO) || self.learners.contains(&NodeId::ZERO) {
            return Err(ConfigError::ZeroNodeId);
        }
        if !self.voters.contains(&self.id) && !self.learners.contains(&self.id) {
            return Err(ConfigError::NotAVoter(self.id));
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "heartbeat_interval_ms must be positive",
            ));
        }
        if self.election_timeout_ms_min <= self.heartbeat_interval_ms {
            return Err(ConfigError::Invalid(
                "election_timeout_ms_min must exceed heartbeat_interval_ms",
            ));
        }
        if self.election_timeout_ms_max <= self.election_timeout_ms_min {
            return Err(ConfigError::Invalid(
                "election_timeout_ms_max must exceed election_timeout_ms_min",
            ));
        }
        let positive = [
            (self.entries_per_append_max, "entries_per_append_max"),
            (self.bytes_per_append_max, "bytes_per_append_max"),
            (self.inflight_messages_max, "inflight_messages_max"),
            (self.inflight_bytes_max, "inflight_bytes_max"),
            (self.uncommitted_entries_max, "uncommitted_entries_max"),
            (self.uncommitted_bytes_max, "uncommitted_bytes_max"),
            (self.proposal_bytes_max, "proposal_bytes_max"),
            (self.pending_reads_max, "pending_reads_max"),
            (self.snapshot_chunk_bytes, "snapshot_chunk_bytes"),
        ];
        for (value, name) in positive {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.snapshot_chunk_bytes > SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(ConfigError::Invalid(
                "snapshot_chunk_bytes must fit one datagram (at most 56 KiB)",
            ));
        }
        Ok(())
    }
}

/// Default size of one snapshot chunk: with its header and the datagram envelope it stays
/// well inside one UDP datagram (the runtime's limit is 60,000 bytes).
pub const SNAPSHOT_CHUNK_BYTES_DEFAULT: usize = 32 * 1024;
/// The largest chunk a node may be configured to send.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 56 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("node id 0 is reserved")]
    ZeroNodeId,
    #[error("node {0} is neither among the voters nor among the learners")]
    NotAVoter(NodeId),
    #[error("invalid timing: {0}")]
    Invalid(&'static str),
    #[error("{0} must be positive")]
    Zero(&'static str),
}
