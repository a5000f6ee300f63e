//! The sequential specification of the key-value store, and its split into independent key
//! groups.

use super::types::{Expectation, Key, KvInput, KvOutput, Transaction, TransactionStep, Versioned};
use super::union_find::UnionFind;
use crate::linearizability::history::{History, OperationId};
use crate::linearizability::model::{Model, Partition};
use std::collections::BTreeMap;

/// Keys shown in a partition's label before the rest are only counted.
const LABEL_KEYS_MAX: usize = 4;

/// A single correct copy of the key-value store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvModel {
    /// The version a key gets when it is created (1 in etcd, 0 in ZooKeeper); every later
    /// write adds one, and a delete forgets the key.
    pub first_version: u64,
}

impl Default for KvModel {
    fn default() -> Self {
        Self { first_version: 1 }
    }
}

/// The keys of one partition that currently exist, with their values and versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvState(pub BTreeMap<Key, Versioned>);

impl KvModel {
    fn write(&self, state: &mut KvState, key: &Key, value: super::types::Value) {
        let version = state
            .0
            .get(key)
            .map_or(self.first_version, |current| current.version + 1);
        state.0.insert(key.clone(), Versioned { value, version });
    }

    fn holds(state: &KvState, key: &Key, expected: &Expectation) -> bool {
        let current = state.0.get(key);
        match expected {
            Expectation::Absent => current.is_none(),
            Expectation::Version(version) => current.is_some_and(|found| found.version == *version),
            Expectation::Value(value) => current.is_some_and(|found| found.value == *value),
            Expectation::VersionAbove(version) => {
                current.map_or(0, |found| found.version) > *version
            }
            Expectation::VersionBelow(version) => {
                current.map_or(0, |found| found.version) < *version
            }
        }
    }

    /// Runs a transaction on `state`; returns whether its comparisons held, and its reads.
    fn run_transaction(
        &self,
        state: &mut KvState,
        transaction: &Transaction,
    ) -> (bool, Vec<Option<Versioned>>) {
        let succeeded = transaction
            .comparisons
            .iter()
            .all(|comparison| Self::holds(state, &comparison.key, &comparison.expected));
        let branch = if succeeded {
            &transaction.on_success
        } else {
            &transaction.on_failure
        };
        let mut reads = Vec::new();
        for step in branch {
            match step {
                TransactionStep::Get { key } => reads.push(state.0.get(key).cloned()),
                TransactionStep::Put { key, value } => self.write(state, key, value.clone()),
                TransactionStep::Delete { key } => {
                    state.0.remove(key);
                }
            }
        }
        (succeeded, reads)
    }

    /// Applies `input` to `state` and returns the answer a correct store gives.
    pub fn apply(&self, state: &mut KvState, input: &KvInput) -> KvOutput {
        match input {
            KvInput::Get { key } => KvOutput::Read(state.0.get(key).cloned()),
            KvInput::Put { key, value } => {
                self.write(state, key, value.clone());
                KvOutput::Written
            }
            KvInput::Delete { key } => {
                state.0.remove(key);
                KvOutput::Written
            }
            KvInput::Append { key, value } => {
                let appended = match state.0.get(key) {
                    Some(current) => current.value.concatenated(value),
                    None => value.clone(),
                };
                self.write(state, key, appended);
                KvOutput::Written
            }
            KvInput::CompareAndSet {
                key,
                expected,
                new_value,
            } => {
                let succeeded = Self::holds(state, key, expected);
                if succeeded {
                    self.write(state, key, new_value.clone());
                }
                KvOutput::CompareAndSet { succeeded }
            }
            KvInput::Transaction(transaction) => {
                let (succeeded, reads) = self.run_transaction(state, transaction);
                KvOutput::Transaction { succeeded, reads }
            }
        }
    }
}

impl Model for KvModel {
    type State = KvState;
    type Input = KvInput;
    type Output = KvOutput;

    fn initial_state(&self, _partition: &Partition) -> KvState {
        KvState::default()
    }

    /// The store is deterministic: an answer is allowed exactly when it is the one a correct
    /// store would give. An unknown answer matches whatever the store would give.
    fn step(&self, state: &KvState, input: &KvInput, output: Option<&KvOutput>) -> Option<KvState> {
        if let (KvInput::Get { key }, Some(KvOutput::Read(observed))) = (input, output) {
            // The most common step: answer it without copying the state.
            return (state.0.get(key) == observed.as_ref()).then(|| state.clone());
        }
        let mut next = state.clone();
        let expected = self.apply(&mut next, input);
        match output {
            Some(observed) if *observed != expected => None,
            _ => Some(next),
        }
    }

    /// One partition per group of keys that operations connect: a transaction over several
    /// keys joins their groups (union-find); single-key operations never join anything.
    fn partition(&self, history: &History<KvInput, KvOutput>) -> Vec<Partition> {
        let mut key_indexes: BTreeMap<&Key, usize> = BTreeMap::new();
        let mut groups = UnionFind::new();
        let mut first_key_of_operation: Vec<Option<usize>> = Vec::with_capacity(history.len());
        for operation in history.operations() {
            let mut first = None;
            for key in operation.input.keys() {
                let index = *key_indexes.entry(key).or_insert_with(|| groups.add());
                match first {
                    None => first = Some(index),
                    Some(first) => groups.union(first, index),
                }
            }
            first_key_of_operation.push(first);
        }
        let mut keys_of_group: BTreeMap<usize, Vec<&Key>> = BTreeMap::new();
        for (&key, &index) in &key_indexes {
            keys_of_group
                .entry(groups.find(index))
                .or_default()
                .push(key);
        }
        let mut operations_of_group: BTreeMap<Option<usize>, Vec<OperationId>> = BTreeMap::new();
        for (position, first) in first_key_of_operation.into_iter().enumerate() {
            let group = first.map(|index| groups.find(index));
            operations_of_group
                .entry(group)
                .or_default()
                .push(OperationId(position));
        }
        operations_of_group
            .into_iter()
            .map(|(group, operations)| Partition {
                label: group.map_or(String::from("(no keys)"), |root| {
                    label_of_keys(&keys_of_group[&root])
                }),
                operations,
            })
            .collect()
    }
}

/// "key /a", or "keys /a, /b and 3 more".
fn label_of_keys(keys: &[&Key]) -> String {
    if let [key] = keys {
        return format!("key {key}");
    }
    let shown: Vec<String> = keys
        .iter()
        .take(LABEL_KEYS_MAX)
        .map(|key| key.to_string())
        .collect();
    let mut label = format!("keys {}", shown.join(", "));
    if keys.len() > LABEL_KEYS_MAX {
        label.push_str(&format!(" and {} more", keys.len() - LABEL_KEYS_MAX));
    }
    label
}
