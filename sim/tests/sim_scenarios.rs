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

/// Scenarios that cost many times more per seed than the others run a share of the seeds
/// here: `(name, divisor)` runs `SIM_SEEDS / divisor` seeds (at least one). The tenant
/// scenarios push 64 KiB values by the thousand through every layer, at 1 to 3 s a seed in
/// the test profile, against 0.01 to 0.4 s for the rest; at an equal share they were three
/// quarters of CI's time. Their thousands of seeds are run outside the test suite
/// (`rafting sim run scenarios/tenants_flood.toml --seeds 2000 --jobs 2`).
const COSTLY_SCENARIOS: &[(&str, u64)] = &[("tenants_flood", 8), ("tenants_chaos", 4)];

fn seeds_for(scenario: &Scenario) -> u64 {
    let divisor = COSTLY_SCENARIOS
        .iter()
        .find(|(name, _)| *name == scenario.name)
        .map_or(1, |(_, divisor)| *divisor);
    (seeds_per_scenario() / divisor).max(1)
}

// Runs each scenario file for its share of SIM_SEEDS seeds and fails listing every violating
// seed.
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
        let started = std::time::Instant::now();
        let seeds = seeds_for(&scenario);
        let summary =
            run_seeds(&scenario, 1, seeds, jobs, &|_| {}).unwrap_or_else(|error| panic!("{error}"));
        eprintln!(
            "{}: {seeds} seeds in {:.1} s",
            scenario.name,
            started.elapsed().as_secs_f64()
        );
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
