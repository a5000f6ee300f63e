//! The simulator's own rules (issue 19): a scenario without clients still runs its nodes, a
//! seed that exceeds its budget ends as a `hang`, the simulated disk groups batches per fsync
//! as the runtime does, and a scenario whose story does not happen fails. Each of the first
//! three failed before its fix.

mod common;

use common::{caught_with_planted, shipped as load};
use rafting_sim::{Scenario, run_seed};
use std::path::Path;

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("inline.toml")).unwrap_or_else(|error| panic!("{error}"))
}

// With no clients nothing but the timers steps a node; the first timer must step every node,
// so an election-only scenario elects a leader (it used to stay silent: no node ever ran).
#[test]
fn a_scenario_without_clients_still_elects_a_leader() {
    let scenario = parse(
        r#"
        name = "no_clients"
        profile = "brief"
        nodes = 3
        duration_ms = 5000
        [workload]
        clients = 0
        [[expect]]
        check = "single_leader"
        at_ms = 4900
        "#,
    );
    for seed in 1..=5 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        assert!(report.events > 0);
        assert!(report.coverage.reached.is_empty() || report.liveness_ms.is_some());
    }
}

// A seed past its event budget, or holding more waiting events than its memory bound, ends
// as a reported `hang` instead of running on (one planted bug once grew a seed to 19 GB).
#[test]
fn a_seed_over_its_budget_ends_as_a_hang() {
    let mut scenario = load("chaos.toml");
    scenario.limits.events_max = 2_000;
    let report = run_seed(&scenario, 1, None).expect("runs").report;
    let violation = report
        .violation
        .expect("the budget is far too small for a seed");
    assert_eq!(violation.check, "hang");
    assert!(
        violation.detail.contains("2000 events"),
        "{}",
        violation.detail
    );

    let mut scenario = load("chaos.toml");
    scenario.limits.queued_events_max = 3;
    let report = run_seed(&scenario, 1, None).expect("runs").report;
    assert_eq!(report.violation.expect("bounded queue").check, "hang");
}

// Group commit: batches written while an fsync runs are made durable together by the next
// one, and the node hears only of the last (the runtime's storage thread does the same). The
// trace's `persisted` lines of one node therefore skip batch numbers on a slow disk.
#[test]
fn one_fsync_makes_every_batch_written_before_it_durable() {
    let mut scenario = load("kv_calm.toml");
    scenario.duration_ms = 3_000;
    scenario.expect.clear();
    scenario.disk.fsync_latency_ms = [50, 100];
    let mut trace = Vec::new();
    let report = run_seed(&scenario, 3, Some(&mut trace))
        .expect("runs")
        .report;
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let mut last_batch: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut grouped = 0;
    for line in String::from_utf8(trace).expect("utf-8").lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("json line");
        if event["kind"] != "persisted" {
            continue;
        }
        let node = event["node"].as_u64().expect("node");
        let batch = event["batch"].as_u64().expect("batch");
        let previous = last_batch.insert(node, batch).unwrap_or(0);
        assert!(batch > previous, "batches become durable in order");
        if batch > previous + 1 {
            grouped += 1;
        }
    }
    assert!(grouped > 0, "no fsync ever covered more than one batch");
}

// With disks slower than the session clock's tick interval (50-300 ms per fsync), a KV
// cluster keeps up: ticks and writes share fsyncs instead of queueing one fsync each. (A
// guard: these seeds also passed with one fsync per batch.)
#[test]
fn kv_seeds_on_slow_disks_stay_live() {
    let mut scenario = load("kv_calm.toml");
    scenario.duration_ms = 6_000;
    scenario.expect.clear();
    scenario.disk.fsync_latency_ms = [50, 300];
    for seed in 1..=3 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
    }
}

// An `expect_reached` expectation fails a seed whose story did not happen.
#[test]
fn a_story_that_does_not_happen_fails_its_expectation() {
    let scenario = parse(
        r#"
        name = "calm_but_expects_transfer"
        profile = "brief"
        nodes = 3
        duration_ms = 3000
        [[expect]]
        check = "reached"
        state = "elected_by_transfer"
        at_ms = 2900
        "#,
    );
    let report = run_seed(&scenario, 1, None).expect("runs").report;
    let violation = report.violation.expect("nothing transfers leadership here");
    assert_eq!(violation.check, "expect_reached");
}

// Issue 10, item 9: the checkers catch a wiped node that votes at once (the behaviour before
// catch-up-before-voting): having forgotten its vote it votes twice in a term (two leaders),
// or elects a stale node that lacks committed entries. The same seeds pass when the node
// catches up first.
#[test]
fn a_wiped_node_that_votes_at_once_is_caught() {
    let mut scenario = load("disk_wipe.toml");
    scenario.expect.clear();
    let caught = caught_with_planted(&mut scenario, 20, |scenario, on| {
        scenario.crashes.planted_wiped_node_votes = on;
    });
    assert!(
        !caught.is_empty(),
        "no seed caught the planted forgetful voter"
    );
}

// Issue 11: the Raft paper's Figure 8, step by step (`figure8_paper.toml`), catches a leader
// that commits an entry of an earlier term by counting the followers holding it: the entry is
// committed, then overwritten by a node that held a later term's entry at its index. The same
// seeds pass with the rule of §5.4.2 (the scenario's own expectations check that the story
// happened in them).
#[test]
fn a_leader_that_commits_old_entries_by_counting_is_caught() {
    let mut scenario = load("figure8_paper.toml");
    let caught = caught_with_planted(&mut scenario, 10, |scenario, on| {
        scenario.planted_commit_by_counting = on;
    });
    assert!(
        caught
            .iter()
            .any(|(_, check)| *check == "leader_completeness"),
        "no seed caught the leader committing by counting: {caught:?}"
    );
}
