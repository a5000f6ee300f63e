//! Each check is fed a hand-made violation and must report it under its own name; each is also
//! fed the matching legal situation and must stay quiet.

use super::*;

fn command(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: EntryPayload::Command(data.to_vec()),
    }
}

fn log_of(entries: Vec<Entry>) -> RaftLog {
    RaftLog::recovered(entries, LogIndex::ZERO)
}

// Two nodes claiming term 3 is reported; the same node again is not.
#[test]
fn election_safety_catches_two_leaders_in_one_term() {
    let mut leaders = BTreeMap::new();
    assert!(election_safety(&mut leaders, NodeId(1), Term(3)).is_ok());
    assert!(election_safety(&mut leaders, NodeId(1), Term(3)).is_ok());
    let violation = election_safety(&mut leaders, NodeId(2), Term(3)).unwrap_err();
    assert_eq!(violation.check, check::ELECTION_SAFETY);
    assert_eq!(violation.nodes, vec![1, 2]);
}

// Same (index, term) with a different payload, or a different predecessor, is reported.
#[test]
fn log_matching_catches_divergent_entries() {
    let mut written = BTreeMap::new();
    let entry = command(2, 1, b"a");
    assert!(log_matching(&mut written, NodeId(1), &entry, Term(1)).is_ok());
    assert!(log_matching(&mut written, NodeId(2), &entry, Term(1)).is_ok());
    let other_payload = command(2, 1, b"b");
    let violation = log_matching(&mut written, NodeId(3), &other_payload, Term(1)).unwrap_err();
    assert_eq!(violation.check, check::LOG_MATCHING);
    assert_eq!(violation.index, Some(2));
    let violation = log_matching(&mut written, NodeId(3), &entry, Term(0)).unwrap_err();
    assert_eq!(violation.check, check::LOG_MATCHING);
}

// A leader missing a committed entry, or a node overwriting one, is reported.
#[test]
fn leader_completeness_catches_a_missing_committed_entry() {
    let committed = vec![(Term(1), 5), (Term(1), 6)];
    let complete = log_of(vec![command(1, 1, b"x"), command(2, 1, b"y")]);
    assert!(leader_completeness(&committed, NodeId(1), &complete).is_ok());
    let short = log_of(vec![command(1, 1, b"x")]);
    let violation = leader_completeness(&committed, NodeId(2), &short).unwrap_err();
    assert_eq!(violation.check, check::LEADER_COMPLETENESS);
    assert_eq!(violation.index, Some(2));
    let before = vec![command(1, 1, b"x"), command(2, 1, b"y")];
    let overwritten = log_of(vec![command(1, 1, b"x"), command(2, 2, b"z")]);
    let violation =
        committed_entries_kept(&committed, NodeId(3), &before, &overwritten, LogIndex(2))
            .unwrap_err();
    assert_eq!(violation.check, check::LEADER_COMPLETENESS);
    // Replacing an entry of another term at a committed index is legal: it never was committed.
    let stale = vec![command(1, 1, b"x"), command(2, 3, b"old")];
    let kept = committed_entries_kept(&committed, NodeId(3), &stale, &overwritten, LogIndex(2));
    assert!(kept.is_ok());
}

// Two nodes applying different entries at index 1, or a node skipping an index, is reported.
#[test]
fn state_machine_safety_catches_different_applied_entries() {
    let mut applied = Vec::new();
    assert!(state_machine_safety(&mut applied, NodeId(1), &command(1, 1, b"a")).is_ok());
    assert!(state_machine_safety(&mut applied, NodeId(2), &command(1, 1, b"a")).is_ok());
    let violation =
        state_machine_safety(&mut applied, NodeId(3), &command(1, 1, b"b")).unwrap_err();
    assert_eq!(violation.check, check::STATE_MACHINE_SAFETY);
    let violation =
        state_machine_safety(&mut applied, NodeId(3), &command(3, 1, b"c")).unwrap_err();
    assert_eq!(violation.check, check::STATE_MACHINE_SAFETY);
    let violation = applied_in_order(NodeId(1), LogIndex(1), &command(3, 1, b"c")).unwrap_err();
    assert_eq!(violation.check, check::STATE_MACHINE_SAFETY);
    let mut record = Record::default();
    assert!(record_committed(&mut record, NodeId(1), &command(1, 1, b"a")).is_ok());
    let violation = record_committed(&mut record, NodeId(2), &command(1, 2, b"a")).unwrap_err();
    assert_eq!(violation.check, check::STATE_MACHINE_SAFETY);
}

// A commit index moving back within one run of a node is reported.
#[test]
fn commit_monotonic_catches_a_commit_moving_back() {
    assert!(commit_monotonic(NodeId(1), LogIndex(4), LogIndex(4)).is_ok());
    assert!(commit_monotonic(NodeId(1), LogIndex(4), LogIndex(5)).is_ok());
    let violation = commit_monotonic(NodeId(1), LogIndex(5), LogIndex(4)).unwrap_err();
    assert_eq!(violation.check, check::COMMIT_MONOTONIC);
}

// An acknowledged write whose index later commits another entry is reported, in both orders.
#[test]
fn acknowledged_write_kept_catches_a_lost_write() {
    let acknowledged = command(1, 1, b"mine");
    let other = command(1, 2, b"theirs");
    let mut record = Record::default();
    let payload = digest(&acknowledged.payload);
    assert!(acknowledged_write_kept(&mut record, NodeId(1), LogIndex(1), payload).is_ok());
    let violation = record_committed(&mut record, NodeId(2), &other).unwrap_err();
    assert_eq!(violation.check, check::ACKNOWLEDGED_WRITE_KEPT);

    let mut record = Record::default();
    assert!(record_committed(&mut record, NodeId(2), &other).is_ok());
    let violation =
        acknowledged_write_kept(&mut record, NodeId(1), LogIndex(1), payload).unwrap_err();
    assert_eq!(violation.check, check::ACKNOWLEDGED_WRITE_KEPT);
}
