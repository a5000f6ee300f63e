//! Membership change, rule by rule: learners replicate but never count or campaign, a
//! configuration takes effect on append and falls back on truncation, the leader's
//! commit-first and one-at-a-time rules (and the single-server change bug they prevent), a
//! removed leader steps down and hands over, a removed node does not disrupt the cluster, and
//! the configuration travels in snapshots.

mod common;

use common::*;
use rafting_core::raft::{
    EntryPayload, Input, MembershipChange, MembershipError, ProposalOutcome, ProposeError, RoleName,
};
use rafting_core::{LogIndex, NodeId};

fn add(id: u64, learner: bool) -> MembershipChange {
    MembershipChange::Add {
        id: NodeId(id),
        address: format!("node-{id}"),
        learner,
    }
}

fn rejection(cluster: &Cluster, id: rafting_core::raft::ProposalId) -> Option<ProposeError> {
    cluster
        .proposal_outcomes(id)
        .into_iter()
        .find_map(|outcome| match outcome {
            ProposalOutcome::Rejected { error, .. } => Some(error.clone()),
            _ => None,
        })
}

fn committed(cluster: &Cluster, id: rafting_core::raft::ProposalId) -> bool {
    cluster
        .proposal_outcomes(id)
        .iter()
        .any(|outcome| matches!(outcome, ProposalOutcome::Committed { .. }))
}

/// A three-node cluster led by n1 with its no-op committed, and n4 started as a joining node.
fn cluster_with_joining_node(adjust: impl Fn(&mut rafting_core::raft::Config) + Copy) -> Cluster {
    let mut cluster = Cluster::with_config(3, adjust);
    cluster.elect(1);
    cluster.add_joining_node(4, adjust);
    cluster
}

// A learner gets every entry and applies it, but its acknowledgements never make a commit and
// it never campaigns, even when told to.
#[test]
fn a_learner_replicates_but_never_counts_or_campaigns() {
    let mut cluster = cluster_with_joining_node(|_| {});
    let change = cluster.change(1, add(4, true));
    cluster.deliver_all();
    assert!(committed(&cluster, change));
    cluster.propose(1, "x=1");
    cluster.run_for(200);
    assert_eq!(cluster.applied_commands(4), ["x=1"]);
    assert!(cluster.node(4).membership().is_learner(NodeId(4)));
    assert!(!cluster.node(4).is_voter());

    // n1 and the learner alone are not a majority of {n1, n2, n3}.
    cluster.isolate(2);
    cluster.isolate(3);
    cluster.cut.remove(&(NodeId(1), NodeId(4)));
    cluster.cut.remove(&(NodeId(4), NodeId(1)));
    cluster.propose(1, "x=2");
    cluster.deliver_all();
    assert_eq!(cluster.node(4).last_index(), cluster.node(1).last_index());
    assert!(cluster.node(1).commit_index() < cluster.node(1).last_index());

    cluster.heal();
    cluster.step(NodeId(4), Input::Campaign);
    assert!(cluster.queue.is_empty(), "a learner asks nobody for votes");
    assert_eq!(role(&cluster, 4), RoleName::Follower);
    cluster.run_for(10_000);
    assert_eq!(cluster.leaders(), [NodeId(1)]);
    assert_eq!(role(&cluster, 4), RoleName::Follower);
}

// The single-server change bug (Ongaro, raft-dev 2015) needs a leader that proposes a change
// before committing an entry of its term: the rule refuses it, and one change at a time.
#[test]
fn the_leader_proposes_a_change_only_after_committing_in_its_term_and_one_at_a_time() {
    // n1 wins, but the appends of its no-op are lost: nothing of its term has committed.
    let mut cluster = Cluster::new(3);
    cluster.step(NodeId(1), Input::Campaign);
    while !cluster.node(1).is_leader() {
        assert!(cluster.deliver_one(), "n1 wins a quiet cluster");
    }
    cluster.queue.clear();
    let early = cluster.change(1, add(4, true));
    assert_eq!(
        rejection(&cluster, early),
        Some(ProposeError::TermNotCommitted)
    );
    cluster.run_for(500);
    let later = cluster.change(1, add(4, true));
    assert_eq!(rejection(&cluster, later), None, "once the no-op committed");

    let mut cluster = cluster_with_joining_node(|_| {});
    let first = cluster.change(1, add(4, true));
    let second = cluster.change(1, add(5, true));
    assert_eq!(
        rejection(&cluster, second),
        Some(ProposeError::ChangeInProgress)
    );
    cluster.deliver_all();
    assert!(committed(&cluster, first));
    let third = cluster.change(1, add(5, true));
    assert_eq!(rejection(&cluster, third), None, "once the first committed");
    let again = cluster.change(1, add(5, true));
    assert_eq!(
        rejection(&cluster, again),
        Some(ProposeError::ChangeInProgress)
    );
    cluster.deliver_all();
    let twice = cluster.change(1, add(5, true));
    assert_eq!(
        rejection(&cluster, twice),
        Some(ProposeError::Membership(MembershipError::AlreadyMember {
            id: NodeId(5)
        }))
    );
    let unknown = cluster.change(1, MembershipChange::Remove { id: NodeId(9) });
    assert_eq!(
        rejection(&cluster, unknown),
        Some(ProposeError::Membership(MembershipError::UnknownMember {
            id: NodeId(9)
        }))
    );
    let follower = cluster.change(2, add(6, true));
    assert!(matches!(
        rejection(&cluster, follower),
        Some(ProposeError::NotLeader { .. })
    ));
}

// The bug itself, step by step, with the rules switched off on the new leader (the planted
// bug) and then on: {n1..n4}; n1 (term 1) appends "add n5" that only n5 receives; n2 wins term
// 2 with n3 and n4, and before committing anything of its term proposes "remove n1", which
// commits with n3 alone in {n2, n3, n4}; n1 then wins term 3 with n4 and n5, a majority of
// {n1..n5}, and overwrites entries n2 and n3 had committed. With the rule, n2's change is
// refused until its no-op commits, which n4 then holds, so n1 cannot win.
#[test]
fn the_single_server_change_bug_loses_committed_entries_without_the_commit_first_rule() {
    for planted in [true, false] {
        // Plain Raft elections (no PreVote, no CheckQuorum lease), so the test can pick who
        // wins without waiting out timers.
        let adjust = move |config: &mut rafting_core::raft::Config| {
            config.planted_membership_unguarded = planted;
            config.pre_vote = false;
            config.check_quorum = false;
        };
        let mut cluster = Cluster::with_config(4, adjust);
        cluster.elect(1);
        cluster.add_joining_node(5, adjust);
        // n1's change reaches n5 only.
        cluster.isolate(1);
        cluster.cut.remove(&(NodeId(1), NodeId(5)));
        cluster.cut.remove(&(NodeId(5), NodeId(1)));
        cluster.isolate(5);
        cluster.cut.remove(&(NodeId(1), NodeId(5)));
        cluster.cut.remove(&(NodeId(5), NodeId(1)));
        let add5 = cluster.change(1, add(5, false));
        cluster.deliver_all();
        assert_eq!(rejection(&cluster, add5), None);
        assert_eq!(cluster.node(5).last_index(), LogIndex(2));

        // n2 wins term 2 with n3 and n4, then talks to n3 only: its no-op cannot commit.
        cluster.step(NodeId(2), Input::Campaign);
        while !cluster.node(2).is_leader() {
            assert!(cluster.deliver_one(), "n2 wins with n3 and n4");
        }
        cluster.isolate(4);
        cluster
            .queue
            .retain(|envelope| envelope.to != NodeId(4) && envelope.from != NodeId(4));
        let remove1 = cluster.change(2, MembershipChange::Remove { id: NodeId(1) });
        cluster.deliver_all();
        if !planted {
            assert_eq!(
                rejection(&cluster, remove1),
                Some(ProposeError::TermNotCommitted)
            );
            continue;
        }
        assert!(
            committed(&cluster, remove1),
            "{{n2, n3}} is a majority of {{n2, n3, n4}}"
        );
        let lost = cluster.node(2).commit_index();

        // n1 restarts, wins term 3 with n4 and n5 and commits its own history over index 2
        // and 3.
        cluster.crash_and_restart(1);
        cluster.heal();
        cluster.isolate(2);
        cluster.isolate(3);
        for (a, b) in [(1, 4), (1, 5), (4, 5)] {
            cluster.cut.remove(&(NodeId(a), NodeId(b)));
            cluster.cut.remove(&(NodeId(b), NodeId(a)));
        }
        for _ in 0..3 {
            if !cluster.node(1).is_leader() {
                cluster.campaign(1); // n4 voted for n2 in term 2: n1 may need term 3.
            }
        }
        assert!(
            cluster.node(1).is_leader(),
            "n1 wins with a majority of {{n1..n5}}"
        );
        cluster.propose(1, "after");
        cluster.deliver_all();
        assert!(cluster.node(1).commit_index() >= lost);
        let index = LogIndex(2);
        assert_ne!(
            cluster.node(1).log().term_at(index),
            cluster.node(2).log().term_at(index),
            "two different entries committed at index 2: the bug"
        );
    }
}

// A configuration is in force from the moment it is appended; a truncation that removes it
// brings back the one before.
#[test]
fn a_configuration_takes_effect_on_append_and_falls_back_on_truncation() {
    let mut cluster = cluster_with_joining_node(|_| {});
    cluster.isolate(1);
    let change = cluster.change(1, add(4, false));
    assert_eq!(rejection(&cluster, change), None);
    assert!(
        cluster.node(1).membership().is_voter(NodeId(4)),
        "on append"
    );
    assert_eq!(cluster.node(1).committed_membership().voters.len(), 3);
    assert!(!cluster.node(2).membership().contains(NodeId(4)));

    // n2 and n3 elect one of them once n1's lease runs out, and commit a write.
    cluster.run_for(4_000);
    let leader = cluster
        .leaders()
        .into_iter()
        .find(|&id| id != NodeId(1))
        .expect("n2 or n3 leads");
    cluster.propose(leader.get(), "x=1");
    cluster.deliver_all();
    cluster.heal();
    cluster.run_for(3_000);
    assert_eq!(cluster.leaders(), [leader]);
    assert!(
        !cluster.node(1).membership().contains(NodeId(4)),
        "n1's uncommitted change was truncated: the previous configuration is back"
    );
    assert_eq!(cluster.applied_commands(1), ["x=1"]);
}

// A learner far behind cannot be promoted; once caught up it can, and then it counts.
#[test]
fn a_learner_is_promoted_only_when_caught_up_and_then_counts() {
    let mut cluster = cluster_with_joining_node(|config| config.entries_per_append_max = 2);
    let change = cluster.change(1, add(4, true));
    cluster.deliver_all();
    assert!(committed(&cluster, change));
    cluster.isolate(4);
    for n in 0..10 {
        cluster.propose(1, &format!("x={n}"));
    }
    cluster.deliver_all();
    let early = cluster.change(1, MembershipChange::Promote { id: NodeId(4) });
    assert!(matches!(
        rejection(&cluster, early),
        Some(ProposeError::Membership(
            MembershipError::NotCaughtUp { .. }
        ))
    ));
    cluster.heal();
    cluster.run_for(1_000);
    let promote = cluster.change(1, MembershipChange::Promote { id: NodeId(4) });
    cluster.deliver_all();
    assert!(committed(&cluster, promote));
    assert!(cluster.node(4).is_voter());
    // Four voters: n1 and n4 are no longer a majority, n1, n2 and n4 are.
    cluster.isolate(3);
    cluster.isolate(2);
    cluster.cut.remove(&(NodeId(1), NodeId(4)));
    cluster.cut.remove(&(NodeId(4), NodeId(1)));
    cluster.propose(1, "two of four");
    cluster.deliver_all();
    assert!(cluster.node(1).commit_index() < cluster.node(1).last_index());
    cluster.cut.remove(&(NodeId(1), NodeId(2)));
    cluster.cut.remove(&(NodeId(2), NodeId(1)));
    cluster.run_for(500);
    assert_eq!(cluster.node(1).commit_index(), cluster.node(1).last_index());
}

// A leader that removes itself keeps leading until the change commits (without counting
// itself), then steps down and hands over to a caught-up voter at once; it never campaigns
// again.
#[test]
fn a_removed_leader_steps_down_after_the_commit_and_hands_over() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let term = cluster.node(1).term();
    let change = cluster.change(1, MembershipChange::Remove { id: NodeId(1) });
    cluster.deliver_all();
    assert!(committed(&cluster, change));
    assert!(!cluster.node(1).is_leader());
    assert!(!cluster.node(1).is_voter());
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1, "the handover elected a leader at once");
    assert!(cluster.node(leaders[0].get()).term() > term);
    cluster.propose(leaders[0].get(), "after");
    cluster.run_for(5_000);
    assert_eq!(cluster.leaders(), leaders);
    assert_eq!(role(&cluster, 1), RoleName::Follower);
    // n1 hears nothing any more and never campaigns.
    cluster.step(NodeId(1), Input::Campaign);
    assert!(cluster.queue.is_empty());
}

// A node removed while cut off never learns it was removed: it keeps campaigning with its old
// configuration, but PreVote (the others' logs are ahead) and CheckQuorum keep it from
// disturbing the leader or raising the term.
#[test]
fn a_removed_node_that_never_heard_of_it_does_not_disrupt_the_cluster() {
    let mut cluster = Cluster::new(4);
    cluster.elect(1);
    cluster.isolate(4);
    let change = cluster.change(1, MembershipChange::Remove { id: NodeId(4) });
    cluster.deliver_all();
    assert!(committed(&cluster, change));
    cluster.run_for(5_000);
    assert!(cluster.node(4).is_voter(), "n4 still believes it votes");
    let term = cluster.node(1).term();
    cluster.heal();
    for _ in 0..5 {
        cluster.step(NodeId(4), Input::Campaign);
        cluster.run_for(3_000);
    }
    assert_eq!(cluster.leaders(), [NodeId(1)]);
    assert_eq!(cluster.node(1).term(), term);
    assert_eq!(cluster.node(2).term(), term);
}

// Leadership transfer works across a change: to a promoted member, never to a learner.
#[test]
fn leadership_moves_to_a_promoted_member_but_not_to_a_learner() {
    let mut cluster = cluster_with_joining_node(|_| {});
    let change = cluster.change(1, add(4, true));
    cluster.deliver_all();
    assert!(committed(&cluster, change));
    cluster.step(NodeId(1), Input::TransferLeadership { to: NodeId(4) });
    cluster.run_for(3_000);
    assert_eq!(cluster.leaders(), [NodeId(1)], "a learner cannot lead");
    let promote = cluster.change(1, MembershipChange::Promote { id: NodeId(4) });
    cluster.deliver_all();
    assert!(committed(&cluster, promote));
    cluster.step(NodeId(1), Input::TransferLeadership { to: NodeId(4) });
    cluster.run_for(1_000);
    assert_eq!(cluster.leaders(), [NodeId(4)]);
}

// The configuration at a snapshot's index travels with it: a node restarted from the
// snapshot alone, or a new member installing it, knows the members.
#[test]
fn the_configuration_travels_in_the_snapshot() {
    let mut cluster = cluster_with_joining_node(|_| {});
    let change = cluster.change(1, add(4, true));
    cluster.deliver_all();
    assert!(committed(&cluster, change));
    let applied = cluster.node(1).applied_index();
    cluster.step(
        NodeId(1),
        Input::SnapshotTaken {
            index: applied,
            image: b"image".to_vec(),
        },
    );
    cluster.deliver_all();
    let snapshot = cluster.node(1).snapshot().expect("taken").clone();
    assert!(snapshot.membership.is_learner(NodeId(4)));
    assert_eq!(cluster.node(1).log().base(), applied, "compacted");

    // A new node added now needs the snapshot, and learns the members from it.
    cluster.add_joining_node(5, |_| {});
    let add5 = cluster.change(1, add(5, true));
    cluster.run_for(1_000);
    assert!(committed(&cluster, add5));
    assert!(cluster.node(5).log().base() >= applied);
    assert!(cluster.node(5).membership().is_learner(NodeId(4)));
    assert!(cluster.node(5).membership().is_learner(NodeId(5)));

    // A restart from the snapshot alone recovers the configuration it holds.
    let durable = rafting_core::raft::DurableState {
        snapshot: Some(snapshot),
        ..Default::default()
    };
    let restarted =
        rafting_core::raft::Node::restart(cluster.configs[&NodeId(2)].clone(), durable).unwrap();
    assert!(restarted.membership().is_learner(NodeId(4)));
    let last = cluster
        .node(1)
        .log()
        .entry(cluster.node(1).last_index())
        .cloned();
    assert!(matches!(
        last.map(|entry| entry.payload),
        Some(EntryPayload::Configuration(_))
    ));
}
