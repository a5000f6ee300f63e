//! The in-memory view of the replicated log that a node keeps: entries, commit index, and how
//! far the log is durable and has been handed out for applying.
//!
//! Core never calls back into storage during a step, so everything it needs lives here. The
//! driver persists what the node's outputs tell it to; on restart it hands the durable entries
//! back through [`super::DurableState`].

use super::entry::{Entry, EntryPayload};
use super::membership::{Membership, MembershipLog};
use crate::types::{LogIndex, Term};

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// The last entry a snapshot covers (zero when none does): entries up to it are gone from
    /// memory, and only its index and term remain, for the log-matching check.
    base: LogIndex,
    base_term: Term,
    /// Entries `base + 1..=last_index`, in order.
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
    /// The configuration at the base and those of the entries held, kept in step with every
    /// append, truncation and compaction (a configuration takes effect on append).
    memberships: MembershipLog,
}

impl RaftLog {
    /// A log recovered from durable storage: everything in it is durable.
    pub fn recovered(entries: Vec<Entry>, commit: LogIndex) -> Self {
        RaftLog::recovered_after(LogIndex::ZERO, Term::ZERO, entries, commit)
    }

    /// A log recovered from a snapshot that covers `(base, base_term)` and the durable entries
    /// after it. The snapshot's entries are committed and applied (the store holds them).
    pub fn recovered_after(
        base: LogIndex,
        base_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) -> Self {
        debug_assert!(
            entries
                .first()
                .is_none_or(|entry| entry.index == base.next()),
            "the entries follow the snapshot"
        );
        let durable = entries.last().map_or(base, |entry| entry.index);
        let commit = commit.clamp(base, durable);
        let mut log = RaftLog {
            base,
            base_term,
            entries,
            commit,
            applied: base,
            durable,
            uncommitted_bytes: 0,
            memberships: MembershipLog::default(),
        };
        for index in 0..log.entries.len() {
            if let EntryPayload::Configuration(membership) = &log.entries[index].payload {
                let (at, membership) = (log.entries[index].index, membership.clone());
                log.memberships.appended(at, membership);
            }
        }
        log.uncommitted_bytes = log.bytes_between(commit, log.last_index());
        log
    }

    /// Total size of the entries in `(after, upto]` (those this log still holds).
    fn bytes_between(&self, after: LogIndex, upto: LogIndex) -> usize {
        let offset = |index: LogIndex| {
            usize::try_from(index.get().saturating_sub(self.base.get())).unwrap_or(usize::MAX)
        };
        let (from, to) = (offset(after), offset(upto));
        self.entries
            .get(from.min(to)..to.min(self.entries.len()))
            .map_or(0, |range| range.iter().map(Entry::size_bytes).sum())
    }

    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.base, |entry| entry.index)
    }

    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.base_term, |entry| entry.term)
    }

    /// The last entry a snapshot covers (zero when none does); the log holds the entries after
    /// it.
    pub fn base(&self) -> LogIndex {
        self.base
    }

    /// The first index this log holds an entry for (a follower that needs an earlier one needs
    /// the snapshot).
    pub fn first_index(&self) -> LogIndex {
        self.base.next()
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
        if index <= self.base || index > self.last_index() {
            return None;
        }
        usize::try_from(index.get() - self.base.get() - 1).ok()
    }

    /// The term of the entry at `index`; index 0 has term 0, and the snapshot's last entry
    /// its term. `None` past the end, and before the snapshot's last entry (compacted away).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base {
            return Some(self.base_term);
        }
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
        while first > self.first_index() && self.term_at(first.prev()) == Some(term) {
            first = first.prev();
        }
        first
    }

    /// Last index holding `term`, if any entry has it (for the leader's use of the hint).
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let held = self
            .entries
            .iter()
            .rev()
            .find(|entry| entry.term == term)
            .map(|entry| entry.index);
        held.or_else(|| (self.base > LogIndex::ZERO && self.base_term == term).then_some(self.base))
    }

    /// Entries from `from` on, up to `entries_max` entries and about `bytes_max` bytes (at
    /// least one entry when any exists, so a big entry cannot stall replication).
    pub fn entries_from(&self, from: LogIndex, entries_max: usize, bytes_max: usize) -> Vec<Entry> {
        let Some(start) = self.position(from) else {
            return Vec::new();
        };
        let mut bytes = 0usize;
        let count = self.entries[start..]
            .iter()
            .take(entries_max)
            .enumerate()
            .take_while(|(taken, entry)| {
                bytes = bytes.saturating_add(entry.size_bytes());
                *taken == 0 || bytes <= bytes_max
            })
            .count();
        // Counted first, then copied into a vector of the right size at once.
        self.entries[start..start + count].to_vec()
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
        if let EntryPayload::Configuration(membership) = &entry.payload {
            self.memberships.appended(entry.index, membership.clone());
        }
        self.entries.push(entry);
    }

    /// Removes every entry at `from` and after. Committed entries are never removed.
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.commit, "a committed entry is never truncated");
        let keep = usize::try_from(from.get() - 1 - self.base.get()).unwrap_or(usize::MAX);
        let removed = self.bytes_between(LogIndex(from.get() - 1), self.last_index());
        self.uncommitted_bytes -= removed;
        self.entries.truncate(keep);
        self.durable = self.durable.min(self.last_index());
        self.memberships.truncated_from(from);
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

    /// Forgets the entries up to `index`, which a durable snapshot now covers: it must have
    /// been applied (the snapshot holds its effects). Returns whether anything was dropped.
    pub fn compact_to(&mut self, index: LogIndex) -> bool {
        if index <= self.base || index > self.applied {
            return false;
        }
        let Some(term) = self.term_at(index) else {
            return false;
        };
        let drop = usize::try_from(index.get() - self.base.get()).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.base = index;
        self.base_term = term;
        self.memberships.compacted_to(index);
        true
    }

    /// Makes the log start after a snapshot received from a leader, which covers `(index,
    /// term)` and is therefore committed and applied (Raft Figure 13, steps 6 and 7): if the
    /// log holds that very entry, the entries after it stay; otherwise the whole log is
    /// discarded. Returns whether it was discarded.
    pub fn restore_to(&mut self, index: LogIndex, term: Term, membership: Membership) -> bool {
        let keeps_suffix = index > self.base && self.matches(index, term);
        if keeps_suffix {
            let drop = usize::try_from(index.get() - self.base.get()).unwrap_or(usize::MAX);
            self.entries.drain(..drop.min(self.entries.len()));
        } else {
            // Nothing of the discarded log counts as durable; the old base still does, until
            // the batch holding the new snapshot is reported durable.
            self.entries.clear();
            self.durable = self.durable.min(self.base);
        }
        self.base = index;
        self.base_term = term;
        self.commit = self.commit.max(index);
        self.applied = index;
        self.durable = self.durable.min(self.last_index());
        self.uncommitted_bytes = self.bytes_between(self.commit, self.last_index());
        self.memberships
            .restored_to(index, membership, keeps_suffix);
        !keeps_suffix
    }

    /// The configurations of this log (see [`MembershipLog`]).
    pub fn memberships(&self) -> &MembershipLog {
        &self.memberships
    }

    /// The newest configuration: the one in force (configurations take effect on append).
    pub fn membership(&self) -> &Membership {
        self.memberships.newest()
    }

    /// Sets the configuration at the base: the bootstrap one, or a recovered snapshot's.
    pub fn set_base_membership(&mut self, membership: Membership) {
        self.memberships.set_base(self.base, membership);
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
        Append { size: usize, new_term: bool },
        Truncate(u64),
        Commit(u64),
        PersistAndApply,
        Compact(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..64, any::<bool>()).prop_map(|(size, new_term)| Op::Append { size, new_term }),
            1 => (0u64..40).prop_map(Op::Truncate),
            2 => (0u64..40).prop_map(Op::Commit),
            1 => Just(Op::PersistAndApply),
            1 => (0u64..40).prop_map(Op::Compact),
        ]
    }

    proptest! {
        /// Against a model log that never compacts: after any appends, truncations, commits,
        /// applies and compactions, the log answers every question about the indexes it still
        /// holds (and the snapshot's last one) as the model does, its running total of
        /// uncommitted bytes equals a walk over the tail, and a log recovered from a snapshot
        /// and the tail answers alike.
        #[test]
        fn a_compacted_log_answers_like_the_whole_log(ops in prop::collection::vec(op(), 0..80)) {
            let mut log = RaftLog::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut term = Term(1);
            for op in ops {
                match op {
                    Op::Append { size, new_term } => {
                        if new_term {
                            term = Term(term.get() + 1);
                        }
                        let index = log.last_index().next();
                        let payload = EntryPayload::Command(vec![7; size].into());
                        let entry = Entry { term, index, payload };
                        model.push(entry.clone());
                        log.append(entry);
                    }
                    Op::Truncate(from) if from > log.commit().get() && from <= log.last_index().get() + 1 => {
                        log.truncate_from(LogIndex(from));
                        model.truncate(from as usize - 1);
                    }
                    Op::Truncate(_) => {}
                    Op::Commit(index) => {
                        log.commit_to(LogIndex(index));
                    }
                    Op::PersistAndApply => {
                        log.mark_durable(log.last_index(), log.last_term());
                        let applied = log.take_applicable();
                        prop_assert!(applied.iter().all(|entry| model[entry.index.get() as usize - 1] == *entry));
                    }
                    Op::Compact(index) => {
                        let before = log.base();
                        let dropped = log.compact_to(LogIndex(index));
                        let allowed = index > before.get() && index <= log.applied().get();
                        prop_assert_eq!(dropped, allowed);
                    }
                }
                let base = log.base().get();
                let start = usize::try_from(log.commit().get() - base).unwrap();
                let recount: usize = log.entries[start..].iter().map(Entry::size_bytes).sum();
                prop_assert_eq!(log.uncommitted_bytes(), recount);
                prop_assert_eq!(log.last_index().get(), model.len() as u64);
                for index in base..=model.len() as u64 {
                    let expected = if index == 0 { Term::ZERO } else { model[index as usize - 1].term };
                    prop_assert_eq!(log.term_at(LogIndex(index)), Some(expected));
                    if index > base {
                        let held = log.entries_from(LogIndex(index), 1, 0);
                        prop_assert_eq!(&held[0], &model[index as usize - 1]);
                        let first = log.first_index_of_term_at(LogIndex(index)).get();
                        let mut model_first = index;
                        while model_first > base + 1 && model[model_first as usize - 2].term == expected {
                            model_first -= 1;
                        }
                        prop_assert_eq!(first, model_first);
                    }
                }
                if base > 1 {
                    prop_assert_eq!(log.term_at(LogIndex(base - 1)), None);
                }
                if base > 0 {
                    prop_assert!(log.entries_from(LogIndex(base), 10, 1 << 20).is_empty());
                }
            }
            let recovered = RaftLog::recovered_after(
                log.base(),
                log.term_at(log.base()).unwrap(),
                log.entries.clone(),
                log.commit(),
            );
            prop_assert_eq!(recovered.uncommitted_bytes(), log.uncommitted_bytes());
            prop_assert_eq!(recovered.last_index(), log.last_index());
            prop_assert_eq!(recovered.last_term(), log.last_term());
            prop_assert_eq!(recovered.applied(), log.base());
        }
    }
}
