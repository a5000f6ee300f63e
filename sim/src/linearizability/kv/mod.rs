//! The key-value model: the store's operations as the checker sees them, their sequential
//! specification, a per-key-group partition, and a generator of linearizable histories.

mod generator;
mod model;
mod types;
mod union_find;

pub use generator::{GeneratorConfig, generate_history};
pub use model::{KvModel, KvState};
pub use types::{
    Comparison, Expectation, Key, KvInput, KvOutput, Transaction, TransactionStep, Value, Versioned,
};
