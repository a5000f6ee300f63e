//! The simulator's event queue: events ordered by (simulated time, sequence number).
//!
//! An event's payload can be large (a message with its entries, a client's answer), and a
//! binary heap moves its elements at every push and pop. So the heap holds only small keys —
//! time, sequence and the slot where the payload waits — and the payloads stay put in a slab
//! whose free slots are reused. The order is the same as a heap of whole events: the sequence
//! number breaks every tie, so a seed replays the same way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A payload whose time has come.
#[derive(Debug)]
pub(crate) struct Event<K> {
    pub at_us: u64,
    pub kind: K,
}

#[derive(Debug)]
pub(crate) struct EventQueue<K> {
    /// Time, sequence and slot packed into one number (see [`key`]), earliest first.
    keys: BinaryHeap<Reverse<u128>>,
    slots: Vec<Option<K>>,
    free: Vec<u32>,
    sequence: u64,
}

impl<K> EventQueue<K> {
    pub fn new() -> Self {
        EventQueue {
            keys: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            sequence: 0,
        }
    }

    /// Queues `kind` for `at_us`, after everything already queued for the same time.
    pub fn push(&mut self, at_us: u64, kind: K) {
        self.sequence += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(kind);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .expect("fewer than 2^32 events wait at once (the queue budget is far lower)");
                self.slots.push(Some(kind));
                slot
            }
        };
        self.keys.push(Reverse(key(at_us, self.sequence, slot)));
    }

    /// The earliest event, ties broken by the order they were pushed in.
    pub fn pop(&mut self) -> Option<Event<K>> {
        let Reverse(key) = self.keys.pop()?;
        let at_us = (key >> 64) as u64;
        let slot = key as u32;
        let kind = self.slots[slot as usize]
            .take()
            .expect("a key's slot holds its payload until popped");
        self.free.push(slot);
        Some(Event { at_us, kind })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every waiting payload, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.slots.iter().flatten()
    }
}

/// Time in the high 64 bits, then the sequence, then the slot: ordered as the triple is,
/// but compared as one number at every level a push or pop moves a key through.
fn key(at_us: u64, sequence: u64, slot: u32) -> u128 {
    let sequence = u32::try_from(sequence).expect("fewer than 2^32 events are pushed in one seed");
    (u128::from(at_us) << 64) | (u128::from(sequence) << 32) | u128::from(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_by_time_then_by_the_order_they_were_pushed_in() {
        let mut queue = EventQueue::new();
        queue.push(30, "c");
        queue.push(10, "a1");
        queue.push(20, "b");
        queue.push(10, "a2");
        assert_eq!(queue.len(), 4);
        let first = queue.pop().unwrap();
        assert_eq!((first.at_us, first.kind), (10, "a1"));
        // A slot freed by a pop is reused, and the order still holds.
        queue.push(10, "a3");
        queue.push(5, "z");
        let order: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|event| (event.at_us, event.kind))
            .collect();
        assert_eq!(
            order,
            [(5, "z"), (10, "a2"), (10, "a3"), (20, "b"), (30, "c")]
        );
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.iter().count(), 0);
    }

    #[test]
    fn iter_sees_every_waiting_payload_once() {
        let mut queue = EventQueue::new();
        for at in [3, 1, 2, 1] {
            queue.push(at, at);
        }
        queue.pop();
        let mut left: Vec<_> = queue.iter().copied().collect();
        left.sort();
        assert_eq!(left, [1, 2, 3]);
    }
}
