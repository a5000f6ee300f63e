//! rafting-core: RAFTiNG's pure, deterministic, sans-IO heart.
//!
//! Nothing in this crate reads a clock, spawns a thread, touches a socket or a file, or draws
//! ambient randomness. Time arrives as [`Millis`] with every input, randomness comes from a
//! generator seeded by the caller, and every effect leaves as plain data in an
//! [`raft::Output`]. The same inputs therefore give the same outputs, bit for bit, which is
//! what lets the simulator (`rafting-sim`) and the real runtime (`rafting-net`) run exactly
//! the same code.
//!
//! Five parts:
//! - [`raft`]: consensus — roles, elections, replication, commit, reads, leadership transfer;
//! - [`store`]: the replicated state machine applied to committed entries;
//! - [`replica`]: a node and its store with the request path between them and clients —
//!   what the runtime and the simulator both drive;
//! - [`member`]: a service group member's side (when to keep alive, when it may act as
//!   master), for the clients that are members;
//! - [`farm`]: which farm member a caller picks (round robin, Monte Carlo).
//!
//! Start with [`replica::Replica`] to drive a replica, and with [`raft::Node`] for Raft itself:
//! its documentation is the protocol's manual.

pub mod codec;
pub mod farm;
pub mod member;
pub mod raft;
pub mod replica;
pub mod store;
pub mod types;

pub use types::{LogIndex, Millis, NodeId, Term};
