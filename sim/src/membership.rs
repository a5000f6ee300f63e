//! Membership changes in a simulated cluster: a scripted replacement removes a node from the
//! configuration (the leader included), wipes its disk, brings it back as a joining learner
//! and promotes it once it has caught up, all through the leader's replica, retried until each
//! step has committed, under whatever faults the scenario runs. See
//! `docs/snapshots-and-membership.md`.

use crate::simulator::{EventKind, Simulator};
use rafting_core::raft::{Membership, MembershipChange};
use rafting_core::replica::{Input, RequestId};
use rafting_core::{Millis, NodeId};

/// How often the driver looks at the leader's committed configuration and (re)proposes the
/// step it waits for.
const MEMBERSHIP_TURN_MS: u64 = 100;
/// Request ids of membership changes: apart from the clients' and the members'.
const MEMBERSHIP_REQUEST_BIT: u64 = 1 << 61;

/// Where a replacement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Remove,
    Rejoin,
    Add,
    Promote,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Replacement {
    pub node: usize,
    pub stage: Stage,
}

impl Simulator<'_, '_> {
    /// Starts replacing `node` (the leader's position when `None`).
    pub(crate) fn start_replacement(&mut self, node: Option<u64>) {
        let Some(node) = node
            .map(|id| id as usize - 1)
            .or_else(|| self.leader_position())
        else {
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
        self.replacements.push(Replacement {
            node,
            stage: Stage::Remove,
        });
        self.schedule_in_ms(0, EventKind::MembershipTurn);
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

    pub(crate) fn on_membership_turn(&mut self) {
        let Some(position) = self
            .replacements
            .iter()
            .position(|replacement| replacement.stage != Stage::Done)
        else {
            return;
        };
        self.advance_replacement(position);
        if self.replacements[position].stage != Stage::Done {
            self.schedule_in_ms(MEMBERSHIP_TURN_MS, EventKind::MembershipTurn);
        }
    }

    fn advance_replacement(&mut self, position: usize) {
        let Replacement { node, stage } = self.replacements[position];
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
        if next == Stage::Done {
            self.fault(format!("n{} replaced", node + 1));
        }
        if let Some(change) = change {
            let request = RequestId(MEMBERSHIP_REQUEST_BIT | self.events);
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

    /// The removed node's process stops, its disk is wiped, and it starts again as a node
    /// joining the cluster: an empty log, itself its only learner, catching up before it may
    /// vote (the runtime's `rafting node --join`).
    fn rejoin_wiped(&mut self, node: usize) {
        if self.hosts[node].replica.is_some() {
            self.crash(node);
        }
        let host = &mut self.hosts[node];
        host.disk = crate::wal_disk::WalDisk::new(host.id);
        host.catching_up = true;
        host.config.voters.clear();
        host.config.learners = [host.id].into_iter().collect();
        self.fault(format!("n{}: disk wiped, joins as a learner", node + 1));
        self.restart(node);
    }
}
