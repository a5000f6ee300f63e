//! Membership changes in a simulated cluster, scripted and driven through the leader's
//! replica, retried until each step has committed, under whatever faults the scenario runs:
//! - a replacement (`replace_node`) removes a node from the configuration (the leader
//!   included), wipes its disk, brings it back as a joining learner and promotes it once it
//!   has caught up;
//! - a growth (`add_node`) adds a spare host, which started empty outside the configuration,
//!   as a learner and promotes it once caught up;
//! - a shrink (`remove_node`) removes a node (the leader included), which then runs on
//!   outside the configuration: it must not disrupt the cluster
//!   ([`crate::checkers::removed_node_quiet`]).
//!
//! Changes scripted at the same time run side by side: each turn every unfinished change
//! proposes its next step, so two changes reach the leader together and only its
//! one-change-at-a-time rule orders them (the planted bug that lifts the rule shows here).
//! See `docs/snapshots-and-membership.md`.

use crate::simulator::{EventKind, Simulator};
use rafting_core::raft::{Membership, MembershipChange};
use rafting_core::replica::{Input, RequestId};
use rafting_core::{Millis, NodeId};

/// How often the driver looks at the leader's committed configuration and (re)proposes the
/// steps it waits for.
const MEMBERSHIP_TURN_MS: u64 = 100;
/// Request ids of membership changes: apart from the clients' and the members'.
const MEMBERSHIP_REQUEST_BIT: u64 = 1 << 61;

/// Where a scripted change stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Remove,
    Rejoin,
    Add,
    Promote,
    Done,
}

/// What a scripted change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Remove, wipe, rejoin as a learner, promote.
    Replace,
    /// Add a spare as a learner, promote.
    Grow,
    /// Remove, and leave the node running outside.
    Shrink,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Replacement {
    pub node: usize,
    pub stage: Stage,
    pub plan: Plan,
}

impl Simulator<'_, '_> {
    /// Starts replacing `node` (the leader's position when `None`).
    pub(crate) fn start_replacement(&mut self, node: Option<u64>) {
        let Some(node) = self.named_or_leader(node) else {
            return;
        };
        if self
            .replacements
            .iter()
            .any(|replacement| replacement.stage != Stage::Done)
        {
            return; // One replacement at a time: a scenario's cluster keeps its majority.
        }
        self.fault(format!(
            "replace n{}: remove, wipe, rejoin, promote",
            node + 1
        ));
        self.start_change(node, Stage::Remove, Plan::Replace);
    }

    /// Starts adding the spare `node` (an id): as a learner, then promoted once caught up.
    pub(crate) fn start_growth(&mut self, node: u64) {
        let node = node as usize - 1;
        if !self.hosts[node].outside || self.changing(node) {
            return;
        }
        self.fault(format!("add n{}: as a learner, then promote", node + 1));
        self.start_change(node, Stage::Add, Plan::Grow);
    }

    /// Starts removing `node`; it runs on outside. With `None`, the leader's position, or,
    /// when the leader is already leaving, the highest member not leaving: two removals
    /// scripted together remove two nodes, the leader among them. Returns false when there
    /// is no leader to choose yet (the caller tries again shortly).
    pub(crate) fn start_shrink(&mut self, node: Option<u64>) -> bool {
        let chosen = match node {
            Some(id) => Some(id as usize - 1),
            None => {
                let Some(leader) = self.leader_position() else {
                    return false;
                };
                let staying =
                    |position: &usize| !self.hosts[*position].outside && !self.changing(*position);
                std::iter::once(leader)
                    .chain((0..self.hosts.len()).rev())
                    .find(staying)
            }
        };
        let Some(node) = chosen else {
            return true;
        };
        if self.hosts[node].outside || self.changing(node) {
            return true;
        }
        self.fault(format!("remove n{}", node + 1));
        self.start_change(node, Stage::Remove, Plan::Shrink);
        true
    }

    fn named_or_leader(&self, node: Option<u64>) -> Option<usize> {
        node.map(|id| id as usize - 1)
            .or_else(|| self.leader_position())
    }

    /// Whether a change of `node` is under way.
    fn changing(&self, node: usize) -> bool {
        self.replacements
            .iter()
            .any(|change| change.node == node && change.stage != Stage::Done)
    }

    fn start_change(&mut self, node: usize, stage: Stage, plan: Plan) {
        let idle = self
            .replacements
            .iter()
            .all(|change| change.stage == Stage::Done);
        self.replacements.push(Replacement { node, stage, plan });
        if idle {
            self.schedule_in_ms(0, EventKind::MembershipTurn);
        }
    }

    /// The committed configuration as the running leader sees it, once that leader has
    /// committed an entry of its own term: before that its commit index may lag what the
    /// cluster committed, and with it the configuration (an older one would tell the driver
    /// a removed node is still a member).
    fn leader_membership(&self) -> Option<(usize, Membership)> {
        let leader = self.leader_position()?;
        let node = self.hosts[leader].node()?;
        if node.log().term_at(node.commit_index()) != Some(node.term()) {
            return None;
        }
        Some((leader, node.committed_membership().clone()))
    }

    /// Every unfinished change takes its next step, in the order the script started them.
    pub(crate) fn on_membership_turn(&mut self) {
        for position in 0..self.replacements.len() {
            if self.replacements[position].stage != Stage::Done {
                self.advance_replacement(position);
            }
        }
        if self
            .replacements
            .iter()
            .any(|change| change.stage != Stage::Done)
        {
            self.schedule_in_ms(MEMBERSHIP_TURN_MS, EventKind::MembershipTurn);
        }
    }

    fn advance_replacement(&mut self, position: usize) {
        let Replacement { node, stage, plan } = self.replacements[position];
        let id = NodeId(node as u64 + 1);
        if stage == Stage::Rejoin {
            self.rejoin_wiped(node);
            self.replacements[position].stage = Stage::Add;
            return;
        }
        let Some((leader, committed)) = self.leader_membership() else {
            return;
        };
        let (next, change) = match stage {
            Stage::Remove if !committed.contains(id) && plan == Plan::Shrink => (Stage::Done, None),
            Stage::Remove if !committed.contains(id) => (Stage::Rejoin, None),
            Stage::Remove => (stage, Some(MembershipChange::Remove { id })),
            Stage::Add if committed.contains(id) => (Stage::Promote, None),
            Stage::Add => (
                stage,
                Some(MembershipChange::Add {
                    id,
                    address: String::new(),
                    learner: true,
                }),
            ),
            Stage::Promote if committed.is_voter(id) => (Stage::Done, None),
            Stage::Promote => (stage, Some(MembershipChange::Promote { id })),
            Stage::Rejoin | Stage::Done => (stage, None),
        };
        self.replacements[position].stage = next;
        self.note_committed(node, stage, next, plan);
        if let Some(change) = change {
            // Two changes proposed in one turn get distinct request ids.
            let request = RequestId(MEMBERSHIP_REQUEST_BIT | self.events << 8 | position as u64);
            let deadline = Millis(self.hosts[leader].local_ms(self.now_us) + 2_000);
            self.step_node(
                leader,
                Input::ChangeMembership {
                    id: request,
                    change,
                    deadline,
                },
            );
        }
    }

    /// Marks what the driver saw commit: a spare added (from now on it is a member that must
    /// catch up), a node removed for good (from now on it is outside, and must stay quiet), a
    /// change complete.
    fn note_committed(&mut self, node: usize, stage: Stage, next: Stage, plan: Plan) {
        if stage == Stage::Add && next == Stage::Promote {
            self.hosts[node].outside = false;
        }
        if stage == Stage::Remove && next == Stage::Done {
            self.hosts[node].outside = true;
            self.fault(format!("n{} removed", node + 1));
        }
        if stage == Stage::Promote && next == Stage::Done {
            let what = if plan == Plan::Replace {
                "replaced"
            } else {
                "added"
            };
            self.fault(format!("n{} {what}", node + 1));
        }
    }

    /// The removed node's process stops, its disk is wiped, and it starts again as a node
    /// joining the cluster: an empty log, itself its only learner, catching up before it may
    /// vote (the runtime's `rafting node --join`).
    fn rejoin_wiped(&mut self, node: usize) {
        if self.hosts[node].replica.is_some() {
            self.crash(node);
        }
        self.hosts[node].make_joining();
        self.fault(format!("n{}: disk wiped, joins as a learner", node + 1));
        self.restart(node);
    }
}
