//! Log entries and the hard state: what a driver must make durable.

use crate::types::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryPayload {
    /// The empty entry a new leader appends at the start of its term, so that it can commit
    /// (and learn the commit index of) everything before it (Raft §5.4.2, §8).
    Noop,
    /// An opaque client command for the state machine.
    Command(Vec<u8>),
}

impl EntryPayload {
    /// Bytes of payload, used for batching and in-flight limits.
    pub fn size_bytes(&self) -> usize {
        match self {
            EntryPayload::Noop => 0,
            EntryPayload::Command(data) => data.len(),
        }
    }
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub payload: EntryPayload,
}

impl Entry {
    /// Fixed per-entry overhead counted on top of the payload for byte limits (term, index,
    /// tag), so that even empty entries have a cost.
    pub const OVERHEAD_BYTES: usize = 24;

    /// The size this entry counts for in batching and flow-control limits.
    pub fn size_bytes(&self) -> usize {
        Self::OVERHEAD_BYTES + self.payload.size_bytes()
    }
}

/// The state a node must persist before it answers anyone: its term, its vote in that term,
/// and how far it knows the log to be committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub commit: LogIndex,
}
