//! Membership changes under faults (issue 16): `membership_chaos` replaces nodes one at a
//! time (the leader included) — removed, wiped, re-added as learners and promoted — while
//! partitions, crashes and loss go on; every checker holds across the configurations. More
//! seeds in release: `MEMBERSHIP_SEEDS=2000 cargo test --release -p rafting-sim --test
//! sim_membership`.

mod common;

use common::shipped;
use rafting_sim::run_seeds;

fn seeds() -> u64 {
    std::env::var("MEMBERSHIP_SEEDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(6)
}

// Seeds of the shipped scenario pass, and in them the replaced nodes end up voters again.
#[test]
fn membership_chaos_passes() {
    let scenario = shipped("membership_chaos.toml");
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let summary = run_seeds(&scenario, 1, seeds(), jobs, &|_| {}).expect("runs");
    let failures: Vec<String> = summary
        .failures()
        .map(|report| format!("seed {}: {:?}", report.seed, report.violation))
        .collect();
    assert!(failures.is_empty(), "violations:\n{}", failures.join("\n"));
}

// The story happens: in most seeds every scripted replacement's steps commit (removed, wiped,
// rejoined as a learner, promoted), the leader among the replaced nodes.
#[test]
fn replacements_complete_in_most_seeds() {
    let scenario = shipped("membership_chaos.toml");
    let mut completed = 0;
    let mut removed_leaders = 0;
    for seed in 1..=6 {
        let trace = String::from_utf8(common::trace_of(&scenario, seed)).expect("utf-8");
        completed += trace.matches(" replaced").count();
        removed_leaders += trace.matches("joins as a learner").count();
    }
    assert!(
        completed >= 6,
        "{completed} replacements completed in 6 seeds"
    );
    assert!(removed_leaders >= 6, "{removed_leaders} rejoins in 6 seeds");
}
