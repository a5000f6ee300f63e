//! Consensus: the Raft state machine of one node, driven by inputs, producing outputs.
//!
//! [`Node`] is the entry point; its documentation is the driver's manual. The files split the
//! protocol by concern: [`election`] (timeouts, PreVote, votes), [`replication`] (appends,
//! heartbeats, commit), [`read`] (ReadIndex), [`leader`] (leader timers, proposals, transfer).

pub mod config;
mod dispatch;
pub mod election;
pub mod entry;
pub mod leader;
pub mod log;
pub mod membership;
pub mod message;
pub mod node;
pub mod output;
pub mod progress;
pub mod quorum;
pub mod read;
mod reconfiguration;
pub mod replication;
pub mod role;
mod snapshot;
pub use snapshot::{entries_after_snapshot, recovered_log_misses_entries};
pub mod status;

pub use config::{Config, ConfigError};
pub use entry::{Entry, EntryPayload, HardState};
pub use log::RaftLog;
pub use membership::{Membership, MembershipChange, MembershipError, MembershipLog};
pub use message::*;
pub use node::Node;
pub use output::{
    BatchId, DurableState, Input, Output, PersistBatch, PersistSnapshot, ProposalId,
    ProposalOutcome, ProposeError, ReadError, ReadId, ReadOutcome, Snapshot,
};
pub use role::RoleName;
pub use status::{PeerStatus, Status};
