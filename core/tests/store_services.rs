//! Service groups in the store: self-registration, one master per epoch, graceful and brutal
//! stops, the hold-off, the two-step cold start, and the mirror key that watchers see.

mod store_support;

use rafting_core::store::services::{GroupPhase, MemberView, Registration, Role};
use rafting_core::store::{
    Compare, CompareTarget, Operation, Outcome, Query, ReadAnswer, Relation, Response, StoreError,
    TenantId, Transaction, TransactionOperation, WatchQuery,
};
use store_support::Harness;

const GROUP: &str = "/billing/web";

fn registration(instance: &str) -> Registration {
    Registration {
        group: GROUP.into(),
        instance: instance.into(),
        addresses: [("http".to_string(), format!("{instance}:8080"))].into(),
        ttl_ms: 1_000,
        ..Registration::default()
    }
}

fn register(harness: &mut Harness, registration: Registration) -> Response {
    harness.request(Operation::RegisterMember(Box::new(registration)))
}

fn joined(response: Response) -> MemberView {
    match response {
        Ok(Outcome::MemberRegistered(view)) => view,
        other => panic!("registration failed: {other:?}"),
    }
}

/// (master, epoch, phase) of the group.
fn state(harness: &Harness) -> (Option<String>, u64, GroupPhase) {
    let view = harness
        .store
        .group_view(TenantId::DEFAULT, GROUP)
        .expect("the group exists");
    (
        view.master.map(|master| master.instance),
        view.epoch,
        view.phase,
    )
}

/// A harness whose replicated clock runs: the first tick of term 1 only records the reading.
fn harness() -> Harness {
    let mut harness = Harness::new();
    harness.tick(1, 0).unwrap();
    harness
}

#[test]
fn the_first_member_creates_the_group_and_becomes_master_with_epoch_one() {
    let mut harness = harness();
    let first = joined(register(&mut harness, registration("a")));
    assert_eq!((first.role, first.epoch), (Role::Master, 1));
    assert_eq!(first.phase, GroupPhase::Running);
    let second = joined(register(&mut harness, registration("b")));
    assert_eq!((second.role, second.epoch), (Role::Standby, 1));
    assert_eq!(second.master.as_deref(), Some("a"));
    let view = harness.store.group_view(TenantId::DEFAULT, GROUP).unwrap();
    assert_eq!(view.standbys, vec!["b".to_string()]);
    assert_eq!(view.master.unwrap().addresses["http"], "a:8080");
}

#[test]
fn a_member_with_other_settings_is_refused_naming_the_difference() {
    let mut harness = harness();
    let mut first = registration("a");
    first.failover_delay_ms = Some(500);
    joined(register(&mut harness, first));
    let mut second = registration("b");
    second.failover_delay_ms = Some(0);
    let error = register(&mut harness, second).unwrap_err();
    assert_eq!(error.code(), "settings_conflict");
    assert!(
        error
            .to_string()
            .contains("failover_delay_ms 0 (the group's: 500)"),
        "{error}"
    );
    // A member that brings no settings takes the group's.
    joined(register(&mut harness, registration("c")));
}

#[test]
fn graceful_resign_appoints_the_next_standby_in_the_same_entry_and_bumps_the_epoch() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    joined(register(&mut harness, registration("b")));
    joined(register(&mut harness, registration("c")));
    let resign = |epoch| Operation::Resign {
        group: GROUP.into(),
        instance: "a".into(),
        epoch,
        to: None,
    };
    assert_eq!(
        harness.request(resign(1)),
        Ok(Outcome::GroupChanged {
            epoch: 2,
            master: Some("b".into())
        })
    );
    // "a" stays as the last standby; a stale resign is refused.
    let view = harness.store.group_view(TenantId::DEFAULT, GROUP).unwrap();
    assert_eq!(view.standbys, vec!["c".to_string(), "a".to_string()]);
    assert_eq!(
        harness.request(resign(1)).unwrap_err().code(),
        "stale_epoch"
    );
}

#[test]
fn a_resign_may_name_its_successor() {
    let mut harness = harness();
    for instance in ["a", "b", "c"] {
        joined(register(&mut harness, registration(instance)));
    }
    let outcome = harness.request(Operation::Resign {
        group: GROUP.into(),
        instance: "a".into(),
        epoch: 1,
        to: Some("c".into()),
    });
    assert_eq!(
        outcome,
        Ok(Outcome::GroupChanged {
            epoch: 2,
            master: Some("c".into())
        })
    );
}

#[test]
fn the_only_member_resigning_leaves_no_master_until_another_registers() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    let outcome = harness.request(Operation::Resign {
        group: GROUP.into(),
        instance: "a".into(),
        epoch: 1,
        to: None,
    });
    assert_eq!(
        outcome,
        Ok(Outcome::GroupChanged {
            epoch: 2,
            master: None
        })
    );
    let b = joined(register(&mut harness, registration("b")));
    assert_eq!((b.role, b.epoch), (Role::Master, 3));
}

#[test]
fn deregistering_the_master_hands_over_at_once_even_with_a_hold_off() {
    let mut harness = harness();
    let mut first = registration("a");
    first.failover_delay_ms = Some(5_000);
    joined(register(&mut harness, first));
    joined(register(&mut harness, registration("b")));
    let outcome = harness.request(Operation::Deregister {
        group: GROUP.into(),
        instance: "a".into(),
    });
    assert_eq!(
        outcome,
        Ok(Outcome::GroupChanged {
            epoch: 2,
            master: Some("b".into())
        })
    );
}

#[test]
fn an_expired_master_is_replaced_at_the_tick_that_expires_it() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    joined(register(&mut harness, registration("b")));
    // "b" keeps alive, "a" does not: its session (TTL 1000) expires on the replicated clock.
    for now in (200..=1_000).step_by(200) {
        harness.tick(1, now).unwrap();
        harness
            .request(Operation::MemberKeepAlive {
                group: GROUP.into(),
                instance: "b".into(),
            })
            .unwrap();
    }
    harness.tick(1, 1_200).unwrap();
    assert_eq!(state(&harness), (Some("b".into()), 2, GroupPhase::Running));
}

#[test]
fn a_hold_off_keeps_the_group_without_master_after_a_brutal_stop() {
    let mut harness = harness();
    let mut first = registration("a");
    first.failover_delay_ms = Some(600);
    joined(register(&mut harness, first));
    joined(register(&mut harness, registration("b")));
    let keep_b_alive = |harness: &mut Harness| {
        harness
            .request(Operation::MemberKeepAlive {
                group: GROUP.into(),
                instance: "b".into(),
            })
            .unwrap();
    };
    let mut now = 0;
    while state(&harness).0.as_deref() == Some("a") {
        now += 100;
        harness.tick(1, now).unwrap();
        keep_b_alive(&mut harness);
    }
    let expired_at = now;
    assert_eq!(
        state(&harness),
        (None, 2, GroupPhase::Running),
        "no master while holding off"
    );
    while state(&harness).0.is_none() {
        now += 100;
        harness.tick(1, now).unwrap();
        keep_b_alive(&mut harness);
        assert!(now <= expired_at + 700, "the hold-off never ended");
    }
    assert!(
        now >= expired_at + 600,
        "appointed after {} ms of hold-off",
        now - expired_at
    );
    assert_eq!(state(&harness), (Some("b".into()), 3, GroupPhase::Running));
}

#[test]
fn a_cold_start_waits_for_the_expected_members_then_appoints_the_best() {
    let mut harness = harness();
    let mut low = registration("low");
    low.expected_members = Some(3);
    low.priority = 1;
    let first = joined(register(&mut harness, low));
    assert_eq!(
        (first.role, first.phase, first.epoch),
        (Role::Standby, GroupPhase::Forming, 0)
    );
    let mut high = registration("high");
    high.priority = 9;
    joined(register(&mut harness, high));
    assert_eq!(state(&harness), (None, 0, GroupPhase::Forming));
    let last = joined(register(&mut harness, registration("mid")));
    assert_eq!(last.phase, GroupPhase::Running);
    assert_eq!(
        state(&harness),
        (Some("high".into()), 1, GroupPhase::Running)
    );
}

#[test]
fn a_start_request_or_the_start_delay_starts_a_forming_group() {
    let mut harness = harness();
    let mut first = registration("a");
    first.expected_members = Some(5);
    joined(register(&mut harness, first));
    let started = harness.request(Operation::StartGroup {
        group: GROUP.into(),
    });
    assert_eq!(
        started,
        Ok(Outcome::GroupChanged {
            epoch: 1,
            master: Some("a".into())
        })
    );

    let mut delayed = Harness::new();
    delayed.tick(1, 0).unwrap();
    let mut first = registration("a");
    first.expected_members = Some(5);
    first.start_after_ms = Some(300);
    first.ttl_ms = 10_000;
    joined(register(&mut delayed, first));
    // The first tick after a session opens in an empty table only records the reading (the
    // clock rule 4); the clock then reads 200 at 400 ms and 400 at 600 ms.
    delayed.tick(1, 200).unwrap();
    delayed.tick(1, 400).unwrap();
    assert_eq!(state(&delayed).2, GroupPhase::Forming);
    delayed.tick(1, 600).unwrap();
    assert_eq!(state(&delayed), (Some("a".into()), 1, GroupPhase::Running));
}

#[test]
fn a_group_whose_members_all_left_forms_again_and_its_epoch_keeps_growing() {
    let mut harness = harness();
    let mut first = registration("a");
    first.expected_members = Some(2);
    joined(register(&mut harness, first));
    joined(register(&mut harness, registration("b")));
    assert_eq!(state(&harness), (Some("a".into()), 1, GroupPhase::Running));
    for instance in ["b", "a"] {
        harness
            .request(Operation::Deregister {
                group: GROUP.into(),
                instance: instance.into(),
            })
            .unwrap();
    }
    assert_eq!(state(&harness), (None, 2, GroupPhase::Forming));
    let again = joined(register(&mut harness, registration("a")));
    assert_eq!(
        (again.role, again.phase),
        (Role::Standby, GroupPhase::Forming)
    );
    let b = joined(register(&mut harness, registration("b")));
    assert_eq!(b.phase, GroupPhase::Running);
    assert_eq!(state(&harness), (Some("a".into()), 3, GroupPhase::Running));
}

#[test]
fn a_live_instance_is_never_replaced_by_another_registration() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    joined(register(&mut harness, registration("b")));
    // A second registration of "a" (a retry, or one delayed from a previous life) is refused:
    // the live "a" may be master and acting on its lease.
    let again = register(&mut harness, registration("a")).unwrap_err();
    assert_eq!(again.code(), "member_exists");
    assert_eq!(state(&harness), (Some("a".into()), 1, GroupPhase::Running));
    // Once its session has ended, the instance registers again, at the back of the line.
    harness
        .request(Operation::Deregister {
            group: GROUP.into(),
            instance: "a".into(),
        })
        .unwrap();
    let back = joined(register(&mut harness, registration("a")));
    assert_eq!(
        (back.role, back.master.as_deref()),
        (Role::Standby, Some("b"))
    );
}

#[test]
fn every_change_of_a_group_appears_in_the_watch_stream_and_its_keys_are_read_only() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    joined(register(&mut harness, registration("b")));
    harness
        .request(Operation::Deregister {
            group: GROUP.into(),
            instance: "a".into(),
        })
        .unwrap();
    let watched = harness
        .store
        .read(&Query::Watch(WatchQuery {
            tenant: TenantId::DEFAULT,
            prefix: "/_services".into(),
            since: rafting_core::store::Revision::new(1),
            limit: 0,
        }))
        .unwrap();
    let ReadAnswer::Watch(batch) = watched else {
        panic!("a watch answers a batch");
    };
    assert_eq!(
        batch.events.len(),
        3,
        "two registrations and a deregistration"
    );
    assert!(
        batch
            .events
            .iter()
            .all(|event| event.key == "/_services/billing/web")
    );
    let last = harness.value("/_services/billing/web").unwrap();
    let view: serde_json::Value = serde_json::from_slice(&last).unwrap();
    assert_eq!(view["master"]["instance"], "b");
    assert_eq!(view["epoch"], 2);
    let refused = harness
        .put("/_services/billing/web", b"forged")
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::InvalidKey { .. }),
        "{refused:?}"
    );
    assert!(harness.delete("/_services/billing/web").is_err());
}

#[test]
fn groups_are_read_one_by_one_or_all_together_and_unknown_ones_are_errors() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    let one = harness.store.read(&Query::Service {
        tenant: TenantId::DEFAULT,
        group: GROUP.into(),
    });
    assert!(matches!(one, Ok(ReadAnswer::Service(view)) if view.epoch == 1));
    let all = harness.store.read(&Query::Services {
        tenant: TenantId::DEFAULT,
    });
    assert!(matches!(all, Ok(ReadAnswer::Services(views)) if views.len() == 1));
    let missing = harness.store.read(&Query::Service {
        tenant: TenantId::DEFAULT,
        group: "/nope".into(),
    });
    assert_eq!(missing.unwrap_err().code(), "group_not_found");
    let keep_alive = harness.request(Operation::MemberKeepAlive {
        group: GROUP.into(),
        instance: "ghost".into(),
    });
    assert_eq!(keep_alive.unwrap_err().code(), "member_not_found");
}

#[test]
fn a_transaction_guarded_by_the_epoch_is_refused_to_a_deposed_master() {
    let mut harness = harness();
    joined(register(&mut harness, registration("a")));
    joined(register(&mut harness, registration("b")));
    let fenced_write = |epoch| {
        Operation::Transaction(Transaction {
            compares: vec![Compare {
                key: GROUP.into(),
                relation: Relation::Equal,
                target: CompareTarget::Epoch(epoch),
            }],
            success: vec![TransactionOperation::Put {
                key: "/ledger".into(),
                value: format!("written under epoch {epoch}").into_bytes(),
                session: None,
            }],
            failure: vec![],
        })
    };
    let succeeded = |response: Response| match response {
        Ok(Outcome::Transaction { succeeded, .. }) => succeeded,
        other => panic!("{other:?}"),
    };
    assert!(
        succeeded(harness.request(fenced_write(1))),
        "the master of epoch 1 writes"
    );
    harness
        .request(Operation::Resign {
            group: GROUP.into(),
            instance: "a".into(),
            epoch: 1,
            to: None,
        })
        .unwrap();
    assert!(
        !succeeded(harness.request(fenced_write(1))),
        "a deposed master is fenced off"
    );
    assert!(succeeded(harness.request(fenced_write(2))));
    assert_eq!(harness.value("/ledger").unwrap(), b"written under epoch 2");
}

#[test]
fn a_farm_has_no_master_and_its_members_report_load_and_drain() {
    let mut harness = harness();
    let farm = |instance: &str| Registration {
        mode: Some(rafting_core::store::services::ServiceMode::Farm),
        weight: Some(2),
        ..registration(instance)
    };
    let a = joined(register(&mut harness, farm("a")));
    let b = joined(register(&mut harness, farm("b")));
    assert_eq!((a.role, b.role), (Role::Active, Role::Active));
    assert_eq!(state(&harness), (None, 0, GroupPhase::Running));
    let update = harness.request(Operation::MemberUpdate {
        group: GROUP.into(),
        instance: "a".into(),
        update: rafting_core::store::services::MemberUpdate {
            load: Some(7),
            draining: Some(true),
            weight: None,
        },
    });
    assert!(
        matches!(update, Ok(Outcome::MemberKeptAlive(_))),
        "{update:?}"
    );
    let view = harness.store.group_view(TenantId::DEFAULT, GROUP).unwrap();
    let a = view.members.iter().find(|m| m.instance == "a").unwrap();
    assert_eq!((a.load, a.draining, a.weight), (7, true, 2));
    let resign = harness.request(Operation::Resign {
        group: GROUP.into(),
        instance: "a".into(),
        epoch: 0,
        to: None,
    });
    assert_eq!(resign.unwrap_err().code(), "invalid_request");
    // A master/standby member cannot join a farm.
    let mut other = registration("c");
    other.mode = Some(rafting_core::store::services::ServiceMode::MasterStandby);
    assert_eq!(
        register(&mut harness, other).unwrap_err().code(),
        "settings_conflict"
    );
}
