//! The operator's drain of a farm member: a flag of its own in the replicated store, honoured
//! by every pick as the member's own drain is, never cleared by the member's keep-alives or
//! reports, kept across the member's re-registration and through a snapshot.

mod store_support;

use rafting_core::farm::{self, pickable};
use rafting_core::store::services::{MemberEntry, MemberUpdate, Registration, ServiceMode};
use rafting_core::store::{Operation, Outcome, Response, Store, TenantId};
use store_support::Harness;

const GROUP: &str = "/shop/api";

fn farm_member(instance: &str) -> Registration {
    Registration {
        group: GROUP.into(),
        instance: instance.into(),
        ttl_ms: 1_000,
        mode: Some(ServiceMode::Farm),
        ..Registration::default()
    }
}

/// A running farm of members a, b and c.
fn farm_of_three() -> Harness {
    let mut harness = Harness::new();
    harness.tick(1, 0).unwrap();
    for instance in ["a", "b", "c"] {
        let joined = harness.request(Operation::RegisterMember(Box::new(farm_member(instance))));
        assert!(
            matches!(joined, Ok(Outcome::MemberRegistered(_))),
            "{joined:?}"
        );
    }
    harness
}

fn drain(harness: &mut Harness, group: &str, instance: &str, draining: bool) -> Response {
    harness.request(Operation::DrainMember {
        group: group.into(),
        instance: instance.into(),
        draining,
    })
}

fn members(store: &Store) -> Vec<MemberEntry> {
    store.group_view(TenantId::DEFAULT, GROUP).unwrap().members
}

fn member(store: &Store, instance: &str) -> MemberEntry {
    members(store)
        .into_iter()
        .find(|member| member.instance == instance)
        .unwrap()
}

/// Every instance that any pick can choose: round robin over every turn, Monte Carlo over
/// draws across [0, 1), and a custom balancer, which is handed the pickable members only.
fn ever_picked(store: &Store) -> Vec<String> {
    let all = members(store);
    let candidates: Vec<&MemberEntry> = all.iter().filter(|member| pickable(*member)).collect();
    let mut picked: Vec<String> = Vec::new();
    for turn in 0..10 {
        if let Some(index) = farm::round_robin(turn, candidates.len()) {
            picked.push(candidates[index].instance.clone());
        }
    }
    for step in 0..100 {
        if let Some(index) = farm::monte_carlo(&candidates, f64::from(step) / 100.0) {
            picked.push(candidates[index].instance.clone());
        }
    }
    let custom_balancer = |offered: &[&MemberEntry]| offered.last().map(|m| m.instance.clone());
    picked.extend(custom_balancer(&candidates));
    picked.sort();
    picked.dedup();
    picked
}

#[test]
fn an_operator_drained_member_is_never_picked_and_its_own_reports_do_not_undo_it() {
    let mut harness = farm_of_three();
    assert_eq!(ever_picked(&harness.store), ["a", "b", "c"]);
    let drained = drain(&mut harness, GROUP, "b", true).unwrap();
    assert!(
        matches!(&drained, Outcome::MemberDrained { instance, drained_by_operator: true, draining: true, .. } if instance == "b"),
        "{drained:?}"
    );
    assert_eq!(ever_picked(&harness.store), ["a", "c"]);
    let b = member(&harness.store, "b");
    assert_eq!(
        (b.draining, b.drained_by_self, b.drained_by_operator),
        (true, false, true)
    );
    // The member keeps alive and reports "not draining" on its own: the operator's flag holds.
    harness
        .request(Operation::MemberKeepAlive {
            group: GROUP.into(),
            instance: "b".into(),
        })
        .unwrap();
    harness
        .request(Operation::MemberUpdate {
            group: GROUP.into(),
            instance: "b".into(),
            update: MemberUpdate {
                load: Some(0),
                draining: Some(false),
                weight: Some(5),
            },
        })
        .unwrap();
    assert!(member(&harness.store, "b").drained_by_operator);
    assert_eq!(ever_picked(&harness.store), ["a", "c"]);
    // Self-drain and operator drain together: undraining by the operator leaves the self-drain.
    harness
        .request(Operation::MemberUpdate {
            group: GROUP.into(),
            instance: "b".into(),
            update: MemberUpdate {
                draining: Some(true),
                ..MemberUpdate::default()
            },
        })
        .unwrap();
    let undrained = drain(&mut harness, GROUP, "b", false).unwrap();
    assert!(
        matches!(
            undrained,
            Outcome::MemberDrained {
                drained_by_operator: false,
                draining: true,
                ..
            }
        ),
        "{undrained:?}"
    );
    assert_eq!(ever_picked(&harness.store), ["a", "c"]);
    harness
        .request(Operation::MemberUpdate {
            group: GROUP.into(),
            instance: "b".into(),
            update: MemberUpdate {
                draining: Some(false),
                ..MemberUpdate::default()
            },
        })
        .unwrap();
    assert_eq!(ever_picked(&harness.store), ["a", "b", "c"]);
}

#[test]
fn the_operator_drain_outlives_the_members_session_and_survives_a_snapshot() {
    let mut harness = farm_of_three();
    drain(&mut harness, GROUP, "c", true).unwrap();
    // The process restarts during maintenance: it leaves and registers again, undrained by
    // its own account, and still is not picked.
    harness
        .request(Operation::Deregister {
            group: GROUP.into(),
            instance: "c".into(),
        })
        .unwrap();
    let view = harness.store.group_view(TenantId::DEFAULT, GROUP).unwrap();
    assert_eq!(view.drained_by_operator, ["c"]);
    harness
        .request(Operation::RegisterMember(Box::new(farm_member("c"))))
        .unwrap();
    assert!(member(&harness.store, "c").drained_by_operator);
    assert_eq!(ever_picked(&harness.store), ["a", "b"]);
    let image = harness.store.snapshot();
    let restored = Store::restore(&image).unwrap();
    assert_eq!(restored, harness.store);
    assert!(member(&restored, "c").drained_by_operator);
    assert_eq!(ever_picked(&restored), ["a", "b"]);
    // The restored store goes on from there: the operator undrains it.
    harness.store = restored;
    drain(&mut harness, GROUP, "c", false).unwrap();
    assert_eq!(ever_picked(&harness.store), ["a", "b", "c"]);
    let view = harness.store.group_view(TenantId::DEFAULT, GROUP).unwrap();
    assert!(view.drained_by_operator.is_empty());
}

#[test]
fn draining_names_what_is_wrong_and_changes_nothing_then() {
    let mut harness = farm_of_three();
    let revision = harness.store.revision();
    assert_eq!(
        drain(&mut harness, "/no/such", "a", true)
            .unwrap_err()
            .code(),
        "group_not_found"
    );
    assert_eq!(
        drain(&mut harness, GROUP, "zz", true).unwrap_err().code(),
        "member_not_found"
    );
    assert_eq!(
        drain(&mut harness, GROUP, "zz", false).unwrap_err().code(),
        "member_not_found"
    );
    let mut standby = farm_member("m");
    standby.group = "/shop/db".into();
    standby.mode = None;
    harness
        .request(Operation::RegisterMember(Box::new(standby)))
        .unwrap();
    assert_eq!(
        drain(&mut harness, "/shop/db", "m", true)
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    assert!(ever_picked(&harness.store).len() == 3);
    assert!(
        harness.store.revision() > revision,
        "only the registration wrote"
    );
    // Draining twice is no change: the group's mirror key is not rewritten.
    drain(&mut harness, GROUP, "a", true).unwrap();
    let revision = harness.store.revision();
    drain(&mut harness, GROUP, "a", true).unwrap();
    assert_eq!(harness.store.revision(), revision);
}
