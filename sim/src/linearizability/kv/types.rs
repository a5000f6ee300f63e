//! The key-value operations the checker understands, independent of the store's own API.
//!
//! The simulator maps each store request and answer onto these: a store error that proves the
//! operation did not apply (a failed comparison) becomes a definite answer, while a timeout or
//! a lost leader leaves the operation's outcome unknown.

use std::fmt;
use std::sync::Arc;

/// A key. Cheap to clone, since the checker copies states often.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub Arc<str>);

impl Key {
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A value: bytes, cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(pub Arc<[u8]>);

impl Value {
    pub fn new(bytes: &[u8]) -> Self {
        Self(Arc::from(bytes))
    }

    /// This value followed by `suffix`.
    pub fn concatenated(&self, suffix: &Value) -> Self {
        let mut bytes = Vec::with_capacity(self.0.len() + suffix.0.len());
        bytes.extend_from_slice(&self.0);
        bytes.extend_from_slice(&suffix.0);
        Self(Arc::from(bytes))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// A value as stored under a key, with the key's version: the number of writes since the key
/// was last created, counting from the model's `first_version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Versioned {
    pub value: Value,
    pub version: u64,
}

/// What a compare-and-set or a transaction comparison expects of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expectation {
    /// The key does not exist (create-if-absent).
    Absent,
    /// The key exists with this version.
    Version(u64),
    /// The key exists with this value.
    Value(Value),
    /// The key's version is above this one (an absent key has version 0).
    VersionAbove(u64),
    /// The key's version is below this one (an absent key has version 0).
    VersionBelow(u64),
}

/// One comparison of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Comparison {
    pub key: Key,
    pub expected: Expectation,
}

/// One step of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransactionStep {
    Get { key: Key },
    Put { key: Key, value: Value },
    Delete { key: Key },
}

impl TransactionStep {
    pub fn key(&self) -> &Key {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// An atomic transaction: if every comparison holds, run `on_success`, otherwise
/// `on_failure`. A list of several keys is a transaction with only `Get` steps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transaction {
    pub comparisons: Vec<Comparison>,
    pub on_success: Vec<TransactionStep>,
    pub on_failure: Vec<TransactionStep>,
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    Get {
        key: Key,
    },
    Put {
        key: Key,
        value: Value,
    },
    Delete {
        key: Key,
    },
    /// Appends `value` to the key's value (creating it if absent). Not a store operation of
    /// its own, but the clearest way to see a retried write applied twice.
    Append {
        key: Key,
        value: Value,
    },
    CompareAndSet {
        key: Key,
        expected: Expectation,
        new_value: Value,
    },
    Transaction(Transaction),
}

impl KvInput {
    /// Every key the operation reads or writes, possibly repeated.
    pub fn keys(&self) -> Vec<&Key> {
        match self {
            Self::Get { key }
            | Self::Put { key, .. }
            | Self::Delete { key }
            | Self::Append { key, .. }
            | Self::CompareAndSet { key, .. } => vec![key],
            Self::Transaction(transaction) => transaction
                .comparisons
                .iter()
                .map(|comparison| &comparison.key)
                .chain(transaction.on_success.iter().map(TransactionStep::key))
                .chain(transaction.on_failure.iter().map(TransactionStep::key))
                .collect(),
        }
    }
}

/// A definite answer to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The answer to `Get`: the value and version, or `None` when the key is absent.
    Read(Option<Versioned>),
    /// The answer to `Put`, `Delete` and `Append`.
    Written,
    /// The answer to `CompareAndSet`.
    CompareAndSet { succeeded: bool },
    /// The answer to `Transaction`: which branch ran, and the result of each of its `Get`
    /// steps in order.
    Transaction {
        succeeded: bool,
        reads: Vec<Option<Versioned>>,
    },
}
