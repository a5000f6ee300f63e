//! The serde shapes records are encoded through. They give exactly the bincode encoding of
//! [`Record`] (same variants, same field order), but carry payload bytes as one byte string
//! instead of a sequence of single bytes, which makes encoding and decoding a bulk copy.

use rafting_core::raft::{Entry, EntryPayload, HardState, Membership};
use rafting_core::{LogIndex, Term};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::record::{Record, RecordRef};

#[derive(Serialize)]
pub(crate) enum WireRecordRef<'a> {
    HardState(&'a HardState),
    Truncate { from: LogIndex },
    Entry(WireEntryRef<'a>),
    Reset { after: LogIndex },
}

#[derive(Serialize)]
pub(crate) struct WireEntryRef<'a> {
    term: Term,
    index: LogIndex,
    payload: WirePayloadRef<'a>,
}

#[derive(Serialize)]
enum WirePayloadRef<'a> {
    Noop,
    Command(BytesRef<'a>),
    Configuration(&'a Membership),
}

struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'a> From<&RecordRef<'a>> for WireRecordRef<'a> {
    fn from(record: &RecordRef<'a>) -> Self {
        match *record {
            RecordRef::HardState(hard_state) => WireRecordRef::HardState(hard_state),
            RecordRef::Truncate { from } => WireRecordRef::Truncate { from },
            RecordRef::Reset { after } => WireRecordRef::Reset { after },
            RecordRef::Entry(entry) => WireRecordRef::Entry(WireEntryRef {
                term: entry.term,
                index: entry.index,
                payload: match &entry.payload {
                    EntryPayload::Noop => WirePayloadRef::Noop,
                    EntryPayload::Command(data) => WirePayloadRef::Command(BytesRef(data)),
                    EntryPayload::Configuration(membership) => {
                        WirePayloadRef::Configuration(membership)
                    }
                },
            }),
        }
    }
}

#[derive(Deserialize)]
pub(crate) enum WireRecord {
    HardState(HardState),
    Truncate { from: LogIndex },
    Entry(WireEntry),
    Reset { after: LogIndex },
}

#[derive(Deserialize)]
pub(crate) struct WireEntry {
    term: Term,
    index: LogIndex,
    payload: WirePayload,
}

#[derive(Deserialize)]
enum WirePayload {
    Noop,
    Command(ByteBuffer),
    Configuration(Membership),
}

struct ByteBuffer(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuffer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(ByteBufferVisitor)
    }
}

struct ByteBufferVisitor;

impl<'de> serde::de::Visitor<'de> for ByteBufferVisitor {
    type Value = ByteBuffer;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<ByteBuffer, E> {
        Ok(ByteBuffer(bytes.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<ByteBuffer, E> {
        Ok(ByteBuffer(bytes))
    }
}

impl From<WireRecord> for Record {
    fn from(record: WireRecord) -> Self {
        match record {
            WireRecord::HardState(hard_state) => Record::HardState(hard_state),
            WireRecord::Truncate { from } => Record::Truncate { from },
            WireRecord::Reset { after } => Record::Reset { after },
            WireRecord::Entry(entry) => Record::Entry(Entry {
                term: entry.term,
                index: entry.index,
                payload: entry.payload.into_payload(),
            }),
        }
    }
}

impl WirePayload {
    fn into_payload(self) -> EntryPayload {
        match self {
            WirePayload::Noop => EntryPayload::Noop,
            WirePayload::Command(ByteBuffer(data)) => EntryPayload::Command(data.into()),
            WirePayload::Configuration(membership) => EntryPayload::Configuration(membership),
        }
    }
}
