//! Client histories: what each client invoked, when, and what it was told.
//!
//! A history is the only input of the checker besides the model. The simulator records one
//! with [`History::invoke`] when a client sends a request and [`History::complete`] when the
//! client receives a definite answer. An operation that never receives a definite answer
//! (timeout, leader lost, end of the run) is simply never completed: the checker then treats
//! its outcome as unknown, meaning it may have taken effect at any point after its invocation,
//! or never, and its answer matches anything.

use rafting_core::types::Millis;
use std::fmt;
use thiserror::Error;

/// A point on the recorder's clock. Only the order of timestamps matters: the simulator may
/// pass simulated milliseconds or, for a finer order, a global event sequence number. Two
/// events with the same timestamp are treated as concurrent, which can only make the checker
/// more permissive, never wrongly strict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl From<Millis> for Timestamp {
    fn from(value: Millis) -> Self {
        Self(value.get())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "@{}", self.0)
    }
}

/// The client that issued an operation. Used in explanations only: the checker does not
/// require a client to wait for one operation before invoking the next (a client retrying an
/// operation of unknown outcome legitimately overlaps with itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "c{}", self.0)
    }
}

/// The position of an operation in its history, as returned by [`History::invoke`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationId(pub usize);

impl fmt::Display for OperationId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "op{}", self.0)
    }
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion<Output> {
    /// The client received `output` at `completed_at`.
    Returned {
        output: Output,
        completed_at: Timestamp,
    },
    /// The client never learned the outcome: the operation may have taken effect at any point
    /// after its invocation, or never.
    Unknown,
}

/// One client operation: its request, its answer and the real-time interval it spanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<Input, Output> {
    pub client: ClientId,
    pub input: Input,
    pub invoked_at: Timestamp,
    pub completion: Completion<Output>,
}

impl<Input, Output> Operation<Input, Output> {
    /// The answer the client received, or `None` when the outcome is unknown.
    pub fn output(&self) -> Option<&Output> {
        match &self.completion {
            Completion::Returned { output, .. } => Some(output),
            Completion::Unknown => None,
        }
    }

    /// When the client received its answer, or `None` when the outcome is unknown.
    pub fn completed_at(&self) -> Option<Timestamp> {
        match &self.completion {
            Completion::Returned { completed_at, .. } => Some(*completed_at),
            Completion::Unknown => None,
        }
    }

    /// True when the client never learned the outcome.
    pub fn is_unknown(&self) -> bool {
        matches!(self.completion, Completion::Unknown)
    }
}

/// A mistake in building or feeding a history.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HistoryError {
    #[error("{operation} does not exist in this history")]
    NoSuchOperation { operation: OperationId },
    #[error("{operation} was already completed")]
    AlreadyCompleted { operation: OperationId },
    #[error("{operation} completed at {completed_at}, before its invocation at {invoked_at}")]
    CompletedBeforeInvoked {
        operation: OperationId,
        invoked_at: Timestamp,
        completed_at: Timestamp,
    },
}

impl HistoryError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSuchOperation { .. } => "no_such_operation",
            Self::AlreadyCompleted { .. } => "already_completed",
            Self::CompletedBeforeInvoked { .. } => "completed_before_invoked",
        }
    }
}

/// A list of client operations, recorded as they are invoked and completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<Input, Output> {
    operations: Vec<Operation<Input, Output>>,
}

impl<Input, Output> Default for History<Input, Output> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Input, Output> History<Input, Output> {
    /// An empty history.
    pub fn new() -> Self {
        Self {
            operations: Vec::new(),
        }
    }

    /// Records that `client` sent `input` at `invoked_at`. The operation's outcome stays
    /// unknown until [`History::complete`] is called.
    pub fn invoke(&mut self, client: ClientId, input: Input, invoked_at: Timestamp) -> OperationId {
        self.operations.push(Operation {
            client,
            input,
            invoked_at,
            completion: Completion::Unknown,
        });
        OperationId(self.operations.len() - 1)
    }

    /// Records that the client of `operation` received `output` at `completed_at`.
    pub fn complete(
        &mut self,
        operation: OperationId,
        output: Output,
        completed_at: Timestamp,
    ) -> Result<(), HistoryError> {
        let recorded = self
            .operations
            .get_mut(operation.0)
            .ok_or(HistoryError::NoSuchOperation { operation })?;
        if !recorded.is_unknown() {
            return Err(HistoryError::AlreadyCompleted { operation });
        }
        if completed_at < recorded.invoked_at {
            return Err(HistoryError::CompletedBeforeInvoked {
                operation,
                invoked_at: recorded.invoked_at,
                completed_at,
            });
        }
        recorded.completion = Completion::Returned {
            output,
            completed_at,
        };
        Ok(())
    }

    /// Appends an already finished operation, checking that its interval is well formed.
    pub fn push(
        &mut self,
        operation: Operation<Input, Output>,
    ) -> Result<OperationId, HistoryError> {
        let id = OperationId(self.operations.len());
        if let Some(completed_at) = operation.completed_at()
            && completed_at < operation.invoked_at
        {
            return Err(HistoryError::CompletedBeforeInvoked {
                operation: id,
                invoked_at: operation.invoked_at,
                completed_at,
            });
        }
        self.operations.push(operation);
        Ok(id)
    }

    /// All operations, indexed by [`OperationId`].
    pub fn operations(&self) -> &[Operation<Input, Output>] {
        &self.operations
    }

    /// One operation.
    pub fn operation(&self, id: OperationId) -> Option<&Operation<Input, Output>> {
        self.operations.get(id.0)
    }

    /// The number of operations recorded.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
