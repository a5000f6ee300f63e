//! The replicated state machine: a hierarchical key space with sessions, watches, exactly-once
//! writes and room for tenants.
//!
//! Applied identically on every node to the entries Raft commits. The store is a plain value
//! ([`Store`]) with two doors:
//!
//! - **writes** go through the log: the leader encodes a [`Command`] into bytes
//!   ([`Command::encode`]), Raft commits them, and every node calls
//!   [`Store::apply`]`(index, bytes)` in log order, getting a [`Response`]
//!   (`Result<`[`Outcome`]`, `[`StoreError`]`>`) that the leader hands back to the client;
//! - **reads** ([`Query`]: get, list, watch poll) are served by [`Store::read`] from local
//!   state, after Raft has established a read index and this store has applied up to it.
//!
//! # What it holds
//!
//! - Per tenant ([`TenantId`], [`TenantId::DEFAULT`] unless a request names one), a key space
//!   of hierarchical keys (`/services/web/members/n1`, rules in [`key`]) mapping to byte
//!   values. Each key has a version (1 at creation, +1 per write), a create revision and a
//!   modify revision.
//! - A global [`Revision`], bumped once by every applied command that changes a key; all
//!   changes of one command share it.
//! - A bounded watch history ([`watch`]): watchers poll "changes under P since R" and get
//!   `compacted` with a restart revision when they fell too far behind.
//! - Sessions with TTLs, expired by a replicated clock that the leader advances with
//!   [`Tick`] commands. **The clock rule**: ticks from one leader term advance the clock by
//!   that leader's elapsed time (capped per tick); the first tick of a new term advances
//!   nothing, so an election gap pauses session time instead of expiring sessions or
//!   resetting their TTLs. Details in [`sessions`].
//! - Exactly-once client records ([`clients`], Raft thesis §6.3): a client registers, numbers
//!   its requests, and a retried request gets its original answer. **The eviction rule**: at
//!   most `clients_max` records; registering one more evicts the client with the lowest
//!   last-active log index (ties by lowest id); per client at most
//!   `responses_per_client_max` unacknowledged answers, dropping the lowest sequence first.
//!   An evicted client gets `unknown_client`, a forgotten sequence `stale_request` — never
//!   a second apply.
//!
//! Every bound lives in [`StoreConfig`]; every error is a [`StoreError`] with a stable
//! [`code`](StoreError::code).
//!
//! # Determinism
//!
//! Nothing here reads a clock or draws randomness, and every map whose order can reach an
//! answer is a `BTreeMap`/`BTreeSet`. Ids that must be fresh (sessions, clients) are the log
//! index of the command that creates them. A snapshot is the `bincode` encoding of [`Store`]
//! ([`Store::snapshot`], [`Store::restore`]): equal stores give equal bytes.
//!
//! ```
//! use rafting_core::LogIndex;
//! use rafting_core::store::{Command, Operation, Outcome, Request, Store, TenantId};
//!
//! let mut store = Store::default();
//! let Ok(Outcome::ClientRegistered { client }) =
//!     store.apply(LogIndex::new(1), &Command::RegisterClient.encode())
//! else {
//!     panic!("registration always succeeds");
//! };
//! let put = Command::Request(Request::new(client, 1, Operation::put("/config/mode", b"fast")));
//! let first = store.apply(LogIndex::new(2), &put.encode());
//! // The client timed out and retried: the same answer comes back, applied once.
//! let retry = store.apply(LogIndex::new(3), &put.encode());
//! assert_eq!(first, retry);
//! assert_eq!(store.get(TenantId::DEFAULT, "/config/mode").unwrap().version, 1);
//! ```

pub mod answer;
pub mod clients;
pub mod command;
pub mod config;
pub mod error;
pub mod key;
mod keyspace;
mod read;
pub mod services;
pub mod sessions;
pub mod snapshot;
#[allow(clippy::module_inception)]
mod store;
pub mod tenants;
mod transaction;
pub mod watch;
mod write;

pub use answer::{
    Event, EventKind, KeyValue, ListQuery, Listing, Outcome, Query, ReadAnswer, Response,
    TransactionResult, WatchBatch, WatchQuery,
};
pub use command::{
    Command, Compare, CompareTarget, Operation, Relation, Request, Tick, Transaction,
    TransactionOperation,
};
pub use config::StoreConfig;
pub use error::StoreError;
pub use key::{ClientId, Key, Prefix, Revision, SessionId, TenantId};
pub use snapshot::SnapshotError;
pub use store::Store;
pub use tenants::{Cap, Caps, TenantCommand, TenantView, TokenRecord, Usage};
