//! Consensus: the Raft state machine of one node, driven by inputs, producing outputs.

pub mod entry;
pub mod message;

pub use entry::{Entry, EntryPayload, HardState};
pub use message::*;
