//! The snapshot file: a store image (`rafting_core::store::Store::snapshot`) with a header
//! that says whose it is and where in the log it stands, both checksummed. Pure functions over
//! bytes, like the segments; writing the file (temporary file, fsync, rename, directory fsync)
//! is the driver's. See `docs/snapshots-and-membership.md`.
//!
//! Layout (little-endian):
//!
//! ```text
//! offset    size  field
//!      0       8  magic "RAFTSNAP"
//!      8       4  format version
//!     12       8  cluster id
//!     20       8  node id
//!     28       8  last included log index
//!     36       8  term of that entry
//!     44       4  voter count n
//!     48      8n  voter ids, ascending
//!          4  learner count l                      (version 2)
//!         8l  learner ids, ascending                 (version 2)
//!          4  length a of the members' addresses     (version 2)
//!          a  bincode of the addresses (id → text)   (version 2)
//!          8  image length m
//!          4  CRC32C of the header up to here
//!          m  the store image
//!          4  CRC32C of the image
//! ```
//!
//! Version 1 (no learners, no addresses) is still read.
//!
//! A damaged file is refused with the offset of what is wrong, never half-read.

use crate::error::WalError;
use crate::segment_header::{ClusterId, LogOwner, read_u32, read_u64};
use rafting_core::raft::Membership;
use rafting_core::{LogIndex, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet};

/// The first bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RAFTSNAP";
/// The format version this build writes and the only one it reads.
pub const SNAPSHOT_FILE_VERSION: u32 = 2;
/// The first version, without learners and addresses, still read.
const SNAPSHOT_FILE_VERSION_1: u32 = 1;
/// Bytes of addresses a header may hold (a bound against a damaged length).
const ADDRESSES_BYTES_MAX: u32 = 1 << 20;
/// Voters a header may name (a bound against a damaged count, far above any real cluster).
const VOTERS_MAX: u32 = 1024;

/// Where a snapshot stands: the last entry it includes and the configuration at that entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub owner: LogOwner,
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
}

/// The file's name for a snapshot: ordered by index when names are sorted.
pub fn snapshot_file_name(index: LogIndex, term: Term) -> String {
    format!("snapshot-{:020}-{:020}.snap", index.get(), term.get())
}

/// The whole file for `image` taken at `meta`.
pub fn encode_snapshot_file(meta: &SnapshotMeta, image: &[u8]) -> Vec<u8> {
    let (head, tail) = snapshot_file_head_and_tail(meta, image);
    [&head[..], image, &tail[..]].concat()
}

/// The file for `image` taken at `meta` without a copy of the image: the bytes before it and
/// the bytes after it (a writer writes head, image and tail in turn; a store of large values
/// makes an image of tens of megabytes).
pub fn snapshot_file_head_and_tail(meta: &SnapshotMeta, image: &[u8]) -> (Vec<u8>, [u8; 4]) {
    let membership = &meta.membership;
    let mut bytes = Vec::with_capacity(128 + 8 * membership.voters.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FILE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&meta.owner.cluster_id.0.to_le_bytes());
    bytes.extend_from_slice(&meta.owner.node_id.get().to_le_bytes());
    bytes.extend_from_slice(&meta.index.get().to_le_bytes());
    bytes.extend_from_slice(&meta.term.get().to_le_bytes());
    for ids in [&membership.voters, &membership.learners] {
        bytes.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            bytes.extend_from_slice(&id.get().to_le_bytes());
        }
    }
    let addresses =
        bincode::serde::encode_to_vec(&membership.addresses, bincode::config::standard())
            .expect("a map of strings always encodes");
    bytes.extend_from_slice(&(addresses.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&addresses);
    bytes.extend_from_slice(&(image.len() as u64).to_le_bytes());
    let header_checksum = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&header_checksum.to_le_bytes());
    (bytes, crc32c::crc32c(image).to_le_bytes())
}

/// Reads and verifies `bytes`, the content of `file`, written for `expected_owner`: its
/// header and the store image it holds.
///
/// (The driver writes [`encode_snapshot_file`]'s bytes to a temporary file, syncs it, renames
/// it to [`snapshot_file_name`] and syncs the directory.)
pub fn decode_snapshot_file<'a>(
    file: &str,
    bytes: &'a [u8],
    expected_owner: LogOwner,
) -> Result<(SnapshotMeta, &'a [u8]), WalError> {
    let mut reader = Reader {
        file,
        bytes,
        offset: 0,
    };
    if reader.take(8, "magic")? != SNAPSHOT_MAGIC {
        return Err(reader.corrupt(0, "wrong magic: not a RAFTiNG snapshot".into()));
    }
    let version = reader.u32("format version")?;
    if version != SNAPSHOT_FILE_VERSION && version != SNAPSHOT_FILE_VERSION_1 {
        return Err(reader.corrupt(
            8,
            format!("format version {version}, this build reads only {SNAPSHOT_FILE_VERSION}"),
        ));
    }
    let cluster_id = ClusterId(reader.u64("cluster id")?);
    let node_id = NodeId::new(reader.u64("node id")?);
    let index = LogIndex::new(reader.u64("index")?);
    let term = Term::new(reader.u64("term")?);
    let voters = reader.ids("voter")?;
    let mut membership = Membership::new(voters, []);
    if version >= SNAPSHOT_FILE_VERSION {
        membership.learners = reader.ids("learner")?;
        let length_at = reader.offset;
        let length = reader.u32("addresses length")?;
        if length > ADDRESSES_BYTES_MAX {
            return Err(reader.corrupt(length_at, format!("{length} bytes of addresses: damaged")));
        }
        let encoded = reader.take(length as usize, "addresses")?;
        let decoded: Result<(BTreeMap<NodeId, String>, usize), _> =
            bincode::serde::decode_from_slice(encoded, bincode::config::standard());
        membership.addresses = match decoded {
            Ok((addresses, _)) => addresses,
            Err(error) => {
                return Err(reader.corrupt(length_at, format!("addresses do not decode: {error}")));
            }
        };
    }
    let length_at = reader.offset;
    let length = reader.u64("image length")?;
    let header_end = reader.offset;
    let stored = reader.u32("header checksum")?;
    let computed = crc32c::crc32c(&bytes[..header_end]);
    if stored != computed {
        return Err(reader.corrupt(
            header_end,
            format!("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let owner = LogOwner {
        cluster_id,
        node_id,
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
    let image_at = reader.offset;
    let remaining = (bytes.len() - image_at) as u64;
    if length.checked_add(4) != Some(remaining) {
        return Err(reader.corrupt(
            length_at,
            format!("the image is {length} bytes but {remaining} bytes follow the header (with its 4-byte checksum)"),
        ));
    }
    let image = reader.take(length as usize, "image")?;
    let stored = reader.u32("image checksum")?;
    let computed = crc32c::crc32c(image);
    if stored != computed {
        return Err(reader.corrupt(
            image_at,
            format!("image checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let meta = SnapshotMeta {
        owner,
        index,
        term,
        membership,
    };
    Ok((meta, image))
}

/// Snapshot files kept on disk: the newest, and the one before it until the newest is
/// durable (and as a fallback should the newest be damaged).
pub const SNAPSHOT_FILES_KEPT: usize = 2;

/// The `(index, term)` a snapshot file's name gives, or `None` for any other name (a
/// temporary file left by a crash mid-write is not a snapshot).
pub fn parse_snapshot_file_name(name: &str) -> Option<(LogIndex, Term)> {
    let middle = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    let (index, term) = middle.split_once('-')?;
    let digits = |text: &str| text.len() == 20 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(term) {
        return None;
    }
    Some((
        LogIndex::new(index.parse().ok()?),
        Term::new(term.parse().ok()?),
    ))
}

/// Of the snapshot files named in `names` (any order), those to delete so that only the
/// newest [`SNAPSHOT_FILES_KEPT`] remain.
pub fn snapshot_files_to_delete(names: &[String]) -> Vec<String> {
    let mut snapshots: Vec<&String> = names
        .iter()
        .filter(|name| parse_snapshot_file_name(name).is_some())
        .collect();
    snapshots.sort_by_key(|name| parse_snapshot_file_name(name));
    let excess = snapshots.len().saturating_sub(SNAPSHOT_FILES_KEPT);
    snapshots.into_iter().take(excess).cloned().collect()
}

/// The newest snapshot among `files` (name and content) that checks out, newest first by
/// name, with the errors of the damaged ones it skipped on the way (each naming its file and
/// offset: the caller logs them). A damaged file is never half-used.
pub fn newest_valid_snapshot(
    files: &[(String, Vec<u8>)],
    owner: LogOwner,
) -> (Option<(SnapshotMeta, &[u8])>, Vec<WalError>) {
    let mut candidates: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(name, _)| parse_snapshot_file_name(name).is_some())
        .collect();
    candidates.sort_by_key(|(name, _)| std::cmp::Reverse(parse_snapshot_file_name(name)));
    let mut skipped = Vec::new();
    for (name, bytes) in candidates {
        match decode_snapshot_file(name, bytes, owner) {
            Ok(found) => return (Some(found), skipped),
            Err(error) => skipped.push(error),
        }
    }
    (None, skipped)
}

/// Reads fields in order, naming the offset of whatever is missing.
struct Reader<'f, 'b> {
    file: &'f str,
    bytes: &'b [u8],
    offset: usize,
}

impl<'b> Reader<'_, 'b> {
    fn take(&mut self, length: usize, what: &str) -> Result<&'b [u8], WalError> {
        let end = self.offset.checked_add(length);
        let Some(field) = end.and_then(|end| self.bytes.get(self.offset..end)) else {
            return Err(self.corrupt(
                self.offset,
                format!("cut short: the {what} needs {length} bytes"),
            ));
        };
        self.offset += length;
        Ok(field)
    }

    fn u32(&mut self, what: &str) -> Result<u32, WalError> {
        self.take(4, what).map(read_u32)
    }

    fn u64(&mut self, what: &str) -> Result<u64, WalError> {
        self.take(8, what).map(read_u64)
    }

    /// A count, then that many node ids.
    fn ids(&mut self, what: &str) -> Result<BTreeSet<NodeId>, WalError> {
        let count_at = self.offset;
        let count = self.u32(&format!("{what} count"))?;
        if count > VOTERS_MAX {
            return Err(self.corrupt(count_at, format!("{count} {what}s: damaged")));
        }
        let mut ids = BTreeSet::new();
        for _ in 0..count {
            ids.insert(NodeId::new(self.u64(&format!("{what} id"))?));
        }
        Ok(ids)
    }

    fn corrupt(&self, offset: usize, reason: String) -> WalError {
        WalError::CorruptSnapshot {
            file: self.file.to_string(),
            offset: offset as u64,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owner() -> LogOwner {
        LogOwner {
            cluster_id: ClusterId(7),
            node_id: NodeId::new(2),
        }
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            owner: owner(),
            index: LogIndex::new(1_000),
            term: Term::new(4),
            membership: {
                let mut membership = Membership::new([1, 2, 3].map(NodeId::new), [NodeId::new(4)]);
                membership
                    .addresses
                    .insert(NodeId::new(4), "udp=127.0.0.1:7004".into());
                membership
            },
        }
    }

    #[test]
    fn a_file_reads_back_its_meta_and_image() {
        let bytes = encode_snapshot_file(&meta(), b"the store");
        let (read, image) = decode_snapshot_file("s.snap", &bytes, owner()).unwrap();
        assert_eq!(read, meta());
        assert_eq!(image, b"the store");
    }

    // The newest file that checks out wins; a damaged newer one is skipped with its name, and
    // only the newest two are kept.
    #[test]
    fn the_newest_valid_snapshot_is_chosen_and_two_are_kept() {
        let at = |index: u64| {
            let meta = SnapshotMeta {
                index: LogIndex::new(index),
                ..meta()
            };
            let name = snapshot_file_name(meta.index, meta.term);
            (name, encode_snapshot_file(&meta, &[index as u8; 10]))
        };
        let mut files = vec![
            at(5),
            at(20),
            at(9),
            ("snapshot-x.snap.tmp".into(), vec![1]),
        ];
        let (found, skipped) = newest_valid_snapshot(&files, owner());
        assert_eq!(found.unwrap().0.index, LogIndex::new(20));
        assert!(skipped.is_empty());
        let last = files[1].1.len() - 1;
        files[1].1[last] ^= 1;
        let (found, skipped) = newest_valid_snapshot(&files, owner());
        assert_eq!(found.unwrap().0.index, LogIndex::new(9));
        assert!(
            skipped[0].to_string().contains(&files[1].0),
            "{}",
            skipped[0]
        );
        let names: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(snapshot_files_to_delete(&names), vec![files[0].0.clone()]);
        assert_eq!(parse_snapshot_file_name("snapshot-1-2.snap"), None);
    }

    // A version-1 file (voters only) still reads, with no learners.
    #[test]
    fn a_version_1_file_still_reads() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&7u64.to_le_bytes());
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(&1_000u64.to_le_bytes());
        bytes.extend_from_slice(&4u64.to_le_bytes());
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(&3u64.to_le_bytes()); // the image's length
        let header_checksum = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&header_checksum.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(&crc32c::crc32c(b"abc").to_le_bytes());
        let (meta, image) = decode_snapshot_file("s.snap", &bytes, owner()).unwrap();
        assert_eq!(
            meta.membership,
            Membership::new([1, 2].map(NodeId::new), [])
        );
        assert_eq!(image, b"abc");
    }

    #[test]
    fn names_sort_by_index() {
        let early = snapshot_file_name(LogIndex::new(99), Term::new(9));
        let late = snapshot_file_name(LogIndex::new(100), Term::new(1));
        assert!(early < late, "{early} {late}");
    }

    #[test]
    fn another_nodes_snapshot_is_refused() {
        let bytes = encode_snapshot_file(&meta(), b"x");
        let stranger = LogOwner {
            cluster_id: ClusterId(8),
            node_id: NodeId::new(2),
        };
        let error = decode_snapshot_file("s.snap", &bytes, stranger).unwrap_err();
        assert!(matches!(error, WalError::ForeignSegment { .. }), "{error}");
    }

    #[test]
    fn damage_is_refused_with_the_offset_of_what_is_wrong() {
        let bytes = encode_snapshot_file(&meta(), b"the store");
        // Where the header's checksum sits: before the image and its own checksum.
        let header_end = bytes.len() - b"the store".len() - 4 - 4;
        let offset_of = |bytes: &[u8]| match decode_snapshot_file("s.snap", bytes, owner()) {
            Err(WalError::CorruptSnapshot { offset, reason, .. }) => (offset, reason),
            other => panic!("{other:?}"),
        };
        let mut flipped_image = bytes.clone();
        flipped_image[header_end + 4 + 2] ^= 1;
        let (offset, reason) = offset_of(&flipped_image);
        assert_eq!(offset as usize, header_end + 4);
        assert!(reason.contains("image checksum"), "{reason}");
        let mut flipped_term = bytes.clone();
        flipped_term[36] ^= 1;
        let (offset, reason) = offset_of(&flipped_term);
        assert_eq!(offset as usize, header_end);
        assert!(reason.contains("header checksum"), "{reason}");
        let (offset, reason) = offset_of(&bytes[..bytes.len() - 1]);
        assert_eq!(offset as usize, header_end - 8);
        assert!(reason.contains("follow the header"), "{reason}");
        let (offset, _) = offset_of(&bytes[..20]);
        assert_eq!(offset, 20);
    }

    proptest! {
        /// Proves that no damage to a snapshot file reads back as a snapshot: any single flipped
        /// bit, and any cut, is refused, never a panic.
        #[test]
        fn any_flipped_bit_or_cut_is_refused(
            image in proptest::collection::vec(any::<u8>(), 0..64),
            bit in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = encode_snapshot_file(&meta(), &image);
            let mut flipped = bytes.clone();
            let position = bit.index(bytes.len() * 8);
            flipped[position / 8] ^= 1 << (position % 8);
            prop_assert!(decode_snapshot_file("s.snap", &flipped, owner()).is_err());
            let cut = cut.index(bytes.len());
            prop_assert!(decode_snapshot_file("s.snap", &bytes[..cut], owner()).is_err());
        }
    }
}
