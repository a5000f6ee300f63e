//! Property tests of the checker on generated histories: a history produced by running
//! operations against a correct store, with any real-time overlap consistent with that run,
//! is always linearizable; corrupting one read of a sequential history always makes it not
//! linearizable, and the corrupted read is part of the explanation.

use proptest::prelude::*;
use rafting_sim::linearizability::kv::{
    GeneratorConfig, KvInput, KvModel, KvOutput, Value, Versioned, generate_history,
};
use rafting_sim::linearizability::{
    CheckOptions, Completion, History, Operation, OperationId, Verdict, check,
};

fn config_strategy() -> impl Strategy<Value = GeneratorConfig> {
    (
        any::<u64>(),
        1usize..6,
        1usize..120,
        1usize..8,
        1usize..4,
        0.0f64..0.2,
        1u64..30,
    )
        .prop_map(
            |(seed, clients, operations, keys, keys_per_directory, unknown, duration_max)| {
                GeneratorConfig {
                    seed,
                    clients,
                    operations,
                    keys,
                    keys_per_directory,
                    unknown_outcome_probability: unknown,
                    sequential: false,
                    duration_max,
                    think_time_max: 5,
                }
            },
        )
}

/// The same history with operation `target`'s read answer replaced by a different one.
fn with_corrupted_read(
    history: &History<KvInput, KvOutput>,
    target: usize,
) -> History<KvInput, KvOutput> {
    let mut corrupted = History::new();
    for (index, operation) in history.operations().iter().enumerate() {
        let mut operation: Operation<KvInput, KvOutput> = operation.clone();
        if index == target
            && let Completion::Returned { output, .. } = &mut operation.completion
        {
            *output = corrupt(output);
        }
        corrupted.push(operation).expect("intervals unchanged");
    }
    corrupted
}

fn corrupt(output: &KvOutput) -> KvOutput {
    match output {
        KvOutput::Read(Some(found)) => KvOutput::Read(Some(Versioned {
            value: found.value.clone(),
            version: found.version + 1,
        })),
        KvOutput::Read(None) => KvOutput::Read(Some(Versioned {
            value: Value::new(b"never written"),
            version: 1,
        })),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Histories of a correct store are linearizable, whatever the overlap and however many
    /// outcomes are unknown.
    #[test]
    fn histories_of_a_correct_store_are_linearizable(config in config_strategy()) {
        let history = generate_history(&config);
        let report = check(&KvModel::default(), &history, &CheckOptions::default());
        prop_assert_eq!(&report.verdict, &Verdict::Linearizable, "{}", report);
        prop_assert_eq!(report.operations_checked, history.len());
    }

    /// In a sequential history every answer is forced, so any corrupted read is caught and
    /// named in the explanation.
    #[test]
    fn a_corrupted_read_in_a_sequential_history_is_caught(
        config in config_strategy(),
        pick in any::<prop::sample::Index>(),
    ) {
        let config = GeneratorConfig {
            sequential: true,
            unknown_outcome_probability: 0.0,
            ..config
        };
        let history = generate_history(&config);
        let reads: Vec<usize> = history
            .operations()
            .iter()
            .enumerate()
            .filter(|(_, operation)| matches!(operation.output(), Some(KvOutput::Read(_))))
            .map(|(index, _)| index)
            .collect();
        prop_assume!(!reads.is_empty());
        let target = reads[pick.index(reads.len())];
        let corrupted = with_corrupted_read(&history, target);
        let report = check(&KvModel::default(), &corrupted, &CheckOptions::default());
        let Verdict::NotLinearizable(violation) = &report.verdict else {
            return Err(TestCaseError::fail(format!("corruption of op{target} missed: {report}")));
        };
        prop_assert!(violation.operations.contains(&OperationId(target)));
    }
}

/// A realistic history (10 clients, 40 keys, 2,000 operations, 1% unknown outcomes) is
/// linearizable and fully checked: partitions follow the key directories.
#[test]
fn realistic_generated_history_is_linearizable() {
    let config = GeneratorConfig {
        seed: 7,
        operations: 2_000,
        keys: 40,
        ..GeneratorConfig::default()
    };
    let history = generate_history(&config);
    let report = check(&KvModel::default(), &history, &CheckOptions::default());
    assert_eq!(report.verdict, Verdict::Linearizable, "{report}");
    assert_eq!(report.operations_checked, 2_000);
    assert_eq!(report.partitions, 8);
}
