//! What a node says about itself (its status page: the leader it believes in, whether it is
//! catching up, the leader's view of each follower, the reads it holds, its uncommitted
//! backlog, the voter it is handing leadership to) checked against what the simulator knows
//! to be true.
//!
//! Operators act on a node's status: they wait for "catching up" to clear before the next
//! restart, read the leader from any node, watch in-flight windows and pending reads against
//! their limits. A status that lies breaks no safety property, so no other check sees it;
//! this one does, after every step of the node stepped. The ground truth comes from the
//! simulator: the leader recorded for each term, which disks it wiped, what its simulated disk
//! really holds, the reads the request path has handed to the node, and the node's own log
//! recounted entry by entry.

use crate::checkers::{Violation, entry_bytes};
use crate::simulator::Simulator;
use rafting_core::raft::{Config, Node, PeerStatus, RaftLog, RoleName, Status};
use rafting_core::{LogIndex, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet};

/// The name under which this check reports.
pub const STATUS_TRUE: &str = "status_true";

/// What the simulator knows that a node's status must agree with.
pub struct Truth<'a> {
    /// The leader of each term, as the election checks recorded it.
    pub leaders: &'a BTreeMap<Term, (NodeId, u64)>,
    /// The node's configuration (its limits).
    pub config: &'a Config,
    /// The simulator wiped this node's disk (or made it join from nothing) and has not yet
    /// seen it caught up: the only case in which it may report catching up.
    pub wiped: bool,
    /// Client reads its request path has handed to the node and not yet seen answered.
    pub reads_handed: usize,
}

/// A node's status agrees with the simulator's ground truth: the leader it believes in led
/// that term (itself, when it leads); it catches up only after a wipe, and never while
/// leading; a leader reports every follower of its configuration, with in-flight appends
/// within `inflight_messages_max` and each holding an entry not yet acknowledged, and none
/// probed that is known to hold the whole log; and a
/// leader holds at least the reads handed to it, at most `pending_reads_max`; and a leader
/// hands leadership only to another voter.
pub fn status_true(status: &Status, truth: &Truth) -> Result<(), Violation> {
    let belief = Belief {
        id: status.id,
        role: status.role,
        term: status.term,
        leader: status.leader,
        catching_up: status.catching_up,
    };
    let leader = (status.role == RoleName::Leader).then(|| LeaderView::of_status(status));
    views_true(&belief, leader, truth)
}

/// [`status_true`] on what a node reports, read in place: its belief through its accessors
/// and, on a leader, its view of its followers without copying them (the check runs after
/// every step, and a full [`Node::status`] copies the configuration and every follower's
/// progress each time).
pub fn node_status_true(node: &Node, truth: &Truth) -> Result<(), Violation> {
    let leader = node.is_leader().then(|| leader_view(node));
    views_true(&Belief::of(node), leader, truth)
}

fn views_true<Peers>(
    belief: &Belief,
    leader: Option<LeaderView<'_, Peers>>,
    truth: &Truth,
) -> Result<(), Violation>
where
    Peers: Iterator<Item = PeerStatus> + Clone,
{
    let error =
        belief_error(belief, truth).or_else(|| leader.and_then(|view| leader_error(&view, truth)));
    match error {
        None => Ok(()),
        Some(detail) => Err(violation(belief.id, belief.term, detail)),
    }
}

/// The part of a status every role reports, read through the node's own accessors.
pub struct Belief {
    pub id: NodeId,
    pub role: RoleName,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub catching_up: bool,
}

impl Belief {
    pub fn of(node: &Node) -> Belief {
        Belief {
            id: node.id(),
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            catching_up: node.is_catching_up(),
        }
    }
}

fn belief_error(belief: &Belief, truth: &Truth) -> Option<String> {
    let leads = belief.role == RoleName::Leader;
    if leads && belief.leader != Some(belief.id) {
        return Some(format!("leads but reports the leader {:?}", belief.leader));
    }
    let recorded = truth.leaders.get(&belief.term).map(|&(who, _)| who);
    if let Some(leader) = belief.leader
        && recorded != Some(leader)
    {
        return Some(format!(
            "believes {leader} leads term {}, which the simulator saw led by {recorded:?}",
            belief.term
        ));
    }
    if belief.catching_up && (leads || !truth.wiped) {
        return Some(format!(
            "reports catching up as a {} whose disk was {}",
            belief.role.as_str(),
            if truth.wiped { "wiped" } else { "never wiped" }
        ));
    }
    None
}

/// The part of a leader's status about its followers and duties, borrowed: from a [`Status`]
/// (hand-made ones in the tests) or from the node itself.
struct LeaderView<'a, Peers> {
    id: NodeId,
    last_index: LogIndex,
    snapshot_index: LogIndex,
    voters: &'a BTreeSet<NodeId>,
    learners: &'a BTreeSet<NodeId>,
    transfer_target: Option<NodeId>,
    pending_reads: usize,
    /// Each follower's progress, in the order reported (a clone iterates again).
    peers: Peers,
}

impl<'a> LeaderView<'a, std::iter::Cloned<std::slice::Iter<'a, PeerStatus>>> {
    fn of_status(status: &'a Status) -> Self {
        LeaderView {
            id: status.id,
            last_index: status.last_index,
            snapshot_index: status.snapshot_index,
            voters: &status.voters,
            learners: &status.learners,
            transfer_target: status.transfer_target,
            pending_reads: status.pending_reads,
            peers: status.peers.iter().cloned(),
        }
    }
}

/// A leader's view read in place from the node.
fn leader_view(node: &Node) -> LeaderView<'_, impl Iterator<Item = PeerStatus> + Clone + '_> {
    let membership = node.log().membership();
    LeaderView {
        id: node.id(),
        last_index: node.last_index(),
        snapshot_index: node.snapshot_index(),
        voters: &membership.voters,
        learners: &membership.learners,
        transfer_target: node.transfer_target(),
        pending_reads: node.pending_reads(),
        peers: node.peer_statuses(),
    }
}

/// The leader's part: its view of each follower and the reads it holds. One pass over the
/// followers (this runs after every leader step); the errors keep their order: membership,
/// transfer, the first follower's, reads.
fn leader_error<Peers>(view: &LeaderView<'_, Peers>, truth: &Truth) -> Option<String>
where
    Peers: Iterator<Item = PeerStatus> + Clone,
{
    let mut members_reported = 0;
    let mut in_order_of_members = true;
    let mut previous = None;
    let mut follower_error = None;
    for peer in view.peers.clone() {
        // Strictly increasing ids of other members: none twice, none a stranger.
        let member = view.voters.contains(&peer.id) || view.learners.contains(&peer.id);
        if peer.id == view.id || !member || previous >= Some(peer.id) {
            in_order_of_members = false;
        }
        previous = Some(peer.id);
        members_reported += 1;
        if follower_error.is_none() {
            follower_error = follower_error_of(&peer, view, truth);
        }
    }
    if !in_order_of_members || members_reported != other_members(view) {
        let mut members: Vec<NodeId> = view
            .voters
            .iter()
            .chain(view.learners)
            .copied()
            .filter(|&member| member != view.id)
            .collect();
        members.sort();
        members.dedup();
        let reported: Vec<NodeId> = view.peers.clone().map(|peer| peer.id).collect();
        return Some(format!(
            "a leader reporting progress of {reported:?} in a configuration of {members:?}"
        ));
    }
    if let Some(target) = view.transfer_target
        && (target == view.id || !view.voters.contains(&target))
    {
        return Some(format!(
            "hands leadership to {target}, which is not another voter of {:?}",
            view.voters
        ));
    }
    if follower_error.is_some() {
        return follower_error;
    }
    let reads_max = truth.config.pending_reads_max;
    if view.pending_reads > reads_max || view.pending_reads < truth.reads_handed {
        return Some(format!(
            "holds {} reads (at most {reads_max}) with {} handed to it unanswered",
            view.pending_reads, truth.reads_handed
        ));
    }
    None
}

/// The members of the configuration other than the leader, each counted once (a node in
/// both sets, which no configuration holds, counts once too).
fn other_members<Peers>(view: &LeaderView<'_, Peers>) -> usize {
    let learners_only = view.learners.iter().filter(|&id| !view.voters.contains(id));
    let leader_is_member = view.voters.contains(&view.id) || view.learners.contains(&view.id);
    view.voters.len() + learners_only.count() - usize::from(leader_is_member)
}

/// What is wrong with the leader's view of one follower: its in-flight appends, or a probe
/// of a follower known to hold the whole log.
fn follower_error_of<Peers>(
    peer: &PeerStatus,
    view: &LeaderView<'_, Peers>,
    truth: &Truth,
) -> Option<String> {
    let window = truth.config.inflight_messages_max;
    let unacknowledged = peer
        .next_index
        .get()
        .saturating_sub(peer.match_index.get() + 1);
    if peer.appends_in_flight > window {
        return Some(format!(
            "{} appends in flight to {}, above inflight_messages_max {window}",
            peer.appends_in_flight, peer.id
        ));
    }
    // A follower known to hold the leader's whole log needs no probe: only a snapshot it has
    // just installed (its match is then the snapshot's index), or a heartbeat answer that said
    // its log is shorter (`doubted`), leaves it probing there.
    if peer.state == "probe"
        && peer.match_index >= view.last_index
        && peer.match_index != view.snapshot_index
        && !peer.doubted
    {
        return Some(format!(
            "probes {}, which matches its whole log up to {}",
            peer.id, peer.match_index
        ));
    }
    if peer.appends_in_flight as u64 > unacknowledged {
        return Some(format!(
            "{} appends in flight to {} but only {unacknowledged} entries sent past its match {}",
            peer.appends_in_flight, peer.id, peer.match_index
        ));
    }
    None
}

/// A node that ends its catch-up in this step holds, durably on its disk, everything up to
/// the target it was catching up to, and has committed it: it votes from that log from now on,
/// and a crash must not take it away.
pub fn catch_up_finished_durably(
    node: NodeId,
    term: Term,
    target: LogIndex,
    on_disk: LogIndex,
    commit: LogIndex,
) -> Result<(), Violation> {
    if on_disk >= target && commit >= target {
        return Ok(());
    }
    let detail =
        format!("ended its catch-up to {target} with {on_disk} on its disk and commit {commit}");
    Err(violation(node, term, detail))
}

/// The uncommitted backlog the node counts (for `uncommitted_bytes_max`) equals its entries
/// after the commit index, recounted here.
pub fn backlog_counted(
    node: NodeId,
    term: Term,
    counted: usize,
    log: &RaftLog,
) -> Result<(), Violation> {
    let mut recount = 0;
    let mut index = log.commit().max(log.base()).next();
    while let Some(entry) = log.entry(index) {
        recount += entry_bytes(entry);
        index = index.next();
    }
    if recount == counted {
        return Ok(());
    }
    let detail = format!(
        "counts {counted} uncommitted bytes; its entries after commit {} hold {recount}",
        log.commit()
    );
    Err(violation(node, term, detail))
}

fn violation(node: NodeId, term: Term, detail: String) -> Violation {
    Violation {
        check: STATUS_TRUE,
        at_us: 0,
        nodes: vec![node.get()],
        index: None,
        term: Some(term.get()),
        detail,
    }
}

/// What the status check needs from before a step.
pub(crate) struct BeforeStep {
    pub last_index: LogIndex,
    pub catch_up_target: Option<LogIndex>,
}

impl BeforeStep {
    pub(crate) fn of(node: &Node) -> BeforeStep {
        BeforeStep {
            last_index: node.last_index(),
            catch_up_target: node.catch_up_target(),
        }
    }
}

impl Simulator<'_, '_> {
    /// Checks the status of the node just stepped; `truncated` says whether the step removed
    /// entries from its log (the only time the backlog count is recounted: it is O(backlog)).
    pub(crate) fn check_status(&mut self, node: usize, before: &BeforeStep, truncated: bool) {
        if self.scenario.attacker.enabled() && !self.scenario.secret {
            // Forged messages from spoofed members are accepted: a node may rightly believe in
            // a leader no election made. The safety checks judge what the forgeries do.
            return;
        }
        let host = &self.hosts[node];
        let Some(replica) = host.replica.as_ref() else {
            return;
        };
        let raft = replica.node();
        let (id, term) = (raft.id(), raft.term());
        if let Some(target) = before.catch_up_target
            && !raft.is_catching_up()
        {
            let on_disk = host.disk.durable().last_index();
            let commit = raft.commit_index();
            let result = catch_up_finished_durably(id, term, target, on_disk, commit);
            self.check(result);
        }
        if truncated && let Some(raft) = self.hosts[node].node() {
            let counted = raft.log().uncommitted_bytes();
            let result = backlog_counted(id, term, counted, raft.log());
            self.check(result);
        }
        let host = &self.hosts[node];
        let Some(replica) = host.replica.as_ref() else {
            return;
        };
        let raft = replica.node();
        let truth = Truth {
            leaders: &self.record.leaders,
            config: &host.config,
            wiped: host.catching_up,
            reads_handed: replica.pending_reads(),
        };
        let result = node_status_true(raft, &truth);
        self.check(result);
    }
}

#[cfg(test)]
#[path = "status_check_tests.rs"]
mod tests;
