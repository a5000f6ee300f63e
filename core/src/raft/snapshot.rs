//! Snapshots in the node: taking one the driver built (and compacting the log once it is
//! durable), streaming the newest one to a follower that needs compacted entries, and
//! assembling, verifying and installing one from a leader. See
//! `docs/snapshots-and-membership.md`.
//!
//! The node never interprets an image: it is the driver's state machine as bytes. The node
//! keeps the newest one it has (taken and durable, or installed) so a leader can send it.

use super::entry::Entry;
use super::membership::Membership;
use super::message::{InstallSnapshot, InstallSnapshotResponse, Message};
use super::node::Node;
use super::output::{PersistSnapshot, Snapshot};
use super::progress::ProgressState;
use super::role::Role;
use crate::types::{LogIndex, NodeId, Term};
use std::sync::Arc;

/// A snapshot a follower is receiving, chunk by chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IncomingSnapshot {
    index: LogIndex,
    term: Term,
    total_bytes: u64,
    checksum: u32,
    membership: Membership,
    /// The image's bytes received so far, in order, without gaps.
    data: Vec<u8>,
}

impl IncomingSnapshot {
    fn is_for(&self, request: &InstallSnapshot) -> bool {
        (self.index, self.term, self.total_bytes, self.checksum)
            == (
                request.index,
                request.snapshot_term,
                request.total_bytes,
                request.checksum,
            )
    }
}

/// The entries recovered after a snapshot that continue it (Raft Figure 13, step 6): those
/// after `(base, base_term)` if the log holds that entry or begins right after it; none if
/// the log holds another entry there (it was discarded when the snapshot was installed) or
/// leaves a gap after it (an older snapshot had to stand in for a damaged newer one, or none
/// is left and the log begins after index 1). Never panics on what a disk returns.
pub fn entries_after_snapshot(entries: Vec<Entry>, base: LogIndex, base_term: Term) -> Vec<Entry> {
    let continues = match entries.iter().find(|entry| entry.index == base) {
        Some(entry) => entry.term == base_term,
        None => entries
            .first()
            .is_none_or(|entry| entry.index <= base.next()),
    };
    if !continues {
        return Vec::new();
    }
    let mut kept: Vec<Entry> = entries
        .into_iter()
        .filter(|entry| entry.index > base)
        .collect();
    // A recovered log is contiguous; anything else is dropped rather than trusted.
    let contiguous = kept
        .iter()
        .enumerate()
        .all(|(offset, entry)| entry.index.get() == base.get() + 1 + offset as u64);
    if !contiguous {
        kept.clear();
    }
    kept
}

/// Whether a recovered log misses entries it must once have held: its entries after the
/// snapshot (after index 0 without one) begin past the next index, or skip one. That is
/// what a disk returns when every snapshot file that covered the compacted part of the log
/// is damaged: the node has lost entries it may have acknowledged, so it must not vote
/// before a leader has brought it up to date, exactly as after a wiped disk. An entry
/// conflicting with the snapshot at its own index is not a loss (the snapshot was installed
/// over it), nor is a log that ends before the snapshot.
pub fn recovered_log_misses_entries(entries: &[Entry], base: LogIndex) -> bool {
    let mut expected = base.next();
    for entry in entries.iter().filter(|entry| entry.index > base) {
        if entry.index != expected {
            return true;
        }
        expected = expected.next();
    }
    false
}

impl Node {
    /// The newest snapshot this node holds (taken and durable, or installed from a leader).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Assembled snapshots this node refused since it started because their checksum did
    /// not match.
    pub fn snapshot_checksum_failures(&self) -> u64 {
        self.snapshot_checksum_failures
    }

    /// Whether a snapshot this node took is still being made durable (a driver takes the next
    /// one only after that).
    pub fn is_persisting_snapshot(&self) -> bool {
        self.unsaved_snapshot.is_some() || !self.compactions.is_empty()
    }

    /// The driver's state machine at `index` is `image`: persist it, then compact.
    pub(super) fn on_snapshot_taken(&mut self, index: LogIndex, image: Vec<u8>) {
        let Some(term) = self.log.term_at(index) else {
            return;
        };
        if index <= self.log.base() || index > self.log.applied() || self.is_persisting_snapshot() {
            return;
        }
        let snapshot = Snapshot {
            index,
            term,
            membership: self.log.memberships().at(index).clone(),
            image: Arc::new(image),
        };
        self.unsaved_snapshot = Some(PersistSnapshot {
            snapshot,
            log_reset: false,
        });
    }

    /// Batch `sequence` is durable: compact the log up to the snapshots it held.
    pub(super) fn compact_persisted(&mut self, sequence: u64) {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.compactions)
            .into_iter()
            .partition(|(batch, _)| *batch <= sequence);
        self.compactions = waiting;
        for (_, snapshot) in done {
            if self.log.compact_to(snapshot.index) {
                let checksum = crc32c::crc32c(&snapshot.image);
                self.hold_snapshot(snapshot, checksum);
            }
        }
    }

    // ---- leader side ----

    /// Streams the snapshot to `peer` while its next index is at or below the log's base:
    /// as many chunks as the window allows. Returns whether the peer needs the snapshot (and
    /// no append may be sent).
    pub(super) fn send_snapshot_to(&mut self, peer: NodeId) -> bool {
        let base = self.log.base();
        // Borrowed, not cloned: this runs for every peer at every step of a leader.
        let Some(snapshot) = self.snapshot.as_ref() else {
            return false;
        };
        let term = self.term;
        let (chunk_bytes, messages_max, bytes_max) = (
            self.config.snapshot_chunk_bytes,
            self.config.inflight_messages_max,
            self.config.inflight_bytes_max,
        );
        let Role::Leader(leader) = &mut self.role else {
            return false;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return false;
        };
        if progress.next_index > base || base == LogIndex::ZERO {
            return false;
        }
        let current = matches!(&progress.state, ProgressState::Snapshot(transfer)
            if (transfer.index, transfer.term) == (snapshot.index, snapshot.term));
        if !current {
            let total = snapshot.image.len() as u64;
            progress.become_snapshot(snapshot.index, snapshot.term, total);
        }
        let ProgressState::Snapshot(transfer) = &mut progress.state else {
            unreachable!("just made a snapshot transfer");
        };
        let mut chunks = Vec::new();
        while let Some((offset, length)) = transfer.next_chunk(chunk_bytes, messages_max, bytes_max)
        {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let data = snapshot.image[start..start + length].to_vec();
            transfer.sent = offset + length as u64;
            transfer.started = true;
            chunks.push(InstallSnapshot {
                term,
                index: snapshot.index,
                snapshot_term: snapshot.term,
                total_bytes: transfer.total_bytes,
                checksum: self.snapshot_checksum,
                membership: snapshot.membership.clone(),
                offset,
                data,
            });
        }
        for chunk in chunks {
            self.send(peer, Message::InstallSnapshot(chunk));
        }
        true
    }

    pub(super) fn on_install_snapshot_response(
        &mut self,
        from: NodeId,
        response: InstallSnapshotResponse,
    ) {
        let last_index = self.log.last_index();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if response.installed {
            if response.index <= last_index && response.index > progress.match_index {
                progress.on_snapshot_installed(response.index);
            }
            return;
        }
        if let ProgressState::Snapshot(transfer) = &mut progress.state
            && (transfer.index, transfer.term) == (response.index, response.snapshot_term)
        {
            transfer.on_answer(response.next_offset);
        }
    }

    // ---- follower side ----

    pub(super) fn on_install_snapshot(&mut self, from: NodeId, request: InstallSnapshot) {
        match self.role {
            Role::Leader(_) => return, // Two leaders in one term cannot happen; ignore.
            Role::Follower => {}
            _ => self.become_follower(self.term, Some(from)),
        }
        self.leader = Some(from);
        self.leader_contact = Some(self.now);
        self.reset_election_deadline();
        if !self.chunk_well_formed(&request) {
            return;
        }
        if let Some(catch_up) = &mut self.catch_up {
            catch_up.target.get_or_insert(request.index);
        }
        if request.index <= self.log.commit() {
            // Everything the snapshot holds is committed here already, so it matches the
            // leader's log; the answer still waits until it is durable.
            self.incoming = None;
            let response = self.snapshot_answer(&request, request.total_bytes, true);
            self.send_when_durable(from, response);
            return;
        }
        let next_offset = self.receive_chunk(request.clone());
        let complete = self
            .incoming
            .as_ref()
            .is_some_and(|incoming| incoming.data.len() as u64 == incoming.total_bytes);
        if !complete {
            let response = self.snapshot_answer(&request, next_offset, false);
            self.send(from, response);
            return;
        }
        let incoming = self.incoming.take().expect("complete");
        // Of the image itself: what this node announces when it streams the snapshot on. With
        // the planted bug that skips verification, it can differ from the announced one.
        let checksum = crc32c::crc32c(&incoming.data);
        if !self.config.planted_snapshot_unverified && checksum != incoming.checksum {
            // Damaged on the way: start over. The leader resends from the answer.
            self.snapshot_checksum_failures += 1;
            let response = self.snapshot_answer(&request, 0, false);
            self.send(from, response);
            return;
        }
        self.install(incoming, checksum);
        let response = self.snapshot_answer(&request, request.total_bytes, true);
        self.send_when_durable(from, response);
    }

    /// A chunk within the bounds this node accepts.
    fn chunk_well_formed(&self, request: &InstallSnapshot) -> bool {
        let end = request.offset.checked_add(request.data.len() as u64);
        request.index > LogIndex::ZERO
            && request.snapshot_term <= request.term
            && request.total_bytes <= self.config.snapshot_bytes_max
            && end.is_some_and(|end| end <= request.total_bytes)
    }

    /// Adds a chunk to the snapshot being assembled (starting a new one at offset 0 when it
    /// is of another snapshot). Returns the offset expected next.
    fn receive_chunk(&mut self, request: InstallSnapshot) -> u64 {
        let same = self
            .incoming
            .as_ref()
            .is_some_and(|incoming| incoming.is_for(&request));
        if !same {
            // A partial transfer of another snapshot (an older term, another leader's
            // newer snapshot) is dropped: only a transfer that starts at 0 replaces it.
            if request.offset != 0 {
                self.incoming = None;
                return 0;
            }
            self.incoming = Some(IncomingSnapshot {
                index: request.index,
                term: request.snapshot_term,
                total_bytes: request.total_bytes,
                checksum: request.checksum,
                membership: request.membership.clone(),
                data: Vec::new(),
            });
        }
        let incoming = self.incoming.as_mut().expect("just set");
        let have = incoming.data.len() as u64;
        if request.offset == have {
            incoming.data.extend_from_slice(&request.data);
        } else if request.offset < have {
            // Overlaps what we hold (a duplicate or a resend): take only what is new.
            let end = request.offset + request.data.len() as u64;
            if end > have {
                let skip = usize::try_from(have - request.offset).unwrap_or(usize::MAX);
                incoming.data.extend_from_slice(&request.data[skip..]);
            }
        }
        incoming.data.len() as u64
    }

    fn snapshot_answer(
        &self,
        request: &InstallSnapshot,
        next_offset: u64,
        installed: bool,
    ) -> Message {
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term: self.term,
            index: request.index,
            snapshot_term: request.snapshot_term,
            next_offset,
            installed,
        })
    }

    /// Replaces this node's state with a verified snapshot, in one step: the log starts after
    /// it, the driver replaces its state machine ([`super::Output::installed`]) and persists
    /// it before anything else this node writes.
    fn install(&mut self, incoming: IncomingSnapshot, checksum: u32) {
        let snapshot = Snapshot {
            index: incoming.index,
            term: incoming.term,
            membership: incoming.membership,
            image: Arc::new(incoming.data),
        };
        let log_reset =
            self.log
                .restore_to(snapshot.index, snapshot.term, snapshot.membership.clone());
        let first_kept = snapshot.index.next();
        self.unsaved_from = match self.unsaved_from {
            _ if log_reset => None,
            Some(from) => Some(from.max(first_kept)),
            None => None,
        };
        // A snapshot of ours still waiting to be written is older: it is superseded.
        self.unsaved_snapshot = Some(PersistSnapshot {
            snapshot: snapshot.clone(),
            log_reset,
        });
        self.compactions.clear();
        self.snapshots_installed += 1;
        self.output.installed = Some(snapshot.clone());
        self.hold_snapshot(snapshot, checksum);
    }

    /// Makes `snapshot`, whose image has CRC-32C `checksum`, the one this node holds and
    /// streams to followers.
    fn hold_snapshot(&mut self, snapshot: Snapshot, checksum: u32) {
        self.snapshot_checksum = checksum;
        self.snapshot = Some(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|index| Entry {
                term: Term(term),
                index: LogIndex(index),
                payload: EntryPayload::Noop,
            })
            .collect()
    }

    // The recovered tail is kept only when it continues the snapshot.
    #[test]
    fn only_a_tail_that_continues_the_snapshot_is_kept() {
        let kept = entries_after_snapshot(entries(3..=9, 2), LogIndex(5), Term(2));
        assert_eq!(kept, entries(6..=9, 2));
        let kept = entries_after_snapshot(entries(6..=9, 2), LogIndex(5), Term(2));
        assert_eq!(kept.len(), 4, "segments up to the snapshot were deleted");
        let conflicting = entries_after_snapshot(entries(3..=9, 1), LogIndex(5), Term(2));
        assert!(
            conflicting.is_empty(),
            "another entry at the snapshot's index"
        );
        let gap = entries_after_snapshot(entries(8..=9, 2), LogIndex(5), Term(2));
        assert!(gap.is_empty(), "a gap after an older snapshot");
        let short = entries_after_snapshot(entries(1..=4, 1), LogIndex(5), Term(2));
        assert!(short.is_empty());
        assert_eq!(
            entries_after_snapshot(entries(1..=3, 1), LogIndex::ZERO, Term::ZERO).len(),
            3
        );
        let compacted_without_snapshot =
            entries_after_snapshot(entries(7..=9, 1), LogIndex::ZERO, Term::ZERO);
        assert!(
            compacted_without_snapshot.is_empty(),
            "no snapshot and a log after 1"
        );
    }

    // A log that leaves out entries after the snapshot (or after index 0 without one) has
    // lost them; one that conflicts at the snapshot's index or ends before it has not.
    #[test]
    fn a_recovered_log_with_a_gap_after_its_snapshot_misses_entries() {
        let misses =
            |log: Vec<Entry>, base: u64| recovered_log_misses_entries(&log, LogIndex(base));
        assert!(!misses(entries(3..=9, 2), 5));
        assert!(!misses(entries(6..=9, 2), 5));
        assert!(!misses(entries(3..=9, 1), 5), "conflicting at the snapshot");
        assert!(!misses(entries(1..=4, 1), 5), "ends before the snapshot");
        assert!(!misses(Vec::new(), 5));
        assert!(!misses(entries(1..=3, 1), 0));
        assert!(
            misses(entries(8..=9, 2), 5),
            "a gap after an older snapshot"
        );
        assert!(
            misses(entries(7..=9, 1), 0),
            "no snapshot and a log after 1"
        );
        let mut skipping = entries(6..=9, 2);
        skipping.remove(2);
        assert!(misses(skipping, 5), "an index skipped");
    }
}
