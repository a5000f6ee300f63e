//! Messages between peers: a typed enum with one struct per message.
//!
//! Every message carries the sender's term. Messages are serde-serializable; the runtime
//! encodes them with bincode, core itself never encodes anything.

use super::entry::Entry;
use crate::types::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

/// A message with its addressing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    PreVote(PreVote),
    PreVoteResponse(PreVoteResponse),
    RequestVote(RequestVote),
    RequestVoteResponse(RequestVoteResponse),
    AppendEntries(AppendEntries),
    AppendEntriesResponse(AppendEntriesResponse),
    Heartbeat(Heartbeat),
    HeartbeatResponse(HeartbeatResponse),
    TimeoutNow(TimeoutNow),
    InstallSnapshot(InstallSnapshot),
    InstallSnapshotResponse(InstallSnapshotResponse),
}

impl Message {
    /// The term the sender stamped on the message.
    pub fn term(&self) -> Term {
        match self {
            Message::PreVote(m) => m.term,
            Message::PreVoteResponse(m) => m.term,
            Message::RequestVote(m) => m.term,
            Message::RequestVoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesResponse(m) => m.term,
            Message::Heartbeat(m) => m.term,
            Message::HeartbeatResponse(m) => m.term,
            Message::TimeoutNow(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
        }
    }

    /// A short name for traces and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PreVote(_) => "PreVote",
            Message::PreVoteResponse(_) => "PreVoteResponse",
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteResponse(_) => "RequestVoteResponse",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesResponse(_) => "AppendEntriesResponse",
            Message::Heartbeat(_) => "Heartbeat",
            Message::HeartbeatResponse(_) => "HeartbeatResponse",
            Message::TimeoutNow(_) => "TimeoutNow",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
        }
    }
}

/// "Would you vote for me in `term` if I campaigned?" Sent before a real election so that a
/// node cut off from the cluster does not bump everyone's term when it comes back (thesis
/// §9.6). `term` is the term the sender *would* campaign in; nobody adopts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVote {
    pub term: Term,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
}

/// Answer to [`PreVote`]. When granted, `term` echoes the request's term; when refused it is
/// the responder's own term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteResponse {
    pub term: Term,
    pub granted: bool,
}

/// A candidate asks for a vote (Raft §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    pub term: Term,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    /// Set when the campaign was started by a leadership transfer ([`TimeoutNow`]): voters
    /// then grant even though they heard from the old leader a moment ago.
    pub transfer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    pub term: Term,
    pub granted: bool,
}

/// Replicate entries after `(prev_log_index, prev_log_term)` (Raft §5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    pub term: Term,
    pub prev_log_index: LogIndex,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    pub term: Term,
    pub outcome: AppendOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log now matches the leader's up to `match_index`.
    Accepted { match_index: LogIndex },
    /// The entry at `rejected_prev_index` did not match. The hint lets the leader skip a whole
    /// conflicting term at once instead of backing up one entry per round trip: the follower's
    /// term at the conflict (`hint_term`, if it has an entry there) and the first index it
    /// holds of that term, or its last index + 1 when its log is too short (`hint_index`).
    Rejected {
        rejected_prev_index: LogIndex,
        hint_index: LogIndex,
        hint_term: Option<Term>,
    },
}

/// Leader liveness and commit propagation. `commit` is already clamped by the leader to what
/// this follower is known to match, so the follower can adopt it without further checks.
/// `round` numbers the heartbeat so that ReadIndex can tell which round a quorum confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub term: Term,
    pub commit: LogIndex,
    pub round: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub term: Term,
    pub round: u64,
    /// The follower's last log index, so the leader can resume replication to a follower
    /// that fell behind.
    pub last_log_index: LogIndex,
}

/// Leadership transfer: "campaign now, skipping PreVote" (thesis §3.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    pub term: Term,
}

/// One chunk of the leader's newest snapshot, for a follower that needs entries the leader
/// has compacted away (thesis §5.4.3 / Raft Figure 13, in chunks that fit a datagram).
///
/// Every chunk names the whole snapshot — its last included entry `(index, snapshot_term)`,
/// its length and the CRC32C of the whole image — so a follower can tell a chunk of the
/// transfer it is assembling from one of another snapshot, and verifies the assembled image
/// end to end before installing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: Term,
    pub index: LogIndex,
    pub snapshot_term: Term,
    pub total_bytes: u64,
    pub checksum: u32,
    /// The configuration in force at `index`: the follower's configuration once installed.
    pub membership: super::membership::Membership,
    /// Where `data` starts in the image.
    pub offset: u64,
    pub data: Vec<u8>,
}

/// A follower's answer to [`InstallSnapshot`]: the offset it expects next in the snapshot
/// `(index, snapshot_term)`, or `installed` once the image is installed and durable (then
/// its log matches the leader's up to `index`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    pub term: Term,
    pub index: LogIndex,
    pub snapshot_term: Term,
    pub next_offset: u64,
    pub installed: bool,
}
