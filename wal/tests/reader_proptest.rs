//! Property tests: the reader never panics on arbitrary bytes, and damage to a valid segment
//! is either a clean error or a recovery that keeps only records that were written.

use proptest::prelude::*;
use rafting_core::raft::{Entry, EntryPayload};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_wal::{
    Batch, ClusterId, FrameRead, LogOwner, LogShape, RecoveredLog, SEGMENT_HEADER_BYTES,
    SegmentExpectation, decode_records, encode_frame, new_segment_bytes, read_frame,
    replay_segment,
};

fn owner() -> LogOwner {
    LogOwner {
        cluster_id: ClusterId(9),
        node_id: NodeId::new(2),
    }
}

fn expectation(is_last: bool) -> SegmentExpectation {
    SegmentExpectation {
        owner: owner(),
        sequence: 0,
        is_last,
    }
}

fn valid_segment(batch_sizes: &[usize]) -> (Vec<u8>, Vec<Entry>) {
    let mut bytes = new_segment_bytes(owner(), 0).to_vec();
    let mut shape = LogShape::default();
    let mut written = Vec::new();
    let mut index = 1;
    for &size in batch_sizes {
        let entries: Vec<Entry> = (0..size)
            .map(|offset| Entry {
                term: Term::new(1),
                index: LogIndex::new(index + offset as u64),
                payload: EntryPayload::Command(vec![7; 30].into()),
            })
            .collect();
        index += size as u64;
        let batch = Batch {
            hard_state: None,
            entries,
        };
        let (records, next_shape) = shape.plan_batch(&batch).unwrap();
        encode_frame(&records, &mut bytes).unwrap();
        shape = next_shape;
        written.extend(batch.entries);
    }
    (bytes, written)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Arbitrary bytes, with or without a valid header in front, never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
        with_header in any::<bool>(),
        is_last in any::<bool>(),
    ) {
        let mut bytes = if with_header { new_segment_bytes(owner(), 0).to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&tail);
        let mut log = RecoveredLog::default();
        let _ = replay_segment("fuzz", &bytes, expectation(is_last), &mut log);
        let _ = decode_records(&tail);
        let _ = read_frame(&tail, 0);
    }

    // Damaging one byte of a valid segment either fails cleanly or recovers a prefix of what
    // was written; it never invents an entry.
    #[test]
    fn damaged_segment_recovers_a_prefix_or_fails(
        batch_sizes in proptest::collection::vec(1usize..6, 1..6),
        position_seed in any::<usize>(),
        flip in 1u8..=255,
        cut in any::<bool>(),
    ) {
        let (mut bytes, written) = valid_segment(&batch_sizes);
        let position = position_seed % bytes.len();
        if cut {
            bytes.truncate(position);
        } else {
            bytes[position] ^= flip;
        }
        let mut log = RecoveredLog::default();
        if replay_segment("fuzz", &bytes, expectation(true), &mut log).is_ok() {
            prop_assert!(log.entries.len() <= written.len());
            prop_assert_eq!(&log.entries[..], &written[..log.entries.len()]);
        }
    }

    // A last segment followed by the zeros its writer laid down ahead gives back every entry;
    // a write cut anywhere after the segment's header (what was not written reads as zeros)
    // gives back exactly the entries before the cut frame; a flipped byte gives a prefix or a
    // clean error.
    #[test]
    fn segment_with_zeros_ahead_recovers_whole_cut_or_damaged(
        batch_sizes in proptest::collection::vec(1usize..6, 1..6),
        zeros in 0usize..4096,
        position_seed in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let (clean, written) = valid_segment(&batch_sizes);
        let end = clean.len();
        let mut bytes = clean.clone();
        bytes.resize(end + zeros, 0);
        let mut log = RecoveredLog::default();
        let scan = replay_segment("fuzz", &bytes, expectation(true), &mut log).unwrap();
        prop_assert_eq!(&log.entries, &written);
        prop_assert_eq!((scan.valid_length, scan.torn_tail_bytes, scan.zero_tail_bytes),
            (end as u64, 0, zeros as u64));

        let cut = SEGMENT_HEADER_BYTES + position_seed % (end - SEGMENT_HEADER_BYTES);
        let mut torn = bytes.clone();
        torn[cut..end].fill(0);
        let mut log = RecoveredLog::default();
        let scan = replay_segment("fuzz", &torn, expectation(true), &mut log).unwrap();
        let mut frame_end = SEGMENT_HEADER_BYTES;
        while let FrameRead::Frame { next_offset, .. } = read_frame(&clean, frame_end) {
            if next_offset > cut {
                break;
            }
            frame_end = next_offset;
        }
        prop_assert_eq!(scan.valid_length, frame_end as u64);
        prop_assert_eq!(&log.entries[..], &written[..log.entries.len()]);

        let mut damaged = bytes;
        damaged[cut] ^= flip;
        let mut log = RecoveredLog::default();
        if replay_segment("fuzz", &damaged, expectation(true), &mut log).is_ok() {
            prop_assert_eq!(&log.entries[..], &written[..log.entries.len()]);
        }
    }
}
