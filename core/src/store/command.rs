//! What the Raft log carries for the store: commands, and their byte encoding.
//!
//! A [`Command`] is proposed by the leader as bytes ([`Command::encode`]) and applied on every
//! node with [`Store::apply`](super::Store::apply). Keys travel as plain strings and are
//! validated at apply time, identically on every node, so a malformed key becomes a typed
//! error in the answer rather than a decoding failure.

use super::error::StoreError;
use super::key::{ClientId, Revision, SessionId, TenantId};
use super::services::{MemberUpdate, Registration};
use super::tenants::TenantCommand;
use crate::types::{Millis, Term};
use serde::{Deserialize, Serialize};

/// One entry of the store's replicated input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates an exactly-once client record. The new client's id is the log index of this
    /// command. May evict the least recently active client (see [`clients`](super::clients)).
    RegisterClient,
    /// A client's numbered request; applied at most once per (client, sequence).
    Request(Request),
    /// The leader advances the replicated session clock (see [`sessions`](super::sessions)).
    Tick(Tick),
}

/// A numbered client request (Raft thesis §6.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client: ClientId,
    /// The client's request number; a retry reuses it.
    pub sequence: u64,
    /// The client has received every answer numbered below this; the store may forget them.
    /// Never lowers what the store already knows; clamped to `sequence`.
    pub acknowledged_below: u64,
    pub tenant: TenantId,
    pub operation: Operation,
}

/// The leader's clock reading, proposed through the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The proposing leader's term: ticks of one term measure one leader's clock.
    pub term: Term,
    /// The leader's local time when it proposed the tick.
    pub now: Millis,
}

/// A change to the store (reads go through [`Query`](super::Query) instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Creates or replaces a key. With a session the key is ephemeral: it is deleted when
    /// the session closes or expires.
    Put {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        session: Option<SessionId>,
    },
    /// Deletes a key; `not_found` if it is absent.
    Delete { key: String },
    /// Puts only if the key's version is `expected_version` (0: only if absent).
    CompareAndSet {
        key: String,
        expected_version: u64,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        session: Option<SessionId>,
    },
    /// An atomic transaction.
    Transaction(Transaction),
    /// Opens a session with a TTL; its id is the log index of this command.
    OpenSession { ttl_ms: u64 },
    /// Restarts the session's TTL from the current replicated time.
    KeepAlive { session: SessionId },
    /// Closes the session and deletes its ephemeral keys.
    CloseSession { session: SessionId },
    /// Registers a member of a service group, opening its session; creates the group with
    /// the member's settings if it is the first (see [`services`](super::services)).
    RegisterMember(Box<Registration>),
    /// Keeps a member's session alive; the answer tells it its role.
    MemberKeepAlive { group: String, instance: String },
    /// A member reports its load, drains, or changes its weight (and is kept alive).
    MemberUpdate {
        group: String,
        instance: String,
        update: MemberUpdate,
    },
    /// A member leaves gracefully (its session is closed).
    Deregister { group: String, instance: String },
    /// The master steps down; `epoch` must be the group's current one.
    Resign {
        group: String,
        instance: String,
        epoch: u64,
        to: Option<String>,
    },
    /// Starts a forming group now, with whoever has registered.
    StartGroup { group: String },
    /// Tenant administration (see [`tenants`](super::tenants)); the administrator's only.
    Tenant(Box<TenantCommand>),
    /// The operator drains a farm member (`draining: true`) or undrains it. A flag of its own,
    /// apart from the member's self-reported one: the member's keep-alives never clear it
    /// (see [`services`](super::services)). Last in the enum, so older logs decode unchanged.
    DrainMember {
        group: String,
        instance: String,
        draining: bool,
    },
}

/// All `compares` are evaluated; if all hold, `success` runs, otherwise `failure`. Either
/// way the whole transaction is validated first and applies completely or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub compares: Vec<Compare>,
    pub success: Vec<TransactionOperation>,
    pub failure: Vec<TransactionOperation>,
}

/// One guard of a transaction: `key`'s `target` stands in `relation` to the given value
/// (for [`CompareTarget::Epoch`], `key` names a service group).
/// An absent key has version 0, revisions 0 and no value (every value comparison with an
/// absent key is false, except `NotEqual`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: String,
    pub relation: Relation,
    pub target: CompareTarget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    Equal,
    NotEqual,
    Less,
    Greater,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(u64),
    CreateRevision(Revision),
    ModifyRevision(Revision),
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The epoch of the service group named by the compare's `key` (0 for a group that does
    /// not exist): a master makes its writes conditional on still holding its epoch.
    Epoch(u64),
}

/// An operation inside a transaction. Reads see the writes made before them in the same
/// transaction; a delete of an absent key is not an error here (it reports `existed: false`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionOperation {
    Get {
        key: String,
    },
    Put {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        session: Option<SessionId>,
    },
    Delete {
        key: String,
    },
}

/// The encoding of commands and of the store's snapshot image.
pub(crate) fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl Command {
    /// The bytes a leader proposes to Raft for this command.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode_config())
            .expect("a store command always encodes: it holds only plain data")
    }

    /// Decodes bytes taken from the log. Trailing bytes are refused so that two different
    /// byte strings never decode to the same command unnoticed.
    pub fn decode(bytes: &[u8]) -> Result<Command, StoreError> {
        let (command, length) = bincode::serde::decode_from_slice(bytes, bincode_config())
            .map_err(|error| StoreError::BadCommand {
                reason: error.to_string(),
            })?;
        if length != bytes.len() {
            return Err(StoreError::BadCommand {
                reason: format!("{} trailing bytes after the command", bytes.len() - length),
            });
        }
        Ok(command)
    }
}

impl Request {
    /// A request in the default tenant.
    pub fn new(client: ClientId, sequence: u64, operation: Operation) -> Request {
        Request {
            client,
            sequence,
            acknowledged_below: 0,
            tenant: TenantId::DEFAULT,
            operation,
        }
    }

    pub fn in_tenant(mut self, tenant: TenantId) -> Request {
        self.tenant = tenant;
        self
    }

    pub fn acknowledging_below(mut self, acknowledged_below: u64) -> Request {
        self.acknowledged_below = acknowledged_below;
        self
    }
}

impl Operation {
    pub fn put(key: &str, value: &[u8]) -> Operation {
        Operation::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            session: None,
        }
    }

    pub fn delete(key: &str) -> Operation {
        Operation::Delete {
            key: key.to_owned(),
        }
    }

    pub fn compare_and_set(key: &str, expected_version: u64, value: &[u8]) -> Operation {
        Operation::CompareAndSet {
            key: key.to_owned(),
            expected_version,
            value: value.to_vec(),
            session: None,
        }
    }
}
