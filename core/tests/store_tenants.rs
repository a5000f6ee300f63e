//! Tenants in the store: creation, tokens, caps, usage, deletion, and the property that the
//! usage counted as state changes always equals a recount from scratch.

mod store_support;

use proptest::prelude::*;
use rafting_core::store::services::Registration;
use rafting_core::store::{
    Cap, Caps, Command, ListQuery, Operation, Outcome, Request, Response, SessionId, StoreError,
    TenantCommand, TenantId, TokenRecord, Transaction, TransactionOperation, Usage,
};
use store_support::Harness;

fn create(harness: &mut Harness, name: &str, caps: Caps, secret: &str) -> Response {
    harness.request(Operation::Tenant(Box::new(TenantCommand::Create {
        name: name.to_owned(),
        caps,
        token: TokenRecord::new(b"salt-of-16-bytes", secret),
    })))
}

fn created(harness: &mut Harness, name: &str, caps: Caps) -> TenantId {
    match create(harness, name, caps, "secret") {
        Ok(Outcome::TokenIssued { tenant, token: 1 }) => tenant,
        other => panic!("tenant {name} not created: {other:?}"),
    }
}

fn code<T: std::fmt::Debug>(response: Result<T, StoreError>) -> &'static str {
    response.expect_err("expected a refusal").code()
}

fn open_session(harness: &mut Harness, tenant: TenantId) -> Response {
    harness.request_in(tenant, Operation::OpenSession { ttl_ms: 1_000 })
}

#[test]
fn tokens_name_their_tenant_and_only_live_ones_authenticate() {
    // Proves the token rules: `<name>.<secret>` of a live token names the tenant; a wrong
    // secret, an unknown name and a revoked token name nobody; the store keeps no secret.
    let mut harness = Harness::new();
    let acme = created(&mut harness, "acme", Caps::default());
    let store = &harness.store;
    assert_eq!(store.authenticate("acme.secret"), Some(acme));
    assert_eq!(store.authenticate("acme.wrong"), None);
    assert_eq!(store.authenticate("other.secret"), None);
    assert_eq!(store.authenticate("secret"), None);
    let snapshot = serde_json::to_string(&harness.store.tenants()).unwrap();
    assert!(!snapshot.contains("secret"), "{snapshot}");
    let second = harness.request(Operation::Tenant(Box::new(TenantCommand::IssueToken {
        name: "acme".into(),
        token: TokenRecord::new(b"another-salt", "second"),
    })));
    assert_eq!(
        second,
        Ok(Outcome::TokenIssued {
            tenant: acme,
            token: 2
        })
    );
    harness
        .request(Operation::Tenant(Box::new(TenantCommand::RevokeToken {
            name: "acme".into(),
            token: 1,
        })))
        .unwrap();
    assert_eq!(harness.store.authenticate("acme.secret"), None);
    assert_eq!(harness.store.authenticate("acme.second"), Some(acme));
    let again = harness.request(Operation::Tenant(Box::new(TenantCommand::RevokeToken {
        name: "acme".into(),
        token: 1,
    })));
    assert_eq!(code(again), "token_not_found");
}

#[test]
fn bad_names_duplicates_and_non_administrators_are_refused() {
    // Proves the checks of a creation: a name that is not a plain path segment, the
    // reserved `default`, a second tenant of one name, and a tenant managing tenants.
    let mut harness = Harness::new();
    for bad in [
        "",
        "Acme",
        "a/b",
        "a.b",
        "-x",
        "default",
        &"x".repeat(64),
        "é",
    ] {
        let refused = create(&mut harness, bad, Caps::default(), "s");
        assert_eq!(code(refused), "invalid_tenant_name", "{bad:?}");
    }
    let acme = created(&mut harness, "acme", Caps::default());
    assert_eq!(
        code(create(&mut harness, "acme", Caps::default(), "s")),
        "tenant_exists"
    );
    let from_tenant = harness.request_in(
        acme,
        Operation::Tenant(Box::new(TenantCommand::Delete {
            name: "acme".into(),
            purge: true,
        })),
    );
    assert_eq!(code(from_tenant), "invalid_request");
}

#[test]
fn tenants_cannot_see_each_others_keys_sessions_or_groups() {
    // Proves isolation: the same key in two tenants is two keys; a session of one is
    // `session_not_found` to the other; listings see their own tenant only.
    let mut harness = Harness::new();
    let a = created(&mut harness, "a", Caps::default());
    let b = created(&mut harness, "b", Caps::default());
    harness.request_in(a, Operation::put("/k", b"a")).unwrap();
    harness.request_in(b, Operation::put("/k", b"b")).unwrap();
    assert_eq!(
        harness.store.get(a, "/k").unwrap().value,
        Some(bytes::Bytes::from_static(b"a"))
    );
    assert_eq!(
        harness.store.get(b, "/k").unwrap().value,
        Some(bytes::Bytes::from_static(b"b"))
    );
    assert_eq!(
        code(harness.store.get(TenantId::DEFAULT, "/k")),
        "not_found"
    );
    let Ok(Outcome::SessionOpened { session, .. }) = open_session(&mut harness, a) else {
        panic!("session not opened");
    };
    let foreign = harness.request_in(b, Operation::KeepAlive { session });
    assert_eq!(code(foreign), "session_not_found");
    let foreign_close = harness.request_in(b, Operation::CloseSession { session });
    assert_eq!(code(foreign_close), "session_not_found");
    let listing = harness
        .store
        .list(&ListQuery {
            tenant: b,
            ..ListQuery::new("/")
        })
        .unwrap();
    assert_eq!(listing.entries.len(), 1);
}

#[test]
fn a_retry_from_another_tenant_never_sees_the_first_answer() {
    // Proves that the exactly-once table, shared by all tenants, does not leak: a request
    // that reuses another tenant's (client, sequence) is refused, not answered with the
    // other tenant's cached answer, and applies nothing.
    let mut harness = Harness::new();
    let a = created(&mut harness, "a", Caps::default());
    let b = created(&mut harness, "b", Caps::default());
    let first = harness.request_in(a, Operation::put("/secret", b"a's"));
    assert!(first.is_ok());
    let reused = Request::new(harness.client, harness.sequence, Operation::put("/x", b""))
        .in_tenant(b)
        .acknowledging_below(harness.sequence);
    let answer = harness.apply(&Command::Request(reused));
    assert_eq!(code(answer), "stale_request");
    assert_eq!(harness.store.key_count(b), 0);
}

#[test]
fn stored_caps_refuse_growth_with_a_clear_error_and_never_refuse_cleanup() {
    // Proves the stored caps: at the keys cap a new key is `quota_keys` (naming tenant, cap
    // and usage) while an overwrite and a delete pass; bytes and sessions likewise; a cap
    // of 0 refuses the first.
    let caps = Caps {
        keys: Some(2),
        bytes: Some(100),
        sessions: Some(1),
        ..Caps::default()
    };
    let mut harness = Harness::new();
    let t = created(&mut harness, "small", caps);
    harness.request_in(t, Operation::put("/a", b"1")).unwrap();
    harness.request_in(t, Operation::put("/b", b"1")).unwrap();
    let refused = harness
        .request_in(t, Operation::put("/c", b"1"))
        .unwrap_err();
    assert_eq!(refused.code(), "quota_keys");
    let message = refused.to_string();
    assert!(
        message.contains("small") && message.contains("keys"),
        "{message}"
    );
    assert!(message.contains("usage 2 of 2"), "{message}");
    harness.request_in(t, Operation::put("/a", b"22")).unwrap();
    let big = harness.request_in(t, Operation::put("/a", &[0; 100]));
    assert_eq!(code(big), "quota_bytes");
    harness.request_in(t, Operation::delete("/a")).unwrap();
    harness.request_in(t, Operation::put("/c", b"1")).unwrap();
    let Ok(Outcome::SessionOpened { session, .. }) = open_session(&mut harness, t) else {
        panic!("the first session is under the cap");
    };
    assert_eq!(code(open_session(&mut harness, t)), "quota_sessions");
    harness
        .request_in(t, Operation::CloseSession { session })
        .unwrap();
    open_session(&mut harness, t).unwrap();

    let zero = created(
        &mut harness,
        "zero",
        Caps {
            keys: Some(0),
            sessions: Some(0),
            services: Some(0),
            ..Caps::default()
        },
    );
    assert_eq!(
        code(harness.request_in(zero, Operation::put("/a", b""))),
        "quota_keys"
    );
    assert_eq!(code(open_session(&mut harness, zero)), "quota_sessions");
    let join = harness.request_in(zero, register("/g", "m1"));
    assert_eq!(code(join), "quota_services");
    assert_eq!(harness.store.usage(zero), Usage::default());
}

#[test]
fn a_transaction_is_charged_by_its_net_change() {
    // Proves that a transaction is charged as a whole: at the keys cap, one that deletes a
    // key and creates another passes; one that only creates is refused, changing nothing.
    let mut harness = Harness::new();
    let caps = Caps {
        keys: Some(1),
        ..Caps::default()
    };
    let t = created(&mut harness, "txn", caps);
    harness.request_in(t, Operation::put("/a", b"1")).unwrap();
    let swap = Transaction {
        success: vec![
            TransactionOperation::Delete { key: "/a".into() },
            TransactionOperation::Put {
                key: "/b".into(),
                value: b"2".to_vec(),
                session: None,
            },
        ],
        ..Transaction::default()
    };
    harness.request_in(t, Operation::Transaction(swap)).unwrap();
    let grow = Transaction {
        success: vec![TransactionOperation::Put {
            key: "/c".into(),
            value: vec![],
            session: None,
        }],
        ..Transaction::default()
    };
    let refused = harness.request_in(t, Operation::Transaction(grow));
    assert_eq!(code(refused), "quota_keys");
    assert_eq!(harness.store.key_count(t), 1);
}

#[test]
fn the_leader_precheck_refuses_what_the_store_would_refuse() {
    // Proves `check_quota`: what it refuses the state machine refuses too, and a tenant
    // without caps (the default one) is never refused.
    let mut harness = Harness::new();
    let caps = Caps {
        keys: Some(0),
        ..Caps::default()
    };
    let t = created(&mut harness, "pre", caps);
    let put = Operation::put("/a", b"1");
    assert_eq!(
        harness.store.check_quota(t, &put).unwrap_err().code(),
        "quota_keys"
    );
    assert!(harness.store.check_quota(TenantId::DEFAULT, &put).is_ok());
    assert!(
        harness
            .store
            .check_quota(t, &Operation::delete("/a"))
            .is_ok()
    );
}

#[test]
fn deleting_a_tenant_refuses_while_it_holds_data_unless_purged() {
    // Proves deletion: refused with `tenant_not_empty` (naming what it holds) while the
    // tenant has a key and a live session; with purge, everything goes in one command, the
    // token stops working, and the old id can write nothing more.
    let mut harness = Harness::new();
    let t = created(&mut harness, "gone", Caps::default());
    harness.request_in(t, Operation::put("/k", b"v")).unwrap();
    open_session(&mut harness, t).unwrap();
    harness.request_in(t, register("/g", "m1")).unwrap();
    let delete = |purge| {
        Operation::Tenant(Box::new(TenantCommand::Delete {
            name: "gone".into(),
            purge,
        }))
    };
    let refused = harness.request(delete(false)).unwrap_err();
    assert_eq!(refused.code(), "tenant_not_empty");
    assert!(refused.to_string().contains("2 sessions"), "{refused}");
    let purged = harness.request(delete(true)).unwrap();
    assert!(matches!(
        purged,
        Outcome::TenantDeleted {
            keys_deleted: 2,
            sessions_closed: 2,
            ..
        }
    ));
    assert_eq!(harness.store.authenticate("gone.secret"), None);
    assert_eq!(harness.store.recount_usage(t), Usage::default());
    assert_eq!(harness.store.usage(t), Usage::default());
    let late = harness.request_in(t, Operation::put("/k", b"v"));
    assert_eq!(code(late), "tenant_not_found");
    assert_eq!(code(harness.request(delete(false))), "tenant_not_found");
}

#[test]
fn service_caps_count_groups_and_members() {
    // Proves the service caps: a second group over `services` and a member over `members`
    // are refused; a member's session counts as a session; leaving frees the member.
    let mut harness = Harness::new();
    let caps = Caps {
        services: Some(1),
        members: Some(1),
        ..Caps::default()
    };
    let t = created(&mut harness, "svc", caps);
    harness.request_in(t, register("/g", "m1")).unwrap();
    assert_eq!(
        code(harness.request_in(t, register("/h", "m1"))),
        "quota_services"
    );
    assert_eq!(
        code(harness.request_in(t, register("/g", "m2"))),
        "quota_members"
    );
    let usage = harness.store.usage(t);
    assert_eq!((usage.services, usage.members, usage.sessions), (1, 1, 1));
    harness
        .request_in(
            t,
            Operation::Deregister {
                group: "/g".into(),
                instance: "m1".into(),
            },
        )
        .unwrap();
    harness.request_in(t, register("/g", "m2")).unwrap();
    assert_eq!(harness.store.usage(t), harness.store.recount_usage(t));
}

fn register(group: &str, instance: &str) -> Operation {
    Operation::RegisterMember(Box::new(Registration {
        group: group.into(),
        instance: instance.into(),
        ttl_ms: 1_000,
        ..Registration::default()
    }))
}

// --- The property ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Step {
    Put {
        tenant: u8,
        key: u8,
        size: u8,
        ephemeral: bool,
    },
    Delete {
        tenant: u8,
        key: u8,
    },
    Transaction {
        tenant: u8,
        keys: Vec<(u8, Option<u8>)>,
    },
    OpenSession {
        tenant: u8,
    },
    CloseSession {
        tenant: u8,
    },
    Register {
        tenant: u8,
        group: u8,
        instance: u8,
    },
    Leave {
        tenant: u8,
        group: u8,
        instance: u8,
    },
    Tick {
        advance_ms: u16,
    },
    SetCaps {
        tenant: u8,
        keys: u8,
        bytes: u16,
    },
    Purge {
        tenant: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let tenant = 0u8..3;
    let key = 0u8..6;
    prop_oneof![
        4 => (tenant.clone(), key.clone(), any::<u8>(), any::<bool>())
            .prop_map(|(tenant, key, size, ephemeral)| Step::Put { tenant, key, size, ephemeral }),
        2 => (tenant.clone(), key.clone()).prop_map(|(tenant, key)| Step::Delete { tenant, key }),
        2 => (tenant.clone(), prop::collection::vec((key.clone(), prop::option::of(any::<u8>())), 1..4))
            .prop_map(|(tenant, keys)| Step::Transaction { tenant, keys }),
        1 => tenant.clone().prop_map(|tenant| Step::OpenSession { tenant }),
        1 => tenant.clone().prop_map(|tenant| Step::CloseSession { tenant }),
        1 => (tenant.clone(), 0u8..2, 0u8..3)
            .prop_map(|(tenant, group, instance)| Step::Register { tenant, group, instance }),
        1 => (tenant.clone(), 0u8..2, 0u8..3)
            .prop_map(|(tenant, group, instance)| Step::Leave { tenant, group, instance }),
        2 => (0u16..1_500).prop_map(|advance_ms| Step::Tick { advance_ms }),
        1 => (1u8..3, 0u8..5, 0u16..600)
            .prop_map(|(tenant, keys, bytes)| Step::SetCaps { tenant, keys, bytes }),
        1 => (1u8..3).prop_map(|tenant| Step::Purge { tenant }),
    ]
}

/// Plays `steps` on a store with the default tenant and tenants `t1`, `t2` (re-created after
/// a purge), checking after each that every tenant's usage equals a recount and that no
/// tenant is over a stored cap it had when the step ran.
fn play(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut harness = Harness::new();
    let mut ids = vec![TenantId::DEFAULT];
    for name in ["t1", "t2"] {
        ids.push(created(&mut harness, name, Caps::default()));
    }
    let mut sessions: Vec<Vec<SessionId>> = vec![Vec::new(); 3];
    let (mut now, term) = (0u64, 1u64);
    harness.tick(term, now).unwrap();
    for step in steps {
        let key = |k: u8| format!("/k{k}");
        match step.clone() {
            Step::Put {
                tenant,
                key: k,
                size,
                ephemeral,
            } => {
                let session = if ephemeral {
                    sessions[tenant as usize].last().copied()
                } else {
                    None
                };
                let operation = Operation::Put {
                    key: key(k),
                    value: vec![7; size as usize],
                    session,
                };
                let _ = harness.request_in(ids[tenant as usize], operation);
            }
            Step::Delete { tenant, key: k } => {
                let _ = harness.request_in(ids[tenant as usize], Operation::delete(&key(k)));
            }
            Step::Transaction { tenant, keys } => {
                let success = keys
                    .iter()
                    .map(|(k, size)| match size {
                        Some(size) => TransactionOperation::Put {
                            key: key(*k),
                            value: vec![1; *size as usize],
                            session: None,
                        },
                        None => TransactionOperation::Delete { key: key(*k) },
                    })
                    .collect();
                let transaction = Transaction {
                    success,
                    ..Transaction::default()
                };
                let _ =
                    harness.request_in(ids[tenant as usize], Operation::Transaction(transaction));
            }
            Step::OpenSession { tenant } => {
                if let Ok(Outcome::SessionOpened { session, .. }) =
                    open_session(&mut harness, ids[tenant as usize])
                {
                    sessions[tenant as usize].push(session);
                }
            }
            Step::CloseSession { tenant } => {
                if let Some(session) = sessions[tenant as usize].pop() {
                    let _ = harness
                        .request_in(ids[tenant as usize], Operation::CloseSession { session });
                }
            }
            Step::Register {
                tenant,
                group,
                instance,
            } => {
                let operation = register(&format!("/g{group}"), &format!("m{instance}"));
                let _ = harness.request_in(ids[tenant as usize], operation);
            }
            Step::Leave {
                tenant,
                group,
                instance,
            } => {
                let operation = Operation::Deregister {
                    group: format!("/g{group}"),
                    instance: format!("m{instance}"),
                };
                let _ = harness.request_in(ids[tenant as usize], operation);
            }
            Step::Tick { advance_ms } => {
                now += u64::from(advance_ms);
                harness.tick(term, now).unwrap();
            }
            Step::SetCaps {
                tenant,
                keys,
                bytes,
            } => {
                let caps = Caps {
                    keys: Some(u64::from(keys)),
                    bytes: Some(u64::from(bytes)),
                    sessions: Some(2),
                    members: Some(2),
                    ..Caps::default()
                };
                let name = format!("t{tenant}");
                harness
                    .request(Operation::Tenant(Box::new(TenantCommand::SetCaps {
                        name,
                        caps,
                    })))
                    .unwrap();
            }
            Step::Purge { tenant } => {
                let name = format!("t{tenant}");
                harness
                    .request(Operation::Tenant(Box::new(TenantCommand::Delete {
                        name: name.clone(),
                        purge: true,
                    })))
                    .unwrap();
                sessions[tenant as usize].clear();
                ids[tenant as usize] = created(&mut harness, &name, Caps::default());
            }
        }
        for id in harness
            .store
            .tenants_with_usage()
            .into_iter()
            .chain(ids.iter().copied())
        {
            prop_assert_eq!(
                harness.store.usage(id),
                harness.store.recount_usage(id),
                "tenant {} after {:?}",
                id,
                step
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Usage counted as state changes equals a recount after any sequence of puts, deletes,
    /// transactions, sessions opened, closed and expired, members joining and leaving, caps
    /// changed and tenants purged.
    #[test]
    fn usage_always_equals_a_recount(steps in prop::collection::vec(step(), 1..80)) {
        play(&steps)?;
    }
}

#[test]
fn caps_never_let_a_tenant_grow_past_them() {
    // Proves that whatever is attempted, a tenant whose caps were set before it wrote never
    // holds more than its caps allow (every refusal is decided in the state machine).
    let mut harness = Harness::new();
    let caps = Caps {
        keys: Some(3),
        bytes: Some(40),
        sessions: Some(1),
        ..Caps::default()
    };
    let t = created(&mut harness, "capped", caps);
    for round in 0..50u8 {
        let key = format!("/k{}", round % 7);
        let _ = harness.request_in(t, Operation::put(&key, &vec![1; usize::from(round % 13)]));
        let _ = open_session(&mut harness, t);
        let usage = harness.store.usage(t);
        assert!(
            usage.keys <= 3 && usage.bytes <= 40 && usage.sessions <= 1,
            "{usage:?}"
        );
    }
    let over: Vec<Cap> = [Cap::Keys, Cap::Bytes, Cap::Sessions]
        .into_iter()
        .filter(|cap| harness.store.usage(t).of(*cap) > caps.of(*cap).unwrap())
        .collect();
    assert!(over.is_empty());
    let _unused: Option<StoreError> = None;
}
