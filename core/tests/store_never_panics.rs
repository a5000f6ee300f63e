//! No input panics the store: arbitrary keys, prefixes, listing cursors and limits, watch
//! revisions, compare-and-set versions, transactions, session ids and TTLs, client ids and
//! request numbers, ticks and raw command bytes are applied and queried in any order, and
//! every one of them answers a value or a typed error.
//!
//! Whatever a client can put in a request reaches the store through the REST API, so a panic
//! here is a panic of the node loop (issue 10, item 1: `?list&after=0` was one).

use proptest::prelude::*;
use rafting_core::store::services::{MemberUpdate, Registration, ServiceMode};
use rafting_core::store::{
    ClientId, Command, Compare, CompareTarget, ListQuery, Operation, Query, Relation, Request,
    Revision, SessionId, Store, StoreConfig, TenantId, Tick, Transaction, TransactionOperation,
    WatchQuery,
};
use rafting_core::{LogIndex, Millis, Term};

/// Keys and prefixes: mostly well-formed paths over a few segments, so that they collide and
/// nest, plus arbitrary text (empty, relative, control characters, the characters next to
/// `/` in byte order, non-ASCII).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(vec!["a", "b", "a0", "~", "-", "é"]), 0..4)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
        1 => prop::sample::select(vec!["", "/", "0", "~", "zzz", "//", "/a/", "/a/..", "\u{10ffff}"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Numbers that land on the edges: small ones, and ones next to `u64::MAX`.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..6, 1 => Just(u64::MAX), 1 => Just(u64::MAX - 1), 1 => any::<u64>()]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4)
}

fn session() -> impl Strategy<Value = Option<SessionId>> {
    prop::option::of(number().prop_map(SessionId::new))
}

fn transaction_operation() -> impl Strategy<Value = TransactionOperation> {
    prop_oneof![
        text().prop_map(|key| TransactionOperation::Get { key }),
        (text(), value(), session()).prop_map(|(key, value, session)| {
            TransactionOperation::Put {
                key,
                value,
                session,
            }
        }),
        text().prop_map(|key| TransactionOperation::Delete { key }),
    ]
}

fn compare() -> impl Strategy<Value = Compare> {
    let relation = prop::sample::select(vec![
        Relation::Equal,
        Relation::NotEqual,
        Relation::Less,
        Relation::Greater,
    ]);
    let target = prop_oneof![
        number().prop_map(CompareTarget::Version),
        number().prop_map(|revision| CompareTarget::CreateRevision(Revision::new(revision))),
        number().prop_map(|revision| CompareTarget::ModifyRevision(Revision::new(revision))),
        value().prop_map(CompareTarget::Value),
        number().prop_map(CompareTarget::Epoch),
    ];
    (text(), relation, target).prop_map(|(key, relation, target)| Compare {
        key,
        relation,
        target,
    })
}

fn operation() -> impl Strategy<Value = Operation> {
    let branch = || prop::collection::vec(transaction_operation(), 0..4);
    prop_oneof![
        (text(), value(), session()).prop_map(|(key, value, session)| Operation::Put {
            key,
            value,
            session
        }),
        text().prop_map(|key| Operation::Delete { key }),
        (text(), number(), value(), session()).prop_map(
            |(key, expected_version, value, session)| Operation::CompareAndSet {
                key,
                expected_version,
                value,
                session,
            }
        ),
        (prop::collection::vec(compare(), 0..3), branch(), branch()).prop_map(
            |(compares, success, failure)| Operation::Transaction(Transaction {
                compares,
                success,
                failure,
            })
        ),
        prop_oneof![number(), 100u64..1000].prop_map(|ttl_ms| Operation::OpenSession { ttl_ms }),
        number().prop_map(|session| Operation::KeepAlive {
            session: SessionId::new(session)
        }),
        number().prop_map(|session| Operation::CloseSession {
            session: SessionId::new(session)
        }),
        service_operation(),
    ]
}

/// Service group requests over a few groups and instances, so that they meet.
fn service_operation() -> impl Strategy<Value = Operation> {
    let group = || prop_oneof![4 => prop::sample::select(vec!["/g", "/g/h"]).prop_map(str::to_owned), 1 => text()];
    let instance = || prop::sample::select(vec!["a", "b", "c", ""]).prop_map(str::to_owned);
    let optional = |strategy: BoxedStrategy<u64>| prop::option::of(strategy);
    prop_oneof![
        (
            group(),
            instance(),
            any::<i8>(),
            prop_oneof![number(), 100u64..2000],
            optional(prop_oneof![0u64..4, number()].boxed()),
            optional(prop_oneof![0u64..500, number()].boxed()),
            optional(prop_oneof![0u64..500, number()].boxed()),
        )
            .prop_map(
                |(group, instance, priority, ttl_ms, expected, start_after, delay)| {
                    Operation::RegisterMember(Box::new(Registration {
                        group,
                        instance,
                        priority: i64::from(priority),
                        ttl_ms,
                        expected_members: expected.map(|n| n.min(u64::from(u32::MAX)) as u32),
                        start_after_ms: start_after,
                        failover_delay_ms: delay,
                        mode: (priority % 3 == 0).then_some(ServiceMode::Farm),
                        weight: (priority % 2 == 0).then_some(u32::from(priority.unsigned_abs())),
                        ..Registration::default()
                    }))
                }
            ),
        (group(), instance())
            .prop_map(|(group, instance)| Operation::MemberKeepAlive { group, instance }),
        (group(), instance())
            .prop_map(|(group, instance)| Operation::Deregister { group, instance }),
        (group(), instance(), number(), prop::option::of(instance())).prop_map(
            |(group, instance, epoch, to)| Operation::Resign {
                group,
                instance,
                epoch,
                to
            }
        ),
        group().prop_map(|group| Operation::StartGroup { group }),
        (group(), instance(), any::<bool>()).prop_map(|(group, instance, draining)| {
            Operation::DrainMember {
                group,
                instance,
                draining,
            }
        }),
        (
            group(),
            instance(),
            prop::option::of(number()),
            prop::option::of(any::<bool>()),
            prop::option::of(0u32..3)
        )
            .prop_map(|(group, instance, load, draining, weight)| {
                Operation::MemberUpdate {
                    group,
                    instance,
                    update: MemberUpdate {
                        load,
                        draining,
                        weight,
                    },
                }
            }),
    ]
}

fn tenant() -> impl Strategy<Value = TenantId> {
    prop_oneof![3 => Just(TenantId::DEFAULT), 1 => number().prop_map(TenantId::new)]
}

/// One step: a command applied at the next log index, or a read.
#[derive(Debug, Clone)]
enum Step {
    Apply(Command),
    ApplyBytes(Vec<u8>),
    Read(Query),
}

fn command() -> impl Strategy<Value = Command> {
    let request = (number(), number(), number(), tenant(), operation()).prop_map(
        |(client, sequence, acknowledged_below, tenant, operation)| {
            // Client ids are log indexes, so small ones name the clients registered so far.
            Command::Request(
                Request::new(ClientId::new(client), sequence, operation)
                    .in_tenant(tenant)
                    .acknowledging_below(acknowledged_below),
            )
        },
    );
    let tick = (number(), number()).prop_map(|(term, now)| {
        Command::Tick(Tick {
            term: Term::new(term),
            now: Millis::new(now),
        })
    });
    prop_oneof![6 => request, 1 => Just(Command::RegisterClient), 1 => tick]
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        (tenant(), text()).prop_map(|(tenant, key)| Query::Get { tenant, key }),
        (
            tenant(),
            text(),
            any::<bool>(),
            prop_oneof![0u32..4, Just(u32::MAX)],
            prop::option::of(text())
        )
            .prop_map(|(tenant, prefix, keys_only, limit, after)| {
                Query::List(ListQuery {
                    tenant,
                    prefix,
                    keys_only,
                    limit,
                    after,
                })
            }),
        (
            tenant(),
            text(),
            number(),
            prop_oneof![0u32..4, Just(u32::MAX)]
        )
            .prop_map(|(tenant, prefix, since, limit)| {
                Query::Watch(WatchQuery {
                    tenant,
                    prefix,
                    since: Revision::new(since),
                    limit,
                })
            }),
        (tenant(), prop_oneof![Just("/g".to_owned()), text()])
            .prop_map(|(tenant, group)| Query::Service { tenant, group }),
        tenant().prop_map(|tenant| Query::Services { tenant }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => command().prop_map(Step::Apply),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Step::ApplyBytes),
        4 => query().prop_map(Step::Read),
    ]
}

/// Small bounds, so that the history rolls over, client records get evicted and response
/// caches fill within a short run.
fn small_config() -> StoreConfig {
    StoreConfig {
        key_bytes_max: 16,
        value_bytes_max: 3,
        transaction_operations_max: 5,
        list_entries_max: 3,
        watch_events_per_poll_max: 2,
        watch_history_events_max: 4,
        watch_history_bytes_max: 512,
        sessions_max: 3,
        clients_max: 3,
        responses_per_client_max: 2,
        ..StoreConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Proves that any sequence of commands and reads with arbitrary parameters answers
    /// without panicking, and that the revision never moves back. Two registered clients
    /// (ids 1 and 2) make most requests pass the exactly-once layer and reach the key space.
    #[test]
    fn arbitrary_commands_and_reads_never_panic_the_store(
        steps in prop::collection::vec(step(), 1..60),
        default_bounds in any::<bool>(),
    ) {
        let config = if default_bounds { StoreConfig::default() } else { small_config() };
        let mut store = Store::new(config);
        let mut index = 0u64;
        let mut apply = |store: &mut Store, bytes: &[u8]| {
            index += 1;
            let _ = store.apply(LogIndex::new(index), bytes);
        };
        apply(&mut store, &Command::RegisterClient.encode());
        apply(&mut store, &Command::RegisterClient.encode());
        for step in steps {
            let revision_before = store.revision();
            match step {
                Step::Apply(command) => apply(&mut store, &command.encode()),
                Step::ApplyBytes(bytes) => apply(&mut store, &bytes),
                Step::Read(query) => {
                    let _ = store.read(&query);
                }
            }
            prop_assert!(store.revision() >= revision_before);
        }
    }

    /// Proves that a snapshot taken after any sequence of commands restores the same store
    /// (equal state, equal bytes), and that the restored store and the original then answer
    /// every further command and read alike: a node restarted from a snapshot is the node
    /// that took it.
    #[test]
    fn a_snapshot_restores_the_same_store_and_the_same_future(
        before in prop::collection::vec(step(), 0..40),
        after in prop::collection::vec(step(), 0..40),
        default_bounds in any::<bool>(),
    ) {
        let config = if default_bounds { StoreConfig::default() } else { small_config() };
        let mut store = Store::new(config);
        let mut index = 0u64;
        let run = |store: &mut Store, restored: Option<&mut Store>, steps: &[Step], index: &mut u64| {
            let mut restored = restored;
            for step in steps {
                match step {
                    Step::Apply(command) => {
                        *index += 1;
                        let bytes = command.encode();
                        let answer = store.apply(LogIndex::new(*index), &bytes);
                        if let Some(other) = restored.as_deref_mut() {
                            assert_eq!(other.apply(LogIndex::new(*index), &bytes), answer);
                        }
                    }
                    Step::ApplyBytes(bytes) => {
                        *index += 1;
                        let answer = store.apply(LogIndex::new(*index), bytes);
                        if let Some(other) = restored.as_deref_mut() {
                            assert_eq!(other.apply(LogIndex::new(*index), bytes), answer);
                        }
                    }
                    Step::Read(query) => {
                        let answer = store.read(query);
                        if let Some(other) = restored.as_deref_mut() {
                            assert_eq!(other.read(query), answer);
                        }
                    }
                }
            }
        };
        let registrations = [Step::Apply(Command::RegisterClient), Step::Apply(Command::RegisterClient)];
        run(&mut store, None, &registrations, &mut index);
        run(&mut store, None, &before, &mut index);
        let image = store.snapshot();
        let mut restored = Store::restore(&image).expect("an image restores");
        prop_assert_eq!(&restored, &store);
        prop_assert_eq!(restored.snapshot(), image);
        run(&mut store, Some(&mut restored), &after, &mut index);
        prop_assert_eq!(restored, store);
    }

    /// Proves that arbitrary bytes given as a snapshot image are refused or restored, never
    /// a panic.
    #[test]
    fn arbitrary_bytes_never_panic_a_restore(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut image = 1u32.to_le_bytes().to_vec();
        image.extend(bytes);
        let _ = Store::restore(&image);
    }
}
