//! Faults: random ones drawn at the seed's rates (partitions, crashes, pauses), scripted ones
//! at the scenario's times, and the crash, restart, pause and heal mechanics they share.

use crate::checkers;
use crate::disk::SimulatedDisk;
use crate::network::describe;
use crate::scenario::{CrashTarget, Profile, ScriptedEvent};
use crate::simulator::{EventKind, Phase, Simulator};
use crate::trace::TraceEvent;
use rafting_core::LogIndex;
use rafting_core::raft::{Node, RoleName};
use rafting_core::replica::{Input, RequestId};
use rand::Rng;

/// Mean gap between faults at `per_minute`, in milliseconds; `None` when they never happen.
fn mean_gap_ms(per_minute: f64) -> Option<u64> {
    (per_minute > 0.0).then(|| (60_000.0 / per_minute) as u64)
}

impl Simulator<'_, '_> {
    pub(crate) fn fault(&mut self, what: String) {
        self.tracer.record(self.now_us, TraceEvent::Fault { what });
    }

    fn faults_active(&self) -> bool {
        self.phase == Phase::Safety
    }

    /// Schedules the next random fault of a kind, a uniform gap around its mean away.
    fn schedule_random(&mut self, per_minute: f64, kind: EventKind) {
        if let Some(mean) = mean_gap_ms(per_minute) {
            let gap = self.streams.faults.random_range(0..=2 * mean.max(1));
            self.schedule_in_ms(gap, kind);
        }
    }

    pub(crate) fn schedule_first_faults(&mut self) {
        self.schedule_random(
            self.params.partitions_per_minute,
            EventKind::RandomPartition,
        );
        self.schedule_random(self.params.crashes_per_minute, EventKind::RandomCrash);
        self.schedule_random(self.params.pauses_per_minute, EventKind::RandomPause);
    }

    /// The running leader with the highest term, if any.
    pub(crate) fn leader_position(&self) -> Option<usize> {
        self.hosts
            .iter()
            .enumerate()
            .filter_map(|(position, host)| {
                let node = host.node().filter(|node| node.is_leader())?;
                Some((node.term(), position))
            })
            .max()
            .map(|(_, position)| position)
    }

    fn draw_ms(&mut self, range: [u64; 2]) -> u64 {
        self.streams.faults.random_range(range[0]..=range[1])
    }

    pub(crate) fn on_random_partition(&mut self) {
        if !self.faults_active() {
            return;
        }
        self.events += 1;
        if !self.network.is_partitioned() && !self.params.kinds.is_empty() {
            let kinds = self.params.kinds.clone();
            let kind = kinds[self.streams.faults.random_range(0..kinds.len())];
            let leader = self.leader_position();
            let what = self
                .network
                .random_partition(&mut self.streams.faults, kind, leader);
            self.fault(format!("partition: {what}"));
            let duration = self.draw_ms(self.scenario.partitions.duration_ms);
            self.schedule_in_ms(duration, EventKind::Heal);
        }
        self.schedule_random(
            self.params.partitions_per_minute,
            EventKind::RandomPartition,
        );
    }

    pub(crate) fn on_random_crash(&mut self) {
        if !self.faults_active() {
            return;
        }
        self.events += 1;
        let up: Vec<usize> = match self.scenario.crashes.target {
            CrashTarget::Any => (0..self.hosts.len())
                .filter(|&position| self.hosts[position].replica.is_some())
                .collect(),
            CrashTarget::Leader => self.leader_position().into_iter().collect(),
        };
        if !up.is_empty() {
            let node = up[self.streams.faults.random_range(0..up.len())];
            self.crash(node);
            let delay = self.draw_ms(self.scenario.crashes.restart_delay_ms);
            self.schedule_in_ms(delay, EventKind::Restart { node });
        }
        self.schedule_random(self.params.crashes_per_minute, EventKind::RandomCrash);
    }

    pub(crate) fn on_random_pause(&mut self) {
        if !self.faults_active() {
            return;
        }
        self.events += 1;
        let running: Vec<usize> = (0..self.hosts.len())
            .filter(|&position| self.hosts[position].running())
            .collect();
        if !running.is_empty() {
            let node = running[self.streams.faults.random_range(0..running.len())];
            let duration = self.draw_ms(self.scenario.pauses.duration_ms);
            self.pause(node, duration);
        }
        self.schedule_random(self.params.pauses_per_minute, EventKind::RandomPause);
    }

    /// The node stops: everything not yet durable is lost (a torn write may keep a prefix of
    /// the batch being written, under profile `relaxed`).
    pub(crate) fn crash(&mut self, node: usize) {
        self.crash_as(node, false);
    }

    /// A scripted crash that takes the whole disk (one wiped node catching up at a time).
    pub(crate) fn crash_wiping(&mut self, node: usize) {
        self.crash_as(node, true);
    }

    fn crash_as(&mut self, node: usize, scripted_wipe: bool) {
        if self.hosts[node].replica.is_none() {
            return;
        }
        let records = self.hosts[node].disk.records_in_flight();
        let torn = (self.scenario.profile == Profile::Relaxed
            && records > 0
            && self.params.torn_write_probability > 0.0
            && self
                .streams
                .disk
                .random_bool(self.params.torn_write_probability))
        .then(|| self.streams.disk.random_range(0..records));
        if self.hosts[node].disk.pending() > 0 {
            self.coverage
                .reach(crate::coverage::CRASH_WITH_UNSYNCED_WRITE, self.now_us);
        }
        // The store is rebuilt from the log at restart: read it once more before it goes.
        if let Some(replica) = self.hosts[node].replica.as_ref() {
            let result = checkers::store_consistent(self.hosts[node].id, replica.store());
            self.check(result);
            self.check_store_limits(node);
        }
        let wipe = if scripted_wipe {
            !self.another_catching_up(node)
        } else {
            self.draw_wipe(node)
        };
        let corrupt_snapshot = !wipe
            && self.params.snapshot_corrupt_probability > 0.0
            && self
                .streams
                .disk
                .random_bool(self.params.snapshot_corrupt_probability);
        let host = &mut self.hosts[node];
        host.replica = None;
        host.incarnation += 1;
        host.disk.crash(torn);
        if corrupt_snapshot {
            let position = self.streams.disk.random_range(0..usize::MAX);
            let bit = self.streams.disk.random_range(0..8u8);
            if self.hosts[node].disk.corrupt_newest_snapshot(position, bit) {
                self.fault(format!("n{}: newest snapshot file damaged", node + 1));
            }
        }
        let host = &mut self.hosts[node];
        host.sync_covers = 0;
        host.paused = false;
        host.backlog.clear();
        host.held_requests.clear();
        host.timer_at_us = u64::MAX;
        host.wake_us = u64::MAX;
        let mut torn_note = torn.map_or(String::new(), |kept| {
            format!(" (torn write kept {kept} records)")
        });
        if wipe {
            host.disk = crate::wal_disk::WalDisk::new(host.id);
            host.catching_up = !self.scenario.crashes.planted_wiped_node_votes;
            torn_note.push_str(" (disk wiped)");
            self.coverage
                .reach(crate::coverage::WIPED_DISK_REJOINED, self.now_us);
        }
        self.fault(format!("crash n{}{torn_note}", node + 1));
        self.schedule_crash_hints(node);
    }

    /// Whether this crash also wipes the disk: at the seed's probability, in the relaxed
    /// profile, and only while no other node is wiped and still catching up.
    fn draw_wipe(&mut self, node: usize) -> bool {
        let probability = self.params.wipe_probability;
        if self.scenario.profile != Profile::Relaxed || probability <= 0.0 {
            return false;
        }
        !self.another_catching_up(node) && self.streams.disk.random_bool(probability)
    }

    /// Another node lost its disk and is still catching up: two could hold the only copies of
    /// a write, so a second wipe waits.
    fn another_catching_up(&self, node: usize) -> bool {
        self.hosts
            .iter()
            .enumerate()
            .any(|(position, host)| position != node && host.catching_up)
    }

    /// Models the runtime's crash detection: a node that stops hearing a peer probes it after
    /// one and a half heartbeat intervals and, when the peer's host answers "port unreachable",
    /// tells core with `Input::PeerUnreachable`. Each running peer learns of the crash at a
    /// random moment in that window, unless the crashed node is back by then or a partition
    /// swallows the probe.
    fn schedule_crash_hints(&mut self, crashed: usize) {
        let heartbeat = self.scenario.timing.heartbeat_interval_ms;
        for to in 0..self.hosts.len() {
            if to != crashed && self.hosts[to].replica.is_some() {
                let delay = self.draw_ms([heartbeat * 3 / 2, heartbeat * 3]);
                self.schedule_in_ms(delay, EventKind::CrashHint { to, peer: crashed });
            }
        }
    }

    pub(crate) fn on_crash_hint(&mut self, to: usize, peer: usize) {
        let probe_lost = self.network.is_blocked(to, peer) || self.network.is_blocked(peer, to);
        if self.hosts[to].replica.is_none() || self.hosts[peer].replica.is_some() || probe_lost {
            return;
        }
        let Some(_) = self.hold_if_paused(to, EventKind::CrashHint { to, peer }) else {
            return;
        };
        self.events += 1;
        self.fault(format!("n{} sees n{} down", to + 1, peer + 1));
        let peer = rafting_core::NodeId(peer as u64 + 1);
        self.step_node(to, Input::PeerUnreachable { peer });
    }

    /// The node starts again from what its disk recovered.
    pub(crate) fn restart(&mut self, node: usize) {
        if self.hosts[node].replica.is_some() {
            return;
        }
        let host = &mut self.hosts[node];
        let durable = host.disk.recover();
        if host.disk.damaged_snapshots() > 0 {
            self.coverage
                .reach(crate::coverage::SNAPSHOT_FALLBACK, self.now_us);
        }
        if durable.snapshot.is_some() {
            self.coverage
                .reach(crate::coverage::RESTARTED_FROM_SNAPSHOT, self.now_us);
        }
        let host = &mut self.hosts[node];
        let mut config = host.config.clone();
        config.seed ^= host.incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        config.catch_up_before_voting = host.catching_up;
        let raft = match Node::restart(config, durable) {
            Ok(raft) => raft,
            Err(error) => panic!("a configuration accepted once is accepted again: {error}"),
        };
        host.last_commit = LogIndex::ZERO;
        host.last_applied = raft.applied_index();
        host.last_role = RoleName::Follower;
        host.last_term = raft.term();
        let commit = raft.commit_index();
        // The node starts from its snapshot's store (if any) and re-applies the log after it.
        host.start_replica(raft);
        if let Some(wire) = self.wire.as_mut() {
            wire.restart(node, self.now_us);
        }
        if self.services.is_some() {
            self.services_node_restarted(node);
        }
        self.fault(format!("restart n{}", node + 1));
        // What the node recovered as committed must agree with what the cluster committed.
        self.record_commits(node, LogIndex::ZERO, commit);
        self.hosts[node].last_commit = commit;
        self.events += 1;
        self.step_node(node, Input::Tick);
    }

    pub(crate) fn pause(&mut self, node: usize, duration_ms: u64) {
        if !self.hosts[node].running() {
            return;
        }
        self.hosts[node].paused = true;
        self.fault(format!("pause n{} for {duration_ms} ms", node + 1));
        self.schedule_in_ms(duration_ms, EventKind::Resume { node });
    }

    /// The node runs again with whatever it believed before; what arrived meanwhile follows.
    pub(crate) fn resume(&mut self, node: usize) {
        if !self.hosts[node].paused {
            return;
        }
        let host = &mut self.hosts[node];
        host.paused = false;
        let backlog = std::mem::take(&mut host.backlog);
        let held = std::mem::take(&mut host.held_requests);
        self.fault(format!(
            "resume n{} ({} events and {} client requests waited)",
            node + 1,
            backlog.len(),
            held.len()
        ));
        for kind in backlog {
            self.schedule(self.now_us, kind);
        }
        self.events += 1;
        // Client requests first: the node answers them on what it believed when it stopped,
        // before the messages that would tell it about a newer term.
        for inputs in held {
            self.deliver_client_request(node, inputs);
        }
        self.step_node(node, Input::Tick);
    }

    pub(crate) fn heal(&mut self) {
        if self.network.is_partitioned() {
            self.network.heal();
            self.fault(String::from("heal"));
        }
    }

    pub(crate) fn schedule_script(&mut self) {
        let scenario = self.scenario;
        for (position, event) in scenario.events.iter().enumerate() {
            self.schedule(event.at_ms() * 1000, EventKind::Scripted(position));
        }
        for (position, expectation) in scenario.expect.iter().enumerate() {
            if let crate::scenario::Expectation::NoCommit { since_ms, .. } = expectation {
                self.schedule(since_ms * 1000, EventKind::ExpectSnapshot(position));
            }
            self.schedule(expectation.at_ms() * 1000, EventKind::Expect(position));
        }
    }

    pub(crate) fn on_scripted(&mut self, position: usize) {
        self.events += 1;
        let event = self.scenario.events[position].clone();
        let position_of = |node: u64| node as usize - 1;
        match event {
            ScriptedEvent::CrashLeader { .. } => {
                if let Some(leader) = self.leader_position() {
                    self.crash(leader);
                }
            }
            ScriptedEvent::Crash { node, wipe, .. } => {
                if wipe {
                    self.crash_wiping(position_of(node))
                } else {
                    self.crash(position_of(node))
                }
            }
            ScriptedEvent::CrashAll { .. } => {
                (0..self.hosts.len()).for_each(|node| self.crash(node))
            }
            ScriptedEvent::Restart { node, .. } => self.restart(position_of(node)),
            ScriptedEvent::RestartAll { .. } => {
                (0..self.hosts.len()).for_each(|node| self.restart(node))
            }
            // Each partition event replaces the one before it: the network is healed first,
            // so a script reads as a sequence of network shapes, not an accumulation of cuts.
            ScriptedEvent::Isolate { node, .. } => {
                self.network.heal();
                self.network.isolate(position_of(node));
                self.fault(format!("isolate n{node}"));
            }
            ScriptedEvent::IsolateLeader { .. } => {
                if let Some(leader) = self.leader_position() {
                    self.network.heal();
                    self.network.isolate(leader);
                    self.fault(format!("isolate leader n{}", leader + 1));
                }
            }
            ScriptedEvent::Partition { groups, .. } => {
                let groups: Vec<Vec<usize>> = groups
                    .iter()
                    .map(|group| group.iter().map(|&node| position_of(node)).collect())
                    .collect();
                self.network.heal();
                self.network.partition(&groups);
                self.fault(format!("partition {}", describe(&groups)));
            }
            ScriptedEvent::CutLink { between, .. } => {
                self.network.heal();
                self.network
                    .cut(position_of(between[0]), position_of(between[1]));
                self.fault(format!("cut n{}-n{}", between[0], between[1]));
            }
            ScriptedEvent::OneWay { node, receive, .. } => {
                self.network.heal();
                self.network.one_way(position_of(node), receive);
                self.fault(format!("one-way n{node} receive={receive}"));
            }
            ScriptedEvent::TransferLeader { to, .. } => {
                if let Some(leader) = self.leader_position() {
                    self.fault(format!("transfer leadership n{} -> n{to}", leader + 1));
                    let to = rafting_core::NodeId(to);
                    let id = RequestId(0); // The answer goes nowhere: the script only watches.
                    self.step_node(leader, Input::TransferLeadership { id, to });
                }
            }
            ScriptedEvent::ReplaceNode { node, .. } => self.start_replacement(node),
            ScriptedEvent::AddNode { node, .. } => self.start_growth(node),
            ScriptedEvent::RemoveNode { node, .. } => {
                if !self.start_shrink(node) {
                    self.schedule_in_ms(100, EventKind::Scripted(position));
                }
            }
            ScriptedEvent::Campaign { node, .. } => {
                let position = position_of(node);
                if self.hosts[position].running() {
                    self.fault(format!("campaign n{node}"));
                    self.step_node(position, Input::Campaign);
                }
            }
            ScriptedEvent::Heal { .. } => self.heal(),
            ScriptedEvent::Network {
                loss_probability, ..
            } => {
                self.network.loss_probability = loss_probability;
                self.fault(format!("network loss {loss_probability}"));
            }
            ScriptedEvent::Pause {
                node, duration_ms, ..
            } => self.pause(position_of(node), duration_ms),
            ScriptedEvent::PauseLeader { duration_ms, .. } => {
                if let Some(leader) = self.leader_position() {
                    self.pause(leader, duration_ms);
                }
            }
            ScriptedEvent::PauseNewLeader { duration_ms, .. } => {
                self.pause_next_leader_ms = Some(duration_ms);
            }
            ScriptedEvent::IsolateNewLeader { .. } => self.isolate_next_leader = true,
            ScriptedEvent::IsolateLeaderOnCommit { .. } => self.isolate_leader_on_commit = true,
        }
    }

    /// Positions of an expectation's nodes (every node when it names none).
    fn among(&self, among: &[u64]) -> Vec<usize> {
        if among.is_empty() {
            return (0..self.hosts.len()).collect();
        }
        among.iter().map(|&node| node as usize - 1).collect()
    }

    fn max_commit(&self, positions: &[usize]) -> LogIndex {
        positions
            .iter()
            .filter_map(|&position| self.hosts[position].node())
            .map(Node::commit_index)
            .max()
            .unwrap_or_default()
    }

    pub(crate) fn on_expect_snapshot(&mut self, position: usize) {
        let positions = self.among(self.scenario.expect[position].among());
        let commit = self.max_commit(&positions);
        self.snapshots.insert(position, commit);
    }

    pub(crate) fn on_expect(&mut self, position: usize) {
        use crate::scenario::Expectation;
        let expectation = &self.scenario.expect[position];
        let positions = self.among(expectation.among());
        if let Expectation::StoreConsistent { .. } = expectation {
            self.check_stores(&positions);
            return;
        }
        let leaders: Vec<u64> = positions
            .iter()
            .filter(|&&node| self.hosts[node].node().is_some_and(Node::is_leader))
            .map(|&node| node as u64 + 1)
            .collect();
        let failure = match expectation {
            Expectation::SingleLeader { .. } => {
                (leaders.len() != 1).then(|| format!("expected one leader, found {leaders:?}"))
            }
            Expectation::NoLeader { .. } => {
                (!leaders.is_empty()).then(|| format!("expected no leader, found {leaders:?}"))
            }
            Expectation::NoCommit { .. } => {
                let before = self.snapshots.get(&position).copied().unwrap_or_default();
                let now = self.max_commit(&positions);
                (now != before).then(|| format!("commit moved from {before} to {now}"))
            }
            Expectation::CommittedAtLeast { entries, .. } => positions
                .iter()
                .filter_map(|&node| Some((node, self.hosts[node].node()?.commit_index())))
                .find(|(_, commit)| commit.get() < *entries)
                .map(|(node, commit)| format!("n{} has committed only {commit}", node + 1)),
            Expectation::Reached { state, .. } => (!self.coverage.reached_by(state, self.now_us))
                .then(|| {
                    format!("the seed never reached `{state}`: the scenario's story did not happen")
                }),
            Expectation::NotReached { state, .. } => self
                .coverage
                .reached_by(state, self.now_us)
                .then(|| format!("the seed reached `{state}`, which this story must not")),
            Expectation::StoreConsistent { .. } => None, // Checked above.
        };
        if let Some(detail) = failure {
            let nodes = positions.iter().map(|&node| node as u64 + 1).collect();
            self.violate(checkers::Violation {
                check: expectation.name(),
                at_us: 0,
                nodes,
                index: None,
                term: None,
                detail,
            });
        }
    }
}

impl Simulator<'_, '_> {
    /// Runs [`checkers::store_consistent`] on the store of each running node of `positions`.
    fn check_stores(&mut self, positions: &[usize]) {
        for &position in positions {
            let host = &self.hosts[position];
            if let Some(replica) = host.replica.as_ref() {
                let result = checkers::store_consistent(host.id, replica.store());
                self.check(result);
                self.check_store_limits(position);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Scenario;
    use crate::simulator::Simulator;
    use std::path::Path;

    // Each scripted partition replaces the one before it. They used to accumulate: the
    // shipped figure8 scenario ended up cut into three groups with no leader for 8 s.
    #[test]
    fn each_scripted_partition_replaces_the_previous_one() {
        let text = r#"
            name = "partitions"
            profile = "brief"
            nodes = 3
            duration_ms = 1000
            [[events]]
            action = "partition"
            at_ms = 100
            groups = [[1, 2], [3]]
            [[events]]
            action = "partition"
            at_ms = 200
            groups = [[1, 3], [2]]
            [[events]]
            action = "isolate"
            at_ms = 300
            node = 1
        "#;
        let scenario = Scenario::parse(text, Path::new("inline.toml")).expect("valid");
        let mut simulator = Simulator::new(&scenario, 1, None).expect("builds");
        simulator.on_scripted(0);
        assert!(simulator.network.is_blocked(0, 2));
        assert!(!simulator.network.is_blocked(0, 1));
        simulator.on_scripted(1);
        assert!(!simulator.network.is_blocked(0, 2), "1-3 talk again");
        assert!(simulator.network.is_blocked(0, 1), "2 is cut off now");
        simulator.on_scripted(2);
        assert!(simulator.network.is_blocked(0, 2), "1 is isolated");
        assert!(!simulator.network.is_blocked(1, 2), "2-3 talk again");
    }
}
