//! The sequential specification the checker compares a history against.
//!
//! A [`Model`] says what a single correct copy of the system would answer: from a state and an
//! input, which outputs are allowed and which state follows. It also says how a history splits
//! into independent parts (for a key-value store, one part per key), because checking many
//! small histories is exponentially cheaper than checking one large one, and linearizability
//! is compositional: a history is linearizable exactly when each independent part is.

use super::history::{History, OperationId};
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The state of one partition. The checker remembers every (set of operations, state)
    /// pair it has explored, so states must be cheap to clone, compare and hash.
    type State: Clone + Eq + Hash;
    /// What a client asks.
    type Input;
    /// What a client is told.
    type Output;

    /// The state before any operation of `partition` took effect.
    fn initial_state(&self, partition: &Partition) -> Self::State;

    /// Applies `input` to `state`. `output` is the answer the client received, or `None` when
    /// the outcome is unknown, in which case any answer matches. Returns the next state, or
    /// `None` when a correct system could not have given that answer from that state.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Splits a history into independent parts. Every operation must appear in exactly one
    /// part. The default keeps the whole history together.
    fn partition(&self, history: &History<Self::Input, Self::Output>) -> Vec<Partition> {
        vec![Partition {
            label: String::from("all"),
            operations: (0..history.len()).map(OperationId).collect(),
        }]
    }
}

/// One independent part of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// What the part covers, for explanations (for the key-value model, its keys).
    pub label: String,
    /// The operations of the part, in history order.
    pub operations: Vec<OperationId>,
}
