//! rafting-wal: the write-ahead log's record format and recovery, as pure functions over bytes.
//!
//! Shared by the real runtime (`rafting-net`, which does the file IO) and the simulator's disk
//! model (`rafting-sim`), so that crash and torn-write faults in the simulator exercise the
//! same recovery code as production.
//!
//! A log is a sequence of segment files, numbered consecutively. Each starts with a
//! [`SegmentHeader`] (magic, format version, cluster, node, sequence) and continues with
//! frames ([`frame`]): a length, a CRC32C of the body, and a CRC32C of the header. Each frame
//! is one group commit and holds [`Record`]s: hard states, truncations and entries.
//!
//! Writing: [`LogShape::plan_batch`] checks a driver's [`Batch`] against the log and turns it
//! into records, [`encode_frame`] frames them; the caller writes the bytes and syncs them.
//!
//! Reading: [`replay_segment`] verifies one segment and applies its records to a
//! [`RecoveredLog`]; called on every segment in order, it rebuilds the hard state and
//! entries, cuts a torn tail of the last segment and refuses anything else that is damaged.
//!
//! Snapshots and log compaction: a log may begin at any index (replay accepts whatever index
//! the oldest remaining segment starts with), and a writer that repeats the current hard
//! state at the start of each segment may delete whole segments older than a snapshot
//! without losing it. A snapshot itself is a file of its own ([`snapshot_file`]): a
//! checksummed header (cluster, node, last included index and term, voters, learners and their addresses) and the store's
//! image.

pub mod error;
pub mod frame;
pub mod log_shape;
pub mod record;
pub mod replay;
pub mod segment_header;
pub mod snapshot_file;
mod wire;

pub use error::{OrderViolation, WalError, WalErrorKind};
pub use frame::{
    FRAME_HEADER_BYTES, FrameDamage, FrameRead, MAX_FRAME_BODY_BYTES, begin_frame, finish_frame,
    read_frame,
};
pub use log_shape::{LogShape, RecoveredLog};
pub use record::{Batch, Record, RecordRef, decode_records, encode_records};
pub use replay::{
    SegmentExpectation, SegmentScan, encode_frame, new_segment_bytes, replay_segment,
};
pub use segment_header::{
    ClusterId, FORMAT_VERSION, LogOwner, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SegmentHeader,
};
