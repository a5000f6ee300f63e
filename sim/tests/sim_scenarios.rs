//! Every shipped scenario passes a handful of seeds (a few hundred in release through
//! `SIM_SEEDS=300 cargo test --release -p rafting-sim --test sim_scenarios`).

use rafting_sim::{Scenario, run_seeds};
use std::path::{Path, PathBuf};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn seeds_per_scenario() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(24)
}

// Runs each scenario file for SIM_SEEDS seeds and fails listing every violating seed.
#[test]
fn every_shipped_scenario_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name != "regressions.toml")
        })
        .collect();
    files.sort();
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let mut failures = Vec::new();
    for file in &files {
        let scenario = Scenario::load(file).unwrap_or_else(|error| panic!("{error}"));
        let summary = run_seeds(&scenario, 1, seeds_per_scenario(), jobs, &|_| {})
            .unwrap_or_else(|error| panic!("{error}"));
        for report in summary.failures() {
            let violation = report
                .violation
                .as_ref()
                .expect("failures have a violation");
            failures.push(format!(
                "{} seed {}: {violation}",
                file.display(),
                report.seed
            ));
        }
    }
    assert!(failures.is_empty(), "violations:\n{}", failures.join("\n"));
}
