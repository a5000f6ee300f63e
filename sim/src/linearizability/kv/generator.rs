//! Seeded histories of a simulated concurrent execution against a correct store, for tests and
//! benchmarks of the checker.
//!
//! Each client issues one operation at a time. Every operation gets a random duration and a
//! random linearization point inside it; the operations are then applied to a correct store
//! in linearization-point order to compute their answers. The result is linearizable by
//! construction, with as much real-time overlap as the durations allow. Some operations may
//! be given an unknown outcome: they took effect or not, at random, and their answer is lost.

use super::model::{KvModel, KvState};
use super::types::{
    Comparison, Expectation, Key, KvInput, KvOutput, Transaction, TransactionStep, Value,
};
use crate::linearizability::history::{ClientId, Completion, History, Operation, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The shape of a generated history.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub clients: usize,
    pub operations: usize,
    pub keys: usize,
    /// Keys are grouped in directories of this many; transactions and lists stay inside one
    /// directory, as a service's keys do in the store.
    pub keys_per_directory: usize,
    pub unknown_outcome_probability: f64,
    /// One operation at a time across all clients: no two intervals overlap.
    pub sequential: bool,
    pub duration_max: u64,
    pub think_time_max: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            clients: 10,
            operations: 10_000,
            keys: 100,
            keys_per_directory: 5,
            unknown_outcome_probability: 0.01,
            sequential: false,
            duration_max: 20,
            think_time_max: 5,
        }
    }
}

/// One operation before its answer is known.
struct Planned {
    client: ClientId,
    input: KvInput,
    invoked_at: u64,
    linearized_at: u64,
    completed_at: u64,
    outcome_unknown: bool,
}

/// A linearizable history of `config.operations` operations.
pub fn generate_history(config: &GeneratorConfig) -> History<KvInput, KvOutput> {
    let mut random = ChaCha8Rng::seed_from_u64(config.seed);
    let mut planned = plan_operations(config, &mut random);
    let mut by_linearization: Vec<usize> = (0..planned.len()).collect();
    by_linearization.sort_by_key(|&index| (planned[index].linearized_at, index));
    let model = KvModel::default();
    let mut state = KvState::default();
    let mut outputs: Vec<Option<KvOutput>> = vec![None; planned.len()];
    for index in by_linearization {
        let operation = &planned[index];
        if operation.outcome_unknown && random.random_bool(0.5) {
            continue;
        }
        let output = model.apply(&mut state, &operation.input);
        if !operation.outcome_unknown {
            outputs[index] = Some(output);
        }
    }
    let mut history = History::new();
    for (operation, output) in planned.drain(..).zip(outputs) {
        let completion = match output {
            Some(output) => Completion::Returned {
                output,
                completed_at: Timestamp(operation.completed_at),
            },
            None => Completion::Unknown,
        };
        history
            .push(Operation {
                client: operation.client,
                input: operation.input,
                invoked_at: Timestamp(operation.invoked_at),
                completion,
            })
            .expect("generated intervals are well formed");
    }
    history
}

/// Chooses every operation and its timing, in invocation order.
fn plan_operations(config: &GeneratorConfig, random: &mut ChaCha8Rng) -> Vec<Planned> {
    let clients = config.clients.max(1);
    let mut client_free_at: Vec<u64> = vec![0; clients];
    let mut global_free_at = 0;
    let mut planned = Vec::with_capacity(config.operations);
    for sequence in 0..config.operations {
        let client = if config.sequential {
            sequence % clients
        } else {
            (0..clients)
                .min_by_key(|&client| (client_free_at[client], client))
                .unwrap_or(0)
        };
        let invoked_at = if config.sequential {
            global_free_at
        } else {
            client_free_at[client]
        };
        let completed_at = invoked_at + random.random_range(1..=config.duration_max.max(1));
        let linearized_at = random.random_range(invoked_at..=completed_at);
        let think_time = random.random_range(0..=config.think_time_max);
        client_free_at[client] = completed_at + think_time;
        global_free_at = completed_at + 1;
        planned.push(Planned {
            client: ClientId(client as u64),
            input: random_input(config, random, sequence),
            invoked_at,
            linearized_at,
            completed_at,
            outcome_unknown: random.random_bool(config.unknown_outcome_probability),
        });
    }
    planned.sort_by_key(|operation| operation.invoked_at);
    planned
}

fn key_name(index: usize, keys_per_directory: usize) -> Key {
    Key::new(&format!(
        "/d{}/k{}",
        index / keys_per_directory,
        index % keys_per_directory
    ))
}

/// A random operation: mostly reads and writes of one key, some compare-and-sets, appends,
/// deletes, and transactions and lists over one directory.
fn random_input(config: &GeneratorConfig, random: &mut ChaCha8Rng, sequence: usize) -> KvInput {
    let keys = config.keys.max(1);
    let per_directory = config.keys_per_directory.clamp(1, keys);
    let key_index = random.random_range(0..keys);
    let key = key_name(key_index, per_directory);
    let value = Value::new(format!("v{sequence}").as_bytes());
    match random.random_range(0..100) {
        0..35 => KvInput::Get { key },
        35..55 => KvInput::Put { key, value },
        55..70 => KvInput::CompareAndSet {
            key,
            expected: random_expectation(random),
            new_value: value,
        },
        70..75 => KvInput::Append {
            key,
            value: Value::new(format!("{sequence};").as_bytes()),
        },
        75..80 => KvInput::Delete { key },
        choice => {
            let directory_start = key_index - key_index % per_directory;
            let directory_end = (directory_start + per_directory).min(keys);
            let directory: Vec<Key> = (directory_start..directory_end)
                .map(|index| key_name(index, per_directory))
                .collect();
            let list = choice < 90;
            KvInput::Transaction(random_transaction(random, &directory, value, list))
        }
    }
}

fn random_expectation(random: &mut ChaCha8Rng) -> Expectation {
    match random.random_range(0..4) {
        0 => Expectation::Absent,
        version => Expectation::Version(version),
    }
}

/// A list of the whole directory, or a compare-and-set over two keys of it.
fn random_transaction(
    random: &mut ChaCha8Rng,
    directory: &[Key],
    value: Value,
    list: bool,
) -> Transaction {
    let gets = || {
        directory
            .iter()
            .map(|key| TransactionStep::Get { key: key.clone() })
            .collect::<Vec<_>>()
    };
    if list {
        return Transaction {
            comparisons: Vec::new(),
            on_success: gets(),
            on_failure: Vec::new(),
        };
    }
    let compared = directory[random.random_range(0..directory.len())].clone();
    let written = directory[random.random_range(0..directory.len())].clone();
    Transaction {
        comparisons: vec![Comparison {
            key: compared,
            expected: random_expectation(random),
        }],
        on_success: vec![TransactionStep::Put {
            key: written,
            value,
        }],
        on_failure: gets(),
    }
}
