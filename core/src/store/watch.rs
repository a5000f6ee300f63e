//! The bounded history of changes that watchers poll.
//!
//! Every change to any key space appends an [`Event`] here, in revision order. The history
//! keeps at most `watch_history_events_max` events and `watch_history_bytes_max` bytes;
//! older events are dropped, and a watcher asking for a revision whose events are (even
//! partly) gone gets [`StoreError::Compacted`] with the oldest revision still complete.
//! A watch is a poll ("changes under P since R"): the store keeps no per-watcher state, so
//! watchers cost nothing between polls and every node answers the same poll the same way.

use super::answer::{Event, WatchBatch};
use super::error::StoreError;
use super::key::{Prefix, Revision, TenantId};
use imbl::Vector;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A persistent vector (it encodes exactly as a `VecDeque` would): a copy of the history
/// shares the events, and their values, with the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WatchHistory {
    events: Vector<Event>,
    size_bytes: usize,
    /// The oldest revision whose events are all still here.
    oldest_complete: Revision,
    events_max: usize,
    size_bytes_max: usize,
}

/// One poll's parameters, already validated.
pub(crate) struct Poll<'a> {
    pub tenant: TenantId,
    pub prefix: &'a Prefix,
    pub since: Revision,
    pub limit: usize,
    pub current_revision: Revision,
}

impl WatchHistory {
    pub fn new(events_max: usize, size_bytes_max: usize) -> WatchHistory {
        assert!(
            events_max > 0,
            "the watch history must hold at least one event"
        );
        WatchHistory {
            events: Vector::new(),
            size_bytes: 0,
            oldest_complete: Revision::new(1),
            events_max,
            size_bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn oldest_complete(&self) -> Revision {
        self.oldest_complete
    }

    /// Appends an event and drops the oldest ones past the bounds.
    pub fn push(&mut self, event: Event) {
        debug_assert!(
            self.events
                .back()
                .is_none_or(|last| last.revision <= event.revision),
            "watch events arrive in revision order"
        );
        self.size_bytes += event.size_bytes();
        self.events.push_back(event);
        while self.events.len() > self.events_max || self.size_bytes > self.size_bytes_max {
            let dropped = self
                .events
                .pop_front()
                .expect("over a bound means not empty");
            self.size_bytes -= dropped.size_bytes();
            self.oldest_complete = self.oldest_complete.max(dropped.revision.next());
        }
    }

    /// The events of `poll.tenant` under `poll.prefix` from revision `poll.since` on.
    pub fn poll(&self, poll: &Poll<'_>) -> Result<WatchBatch, StoreError> {
        let since = poll.since.max(Revision::new(1));
        if since < self.oldest_complete {
            return Err(StoreError::Compacted {
                requested: poll.since,
                restart_from: self.oldest_complete,
                current_revision: poll.current_revision,
            });
        }
        let start = self
            .events
            .binary_search_by(|event| {
                if event.revision < since {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            })
            .unwrap_or_else(|start| start);
        let mut events: Vec<Event> = Vec::new();
        for event in self.events.focus().narrow(start..) {
            if event.tenant != poll.tenant || !poll.prefix.covers(&event.key) {
                continue;
            }
            if let Some(last) = events.last()
                && events.len() >= poll.limit
                && last.revision != event.revision
            {
                let next_since = last.revision.next();
                return Ok(WatchBatch {
                    events,
                    next_since,
                    current_revision: poll.current_revision,
                });
            }
            events.push(event.clone());
        }
        Ok(WatchBatch {
            events,
            next_since: since.max(poll.current_revision.next()),
            current_revision: poll.current_revision,
        })
    }
}
