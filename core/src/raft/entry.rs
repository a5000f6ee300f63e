//! Log entries and the hard state: what a driver must make durable.

use super::membership::Membership;
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryPayload {
    /// The empty entry a new leader appends at the start of its term, so that it can commit
    /// (and learn the commit index of) everything before it (Raft §5.4.2, §8).
    Noop,
    /// An opaque client command for the state machine.
    ///
    /// Shared, not owned: the log, the persist batch, every append that carries the entry
    /// and the committed entries handed out for applying all hold the same allocation, so a
    /// clone is a reference count, not a copy of the command. Serialized as bytes (one copy),
    /// not as a sequence of numbers: the encoding is the same (a length, then the bytes), but
    /// a 256 KiB value costs a `memcpy` instead of 262,144 calls.
    Command(Bytes),
    /// The cluster's configuration from this entry on: it takes effect when appended, not
    /// when committed (thesis §4.1). See [`super::membership`].
    Configuration(Membership),
}

impl EntryPayload {
    /// Bytes of payload, used for batching and in-flight limits.
    pub fn size_bytes(&self) -> usize {
        match self {
            EntryPayload::Noop => 0,
            EntryPayload::Command(data) => data.len(),
            EntryPayload::Configuration(membership) => {
                let addresses: usize = membership.addresses.values().map(String::len).sum();
                8 * (membership.voters.len() + membership.learners.len()) + addresses
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload as it was encoded before `serde_bytes`: a sequence of numbers.
    #[derive(Serialize)]
    enum PayloadAsNumbers {
        #[allow(dead_code)]
        Noop,
        Command(Vec<u8>),
    }

    #[test]
    fn a_command_encodes_to_the_same_bytes_as_before_so_old_logs_and_peers_still_read() {
        let config = bincode::config::standard();
        for length in [0usize, 1, 250, 251, 65_536, 300_000] {
            let data: Vec<u8> = (0..length).map(|byte| byte as u8).collect();
            let payload = EntryPayload::Command(Bytes::from(data.clone()));
            let now = bincode::serde::encode_to_vec(&payload, config).unwrap();
            let before =
                bincode::serde::encode_to_vec(PayloadAsNumbers::Command(data.clone()), config)
                    .unwrap();
            assert_eq!(now, before, "length {length}");
            let (decoded, used): (EntryPayload, usize) =
                bincode::serde::decode_from_slice(&before, config).unwrap();
            assert_eq!((decoded, used), (payload, before.len()));
        }
    }
}
