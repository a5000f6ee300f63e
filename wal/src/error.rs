//! The one error type of the write-ahead log, shared by the pure format code and the file IO.
//!
//! Every variant that comes from reading a file names the file and, where it makes sense, the
//! byte offset of the record at fault, so an operator can find it with `xxd -s`.

use rafting_core::{LogIndex, NodeId};
use std::fmt;

use crate::segment_header::ClusterId;

/// A stable, machine-readable name for each kind of failure, for metrics and API error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalErrorKind {
    Io,
    BadHeader,
    ForeignSegment,
    Corrupt,
    CorruptSnapshot,
    OutOfOrder,
    MissingSegment,
    InvalidBatch,
}

impl WalErrorKind {
    /// The kind as a short snake_case code (`"corrupt"`, `"foreign_segment"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            WalErrorKind::Io => "io",
            WalErrorKind::BadHeader => "bad_header",
            WalErrorKind::ForeignSegment => "foreign_segment",
            WalErrorKind::Corrupt => "corrupt",
            WalErrorKind::CorruptSnapshot => "corrupt_snapshot",
            WalErrorKind::OutOfOrder => "out_of_order",
            WalErrorKind::MissingSegment => "missing_segment",
            WalErrorKind::InvalidBatch => "invalid_batch",
        }
    }
}

impl fmt::Display for WalErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Everything that can go wrong writing or recovering the log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A system call failed on `file`.
    #[error("{operation} {file}: {source}")]
    Io {
        file: String,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The segment header is missing, cut short, or not one this build understands.
    #[error("{file}: bad segment header: {reason}")]
    BadHeader { file: String, reason: String },
    /// The segment belongs to another cluster or another node; using it would mix two logs.
    #[error(
        "{file}: segment belongs to cluster {found_cluster} node {found_node}, \
         expected cluster {expected_cluster} node {expected_node}"
    )]
    ForeignSegment {
        file: String,
        found_cluster: ClusterId,
        found_node: NodeId,
        expected_cluster: ClusterId,
        expected_node: NodeId,
    },
    /// A record failed its checksum or could not be decoded, and it is not a torn tail.
    #[error("{file}: corrupt record at byte offset {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    /// A snapshot file is damaged (cut short, a checksum that fails, a field out of range):
    /// it is refused whole.
    #[error("{file}: damaged snapshot at byte offset {offset}: {reason}")]
    CorruptSnapshot {
        file: String,
        offset: u64,
        reason: String,
    },
    /// A record's index does not follow the log (it goes backwards or leaves a gap) and no
    /// truncation record allows it.
    #[error("{file}: record at byte offset {offset} is out of order: {reason}")]
    OutOfOrder {
        file: String,
        offset: u64,
        reason: String,
    },
    /// The segment files do not form an unbroken sequence.
    #[error("{file}: {reason}")]
    MissingSegment { file: String, reason: String },
    /// A batch handed to the writer breaks the log's rules; nothing of it was written.
    #[error("invalid batch: {reason}")]
    InvalidBatch { reason: String },
}

impl WalError {
    /// The stable kind of this error.
    pub fn kind(&self) -> WalErrorKind {
        match self {
            WalError::Io { .. } => WalErrorKind::Io,
            WalError::BadHeader { .. } => WalErrorKind::BadHeader,
            WalError::ForeignSegment { .. } => WalErrorKind::ForeignSegment,
            WalError::Corrupt { .. } => WalErrorKind::Corrupt,
            WalError::CorruptSnapshot { .. } => WalErrorKind::CorruptSnapshot,
            WalError::OutOfOrder { .. } => WalErrorKind::OutOfOrder,
            WalError::MissingSegment { .. } => WalErrorKind::MissingSegment,
            WalError::InvalidBatch { .. } => WalErrorKind::InvalidBatch,
        }
    }

    /// Builds an [`WalError::Io`] for `operation` on `file`.
    pub fn io(file: impl fmt::Display, operation: &'static str, source: std::io::Error) -> Self {
        WalError::Io {
            file: file.to_string(),
            operation,
            source,
        }
    }
}

/// A log rule a record or batch breaks, before it is placed in a file; the caller adds the
/// file and offset to turn it into a [`WalError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderViolation {
    pub expected_index: Option<LogIndex>,
    pub reason: String,
}
