//! The writes waiting to be proposed: the seam where fair queuing across tenants goes.

use super::io::{Numbered, RequestId};
use crate::store::{Operation, TenantId};
use crate::types::Millis;
use std::collections::VecDeque;

/// A write accepted by the replica and not yet proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Queued {
    pub id: RequestId,
    pub tenant: TenantId,
    pub operation: Operation,
    pub numbered: Option<Numbered>,
    pub deadline: Millis,
}

/// Writes in arrival order. Today every write is taken first come, first served; a policy
/// that takes them per tenant (round robin, weights, caps) replaces [`WriteQueue::pop`].
#[derive(Clone, Debug, Default)]
pub(super) struct WriteQueue {
    writes: VecDeque<Queued>,
    /// Writes without a numbering of their own, which wait for this node's client record.
    unnumbered: usize,
}

impl WriteQueue {
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn has_unnumbered(&self) -> bool {
        self.unnumbered > 0
    }

    pub fn push(&mut self, write: Queued) {
        if write.numbered.is_none() {
            self.unnumbered += 1;
        }
        self.writes.push_back(write);
    }

    /// The next write to propose. Until this node's own record exists
    /// (`own_record == false`), writes without a numbering stay queued and the numbered ones
    /// behind them go ahead.
    pub fn pop(&mut self, own_record: bool) -> Option<Queued> {
        let position = if own_record {
            0
        } else {
            self.writes
                .iter()
                .position(|write| write.numbered.is_some())?
        };
        let write = self.writes.remove(position)?;
        if write.numbered.is_none() {
            self.unnumbered -= 1;
        }
        Some(write)
    }

    /// Removes and returns every write whose deadline has passed.
    pub fn take_expired(&mut self, now: Millis) -> Vec<Queued> {
        if self.writes.iter().all(|write| write.deadline > now) {
            return Vec::new();
        }
        let (expired, kept): (VecDeque<Queued>, VecDeque<Queued>) =
            std::mem::take(&mut self.writes)
                .into_iter()
                .partition(|write| write.deadline <= now);
        self.writes = kept;
        self.unnumbered = self.writes.iter().filter(|w| w.numbered.is_none()).count();
        expired.into()
    }

    pub fn drain(&mut self) -> Vec<Queued> {
        self.unnumbered = 0;
        self.writes.drain(..).collect()
    }
}
