//! Determinism: the same seed and the same inputs give the same outputs, bit for bit.

mod common;

use common::*;
use rafting_core::raft::{Config, Input, Node, ProposalId};
use rafting_core::{Millis, NodeId};

/// Runs a scripted cluster history (election, writes, a partition, a crash) with tracing on.
fn scripted_history() -> (String, Vec<String>) {
    let mut cluster = Cluster::new(5);
    cluster.tracing = true;
    cluster.run_for(3_000);
    let leader = cluster.leaders()[0].get();
    for i in 0..20 {
        cluster.propose(leader, &format!("w{i}"));
    }
    cluster.run_for(200);
    cluster.isolate(leader);
    cluster.run_for(3_000);
    cluster.heal();
    cluster.crash_and_restart(leader);
    cluster.run_for(3_000);
    let statuses = (1..=5)
        .map(|id| format!("{:?}", cluster.node(id).status()))
        .collect();
    (cluster.trace, statuses)
}

/// Two runs of the same scripted history produce identical traces and final states.
#[test]
fn the_same_history_twice_gives_identical_traces() {
    let (trace_a, status_a) = scripted_history();
    let (trace_b, status_b) = scripted_history();
    assert!(trace_a.lines().count() > 100, "the history did something");
    assert_eq!(trace_a, trace_b);
    assert_eq!(status_a, status_b);
}

/// Two nodes with the same seed fed the same inputs emit equal outputs at every step; a node
/// with another seed draws other election timeouts.
#[test]
fn nodes_with_the_same_seed_produce_identical_outputs() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut a = Node::new(Config::new(NodeId(1), voters, 99)).unwrap();
    let mut b = Node::new(Config::new(NodeId(1), voters, 99)).unwrap();
    let mut other = Node::new(Config::new(NodeId(1), voters, 100)).unwrap();
    let mut differs = false;
    for step in 0..200u64 {
        let now = Millis(step * 37);
        let input = if step % 7 == 0 {
            Input::Propose {
                id: ProposalId(step),
                data: vec![step as u8],
            }
        } else {
            Input::Tick
        };
        let output_a = a.step(now, input.clone());
        let output_b = b.step(now, input.clone());
        let output_other = other.step(now, input);
        assert_eq!(output_a, output_b, "step {step}");
        differs |= output_a.wake_at != output_other.wake_at;
    }
    assert!(differs, "a different seed should draw different timeouts");
}
