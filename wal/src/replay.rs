//! Recovery: replaying one segment's bytes into a [`RecoveredLog`], deciding what is a torn
//! tail (cut and forgiven) and what is corruption (an error naming the file and offset).
//!
//! The writer appends one frame per group commit and makes it durable before it writes the
//! next, and it creates segments atomically (header written and synced under a temporary
//! name, then renamed). So after a crash at most the last frame of the last segment can be
//! incomplete.
//!
//! The writer also lays zeros down ahead of its frames in the last segment (so that most
//! syncs change no file metadata; see `rafting-net`'s log), and cuts them off a segment before
//! it starts the next one. Nothing but zeros after the last intact frame of the last segment
//! is that space: the segment ended cleanly ([`SegmentScan::zero_tail_bytes`]).
//!
//! Damage at the end of the last segment that a crash mid-write can leave is a torn tail:
//! - fewer bytes than a frame header;
//! - an intact header whose body runs past the end of the file;
//! - an intact header whose body fails its checksum and is followed by nothing but zeros to
//!   the end of the file (the frame was being written over the zeros laid down ahead);
//! - a header that fails its checksum followed by nothing but zeros (a header cut while it
//!   was written over them).
//!
//! Anything else — damage with intact bytes after it, damage in any earlier segment, a
//! record that does not decode or does not follow the log — is an error: the log has lost
//! data it acknowledged, and the node must not serve from it.

use crate::error::WalError;
use crate::frame::{FrameDamage, FrameRead, read_frame};
use crate::log_shape::RecoveredLog;
use crate::record::{RecordRef, decode_records, encode_records};
use crate::segment_header::{LogOwner, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::{begin_frame, finish_frame};

/// What the reader must know about a segment before reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentExpectation {
    pub owner: LogOwner,
    /// The sequence number the file's name gives; the header must agree.
    pub sequence: u64,
    /// Whether this is the newest segment, the only one where a torn tail is forgiven.
    pub is_last: bool,
}

/// The outcome of replaying one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    pub header: SegmentHeader,
    /// Bytes of header and intact frames; the writer must cut the file to this length.
    pub valid_length: u64,
    /// Bytes of torn tail after `valid_length` (zero if the segment ended cleanly).
    pub torn_tail_bytes: u64,
    /// Bytes after `valid_length` that are nothing but zeros: space the writer laid down
    /// ahead of its frames (only the last segment has any), not damage.
    pub zero_tail_bytes: u64,
}

/// Replays the segment `file` whose content is `bytes` into `log`. Never panics.
pub fn replay_segment(
    file: &str,
    bytes: &[u8],
    expectation: SegmentExpectation,
    log: &mut RecoveredLog,
) -> Result<SegmentScan, WalError> {
    let header = SegmentHeader::decode(file, bytes, expectation.owner)?;
    if header.sequence != expectation.sequence {
        return Err(WalError::BadHeader {
            file: file.to_string(),
            reason: format!(
                "header says segment {} but the file name says {}",
                header.sequence, expectation.sequence
            ),
        });
    }
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut zero_tail = false;
    loop {
        match read_frame(bytes, offset) {
            FrameRead::End => break,
            FrameRead::Frame { body, next_offset } => {
                apply_frame(file, offset, body, log)?;
                offset = next_offset;
            }
            FrameRead::Damaged(damage) => {
                if expectation.is_last && only_zeros(bytes, offset) {
                    zero_tail = true;
                    break;
                }
                if expectation.is_last && is_torn_tail(bytes, offset, damage) {
                    break;
                }
                return Err(WalError::Corrupt {
                    file: file.to_string(),
                    offset: offset as u64,
                    reason: damage.describe().to_string(),
                });
            }
        }
    }
    let after = (bytes.len() - offset) as u64;
    Ok(SegmentScan {
        header,
        valid_length: offset as u64,
        torn_tail_bytes: if zero_tail { 0 } else { after },
        zero_tail_bytes: if zero_tail { after } else { 0 },
    })
}

/// Whether `bytes` holds nothing but zeros from `offset` to its end.
fn only_zeros(bytes: &[u8], offset: usize) -> bool {
    bytes
        .get(offset..)
        .unwrap_or(&[])
        .iter()
        .all(|&byte| byte == 0)
}

/// Whether damage at `offset` of the last segment is what a crash in the middle of the last
/// write leaves: the frame's bytes cut short, with nothing but zeros after what was written.
fn is_torn_tail(bytes: &[u8], offset: usize, damage: FrameDamage) -> bool {
    match damage {
        FrameDamage::ShortHeader | FrameDamage::BodyPastEnd => true,
        FrameDamage::BodyChecksum { frame_end } => only_zeros(bytes, frame_end),
        // A header cut while it was written over the zeros ahead: nothing after it.
        FrameDamage::HeaderChecksum => only_zeros(bytes, offset + crate::FRAME_HEADER_BYTES),
        FrameDamage::LengthTooLarge => false,
    }
}

fn apply_frame(
    file: &str,
    frame_offset: usize,
    body: &[u8],
    log: &mut RecoveredLog,
) -> Result<(), WalError> {
    let records = decode_records(body).map_err(|(position, reason)| WalError::Corrupt {
        file: file.to_string(),
        offset: (frame_offset + crate::FRAME_HEADER_BYTES + position) as u64,
        reason,
    })?;
    for (position, record) in records {
        log.apply(record)
            .map_err(|violation| WalError::OutOfOrder {
                file: file.to_string(),
                offset: (frame_offset + crate::FRAME_HEADER_BYTES + position) as u64,
                reason: violation.reason,
            })?;
    }
    Ok(())
}

/// Appends one frame holding `records` to `buffer`: what one group commit writes.
pub fn encode_frame(records: &[RecordRef<'_>], buffer: &mut Vec<u8>) -> Result<(), WalError> {
    let start = begin_frame(buffer);
    if let Err(reason) = encode_records(records, buffer) {
        buffer.truncate(start);
        return Err(WalError::InvalidBatch { reason });
    }
    finish_frame(buffer, start).ok_or_else(|| WalError::InvalidBatch {
        reason: format!(
            "batch encodes to more than {} bytes",
            crate::MAX_FRAME_BODY_BYTES
        ),
    })
}

/// The bytes of a new, empty segment: just its header.
pub fn new_segment_bytes(owner: LogOwner, sequence: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    SegmentHeader { owner, sequence }.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Batch;
    use crate::{ClusterId, LogShape};
    use rafting_core::raft::{Entry, EntryPayload, HardState};
    use rafting_core::{LogIndex, NodeId, Term};

    fn owner() -> LogOwner {
        LogOwner {
            cluster_id: ClusterId(1),
            node_id: NodeId::new(1),
        }
    }

    fn expectation(is_last: bool) -> SegmentExpectation {
        SegmentExpectation {
            owner: owner(),
            sequence: 0,
            is_last,
        }
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            term: Term::new(term),
            index: LogIndex::new(index),
            payload: EntryPayload::Command(vec![index as u8; 20].into()),
        }
    }

    /// A segment holding one frame per batch, and the offset where each frame starts.
    fn segment(batches: &[Batch]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = new_segment_bytes(owner(), 0).to_vec();
        let mut shape = LogShape::default();
        let mut offsets = Vec::new();
        for batch in batches {
            let (records, next_shape) = shape.plan_batch(batch).unwrap();
            offsets.push(bytes.len());
            encode_frame(&records, &mut bytes).unwrap();
            shape = next_shape;
        }
        (bytes, offsets)
    }

    fn batch(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Batch {
        Batch {
            hard_state: Some(HardState {
                term: Term::new(term),
                voted_for: None,
                commit: LogIndex::new(*indexes.start()),
            }),
            entries: indexes.map(|index| entry(term, index)).collect(),
        }
    }

    fn last_index(log: &RecoveredLog) -> u64 {
        log.entries.last().map_or(0, |entry| entry.index.get())
    }

    // Three batches, one overwriting the tail of another, replay to the overwritten log and
    // the latest hard state.
    #[test]
    fn replay_applies_batches_in_order() {
        let (bytes, _) = segment(&[batch(1, 1..=5), batch(2, 4..=6), batch(2, 7..=7)]);
        let mut log = RecoveredLog::default();
        let scan = replay_segment("seg", &bytes, expectation(true), &mut log).unwrap();
        assert_eq!(scan.valid_length, bytes.len() as u64);
        assert_eq!(scan.torn_tail_bytes, 0);
        let terms: Vec<u64> = log.entries.iter().map(|entry| entry.term.get()).collect();
        assert_eq!(terms, vec![1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(log.hard_state.unwrap().commit, LogIndex::new(7));
    }

    // Every cut inside the last frame of the last segment is a torn tail: replay keeps the
    // earlier frames and reports where to cut.
    #[test]
    fn torn_tail_is_cut_at_every_length() {
        let (bytes, offsets) = segment(&[batch(1, 1..=3), batch(1, 4..=6)]);
        let last_frame = offsets[1];
        for cut in last_frame..bytes.len() {
            let mut log = RecoveredLog::default();
            let scan = replay_segment("seg", &bytes[..cut], expectation(true), &mut log)
                .unwrap_or_else(|error| panic!("cut at {cut}: {error}"));
            assert_eq!(scan.valid_length, last_frame as u64);
            assert_eq!(last_index(&log), 3);
        }
    }

    // The zeros the writer lays down ahead of its frames end the last segment cleanly; a frame
    // cut while it was being written over them is a torn tail, cut at its start.
    #[test]
    fn zeros_after_the_frames_are_space_and_a_frame_cut_over_them_is_torn() {
        let (bytes, offsets) = segment(&[batch(1, 1..=3), batch(1, 4..=6)]);
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0u8; 4096]);
        let mut log = RecoveredLog::default();
        let scan = replay_segment("seg", &padded, expectation(true), &mut log).unwrap();
        assert_eq!(scan.valid_length, bytes.len() as u64);
        assert_eq!((scan.torn_tail_bytes, scan.zero_tail_bytes), (0, 4096));
        assert_eq!(last_index(&log), 6);

        let last_frame = offsets[1];
        for written in last_frame + 1..bytes.len() {
            let mut torn = bytes[..written].to_vec();
            torn.resize(bytes.len() + 4096, 0);
            let mut log = RecoveredLog::default();
            let scan = replay_segment("seg", &torn, expectation(true), &mut log)
                .unwrap_or_else(|error| panic!("written up to {written}: {error}"));
            assert_eq!(
                scan.valid_length, last_frame as u64,
                "written up to {written}"
            );
            assert_eq!(last_index(&log), 3);
        }
    }

    // Zeros after the frames of a segment that is not the last are damage: the writer cuts
    // them off before it starts the next segment.
    #[test]
    fn zeros_after_the_frames_of_an_earlier_segment_are_an_error() {
        let (mut bytes, _) = segment(&[batch(1, 1..=3)]);
        let end = bytes.len();
        bytes.extend_from_slice(&[0u8; 64]);
        let mut log = RecoveredLog::default();
        let error = replay_segment("seg-0", &bytes, expectation(false), &mut log).unwrap_err();
        assert_eq!(error.kind(), crate::WalErrorKind::Corrupt);
        assert!(
            error.to_string().contains(&format!("offset {end}")),
            "{error}"
        );
    }

    // A torn tail in a segment that is not the last one is an error naming file and offset.
    #[test]
    fn cut_in_an_earlier_segment_is_an_error() {
        let (bytes, offsets) = segment(&[batch(1, 1..=3), batch(1, 4..=6)]);
        let mut log = RecoveredLog::default();
        let error = replay_segment(
            "seg-0",
            &bytes[..bytes.len() - 1],
            expectation(false),
            &mut log,
        )
        .unwrap_err();
        assert_eq!(error.kind(), crate::WalErrorKind::Corrupt);
        let message = error.to_string();
        assert!(message.contains("seg-0"), "{message}");
        assert!(
            message.contains(&format!("offset {}", offsets[1])),
            "{message}"
        );
    }

    // A flipped byte anywhere in a frame that has frames after it is corruption, reported at
    // the offset of the damaged frame, even in the last segment.
    #[test]
    fn flipped_byte_in_the_middle_is_an_error() {
        let (bytes, offsets) = segment(&[batch(1, 1..=3), batch(1, 4..=6), batch(1, 7..=7)]);
        for position in offsets[1]..offsets[2] {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x20;
            let mut log = RecoveredLog::default();
            let error = replay_segment("seg", &damaged, expectation(true), &mut log).unwrap_err();
            assert_eq!(
                error.kind(),
                crate::WalErrorKind::Corrupt,
                "byte {position}"
            );
            assert!(
                error
                    .to_string()
                    .contains(&format!("offset {}", offsets[1])),
                "byte {position}: {error}"
            );
        }
    }

    // A well-framed record whose index goes backwards without a truncation is refused.
    #[test]
    fn backwards_index_in_a_frame_is_an_error() {
        let (mut bytes, _) = segment(&[batch(1, 1..=3)]);
        let stale = entry(1, 2);
        let offset = bytes.len();
        encode_frame(&[RecordRef::Entry(&stale)], &mut bytes).unwrap();
        let mut log = RecoveredLog::default();
        let error = replay_segment("seg", &bytes, expectation(true), &mut log).unwrap_err();
        assert_eq!(error.kind(), crate::WalErrorKind::OutOfOrder);
        let expected_offset = offset + crate::FRAME_HEADER_BYTES;
        assert!(
            error
                .to_string()
                .contains(&format!("offset {expected_offset}")),
            "{error}"
        );
        assert!(matches!(log.entries.last(), Some(entry) if entry.index.get() == 3));
    }

    // The header's sequence number must match the one in the file name.
    #[test]
    fn sequence_mismatch_is_an_error() {
        let (bytes, _) = segment(&[batch(1, 1..=1)]);
        let mut log = RecoveredLog::default();
        let wrong = SegmentExpectation {
            sequence: 5,
            ..expectation(true)
        };
        let error = replay_segment("seg", &bytes, wrong, &mut log).unwrap_err();
        assert_eq!(error.kind(), crate::WalErrorKind::BadHeader);
    }
}
