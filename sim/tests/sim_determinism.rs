//! Determinism: the same seed of the chaos scenario, run twice, writes byte-identical traces;
//! a different seed writes a different one.

use rafting_sim::{Scenario, run_seed};
use std::path::Path;

fn chaos() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos.toml");
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

fn trace(scenario: &Scenario, seed: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    run_seed(scenario, seed, Some(&mut bytes)).expect("the seed runs");
    bytes
}

// Runs seed 7 twice and compares the traces byte for byte, then checks seed 8 differs.
#[test]
fn same_seed_gives_identical_trace() {
    let scenario = chaos();
    let first = trace(&scenario, 7);
    let second = trace(&scenario, 7);
    assert!(first.len() > 10_000, "the trace records the run");
    assert!(first == second, "seed 7 replayed differently");
    assert!(
        trace(&scenario, 8) != first,
        "different seeds should differ"
    );
}

// Tracing must not change the run: the report is the same with and without a trace.
#[test]
fn tracing_does_not_change_the_run() {
    let scenario = chaos();
    let traced = run_seed(&scenario, 11, Some(&mut Vec::new()))
        .expect("runs")
        .report;
    let untraced = run_seed(&scenario, 11, None).expect("runs").report;
    assert_eq!(traced.events, untraced.events);
    assert_eq!(traced.simulated_ms, untraced.simulated_ms);
    assert_eq!(traced.operations, untraced.operations);
}
