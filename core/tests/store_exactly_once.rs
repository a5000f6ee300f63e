//! Exactly-once writes, client eviction, garbage commands, snapshots and determinism.

mod store_support;

use proptest::prelude::*;
use rafting_core::store::{
    ClientId, Command, Operation, Request, Revision, SessionId, Store, StoreConfig, StoreError,
    TenantId, Tick, Transaction, TransactionOperation,
};
use rafting_core::{LogIndex, Millis, Term};
use store_support::Harness;

fn request(client: ClientId, sequence: u64, operation: Operation) -> Command {
    Command::Request(Request::new(client, sequence, operation))
}

#[test]
fn a_retried_request_gets_the_original_answer_and_applies_once() {
    // Proves §6.3: the same (client, sequence) applied again — even after later requests —
    // returns the first answer and changes nothing, including for an error answer.
    let mut harness = Harness::new();
    let client = harness.client;
    let put = request(client, 1, Operation::put("/counter", b"1"));
    let first = harness.apply(&put);
    harness
        .apply(&request(client, 2, Operation::put("/other", b"x")))
        .unwrap();
    let cas = request(client, 3, Operation::compare_and_set("/counter", 7, b"2"));
    let cas_first = harness.apply(&cas);
    let revision = harness.store.revision();

    assert_eq!(harness.apply(&put), first);
    assert_eq!(harness.apply(&cas), cas_first);
    assert_eq!(cas_first.unwrap_err().code(), "version_mismatch");
    assert_eq!(harness.store.revision(), revision);
    assert_eq!(
        harness
            .store
            .get(TenantId::DEFAULT, "/counter")
            .unwrap()
            .version,
        1
    );
}

#[test]
fn pipelined_requests_may_apply_out_of_order() {
    // Proves that "applied" means "has a cached answer", not "below the highest sequence":
    // sequence 2 committed before sequence 1 still lets 1 apply, once.
    let mut harness = Harness::new();
    let client = harness.client;
    harness
        .apply(&request(client, 2, Operation::put("/b", b"2")))
        .unwrap();
    harness
        .apply(&request(client, 1, Operation::put("/a", b"1")))
        .unwrap();
    harness
        .apply(&request(client, 1, Operation::put("/a", b"1")))
        .unwrap();
    assert_eq!(harness.value("/a"), Some(b"1".to_vec()));
    assert_eq!(harness.store.revision(), Revision::new(2));
}

#[test]
fn acknowledged_answers_are_forgotten_and_their_retries_are_stale() {
    // Proves acknowledgements: once the client says it received answers below 3, a retry of
    // 1 is `stale_request` (never a second apply), while 3 itself still applies.
    let mut harness = Harness::new();
    let client = harness.client;
    harness
        .apply(&request(client, 1, Operation::put("/a", b"1")))
        .unwrap();
    harness
        .apply(&request(client, 2, Operation::put("/a", b"2")))
        .unwrap();
    let acknowledging = Request::new(client, 3, Operation::put("/a", b"3")).acknowledging_below(3);
    harness.apply(&Command::Request(acknowledging)).unwrap();
    assert_eq!(
        harness.apply(&request(client, 1, Operation::put("/a", b"1"))),
        Err(StoreError::StaleRequest {
            client,
            sequence: 1,
            sequence_min: 3
        })
    );
    assert_eq!(harness.value("/a"), Some(b"3".to_vec()));
}

#[test]
fn the_response_cache_per_client_is_bounded() {
    // Proves the per-client bound: with room for 2 answers, a third drops the oldest, whose
    // retry becomes stale instead of applying again.
    let config = StoreConfig {
        responses_per_client_max: 2,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    let client = harness.client;
    for sequence in 1..=3 {
        harness
            .apply(&request(
                client,
                sequence,
                Operation::put("/k", &[sequence as u8]),
            ))
            .unwrap();
    }
    let retry = harness.apply(&request(client, 1, Operation::put("/k", b"again")));
    assert_eq!(retry.unwrap_err().code(), "stale_request");
    assert!(
        harness
            .apply(&request(client, 3, Operation::put("/k", b"ignored")))
            .is_ok()
    );
    assert_eq!(harness.value("/k"), Some(vec![3]));
}

#[test]
fn unknown_clients_get_unknown_client() {
    // Proves that a request from a client the store does not know is refused, not applied.
    let mut harness = Harness::new();
    let stranger = ClientId::new(999);
    let answer = harness.apply(&request(stranger, 1, Operation::put("/k", b"v")));
    assert_eq!(answer, Err(StoreError::UnknownClient { client: stranger }));
    assert_eq!(answer.unwrap_err().code(), "unknown_client");
    assert_eq!(harness.value("/k"), None);
}

#[test]
fn eviction_removes_the_least_recently_active_client_on_every_node() {
    // Proves the eviction rule: with room for 2 clients, registering a third evicts the one
    // whose last activity has the lowest log index — here the first client, because the
    // second one was active after it — identically on two independent stores.
    let config = StoreConfig {
        clients_max: 2,
        ..StoreConfig::default()
    };
    let mut stores = [
        Harness::with_config(config.clone()),
        Harness::with_config(config),
    ];
    for harness in &mut stores {
        let first = harness.client;
        let second = harness.register();
        harness
            .apply(&request(first, 1, Operation::put("/a", b"1")))
            .unwrap();
        harness
            .apply(&request(second, 1, Operation::put("/b", b"1")))
            .unwrap();
        let third = harness.register();
        assert!(!harness.store.has_client(first));
        assert!(harness.store.has_client(second));
        assert!(harness.store.has_client(third));
        let retry = harness.apply(&request(first, 1, Operation::put("/a", b"1")));
        assert_eq!(retry.unwrap_err().code(), "unknown_client");
    }
    assert_eq!(stores[0].store, stores[1].store);
}

#[test]
fn garbage_command_bytes_give_bad_command_and_change_nothing() {
    // Proves robustness: empty, random, truncated and over-long bytes are answered with
    // `bad_command`; the state is untouched apart from the applied index.
    let mut harness = Harness::new();
    harness.put("/k", b"v").unwrap();
    let before = harness.store.clone();
    let valid = request(harness.client, 9, Operation::put("/k", b"w")).encode();
    let mut trailing = valid.clone();
    trailing.push(0);
    let truncated = valid[..valid.len() - 1].to_vec();
    for bytes in [
        vec![],
        vec![0xff; 64],
        vec![1, 0xff, 0xff, 0xff],
        truncated,
        trailing,
    ] {
        harness.index += 1;
        let answer = harness.store.apply(LogIndex::new(harness.index), &bytes);
        assert_eq!(answer.unwrap_err().code(), "bad_command", "bytes {bytes:?}");
    }
    assert_eq!(harness.store.revision(), before.revision());
    assert_eq!(harness.value("/k"), Some(b"v".to_vec()));
}

#[test]
#[should_panic(expected = "applied once, in order")]
fn applying_an_index_twice_is_a_driver_bug() {
    // Proves the ordering assertion: the driver must never re-apply an entry.
    let mut store = Store::default();
    let _ = store.apply(LogIndex::new(1), &Command::RegisterClient.encode());
    let _ = store.apply(LogIndex::new(1), &Command::RegisterClient.encode());
}

/// One step of a random workload over a tiny key set, so that operations collide.
fn arbitrary_command() -> impl Strategy<Value = Option<Command>> {
    let key = (0..4u8).prop_map(|index| format!("/k/{index}"));
    let client = (1..4u64).prop_map(ClientId::new);
    let sequence = 1..12u64;
    let session =
        (0..40u64).prop_map(|index| Some(SessionId::new(index)).filter(|_| index % 3 != 0));
    let operation = prop_oneof![
        4 => (key.clone(), any::<u8>(), session.clone())
            .prop_map(|(key, value, session)| Operation::Put { key, value: vec![value], session }),
        2 => key.clone().prop_map(|key| Operation::Delete { key }),
        2 => (key.clone(), 0..3u64, any::<u8>())
            .prop_map(|(key, version, value)| Operation::compare_and_set(&key, version, &[value])),
        1 => (key.clone(), key.clone()).prop_map(|(first, second)| Operation::Transaction(Transaction {
            compares: vec![],
            success: vec![
                TransactionOperation::Delete { key: first },
                TransactionOperation::Put { key: second, value: vec![7], session: None },
            ],
            failure: vec![],
        })),
        1 => (100..3_000u64).prop_map(|ttl_ms| Operation::OpenSession { ttl_ms }),
        1 => (0..40u64).prop_map(|index| Operation::KeepAlive { session: SessionId::new(index) }),
        1 => (0..40u64).prop_map(|index| Operation::CloseSession { session: SessionId::new(index) }),
    ];
    prop_oneof![
        10 => (client, sequence, 0..6u64, operation).prop_map(|(client, sequence, acknowledged, operation)| {
            Some(Command::Request(Request::new(client, sequence, operation).acknowledging_below(acknowledged)))
        }),
        3 => (1..4u64, 0..2_000u64).prop_map(|(term, now_ms)| {
            Some(Command::Tick(Tick { term: Term::new(term), now: Millis::new(now_ms) }))
        }),
        1 => Just(Some(Command::RegisterClient)),
        1 => Just(None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn two_stores_fed_the_same_log_stay_identical(commands in prop::collection::vec(arbitrary_command(), 1..200)) {
        // Proves determinism: two stores (one restored from a mid-way snapshot) applying the
        // same entries give the same answers and end equal; the revision never decreases.
        let config = StoreConfig { clients_max: 3, responses_per_client_max: 4, watch_history_events_max: 16, ..StoreConfig::default() };
        let mut left = Store::new(config.clone());
        let mut right = Store::new(config);
        let snapshot_at = commands.len() / 2;
        for (position, command) in commands.iter().enumerate() {
            let index = LogIndex::new(position as u64 + 1);
            let bytes = command.as_ref().map_or_else(|| vec![0xde, 0xad], Command::encode);
            let revision_before = left.revision();
            let left_answer = left.apply(index, &bytes);
            let right_answer = right.apply(index, &bytes);
            prop_assert_eq!(&left_answer, &right_answer);
            prop_assert!(left.revision() >= revision_before);
            if position == snapshot_at {
                let encoded = bincode::serde::encode_to_vec(&right, bincode::config::standard()).unwrap();
                let (restored, _) = bincode::serde::decode_from_slice::<Store, _>(&encoded, bincode::config::standard()).unwrap();
                right = restored;
            }
        }
        prop_assert_eq!(&left, &right);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        // Proves that whatever bytes reach `apply`, the answer is a value, never a panic.
        let mut store = Store::default();
        let _ = store.apply(LogIndex::new(1), &bytes);
        prop_assert_eq!(store.last_applied(), LogIndex::new(1));
    }
}
