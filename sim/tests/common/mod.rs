//! What the simulator's integration tests share: loading a shipped scenario, and running one
//! with a planted bug.

#![allow(dead_code)]

use rafting_sim::Scenario;
use std::path::Path;

/// A scenario from the repository's `scenarios/` folder.
pub fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

/// A shipped scenario with its safety phase cut to `duration_ms`, to keep a debug-mode test
/// quick.
pub fn shipped_for(name: &str, duration_ms: u64) -> Scenario {
    let mut scenario = shipped(name);
    scenario.duration_ms = duration_ms;
    scenario
}

/// The trace of one seed of `scenario`, for replay tests.
pub fn trace_of(scenario: &Scenario, seed: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    rafting_sim::run_seed(scenario, seed, Some(&mut bytes)).expect("runs");
    bytes
}

/// Runs seeds `1..=seeds` of `scenario` with a planted bug (`plant(scenario, true)` turns it
/// on) and returns the seeds that reported a violation, with the check that fired; then turns
/// the bug off and asserts that the first three of those seeds pass, so that what caught it
/// was the bug and not the scenario.
pub fn caught_with_planted(
    scenario: &mut Scenario,
    seeds: u64,
    plant: impl Fn(&mut Scenario, bool),
) -> Vec<(u64, &'static str)> {
    plant(scenario, true);
    let mut caught = Vec::new();
    for seed in 1..=seeds {
        let report = rafting_sim::run_seed(scenario, seed, None)
            .expect("runs")
            .report;
        if let Some(violation) = report.violation {
            eprintln!("seed {seed}: {violation}");
            caught.push((seed, violation.check));
        }
    }
    plant(scenario, false);
    for &(seed, _) in caught.iter().take(3) {
        let report = rafting_sim::run_seed(scenario, seed, None)
            .expect("runs")
            .report;
        assert!(
            report.violation.is_none(),
            "seed {seed} fails without the planted bug: {:?}",
            report.violation
        );
    }
    caught
}
