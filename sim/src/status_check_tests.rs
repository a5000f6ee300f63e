//! The status check is fed hand-made lies (a leader that names no leader, a follower that
//! believes in the wrong leader, a catch-up the simulator never caused, a leader without its
//! followers, or with one twice, out of order, a stranger or itself among them, a transfer to
//! itself or to a non-voter, an overfull or stale in-flight window, a probe of a follower known
//! to hold the whole log, reads held past the cap or fewer than were handed over, a catch-up
//! ended before its target was on disk, a miscounted backlog) and must report each under its
//! name; the true status of the same situation must pass.

use super::*;
use rafting_core::raft::{Entry, EntryPayload, PeerStatus};
use std::collections::BTreeSet;

fn leader_status() -> Status {
    let peer = |id: u64| PeerStatus {
        id: NodeId(id),
        match_index: LogIndex(5),
        next_index: LogIndex(8),
        state: "replicate",
        recent_active: true,
        disk_losses: 0,
        doubted: false,
        appends_in_flight: 2,
        bytes_in_flight: 200,
    };
    Status {
        id: NodeId(1),
        role: RoleName::Leader,
        term: Term(3),
        leader: Some(NodeId(1)),
        commit_index: LogIndex(5),
        applied_index: LogIndex(5),
        last_index: LogIndex(7),
        durable_index: LogIndex(7),
        catching_up: false,
        catch_up_target: None,
        pending_reads: 2,
        uncommitted_bytes: 0,
        transfer_target: Some(NodeId(3)),
        snapshot_index: LogIndex::ZERO,
        first_log_index: LogIndex(1),
        snapshots_installed: 0,
        snapshot_checksum_failures: 0,
        voters: [1, 2, 3].into_iter().map(NodeId).collect(),
        learners: BTreeSet::new(),
        peers: vec![peer(2), peer(3)],
    }
}

fn follower_status() -> Status {
    Status {
        id: NodeId(2),
        role: RoleName::Follower,
        leader: Some(NodeId(1)),
        pending_reads: 0,
        transfer_target: None,
        peers: Vec::new(),
        ..leader_status()
    }
}

fn expect_lie(status: &Status, truth: &Truth, words: &str) {
    let violation = status_true(status, truth).expect_err(words);
    assert_eq!(violation.check, STATUS_TRUE);
    assert!(violation.detail.contains(words), "{}", violation.detail);
}

#[test]
fn status_true_catches_hand_made_lies() {
    let leaders: BTreeMap<Term, (NodeId, u64)> = [(Term(3), (NodeId(1), 0))].into();
    let mut config = Config::new(NodeId(1), [1, 2, 3].map(NodeId), 1);
    config.inflight_messages_max = 2;
    config.pending_reads_max = 3;
    let truth = Truth {
        leaders: &leaders,
        config: &config,
        wiped: false,
        reads_handed: 2,
    };
    assert!(status_true(&leader_status(), &truth).is_ok());
    assert!(status_true(&follower_status(), &truth).is_ok());

    let mut lie = leader_status();
    lie.leader = None;
    expect_lie(&lie, &truth, "leads but reports");
    let mut lie = follower_status();
    lie.leader = Some(NodeId(3));
    expect_lie(&lie, &truth, "believes n3 leads term t3");
    let mut lie = follower_status();
    lie.catching_up = true;
    expect_lie(&lie, &truth, "never wiped");
    let wiped = Truth {
        wiped: true,
        ..truth
    };
    assert!(status_true(&lie, &wiped).is_ok());
    let mut lie = leader_status();
    lie.catching_up = true;
    expect_lie(&lie, &wiped, "catching up as a leader");

    let mut lie = leader_status();
    lie.peers.clear();
    expect_lie(&lie, &truth, "in a configuration of");
    // The followers are compared with the configuration in place: each other member once, in
    // id order, no stranger, not the leader itself; learners count as members.
    let peers = |ids: &[u64]| -> Vec<PeerStatus> {
        let template = leader_status().peers[0].clone();
        let peer = |&id: &u64| PeerStatus {
            id: NodeId(id),
            ..template.clone()
        };
        ids.iter().map(peer).collect()
    };
    for reported in [
        &[2, 2, 3][..],
        &[3, 2],
        &[2],
        &[2, 4],
        &[1, 2, 3],
        &[2, 3, 3],
    ] {
        let mut lie = leader_status();
        lie.peers = peers(reported);
        expect_lie(&lie, &truth, "in a configuration of [NodeId(2), NodeId(3)]");
    }
    let mut with_learner = leader_status();
    with_learner.learners = [NodeId(4)].into();
    expect_lie(
        &with_learner,
        &truth,
        "in a configuration of [NodeId(2), NodeId(3), NodeId(4)]",
    );
    with_learner.peers = peers(&[2, 3, 4]);
    assert!(status_true(&with_learner, &truth).is_ok());
    // A wrong membership is reported before a wrong follower.
    let mut lie = leader_status();
    lie.peers = peers(&[2]);
    lie.peers[0].appends_in_flight = 3;
    expect_lie(&lie, &truth, "in a configuration of");

    let mut lie = leader_status();
    lie.peers[1].appends_in_flight = 3;
    lie.peers[1].next_index = LogIndex(10);
    expect_lie(&lie, &truth, "above inflight_messages_max 2");
    let mut lie = leader_status();
    lie.peers[0].match_index = LogIndex(7);
    lie.peers[0].appends_in_flight = 1;
    expect_lie(&lie, &truth, "only 0 entries sent past its match");
    let mut lie = leader_status();
    lie.transfer_target = Some(NodeId(1));
    expect_lie(&lie, &truth, "hands leadership to n1");
    let mut lie = leader_status();
    lie.transfer_target = Some(NodeId(4));
    expect_lie(&lie, &truth, "hands leadership to n4");
    let mut lie = leader_status();
    lie.peers[0].state = "probe";
    lie.peers[0].match_index = LogIndex(7);
    lie.peers[0].next_index = LogIndex(8);
    lie.peers[0].appends_in_flight = 0;
    expect_lie(&lie, &truth, "probes n2, which matches its whole log");
    lie.snapshot_index = LogIndex(7);
    assert!(
        status_true(&lie, &truth).is_ok(),
        "just installed the snapshot"
    );
    lie.snapshot_index = LogIndex::ZERO;
    lie.peers[0].doubted = true;
    assert!(
        status_true(&lie, &truth).is_ok(),
        "its heartbeat answer reported a shorter log"
    );
    let mut lie = leader_status();
    lie.pending_reads = 4;
    expect_lie(&lie, &truth, "holds 4 reads (at most 3)");
    let mut lie = leader_status();
    lie.pending_reads = 0;
    expect_lie(&lie, &truth, "2 handed to it");
}

#[test]
fn catch_up_must_end_durably() {
    let check = |on_disk, commit| {
        catch_up_finished_durably(
            NodeId(3),
            Term(4),
            LogIndex(10),
            LogIndex(on_disk),
            LogIndex(commit),
        )
    };
    assert!(check(10, 10).is_ok());
    assert!(check(12, 11).is_ok());
    let violation = check(9, 10).unwrap_err();
    assert_eq!(violation.check, STATUS_TRUE);
    assert!(
        violation.detail.contains("9 on its disk"),
        "{}",
        violation.detail
    );
    assert!(check(10, 9).is_err());
}

#[test]
fn backlog_count_is_recounted() {
    let entry = |index: u64, data: &[u8]| Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: EntryPayload::Command(data.to_vec().into()),
    };
    let log = RaftLog::recovered(
        vec![entry(1, b"a"), entry(2, b"bb"), entry(3, b"ccc")],
        LogIndex(1),
    );
    let counted = log.uncommitted_bytes();
    assert_eq!(counted, 2 * 24 + 5, "core's documented entry size");
    assert!(backlog_counted(NodeId(1), Term(1), counted, &log).is_ok());
    let violation = backlog_counted(NodeId(1), Term(1), counted + 24, &log).unwrap_err();
    assert_eq!(violation.check, STATUS_TRUE);
    assert!(violation.detail.contains("hold 53"), "{}", violation.detail);
}
