//! The KV workload's requests: drawing one at random, and translating it and the store's
//! answer into the checker's [`KvInput`] / [`KvOutput`].
//!
//! Everything here is pure. Keys live in two directories, `/kv/d0` and `/kv/d1`, of a few keys
//! each, so clients collide constantly; lists and transactions stay inside one directory, so
//! the checker can still split the history into two independent partitions.
//!
//! How store requests map onto the checker's operations (the model knows get, put, delete,
//! cas and transactions; everything else is expressed with those):
//!
//! | store request | checker input | store answer → checker output |
//! |---|---|---|
//! | get (ReadIndex) | `Get` | value or `not_found` → `Read` |
//! | put | transaction `[] ⇒ put k; get k` | `Written { version }` → the value at that version |
//! | delete | transaction `[k absent] ⇒ [] / [delete k]` | `not_found` → success, `Deleted` → failure |
//! | compare-and-set | `CompareAndSet` | `Written` → true, `version_mismatch` → false |
//! | list (ReadIndex) | transaction of gets over every key of the directory | the listing |
//! | transaction | the same transaction | `succeeded` and the results of its gets |

use crate::linearizability::kv::{
    Comparison, Expectation, Key, KvInput, KvOutput, Transaction as CheckedTransaction,
    TransactionStep, Value, Versioned,
};
use rafting_core::store::{
    Compare, CompareTarget, KeyValue, ListQuery, Operation, Outcome, Query, ReadAnswer, Relation,
    Response, StoreError, TenantId, Transaction, TransactionOperation, TransactionResult,
};
use rand::Rng;

/// Directories of the key set.
const DIRECTORIES: u64 = 2;
/// Versions a compare-and-set or a transaction comparison may expect (0: absent).
const EXPECTED_VERSION_MAX: u64 = 4;

/// One logical KV request of a client, as sent (every attempt sends the same one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvRequest {
    /// A write through the log, with the checker's view of it.
    Write {
        operation: Operation,
        input: KvInput,
    },
    /// A linearizable read (ReadIndex), with the checker's view of it.
    Read { query: Query, input: KvInput },
}

impl KvRequest {
    pub fn input(&self) -> &KvInput {
        match self {
            KvRequest::Write { input, .. } | KvRequest::Read { input, .. } => input,
        }
    }

    /// The same request in `tenant`'s key space. (A write's tenant goes with the write; the
    /// checked input stays as it is, since each tenant's history is checked on its own.)
    pub fn in_tenant(mut self, tenant: TenantId) -> KvRequest {
        if let KvRequest::Read { query, .. } = &mut self {
            match query {
                Query::Get { tenant: asked, .. } => *asked = tenant,
                Query::List(list) => list.tenant = tenant,
                _ => {}
            }
        }
        self
    }
}

/// The key `position` of directory `directory`.
pub fn key_name(directory: u64, position: u64) -> String {
    format!("/kv/d{directory}/k{position}")
}

fn directory_name(directory: u64) -> String {
    format!("/kv/d{directory}")
}

/// Draws one request over the key set. `value` is unique to this request.
pub fn draw_request(random: &mut impl Rng, keys_per_directory: u64, value: &[u8]) -> KvRequest {
    draw_request_in(random, KeySet::plain(keys_per_directory), value)
}

/// The keys a client picks from, and the kinds of comparison it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySet {
    pub keys_per_directory: u64,
    /// `Workload::kv_edge_cases`: each directory's own name is a key too (`/kv/d0` beside
    /// `/kv/d0/k0`), and so is a key that sorts between it and its subtree (`/kv/d0-b`, since
    /// `-` sorts before `/`), so listing cursors meet a prefix that is a key and a key outside
    /// the subtree right before it. Transactions also compare versions with `Greater` and
    /// `Less` and compare values (an absent key has no value).
    pub edge_cases: bool,
}

impl KeySet {
    pub fn plain(keys_per_directory: u64) -> KeySet {
        KeySet {
            keys_per_directory,
            edge_cases: false,
        }
    }

    /// Keys a client may pick in one directory (the listed ones first).
    fn keys(&self) -> u64 {
        self.keys_per_directory + if self.edge_cases { 2 } else { 0 }
    }

    fn key(&self, directory: u64, position: u64) -> String {
        match position.checked_sub(self.keys_per_directory) {
            None => key_name(directory, position),
            Some(0) => directory_name(directory),
            Some(_) => format!("{}-b", directory_name(directory)),
        }
    }

    /// The keys a listing of `directory` holds: its own name, if that is a key, and the keys
    /// below it (never the `-b` key beside it).
    fn listed(&self, directory: u64) -> Vec<String> {
        let mut keys: Vec<String> = (0..self.keys_per_directory)
            .map(|position| key_name(directory, position))
            .collect();
        if self.edge_cases {
            keys.insert(0, directory_name(directory));
        }
        keys
    }
}

/// Draws one request over `keys`. `value` is unique to this request.
pub fn draw_request_in(random: &mut impl Rng, keys: KeySet, value: &[u8]) -> KvRequest {
    let directory = random.random_range(0..DIRECTORIES);
    let pick_key =
        |random: &mut dyn rand::RngCore| keys.key(directory, random.random_range(0..keys.keys()));
    let key = pick_key(random);
    match random.random_range(0..100u32) {
        0..30 => get(&key),
        30..52 => put(&key, value),
        52..62 => delete(&key),
        62..80 => {
            let expected = random.random_range(0..=EXPECTED_VERSION_MAX);
            compare_and_set(&key, expected, value)
        }
        80..88 => list(directory, &keys.listed(directory)),
        _ => {
            let other = pick_key(random);
            let expected = random.random_range(0..=EXPECTED_VERSION_MAX);
            let compare = if keys.edge_cases {
                draw_compare(random, expected, value)
            } else {
                TransactionCompare::VersionEqual(expected)
            };
            transaction(&key, compare, &other, value)
        }
    }
}

/// What a transaction compares its first key with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TransactionCompare {
    VersionEqual(u64),
    VersionGreater(u64),
    VersionLess(u64),
    /// The key holds this value (never true of an absent key).
    ValueEqual(Vec<u8>),
}

fn draw_compare(random: &mut impl Rng, version: u64, value: &[u8]) -> TransactionCompare {
    match random.random_range(0..4u32) {
        0 => TransactionCompare::VersionEqual(version),
        1 => TransactionCompare::VersionGreater(version),
        2 => TransactionCompare::VersionLess(version),
        _ => TransactionCompare::ValueEqual(value.to_vec()),
    }
}

impl TransactionCompare {
    /// The store's compare and the checker's expectation.
    fn translate(&self, key: &str) -> (Compare, Expectation) {
        let (relation, target, expected) = match self {
            TransactionCompare::VersionEqual(version) => (
                Relation::Equal,
                CompareTarget::Version(*version),
                expectation(*version),
            ),
            TransactionCompare::VersionGreater(version) => (
                Relation::Greater,
                CompareTarget::Version(*version),
                Expectation::VersionAbove(*version),
            ),
            TransactionCompare::VersionLess(version) => (
                Relation::Less,
                CompareTarget::Version(*version),
                Expectation::VersionBelow(*version),
            ),
            TransactionCompare::ValueEqual(value) => (
                Relation::Equal,
                CompareTarget::Value(value.clone()),
                Expectation::Value(Value::new(value)),
            ),
        };
        let compare = Compare {
            key: key.to_owned(),
            relation,
            target,
        };
        (compare, expected)
    }
}

fn get(key: &str) -> KvRequest {
    KvRequest::Read {
        query: Query::Get {
            tenant: TenantId::DEFAULT,
            key: key.to_owned(),
        },
        input: KvInput::Get { key: Key::new(key) },
    }
}

fn put(key: &str, value: &[u8]) -> KvRequest {
    let checked = Key::new(key);
    KvRequest::Write {
        operation: Operation::put(key, value),
        input: KvInput::Transaction(CheckedTransaction {
            comparisons: Vec::new(),
            on_success: vec![
                TransactionStep::Put {
                    key: checked.clone(),
                    value: Value::new(value),
                },
                TransactionStep::Get { key: checked },
            ],
            on_failure: Vec::new(),
        }),
    }
}

fn delete(key: &str) -> KvRequest {
    let checked = Key::new(key);
    KvRequest::Write {
        operation: Operation::delete(key),
        input: KvInput::Transaction(CheckedTransaction {
            comparisons: vec![Comparison {
                key: checked.clone(),
                expected: Expectation::Absent,
            }],
            on_success: Vec::new(),
            on_failure: vec![TransactionStep::Delete { key: checked }],
        }),
    }
}

fn expectation(version: u64) -> Expectation {
    match version {
        0 => Expectation::Absent,
        version => Expectation::Version(version),
    }
}

fn compare_and_set(key: &str, expected_version: u64, value: &[u8]) -> KvRequest {
    KvRequest::Write {
        operation: Operation::compare_and_set(key, expected_version, value),
        input: KvInput::CompareAndSet {
            key: Key::new(key),
            expected: expectation(expected_version),
            new_value: Value::new(value),
        },
    }
}

fn list(directory: u64, listed: &[String]) -> KvRequest {
    let on_success = listed
        .iter()
        .map(|key| TransactionStep::Get { key: Key::new(key) })
        .collect();
    KvRequest::Read {
        query: Query::List(ListQuery::new(&directory_name(directory))),
        input: KvInput::Transaction(CheckedTransaction {
            comparisons: Vec::new(),
            on_success,
            on_failure: Vec::new(),
        }),
    }
}

/// If `key` passes `compare`: put `value` there and read `other`; otherwise read `key` and
/// delete `other`.
fn transaction(key: &str, compare: TransactionCompare, other: &str, value: &[u8]) -> KvRequest {
    let (compare, expected) = compare.translate(key);
    let store = Transaction {
        compares: vec![compare],
        success: vec![
            TransactionOperation::Put {
                key: key.to_owned(),
                value: value.to_vec(),
                session: None,
            },
            TransactionOperation::Get {
                key: other.to_owned(),
            },
        ],
        failure: vec![
            TransactionOperation::Get {
                key: key.to_owned(),
            },
            TransactionOperation::Delete {
                key: other.to_owned(),
            },
        ],
    };
    let (key, other) = (Key::new(key), Key::new(other));
    let checked = CheckedTransaction {
        comparisons: vec![Comparison {
            key: key.clone(),
            expected,
        }],
        on_success: vec![
            TransactionStep::Put {
                key,
                value: Value::new(value),
            },
            TransactionStep::Get { key: other.clone() },
        ],
        on_failure: vec![
            TransactionStep::Get {
                key: key_of(&store.failure[0]),
            },
            TransactionStep::Delete { key: other },
        ],
    };
    KvRequest::Write {
        operation: rafting_core::store::Operation::Transaction(store),
        input: KvInput::Transaction(checked),
    }
}

fn key_of(operation: &TransactionOperation) -> Key {
    match operation {
        TransactionOperation::Get { key }
        | TransactionOperation::Put { key, .. }
        | TransactionOperation::Delete { key } => Key::new(key),
    }
}

fn versioned(found: &KeyValue) -> Versioned {
    Versioned {
        value: Value::new(found.value.as_deref().unwrap_or_default()),
        version: found.version,
    }
}

/// Why a store answer could not be turned into a checker output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Untranslatable {
    /// The store refused the request without deciding it (an evicted client record, a
    /// forgotten sequence): the outcome stays unknown.
    Undecided(StoreError),
    /// The answer does not fit the request: a bug in the store or in this mapping.
    Mismatch(String),
}

/// The checker's view of a write's answer.
pub fn write_output(input: &KvInput, response: &Response) -> Result<KvOutput, Untranslatable> {
    let mismatch = || Untranslatable::Mismatch(format!("{input:?} answered {response:?}"));
    match (input, response) {
        (_, Err(error @ (StoreError::UnknownClient { .. } | StoreError::StaleRequest { .. }))) => {
            Err(Untranslatable::Undecided(error.clone()))
        }
        // A tenant's write refused by a stored cap when applied: it changed nothing, which the
        // checker's model cannot say of a put, so it is recorded as maybe-applied (sound, if
        // less strict; `tenant_caps` and `applied_answers_agree` judge the refusal itself).
        (_, Err(error @ StoreError::QuotaExceeded { .. })) => {
            Err(Untranslatable::Undecided(error.clone()))
        }
        (KvInput::CompareAndSet { .. }, Ok(Outcome::Written { .. })) => {
            Ok(KvOutput::CompareAndSet { succeeded: true })
        }
        (KvInput::CompareAndSet { .. }, Err(StoreError::VersionMismatch { .. })) => {
            Ok(KvOutput::CompareAndSet { succeeded: false })
        }
        (KvInput::Transaction(checked), _) => {
            transaction_output(checked, response).ok_or_else(mismatch)
        }
        _ => Err(mismatch()),
    }
}

/// Puts, deletes and transactions are all transactions to the checker.
fn transaction_output(checked: &CheckedTransaction, response: &Response) -> Option<KvOutput> {
    let is_delete = checked.on_success.is_empty()
        && matches!(
            checked.on_failure.as_slice(),
            [TransactionStep::Delete { .. }]
        );
    match response {
        Ok(Outcome::Written { version, .. }) => {
            let [
                TransactionStep::Put { value, .. },
                TransactionStep::Get { .. },
            ] = checked.on_success.as_slice()
            else {
                return None;
            };
            let read = Versioned {
                value: value.clone(),
                version: *version,
            };
            Some(KvOutput::Transaction {
                succeeded: true,
                reads: vec![Some(read)],
            })
        }
        Ok(Outcome::Deleted { .. }) if is_delete => Some(KvOutput::Transaction {
            succeeded: false,
            reads: Vec::new(),
        }),
        Err(StoreError::NotFound { .. }) if is_delete => Some(KvOutput::Transaction {
            succeeded: true,
            reads: Vec::new(),
        }),
        Ok(Outcome::Transaction {
            succeeded, results, ..
        }) => {
            let reads = results
                .iter()
                .filter_map(|result| match result {
                    TransactionResult::Got(found) => Some(found.as_ref().map(versioned)),
                    _ => None,
                })
                .collect();
            Some(KvOutput::Transaction {
                succeeded: *succeeded,
                reads,
            })
        }
        _ => None,
    }
}

/// The checker's view of a read's answer.
pub fn read_output(
    input: &KvInput,
    answer: &Result<ReadAnswer, StoreError>,
) -> Result<KvOutput, Untranslatable> {
    match (input, answer) {
        (KvInput::Get { .. }, Ok(ReadAnswer::Value(found))) => {
            Ok(KvOutput::Read(Some(versioned(found))))
        }
        (KvInput::Get { .. }, Err(StoreError::NotFound { .. })) => Ok(KvOutput::Read(None)),
        (KvInput::Transaction(checked), Ok(ReadAnswer::List(listing))) => {
            // A listing holds exactly the keys asked for, where they exist: a key outside the
            // directory (`/kv/d0-b` beside `/kv/d0/k0`) is a wrong answer, not an extra.
            let outside = listing.entries.iter().find(|entry| {
                !checked
                    .on_success
                    .iter()
                    .any(|step| *step.key().0 == *entry.key)
            });
            if let Some(outside) = outside {
                return Err(Untranslatable::Mismatch(format!(
                    "{input:?} listed {} outside the directory",
                    outside.key
                )));
            }
            let reads = checked
                .on_success
                .iter()
                .map(|step| {
                    let wanted = step.key();
                    listing
                        .entries
                        .iter()
                        .find(|entry| *entry.key == *wanted.0)
                        .map(versioned)
                })
                .collect();
            Ok(KvOutput::Transaction {
                succeeded: true,
                reads,
            })
        }
        _ => Err(Untranslatable::Mismatch(format!(
            "{input:?} answered {answer:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::kv::KvModel;
    use rafting_core::LogIndex;
    use rafting_core::store::{ClientId, Command, Request, Store};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    // Every drawn request, applied to a real store in sequence, gets exactly the answer the
    // checker's model predicts: the mapping between the two is faithful.
    #[test]
    fn store_answers_match_the_model_sequentially() {
        answers_match_the_model(KeySet::plain(3));
    }

    // The same with directory keys, keys beside a subtree, and every kind of comparison.
    #[test]
    fn store_answers_match_the_model_with_edge_cases() {
        answers_match_the_model(KeySet {
            keys_per_directory: 3,
            edge_cases: true,
        });
    }

    fn answers_match_the_model(keys: KeySet) {
        let mut random = ChaCha8Rng::seed_from_u64(7);
        let mut store = Store::default();
        let client = ClientId(1);
        assert!(
            store
                .apply(LogIndex(1), &Command::RegisterClient.encode())
                .is_ok()
        );
        let model = KvModel::default();
        let mut state = Default::default();
        for sequence in 1..=2_000u64 {
            let value = format!("v{sequence}");
            let request = draw_request_in(&mut random, keys, value.as_bytes());
            let expected = model.apply(&mut state, request.input());
            let observed = match &request {
                KvRequest::Write { operation, input } => {
                    let command = Command::Request(
                        Request::new(client, sequence, operation.clone())
                            .acknowledging_below(sequence),
                    );
                    let response = store.apply(LogIndex(sequence + 1), &command.encode());
                    write_output(input, &response).unwrap()
                }
                KvRequest::Read { query, input } => read_output(input, &store.read(query)).unwrap(),
            };
            assert_eq!(observed, expected, "request {sequence}: {request:?}");
        }
    }
}
