//! One test per rule of the Raft paper (§5.1–5.4), plus PreVote, CheckQuorum, ReadIndex,
//! leadership transfer and the persistence contract. Each test states the rule it proves.

mod common;

use common::*;
use rafting_core::raft::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, Heartbeat, Input, Message, PreVote,
    ProposalId, ProposalOutcome, ProposeError, ReadError, ReadOutcome, RequestVote,
    RequestVoteResponse, RoleName,
};
use rafting_core::{LogIndex, Millis, NodeId, Term};

fn request_vote(term: u64, last_index: u64, last_term: u64) -> Message {
    Message::RequestVote(RequestVote {
        term: Term(term),
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        transfer: false,
    })
}

fn append(term: u64, prev: (u64, u64), entries: &[(u64, u64)], commit: u64) -> Message {
    Message::AppendEntries(AppendEntries {
        term: Term(term),
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries: entries.iter().map(|&(t, i)| entry(t, i)).collect(),
        leader_commit: LogIndex(commit),
    })
}

fn vote_granted(messages: &[rafting_core::raft::Envelope]) -> Option<bool> {
    messages.iter().find_map(|e| match &e.message {
        Message::RequestVoteResponse(r) => Some(r.granted),
        _ => None,
    })
}

fn append_outcome(messages: &[rafting_core::raft::Envelope]) -> Option<AppendOutcome> {
    messages.iter().find_map(|e| match &e.message {
        Message::AppendEntriesResponse(r) => Some(r.outcome),
        _ => None,
    })
}

// ---- §5.1: terms ----

/// §5.1: a node that sees a higher term adopts it; a message from an older term is refused.
#[test]
fn a_node_adopts_a_higher_term_and_refuses_stale_ones() {
    let mut node = Solo::with(1, 3, &[1], 3);
    node.receive(2, append(5, (1, 1), &[], 0));
    assert_eq!(node.node.term(), Term(5));
    assert_eq!(node.node.leader(), Some(NodeId(2)));
    let replies = node.receive(3, append(4, (1, 1), &[(4, 2)], 0));
    assert_eq!(node.node.term(), Term(5), "the term never decreases");
    assert_eq!(
        node.node.last_index(),
        LogIndex(1),
        "a stale leader's entries are not taken"
    );
    // The stale leader is told about the newer term so it can step down.
    assert!(replies.iter().any(|e| e.message.term() == Term(5)));
}

/// §5.1: a candidate or leader that discovers a higher term steps down to follower.
#[test]
fn a_candidate_that_sees_a_higher_term_steps_down() {
    let mut cluster = Cluster::with_config(3, |c| c.pre_vote = false);
    cluster.step(NodeId(1), Input::Campaign);
    assert_eq!(role(&cluster, 1), RoleName::Candidate);
    let from = NodeId(2);
    let to = NodeId(1);
    let message = Message::RequestVoteResponse(RequestVoteResponse {
        term: Term(7),
        granted: false,
    });
    cluster.step(
        to,
        Input::Message(rafting_core::raft::Envelope { from, to, message }),
    );
    assert_eq!(role(&cluster, 1), RoleName::Follower);
    assert_eq!(term(&cluster, 1), Term(7));
}

// ---- §5.2: leader election ----

/// §5.2: votes are first come, first served: one vote per term.
#[test]
fn votes_are_first_come_first_served_one_per_term() {
    let mut node = Solo::new(1, 3);
    assert_eq!(
        vote_granted(&node.receive(2, request_vote(1, 0, 0))),
        Some(true)
    );
    assert_eq!(
        vote_granted(&node.receive(3, request_vote(1, 0, 0))),
        Some(false)
    );
    // A retransmitted request from the one it voted for is granted again.
    assert_eq!(
        vote_granted(&node.receive(2, request_vote(1, 0, 0))),
        Some(true)
    );
    // A new term frees the vote.
    assert_eq!(
        vote_granted(&node.receive(3, request_vote(2, 0, 0))),
        Some(true)
    );
}

/// §5.2: a candidate that wins a majority becomes leader and asserts itself at once.
#[test]
fn a_candidate_with_a_majority_becomes_the_only_leader() {
    let mut cluster = Cluster::new(5);
    cluster.elect(3);
    assert_eq!(cluster.leaders(), vec![NodeId(3)]);
    for id in 1..=5 {
        assert_eq!(
            cluster.node(id).leader(),
            Some(NodeId(3)),
            "n{id} knows the leader"
        );
        assert_eq!(term(&cluster, id), Term(1));
    }
}

/// §5.2: with randomized timeouts, a cluster left alone elects exactly one leader.
#[test]
fn randomized_timeouts_elect_a_single_leader() {
    let mut cluster = Cluster::new(5);
    cluster.run_for(5_000);
    assert_eq!(cluster.leaders().len(), 1);
}

/// §5.4.1: a voter refuses a candidate whose log is less up to date than its own.
#[test]
fn a_vote_is_refused_to_a_candidate_with_an_older_log() {
    let mut node = Solo::with(1, 3, &[1, 2, 2], 2);
    // Shorter log with the same last term: refused.
    assert_eq!(
        vote_granted(&node.receive(2, request_vote(3, 2, 2))),
        Some(false)
    );
    // Longer log with an older last term: refused.
    assert_eq!(
        vote_granted(&node.receive(2, request_vote(4, 9, 1))),
        Some(false)
    );
    // Higher last term wins even if shorter.
    assert_eq!(
        vote_granted(&node.receive(3, request_vote(5, 1, 3))),
        Some(true)
    );
}

// ---- §5.3: log replication ----

/// §5.3: a follower rejects AppendEntries whose previous entry does not match, with a hint.
#[test]
fn a_follower_rejects_an_append_whose_previous_entry_does_not_match() {
    let mut node = Solo::with(1, 3, &[1, 1, 2], 2);
    let outcome = append_outcome(&node.receive(2, append(3, (3, 3), &[(3, 4)], 0)));
    assert_eq!(
        outcome,
        Some(AppendOutcome::Rejected {
            rejected_prev_index: LogIndex(3),
            hint_index: LogIndex(3),
            hint_term: Some(Term(2)),
        })
    );
    assert_eq!(node.node.last_index(), LogIndex(3));
    // Too short a log: the hint is our last index + 1.
    let outcome = append_outcome(&node.receive(2, append(3, (7, 3), &[], 0)));
    assert_eq!(
        outcome,
        Some(AppendOutcome::Rejected {
            rejected_prev_index: LogIndex(7),
            hint_index: LogIndex(4),
            hint_term: None,
        })
    );
}

/// §5.3: a follower deletes a conflicting suffix and appends the leader's entries; entries that
/// already match are kept (a stale, shorter append does not truncate).
#[test]
fn a_follower_replaces_a_conflicting_suffix_but_keeps_matching_entries() {
    let mut node = Solo::with(1, 3, &[1, 1, 2, 2], 2);
    let outcome = append_outcome(&node.receive(2, append(3, (2, 1), &[(3, 3)], 0)));
    assert_eq!(
        outcome,
        Some(AppendOutcome::Accepted {
            match_index: LogIndex(3)
        })
    );
    assert_eq!(node.node.last_index(), LogIndex(3));
    assert_eq!(node.node.log().term_at(LogIndex(3)), Some(Term(3)));
    node.receive(2, append(3, (3, 3), &[(3, 4), (3, 5)], 0));
    // A delayed copy of the first append arrives: nothing after index 3 is lost.
    node.receive(2, append(3, (2, 1), &[(3, 3)], 0));
    assert_eq!(node.node.last_index(), LogIndex(5));
}

/// §5.3: the follower's commit index follows the leader's, but never past the entries this
/// append proved to match.
#[test]
fn a_follower_commits_only_what_the_append_proved() {
    let mut node = Solo::with(1, 3, &[1, 1, 1, 1], 1);
    node.receive(2, append(2, (1, 1), &[], 4));
    assert_eq!(
        node.node.commit_index(),
        LogIndex(1),
        "entries 2..4 were not checked"
    );
    node.receive(2, append(2, (2, 1), &[(2, 3)], 4));
    assert_eq!(node.node.commit_index(), LogIndex(3));
}

/// §5.3 and Figure 7: whatever the followers' logs, the leader brings every one in line with
/// its own.
#[test]
fn figure_7_follower_logs_are_all_brought_in_line() {
    let mut cluster = Cluster::new(7);
    let leader = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[u64]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    cluster.set_log(1, &leader, 7);
    for (offset, log) in followers.iter().enumerate() {
        cluster.set_log(offset as u64 + 2, log, 7);
    }
    cluster.elect(1);
    assert_eq!(term(&cluster, 1), Term(8));
    cluster.propose(1, "x");
    cluster.run_for(1_000);
    let expected = cluster.log_terms(1);
    assert_eq!(expected, vec![1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 8, 8]);
    for id in 2..=7 {
        assert_eq!(
            cluster.log_terms(id),
            expected,
            "n{id}'s log matches the leader's"
        );
        assert_eq!(cluster.node(id).commit_index(), LogIndex(12));
    }
}

// ---- §5.4: safety ----

/// §5.4.2 and Figure 8: a leader never commits an entry of an earlier term by counting
/// replicas, even when a majority stores it; only committing an entry of its own term commits
/// the earlier ones.
#[test]
fn a_leader_never_commits_an_old_term_entry_by_counting() {
    // S1 leads term 4 with its term-2 entry at index 2, stored on S1 and S2 (Figure 8 (c)).
    // S5 is down; S1 wins term 4 with S2, S3, S4 and replicates one entry per append.
    let mut cluster = Cluster::figure_8();
    cluster.step(NodeId(1), Input::Campaign);
    let mut old_entry_on_majority_uncommitted = false;
    while cluster.deliver_one() {
        let holders = |index: u64, term: u64| {
            (1..=5)
                .filter(|&id| cluster.node(id).log().matches(LogIndex(index), Term(term)))
                .count()
        };
        let commit = cluster.node(1).commit_index();
        if holders(2, 2) >= 3 && commit < LogIndex(2) {
            // The Figure 8 moment: t2i2 is on a majority, yet S5 (log ending t3) could still
            // be elected and overwrite it, so it must not count as committed.
            old_entry_on_majority_uncommitted = true;
        }
        if commit >= LogIndex(2) {
            assert!(
                holders(3, 4) >= 3,
                "t2i2 committed before an entry of term 4 was on a majority"
            );
        }
    }
    assert!(
        old_entry_on_majority_uncommitted,
        "the scenario never reached the Figure 8 moment"
    );
    // The no-op of term 4 reached a majority: it commits, and index 2 commits with it.
    assert_eq!(cluster.node(1).commit_index(), LogIndex(3));
    assert!(cluster.node(1).log().matches(LogIndex(2), Term(2)));
}

/// Figure 8 (d): because the old-term entry was not committed, a newer leader may overwrite it,
/// and no node ever applied it.
#[test]
fn figure_8_an_uncommitted_old_term_entry_may_be_overwritten_but_was_never_applied() {
    let mut cluster = Cluster::with_config(5, |c| c.entries_per_append_max = 1);
    cluster.set_log(1, &[1, 2], 4);
    cluster.set_log(2, &[1, 2], 4);
    cluster.set_log(3, &[1, 2], 4);
    cluster.set_log(4, &[1], 4);
    cluster.set_log(5, &[1, 3], 4);
    // S1 crashed; S5 (last term 3) wins with S2, S3, S4 and overwrites index 2.
    cluster.isolate(1);
    cluster.elect(5);
    cluster.run_for(500);
    for id in 2..=5 {
        assert!(
            cluster.node(id).log().matches(LogIndex(2), Term(3)),
            "n{id}"
        );
        let applied: Vec<_> = cluster.applied[&NodeId(id)]
            .iter()
            .map(|e| (e.index, e.term))
            .collect();
        assert!(
            !applied.contains(&(LogIndex(2), Term(2))),
            "n{id} applied an overwritten entry"
        );
    }
}

/// §5.4.2: a new leader's no-op commits the entries of earlier terms it carries.
#[test]
fn a_new_leader_commits_earlier_entries_through_its_noop() {
    let mut cluster = Cluster::new(3);
    cluster.set_log(1, &[1, 1, 2], 2);
    cluster.set_log(2, &[1, 1, 2], 2);
    cluster.set_log(3, &[1], 2);
    cluster.elect(1);
    cluster.run_for(300);
    for id in 1..=3 {
        assert_eq!(cluster.node(id).commit_index(), LogIndex(4), "n{id}");
        assert_eq!(cluster.applied_commands(id), vec!["t1i1", "t1i2", "t2i3"]);
    }
}

// ---- PreVote ----

/// PreVote: a node that was partitioned does not bump its term while cut off, so when it
/// rejoins it does not depose a healthy leader.
#[test]
fn pre_vote_a_rejoining_node_does_not_disrupt_a_healthy_leader() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(3);
    cluster.run_for(10_000);
    assert_eq!(
        term(&cluster, 3),
        Term(1),
        "pre-votes never bump the isolated node's term"
    );
    cluster.heal();
    cluster.run_for(3_000);
    assert_eq!(cluster.leaders(), vec![NodeId(1)]);
    assert_eq!(term(&cluster, 1), Term(1));
}

/// PreVote: a pre-vote request changes nobody's term or vote.
#[test]
fn pre_vote_requests_change_no_state() {
    let mut node = Solo::with(1, 3, &[1], 1);
    let replies = node.receive(
        2,
        Message::PreVote(PreVote {
            term: Term(2),
            last_log_index: LogIndex(1),
            last_log_term: Term(1),
        }),
    );
    assert_eq!(node.node.term(), Term(1));
    assert_eq!(node.node.voted_for(), None);
    assert!(
        matches!(&replies[0].message, Message::PreVoteResponse(r) if r.granted && r.term == Term(2))
    );
}

// ---- CheckQuorum ----

/// CheckQuorum: a leader that cannot hear a majority steps down within an election timeout.
#[test]
fn check_quorum_an_isolated_leader_steps_down() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(1);
    cluster.run_for(2_100);
    assert_ne!(role(&cluster, 1), RoleName::Leader);
    let others: Vec<_> = cluster.leaders();
    assert_eq!(others.len(), 1, "the majority side elected a new leader");
    assert_ne!(others[0], NodeId(1));
}

/// CheckQuorum: a follower that heard from its leader recently ignores a vote request, without
/// even adopting the candidate's term.
#[test]
fn check_quorum_followers_in_lease_ignore_vote_requests() {
    let mut node = Solo::with(1, 3, &[1], 1);
    node.receive(
        2,
        Message::Heartbeat(Heartbeat {
            term: Term(1),
            commit: LogIndex(0),
            round: 0,
        }),
    );
    let replies = node.receive(3, request_vote(2, 5, 1));
    assert!(replies.is_empty());
    assert_eq!(node.node.term(), Term(1));
    // Once the lease has run out, the same request is heard.
    node.now = Millis(5_000);
    let replies = node.receive(3, request_vote(2, 5, 1));
    assert_eq!(vote_granted(&replies), Some(true));
}

// ---- Crash hints (Input::PeerUnreachable) ----

/// A leader's process dies and the runtime sees its port refuse datagrams: followers told so
/// elect a new leader within a few heartbeats, where the election timeout alone (1–2 s) has
/// not even fired yet.
#[test]
fn followers_told_their_leader_is_gone_elect_a_new_one_within_heartbeats() {
    let mut hinted = Cluster::new(3);
    let mut silent = Cluster::new(3);
    for cluster in [&mut hinted, &mut silent] {
        cluster.elect(1);
        cluster.run_for(500);
        cluster.isolate(1); // as good as dead: nothing in or out
    }
    for follower in [2, 3] {
        hinted.step(NodeId(follower), Input::PeerUnreachable { peer: NodeId(1) });
    }
    hinted.run_for(300);
    silent.run_for(300);
    let new_leaders: Vec<_> = hinted
        .leaders()
        .into_iter()
        .filter(|&id| id != NodeId(1))
        .collect();
    assert_eq!(new_leaders.len(), 1, "one new leader within 300 ms");
    assert_eq!(
        silent.leaders(),
        vec![NodeId(1)],
        "without the hint nobody has moved yet"
    );
    assert_eq!(role(&silent, 2), RoleName::Follower);
}

/// A false report about a healthy leader cannot unseat it: the other follower still hears the
/// leader, so it refuses the early pre-vote, and the reported follower rejoins at the next
/// heartbeat. Nobody's term moves.
#[test]
fn a_false_unreachable_report_does_not_unseat_a_healthy_leader() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.run_for(500);
    cluster.step(NodeId(2), Input::PeerUnreachable { peer: NodeId(1) });
    assert_eq!(
        cluster.node(2).leader(),
        None,
        "the follower gave up on its leader"
    );
    cluster.run_for(3_000);
    assert_eq!(cluster.leaders(), vec![NodeId(1)]);
    for id in 1..=3 {
        assert_eq!(term(&cluster, id), Term(1), "n{id} kept its term");
    }
    assert_eq!(cluster.node(2).leader(), Some(NodeId(1)));
}

/// Only a report about one's own leader matters: a follower told that another follower is
/// gone keeps its leader and its lease, and a leader ignores reports altogether.
#[test]
fn an_unreachable_report_about_anyone_but_the_leader_changes_nothing() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.run_for(500);
    cluster.step(NodeId(2), Input::PeerUnreachable { peer: NodeId(3) });
    cluster.step(NodeId(1), Input::PeerUnreachable { peer: NodeId(2) });
    assert_eq!(cluster.node(2).leader(), Some(NodeId(1)));
    assert_eq!(role(&cluster, 1), RoleName::Leader);
    // Still in the leader's lease: a vote request from a peer is refused.
    let mut follower = Solo::with(2, 3, &[1], 1);
    follower.receive(1, append(1, (1, 1), &[], 1));
    let _ = follower.step(Input::PeerUnreachable { peer: NodeId(3) });
    let replies = follower.receive(3, request_vote(2, 1, 1));
    assert!(
        replies
            .iter()
            .all(|r| !matches!(&r.message, Message::RequestVoteResponse(v) if v.granted)),
        "a follower in lease refuses votes: {replies:?}"
    );
}

// ---- Proposals ----

/// A proposal to a follower fails at once, naming the leader; nothing is queued silently.
#[test]
fn a_proposal_to_a_follower_fails_with_a_leader_hint() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let id = cluster.propose(2, "x");
    assert_eq!(
        cluster.proposal_outcomes(id),
        vec![&ProposalOutcome::Rejected {
            id,
            error: ProposeError::NotLeader {
                leader_hint: Some(NodeId(1))
            }
        }]
    );
}

/// A committed proposal is reported committed once, and applied in order on every node.
#[test]
fn a_committed_proposal_is_reported_and_applied_everywhere() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let a = cluster.propose(1, "a");
    let b = cluster.propose(1, "b");
    cluster.run_for(300);
    for id in [a, b] {
        let outcomes = cluster.proposal_outcomes(id);
        assert!(matches!(outcomes[0], ProposalOutcome::Accepted { .. }));
        assert!(matches!(outcomes[1], ProposalOutcome::Committed { .. }));
        assert_eq!(outcomes.len(), 2);
    }
    for id in 1..=3 {
        assert_eq!(cluster.applied_commands(id), vec!["a", "b"]);
    }
}

/// The leader refuses proposals beyond its cap on uncommitted entries instead of queueing
/// without bound.
#[test]
fn proposals_beyond_the_uncommitted_cap_are_refused() {
    let mut cluster = Cluster::with_config(3, |c| c.uncommitted_entries_max = 3);
    cluster.elect(1);
    cluster.isolate(1);
    let ids: Vec<_> = (0..4)
        .map(|i| cluster.propose(1, &format!("p{i}")))
        .collect();
    let rejected = ids
        .iter()
        .filter(|&&id| {
            matches!(
                cluster.proposal_outcomes(id)[0],
                ProposalOutcome::Rejected {
                    error: ProposeError::UncommittedLimit,
                    ..
                }
            )
        })
        .count();
    assert_eq!(rejected, 1);
}

/// When a leader loses leadership, its pending proposals are answered "unknown", not dropped.
#[test]
fn pending_proposals_get_an_answer_when_leadership_is_lost() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(1);
    let id = cluster.propose(1, "x");
    cluster.run_for(2_100);
    let outcomes = cluster.proposal_outcomes(id);
    assert!(
        matches!(outcomes.last().unwrap(), ProposalOutcome::Unknown { .. }),
        "{outcomes:?}"
    );
}

// ---- ReadIndex ----

/// ReadIndex: a read is released only after a quorum confirmed leadership in a round that
/// started after the read arrived, at the commit index of its arrival.
#[test]
fn read_index_waits_for_a_quorum_round() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.propose(1, "a");
    cluster.run_for(100);
    let read = cluster.read(1);
    assert_eq!(
        cluster.read_outcome(read),
        None,
        "not before the heartbeat round"
    );
    cluster.deliver_all();
    assert_eq!(
        cluster.read_outcome(read),
        Some(&ReadOutcome::Ready {
            id: read,
            index: LogIndex(2)
        })
    );
}

/// ReadIndex: a leader cut off from the majority never serves a read; the read fails when it
/// steps down.
#[test]
fn read_index_a_deposed_leader_never_serves_a_read() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(1);
    let read = cluster.read(1);
    cluster.run_for(2_100);
    assert!(matches!(
        cluster.read_outcome(read),
        Some(ReadOutcome::Failed {
            error: ReadError::NotLeader { .. },
            ..
        })
    ));
}

/// ReadIndex: before the new leader has committed an entry of its term, reads wait.
#[test]
fn read_index_waits_for_the_leaders_first_commit() {
    let mut cluster = Cluster::new(3);
    cluster.step(NodeId(1), Input::Campaign);
    while !cluster.node(1).is_leader() {
        assert!(cluster.deliver_one());
    }
    let read = cluster.read(1);
    assert_eq!(cluster.read_outcome(read), None);
    cluster.deliver_all();
    assert_eq!(
        cluster.read_outcome(read),
        Some(&ReadOutcome::Ready {
            id: read,
            index: LogIndex(1)
        })
    );
}

/// A read on a follower fails at once with a hint.
#[test]
fn a_read_on_a_follower_fails_with_a_leader_hint() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let read = cluster.read(3);
    assert!(matches!(
        cluster.read_outcome(read),
        Some(ReadOutcome::Failed {
            error: ReadError::NotLeader {
                leader_hint: Some(NodeId(1))
            },
            ..
        })
    ));
}

// ---- Leadership transfer ----

/// Transfer: the leader brings the target up to date, then the target takes over at once,
/// even though the other followers heard from the old leader a moment ago.
#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.cut.insert((NodeId(1), NodeId(3)));
    cluster.propose(1, "a");
    cluster.run_for(100);
    assert!(cluster.node(3).last_index() < cluster.node(1).last_index());
    cluster.heal();
    cluster.step(NodeId(1), Input::TransferLeadership { to: NodeId(3) });
    let refused = cluster.propose(1, "during");
    assert!(matches!(
        cluster.proposal_outcomes(refused)[0],
        ProposalOutcome::Rejected {
            error: ProposeError::TransferInProgress,
            ..
        }
    ));
    cluster.run_for(300);
    assert_eq!(cluster.leaders(), vec![NodeId(3)]);
    assert_eq!(term(&cluster, 3), Term(2));
    assert_eq!(cluster.applied_commands(3), vec!["a"]);
}

// ---- The persistence contract ----

/// An append acknowledgement leaves only after the follower's batch is durable.
#[test]
fn an_append_is_acknowledged_only_after_it_is_durable() {
    let mut node = Solo::with(1, 3, &[], 0);
    let output = node.step_raw(Input::Message(rafting_core::raft::Envelope {
        from: NodeId(2),
        to: NodeId(1),
        message: append(1, (0, 0), &[(1, 1)], 0),
    }));
    assert!(
        output.messages.is_empty(),
        "no acknowledgement before the write"
    );
    let batch = output.persist.expect("the entry must be persisted");
    assert_eq!(batch.entries.len(), 1);
    let output = node.step_raw(Input::Persisted(batch.id));
    assert_eq!(
        append_outcome(&output.messages),
        Some(AppendOutcome::Accepted {
            match_index: LogIndex(1)
        })
    );
}

/// A vote leaves only after the voter's term and vote are durable.
#[test]
fn a_vote_is_sent_only_after_it_is_durable() {
    let mut node = Solo::new(1, 3);
    let output = node.step_raw(Input::Message(rafting_core::raft::Envelope {
        from: NodeId(2),
        to: NodeId(1),
        message: request_vote(1, 0, 0),
    }));
    assert!(output.messages.is_empty());
    let batch = output.persist.expect("the vote must be persisted");
    assert_eq!(batch.hard_state.unwrap().voted_for, Some(NodeId(2)));
    let output = node.step_raw(Input::Persisted(batch.id));
    assert_eq!(vote_granted(&output.messages), Some(true));
}

/// A leader commits only what it has itself made durable (or a quorum without it has).
#[test]
fn a_leader_counts_itself_only_once_its_write_is_durable() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.run_for(100);
    cluster.manual_persist.insert(NodeId(1));
    cluster.manual_persist.insert(NodeId(2));
    cluster.propose(1, "a");
    cluster.deliver_all();
    assert_eq!(
        cluster.node(1).commit_index(),
        LogIndex(1),
        "only n3 holds the entry durably"
    );
    cluster.persist(NodeId(1));
    cluster.deliver_all();
    assert_eq!(cluster.node(1).commit_index(), LogIndex(2));
}

/// A crash loses what was not durable; after restart the node rejoins and catches up.
#[test]
fn a_crashed_follower_recovers_from_its_disk_and_catches_up() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.propose(1, "a");
    cluster.run_for(100);
    cluster.manual_persist.insert(NodeId(3));
    cluster.propose(1, "b");
    cluster.deliver_all();
    cluster.crash_and_restart(3);
    cluster.manual_persist.clear();
    assert_eq!(
        cluster.node(3).last_index(),
        LogIndex(2),
        "b was never durable on n3"
    );
    cluster.run_for(500);
    assert_eq!(cluster.applied_commands(3), vec!["a", "b"]);
}

/// An AppendEntriesResponse from a stale append is ignored; a current one moves the match.
#[test]
fn stale_append_responses_do_not_move_progress_backwards() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.propose(1, "a");
    cluster.run_for(100);
    let before = cluster.node(1).status().peers[0].match_index;
    let from = NodeId(2);
    let to = NodeId(1);
    let outcome = AppendOutcome::Rejected {
        rejected_prev_index: LogIndex(0),
        hint_index: LogIndex(1),
        hint_term: None,
    };
    let message = Message::AppendEntriesResponse(AppendEntriesResponse {
        term: Term(1),
        outcome,
    });
    cluster.step(
        to,
        Input::Message(rafting_core::raft::Envelope { from, to, message }),
    );
    assert_eq!(cluster.node(1).status().peers[0].match_index, before);
    assert_eq!(cluster.node(1).status().peers[0].state, "replicate");
}

/// Pipelining is bounded: with a window of two appends, a leader whose follower does not answer
/// sends two appends and then waits, however many proposals arrive.
#[test]
fn the_in_flight_window_bounds_unacknowledged_appends() {
    let mut cluster = Cluster::with_config(3, |c| {
        c.inflight_messages_max = 2;
        c.entries_per_append_max = 1;
    });
    cluster.elect(1);
    cluster.run_for(100);
    // n2's answers are lost from now on.
    cluster.cut.insert((NodeId(2), NodeId(1)));
    for i in 0..6 {
        cluster.propose(1, &format!("p{i}"));
    }
    let appends_to_n2 = cluster
        .queue
        .iter()
        .filter(|e| e.to == NodeId(2) && matches!(e.message, Message::AppendEntries(_)))
        .count();
    assert_eq!(appends_to_n2, 2);
    assert_eq!(cluster.node(1).status().peers[0].state, "replicate");
    // n3 answers, so the entries still commit.
    cluster.deliver_all();
    assert_eq!(cluster.node(1).commit_index(), cluster.node(1).last_index());
}

/// ReadIndex batching: reads that arrive while a heartbeat round is out share the next round,
/// so the leader sends one round per round trip, not one per read; all are served.
#[test]
fn read_index_batches_reads_into_rounds() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.run_for(100);
    let heartbeats = |cluster: &Cluster| {
        cluster
            .queue
            .iter()
            .filter(|e| matches!(e.message, Message::Heartbeat(_)))
            .count()
    };
    let first = cluster.read(1);
    assert_eq!(heartbeats(&cluster), 2, "one round to the two followers");
    let later: Vec<_> = (0..5).map(|_| cluster.read(1)).collect();
    assert_eq!(heartbeats(&cluster), 2, "no new round while one is out");
    cluster.deliver_all();
    for id in std::iter::once(first).chain(later) {
        assert!(
            matches!(cluster.read_outcome(id), Some(ReadOutcome::Ready { .. })),
            "{id:?}"
        );
    }
}

/// A batch of proposals shares one persist batch and one append per follower, and each
/// proposal gets its own outcome.
#[test]
fn a_proposal_batch_is_replicated_as_one_append() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.run_for(100);
    let proposals = (0..10)
        .map(|i| (ProposalId(100 + i), vec![b'a' + i as u8]))
        .collect();
    cluster.step(NodeId(1), Input::ProposeBatch { proposals });
    let appends: Vec<usize> = cluster
        .queue
        .iter()
        .filter_map(|e| match &e.message {
            Message::AppendEntries(append) => Some(append.entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(appends, vec![10, 10]);
    cluster.deliver_all();
    for i in 0..10 {
        let outcomes = cluster.proposal_outcomes(ProposalId(100 + i));
        assert!(
            matches!(outcomes[1], ProposalOutcome::Committed { .. }),
            "{outcomes:?}"
        );
    }
    cluster.run_for(100);
    assert_eq!(cluster.applied_commands(2).len(), 10);
}

/// A candidate asks for votes only once its new term and its vote for itself are durable:
/// otherwise the others' votes alone can make it leader of a term its own disk does not hold.
#[test]
fn a_candidate_asks_for_votes_only_once_its_term_and_vote_are_durable() {
    let mut node = Solo::new(1, 3);
    let mut output = node.step_raw(Input::Campaign);
    // PreVote changes no state and may go at once; answer it so the node campaigns.
    if output.persist.is_none() {
        for from in [2, 3] {
            let response = Message::PreVoteResponse(rafting_core::raft::PreVoteResponse {
                term: Term(1),
                granted: true,
            });
            output = node.step_raw(Input::Message(rafting_core::raft::Envelope {
                from: NodeId(from),
                to: NodeId(1),
                message: response,
            }));
            if output.persist.is_some() {
                break;
            }
        }
    }
    let batch = output
        .persist
        .expect("the new term and vote must be persisted");
    assert_eq!(batch.hard_state.unwrap().voted_for, Some(NodeId(1)));
    let asks = |messages: &[rafting_core::raft::Envelope]| {
        messages
            .iter()
            .filter(|e| matches!(e.message, Message::RequestVote(_)))
            .count()
    };
    assert_eq!(
        asks(&output.messages),
        0,
        "no RequestVote before the term is durable"
    );
    let output = node.step_raw(Input::Persisted(batch.id));
    assert_eq!(
        asks(&output.messages),
        2,
        "both peers are asked once it is durable"
    );
}

/// Issue 19's history: a candidate whose term and self-vote are not yet durable wins on the
/// others' votes, appends an entry that reaches only n2, and crashes before its disk catches
/// up; it restarts in the old term, campaigns again, is re-granted by n3 (which voted for it
/// already) and must not lead that term a second time with a different entry at the same
/// index — n2 would keep the first entry while the others commit the second.
#[test]
fn a_node_never_leads_the_same_term_twice_across_a_crash() {
    let mut cluster = Cluster::new(3);
    cluster.manual_persist.insert(NodeId(1));
    cluster.step(NodeId(1), Input::Campaign);
    // Once n3 has voted for n1, n1's appends stop reaching n3.
    while cluster.node(3).voted_for() != Some(NodeId(1)) && cluster.deliver_one() {}
    cluster.cut.insert((NodeId(1), NodeId(3)));
    while !cluster.node(1).is_leader() && cluster.deliver_one() {}
    let first_reign = cluster.node(1).is_leader().then(|| term(&cluster, 1));
    if first_reign.is_some() {
        cluster.propose(1, "first");
        cluster.deliver_all();
    }
    cluster.crash_and_restart(1);
    cluster.manual_persist.clear();
    // n2's refusal (its log is longer) is lost on the way, so n1 does not learn of term 1.
    cluster.cut.clear();
    cluster.cut.insert((NodeId(2), NodeId(1)));
    cluster.campaign(1);
    let second_reign = cluster.node(1).is_leader().then(|| term(&cluster, 1));
    assert!(
        first_reign.is_none() || first_reign != second_reign,
        "n1 led {first_reign:?} twice"
    );
    if cluster.node(1).is_leader() {
        cluster.propose(1, "second");
        cluster.run_for(300);
    }
    // Whatever happened, no two nodes hold different entries at one (index, term).
    let mut seen = std::collections::BTreeMap::new();
    for id in 1..=3 {
        for entry in cluster
            .node(id)
            .log()
            .entries_from(LogIndex(1), usize::MAX, usize::MAX)
        {
            let described = describe_entry(&entry);
            let previous = seen.insert((entry.index, entry.term), described.clone());
            assert!(
                previous
                    .as_ref()
                    .is_none_or(|previous| *previous == described),
                "n{id} holds {described} where another node holds {previous:?}"
            );
        }
    }
}

/// A rejected probe that leaves the leader's guess where it was is not re-sent at once: that
/// was a hot loop between a leader and a follower that had lost entries (issue 19). It waits
/// for the next heartbeat interval; a rejection that moves the guess is answered at once.
#[test]
fn a_rejection_that_moves_nothing_waits_for_the_next_heartbeat_interval() {
    use rafting_core::raft::progress::Progress;
    let mut progress = Progress::new(LogIndex(11));
    progress.on_sent(LogIndex(10), 0, 0);
    assert!(
        !progress.can_send(8, 1 << 20),
        "a probe waits for its answer"
    );
    // The follower's hint moves the guess back: the next probe may go at once.
    assert!(progress.on_rejected(LogIndex(10), LogIndex(6)));
    assert_eq!(progress.next_index, LogIndex(6));
    assert!(progress.can_send(8, 1 << 20));
    progress.on_sent(LogIndex(5), 0, 0);
    // A rejection that cannot move the guess below the match point keeps the probe paused.
    progress.match_index = LogIndex(5);
    assert!(progress.on_rejected(LogIndex(5), LogIndex(2)));
    assert_eq!(progress.next_index, LogIndex(6));
    assert!(
        !progress.can_send(8, 1 << 20),
        "the same probe would only be rejected again"
    );
    progress.on_heartbeat_interval();
    assert!(progress.can_send(8, 1 << 20));
}

/// A three-node cluster where n1 (A) and n2 (B) acknowledged 20 writes while n3 (C) was cut
/// off; then n3 is back and n1 is cut off.
fn twenty_writes_without_n3_then_n1_cut_off() -> Cluster {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(3);
    for n in 0..20 {
        cluster.propose(1, &format!("w{n}"));
    }
    cluster.run_for(300);
    assert_eq!(cluster.applied_commands(1).len(), 20);
    cluster.heal();
    cluster.isolate(1);
    cluster
}

/// Issue 10, item 9: a voter that lost its disk must not help elect a stale node. C is down
/// while A and B acknowledge 20 writes; A goes away and B comes back on a wiped disk. B, still
/// catching up, refuses C its vote, so no leader emerges without A; when A returns, it leads
/// and every acknowledged write survives on every node.
#[test]
fn a_node_restarted_on_an_empty_disk_does_not_elect_a_stale_node() {
    let mut cluster = twenty_writes_without_n3_then_n1_cut_off();
    cluster.wipe_and_restart(2);
    cluster.run_for(6_000);
    assert!(cluster.leaders().is_empty(), "B must not elect stale C");
    assert!(cluster.node(2).is_catching_up());
    cluster.heal();
    cluster.run_for(6_000);
    assert_eq!(cluster.leaders().len(), 1);
    for id in 1..=3 {
        let applied = cluster.applied_commands(id);
        assert!(applied.len() >= 20, "n{id} applied only {applied:?}");
        assert_eq!(
            applied[..20].to_vec(),
            (0..20).map(|n| format!("w{n}")).collect::<Vec<_>>()
        );
    }
    assert!(
        !cluster.node(2).is_catching_up(),
        "B caught up and may vote again"
    );
}

/// Issue 16: a node whose disk returns a log that misses entries (every snapshot file that
/// covered the compacted part damaged) lost what it acknowledged, like a wiped disk: it
/// restarts catching up, so it cannot elect stale C without A, and once A is back it is
/// brought up to date and votes again.
#[test]
fn a_node_restarted_on_a_log_that_misses_entries_catches_up_before_voting() {
    let mut cluster = twenty_writes_without_n3_then_n1_cut_off();
    let entries = &mut cluster.disks.get_mut(&NodeId(2)).unwrap().state.entries;
    assert!(entries.len() > 10);
    entries.drain(..10);
    cluster.crash_and_restart(2);
    assert!(
        cluster.node(2).is_catching_up(),
        "a log with a gap is a loss"
    );
    assert_eq!(
        cluster.node(2).last_index(),
        LogIndex(0),
        "nothing after the gap is trusted"
    );
    cluster.run_for(6_000);
    assert!(cluster.leaders().is_empty(), "B must not elect stale C");
    cluster.heal();
    cluster.run_for(6_000);
    assert_eq!(cluster.leaders().len(), 1);
    assert!(!cluster.node(2).is_catching_up());
    assert!(cluster.applied_commands(2).len() >= 20);
}

/// A catching-up node neither campaigns nor grants (pre-)votes, and once caught up it still
/// refuses a vote in the term it caught up in (it may have voted in it before losing its disk).
#[test]
fn a_catching_up_node_neither_votes_nor_campaigns() {
    let mut cluster = Cluster::new(3);
    cluster.wipe_and_restart(2);
    cluster.isolate(2);
    cluster.run_for(5_000);
    assert_eq!(role(&cluster, 2), RoleName::Follower, "it never campaigns");
    assert_eq!(term(&cluster, 2), Term(0));
    cluster.step(NodeId(2), Input::Campaign);
    assert_eq!(
        role(&cluster, 2),
        RoleName::Follower,
        "not even when told to"
    );
    cluster.heal();
    cluster.queue.clear();
    let vote = request_vote(1, 0, 0);
    cluster.step(
        NodeId(2),
        Input::Message(rafting_core::raft::Envelope {
            from: NodeId(3),
            to: NodeId(2),
            message: vote,
        }),
    );
    let granted = cluster.queue.iter().any(|e| {
        matches!(&e.message, Message::RequestVoteResponse(r) if r.granted) && e.to == NodeId(3)
    });
    assert!(!granted, "a catching-up node grants no vote");
    // n1 and n3 elected a leader meanwhile; once n2 holds its committed log, it takes part.
    let leader = cluster.leaders()[0];
    cluster.propose(leader.get(), "a");
    cluster.run_for(500);
    assert!(!cluster.node(2).is_catching_up());
    assert_eq!(cluster.applied_commands(2), vec!["a"]);
}

/// n1 leads three nodes and commits ten writes everywhere; then n2 loses its whole disk and
/// restarts, catching up.
fn ten_writes_then_n2_wiped() -> Cluster {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    for n in 0..10 {
        cluster.propose(1, &format!("w{n}"));
    }
    cluster.run_for(300);
    cluster.wipe_and_restart(2);
    cluster
}

/// Issue 10, item 9 (the milder form): a follower whose disk was wiped under the same leader
/// rejects probes at its old match point; the leader notices that its log ends below what it
/// acknowledged, counts a disk loss, and brings it up to date instead of probing forever.
#[test]
fn a_leader_resets_a_follower_whose_disk_lost_what_it_acknowledged() {
    let mut cluster = ten_writes_then_n2_wiped();
    cluster.propose(1, "after");
    cluster.run_for(1_000);
    let status = cluster.node(1).status();
    let peer = status.peers.iter().find(|p| p.id == NodeId(2)).unwrap();
    assert_eq!(peer.disk_losses, 1, "{status:?}");
    assert_eq!(cluster.node(2).last_index(), cluster.node(1).last_index());
    assert_eq!(cluster.applied_commands(2).len(), 11);
    assert!(!cluster.node(2).is_catching_up());
}

/// The same loss in an idle cluster: nothing is written after the wipe, so no append would
/// tell the leader. The follower's heartbeat answers say its log ends below its match point;
/// the leader probes there, counts the loss, and brings it up to date, so that it votes again.
#[test]
fn an_idle_leader_resets_a_follower_whose_heartbeats_report_a_lost_log() {
    let mut cluster = ten_writes_then_n2_wiped();
    assert!(cluster.node(2).is_catching_up());
    cluster.run_for(1_000);
    let status = cluster.node(1).status();
    let peer = status.peers.iter().find(|p| p.id == NodeId(2)).unwrap();
    assert_eq!(peer.disk_losses, 1, "{status:?}");
    assert!(!peer.doubted, "{status:?}");
    assert_eq!(cluster.node(2).last_index(), cluster.node(1).last_index());
    assert_eq!(cluster.applied_commands(2).len(), 10);
    assert!(!cluster.node(2).is_catching_up());
    // A healthy follower's answers change nothing: no probe, no loss counted.
    let peer = status.peers.iter().find(|p| p.id == NodeId(3)).unwrap();
    assert_eq!(
        (peer.disk_losses, peer.state),
        (0, "replicate"),
        "{status:?}"
    );
}
