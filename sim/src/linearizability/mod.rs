//! Linearizability checking of client histories (Wing & Gong search, Porcupine style).
//!
//! How the simulator uses it:
//! 1. Record a [`History`]: [`History::invoke`] when a client sends a request,
//!    [`History::complete`] when it gets a definite answer. Leave an operation uncompleted when
//!    its outcome is unknown (timeout, leader lost, end of run); the checker then lets it take
//!    effect at any point after its invocation, or never.
//! 2. Call [`check`] with a [`Model`] (for the store, [`kv::KvModel`]) and [`CheckOptions`].
//! 3. Read the [`CheckReport`]: [`Verdict::Linearizable`], [`Verdict::NotLinearizable`] with a
//!    [`Violation`] naming the partition (keys) and the few operations whose answers conflict
//!    ([`Violation::explain`] prints them), or [`Verdict::Unknown`] when the deterministic step
//!    budget ran out. `Unknown` is never reported as `Linearizable`.
//!
//! ```
//! use rafting_sim::linearizability::kv::{Key, KvInput, KvModel, KvOutput, Value, Versioned};
//! use rafting_sim::linearizability::{CheckOptions, ClientId, History, Timestamp, check};
//!
//! let mut history = History::new();
//! let key = Key::new("/a");
//! let put = history.invoke(ClientId(1), KvInput::Put { key: key.clone(), value: Value::new(b"1") }, Timestamp(0));
//! history.complete(put, KvOutput::Written, Timestamp(10)).unwrap();
//! let get = history.invoke(ClientId(2), KvInput::Get { key }, Timestamp(20));
//! let read = Versioned { value: Value::new(b"1"), version: 1 };
//! history.complete(get, KvOutput::Read(Some(read)), Timestamp(30)).unwrap();
//! let report = check(&KvModel::default(), &history, &CheckOptions::default());
//! assert!(report.verdict.is_linearizable());
//! ```

mod checker;
mod explanation;
mod history;
pub mod kv;
mod model;
mod search;

pub use checker::{CheckOptions, CheckReport, Verdict, Violation, check};
pub use history::{ClientId, Completion, History, HistoryError, Operation, OperationId, Timestamp};
pub use model::{Model, Partition};
