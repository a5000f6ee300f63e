//! Property tests: the reader never panics on arbitrary bytes, and damage to a valid segment
//! is either a clean error or a recovery that keeps only records that were written.

use proptest::prelude::*;
use rafting_core::raft::{Entry, EntryPayload};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_wal::{
    Batch, ClusterId, LogOwner, LogShape, RecoveredLog, SegmentExpectation, decode_records,
    encode_frame, new_segment_bytes, read_frame, replay_segment,
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
}
