//! The in-memory view of the replicated log that a node keeps: entries, commit index, and how
//! far the log is durable and has been handed out for applying.
//!
//! Core never calls back into storage during a step, so everything it needs lives here. The
//! driver persists what the node's outputs tell it to; on restart it hands the durable entries
//! back through [`super::DurableState`].

use super::entry::Entry;
use crate::types::{LogIndex, Term};

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// Entries `1..=last_index`, in order. (Snapshots will move the start; the offset stays
    /// explicit in `index_to_position` so that change is local.)
    entries: Vec<Entry>,
    /// Highest index known committed. Never decreases.
    commit: LogIndex,
    /// Highest index handed to the driver for applying. `applied <= commit`.
    applied: LogIndex,
    /// Highest index known durable *and* matching the current log.
    durable: LogIndex,
    /// Total size of the entries after `commit`, kept up to date so that admitting a proposal
    /// costs O(1) instead of a walk over the uncommitted tail.
    uncommitted_bytes: usize,
}

impl RaftLog {
    /// A log recovered from durable storage: everything in it is durable.
    pub fn recovered(entries: Vec<Entry>, commit: LogIndex) -> Self {
        let durable = entries.last().map_or(LogIndex::ZERO, |entry| entry.index);
        let commit = commit.min(durable);
        let mut log = RaftLog {
            entries,
            commit,
            applied: LogIndex::ZERO,
            durable,
            uncommitted_bytes: 0,
        };
        log.uncommitted_bytes = log.bytes_between(commit, log.last_index());
        log
    }

    /// Total size of the entries in `(after, upto]`.
    fn bytes_between(&self, after: LogIndex, upto: LogIndex) -> usize {
        let from = usize::try_from(after.get()).unwrap_or(usize::MAX);
        let to = usize::try_from(upto.get()).unwrap_or(usize::MAX);
        self.entries
            .get(from.min(to)..to.min(self.entries.len()))
            .map_or(0, |range| range.iter().map(Entry::size_bytes).sum())
    }

    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(LogIndex::ZERO, |entry| entry.index)
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(Term::ZERO, |entry| entry.term)
    }

    pub fn commit(&self) -> LogIndex {
        self.commit
    }

    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    pub fn durable(&self) -> LogIndex {
        self.durable
    }

    fn position(&self, index: LogIndex) -> Option<usize> {
        if index == LogIndex::ZERO || index > self.last_index() {
            return None;
        }
        usize::try_from(index.get() - 1).ok()
    }

    /// The term of the entry at `index`; index 0 has term 0. `None` past the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == LogIndex::ZERO {
            return Some(Term::ZERO);
        }
        self.position(index)
            .map(|position| self.entries[position].term)
    }

    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.position(index).map(|position| &self.entries[position])
    }

    /// Whether the log contains an entry at `index` with `term`.
    pub fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term_at(index) == Some(term)
    }

    /// Raft §5.4.1: is a log ending at `(last_index, last_term)` at least as up to date as ours?
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// First index holding `term` in the run of entries that ends at `index` (for the conflict
    /// hint a follower sends back).
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first.get() > 1 && self.term_at(first.prev()) == Some(term) {
            first = first.prev();
        }
        first
    }

    /// Last index holding `term`, if any entry has it (for the leader's use of the hint).
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.term == term)
            .map(|entry| entry.index)
    }

    /// Entries from `from` on, up to `entries_max` entries and about `bytes_max` bytes (at
    /// least one entry when any exists, so a big entry cannot stall replication).
    pub fn entries_from(&self, from: LogIndex, entries_max: usize, bytes_max: usize) -> Vec<Entry> {
        let Some(start) = self.position(from) else {
            return Vec::new();
        };
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for entry in self.entries[start..].iter().take(entries_max) {
            bytes = bytes.saturating_add(entry.size_bytes());
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// Total size of entries after the commit index (the leader's uncommitted backlog).
    pub fn uncommitted_bytes(&self) -> usize {
        self.uncommitted_bytes
    }

    /// Appends an entry at the end. The caller guarantees `entry.index == last_index + 1`.
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "log append must be contiguous"
        );
        assert!(entry.term >= self.last_term(), "log terms never decrease");
        self.uncommitted_bytes += entry.size_bytes();
        self.entries.push(entry);
    }

    /// Removes every entry at `from` and after. Committed entries are never removed.
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.commit, "a committed entry is never truncated");
        let keep = usize::try_from(from.get().saturating_sub(1)).unwrap_or(usize::MAX);
        let removed = self.bytes_between(LogIndex(from.get() - 1), self.last_index());
        self.uncommitted_bytes -= removed;
        self.entries.truncate(keep);
        self.durable = self.durable.min(self.last_index());
    }

    /// Raises the commit index; it never moves back, and never past the last entry.
    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        let index = index.min(self.last_index());
        if index > self.commit {
            self.uncommitted_bytes -= self.bytes_between(self.commit, index);
            self.commit = index;
            return true;
        }
        false
    }

    /// Records that the log up to `index` is durable, provided the entry there still has
    /// `term` (a batch overtaken by a later truncation proves nothing about the new entries).
    pub fn mark_durable(&mut self, index: LogIndex, term: Term) {
        if index > self.durable && self.matches(index, term) {
            self.durable = index;
        }
    }

    /// Entries committed, durable here, and not yet handed out; marks them handed out.
    pub fn take_applicable(&mut self) -> Vec<Entry> {
        let upto = self.commit.min(self.durable);
        if upto <= self.applied {
            return Vec::new();
        }
        let from = self
            .position(self.applied.next())
            .unwrap_or(self.entries.len());
        let to = self
            .position(upto)
            .map_or(self.entries.len(), |position| position + 1);
        let out = self.entries[from..to].to_vec();
        self.applied = upto;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryPayload;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Append(usize),
        Truncate(u64),
        Commit(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..64).prop_map(Op::Append),
            1 => (0u64..40).prop_map(Op::Truncate),
            2 => (0u64..40).prop_map(Op::Commit),
        ]
    }

    proptest! {
        /// The running total of uncommitted bytes always equals a walk over the tail.
        #[test]
        fn uncommitted_bytes_match_a_recount(ops in prop::collection::vec(op(), 0..80)) {
            let mut log = RaftLog::default();
            for op in ops {
                match op {
                    Op::Append(size) => {
                        let index = log.last_index().next();
                        let payload = EntryPayload::Command(vec![7; size]);
                        log.append(Entry { term: Term(1), index, payload });
                    }
                    Op::Truncate(from) if from > log.commit().get() => {
                        log.truncate_from(LogIndex(from));
                    }
                    Op::Truncate(_) => {}
                    Op::Commit(index) => {
                        log.commit_to(LogIndex(index));
                    }
                }
                let start = usize::try_from(log.commit().get()).unwrap();
                let recount: usize = log.entries[start..].iter().map(Entry::size_bytes).sum();
                prop_assert_eq!(log.uncommitted_bytes(), recount);
            }
            let recovered = RaftLog::recovered(log.entries.clone(), log.commit());
            prop_assert_eq!(recovered.uncommitted_bytes(), log.uncommitted_bytes());
        }
    }
}
