//! The ordering rules of the log, checked the same way when a batch is written and when a
//! segment is replayed: entries follow each other one index at a time, and an index may go
//! back only through an explicit truncation record.

use rafting_core::LogIndex;
use rafting_core::raft::{Entry, HardState};

use crate::error::{OrderViolation, WalError};
use crate::record::{Batch, Record, RecordRef};

/// The span of indexes the log holds, and the index the next entry must have.
///
/// A fresh log accepts any first index (the log may start after a snapshot, once old
/// segments are dropped); after that, every entry must be exactly the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogShape {
    /// The first index held, `None` while the log holds no entry.
    first_index: Option<LogIndex>,
    /// The index the next entry must have; `None` only for a log that never held an entry.
    next_index: Option<LogIndex>,
}

impl LogShape {
    /// The first index held, if any entry is held.
    pub fn first_index(&self) -> Option<LogIndex> {
        self.first_index
    }

    /// The last index held, if any entry is held.
    pub fn last_index(&self) -> Option<LogIndex> {
        self.first_index?;
        self.next_index.map(LogIndex::prev)
    }

    /// Checks and applies a truncation of every entry from `from` on.
    pub fn truncate(&mut self, from: LogIndex) -> Result<(), OrderViolation> {
        let violation = |reason: String| OrderViolation {
            expected_index: self.next_index,
            reason,
        };
        if from == LogIndex::ZERO {
            return Err(violation("truncation from index 0".to_string()));
        }
        if let Some(next_index) = self.next_index
            && from > next_index
        {
            return Err(violation(format!(
                "truncation from {from} is past the end of the log (next index {next_index})"
            )));
        }
        if let Some(first_index) = self.first_index
            && from < first_index
        {
            return Err(violation(format!(
                "truncation from {from} reaches before the first index {first_index}"
            )));
        }
        if self.first_index == Some(from) {
            self.first_index = None;
        }
        self.next_index = Some(from);
        Ok(())
    }

    /// Forgets every entry: the next one must be `after + 1`.
    pub fn reset(&mut self, after: LogIndex) {
        self.first_index = None;
        self.next_index = Some(after.next());
    }

    /// Checks and applies the append of an entry with `index`.
    pub fn append(&mut self, index: LogIndex) -> Result<(), OrderViolation> {
        if index == LogIndex::ZERO {
            return Err(OrderViolation {
                expected_index: self.next_index,
                reason: "entry with index 0".to_string(),
            });
        }
        if let Some(next_index) = self.next_index
            && index != next_index
        {
            let direction = if index < next_index {
                "goes backwards"
            } else {
                "leaves a gap"
            };
            return Err(OrderViolation {
                expected_index: self.next_index,
                reason: format!("entry {index} {direction}: expected {next_index}"),
            });
        }
        if self.first_index.is_none() {
            self.first_index = Some(index);
        }
        self.next_index = Some(index.next());
        Ok(())
    }

    /// Turns a driver's batch into the records to write, checking it against the log's
    /// rules. Returns the records and the shape the log will have once they are durable;
    /// `self` is unchanged, so a failed write leaves the log as it was.
    pub fn plan_batch<'a>(
        &self,
        batch: &'a Batch,
    ) -> Result<(Vec<RecordRef<'a>>, LogShape), WalError> {
        self.plan(batch.hard_state.as_ref(), &batch.entries)
    }

    /// [`LogShape::plan_batch`] for a batch's parts, borrowed from wherever they are.
    pub fn plan<'a>(
        &self,
        hard_state: Option<&'a HardState>,
        entries: &'a [Entry],
    ) -> Result<(Vec<RecordRef<'a>>, LogShape), WalError> {
        let mut shape = *self;
        let mut records = Vec::with_capacity(entries.len() + 2);
        let invalid = |violation: OrderViolation| WalError::InvalidBatch {
            reason: violation.reason,
        };
        if let Some(first) = entries.first()
            && let Some(next_index) = shape.next_index
            && first.index < next_index
        {
            shape.truncate(first.index).map_err(invalid)?;
            records.push(RecordRef::Truncate { from: first.index });
        }
        for entry in entries {
            shape.append(entry.index).map_err(invalid)?;
            records.push(RecordRef::Entry(entry));
        }
        if let Some(hard_state) = hard_state {
            records.push(RecordRef::HardState(hard_state));
        }
        Ok((records, shape))
    }
}

/// The log rebuilt by replaying records: the latest hard state and the surviving entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveredLog {
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
    shape: LogShape,
}

impl RecoveredLog {
    /// The ordering state after every record applied so far.
    pub fn shape(&self) -> LogShape {
        self.shape
    }

    /// Applies one record, in log order.
    pub fn apply(&mut self, record: Record) -> Result<(), OrderViolation> {
        match record {
            Record::HardState(hard_state) => self.hard_state = Some(hard_state),
            Record::Truncate { from } => {
                let first_index = self.shape.first_index();
                self.shape.truncate(from)?;
                if let Some(first_index) = first_index {
                    let keep = from.get().saturating_sub(first_index.get());
                    self.entries
                        .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
                }
            }
            Record::Entry(entry) => {
                self.shape.append(entry.index)?;
                self.entries.push(entry);
            }
            Record::Reset { after } => {
                self.shape.reset(after);
                self.entries.clear();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafting_core::Term;
    use rafting_core::raft::EntryPayload;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            term: Term::new(term),
            index: LogIndex::new(index),
            payload: EntryPayload::Noop,
        }
    }

    fn indexes(log: &RecoveredLog) -> Vec<(u64, u64)> {
        log.entries
            .iter()
            .map(|entry| (entry.term.get(), entry.index.get()))
            .collect()
    }

    // Replaying entries, a truncation and new entries leaves exactly the new suffix.
    #[test]
    fn truncation_replaces_the_suffix() {
        let mut log = RecoveredLog::default();
        for index in 1..=5 {
            log.apply(Record::Entry(entry(1, index))).unwrap();
        }
        log.apply(Record::Truncate {
            from: LogIndex::new(3),
        })
        .unwrap();
        log.apply(Record::Entry(entry(2, 3))).unwrap();
        assert_eq!(indexes(&log), vec![(1, 1), (1, 2), (2, 3)]);
        assert_eq!(log.shape().last_index(), Some(LogIndex::new(3)));

        log.apply(Record::Truncate {
            from: LogIndex::new(1),
        })
        .unwrap();
        assert!(log.entries.is_empty());
        assert_eq!(log.shape().last_index(), None);
        let error = log.apply(Record::Entry(entry(3, 2))).unwrap_err();
        assert!(error.reason.contains("leaves a gap"), "{error:?}");
        log.apply(Record::Entry(entry(3, 1))).unwrap();
        assert_eq!(indexes(&log), vec![(3, 1)]);
    }

    // An index that goes backwards without a truncation record is refused.
    #[test]
    fn backwards_index_without_truncation_is_refused() {
        let mut log = RecoveredLog::default();
        log.apply(Record::Entry(entry(1, 10))).unwrap();
        log.apply(Record::Entry(entry(1, 11))).unwrap();
        let error = log.apply(Record::Entry(entry(1, 11))).unwrap_err();
        assert!(error.reason.contains("goes backwards"), "{error:?}");
        let error = log
            .apply(Record::Truncate {
                from: LogIndex::new(9),
            })
            .unwrap_err();
        assert!(error.reason.contains("before the first index"), "{error:?}");
        let error = log
            .apply(Record::Truncate {
                from: LogIndex::new(13),
            })
            .unwrap_err();
        assert!(error.reason.contains("past the end"), "{error:?}");
    }

    // A reset (a snapshot installed over a log that did not continue it) forgets every entry
    // and the log goes on right after the snapshot, even past a gap.
    #[test]
    fn a_reset_forgets_the_log_and_continues_after_the_snapshot() {
        let mut log = RecoveredLog::default();
        for index in 1..=5 {
            log.apply(Record::Entry(entry(1, index))).unwrap();
        }
        log.apply(Record::Reset {
            after: LogIndex::new(9),
        })
        .unwrap();
        assert!(log.entries.is_empty());
        assert!(log.apply(Record::Entry(entry(2, 11))).is_err());
        log.apply(Record::Entry(entry(2, 10))).unwrap();
        assert_eq!(indexes(&log), vec![(2, 10)]);
    }

    // A batch whose first entry overlaps the log gets a truncation record in front of it.
    #[test]
    fn plan_batch_adds_truncation_for_overlap() {
        let mut shape = LogShape::default();
        let first = Batch {
            hard_state: None,
            entries: (1..=4).map(|index| entry(1, index)).collect(),
        };
        let (records, next_shape) = shape.plan_batch(&first).unwrap();
        assert_eq!(records.len(), 4);
        shape = next_shape;
        let overwrite = Batch {
            hard_state: Some(HardState::default()),
            entries: vec![entry(2, 3)],
        };
        let (records, next_shape) = shape.plan_batch(&overwrite).unwrap();
        assert!(matches!(records[0], RecordRef::Truncate { from } if from == LogIndex::new(3)));
        assert!(matches!(records[2], RecordRef::HardState(_)));
        assert_eq!(next_shape.last_index(), Some(LogIndex::new(3)));

        let gap = Batch {
            hard_state: None,
            entries: vec![entry(1, 5), entry(1, 7)],
        };
        let error = shape.plan_batch(&gap).unwrap_err();
        assert_eq!(error.kind(), crate::WalErrorKind::InvalidBatch);
    }
}
