//! The simulator as a mutation test: every regression seed, then every shipped scenario with a
//! small fixed set of seeds, stopping at the first violation. `cargo mutants` runs it as the
//! only test (see `sim/mutation/run-mutants.sh`), so a mutant of `core` counts as caught only
//! when the simulator, not a unit test, notices it.
//!
//! It is ignored by default so that `cargo test --workspace` stays fast; run it with
//!
//!     cargo test --profile mutants -p rafting-sim --test mutation_sim -- --ignored --nocapture
//!
//! `MUTATION_SEEDS` (default below) sets the seeds per scenario; `MUTATION_JOBS` the threads;
//! `MUTATION_ONLY=name,name` runs only the scenario files whose names contain one of them.

use rafting_sim::regressions::Regressions;
use rafting_sim::{Scenario, run_seed};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Seeds per scenario when `MUTATION_SEEDS` is unset: one clean pass takes about 5 s on two idle
/// cores with the `mutants` profile (20 s on a machine shared with a build), and a caught mutant
/// usually stops in the first scenarios.
const SEEDS_DEFAULT: u64 = 8;

/// Scenarios that catch the most mutants for their cost (or cost nearly nothing) run first, so
/// a caught mutant stops early; any scenario not named here runs after these, in file-name order.
const ORDER_FIRST: &[&str] = &[
    "sticky_leader.toml",
    "crash_hint_failover.toml",
    "stale_term_answers.toml",
    "wiped_idle_follower.toml",
    "wiped_quiet_follower.toml",
    "paused_leader_reads.toml",
    "swarm_limits.toml",
    "disk_wipe.toml",
    "calm.toml",
    "kv_calm.toml",
    "crash_restart.toml",
    "kv_chaos.toml",
    "figure8.toml",
    "figure8_paper.toml",
    "transfer_churn.toml",
];

/// The scenarios of the tree being tested. Read at run time: cargo-mutants builds in copies of
/// the tree that share one target directory, so a binary built in an earlier copy may be run
/// from a later one.
fn scenarios_dir() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    Path::new(&manifest_dir).join("../scenarios")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The shipped scenario files, the ones in `ORDER_FIRST` first.
fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name != "regressions.toml")
        })
        .collect();
    let rank = |path: &PathBuf| {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        ORDER_FIRST
            .iter()
            .position(|first| *first == name)
            .unwrap_or(ORDER_FIRST.len())
    };
    files.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    if let Ok(only) = std::env::var("MUTATION_ONLY") {
        files.retain(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("");
            only.split(',').any(|part| name.contains(part))
        });
    }
    files
}

/// Runs `seeds` of `scenario` on `jobs` threads and returns the first violation found (by seed
/// order among those that ran); the other threads stop as soon as one is found.
fn first_violation(scenario: &Scenario, seeds: &[u64], jobs: usize) -> Option<String> {
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let found: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let worker = || {
        while !stop.load(Ordering::Relaxed) {
            let position = next.fetch_add(1, Ordering::Relaxed) as usize;
            let Some(&seed) = seeds.get(position) else {
                return;
            };
            let outcome = run_seed(scenario, seed, None);
            let message = match outcome {
                Ok(outcome) => outcome
                    .report
                    .violation
                    .map(|violation| format!("seed {seed}: {violation}")),
                Err(error) => Some(format!("seed {seed}: error {error}")),
            };
            if let Some(message) = message {
                stop.store(true, Ordering::Relaxed);
                found
                    .lock()
                    .expect("no worker panics holding the lock")
                    .push((seed, message));
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(worker);
        }
    });
    let mut found = found.into_inner().expect("workers have finished");
    found.sort();
    found.into_iter().next().map(|(_, message)| message)
}

// Replays the regression seeds, then SEEDS seeds of every scenario; panics at the first
// violation naming the scenario and seed, so a mutant that breaks a check fails this test.
#[test]
#[ignore = "mutation testing only: run by sim/mutation/run-mutants.sh"]
fn simulator_catches_the_mutant() {
    let seeds_per_scenario = env_number("MUTATION_SEEDS", SEEDS_DEFAULT);
    let jobs = env_number("MUTATION_JOBS", 2) as usize;
    let started = Instant::now();

    let list = scenarios_dir().join("regressions.toml");
    let regressions = Regressions::load(&list).unwrap_or_else(|error| panic!("{error}"));
    for regression in &regressions.regression {
        let path = Regressions::scenario_path(&list, regression);
        let scenario = Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
        if let Some(violation) = first_violation(&scenario, &[regression.seed], 1) {
            panic!("regression {}: {violation}", regression.scenario);
        }
    }
    eprintln!("regressions: {:.1}s", started.elapsed().as_secs_f64());

    let seeds: Vec<u64> = (1..=seeds_per_scenario).collect();
    for file in scenario_files() {
        let scenario_started = Instant::now();
        let scenario = Scenario::load(&file).unwrap_or_else(|error| panic!("{error}"));
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("?");
        if let Some(violation) = first_violation(&scenario, &seeds, jobs) {
            panic!("{name} {violation}");
        }
        eprintln!("{name}: {:.1}s", scenario_started.elapsed().as_secs_f64());
    }
    eprintln!("all: {:.1}s", started.elapsed().as_secs_f64());
}
