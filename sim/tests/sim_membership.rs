//! Membership changes under faults (issue 16): `membership_chaos` replaces nodes one at a
//! time (the leader included) — removed, wiped, re-added as learners and promoted — while
//! partitions, crashes and loss go on; every checker holds across the configurations. More
//! seeds in release: `MEMBERSHIP_SEEDS=2000 cargo test --release -p rafting-sim --test
//! sim_membership`.

mod common;

use common::{caught_with_planted, shipped};
use rafting_sim::{run_seed, run_seeds};

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

// Seeds of the grow-and-shrink scenario pass: 3 voters grow to 5 and shrink back to 3 under
// faults, with the removed nodes running on outside the configuration.
#[test]
fn membership_grow_shrink_passes() {
    let scenario = shipped("membership_grow_shrink.toml");
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

// The story happens: in most seeds both spares are added and promoted, and two nodes are
// removed (so the cluster went 3 -> 5 -> 3 voters).
#[test]
fn the_cluster_grows_and_shrinks_in_most_seeds() {
    let scenario = shipped("membership_grow_shrink.toml");
    let (mut added, mut removed) = (0, 0);
    for seed in 1..=4 {
        let trace = String::from_utf8(common::trace_of(&scenario, seed)).expect("utf-8");
        added += trace.matches(" added\"").count();
        removed += trace.matches(" removed\"").count();
    }
    assert!(added >= 6, "{added} additions completed in 4 seeds");
    assert!(removed >= 6, "{removed} removals completed in 4 seeds");
}

// The brief-profile scenario's story happens too: both spares added, a voter replaced (it
// rejoins as a learner and is promoted) and both spares removed, with snapshots installed.
#[test]
fn membership_brief_grows_replaces_and_shrinks_in_most_seeds() {
    let scenario = shipped("membership_brief.toml");
    let (mut added, mut replaced, mut removed, mut installed) = (0, 0, 0, 0);
    for seed in 1..=4 {
        let trace = String::from_utf8(common::trace_of(&scenario, seed)).expect("utf-8");
        added += trace.matches(" added\"").count();
        replaced += trace.matches(" replaced").count();
        removed += trace.matches(" removed\"").count();
        installed += usize::from(trace.contains("installs snapshot at"));
    }
    assert!(added >= 6, "{added} additions completed in 4 seeds");
    assert!(
        replaced >= 3,
        "{replaced} replacements completed in 4 seeds"
    );
    assert!(removed >= 6, "{removed} removals completed in 4 seeds");
    assert!(
        installed >= 2,
        "snapshots installed in {installed} of 4 seeds"
    );
}

// The planted bug (`Config::planted_membership_unguarded`): leaders propose membership changes
// without the commit-first and one-at-a-time rules. In the grow-and-shrink scenario two
// changes reach the leader together (two promotions, then two removals), so two appended
// configurations differ by two voters; a partition that splits the old configuration's
// majority from the new one's then lets both commit or elect, and a safety checker fires. The
// same seeds pass with the rules on.
#[test]
fn concurrent_changes_without_the_guards_are_caught() {
    const SAFETY: &[&str] = &[
        "election_safety",
        "no_disjoint_majorities",
        "log_matching",
        "leader_completeness",
        "state_machine_safety",
        "acknowledged_write_kept",
    ];
    let mut scenario = shipped("membership_grow_shrink.toml");
    let seeds: u64 = std::env::var("PLANTED_SEEDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(24);
    let caught = caught_with_planted(&mut scenario, seeds, |scenario, on| {
        scenario.planted_membership_unguarded = on;
    });
    assert!(
        caught.iter().any(|(_, check)| SAFETY.contains(check)),
        "no seed caught the unguarded membership changes: {caught:?}"
    );
}

// `removed_node_quiet` sees a removed node disrupt the cluster when nothing stops it: without
// PreVote and CheckQuorum, a node cut off while its removal commits never hears of it, times
// out and campaigns in a term no member has reached. With them (the shipped scenario), the
// same seeds pass.
#[test]
fn a_removed_node_campaigning_without_prevote_is_caught() {
    use rafting_sim::scenario::Toggle;
    let mut scenario = shipped("membership_grow_shrink.toml");
    scenario.timing.pre_vote = Toggle::Fixed(false);
    scenario.timing.check_quorum = Toggle::Fixed(false);
    let mut caught = Vec::new();
    for seed in 1..=12 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        if let Some(violation) = report.violation {
            eprintln!("seed {seed}: {violation}");
            caught.push((seed, violation.check));
        }
    }
    assert!(
        caught
            .iter()
            .any(|(_, check)| *check == "removed_node_quiet"),
        "no seed caught a removed node campaigning: {caught:?}"
    );
    let scenario = shipped("membership_grow_shrink.toml");
    for &(seed, _) in caught.iter().take(3) {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
    }
}

// `remove_node` without a node takes the leader and, for a second removal scripted at the
// same time, the highest member not leaving: two such removals shrink 5 voters to 3, the
// leader among the removed, and the seeds pass.
#[test]
fn removals_without_a_node_take_the_leader_and_another() {
    use rafting_sim::scenario::ScriptedEvent;
    let mut scenario = shipped("membership_grow_shrink.toml");
    scenario.events.retain(|event| {
        !matches!(
            event,
            ScriptedEvent::RemoveNode { .. } | ScriptedEvent::Partition { .. }
        )
    });
    for _ in 0..2 {
        scenario.events.push(ScriptedEvent::RemoveNode {
            at_ms: 10_000,
            node: None,
        });
    }
    for seed in 1..=3 {
        let mut bytes = Vec::new();
        let report = run_seed(&scenario, seed, Some(&mut bytes))
            .expect("runs")
            .report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        let trace = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(trace.matches(" removed\"").count(), 2, "seed {seed}");
    }
}
