//! Snapshots under faults (issue 16): `snapshot_chaos` compacts every few dozen entries, so
//! followers left behind are brought back by InstallSnapshot, restarts load snapshot files and
//! fall back from damaged ones, and every installed state is checked against the state its
//! sender took at that index (`snapshot_state_matches`). A planted bug — followers install
//! without checking the image's CRC — is caught once chunks are damaged on the way.

mod common;

use common::{caught_with_planted, shipped_for};
use rafting_sim::run_seed;
use rafting_sim::scenario::Span;

// Short runs of the shipped scenario pass, and in them snapshots are taken, installed (many
// times resent from the follower's offset) and restarted from.
#[test]
fn snapshot_chaos_passes_and_reaches_its_story() {
    let scenario = shipped_for("snapshot_chaos.toml", 12_000);
    let mut reached = std::collections::BTreeMap::<&str, u64>::new();
    for seed in 1..=6 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        for state in report.coverage.reached.keys() {
            *reached.entry(state).or_default() += 1;
        }
    }
    for (state, seeds) in [
        ("snapshot_taken", 6),
        ("snapshot_installed", 3),
        ("restarted_from_snapshot", 1),
    ] {
        assert!(
            reached.get(state).copied().unwrap_or(0) >= seeds,
            "{state}: {reached:?}"
        );
    }
}

// The planted bug: a follower installs an assembled image without checking its CRC. With
// chunks damaged on the way now and then, a damaged image gets installed and the follower's
// state differs from its sender's at that index. The same seeds pass without the bug.
#[test]
fn installing_without_the_checksum_is_caught() {
    let mut scenario = shipped_for("snapshot_chaos.toml", 12_000);
    scenario.snapshots.chunk_corruption_probability = Span::Exactly(0.01);
    let caught = caught_with_planted(&mut scenario, 10, |scenario, on| {
        scenario.snapshots.planted_unverified = on;
    });
    assert!(
        caught
            .iter()
            .any(|(_, check)| *check == "snapshot_state_matches"),
        "no seed caught the planted unverified install: {caught:?}"
    );
}
