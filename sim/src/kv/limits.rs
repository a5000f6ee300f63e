//! The store's own limits as a swarm: a scenario's `[store]` ranges draw, per seed, the
//! `StoreConfig` every node runs with (the largest value, the most operations in a
//! transaction, the events and bytes of the watch history), so that limits the workloads never
//! approach at their defaults are reached; and the `store_limits` check that they hold.
//!
//! The check reads a node's store as a client would, plus what the simulator knows:
//! - the watch history keeps at most its events and bytes (bytes counted here, by the size
//!   `Event::size_bytes` documents), and drops no more than a bound forces it to;
//! - requests at a limit are accepted and one past it refused with its stable code: a value of
//!   exactly `value_bytes_max` and one byte more, a transaction of exactly
//!   `transaction_operations_max` compares and operations and one more. These are applied to
//!   a copy of the node's store, as the next entry of its log would be, so the run goes on
//!   unchanged;
//! - a malformed key is refused naming the key, cut to the length core bounds error texts to;
//! - every client the workload registered (and the node has applied) has its exactly-once
//!   record, and a client id the log never gave has none.

use crate::checkers::Violation;
use crate::scenario::Span;
use rafting_core::LogIndex;
use rafting_core::NodeId;
use rafting_core::store::{
    ClientId, Command, Compare, CompareTarget, Operation, Outcome, Query, ReadAnswer, Relation,
    Request, Response, Revision, Store, StoreConfig, StoreError, TenantId, Transaction,
    TransactionOperation, WatchQuery,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

pub mod check {
    /// The store keeps its drawn limits and answers requests at and past them rightly.
    pub const STORE_LIMITS: &str = "store_limits";
}

/// The most characters of a refused key an `invalid_key` error shows, as core bounds its
/// error texts (so a megabyte-long key does not make a megabyte-long error).
const ERROR_KEY_CHARS_MAX: usize = 128;

/// What an event counts for against the history's byte bound, as `Event::size_bytes`
/// documents it: a fixed overhead plus its key and value.
const EVENT_OVERHEAD_BYTES: u64 = 48;

/// A scenario's `[store]` section: ranges of the store limits each seed draws. Every default
/// is the store's own default, fixed, which draws nothing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreRanges {
    pub value_bytes_max: Span<u64>,
    pub transaction_operations_max: Span<u64>,
    pub watch_history_events_max: Span<u64>,
    pub watch_history_bytes_max: Span<u64>,
}

impl Default for StoreRanges {
    fn default() -> Self {
        let defaults = StoreConfig::default();
        StoreRanges {
            value_bytes_max: Span::Exactly(defaults.value_bytes_max as u64),
            transaction_operations_max: Span::Exactly(defaults.transaction_operations_max as u64),
            watch_history_events_max: Span::Exactly(defaults.watch_history_events_max as u64),
            watch_history_bytes_max: Span::Exactly(defaults.watch_history_bytes_max as u64),
        }
    }
}

impl StoreRanges {
    /// The store configuration of `seed`. Drawn from a generator of its own, so that the
    /// draws never shift another stream (and scenarios without ranges draw nothing).
    pub fn draw(&self, seed: u64, planted_keys_cap_unchecked: bool) -> StoreConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5707_E11A_1175_0000);
        let mut draw =
            |span: Span<u64>| crate::params::draw_u64(&mut rng, span.low(), span.high()) as usize;
        StoreConfig {
            value_bytes_max: draw(self.value_bytes_max),
            transaction_operations_max: draw(self.transaction_operations_max),
            watch_history_events_max: draw(self.watch_history_events_max),
            watch_history_bytes_max: draw(self.watch_history_bytes_max),
            planted_keys_cap_unchecked,
            ..StoreConfig::default()
        }
    }
}

/// `store_limits` on `node`'s store, against the limits the seed drew (`limits`; the store's
/// own configuration when run by the simulator) and the client ids the workload registered.
pub fn store_limits(
    node: NodeId,
    store: &Store,
    limits: &StoreConfig,
    registered: &[ClientId],
) -> Result<(), Violation> {
    let detail = history_within_limits(store, limits)
        .or_else(|| requests_at_limits(store, limits))
        .or_else(|| refusals_name_the_key(store, ERROR_KEY_CHARS_MAX))
        .or_else(|| clients_recorded(store, registered));
    detail.map_or(Ok(()), |detail| {
        Err(Violation {
            check: check::STORE_LIMITS,
            at_us: 0,
            nodes: vec![node.get()],
            index: None,
            term: None,
            detail,
        })
    })
}

/// The retained history holds at most its events and bytes; and once it has dropped events
/// (its oldest complete revision is past 1), it is full by one bound or the other: as many
/// events as allowed, or too many bytes to hold one more of the largest event.
fn history_within_limits(store: &Store, limits: &StoreConfig) -> Option<String> {
    let (events_held, oldest) = store.watch_history();
    let (events_read, bytes) = match history_bytes(store, oldest) {
        Ok(read) => read,
        Err(detail) => return Some(detail),
    };
    let events_max = limits.watch_history_events_max;
    let bytes_max = limits.watch_history_bytes_max as u64;
    if events_held > events_max {
        return Some(format!(
            "the watch history holds {events_held} events, above its cap of {events_max}"
        ));
    }
    // Events of other tenants are not read; the byte count is only whole without them.
    if events_read != events_held {
        return None;
    }
    if bytes > bytes_max {
        return Some(format!(
            "the watch history holds {bytes} bytes of events, above its cap of {bytes_max}"
        ));
    }
    let event_bytes_max =
        EVENT_OVERHEAD_BYTES + (limits.key_bytes_max + limits.value_bytes_max) as u64;
    let dropped = oldest > Revision::new(1);
    if dropped && events_held < events_max && bytes + event_bytes_max <= bytes_max {
        return Some(format!(
            "the watch history dropped the revisions before {oldest} but holds only \
             {events_held} events ({bytes} bytes) of its caps {events_max} ({bytes_max} bytes)"
        ));
    }
    None
}

/// The default tenant's retained events from `oldest` on, counted and sized.
fn history_bytes(store: &Store, oldest: Revision) -> Result<(usize, u64), String> {
    let mut since = oldest;
    let (mut events, mut bytes) = (0, 0);
    loop {
        let query = Query::Watch(WatchQuery {
            tenant: TenantId::DEFAULT,
            prefix: String::from("/"),
            since,
            limit: 0,
        });
        let batch = match store.read(&query) {
            Ok(ReadAnswer::Watch(batch)) => batch,
            other => return Err(format!("watching / from {since} gave {other:?}")),
        };
        for event in &batch.events {
            let value_bytes = match &event.kind {
                rafting_core::store::EventKind::Put { value, .. } => value.len(),
                rafting_core::store::EventKind::Delete => 0,
            };
            bytes += EVENT_OVERHEAD_BYTES + (event.key.len() + value_bytes) as u64;
        }
        events += batch.events.len();
        if batch.next_since <= since || batch.events.is_empty() {
            return Ok((events, bytes));
        }
        since = batch.next_since;
    }
}

/// Requests at each limit are applied; one past it is refused with its stable code. They are
/// applied to one copy of the store as its next log entries, unnumbered, by one client
/// registered there: the refusals and the transaction (compares and gets) change nothing a
/// later probe depends on, so they go first and the write last, and each request meets the
/// store as it was. (A copy per probe cost a tenth of the simulator's time.)
fn requests_at_limits(store: &Store, limits: &StoreConfig) -> Option<String> {
    let value_bytes_max = limits.value_bytes_max;
    let operations_max = limits.transaction_operations_max;
    let probes = [
        (
            "a value past value_bytes_max",
            put_of(value_bytes_max + 1),
            Some("too_large"),
        ),
        (
            "a transaction past transaction_operations_max",
            transaction_of(operations_max + 1),
            Some("invalid_request"),
        ),
        (
            "a transaction of transaction_operations_max",
            transaction_of(operations_max),
            None,
        ),
        ("a value of value_bytes_max", put_of(value_bytes_max), None),
    ];
    let mut copy = store.clone();
    let next = copy.last_applied().get() + 1;
    let client = match copy.apply_command(LogIndex(next), Command::RegisterClient) {
        Ok(Outcome::ClientRegistered { client }) => client,
        other => return Some(format!("registering a client gave {}", describe(&other))),
    };
    for (sequence, (what, operation, refusal)) in (1..).zip(probes) {
        let request = Request::new(client, sequence, operation).acknowledging_below(sequence);
        let response = copy.apply_command(LogIndex(next + sequence), Command::Request(request));
        let refused = response.as_ref().err().map(|error| error.code());
        if refused != refusal {
            return Some(format!(
                "{what} (value_bytes_max {value_bytes_max}, transaction_operations_max \
                 {operations_max}) was answered {}, not {}",
                describe(&response),
                refusal.unwrap_or("accepted")
            ));
        }
    }
    None
}

/// A malformed key is refused with an `invalid_key` error naming it, cut to its first
/// `shown_chars_max` characters: a short one whole, a long one (within the key length cap)
/// cut.
fn refusals_name_the_key(store: &Store, shown_chars_max: usize) -> Option<String> {
    let long = format!("/{}/..", "k".repeat(200));
    for key in ["/kv/./d0", long.as_str()] {
        let expected: String = key.chars().take(shown_chars_max).collect();
        match store.get(TenantId::DEFAULT, key) {
            Err(StoreError::InvalidKey { key: shown, .. }) if shown == expected => {}
            other => {
                return Some(format!(
                    "get {key:?} gave {other:?}, not an invalid_key error naming {expected:?}"
                ));
            }
        }
    }
    None
}

fn describe(response: &Response) -> String {
    match response {
        Ok(Outcome::Written { .. }) => String::from("written"),
        Ok(Outcome::Transaction { succeeded, .. }) => format!("a transaction ({succeeded})"),
        Ok(other) => format!("{other:?}"),
        Err(error) => format!("{} ({error})", error.code()),
    }
}

const PROBE_KEY: &str = "/limits/probe";

fn put_of(value_bytes: usize) -> Operation {
    Operation::Put {
        key: String::from(PROBE_KEY),
        value: vec![b'v'; value_bytes],
        session: None,
    }
}

/// A transaction of exactly `operations` compares and operations: one compare, the rest split
/// between its two branches (each branch counts, taken or not).
fn transaction_of(operations: usize) -> Operation {
    let compare = Compare {
        key: String::from(PROBE_KEY),
        relation: Relation::Equal,
        target: CompareTarget::Version(0),
    };
    let get = TransactionOperation::Get {
        key: String::from(PROBE_KEY),
    };
    let branches = operations.saturating_sub(1);
    let failure = branches / 2;
    Operation::Transaction(Transaction {
        compares: vec![compare],
        success: vec![get.clone(); branches - failure],
        failure: vec![get; failure],
    })
}

/// Every registered client the store has applied has its record; an id past the store's
/// last applied entry (client ids are log indexes) has none; the count covers them all.
fn clients_recorded(store: &Store, registered: &[ClientId]) -> Option<String> {
    let applied = store.last_applied().get();
    let known: Vec<ClientId> = registered
        .iter()
        .copied()
        .filter(|client| client.get() <= applied)
        .collect();
    if let Some(missing) = known.iter().find(|client| !store.has_client(**client)) {
        return Some(format!(
            "client {missing} registered at or before entry {applied} has no record"
        ));
    }
    let never = ClientId::new(applied + 1);
    if store.has_client(never) {
        return Some(format!(
            "client {never} has a record, but the store has applied only up to {applied}"
        ));
    }
    if store.client_count() < known.len() {
        return Some(format!(
            "the store counts {} client records, but holds {} registered ones",
            store.client_count(),
            known.len()
        ));
    }
    None
}

impl crate::simulator::Simulator<'_, '_> {
    /// Runs [`store_limits`] on the store of the node at `position`, if it runs, against the
    /// seed's drawn limits and the clients the KV workload registered.
    pub(crate) fn check_store_limits(&mut self, position: usize) {
        let host = &self.hosts[position];
        let Some(replica) = host.replica.as_ref() else {
            return;
        };
        let registered: Vec<ClientId> = self
            .kv
            .as_ref()
            .map(|kv| {
                kv.clients
                    .iter()
                    .filter_map(|client| client.record)
                    .collect()
            })
            .unwrap_or_default();
        let result = store_limits(host.id, replica.store(), &host.store_config, &registered);
        self.check(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(config: StoreConfig, puts: u64) -> (Store, Vec<ClientId>) {
        let mut store = Store::new(config);
        let Ok(Outcome::ClientRegistered { client }) =
            store.apply(LogIndex(1), &Command::RegisterClient.encode())
        else {
            panic!("registration applies");
        };
        for sequence in 1..=puts {
            let operation = Operation::put(&format!("/k{}", sequence % 5), b"value");
            let request = Request::new(client, sequence, operation).acknowledging_below(sequence);
            let response = store.apply(LogIndex(sequence + 1), &Command::Request(request).encode());
            assert!(response.is_ok(), "{response:?}");
        }
        (store, vec![client])
    }

    fn small() -> StoreConfig {
        StoreConfig {
            value_bytes_max: 16,
            transaction_operations_max: 4,
            watch_history_events_max: 8,
            watch_history_bytes_max: 4096,
            ..StoreConfig::default()
        }
    }

    // A store run with its own limits passes, with the history past its event cap.
    #[test]
    fn store_limits_passes_a_store_within_its_limits() {
        let config = small();
        let (store, clients) = store_with(config.clone(), 30);
        assert_eq!(store.watch_history().0, 8);
        assert!(store_limits(NodeId(1), &store, &config, &clients).is_ok());
    }

    // Hand-made violations: the store ran with larger limits than the ones checked (a history
    // over its caps, values and transactions accepted past them), or with smaller ones (a
    // history that dropped more than it had to, requests refused at the limit).
    #[test]
    fn store_limits_catches_each_broken_limit() {
        let (roomy, clients) = store_with(StoreConfig::default(), 30);
        let found = store_limits(NodeId(1), &roomy, &small(), &clients).unwrap_err();
        assert_eq!(found.check, check::STORE_LIMITS);
        assert!(
            found.detail.contains("above its cap of 8"),
            "{}",
            found.detail
        );

        let bytes = StoreConfig {
            watch_history_events_max: 100,
            watch_history_bytes_max: 300,
            ..small()
        };
        let found = store_limits(NodeId(1), &roomy, &bytes, &clients).unwrap_err();
        assert!(found.detail.contains("bytes of events"), "{}", found.detail);

        let (tight, clients) = store_with(small(), 30);
        let loose = StoreConfig {
            watch_history_events_max: 9,
            ..small()
        };
        let found = store_limits(NodeId(1), &tight, &loose, &clients).unwrap_err();
        assert!(found.detail.contains("dropped"), "{}", found.detail);

        let values = StoreConfig {
            value_bytes_max: 8,
            ..small()
        };
        let found = store_limits(NodeId(1), &tight, &values, &clients).unwrap_err();
        assert!(
            found.detail.contains("past value_bytes_max"),
            "{}",
            found.detail
        );
        let values = StoreConfig {
            value_bytes_max: 17,
            ..small()
        };
        let found = store_limits(NodeId(1), &tight, &values, &clients).unwrap_err();
        assert!(
            found.detail.contains("of value_bytes_max"),
            "{}",
            found.detail
        );

        let operations = StoreConfig {
            transaction_operations_max: 3,
            ..small()
        };
        let found = store_limits(NodeId(1), &tight, &operations, &clients).unwrap_err();
        assert!(
            found.detail.contains("past transaction"),
            "{}",
            found.detail
        );
        let operations = StoreConfig {
            transaction_operations_max: 5,
            ..small()
        };
        let found = store_limits(NodeId(1), &tight, &operations, &clients).unwrap_err();
        assert!(found.detail.contains("of transaction"), "{}", found.detail);
    }

    // `[store]` ranges too small for the KV workload's own values or transactions are refused
    // when the scenario loads; the shipped ranges load.
    #[test]
    fn store_ranges_too_small_for_the_workload_are_refused() {
        let scenario = |store: &str| {
            let text = format!(
                "name = \"t\"\nprofile = \"relaxed\"\nnodes = 3\nduration_ms = 1000\n\
                 [workload]\nkind = \"kv\"\n[store]\n{store}\n"
            );
            crate::Scenario::parse(&text, std::path::Path::new("t.toml"))
        };
        assert!(
            scenario("value_bytes_max = [24, 256]\ntransaction_operations_max = [5, 16]").is_ok()
        );
        let error = scenario("value_bytes_max = [8, 256]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("store.value_bytes_max"), "{error}");
        let error = scenario("transaction_operations_max = [4, 16]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("store.transaction_operations_max"),
            "{error}"
        );
        let error = scenario("watch_history_events_max = [64, 16]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("store.watch_history_events_max"), "{error}");
    }

    // An invalid-key error that shows the key cut elsewhere than the bound is caught.
    #[test]
    fn refusals_name_the_key_catches_a_wrong_key_shown() {
        let (store, _) = store_with(small(), 1);
        assert!(refusals_name_the_key(&store, ERROR_KEY_CHARS_MAX).is_none());
        let found = refusals_name_the_key(&store, 100).expect("cut at 128, not 100");
        assert!(found.contains("invalid_key"), "{found}");
    }

    // A client the workload registered but the store lost, or one it never gave, is caught.
    #[test]
    fn store_limits_catches_a_wrong_client_record() {
        let config = small();
        let (store, _) = store_with(config.clone(), 3);
        let found = store_limits(
            NodeId(1),
            &store,
            &config,
            &[ClientId::new(1), ClientId::new(2)],
        )
        .unwrap_err();
        assert!(found.detail.contains("no record"), "{}", found.detail);
        assert!(store_limits(NodeId(1), &store, &config, &[ClientId::new(1)]).is_ok());
    }
}
