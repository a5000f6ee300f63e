//! The KV workload end to end: seeds of the KV scenarios pass with the linearizability check
//! on; a planted anomaly (reads served from the contacted node's store without ReadIndex) is
//! caught by that check; and a KV seed replays byte for byte.

mod common;

use common::shipped as load;
use common::trace_of;
use rafting_sim::kv::sessions::check;
use rafting_sim::{Scenario, run_seed};

/// A shorter copy of a scenario, to keep the debug-mode test quick.
fn shortened(name: &str, duration_ms: u64) -> Scenario {
    let mut scenario = load(name);
    scenario.duration_ms = duration_ms;
    scenario.expect.clear();
    scenario
}

// Three seeds of the calm KV scenario: no violation, every seed checks hundreds of
// operations, and sessions are opened and some expire (so the session checks run).
#[test]
fn calm_kv_seeds_are_linearizable() {
    let scenario = shortened("kv_calm.toml", 12_000);
    let mut sessions_expired = 0;
    for seed in 1..=3 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        assert!(report.kv.ops_checked > 300, "seed {seed}: {:?}", report.kv);
        assert!(!report.kv.linearizability_unknown, "seed {seed}");
        assert!(
            report.kv.sessions_opened > 0,
            "seed {seed}: {:?}",
            report.kv
        );
        sessions_expired += report.kv.sessions_expired;
    }
    assert!(sessions_expired > 0, "some abandoned session should expire");
}

// The planted anomaly: with `planted_stale_reads`, a get is answered from whatever the
// contacted node (often a lagging or partitioned follower) has applied. Under leader churn
// some seed must then fail the `linearizability` check, with an explanation naming the
// conflicting operations.
#[test]
fn stale_reads_are_caught_by_the_linearizability_check() {
    let mut scenario = shortened("kv_leader_churn.toml", 16_000);
    scenario.workload.planted_stale_reads = true;
    let caught = (1..=10).find_map(|seed| {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        report
            .violation
            .filter(|violation| violation.check == check::LINEARIZABILITY)
            .map(|violation| (seed, violation))
    });
    let (seed, violation) = caught.expect("a stale read is caught within ten seeds");
    eprintln!(
        "planted stale reads caught on seed {seed}:\n{}",
        violation.detail
    );
    assert!(
        violation.detail.contains("not linearizable on key"),
        "seed {seed}: {}",
        violation.detail
    );
}

// A KV seed (stores, ticks, sessions, reads) replays to a byte-identical trace.
#[test]
fn kv_seed_replays_identically() {
    let scenario = shortened("kv_chaos.toml", 8_000);
    let first = trace_of(&scenario, 5);
    assert!(first.len() > 10_000);
    assert!(
        first == trace_of(&scenario, 5),
        "seed 5 replayed differently"
    );
}
