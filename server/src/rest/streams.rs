//! Watch streams (`GET /v1/kv/<prefix>?watch&stream`): one HTTP answer that stays open and
//! carries every change under a prefix as a line of JSON, held by the watch registry
//! ([`super::watches`]) beside the long polls.
//!
//! The body is newline-delimited JSON, one object a line, each a chunk of the chunked answer:
//! - a batch of changes, exactly the long poll's answer:
//!   `{"events":[...],"next_since":N,"current_revision":R}`. `next_since` is where to resume
//!   after a reconnect (`?watch&stream&since=N`), so a client that keeps the last `next_since`
//!   it read misses nothing and sees nothing twice;
//! - progress, the same object with no events: sent when the stream opens (it says from which
//!   revision the stream reports) and whenever `progress_ms` passes without a line, so that a
//!   client can tell an idle stream from a dead one (etcd's progress notifications);
//! - an error, the API's error object (`{"code","message",...}`), after which the body ends:
//!   `compacted` (410's body, with `compact_revision`) when the stream fell behind the kept
//!   history, or whatever made the node unable to read its changes.
//!
//! The body ends cleanly (the terminating chunk) only after an error line or when the node
//! stops; a client too slow to take its chunks is cut instead (the connection closes without
//! the terminating chunk: [`crate::http::ResponseStream`]), and resumes from its last
//! `next_since`.
//!
//! Streams on one query at one position are one group: a change costs one read of the store
//! and one encoding, and the same framed bytes go to every member. Groups are keyed by their
//! position, so streams that started at different revisions merge once they catch up.

use super::errors::ApiError;
use super::json;
use super::watches::WatchSlot;
use crate::http::{Chunk, ResponseStream};
use rafting_core::store::{Revision, TenantId, WatchBatch, WatchQuery};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A stream to hold: its query (`since` is the first revision it has not been sent), how
/// often it reports progress, its place under the tenant's `watches` cap, and its connection.
pub struct Streamer {
    pub query: WatchQuery,
    pub progress: Duration,
    pub slot: WatchSlot,
    pub stream: ResponseStream,
}

/// One line of a stream: the JSON, a newline, framed as one chunk.
pub fn line(value: &serde_json::Value) -> Option<Chunk> {
    let mut bytes = serde_json::to_vec(value).ok()?;
    bytes.push(b'\n');
    Chunk::new(&bytes)
}

/// The progress line of a stream at `next` (it has been sent every change before it).
pub fn progress_line(next: Revision, current: Revision) -> Option<Chunk> {
    let current = current.max(Revision(next.get().saturating_sub(1)));
    line(&serde_json::json!({
        "events": [],
        "next_since": next.get(),
        "current_revision": current.get(),
    }))
}

/// Streams of one tenant, prefix and limit, at one position: the first revision not sent.
type StreamKey = (TenantId, String, u32, Revision);

fn key_of(query: &WatchQuery) -> StreamKey {
    (query.tenant, query.prefix.clone(), query.limit, query.since)
}

struct Entry {
    key: StreamKey,
    progress: Duration,
    /// When it is owed a progress line if nothing is sent before.
    progress_at: Instant,
    stream: ResponseStream,
    /// Given back when the entry is dropped.
    _slot: WatchSlot,
}

/// The open streams, grouped by position.
#[derive(Default)]
pub(super) struct Streams {
    next_id: u64,
    entries: BTreeMap<u64, Entry>,
    groups: BTreeMap<StreamKey, BTreeSet<u64>>,
    progress: BTreeSet<(Instant, u64)>,
}

impl Streams {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn add(&mut self, streamer: Streamer, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let key = key_of(&streamer.query);
        let progress_at = now + streamer.progress;
        self.groups.entry(key.clone()).or_default().insert(id);
        self.progress.insert((progress_at, id));
        let entry = Entry {
            key,
            progress: streamer.progress,
            progress_at,
            stream: streamer.stream,
            _slot: streamer.slot,
        };
        self.entries.insert(id, entry);
    }

    /// Groups with changes to read: their position is at or below `revision`.
    pub(super) fn due(&self, revision: Revision) -> Vec<WatchQuery> {
        (self.groups.keys())
            .filter(|(_, _, _, next)| *next <= revision)
            .map(|(tenant, prefix, limit, next)| WatchQuery {
                tenant: *tenant,
                prefix: prefix.clone(),
                since: *next,
                limit: *limit,
            })
            .collect()
    }

    /// Sends a group the changes read for it (one encoding for all its members) and moves it
    /// to its new position, or ends its streams with the error that the read met.
    pub(super) fn deliver(
        &mut self,
        query: &WatchQuery,
        read: Result<WatchBatch, ApiError>,
        now: Instant,
    ) {
        let Some(members) = self.groups.remove(&key_of(query)) else {
            return;
        };
        let batch = match read {
            Ok(batch) => batch,
            Err(error) => {
                let chunk = line(&error_json(&error));
                for id in members {
                    self.end(id, chunk.as_ref());
                }
                return;
            }
        };
        let chunk = if batch.events.is_empty() {
            None
        } else {
            line(&json::watch_batch(&batch))
        };
        let mut key = key_of(query);
        key.3 = batch.next_since;
        let mut moved = BTreeSet::new();
        for id in members {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if !entry.stream.is_open() {
                self.remove(id);
                continue;
            }
            if let Some(chunk) = &chunk {
                entry.stream.send(chunk);
                self.progress.remove(&(entry.progress_at, id));
                entry.progress_at = now + entry.progress;
                self.progress.insert((entry.progress_at, id));
            }
            entry.key = key.clone();
            moved.insert(id);
        }
        if !moved.is_empty() {
            self.groups.entry(key).or_default().extend(moved);
        }
    }

    /// Sends a progress line to every stream owed one (one encoding per group), and drops the
    /// streams whose connection has closed.
    pub(super) fn report_progress(&mut self, current: Revision, now: Instant) {
        let mut lines: BTreeMap<StreamKey, Option<Chunk>> = BTreeMap::new();
        while let Some(&(at, id)) = self.progress.first() {
            if at > now {
                break;
            }
            self.progress.pop_first();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if !entry.stream.is_open() {
                self.remove(id);
                continue;
            }
            let chunk = (lines.entry(entry.key.clone()))
                .or_insert_with_key(|key| progress_line(key.3, current));
            if let Some(chunk) = chunk {
                entry.stream.send(chunk);
            }
            entry.progress_at = now + entry.progress;
            self.progress.insert((entry.progress_at, id));
        }
    }

    /// When a stream is next owed a progress line.
    pub(super) fn next_progress(&self) -> Option<Instant> {
        self.progress.first().map(|(at, _)| *at)
    }

    /// Ends every stream cleanly (the node stops).
    pub(super) fn end_all(&mut self) {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            self.end(id, None);
        }
    }

    fn end(&mut self, id: u64, last: Option<&Chunk>) {
        if let Some(entry) = self.remove(id) {
            entry.stream.end(last);
        }
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        self.progress.remove(&(entry.progress_at, id));
        if let Some(group) = self.groups.get_mut(&entry.key) {
            group.remove(&id);
            if group.is_empty() {
                self.groups.remove(&entry.key);
            }
        }
        Some(entry)
    }
}

/// The JSON of an error line: the API's error body.
fn error_json(error: &ApiError) -> serde_json::Value {
    let reply = error.clone().into_reply();
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| serde_json::json!({"code": error.code, "message": error.message}))
}
