//! The services workload: members acting as master never overlap in real time, and the
//! checker that says so catches a member that acts without a lease.

mod common;

use common::shipped_for as scenario;
use rafting_sim::run_seed;
use rafting_sim::services::check;

// The planted bug: a member that acts as master from an answer until it hears otherwise (no
// lease). Paused or cut off, it goes on acting while a standby is appointed: some seed must
// fail `no_overlapping_masters`.
#[test]
fn a_master_without_a_lease_is_caught_acting_beside_its_successor() {
    let mut scenario = scenario("services_brutal.toml", 15_000);
    scenario.services.planted_no_lease = true;
    let caught = (1..=10).find_map(|seed| {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        report
            .violation
            .filter(|violation| violation.check == check::NO_OVERLAPPING_MASTERS)
            .map(|violation| (seed, violation))
    });
    let (seed, violation) = caught.expect("an overlap is caught within ten seeds");
    assert!(
        violation.detail.contains("starts acting as master"),
        "seed {seed}: {}",
        violation.detail
    );
}

// With the lease rule, the same seeds run clean, and masters do change hands.
#[test]
fn members_that_keep_the_lease_rule_never_overlap() {
    let scenario = scenario("services_brutal.toml", 15_000);
    let mut epochs = 0;
    for seed in 1..=10 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        epochs += report.services.epochs;
    }
    assert!(
        epochs >= 30,
        "masters changed hands {epochs} times in ten seeds"
    );
}
