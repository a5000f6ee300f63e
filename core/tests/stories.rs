//! Interaction stories: a script of inputs and the messages and state changes that follow,
//! recorded as insta snapshots. Each reads like the paper's prose for one subtle rule; a
//! change in behaviour shows up as a readable diff of the story.

mod common;

use common::*;
use rafting_core::NodeId;
use rafting_core::raft::Input;
use std::fmt::Write;

fn traced(count: u64) -> Cluster {
    let mut cluster = Cluster::new(count);
    cluster.tracing = true;
    cluster
}

fn say(cluster: &mut Cluster, line: &str) {
    let _ = writeln!(cluster.trace, "# {line}");
}

/// An election with PreVote: the pre-candidate asks first, then campaigns, wins, and appends
/// its no-op, which commits everywhere.
#[test]
fn story_election_with_pre_vote() {
    let mut cluster = traced(3);
    say(&mut cluster, "n1's election timer fires");
    cluster.campaign(1);
    say(
        &mut cluster,
        "a heartbeat interval later, the commit index reaches the followers",
    );
    cluster.run_for(100);
    insta::assert_snapshot!(cluster.trace);
}

/// A partitioned node keeps asking for pre-votes without raising its term; when it comes back
/// the leader is undisturbed, and it learns the log.
#[test]
fn story_pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(3);
    cluster.run_for(2_500);
    cluster.tracing = true;
    say(
        &mut cluster,
        "n3 was cut off for 2.5 s; its pre-votes went nowhere. Now it is back.",
    );
    cluster.heal();
    cluster.step(NodeId(3), Input::Campaign);
    cluster.deliver_all();
    say(
        &mut cluster,
        "n1 and n2 ignore it: n2 heard from n1 moments ago, and n1 leads",
    );
    say(
        &mut cluster,
        "n1's next heartbeat reaches n3, which rejoins as a follower in term 1",
    );
    cluster.run_for(100);
    insta::assert_snapshot!(cluster.trace);
}

/// Leadership transfer: the old leader sends TimeoutNow once the target is up to date; the
/// target campaigns with the transfer flag, which voters honour despite their lease.
#[test]
fn story_leadership_transfer() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.propose(1, "a");
    cluster.run_for(100);
    cluster.tracing = true;
    say(&mut cluster, "n1 is asked to hand leadership to n2");
    cluster.step(NodeId(1), Input::TransferLeadership { to: NodeId(2) });
    cluster.deliver_all();
    insta::assert_snapshot!(cluster.trace);
}

/// Figure 8: a leader of term 4 holds an entry of term 2 on a majority but does not commit it
/// until its own no-op of term 4 is on a majority too.
#[test]
fn story_figure_8_old_term_entry_commits_only_with_the_current_term() {
    let mut cluster = Cluster::figure_8();
    cluster.tracing = true;
    say(
        &mut cluster,
        "S5 is down. S1 (log t1 t2) campaigns in term 4",
    );
    cluster.step(NodeId(1), Input::Campaign);
    cluster.deliver_all();
    let commit = cluster.node(1).commit_index().get();
    say(&mut cluster, &format!("S1's commit index is now {commit}"));
    insta::assert_snapshot!(cluster.trace);
}
