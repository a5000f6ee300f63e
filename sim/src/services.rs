//! The services workload: members of one master/standby service group, as processes of their
//! own beside the cluster.
//!
//! Enabled by `[workload] kind = "services"` and tuned by `[services]`. Each simulated member
//! runs core's [`Member`] (the same logic `rafting service join` runs): it registers with a node,
//! keeps alive, and acts as master only while [`Member::acting_role`] says so. Members have
//! their own drifting clocks and talk to the nodes over a network with its own delays; they
//! crash (and restart with the same instance id), pause like a GC stall, are cut off from the
//! cluster, and resign or leave gracefully.
//!
//! Two checkers watch them:
//! - `one_master_per_epoch`, on the replicated state: every node that applies the group sees
//!   one master per epoch, the same on every node, and epochs that never go back;
//! - `no_overlapping_masters`, in simulated real time: no two members act as master at
//!   overlapping moments. A member's acting window is known when it starts (its end is a time on
//!   its own clock); a crash ends it. This is the property that lease-based election libraries
//!   have broken (Curator, client-go, etcd leases across leader changes).

use crate::checkers::Violation;
use crate::network::MICROS_PER_MS;
use crate::scenario::Scenario;
use crate::simulator::{EventKind, Simulator};
use rafting_core::Millis;
use rafting_core::member::{Action, Member, MemberConfig};
use rafting_core::raft::EntryPayload;
use rafting_core::replica::{Applied, AppliedEntry, Input, ReplicaError, RequestId};
use rafting_core::store::services::{MemberUpdate, MemberView, Registration, Role, ServiceMode};
use rafting_core::store::{Command, Operation, Outcome, StoreError, TenantId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Request ids of members carry this bit, so their answers never reach a KV or opaque client.
pub(crate) const MEMBER_REQUEST_BIT: u64 = 1 << 61;
/// The simulated group.
pub(crate) const GROUP: &str = "/sim/service";

pub mod check {
    pub const ONE_MASTER_PER_EPOCH: &str = "one_master_per_epoch";
    pub const COLD_START_BARRIER: &str = "cold_start_barrier";
    pub const HANDOVER_BOUNDS: &str = "handover_bounds";
    pub const NO_OVERLAPPING_MASTERS: &str = "no_overlapping_masters";
}

/// `[services]`: the members and what happens to them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesSection {
    /// `master_standby` (the default) or `farm`: farm members are all active, and callers
    /// ([`crate::farm`]) pick among them.
    pub mode: ServiceMode,
    pub members: u64,
    pub ttl_ms: u64,
    pub failover_delay_ms: u64,
    pub expected_members: Option<u32>,
    /// One-way delay between a member and a node, drawn per message.
    pub network_delay_ms: [u64; 2],
    /// Probabilities per keep-alive answered "master": the member resigns, or leaves.
    pub resign_probability: f64,
    pub leave_probability: f64,
    /// Per minute of simulated time, across all members.
    pub crashes_per_minute: f64,
    pub pauses_per_minute: f64,
    pub pause_ms: [u64; 2],
    /// A member cut off from the cluster for this long (its messages are dropped).
    pub cutoffs_per_minute: f64,
    pub cutoff_ms: [u64; 2],
    /// A crashed or departed member comes back (same instance id) after this long.
    pub restart_after_ms: [u64; 2],
    /// Each member's clock rate error, at most, in parts per million.
    pub clock_drift_ppm: u64,
    /// When set, `handover_bounds` checks that a master whose session expired is replaced
    /// within TTL + hold-off + this slack of its last renewal (for scenarios whose cluster
    /// stays healthy: an election pauses the session clock and would stretch the bound).
    pub handover_slack_ms: Option<u64>,
    /// Farm mode: the callers picking members.
    pub callers: u64,
    /// Farm mode: how often each caller picks, drawn per pick.
    pub pick_interval_ms: [u64; 2],
    /// Farm mode: per keep-alive, the probability a member starts or stops draining.
    pub drain_probability: f64,
    /// Farm mode: the last this many members register at weight 0 (never to be picked); the
    /// others at weights 1, 2, 3, 1, 2, ...
    pub zero_weight_members: u64,
    /// Farm mode: each keep-alive reports a load drawn up to this.
    pub load_max: u64,
    /// Farm mode: when set, `farm_stale_picks` checks that a member that left, crashed or
    /// began draining is no longer picked `ttl_ms` + this after (for scenarios whose nodes
    /// are never cut off: a caller watching an isolated node cannot learn anything).
    pub stale_pick_slack_ms: Option<u64>,
    /// Test-only planted bug: a member acts as master from an answer until it hears
    /// otherwise, with no lease (the classic election-library mistake).
    #[serde(skip)]
    pub planted_no_lease: bool,
    /// Test-only planted bug: a caller's filter lets draining members through.
    #[serde(skip)]
    pub planted_pick_draining: bool,
    /// Test-only planted bug (the client library had it): a draining member whose session
    /// ended registers again as not draining, and is picked until its next keep-alive.
    #[serde(skip)]
    pub planted_register_undrained: bool,
}

impl Default for ServicesSection {
    fn default() -> Self {
        ServicesSection {
            members: 3,
            ttl_ms: 1_000,
            failover_delay_ms: 0,
            expected_members: None,
            network_delay_ms: [1, 20],
            resign_probability: 0.02,
            leave_probability: 0.01,
            crashes_per_minute: 6.0,
            pauses_per_minute: 6.0,
            pause_ms: [200, 3_000],
            cutoffs_per_minute: 6.0,
            cutoff_ms: [200, 3_000],
            restart_after_ms: [100, 2_000],
            clock_drift_ppm: 5_000,
            handover_slack_ms: None,
            mode: ServiceMode::MasterStandby,
            callers: 2,
            pick_interval_ms: [5, 50],
            drain_probability: 0.0,
            zero_weight_members: 0,
            load_max: 0,
            stale_pick_slack_ms: None,
            planted_no_lease: false,
            planted_pick_draining: false,
            planted_register_undrained: false,
        }
    }
}

/// What a member's request in flight was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Register,
    KeepAlive,
    /// Resign or leave: the member already stepped down and waits for nothing.
    Farewell,
}

/// One simulated member process.
struct SimMember {
    instance: String,
    agent: Member,
    clock_rate_ppm: u64,
    alive: bool,
    /// Bumped at every crash or departure, so events of a previous life are ignored.
    incarnation: u64,
    paused_until_us: u64,
    cut_off_until_us: u64,
    /// The node it talks to.
    target: usize,
    /// The request in flight: its id, when it was sent (local ms), what for.
    in_flight: Option<(u64, Millis, Purpose)>,
    /// The member's acting window as master, in global time: `[start, end)`.
    acting: Option<(u64, u64)>,
    /// Under the planted bug: acting as master since, until it hears otherwise.
    planted_master: bool,
    /// Farm mode: its weight, and whether it is draining.
    weight: u32,
    draining: bool,
}

impl SimMember {
    fn local_ms(&self, now_us: u64) -> Millis {
        let local_us = u128::from(now_us) * u128::from(self.clock_rate_ppm) / 1_000_000;
        Millis((local_us / u128::from(MICROS_PER_MS)) as u64)
    }

    fn global_us(&self, local: Millis) -> u64 {
        let local_us = u128::from(local.get()) * u128::from(MICROS_PER_MS);
        (local_us * 1_000_000)
            .div_ceil(u128::from(self.clock_rate_ppm))
            .min(u128::from(u64::MAX)) as u64
    }
}

/// Everything the services workload holds for one seed.
pub struct ServicesWorld {
    section: ServicesSection,
    random: ChaCha8Rng,
    members: Vec<SimMember>,
    next_request: u64,
    /// The master each epoch had, as first applied anywhere: `epoch -> master`.
    epochs: BTreeMap<u64, Option<String>>,
    /// The last epoch each node applied.
    node_epochs: Vec<u64>,
    /// Whether each node last saw the group forming.
    node_forming: Vec<bool>,
    /// Each member's last renewal (registration or keep-alive): its log index and when a
    /// node first applied it.
    renewals: BTreeMap<String, (u64, u64)>,
    /// Times a member began acting as master, for the report.
    pub(crate) masters_acting: u64,
    /// Farm mode: the callers.
    pub(crate) farm: Option<crate::farm::FarmWorld>,
}

/// The services part of a seed's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServicesReport {
    /// Epochs the group went through.
    pub epochs: u64,
    /// Times a member began acting as master.
    pub masters_acting: u64,
    /// Farm mode: members the callers picked.
    pub picks: u64,
}

impl ServicesWorld {
    pub(crate) fn new(scenario: &Scenario, seed: u64) -> ServicesWorld {
        let section = scenario.services.clone();
        let section_mode = section.mode;
        // Its own generator, so that the services workload never shifts another's draws.
        let mut random = ChaCha8Rng::seed_from_u64(seed ^ 0x5e41_11ce_5e41_11ce);
        let members = (0..section.members)
            .map(|index| {
                let drift = section.clock_drift_ppm;
                SimMember {
                    instance: format!("m{}", index + 1),
                    agent: Member::new(MemberConfig::with_ttl(section.ttl_ms)),
                    clock_rate_ppm: random.random_range(1_000_000 - drift..=1_000_000 + drift),
                    alive: true,
                    incarnation: 0,
                    paused_until_us: 0,
                    cut_off_until_us: 0,
                    target: random.random_range(0..scenario.nodes as usize),
                    in_flight: None,
                    acting: None,
                    planted_master: false,
                    weight: if index + section.zero_weight_members >= section.members {
                        0
                    } else {
                        (index % 3) as u32 + 1
                    },
                    draining: false,
                }
            })
            .collect();
        ServicesWorld {
            section,
            random,
            members,
            next_request: 1,
            epochs: BTreeMap::new(),
            node_epochs: vec![0; scenario.nodes as usize],
            node_forming: vec![true; scenario.nodes as usize],
            renewals: BTreeMap::new(),
            masters_acting: 0,
            farm: (section_mode == ServiceMode::Farm).then(|| {
                crate::farm::FarmWorld::new(&scenario.services, scenario.nodes as usize, seed)
            }),
        }
    }
}

impl Simulator<'_, '_> {
    fn services(&mut self) -> &mut ServicesWorld {
        self.services.as_mut().expect("services mode")
    }

    /// Schedules every member's first turn and the members' faults.
    pub(crate) fn services_start(&mut self) {
        let count = self.services().members.len();
        for member in 0..count {
            let delay = self.services().random.random_range(0..200);
            self.schedule_in_ms(
                delay,
                EventKind::MemberTurn {
                    member,
                    incarnation: 0,
                },
            );
        }
        self.schedule_member_fault();
        if self.services().farm.is_some() {
            self.farm_start();
        }
    }

    /// The members' one-way network delay range.
    pub(crate) fn services_network_delay(&mut self) -> [u64; 2] {
        self.services().section.network_delay_ms
    }

    pub(crate) fn services_pick_interval(&mut self) -> [u64; 2] {
        self.services().section.pick_interval_ms
    }

    /// The farm's stale-pick bound: the TTL, and the slack when the check is on.
    pub(crate) fn services_stale_bound(&mut self) -> (u64, Option<u64>) {
        let section = &self.services().section;
        (section.ttl_ms, section.stale_pick_slack_ms)
    }

    fn farm_mode(&mut self) -> bool {
        self.services().farm.is_some()
    }

    fn schedule_member_fault(&mut self) {
        let world = self.services();
        let section = &world.section;
        let rate =
            section.crashes_per_minute + section.pauses_per_minute + section.cutoffs_per_minute;
        if rate <= 0.0 {
            return;
        }
        let mean_ms = 60_000.0 / rate;
        let delay = (world.random.random::<f64>() * 2.0 * mean_ms) as u64 + 1;
        self.schedule_in_ms(delay, EventKind::MemberFault);
    }

    /// A member crashes, pauses or is cut off; the kinds are drawn by their rates.
    pub(crate) fn on_member_fault(&mut self) {
        if !matches!(self.phase, crate::simulator::Phase::Safety) {
            return;
        }
        let now = self.now_us;
        let world = self.services();
        let section = world.section.clone();
        let member = world.random.random_range(0..world.members.len());
        let rate =
            section.crashes_per_minute + section.pauses_per_minute + section.cutoffs_per_minute;
        let roll = world.random.random::<f64>() * rate;
        if roll < section.crashes_per_minute {
            if world.members[member].alive {
                self.member_dies(member);
                let [low, high] = section.restart_after_ms;
                let after = self.services().random.random_range(low..=high);
                self.schedule_in_ms(after, EventKind::MemberRestart { member });
            }
        } else {
            let pausing = roll < section.crashes_per_minute + section.pauses_per_minute;
            let [low, high] = if pausing {
                section.pause_ms
            } else {
                section.cutoff_ms
            };
            let stall_ms = world.random.random_range(low..=high);
            let until = now + stall_ms * MICROS_PER_MS;
            let state = &mut world.members[member];
            if pausing {
                state.paused_until_us = state.paused_until_us.max(until);
            } else {
                state.cut_off_until_us = state.cut_off_until_us.max(until);
            }
            let acting = state.acting.is_some_and(|(_, end)| end > now);
            if acting && stall_ms > section.ttl_ms {
                self.coverage
                    .reach(crate::coverage::MASTER_STALLED_PAST_TTL, now);
            }
        }
        self.schedule_member_fault();
    }

    /// The member's process is gone: it acts no more.
    fn member_dies(&mut self, member: usize) {
        let now = self.now_us;
        let state = &mut self.services().members[member];
        state.alive = false;
        state.incarnation += 1;
        state.in_flight = None;
        state.planted_master = false;
        if let Some((start, end)) = state.acting {
            state.acting = Some((start, end.min(now)));
        }
        if self.farm_mode() {
            let instance = self.services().members[member].instance.clone();
            self.farm_member_unpickable(&instance);
        }
    }

    /// A crashed or departed member starts again, with the same instance id and a fresh
    /// agent: it registers again (replacing its old registration, if still there).
    pub(crate) fn on_member_restart(&mut self, member: usize) {
        let ttl = self.services().section.ttl_ms;
        let state = &mut self.services().members[member];
        if state.alive {
            return;
        }
        state.alive = true;
        state.draining = false;
        state.agent = Member::new(MemberConfig::with_ttl(ttl));
        let incarnation = state.incarnation;
        if self.farm_mode() {
            let instance = self.services().members[member].instance.clone();
            self.farm_member_pickable(&instance);
        }
        self.schedule_in_ms(
            0,
            EventKind::MemberTurn {
                member,
                incarnation,
            },
        );
    }

    /// When a member's event must wait for it to wake: this life of the member is paused, and,
    /// for what reaches it from outside (an answer, a watched change), it is not cut off (a
    /// cut-off member loses those). Like [`Simulator::hold_if_paused`] for nodes.
    pub(crate) fn member_event_held_until(&self, kind: &EventKind) -> Option<u64> {
        let (member, incarnation, from_outside) = match kind {
            EventKind::MemberTurn {
                member,
                incarnation,
            } => (*member, *incarnation, false),
            EventKind::MemberAnswer {
                member,
                incarnation,
                ..
            }
            | EventKind::MemberObserved {
                member,
                incarnation,
                ..
            } => (*member, *incarnation, true),
            _ => return None,
        };
        let now = self.now_us;
        let state = &self.services.as_ref()?.members[member];
        let current = state.alive && state.incarnation == incarnation;
        let reaches = !from_outside || state.cut_off_until_us <= now;
        (current && reaches && state.paused_until_us > now).then_some(state.paused_until_us)
    }

    /// A member's turn: note whether it acts as master, then send what its agent asks for.
    pub(crate) fn on_member_turn(&mut self, member: usize, incarnation: u64) {
        let now = self.now_us;
        let state = &self.services().members[member];
        if !state.alive || state.incarnation != incarnation {
            return;
        }
        let local = state.local_ms(now);
        let action = state.agent.next_action(local);
        self.events += 1;
        match action {
            Action::Register | Action::KeepAlive => {
                let purpose = if action == Action::Register {
                    Purpose::Register
                } else {
                    Purpose::KeepAlive
                };
                let operation = self.member_operation(member, purpose);
                let request = self.member_send(member, operation, purpose);
                // Its turn comes again when the answer arrives, or after a keep-alive
                // interval if none does (the request is then taken as failed).
                let config = *self.services().members[member].agent.config();
                let wait = config.keep_alive_every_ms.max(config.retry_ms);
                let timeout = EventKind::MemberTimeout {
                    member,
                    incarnation,
                    request,
                };
                self.schedule_in_ms(wait, timeout);
            }
            Action::WaitUntil(at) => {
                let at_us = self.services().members[member].global_us(at).max(now + 1);
                self.schedule(
                    at_us,
                    EventKind::MemberTurn {
                        member,
                        incarnation,
                    },
                );
            }
        }
    }

    fn member_operation(&mut self, member: usize, purpose: Purpose) -> Operation {
        let faults_on = matches!(self.phase, crate::simulator::Phase::Safety);
        let world = self.services();
        let section = &world.section;
        let state = &world.members[member];
        let instance = state.instance.clone();
        match purpose {
            Purpose::Register => Operation::RegisterMember(Box::new(Registration {
                group: GROUP.into(),
                instance,
                ttl_ms: section.ttl_ms,
                priority: (member % 2) as i64,
                weight: Some(state.weight),
                draining: state.draining && !section.planted_register_undrained,
                mode: Some(section.mode),
                expected_members: section.expected_members,
                failover_delay_ms: Some(section.failover_delay_ms),
                ..Registration::default()
            })),
            _ if world.farm.is_some() => {
                // A farm member reports its load, and now and then drains or comes back
                // (never while the faults are over: then every member serves).
                let flip = faults_on && world.random.random::<f64>() < section.drain_probability;
                let draining = (state.draining ^ flip) && faults_on;
                let load = world.random.random_range(0..=section.load_max);
                let was_draining = std::mem::replace(&mut world.members[member].draining, draining);
                if draining && !was_draining {
                    self.farm_member_unpickable(&instance);
                } else if was_draining && !draining {
                    self.farm_member_pickable(&instance);
                }
                Operation::MemberUpdate {
                    group: GROUP.into(),
                    instance,
                    update: MemberUpdate {
                        load: Some(load),
                        draining: Some(draining),
                        weight: None,
                    },
                }
            }
            _ => Operation::MemberKeepAlive {
                group: GROUP.into(),
                instance,
            },
        }
    }

    /// Sends a request to the member's node over the members' network.
    fn member_send(&mut self, member: usize, operation: Operation, purpose: Purpose) -> u64 {
        let now = self.now_us;
        let world = self.services();
        let id = world.next_request;
        world.next_request += 1;
        let state = &mut world.members[member];
        let local = state.local_ms(now);
        if purpose != Purpose::Farewell {
            state.agent.on_sent();
        }
        state.in_flight = Some((id, local, purpose));
        if state.cut_off_until_us > now {
            return id; // Lost: the member's turn comes back with its timeout.
        }
        let target = state.target;
        let [low, high] = world.section.network_delay_ms;
        let delay = world.random.random_range(low..=high);
        self.schedule_in_ms(
            delay,
            EventKind::MemberRequest {
                node: target,
                request: id,
                operation: Box::new(operation),
            },
        );
        id
    }

    /// A member's request reaches its node.
    pub(crate) fn on_member_request(&mut self, node: usize, request: u64, operation: Operation) {
        if !self.hosts[node].running() {
            return;
        }
        let deadline = Millis(self.hosts[node].local_ms(self.now_us) + 2_000);
        let write = Input::Write {
            id: RequestId(MEMBER_REQUEST_BIT | request),
            tenant: TenantId::DEFAULT,
            operation,
            numbered: None,
            deadline,
        };
        self.send_write(node, write);
    }

    /// A node answered a member's request: the answer travels back.
    pub(crate) fn on_member_answer_sent(
        &mut self,
        result: Result<Applied, ReplicaError>,
        request: u64,
    ) {
        let Some(member) = self
            .services()
            .members
            .iter()
            .position(|state| state.in_flight.is_some_and(|(id, _, _)| id == request))
        else {
            return;
        };
        let [low, high] = self.services().section.network_delay_ms;
        let delay = self.services().random.random_range(low..=high);
        let incarnation = self.services().members[member].incarnation;
        self.schedule_in_ms(
            delay,
            EventKind::MemberAnswer {
                member,
                incarnation,
                request,
                result: Box::new(result),
            },
        );
    }

    /// A member's request got no answer in time: the agent tries again.
    pub(crate) fn on_member_timeout(&mut self, member: usize, incarnation: u64, request: u64) {
        let now = self.now_us;
        let state = &mut self.services().members[member];
        if state.incarnation != incarnation
            || state.in_flight.is_none_or(|(id, _, _)| id != request)
        {
            return;
        }
        state.in_flight = None;
        let local = state.local_ms(now);
        state.agent.on_failure(local);
        self.schedule_in_ms(
            0,
            EventKind::MemberTurn {
                member,
                incarnation,
            },
        );
    }

    /// The answer reaches the member (unless it died or is cut off meanwhile; a paused member
    /// reads it when it wakes: [`Simulator::member_event_held_until`]).
    pub(crate) fn on_member_answer(
        &mut self,
        member: usize,
        incarnation: u64,
        request: u64,
        result: Result<Applied, ReplicaError>,
    ) {
        let now = self.now_us;
        let state = &self.services().members[member];
        if !state.alive || state.incarnation != incarnation {
            return;
        }
        if state.cut_off_until_us > now {
            return;
        }
        let Some((id, sent_at, purpose)) = state.in_flight else {
            return;
        };
        if id != request {
            return;
        }
        self.events += 1;
        self.services().members[member].in_flight = None;
        let local = self.services().members[member].local_ms(now);
        match result {
            Ok(Applied {
                response: Ok(Outcome::MemberRegistered(view) | Outcome::MemberKeptAlive(view)),
                ..
            }) => self.member_learns(member, sent_at, &view),
            Ok(Applied {
                response: Ok(_), ..
            }) => {}
            Ok(Applied {
                response:
                    Err(StoreError::MemberNotFound { .. } | StoreError::SessionNotFound { .. }),
                ..
            }) => {
                let state = &mut self.services().members[member];
                state.agent.on_gone(local);
                state.planted_master = false;
                self.end_acting(member);
            }
            Ok(Applied {
                response: Err(_), ..
            })
            | Err(_) => {
                let nodes = self.hosts.len();
                let state = &mut self.services().members[member];
                if let Err(ReplicaError::NotLeader {
                    leader: Some(leader),
                }) = result
                {
                    state.target = leader.get() as usize - 1;
                } else {
                    state.target = (state.target + 1) % nodes;
                }
                state.agent.on_failure(local);
            }
        }
        if purpose == Purpose::Farewell {
            return;
        }
        self.schedule_in_ms(
            0,
            EventKind::MemberTurn {
                member,
                incarnation,
            },
        );
    }

    /// An answer told the member its role: it starts or goes on acting, or stops.
    fn member_learns(&mut self, member: usize, sent_at: Millis, view: &MemberView) {
        let now = self.now_us;
        let planted = self.services().section.planted_no_lease;
        let state = &mut self.services().members[member];
        state.agent.on_answer(sent_at, view);
        let resign_again = state.agent.resign_unconfirmed();
        let local = state.local_ms(now);
        let end_us = if planted {
            state.planted_master = view.role == Role::Master;
            state.planted_master.then_some(u64::MAX)
        } else {
            (state.agent.acting_role(local) == Role::Master)
                .then(|| state.global_us(state.agent.acting_until()))
        };
        match end_us {
            None => self.end_acting(member),
            Some(end_us) => self.act_as_master(member, end_us),
        }
        if let Some(epoch) = resign_again.filter(|_| !planted) {
            self.member_farewell(member, Some(epoch));
            return;
        }
        // Now and then a master hands over or leaves, gracefully (while faults run); in a
        // farm, any member leaves now and then.
        let faults_on = matches!(self.phase, crate::simulator::Phase::Safety);
        if self.farm_mode() {
            let world = self.services();
            let leave = world.section.leave_probability;
            if faults_on && world.random.random::<f64>() < leave {
                self.member_farewell(member, None);
            }
            return;
        }
        if view.role == Role::Master && !planted && faults_on {
            let world = self.services();
            let (resign, leave) = (
                world.section.resign_probability,
                world.section.leave_probability,
            );
            let roll = world.random.random::<f64>();
            if roll < resign {
                self.coverage
                    .reach(crate::coverage::MASTER_RESIGNED, self.now_us);
                self.member_farewell(member, Some(view.epoch));
            } else if roll < resign + leave {
                self.member_farewell(member, None);
            }
        }
    }

    /// The member acts as master until `end_us` (global): check that nobody else does.
    fn act_as_master(&mut self, member: usize, end_us: u64) {
        let now = self.now_us;
        let world = self.services();
        let starting = match world.members[member].acting {
            Some((start, end)) if end > now => {
                world.members[member].acting = Some((start, end.max(end_us)));
                false
            }
            _ => {
                world.members[member].acting = Some((now, end_us));
                world.masters_acting += 1;
                if world
                    .members
                    .iter()
                    .enumerate()
                    .any(|(other, state)| other != member && state.acting.is_some())
                {
                    self.coverage.reach(crate::coverage::MASTER_HANDOVER, now);
                }
                true
            }
        };
        let world = self.services();
        if !starting {
            return;
        }
        let overlapping = world.members.iter().enumerate().find(|(other, state)| {
            *other != member && state.acting.is_some_and(|(_, end)| end > now)
        });
        if let Some((other, state)) = overlapping {
            let (start, end) = state.acting.expect("found acting");
            let detail = format!(
                "{} starts acting as master at {now} us while {} acts as master since {start} us \
                 until {end} us",
                world.members[member].instance, world.members[other].instance
            );
            self.violate(Violation {
                check: check::NO_OVERLAPPING_MASTERS,
                at_us: 0,
                nodes: Vec::new(),
                index: None,
                term: None,
                detail,
            });
        }
    }

    /// The member no longer acts as master from now on.
    fn end_acting(&mut self, member: usize) {
        let now = self.now_us;
        let state = &mut self.services().members[member];
        if let Some((start, end)) = state.acting {
            state.acting = Some((start, end.min(now)));
        }
    }

    /// A master steps down first, then resigns (`epoch`) or leaves (`None`); a member that
    /// leaves comes back later.
    fn member_farewell(&mut self, member: usize, epoch: Option<u64>) {
        self.end_acting(member);
        let state = &mut self.services().members[member];
        state.agent.step_down();
        let instance = state.instance.clone();
        let operation = match epoch {
            Some(epoch) => Operation::Resign {
                group: GROUP.into(),
                instance,
                epoch,
                to: None,
            },
            None => Operation::Deregister {
                group: GROUP.into(),
                instance,
            },
        };
        self.member_send(member, operation, Purpose::Farewell);
        if epoch.is_none() {
            // It leaves: this life ends, another begins after a while.
            self.member_dies(member);
            let [low, high] = self.services().section.restart_after_ms;
            let after = self.services().random.random_range(low..=high);
            self.schedule_in_ms(after, EventKind::MemberRestart { member });
        } else {
            let incarnation = self.services().members[member].incarnation;
            self.services().members[member].in_flight = None;
            self.schedule_in_ms(
                1,
                EventKind::MemberTurn {
                    member,
                    incarnation,
                },
            );
        }
    }

    /// A node applied an entry: its view of the group must agree with every other's, and a
    /// failover must come in time.
    pub(crate) fn services_applied(&mut self, node: usize, applied: &AppliedEntry) {
        self.note_renewal(applied);
        let view = self.hosts[node]
            .replica
            .as_ref()
            .and_then(|replica| replica.store().group_view(TenantId::DEFAULT, GROUP));
        if self.farm_mode() {
            let members = view.as_ref().map_or(&[][..], |view| &view.members[..]);
            self.farm_applied(node, applied.entry.index.get(), members);
        }
        let Some(view) = view else {
            return;
        };
        let forming = view.phase == rafting_core::store::services::GroupPhase::Forming;
        let master = view.master.map(|master| master.instance);
        let has_master = master.is_some();
        let world = self.services();
        let expected = world.section.expected_members.unwrap_or(1);
        let was_forming = std::mem::replace(&mut world.node_forming[node], forming);
        if forming && !was_forming {
            let now = self.now_us;
            self.coverage.reach(crate::coverage::GROUP_REFORMED, now);
        }
        let world = self.services();
        let new_epoch = !world.epochs.contains_key(&view.epoch);
        let previous = world
            .epochs
            .range(..view.epoch)
            .next_back()
            .and_then(|(_, master)| master.clone());
        let result = one_master_per_epoch(
            &mut world.epochs,
            &mut world.node_epochs,
            node,
            view.epoch,
            master.clone(),
        );
        self.check(result);
        if new_epoch && master.is_some() {
            self.check_handover(previous, applied);
        }
        if new_epoch {
            self.members_observe(node, view.epoch, master);
        }
        let joined = view.joined_while_forming;
        let result = cold_start_barrier(node, was_forming, forming, has_master, joined, expected);
        self.check(result);
    }

    /// Every member watches the group through the node it talks to: a change that node applies
    /// reaches it after a network delay (unless it is cut off, or the node is another).
    fn members_observe(&mut self, node: usize, epoch: u64, master: Option<String>) {
        let world = self.services();
        let mut deliveries = Vec::new();
        for (member, state) in world.members.iter().enumerate() {
            if state.alive && state.target == node {
                let [low, high] = world.section.network_delay_ms;
                deliveries.push((
                    member,
                    state.incarnation,
                    world.random.random_range(low..=high),
                ));
            }
        }
        for (member, incarnation, delay) in deliveries {
            let observed = EventKind::MemberObserved {
                member,
                incarnation,
                epoch,
                master: master.clone(),
            };
            self.schedule_in_ms(delay, observed);
        }
    }

    /// A watched change reaches a member: it may start acting (inside its last renewal's
    /// window) or stop at once, as `rafting service join` does.
    pub(crate) fn on_member_observed(
        &mut self,
        member: usize,
        incarnation: u64,
        epoch: u64,
        master: Option<String>,
    ) {
        let now = self.now_us;
        let planted = self.services().section.planted_no_lease;
        let state = &mut self.services().members[member];
        if !state.alive || state.incarnation != incarnation || state.cut_off_until_us > now {
            return;
        }
        if planted {
            return;
        }
        let instance = state.instance.clone();
        state.agent.on_observed(epoch, master.as_deref(), &instance);
        let local = state.local_ms(now);
        let acting = state.agent.acting_role(local) == Role::Master;
        let end_us = state.global_us(state.agent.acting_until());
        if acting {
            self.act_as_master(member, end_us);
        } else {
            self.end_acting(member);
        }
    }

    /// Records when a member's registration or keep-alive was first applied.
    fn note_renewal(&mut self, applied: &AppliedEntry) {
        let EntryPayload::Command(bytes) = &applied.entry.payload else {
            return;
        };
        let Ok(Command::Request(request)) = Command::decode(bytes) else {
            return;
        };
        let instance = match request.operation {
            Operation::RegisterMember(registration) => registration.instance,
            Operation::MemberKeepAlive { instance, .. } => instance,
            _ => return,
        };
        if !matches!(applied.response, Some(Ok(_))) {
            return;
        }
        let (index, now) = (applied.entry.index.get(), self.now_us);
        let renewal = self.services().renewals.entry(instance).or_insert((0, now));
        if index > renewal.0 {
            *renewal = (index, now);
        }
    }

    /// `handover_bounds`: a master whose session expired (a tick ended it) is replaced within
    /// TTL + hold-off + slack of its last renewal.
    fn check_handover(&mut self, previous: Option<String>, applied: &AppliedEntry) {
        let world = self.services();
        let Some(slack) = world.section.handover_slack_ms else {
            return;
        };
        let Some(previous) = previous else {
            return;
        };
        let expired = matches!(&applied.entry.payload, EntryPayload::Command(bytes)
            if matches!(Command::decode(bytes), Ok(Command::Tick(_))));
        let Some(&(_, renewed_us)) = world.renewals.get(&previous) else {
            return;
        };
        if !expired {
            return;
        }
        let bound_ms = world.section.ttl_ms + world.section.failover_delay_ms + slack;
        let took_ms = (self.now_us - renewed_us) / MICROS_PER_MS;
        let result = handover_within(&previous, took_ms, bound_ms, applied.entry.index.get());
        self.check(result);
    }

    /// A restarted node re-applies its log to a fresh store: its view of the group starts over
    /// from epoch 0 and replays every epoch again.
    pub(crate) fn services_node_restarted(&mut self, node: usize) {
        let world = self.services();
        world.node_epochs[node] = 0;
        world.node_forming[node] = true;
        if self.farm_mode() {
            self.farm_node_restarted(node);
        }
    }

    /// Members stop failing when the faults stop: the stalled wake up, the dead come back.
    pub(crate) fn services_liveness(&mut self) {
        let now = self.now_us;
        let world = self.services();
        let mut dead = Vec::new();
        for (member, state) in world.members.iter_mut().enumerate() {
            state.paused_until_us = state.paused_until_us.min(now);
            state.cut_off_until_us = state.cut_off_until_us.min(now);
            if !state.alive {
                dead.push(member);
            }
        }
        for member in dead {
            self.schedule_in_ms(0, EventKind::MemberRestart { member });
        }
    }

    /// Settled when some member acts as master (after the faults, a group must get one).
    pub(crate) fn services_settled(&mut self) -> bool {
        if self.farm_mode() {
            let live: Vec<(String, u32)> = self
                .services()
                .members
                .iter()
                .filter(|state| state.alive)
                .map(|state| (state.instance.clone(), state.weight))
                .collect();
            return self.farm_settled(&live);
        }
        let now = self.now_us;
        self.services().members.iter().any(|state| {
            state.alive
                && state
                    .acting
                    .is_some_and(|(start, end)| start <= now && now < end)
        })
    }

    pub(crate) fn services_report(&self) -> ServicesReport {
        let Some(world) = self.services.as_ref() else {
            return ServicesReport::default();
        };
        ServicesReport {
            epochs: world.epochs.keys().next_back().copied().unwrap_or(0),
            masters_acting: world.masters_acting,
            picks: world.farm.as_ref().map_or(0, |farm| farm.picks),
        }
    }
}

/// The `one_master_per_epoch` check of one node's view after an apply: its epoch never goes
/// back, and an epoch names the same master (or none) on every node.
pub fn one_master_per_epoch(
    epochs: &mut BTreeMap<u64, Option<String>>,
    node_epochs: &mut [u64],
    node: usize,
    epoch: u64,
    master: Option<String>,
) -> Result<(), Violation> {
    let previous = node_epochs[node];
    if epoch < previous {
        let detail = format!(
            "node {} applied epoch {epoch} after epoch {previous}",
            node + 1
        );
        return Err(epoch_violation(node, detail));
    }
    node_epochs[node] = epoch;
    match epochs.get(&epoch) {
        None => {
            epochs.insert(epoch, master);
            Ok(())
        }
        Some(known) if *known != master => {
            let detail = format!(
                "epoch {epoch} has master {known:?} on one node and {master:?} on node {}",
                node + 1
            );
            Err(epoch_violation(node, detail))
        }
        Some(_) => Ok(()),
    }
}

/// The `cold_start_barrier` check of one node's view after an apply: a forming group has no
/// master, and a group that starts (no start request or start delay in the simulator) has
/// had its expected members join since it began forming.
pub fn cold_start_barrier(
    node: usize,
    was_forming: bool,
    forming: bool,
    has_master: bool,
    joined: u32,
    expected: u32,
) -> Result<(), Violation> {
    let detail = if forming && has_master {
        format!("node {} has a master in a forming group", node + 1)
    } else if was_forming && !forming && joined < expected {
        format!(
            "node {} started the group with {joined} of {expected} expected members joined",
            node + 1
        )
    } else {
        return Ok(());
    };
    Err(Violation {
        check: check::COLD_START_BARRIER,
        at_us: 0,
        nodes: vec![node as u64 + 1],
        index: None,
        term: None,
        detail,
    })
}

/// The `handover_bounds` check: the expired master `previous`, last renewed `took_ms` before
/// its successor's appointment (at log `index`), was replaced within `bound_ms`.
pub fn handover_within(
    previous: &str,
    took_ms: u64,
    bound_ms: u64,
    index: u64,
) -> Result<(), Violation> {
    if took_ms <= bound_ms {
        return Ok(());
    }
    Err(Violation {
        check: check::HANDOVER_BOUNDS,
        at_us: 0,
        nodes: Vec::new(),
        index: Some(index),
        term: None,
        detail: format!(
            "{previous} was last renewed {took_ms} ms before its successor was appointed, over \
             the bound of {bound_ms} ms"
        ),
    })
}

fn epoch_violation(node: usize, detail: String) -> Violation {
    Violation {
        check: check::ONE_MASTER_PER_EPOCH,
        at_us: 0,
        nodes: vec![node as u64 + 1],
        index: None,
        term: None,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_master_per_epoch_catches_two_masters_in_an_epoch_and_an_epoch_going_back() {
        let mut epochs = BTreeMap::new();
        let mut node_epochs = vec![0; 3];
        let mut check = |node, epoch, master: Option<&str>| {
            one_master_per_epoch(
                &mut epochs,
                &mut node_epochs,
                node,
                epoch,
                master.map(str::to_owned),
            )
        };
        assert!(check(0, 1, Some("a")).is_ok());
        assert!(check(1, 1, Some("a")).is_ok());
        assert!(check(0, 2, None).is_ok());
        let two_masters = check(2, 1, Some("b")).unwrap_err();
        assert_eq!(two_masters.check, check::ONE_MASTER_PER_EPOCH);
        assert!(
            two_masters.detail.contains("epoch 1 has master"),
            "{}",
            two_masters.detail
        );
        let back = check(0, 1, Some("a")).unwrap_err();
        assert!(
            back.detail.contains("applied epoch 1 after epoch 2"),
            "{}",
            back.detail
        );
    }

    #[test]
    fn handover_bounds_catches_a_late_failover() {
        assert!(handover_within("m1", 1_400, 1_400, 9).is_ok());
        let late = handover_within("m1", 1_401, 1_400, 9).unwrap_err();
        assert_eq!(late.check, check::HANDOVER_BOUNDS);
        assert!(
            late.detail.contains("m1 was last renewed 1401 ms"),
            "{}",
            late.detail
        );
    }

    #[test]
    fn cold_start_barrier_catches_a_master_while_forming_and_a_start_below_the_count() {
        assert!(cold_start_barrier(0, true, true, false, 1, 3).is_ok());
        assert!(cold_start_barrier(0, true, false, true, 3, 3).is_ok());
        let early = cold_start_barrier(0, true, false, true, 2, 3).unwrap_err();
        assert_eq!(early.check, check::COLD_START_BARRIER);
        assert!(early.detail.contains("2 of 3"), "{}", early.detail);
        let master = cold_start_barrier(1, true, true, true, 1, 3).unwrap_err();
        assert!(
            master.detail.contains("master in a forming group"),
            "{}",
            master.detail
        );
    }
}
