//! Farm callers: processes that watch a farm group through a node and pick members with
//! core's balancers ([`rafting_core::farm`]), as the client library does.
//!
//! Enabled by `[services] mode = "farm"`. The members are the services workload's (they
//! register as farm members, keep alive, report load, drain and undrain, leave, crash, pause
//! and are cut off); the callers are added here. A caller watches the group through one node:
//! every change that node applies reaches the caller after a network delay, as the watch stream
//! does, and a caller whose node is down moves to another and reads its view. Callers pick
//! round robin and Monte Carlo (alternately by caller) every few milliseconds.
//!
//! Three checks judge the picks:
//! - `farm_pick_filter`: a caller never picks a member its own view shows draining, at weight 0
//!   or absent: what it learned, it honours;
//! - `farm_stale_picks` (when the scenario sets `stale_pick_slack_ms`): a member whose process
//!   left, crashed, or began draining at time `d` is not picked after `d + ttl + slack`: the
//!   cluster must expire, remove and publish it in time, and callers must follow;
//! - every live member gets picks: after the faults stop, the run settles only once every live
//!   member with a weight has been picked (else the liveness check fails).

use crate::checkers::Violation;
use crate::network::MICROS_PER_MS;
use crate::services::{GROUP, ServicesSection};
use crate::simulator::{EventKind, Simulator};
use rafting_core::farm::{self, pickable};
use rafting_core::store::TenantId;
use rafting_core::store::services::MemberEntry;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

pub mod check {
    pub const FARM_PICK_FILTER: &str = "farm_pick_filter";
    pub const FARM_STALE_PICKS: &str = "farm_stale_picks";
}

/// What a member looks like to the checks: `(instance, weight, draining)`.
type Listed = (String, u32, bool);

/// One simulated caller.
struct SimCaller {
    /// The node it watches.
    target: usize,
    /// The group's members as its node last published them, and the node's applied index then.
    view: Vec<MemberEntry>,
    view_index: u64,
    monte_carlo: bool,
    turn: u64,
}

/// What the farm part of the services workload holds for one seed.
pub(crate) struct FarmWorld {
    random: ChaCha8Rng,
    callers: Vec<SimCaller>,
    /// The members each node last published (to avoid re-sending an unchanged view).
    node_views: Vec<Vec<Listed>>,
    /// Since when (global µs) each member's process has been gone or draining, by instance:
    /// picks of it must stop within `ttl + slack` of that.
    unpickable_since: BTreeMap<String, u64>,
    /// Picks during the liveness phase, by instance.
    pub(crate) liveness_picks: BTreeMap<String, u64>,
    pub(crate) picks: u64,
    /// The planted bug of [`crate::services::ServicesSection::planted_pick_draining`].
    planted_pick_draining: bool,
}

impl FarmWorld {
    pub(crate) fn new(section: &ServicesSection, nodes: usize, seed: u64) -> FarmWorld {
        let mut random = ChaCha8Rng::seed_from_u64(seed ^ 0xfa12_0000_ca11_e125);
        let callers = (0..section.callers)
            .map(|index| SimCaller {
                target: random.random_range(0..nodes),
                view: Vec::new(),
                view_index: 0,
                monte_carlo: index % 2 == 1,
                turn: random.random(),
            })
            .collect();
        FarmWorld {
            random,
            callers,
            node_views: vec![Vec::new(); nodes],
            unpickable_since: BTreeMap::new(),
            liveness_picks: BTreeMap::new(),
            picks: 0,
            planted_pick_draining: section.planted_pick_draining,
        }
    }
}

impl Simulator<'_, '_> {
    fn farm(&mut self) -> &mut FarmWorld {
        self.services
            .as_mut()
            .and_then(|world| world.farm.as_mut())
            .expect("farm mode")
    }

    /// Schedules every caller's first look at its node and its first pick.
    pub(crate) fn farm_start(&mut self) {
        for caller in 0..self.farm().callers.len() {
            self.caller_reads_view(caller);
            let delay = self.farm().random.random_range(0..50);
            self.schedule_in_ms(delay, EventKind::CallerPick { caller });
        }
    }

    /// A member's process left, crashed or began draining: it must stop being picked.
    pub(crate) fn farm_member_unpickable(&mut self, instance: &str) {
        let now = self.now_us;
        self.farm()
            .unpickable_since
            .entry(instance.to_owned())
            .or_insert(now);
    }

    /// A member's process runs again, or stopped draining.
    pub(crate) fn farm_member_pickable(&mut self, instance: &str) {
        self.farm().unpickable_since.remove(instance);
    }

    /// A node applied an entry: if its view of the farm changed, the callers watching it hear
    /// of it after a network delay.
    pub(crate) fn farm_applied(
        &mut self,
        node: usize,
        applied_index: u64,
        members: &[MemberEntry],
    ) {
        let listed: Vec<Listed> = members
            .iter()
            .map(|m| (m.instance.clone(), m.weight, m.draining))
            .collect();
        if self.farm().node_views[node] == listed {
            return;
        }
        self.farm().node_views[node] = listed;
        let watchers: Vec<usize> = (0..self.farm().callers.len())
            .filter(|&caller| self.farm().callers[caller].target == node)
            .collect();
        for caller in watchers {
            self.deliver_view(caller, node, applied_index, members.to_vec());
        }
    }

    fn node_farm_members(&self, node: usize) -> Vec<MemberEntry> {
        self.hosts[node]
            .replica
            .as_ref()
            .and_then(|replica| replica.store().group_view(TenantId::DEFAULT, GROUP))
            .map(|view| view.members)
            .unwrap_or_default()
    }

    fn deliver_view(&mut self, caller: usize, node: usize, index: u64, members: Vec<MemberEntry>) {
        let [low, high] = self.services_network_delay();
        let delay = self.farm().random.random_range(low..=high);
        let view = EventKind::CallerView {
            caller,
            node,
            index,
            members,
        };
        self.schedule_in_ms(delay, view);
    }

    /// The caller (re)reads its node's whole view, as a client does after (re)connecting.
    fn caller_reads_view(&mut self, caller: usize) {
        let node = self.farm().callers[caller].target;
        if !self.hosts[node].running() {
            return;
        }
        let index = self.hosts[node]
            .node()
            .map_or(0, |raft| raft.applied_index().get());
        let members = self.node_farm_members(node);
        self.deliver_view(caller, node, index, members);
    }

    /// A view reaches a caller: it replaces the older one from the same node.
    pub(crate) fn on_caller_view(
        &mut self,
        caller: usize,
        node: usize,
        index: u64,
        members: Vec<MemberEntry>,
    ) {
        let now = self.now_us;
        let state = &mut self.farm().callers[caller];
        if state.target != node || index < state.view_index {
            return;
        }
        let newly_draining = members.iter().any(|member| {
            member.draining
                && state
                    .view
                    .iter()
                    .any(|old| old.instance == member.instance && !old.draining)
        });
        state.view = members;
        state.view_index = index;
        if newly_draining {
            self.coverage.reach(crate::coverage::FARM_DRAIN_SEEN, now);
        }
    }

    /// A caller picks a member, with the balancer the client library uses.
    pub(crate) fn on_caller_pick(&mut self, caller: usize) {
        let nodes = self.hosts.len();
        self.events += 1;
        let target = self.farm().callers[caller].target;
        if !self.hosts[target].running() {
            // Its watch failed: it moves to the next node that answers and reads the view
            // there (with none up, it keeps what it knows and tries again at its next pick).
            if let Some(next) = (1..nodes)
                .map(|step| (target + step) % nodes)
                .find(|&node| self.hosts[node].running())
            {
                let state = &mut self.farm().callers[caller];
                state.target = next;
                state.view_index = 0;
                self.caller_reads_view(caller);
            }
        }
        let world = self.farm();
        let draw: f64 = world.random.random();
        let state = &mut world.callers[caller];
        let planted = world.planted_pick_draining;
        let candidates: Vec<&MemberEntry> = state
            .view
            .iter()
            .filter(|m| pickable(*m) || (planted && m.weight > 0))
            .collect();
        let index = if state.monte_carlo {
            farm::monte_carlo(&candidates, draw)
        } else {
            state.turn = state.turn.wrapping_add(1);
            farm::round_robin(state.turn, candidates.len())
        };
        let picked = index.and_then(|index| candidates.get(index)).map(|member| {
            // What the caller's own view says of the member it picked.
            let listed = state
                .view
                .iter()
                .find(|entry| entry.instance == member.instance)
                .map(|entry| (entry.weight, entry.draining));
            (member.instance.clone(), listed)
        });
        if let Some((instance, listed)) = picked {
            self.record_pick(caller, &instance, listed);
        }
        let interval = self.services_pick_interval();
        let delay = self.farm().random.random_range(interval[0]..=interval[1]);
        self.schedule_in_ms(delay, EventKind::CallerPick { caller });
    }

    fn record_pick(&mut self, caller: usize, picked: &str, listed: Option<(u32, bool)>) {
        let now = self.now_us;
        let liveness = matches!(self.phase, crate::simulator::Phase::Liveness { .. });
        let (ttl_ms, slack_ms) = self.services_stale_bound();
        let world = self.farm();
        world.picks += 1;
        if liveness {
            *world.liveness_picks.entry(picked.to_owned()).or_default() += 1;
        }
        let since = world.unpickable_since.get(picked).copied();
        let result = pick_filter(caller, picked, listed);
        self.check(result);
        if let (Some(slack_ms), Some(since)) = (slack_ms, since) {
            let result = stale_pick(caller, picked, now, since, ttl_ms + slack_ms);
            self.check(result);
        }
    }

    /// Settled once every live member with a weight got a pick after the faults stopped.
    pub(crate) fn farm_settled(&mut self, live: &[(String, u32)]) -> bool {
        let world = self.farm();
        live.iter()
            .filter(|(_, weight)| *weight > 0)
            .all(|(instance, _)| world.liveness_picks.contains_key(instance))
    }

    /// A restarted node re-applies its log from the start: its next view is news again.
    pub(crate) fn farm_node_restarted(&mut self, node: usize) {
        self.farm().node_views[node].clear();
    }
}

/// `farm_pick_filter`: the picked member is in the caller's view (`listed`: its weight and
/// whether it drains there), not draining, with a weight.
pub fn pick_filter(
    caller: usize,
    picked: &str,
    listed: Option<(u32, bool)>,
) -> Result<(), Violation> {
    let detail = match listed {
        None => format!("caller {caller} picked {picked} which its view does not list"),
        Some((_, true)) => format!("caller {caller} picked {picked} which it knows is draining"),
        Some((0, _)) => format!("caller {caller} picked {picked} at weight 0"),
        Some(_) => return Ok(()),
    };
    Err(Violation {
        check: check::FARM_PICK_FILTER,
        at_us: 0,
        nodes: Vec::new(),
        index: None,
        term: None,
        detail,
    })
}

/// `farm_stale_picks`: a member gone or draining since `since_us` is not picked at `now_us`
/// later than `bound_ms` after.
pub fn stale_pick(
    caller: usize,
    instance: &str,
    now_us: u64,
    since_us: u64,
    bound_ms: u64,
) -> Result<(), Violation> {
    let late_ms = now_us.saturating_sub(since_us) / MICROS_PER_MS;
    if late_ms <= bound_ms {
        return Ok(());
    }
    Err(Violation {
        check: check::FARM_STALE_PICKS,
        at_us: 0,
        nodes: Vec::new(),
        index: None,
        term: None,
        detail: format!(
            "caller {caller} picked {instance} {late_ms} ms after it left or began draining, \
             over the bound of {bound_ms} ms"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pick_filter_catches_a_draining_a_weightless_and_an_unknown_pick() {
        assert!(pick_filter(0, "a", Some((1, false))).is_ok());
        let cases = [
            ("b", Some((1, true)), "draining"),
            ("c", Some((0, false)), "weight 0"),
            ("d", None, "does not list"),
        ];
        for (picked, listed, words) in cases {
            let violation = pick_filter(1, picked, listed).unwrap_err();
            assert_eq!(violation.check, check::FARM_PICK_FILTER);
            assert!(violation.detail.contains(words), "{}", violation.detail);
        }
    }

    #[test]
    fn the_stale_pick_check_catches_a_pick_past_the_bound() {
        let ms = MICROS_PER_MS;
        assert!(stale_pick(0, "a", 2_500 * ms, 1_000 * ms, 1_500).is_ok());
        let late = stale_pick(0, "a", 2_501 * ms, 1_000 * ms, 1_500).unwrap_err();
        assert_eq!(late.check, check::FARM_STALE_PICKS);
        assert!(late.detail.contains("1501 ms"), "{}", late.detail);
    }
}
