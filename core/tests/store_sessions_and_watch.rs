//! Watches (bounded history, compaction answer) and sessions on the replicated clock.

mod store_support;

use rafting_core::Millis;
use rafting_core::store::{
    EventKind, Operation, Outcome, Revision, SessionId, StoreConfig, StoreError, TenantId,
    Transaction, TransactionOperation, WatchQuery,
};
use store_support::Harness;

fn watch(
    harness: &Harness,
    prefix: &str,
    since: u64,
) -> Result<rafting_core::store::WatchBatch, StoreError> {
    harness
        .store
        .watch(&WatchQuery::new(prefix, Revision::new(since)))
}

fn open_session(harness: &mut Harness, ttl_ms: u64) -> SessionId {
    match harness.request(Operation::OpenSession { ttl_ms }) {
        Ok(Outcome::SessionOpened { session, .. }) => session,
        other => panic!("open failed: {other:?}"),
    }
}

fn put_ephemeral(
    harness: &mut Harness,
    key: &str,
    session: SessionId,
) -> Result<Outcome, StoreError> {
    harness.request(Operation::Put {
        key: key.into(),
        value: b"up".to_vec(),
        session: Some(session),
    })
}

#[test]
fn watch_returns_changes_under_a_prefix_in_revision_order() {
    // Proves the poll: only the prefix's events, from `since` on, and a `next_since` that
    // moves past unrelated changes so an idle watcher never falls behind for nothing.
    let mut harness = Harness::new();
    harness.put("/web/a", b"1").unwrap();
    harness.put("/db/x", b"1").unwrap();
    harness.put("/web/a", b"2").unwrap();
    harness.delete("/web/a").unwrap();
    harness.put("/db/y", b"1").unwrap();

    let batch = watch(&harness, "/web", 1).unwrap();
    let seen: Vec<(u64, bool)> = batch
        .events
        .iter()
        .map(|event| {
            (
                event.revision.get(),
                matches!(event.kind, EventKind::Delete),
            )
        })
        .collect();
    assert_eq!(seen, [(1, false), (3, false), (4, true)]);
    assert_eq!(batch.next_since, Revision::new(6));
    assert_eq!(batch.current_revision, Revision::new(5));

    let later = watch(&harness, "/web", 4).unwrap();
    assert_eq!(later.events.len(), 1);
    let nothing_new = watch(&harness, "/web", 6).unwrap();
    assert!(nothing_new.events.is_empty());
    assert_eq!(nothing_new.next_since, Revision::new(6));
    let other_tenant = harness.store.watch(&WatchQuery {
        tenant: TenantId::new(9),
        ..WatchQuery::new("/", Revision::new(1))
    });
    assert!(other_tenant.unwrap().events.is_empty());
}

#[test]
fn watch_limit_never_splits_a_revision() {
    // Proves paging: a limit of 1 still returns all three events of one transaction, and
    // `next_since` resumes right after it.
    let mut harness = Harness::new();
    let put = |key: &str| TransactionOperation::Put {
        key: key.into(),
        value: vec![1],
        session: None,
    };
    let transaction = Transaction {
        success: vec![put("/t/a"), put("/t/b"), put("/t/c")],
        ..Transaction::default()
    };
    harness
        .request(Operation::Transaction(transaction))
        .unwrap();
    harness.put("/t/d", b"1").unwrap();
    let query = WatchQuery {
        limit: 1,
        ..WatchQuery::new("/t", Revision::new(1))
    };
    let first = harness.store.watch(&query).unwrap();
    assert_eq!(first.events.len(), 3);
    assert_eq!(first.next_since, Revision::new(2));
    let second = harness
        .store
        .watch(&WatchQuery {
            since: first.next_since,
            ..query
        })
        .unwrap();
    assert_eq!(second.events.len(), 1);
    assert_eq!(second.next_since, Revision::new(3));
}

#[test]
fn a_watcher_too_far_behind_gets_compacted_with_a_restart_revision() {
    // Proves the history bound: with room for 3 events, after 5 puts revisions 1 and 2 are
    // gone; asking for them is `compacted`, pointing at revision 3, which still works.
    let config = StoreConfig {
        watch_history_events_max: 3,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    for value in 0..5u8 {
        harness.put("/k", &[value]).unwrap();
    }
    assert_eq!(
        watch(&harness, "/", 1),
        Err(StoreError::Compacted {
            requested: Revision::new(1),
            restart_from: Revision::new(3),
            current_revision: Revision::new(5),
        })
    );
    assert_eq!(watch(&harness, "/", 2).unwrap_err().code(), "compacted");
    assert_eq!(watch(&harness, "/", 3).unwrap().events.len(), 3);
    assert_eq!(harness.store.watch_history(), (3, Revision::new(3)));
}

#[test]
fn the_history_byte_bound_also_compacts() {
    // Proves the byte bound: large values push old events out sooner than the count bound.
    let config = StoreConfig {
        watch_history_bytes_max: 400,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    for _ in 0..4 {
        harness.put("/big", &[0; 100]).unwrap();
    }
    let (kept, oldest) = harness.store.watch_history();
    assert_eq!(kept, 2);
    assert_eq!(oldest, Revision::new(3));
}

#[test]
fn sessions_expire_on_the_replicated_clock_and_take_their_keys() {
    // Proves expiry: ticks of one leader advance the clock; at the deadline the session
    // and its ephemeral key go, in the tick's command, visible to watchers as a delete.
    let mut harness = Harness::new();
    harness.tick(1, 10_000).unwrap();
    let session = open_session(&mut harness, 1_000);
    put_ephemeral(&mut harness, "/members/n1", session).unwrap();
    harness.put("/durable", b"1").unwrap();
    harness.tick(1, 10_000).unwrap(); // the first tick after an idle table only records

    harness.tick(1, 10_600).unwrap();
    assert_eq!(harness.value("/members/n1"), Some(b"up".to_vec()));
    let Ok(Outcome::Ticked {
        now,
        expired,
        revision,
    }) = harness.tick(1, 11_000)
    else {
        panic!("ticks always apply");
    };
    assert_eq!((now, expired), (Millis::new(1_000), vec![session]));
    assert_eq!(harness.value("/members/n1"), None);
    assert_eq!(harness.value("/durable"), Some(b"1".to_vec()));
    let deletes = watch(&harness, "/members", revision.get()).unwrap();
    assert!(matches!(deletes.events[..], [ref event] if event.kind == EventKind::Delete));
    assert_eq!(harness.store.session_count(), 0);
    assert_eq!(
        put_ephemeral(&mut harness, "/members/n1", session)
            .unwrap_err()
            .code(),
        "session_not_found"
    );
}

#[test]
fn keep_alive_pushes_the_deadline_back() {
    // Proves keep-alive: the deadline becomes now + TTL, so a kept-alive session outlives
    // its first deadline, and one left alone then expires.
    let mut harness = Harness::new();
    harness.tick(1, 0).unwrap();
    let session = open_session(&mut harness, 1_000);
    harness.tick(1, 0).unwrap();
    harness.tick(1, 800).unwrap();
    assert_eq!(
        harness.request(Operation::KeepAlive { session }),
        Ok(Outcome::KeptAlive {
            session,
            expires_at: Millis::new(1_800)
        })
    );
    harness.tick(1, 1_500).unwrap();
    assert_eq!(harness.store.session_count(), 1);
    harness.tick(1, 1_800).unwrap();
    assert_eq!(harness.store.session_count(), 0);
}

#[test]
fn a_leader_change_pauses_the_clock_without_resetting_ttls() {
    // Proves the clock rule: the election gap between the old leader's last tick and the
    // new leader's first is not counted (a healthy session survives a long election), and
    // the time already used stays used (the TTL is not reset to full).
    let mut harness = Harness::new();
    harness.tick(1, 5_000).unwrap();
    let session = open_session(&mut harness, 3_000);
    harness.tick(1, 5_000).unwrap();
    harness.tick(1, 7_000).unwrap();
    assert_eq!(harness.store.now(), Millis::new(2_000));

    // Leader 1 dies; after a 60-second election, leader 2 (another clock) ticks.
    harness.tick(2, 900_000).unwrap();
    assert_eq!(
        harness.store.now(),
        Millis::new(2_000),
        "the first tick of a term advances nothing"
    );
    assert_eq!(
        harness.store.session_count(),
        1,
        "the election gap did not expire the session"
    );
    harness.tick(2, 900_900).unwrap();
    assert_eq!(harness.store.session_count(), 1);
    harness.tick(2, 901_000).unwrap();
    assert_eq!(harness.store.now(), Millis::new(3_000));
    assert_eq!(
        harness.store.session_count(),
        0,
        "the session kept only the 1s it had left"
    );
    let _ = session;
}

#[test]
fn ticks_are_capped_and_stale_terms_ignored() {
    // Proves the guards: one tick advances at most `tick_advance_ms_max`, a reading that
    // goes back in time advances nothing, and a tick of an older term is ignored.
    let config = StoreConfig {
        tick_advance_ms_max: 500,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.tick(3, 0).unwrap();
    open_session(&mut harness, 60_000);
    harness.tick(3, 0).unwrap();
    harness.tick(3, 60_000).unwrap();
    assert_eq!(harness.store.now(), Millis::new(500));
    harness.tick(3, 59_000).unwrap();
    assert_eq!(harness.store.now(), Millis::new(500));
    harness.tick(3, 60_100).unwrap();
    assert_eq!(harness.store.now(), Millis::new(600));
    harness.tick(2, 99_000).unwrap();
    assert_eq!(harness.store.now(), Millis::new(600));
}

#[test]
fn an_idle_store_needs_no_ticks_and_idle_time_never_counts_against_a_new_session() {
    // Proves the clock's rule 4 (issue 10, item 8: the log grew ~4 entries a second while
    // idle): with no session open the leader need not tick; a tick then only records the
    // reading; and after an idle hour, a new session still gets its whole TTL — the first
    // tick after it opens only records, so the hour is never counted.
    let mut harness = Harness::new();
    assert!(!harness.store.session_clock_needed());
    harness.tick(1, 1_000).unwrap();
    harness.tick(1, 3_000).unwrap();
    assert_eq!(
        harness.store.now(),
        Millis::new(0),
        "nothing to expire, nothing counted"
    );
    let session = open_session(&mut harness, 3_000);
    assert!(harness.store.session_clock_needed());
    harness.tick(1, 3_603_000).unwrap();
    assert_eq!(
        harness.store.now(),
        Millis::new(0),
        "the idle hour is not counted"
    );
    harness.tick(1, 3_604_500).unwrap();
    harness.tick(1, 3_605_500).unwrap();
    assert_eq!(harness.store.session_count(), 1, "2.5 s of a 3 s TTL used");
    harness.tick(1, 3_606_000).unwrap();
    assert_eq!(harness.store.session_count(), 0);
    assert!(!harness.store.session_clock_needed());
    let _ = session;
}

#[test]
fn closing_a_session_deletes_only_keys_still_bound_to_it() {
    // Proves bindings: a key rewritten without the session is no longer ephemeral, and a
    // close deletes the rest at one revision.
    let mut harness = Harness::new();
    let session = open_session(&mut harness, 10_000);
    put_ephemeral(&mut harness, "/e/1", session).unwrap();
    put_ephemeral(&mut harness, "/e/2", session).unwrap();
    put_ephemeral(&mut harness, "/e/3", session).unwrap();
    harness.put("/e/3", b"kept").unwrap();
    let closed = harness
        .request(Operation::CloseSession { session })
        .unwrap();
    assert_eq!(
        closed,
        Outcome::SessionClosed {
            session,
            keys_deleted: 2,
            revision: Revision::new(5)
        }
    );
    assert_eq!(harness.value("/e/3"), Some(b"kept".to_vec()));
    assert_eq!(harness.value("/e/1"), None);
    let again = harness.request(Operation::CloseSession { session });
    assert_eq!(again.unwrap_err().code(), "session_not_found");
}

#[test]
fn sessions_respect_tenants_ttl_bounds_and_the_session_cap() {
    // Proves the session checks: another tenant cannot use or see a session, TTLs out of
    // range are invalid, and the open-session cap is enforced.
    let config = StoreConfig {
        sessions_max: 1,
        ..StoreConfig::default()
    };
    let mut harness = Harness::with_config(config);
    let session = open_session(&mut harness, 1_000);
    let other = TenantId::new(2);
    let foreign = harness.request_in(
        other,
        Operation::Put {
            key: "/k".into(),
            value: vec![],
            session: Some(session),
        },
    );
    assert_eq!(foreign.unwrap_err().code(), "session_not_found");
    assert_eq!(
        harness
            .request_in(other, Operation::KeepAlive { session })
            .unwrap_err()
            .code(),
        "session_not_found"
    );
    assert_eq!(
        harness
            .request(Operation::OpenSession { ttl_ms: 1 })
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    assert_eq!(
        harness
            .request(Operation::OpenSession { ttl_ms: 1_000 })
            .unwrap_err()
            .code(),
        "limit_reached"
    );
}
