//! Hand-made key-value histories, each with the verdict a careful reader would give, checked
//! against the linearizability checker: linearizable ones (sequential, overlapping, with
//! operations of unknown outcome) and the anomalies a broken Raft store produces.

use rafting_sim::linearizability::kv::{
    Comparison, Expectation, Key, KvInput, KvModel, KvOutput, Transaction, TransactionStep, Value,
    Versioned,
};
use rafting_sim::linearizability::{
    CheckOptions, CheckReport, ClientId, Completion, History, Operation, OperationId, Timestamp,
    Verdict, check,
};

type KvHistory = History<KvInput, KvOutput>;

fn key() -> Key {
    Key::new("/x")
}

fn put(value: &str) -> KvInput {
    KvInput::Put {
        key: key(),
        value: Value::new(value.as_bytes()),
    }
}

fn append(value: &str) -> KvInput {
    KvInput::Append {
        key: key(),
        value: Value::new(value.as_bytes()),
    }
}

fn get() -> KvInput {
    KvInput::Get { key: key() }
}

fn read(value: &str, version: u64) -> KvOutput {
    KvOutput::Read(Some(Versioned {
        value: Value::new(value.as_bytes()),
        version,
    }))
}

/// Records one operation of `client` over [invoked, completed]; `None` output means unknown.
fn record(
    history: &mut KvHistory,
    client: u64,
    input: KvInput,
    invoked: u64,
    completed: u64,
    output: Option<KvOutput>,
) -> OperationId {
    let completion = match output {
        Some(output) => Completion::Returned {
            output,
            completed_at: Timestamp(completed),
        },
        None => Completion::Unknown,
    };
    history
        .push(Operation {
            client: ClientId(client),
            input,
            invoked_at: Timestamp(invoked),
            completion,
        })
        .expect("well-formed interval")
}

fn run(history: &KvHistory) -> CheckReport {
    check(&KvModel::default(), history, &CheckOptions::default())
}

fn assert_linearizable(history: &KvHistory) {
    let report = run(history);
    assert_eq!(report.verdict, Verdict::Linearizable, "{report}");
    assert_eq!(report.operations_checked, history.len());
}

/// Asserts a violation on key /x whose explanation is exactly `expected`.
fn assert_violation(history: &KvHistory, expected: &[OperationId]) {
    let report = run(history);
    let Verdict::NotLinearizable(violation) = &report.verdict else {
        panic!("expected a violation, got {report}");
    };
    assert_eq!(violation.partition, "key /x");
    assert!(violation.minimized);
    assert_eq!(
        violation.operations,
        expected,
        "{}",
        violation.explain(history)
    );
}

/// Sequential writes and reads, each seeing the latest write: linearizable.
#[test]
fn sequential_history_is_linearizable() {
    let mut history = KvHistory::new();
    record(&mut history, 1, get(), 0, 1, Some(KvOutput::Read(None)));
    record(&mut history, 1, put("a"), 2, 3, Some(KvOutput::Written));
    record(&mut history, 2, get(), 4, 5, Some(read("a", 1)));
    record(&mut history, 2, put("b"), 6, 7, Some(KvOutput::Written));
    record(&mut history, 1, get(), 8, 9, Some(read("b", 2)));
    assert_linearizable(&history);
}

/// Two reads overlap a write; one sees the old value, the other the new one, in an order
/// that real time allows (the new-value read does not precede the old-value read).
#[test]
fn concurrent_overlapping_history_is_linearizable() {
    let mut history = KvHistory::new();
    record(&mut history, 1, put("a"), 0, 2, Some(KvOutput::Written));
    record(&mut history, 1, put("b"), 3, 20, Some(KvOutput::Written));
    record(&mut history, 2, get(), 4, 10, Some(read("b", 2)));
    record(&mut history, 3, get(), 5, 15, Some(read("a", 1)));
    assert_linearizable(&history);
}

/// A put whose outcome is unknown took effect: a later read sees its value.
#[test]
fn unknown_write_that_took_effect_is_linearizable() {
    let mut history = KvHistory::new();
    record(&mut history, 1, put("a"), 0, 1, Some(KvOutput::Written));
    record(&mut history, 1, put("b"), 2, 0, None);
    record(&mut history, 2, get(), 30, 31, Some(read("b", 2)));
    assert_linearizable(&history);
}

/// A put whose outcome is unknown never took effect: every read sees the older value.
#[test]
fn unknown_write_that_never_took_effect_is_linearizable() {
    let mut history = KvHistory::new();
    record(&mut history, 1, put("a"), 0, 1, Some(KvOutput::Written));
    record(&mut history, 1, put("b"), 2, 0, None);
    record(&mut history, 2, get(), 30, 31, Some(read("a", 1)));
    record(&mut history, 2, get(), 40, 41, Some(read("a", 1)));
    assert_linearizable(&history);
}

/// An unknown write can take effect late, but not before its invocation: a read that ends
/// before the write is invoked cannot see it.
#[test]
fn read_seeing_a_write_before_its_invocation_is_not_linearizable() {
    let mut history = KvHistory::new();
    let early_read = record(&mut history, 2, get(), 0, 5, Some(read("a", 1)));
    record(&mut history, 1, put("a"), 10, 20, Some(KvOutput::Written));
    assert_violation(&history, &[early_read]);
    // The same read with the write of unknown outcome is still a violation.
    let mut unknown = KvHistory::new();
    let early_read = record(&mut unknown, 2, get(), 0, 5, Some(read("a", 1)));
    record(&mut unknown, 1, put("a"), 10, 0, None);
    assert_violation(&unknown, &[early_read]);
}

/// A deposed leader serves a read from its stale state: the read returns "a" although the
/// write of "b" completed before the read was invoked.
#[test]
fn stale_read_from_deposed_leader_is_not_linearizable() {
    let mut history = KvHistory::new();
    record(&mut history, 1, put("a"), 0, 10, Some(KvOutput::Written));
    let second = record(&mut history, 1, put("b"), 20, 30, Some(KvOutput::Written));
    let stale = record(&mut history, 2, get(), 40, 50, Some(read("a", 1)));
    // Even if the first write had an unknown outcome and ran late, it would leave version 2:
    // the completed second write and the stale read suffice to show the violation.
    assert_violation(&history, &[second, stale]);
}

/// An acknowledged write is lost: after it completed, a read sees the value it overwrote,
/// and later reads never see it.
#[test]
fn lost_write_is_not_linearizable() {
    let mut history = KvHistory::new();
    record(&mut history, 1, put("a"), 0, 10, Some(KvOutput::Written));
    let lost = record(&mut history, 2, put("b"), 20, 30, Some(KvOutput::Written));
    record(&mut history, 3, get(), 21, 25, Some(read("a", 1)));
    let after = record(&mut history, 3, get(), 40, 45, Some(read("a", 1)));
    record(&mut history, 3, get(), 50, 55, Some(read("a", 1)));
    assert_violation(&history, &[lost, after]);
}

/// A client retried an append whose first attempt timed out; the store applied both
/// attempts. The history holds one append (the retry reuses the request id), yet a read sees
/// its suffix twice.
#[test]
fn retried_append_applied_twice_is_not_linearizable() {
    let mut history = KvHistory::new();
    record(
        &mut history,
        1,
        append("x;"),
        0,
        30,
        Some(KvOutput::Written),
    );
    let doubled = record(&mut history, 2, get(), 40, 50, Some(read("x;x;", 2)));
    // No single application of the append, whenever it happened, produces "x;x;".
    assert_violation(&history, &[doubled]);
}

/// A retried compare-and-set applied twice: the create gives version 1 and one application
/// of the bump gives version 2, so a read of version 3 shows the bump applied twice.
#[test]
fn retried_compare_and_set_applied_twice_is_not_linearizable() {
    let mut history = KvHistory::new();
    let create = KvInput::CompareAndSet {
        key: key(),
        expected: Expectation::Absent,
        new_value: Value::new(b"a"),
    };
    let bump = KvInput::CompareAndSet {
        key: key(),
        expected: Expectation::Value(Value::new(b"a")),
        new_value: Value::new(b"a"),
    };
    record(&mut history, 1, create, 0, 5, Some(cas(true)));
    record(&mut history, 1, bump, 10, 30, Some(cas(true)));
    let observed = record(&mut history, 2, get(), 40, 50, Some(read("a", 3)));
    assert_violation(&history, &[observed]);
}

fn cas(succeeded: bool) -> KvOutput {
    KvOutput::CompareAndSet { succeeded }
}

/// A transaction over two keys must be atomic: a list that sees the transaction's write to
/// one key but not to the other is a violation of the merged partition.
#[test]
fn torn_transaction_is_not_linearizable() {
    let (first, second) = (Key::new("/d/a"), Key::new("/d/b"));
    let writes = Transaction {
        comparisons: vec![Comparison {
            key: first.clone(),
            expected: Expectation::Absent,
        }],
        on_success: vec![
            TransactionStep::Put {
                key: first.clone(),
                value: Value::new(b"1"),
            },
            TransactionStep::Put {
                key: second.clone(),
                value: Value::new(b"1"),
            },
        ],
        on_failure: Vec::new(),
    };
    let list = Transaction {
        comparisons: Vec::new(),
        on_success: vec![
            TransactionStep::Get { key: first },
            TransactionStep::Get { key: second },
        ],
        on_failure: Vec::new(),
    };
    let one = Versioned {
        value: Value::new(b"1"),
        version: 1,
    };
    let mut history = KvHistory::new();
    let succeeded = KvOutput::Transaction {
        succeeded: true,
        reads: Vec::new(),
    };
    record(
        &mut history,
        1,
        KvInput::Transaction(writes),
        0,
        10,
        Some(succeeded),
    );
    let torn = KvOutput::Transaction {
        succeeded: true,
        reads: vec![Some(one.clone()), None],
    };
    record(
        &mut history,
        2,
        KvInput::Transaction(list.clone()),
        5,
        8,
        Some(torn),
    );
    let report = run(&history);
    let Verdict::NotLinearizable(violation) = &report.verdict else {
        panic!("expected a violation, got {report}");
    };
    assert_eq!(violation.partition, "keys /d/a, /d/b");
    // Seeing both writes, concurrently with the transaction, is fine.
    let mut whole = KvHistory::new();
    let both = KvOutput::Transaction {
        succeeded: true,
        reads: vec![Some(one.clone()), Some(one)],
    };
    record(
        &mut whole,
        1,
        history.operations()[0].input.clone(),
        0,
        10,
        None,
    );
    record(&mut whole, 2, KvInput::Transaction(list), 5, 8, Some(both));
    assert_linearizable(&whole);
}

/// Independent keys are checked separately: a violation on one key is reported with that
/// key, whatever happens on the others.
#[test]
fn violation_names_its_key_among_many() {
    let mut history = KvHistory::new();
    for index in 0..20 {
        let other = Key::new(&format!("/other/{index}"));
        let write = KvInput::Put {
            key: other.clone(),
            value: Value::new(b"v"),
        };
        record(
            &mut history,
            3,
            write,
            index * 10,
            index * 10 + 5,
            Some(KvOutput::Written),
        );
    }
    record(&mut history, 1, put("a"), 0, 10, Some(KvOutput::Written));
    record(&mut history, 2, get(), 20, 30, Some(KvOutput::Read(None)));
    let report = run(&history);
    let Verdict::NotLinearizable(violation) = &report.verdict else {
        panic!("expected a violation, got {report}");
    };
    assert_eq!(violation.partition, "key /x");
    assert_eq!(report.partitions, 21);
}

/// With a budget too small to decide, the verdict is unknown, never linearizable; the same
/// history with the default budget is linearizable.
#[test]
fn tiny_budget_gives_unknown_not_linearizable() {
    let mut history = KvHistory::new();
    for client in 0..6 {
        record(
            &mut history,
            client,
            put(&format!("v{client}")),
            0,
            100,
            None,
        );
    }
    record(&mut history, 9, get(), 200, 210, Some(read("v3", 4)));
    let tiny = CheckOptions {
        steps_max: 3,
        ..CheckOptions::default()
    };
    let report = check(&KvModel::default(), &history, &tiny);
    assert_eq!(
        report.verdict,
        Verdict::Unknown {
            partition: String::from("key /x")
        }
    );
    assert_eq!(report.operations_checked, 0);
    assert_linearizable(&history);
}
