//! A small driver for store tests: it plays the log, numbering entries and requests.

#![allow(dead_code)]

use rafting_core::store::{
    ClientId, Command, Operation, Outcome, Request, Response, Store, StoreConfig, TenantId, Tick,
};
use rafting_core::{LogIndex, Millis, Term};

/// A store plus the bookkeeping a leader and one client would do: the next log index, the
/// client's id and its next request number.
pub struct Harness {
    pub store: Store,
    pub index: u64,
    pub client: ClientId,
    pub sequence: u64,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(StoreConfig::default())
    }

    /// A store with `config` and one registered client.
    pub fn with_config(config: StoreConfig) -> Harness {
        let mut harness = Harness {
            store: Store::new(config),
            index: 0,
            client: ClientId::new(0),
            sequence: 0,
        };
        harness.client = harness.register();
        harness
    }

    /// Applies a command at the next index, through its byte encoding, as Raft would.
    pub fn apply(&mut self, command: &Command) -> Response {
        self.index += 1;
        self.store
            .apply(LogIndex::new(self.index), &command.encode())
    }

    pub fn register(&mut self) -> ClientId {
        match self.apply(&Command::RegisterClient) {
            Ok(Outcome::ClientRegistered { client }) => client,
            other => panic!("registration failed: {other:?}"),
        }
    }

    /// The client's next request, in `tenant`.
    pub fn request_in(&mut self, tenant: TenantId, operation: Operation) -> Response {
        self.sequence += 1;
        let request = Request::new(self.client, self.sequence, operation)
            .in_tenant(tenant)
            .acknowledging_below(self.sequence);
        self.apply(&Command::Request(request))
    }

    /// The client's next request, in the default tenant.
    pub fn request(&mut self, operation: Operation) -> Response {
        self.request_in(TenantId::DEFAULT, operation)
    }

    pub fn put(&mut self, key: &str, value: &[u8]) -> Response {
        self.request(Operation::put(key, value))
    }

    pub fn delete(&mut self, key: &str) -> Response {
        self.request(Operation::delete(key))
    }

    pub fn tick(&mut self, term: u64, now_ms: u64) -> Response {
        self.apply(&Command::Tick(Tick {
            term: Term::new(term),
            now: Millis::new(now_ms),
        }))
    }

    /// The value of `key` in the default tenant, if present.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.store
            .get(TenantId::DEFAULT, key)
            .ok()
            .and_then(|found| found.value.map(Vec::from))
    }
}
