//! What the simulator's integration tests share: loading a shipped scenario.

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
