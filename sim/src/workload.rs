//! Simulated clients and the history they record.
//!
//! Each client runs one request at a time: it sends a write with a unique payload to the
//! replica of the node it believes leads, waits for the answer, then thinks for a while. A
//! request refused by a non-leader is retried at the hinted leader; one unanswered within the
//! timeout, or whose leader lost leadership, is recorded as "maybe happened" (never as
//! "failed") and retried as a new request. The history of invocations and outcomes is what
//! the end-of-seed checks read.

use rafting_core::LogIndex;
use serde::Serialize;

/// What became of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pending,
    /// Committed at this index; the client was told so.
    Committed {
        index: u64,
    },
    /// Certainly not applied (refused before entering any log).
    Failed,
    /// Maybe applied, maybe not: timed out, or the leader lost leadership.
    Unknown,
}

/// One request as a client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operation {
    pub id: u64,
    pub client: u64,
    pub node: u64,
    /// The opaque workload's unique value, or a KV client's encoded store command.
    pub payload: Vec<u8>,
    pub invoked_us: u64,
    pub completed_us: Option<u64>,
    pub outcome: Outcome,
}

/// Every request of one seed, in invocation order (operation id = position + 1).
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    pub operations: Vec<Operation>,
}

impl History {
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Operation> {
        let position = usize::try_from(id).ok()?.checked_sub(1)?;
        self.operations.get_mut(position)
    }

    pub fn get(&self, id: u64) -> Option<&Operation> {
        let position = usize::try_from(id).ok()?.checked_sub(1)?;
        self.operations.get(position)
    }

    /// Starts a new request with a unique opaque payload; returns its id.
    pub fn invoke(&mut self, client: u64, node: u64, now_us: u64) -> u64 {
        let id = self.operations.len() as u64 + 1;
        // `client{client}-op{id}`, built without the formatting machinery (once per request).
        let mut digits = [0; DECIMAL_DIGITS_MAX];
        let mut payload = Vec::with_capacity(32);
        payload.extend_from_slice(b"client");
        payload.extend_from_slice(decimal(client, &mut digits).as_bytes());
        payload.extend_from_slice(b"-op");
        payload.extend_from_slice(decimal(id, &mut digits).as_bytes());
        self.invoke_with_payload(client, node, now_us, payload)
    }

    /// Starts a new request proposing `payload` (a KV client's encoded store command).
    pub fn invoke_with_payload(
        &mut self,
        client: u64,
        node: u64,
        now_us: u64,
        payload: Vec<u8>,
    ) -> u64 {
        let id = self.operations.len() as u64 + 1;
        self.operations.push(Operation {
            id,
            client,
            node,
            payload,
            invoked_us: now_us,
            completed_us: None,
            outcome: Outcome::Pending,
        });
        id
    }

    /// Settles a pending request; a settled one keeps its first outcome.
    pub fn complete(&mut self, id: u64, outcome: Outcome, now_us: u64) -> bool {
        match self.get_mut(id) {
            Some(operation) if operation.outcome == Outcome::Pending => {
                operation.outcome = outcome;
                operation.completed_us = Some(now_us);
                true
            }
            _ => false,
        }
    }

    /// Requests committed at an index, for the end-of-run check.
    pub fn committed(&self) -> impl Iterator<Item = (LogIndex, &Operation)> {
        self.operations
            .iter()
            .filter_map(|operation| match operation.outcome {
                Outcome::Committed { index } => Some((LogIndex(index), operation)),
                _ => None,
            })
    }
}

/// One client's state.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: u64,
    /// Position of the node it sends to.
    pub target: usize,
    /// Its request in flight, if any.
    pub current: Option<u64>,
    /// True until its last request committed; in the liveness phase it must become false.
    pub unfinished: bool,
}

/// The most decimal digits a `u64` has.
pub(crate) const DECIMAL_DIGITS_MAX: usize = 20;

/// `number` in decimal, as `format!("{number}")` writes it, in `buffer`: the simulator builds
/// a payload and a key for every request, and the formatting machinery cost more than the
/// rest of building them.
pub(crate) fn decimal(mut number: u64, buffer: &mut [u8; DECIMAL_DIGITS_MAX]) -> &str {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    std::str::from_utf8(&buffer[start..]).expect("decimal digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    // A request keeps its first outcome: a late timeout never overwrites a commit.
    #[test]
    fn first_outcome_sticks() {
        let mut history = History::default();
        let id = history.invoke(1, 2, 100);
        assert!(history.complete(id, Outcome::Committed { index: 4 }, 200));
        assert!(!history.complete(id, Outcome::Unknown, 300));
        assert_eq!(
            history.get(id).unwrap().outcome,
            Outcome::Committed { index: 4 }
        );
        assert_eq!(history.committed().count(), 1);
    }

    // The digits are the ones `format!` writes, at both ends of the range.
    #[test]
    fn decimal_writes_what_format_writes() {
        let mut buffer = [0; DECIMAL_DIGITS_MAX];
        for number in [0, 7, 10, 99, 1_000_000_007, u64::MAX] {
            assert_eq!(decimal(number, &mut buffer), number.to_string());
        }
    }
}
