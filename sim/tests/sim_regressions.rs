//! Replays every seed in scenarios/regressions.toml: each once broke a check, and must pass now.

use rafting_sim::regressions::Regressions;
use rafting_sim::{Scenario, run_seed};
use std::path::Path;

// Loads the list and runs each seed; fails naming the seed, scenario and what it once found.
#[test]
fn every_regression_seed_passes() {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/regressions.toml");
    let regressions = Regressions::load(&list).unwrap_or_else(|error| panic!("{error}"));
    for regression in &regressions.regression {
        let path = Regressions::scenario_path(&list, regression);
        let scenario = Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
        let report = run_seed(&scenario, regression.seed, None)
            .expect("the seed runs")
            .report;
        if let Some(violation) = report.violation {
            panic!(
                "{} seed {} (once found: {}) fails again: {violation}",
                regression.scenario, regression.seed, regression.found
            );
        }
    }
}
