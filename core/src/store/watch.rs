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
        let start = first_at_or_after(&self.events, since);
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

/// The position of the first event at `since` or later in `events` (ordered by revision).
fn first_at_or_after(events: &Vector<Event>, since: Revision) -> usize {
    let mut events = events.focus();
    let length = events.len();
    if length == 0 || since <= events.index(0).revision {
        return 0;
    }
    // Most revisions hold one event, so the event `since - first` places after the first is
    // usually the one: a look at it and the one before settles it without a search.
    let first = events.index(0).revision;
    let guess = usize::try_from(since.get() - first.get()).map_or(length, |gap| gap.min(length));
    if events.index(guess - 1).revision < since
        && (guess == length || events.index(guess).revision >= since)
    {
        return guess;
    }
    // Otherwise a binary search, through the focus: it keeps the leaf it read last, so the
    // last steps stay in one leaf instead of walking down from the root each time, as
    // indexing the vector would.
    let (mut start, mut end) = (0, length);
    while start < end {
        let middle = start + (end - start) / 2;
        if events.index(middle).revision < since {
            start = middle + 1;
        } else {
            end = middle;
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::answer::EventKind;

    fn history_of(revisions: &[u64]) -> Vector<Event> {
        revisions
            .iter()
            .map(|&revision| Event {
                revision: Revision::new(revision),
                tenant: TenantId::DEFAULT,
                key: String::from("/k"),
                kind: EventKind::Delete,
            })
            .collect()
    }

    // The guess from the revision gap and the search behind it agree with a plain scan, on
    // histories of one event per revision, with gaps, and with several events in a revision,
    // for every `since` before, inside and after them.
    #[test]
    fn first_at_or_after_agrees_with_a_scan() {
        // The long ones span several leaves of the vector.
        let long: Vec<u64> = (5..400).collect();
        let long_with_gaps: Vec<u64> = (5..400).filter(|revision| revision % 7 != 0).collect();
        let histories: [&[u64]; 6] = [
            &[],
            &[3, 4, 5, 6, 7],
            &[2, 5, 6, 9, 30],
            &[4, 4, 4, 5, 7, 7, 8],
            &long,
            &long_with_gaps,
        ];
        for revisions in histories {
            let events = history_of(revisions);
            for since in 0..410 {
                let expected = revisions
                    .iter()
                    .take_while(|&&revision| revision < since)
                    .count();
                let found = first_at_or_after(&events, Revision::new(since));
                assert_eq!(found, expected, "since {since} in {revisions:?}");
            }
        }
    }
}
