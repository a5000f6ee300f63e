//! Records: what a frame's body holds, and the batch a driver hands to the log.
//!
//! A frame body is a sequence of bincode-encoded [`Record`]s laid end to end. One group commit
//! writes one frame, so a batch (hard state, truncation and entries) becomes durable whole or
//! not at all.

use rafting_core::LogIndex;
use rafting_core::codec::VecAppender;
use rafting_core::raft::{Entry, HardState};
use serde::{Deserialize, Serialize};

use crate::frame::MAX_FRAME_BODY_BYTES;
use crate::wire::{WireRecord, WireRecordRef};

/// One change to the durable log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The node's hard state from here on; the latest one in the log wins.
    HardState(HardState),
    /// Remove every entry from `from` on; the next entry must have index `from`.
    Truncate { from: LogIndex },
    /// Append one entry; its index must follow the log.
    Entry(Entry),
    /// Forget every entry: a snapshot covering the log up to `after` was installed from a
    /// leader over a log that did not continue it. The next entry is `after + 1`. Written
    /// only once that snapshot's file is durable.
    Reset { after: LogIndex },
}

/// A borrowed [`Record`], so that writing never clones an entry.
#[derive(Clone, Copy, Debug)]
pub enum RecordRef<'a> {
    HardState(&'a HardState),
    Truncate { from: LogIndex },
    Entry(&'a Entry),
    Reset { after: LogIndex },
}

/// What the Raft core asks to make durable in one go: an optional new hard state, and entries
/// to append. If the first entry's index is at or below the log's last index, everything from
/// that index on is replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn bincode_config_limited() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BODY_BYTES>()
}

/// Appends the encoding of `records` to `buffer` (normally right after [`crate::begin_frame`]).
pub fn encode_records(records: &[RecordRef<'_>], buffer: &mut Vec<u8>) -> Result<(), String> {
    for record in records {
        bincode::serde::encode_into_writer(
            WireRecordRef::from(record),
            VecAppender(buffer),
            bincode_config(),
        )
        .map_err(|error| format!("cannot encode record: {error}"))?;
    }
    Ok(())
}

/// Decodes a frame body into its records and the offset of each within the body. Never
/// panics and never allocates more than the body's size allows.
pub fn decode_records(body: &[u8]) -> Result<Vec<(usize, Record)>, (usize, String)> {
    let mut records = Vec::new();
    let mut position = 0;
    while position < body.len() {
        let (record, used) = bincode::serde::decode_from_slice::<WireRecord, _>(
            &body[position..],
            bincode_config_limited(),
        )
        .map_err(|error| (position, format!("undecodable record: {error}")))?;
        records.push((position, Record::from(record)));
        position += used;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafting_core::raft::EntryPayload;
    use rafting_core::{NodeId, Term};

    // The borrowed form written by the log decodes as the owned form read by recovery.
    #[test]
    fn records_round_trip() {
        let hard_state = HardState {
            term: Term::new(3),
            voted_for: Some(NodeId::new(2)),
            commit: LogIndex::new(5),
        };
        let entry = Entry {
            term: Term::new(3),
            index: LogIndex::new(6),
            payload: EntryPayload::Command(vec![1, 2, 3].into()),
        };
        let mut body = Vec::new();
        let records = [
            RecordRef::Truncate {
                from: LogIndex::new(6),
            },
            RecordRef::Entry(&entry),
            RecordRef::HardState(&hard_state),
        ];
        encode_records(&records, &mut body).unwrap();
        let decoded: Vec<Record> = decode_records(&body)
            .unwrap()
            .into_iter()
            .map(|(_, record)| record)
            .collect();
        assert_eq!(
            decoded,
            vec![
                Record::Truncate {
                    from: LogIndex::new(6)
                },
                Record::Entry(entry),
                Record::HardState(hard_state),
            ]
        );
    }

    // The bulk byte-string encoding is exactly plain bincode of the owned record, so the
    // format is what `bincode::serde` gives for `Record`.
    #[test]
    fn wire_encoding_is_plain_bincode() {
        let entry = Entry {
            term: Term::new(300),
            index: LogIndex::new(70_000),
            payload: EntryPayload::Command((0..=255).collect::<Vec<u8>>().into()),
        };
        let mut body = Vec::new();
        encode_records(&[RecordRef::Entry(&entry)], &mut body).unwrap();
        let plain =
            bincode::serde::encode_to_vec(Record::Entry(entry.clone()), bincode_config()).unwrap();
        assert_eq!(body, plain);
        let decoded = decode_records(&body).unwrap();
        assert_eq!(decoded, vec![(0, Record::Entry(entry))]);
    }

    // A body that claims a huge payload is refused without allocating it.
    #[test]
    fn garbage_body_is_an_error() {
        let body = [2u8, 1, 1, 1, 0xfc, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_records(&body).is_err());
        assert!(decode_records(&[9u8]).is_err());
    }
}
