//! One tenant's key space: an ordered map from key to value and metadata.
//!
//! This is the plain data structure; the rules that span structures (revisions, watch
//! events, session bindings) live in [`write`](super::write), which is the only caller of
//! the mutating methods here.

use super::answer::KeyValue;
use super::key::{Prefix, Revision, SessionId};
use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// A key's value and metadata. The value is shared with the watch history's event for the
/// write that set it, and with every copy of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub value: Bytes,
    pub version: u64,
    pub create_revision: Revision,
    pub modify_revision: Revision,
    pub session: Option<SessionId>,
}

/// What a put changed, for the caller's bookkeeping.
pub(crate) struct PutEffect {
    pub version: u64,
    pub create_revision: Revision,
    /// The session the key was bound to before this put, if any.
    pub previous_session: Option<SessionId>,
    /// The length of the value replaced (None: the key is new).
    pub previous_value_bytes: Option<usize>,
}

/// The keys of one tenant, in key order (ordered so that listings are deterministic).
///
/// A persistent map: a copy of the key space shares every node with the original until one
/// of them writes, so copying a store (to encode its snapshot off the node loop) costs a few
/// pointers, not a walk over every key. It encodes exactly as a `BTreeMap` would.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeySpace {
    records: OrdMap<String, Record>,
}

impl KeySpace {
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every key with the length of its value, in key order.
    pub fn sizes(&self) -> impl Iterator<Item = (&str, usize)> {
        self.records
            .iter()
            .map(|(key, record)| (key.as_str(), record.value.len()))
    }

    /// The version of `key`, 0 if absent.
    pub fn version_of(&self, key: &str) -> u64 {
        self.records.get(key).map_or(0, |record| record.version)
    }

    /// Creates or replaces `key` at `revision`. The key must already be validated.
    pub fn put(
        &mut self,
        key: String,
        value: Bytes,
        session: Option<SessionId>,
        revision: Revision,
    ) -> PutEffect {
        match self.records.get_mut(key.as_str()) {
            Some(record) => {
                let previous_session = record.session;
                let previous_value_bytes = Some(record.value.len());
                record.value = value;
                record.version += 1;
                record.modify_revision = revision;
                record.session = session;
                PutEffect {
                    version: record.version,
                    create_revision: record.create_revision,
                    previous_session,
                    previous_value_bytes,
                }
            }
            None => {
                let record = Record {
                    value,
                    version: 1,
                    create_revision: revision,
                    modify_revision: revision,
                    session,
                };
                self.records.insert(key, record);
                PutEffect {
                    version: 1,
                    create_revision: revision,
                    previous_session: None,
                    previous_value_bytes: None,
                }
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Record> {
        self.records.remove(key)
    }

    /// Up to `limit` keys covered by `prefix` and strictly after `after`, in key order, and
    /// the continuation (the last key returned) when more remain.
    pub fn list(
        &self,
        prefix: &Prefix,
        after: Option<&str>,
        limit: usize,
        keys_only: bool,
    ) -> (Vec<KeyValue>, Option<String>) {
        let is_after = |key: &str| after.is_none_or(|after| key > after);
        let exact = if prefix.is_root() {
            None
        } else {
            self.records
                .get_key_value(prefix.as_str())
                .filter(|(key, _)| is_after(key))
        };
        let (low, high) = prefix.descendant_bounds();
        let descendants = descendant_range(&low, &high, after)
            .map(|bounds| self.records.range::<_, str>(bounds))
            .into_iter()
            .flatten();
        let mut entries = Vec::new();
        for (key, record) in exact.into_iter().chain(descendants) {
            if entries.len() == limit {
                let continue_after = entries.last().map(|last: &KeyValue| last.key.clone());
                return (entries, continue_after);
            }
            entries.push(key_value(key, record, keys_only));
        }
        (entries, None)
    }
}

/// The map range of the keys in `[low, high)` strictly after `after`, or `None` when the
/// cursor is at or past `high`: `after` comes from a client and may name any position, and
/// `BTreeMap::range` panics on a start past its end, so the bounds are ordered here.
fn descendant_range<'a>(
    low: &'a str,
    high: &'a str,
    after: Option<&'a str>,
) -> Option<(Bound<&'a str>, Bound<&'a str>)> {
    let start = match after {
        Some(after) if after >= high => return None,
        Some(after) if after >= low => Bound::Excluded(after),
        _ => Bound::Included(low),
    };
    Some((start, Bound::Excluded(high)))
}

/// The public view of a record.
pub(crate) fn key_value(key: &str, record: &Record, keys_only: bool) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: if keys_only {
            None
        } else {
            Some(record.value.clone())
        },
        version: record.version,
        create_revision: record.create_revision,
        modify_revision: record.modify_revision,
        session: record.session,
    }
}
