//! The replica: one Raft [`Node`](crate::raft::Node) and its [`Store`](crate::store::Store),
//! with the request path between them and their clients.
//!
//! Raft decides what is committed; the store decides what a committed command means. The
//! [`Replica`] is everything in between, in one pure place:
//!
//! - **admission**: a write is refused at once when this node is not the leader, its queue
//!   or the tenant's share of it is full (`overloaded`), the tenant is over its write rate
//!   (`rate_writes`, a [token bucket](rates)) or the write would take it over a stored cap
//!   (`quota_*`, checked against the store before proposing) — never left to time out; a
//!   read is refused when the tenant is over its read rate (`rate_reads`) or holds its
//!   share of the pending linearizable reads (`overloaded`, see [reads]);
//! - **batching**: writes queue until the driver's [`Input::Flush`] (the end of its round of
//!   events) and are proposed together, in the order the [queue](queue) picks: deficit round
//!   robin across tenants, so a flooding tenant gets one share of each batch;
//! - **the proposal table**: each committed entry is matched, by index and term, to the
//!   request it answers; an entry of another leader at that index makes the answer
//!   `outcome_unknown`;
//! - **exactly-once numbering**: a write carries an external client's
//!   `(client, sequence)` ([`Numbered`]), or is numbered on this node's own client record;
//! - **the session clock**: the leader proposes a [`Tick`](crate::store::Tick) every
//!   `session_tick_interval_ms` while sessions exist;
//! - **deadlines**: a request unanswered by its deadline is answered `timeout`.
//!
//! The runtime's node loop and every simulated host drive this same type, so the request
//! path that production runs is the one the simulator's faults and checkers exercise. The
//! contract a driver follows is in [`Output`] and in `docs/replica.md`.

mod io;
mod queue;
mod rates;
mod reads;
#[allow(clippy::module_inception)]
mod replica;

pub use io::{
    Answer, Applied, AppliedEntry, Consistency, Input, MembershipApplied, Numbered, Output,
    RateRefusal, ReplicaError, RequestId, SnapshotJob,
};
pub use queue::put_cost_bytes;
pub use rates::{OverRate, RateKind};
pub use replica::{
    Replica, ReplicaConfig, SNAPSHOT_EVERY_BYTES_DEFAULT, SNAPSHOT_EVERY_ENTRIES_DEFAULT,
};
