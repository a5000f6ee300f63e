//! The fixed header at the start of every segment file: what the file is, which format
//! version wrote it, and which cluster and node it belongs to.
//!
//! Layout (little-endian, 40 bytes):
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RAFTWAL\0"
//!      8     4  format version
//!     12     8  cluster id
//!     20     8  node id
//!     28     8  segment sequence number (also in the file name)
//!     36     4  CRC32C of bytes 0..36
//! ```

use rafting_core::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::WalError;

/// The first bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RAFTWAL\0";
/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the encoded header; the first record starts right after it.
pub const SEGMENT_HEADER_BYTES: usize = 40;

const CHECKSUMMED_BYTES: usize = 36;

/// The identity of a cluster, chosen when it is formed; a node refuses files of another.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClusterId(pub u64);

impl fmt::Display for ClusterId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "c{}", self.0)
    }
}

/// Whose log a segment belongs to: checked on every segment when the log is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogOwner {
    pub cluster_id: ClusterId,
    pub node_id: NodeId,
}

/// The decoded header of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentHeader {
    pub owner: LogOwner,
    /// Position of this segment in the log; consecutive segments have consecutive numbers.
    pub sequence: u64,
}

impl SegmentHeader {
    /// The header's bytes, ready to be the start of a new segment file.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[12..20].copy_from_slice(&self.owner.cluster_id.0.to_le_bytes());
        bytes[20..28].copy_from_slice(&self.owner.node_id.get().to_le_bytes());
        bytes[28..36].copy_from_slice(&self.sequence.to_le_bytes());
        let checksum = crc32c::crc32c(&bytes[..CHECKSUMMED_BYTES]);
        bytes[36..40].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Reads and verifies the header at the start of `bytes`, the content of `file`, and
    /// checks that it belongs to `expected_owner`.
    pub fn decode(
        file: &str,
        bytes: &[u8],
        expected_owner: LogOwner,
    ) -> Result<SegmentHeader, WalError> {
        let bad_header = |reason: String| WalError::BadHeader {
            file: file.to_string(),
            reason,
        };
        if bytes.is_empty() {
            return Err(bad_header("the file is empty".to_string()));
        }
        let Some(header) = bytes.get(..SEGMENT_HEADER_BYTES) else {
            return Err(bad_header(format!(
                "truncated: {} of {SEGMENT_HEADER_BYTES} bytes",
                bytes.len()
            )));
        };
        if header[0..8] != SEGMENT_MAGIC {
            return Err(bad_header(
                "wrong magic: not a RAFTiNG WAL segment".to_string(),
            ));
        }
        let version = read_u32(&header[8..12]);
        if version != FORMAT_VERSION {
            return Err(bad_header(format!(
                "format version {version}, this build reads only version {FORMAT_VERSION}"
            )));
        }
        let stored_checksum = read_u32(&header[36..40]);
        let computed_checksum = crc32c::crc32c(&header[..CHECKSUMMED_BYTES]);
        if stored_checksum != computed_checksum {
            return Err(bad_header(format!(
                "checksum mismatch: stored {stored_checksum:#010x}, computed {computed_checksum:#010x}"
            )));
        }
        let owner = LogOwner {
            cluster_id: ClusterId(read_u64(&header[12..20])),
            node_id: NodeId::new(read_u64(&header[20..28])),
        };
        if owner != expected_owner {
            return Err(WalError::ForeignSegment {
                file: file.to_string(),
                found_cluster: owner.cluster_id,
                found_node: owner.node_id,
                expected_cluster: expected_owner.cluster_id,
                expected_node: expected_owner.node_id,
            });
        }
        let sequence = read_u64(&header[28..36]);
        Ok(SegmentHeader { owner, sequence })
    }
}

pub(crate) fn read_u32(bytes: &[u8]) -> u32 {
    let mut buffer = [0u8; 4];
    buffer.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(buffer)
}

pub(crate) fn read_u64(bytes: &[u8]) -> u64 {
    let mut buffer = [0u8; 8];
    buffer.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> LogOwner {
        LogOwner {
            cluster_id: ClusterId(7),
            node_id: NodeId::new(3),
        }
    }

    // A header survives encoding, and every way it can be wrong gives its own error kind.
    #[test]
    fn header_round_trips_and_rejects_bad_files() {
        let header = SegmentHeader {
            owner: owner(),
            sequence: 42,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode("s", &bytes, owner()).unwrap(), header);

        let error = SegmentHeader::decode("s", &[], owner()).unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
        let error = SegmentHeader::decode("s", &bytes[..10], owner()).unwrap_err();
        assert!(error.to_string().contains("truncated"), "{error}");

        let mut wrong_magic = bytes;
        wrong_magic[0] = b'X';
        let error = SegmentHeader::decode("s", &wrong_magic, owner()).unwrap_err();
        assert!(error.to_string().contains("magic"), "{error}");

        let mut wrong_version = bytes;
        wrong_version[8] = 9;
        let error = SegmentHeader::decode("s", &wrong_version, owner()).unwrap_err();
        assert!(error.to_string().contains("version 9"), "{error}");

        let mut flipped = bytes;
        flipped[30] ^= 1;
        let error = SegmentHeader::decode("s", &flipped, owner()).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");

        let other_node = LogOwner {
            node_id: NodeId::new(4),
            ..owner()
        };
        let error = SegmentHeader::decode("s", &bytes, other_node).unwrap_err();
        assert_eq!(error.kind(), crate::WalErrorKind::ForeignSegment);
    }
}
