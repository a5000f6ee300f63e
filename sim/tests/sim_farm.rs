//! The farm workload: callers never pick what they know is draining or gone, members that leave
//! stop being picked in time, every live member gets picks; and the checkers that say so catch
//! planted bugs.

mod common;

use common::shipped_for as scenario;
use rafting_sim::farm::check;
use rafting_sim::{Scenario, run_seed};

/// The first of `seeds` whose run fails `check`, with the violation's detail.
fn first_caught(scenario: &Scenario, seeds: u64, check: &str) -> Option<(u64, String)> {
    (1..=seeds).find_map(|seed| {
        let report = run_seed(scenario, seed, None).expect("runs").report;
        report
            .violation
            .filter(|violation| violation.check == check)
            .map(|violation| (seed, violation.detail))
    })
}

// Planted: a caller's filter lets draining members through.
#[test]
fn a_caller_that_picks_draining_members_is_caught() {
    let mut scenario = scenario("farm_chaos.toml", 10_000);
    scenario.services.planted_pick_draining = true;
    let (seed, detail) = first_caught(&scenario, 5, check::FARM_PICK_FILTER)
        .expect("a draining pick is caught within five seeds");
    assert!(
        detail.contains("knows is draining"),
        "seed {seed}: {detail}"
    );
}

// Planted: the bug the farm scenarios found in the client library. A draining member whose
// session ended in a stall registered again as not draining, and was picked until its next
// keep-alive said otherwise.
#[test]
fn a_member_that_registers_again_undrained_is_caught() {
    let mut scenario = scenario("farm_departures.toml", 30_000);
    scenario.services.planted_register_undrained = true;
    let (seed, detail) = first_caught(&scenario, 40, check::FARM_STALE_PICKS)
        .expect("a stale pick is caught within forty seeds");
    assert!(
        detail.contains("after it left or began draining"),
        "seed {seed}: {detail}"
    );
}

// Without the planted bugs the same scenarios run clean, callers pick, and every live member
// with a weight was picked after the faults (the run settled).
#[test]
fn farm_scenarios_run_clean_and_every_live_member_gets_picks() {
    for (file, seeds) in [("farm_chaos.toml", 5), ("farm_departures.toml", 5)] {
        let scenario = scenario(file, 10_000);
        for seed in 1..=seeds {
            let report = run_seed(&scenario, seed, None).expect("runs").report;
            assert!(
                report.violation.is_none(),
                "{file} seed {seed}: {:?}",
                report.violation
            );
            assert!(
                report.services.picks > 100,
                "{file} seed {seed}: {} picks",
                report.services.picks
            );
            assert!(
                report.liveness_ms.is_some(),
                "{file} seed {seed} did not settle"
            );
        }
    }
}
