//! Real bytes on the simulated network, and the `attacker` fault that sends bad ones.
//!
//! A scenario with a cluster `secret` or an `[attacker]` runs in *wire mode*: every message a
//! node sends is encoded into datagrams by the production codec of `rafting-wire` (sealed with
//! the cluster key when there is a secret), the network carries those bytes, and the receiving
//! node's production `Receiver` (tag, replay window, reassembly, decoding) turns them back
//! into a message or refuses them with the reason the runtime would count. Other scenarios
//! carry messages as values, as before, so their seeds replay as they always did.
//!
//! The attacker is a process on the network that is no member. At the seed's rate it sends a
//! node one of:
//! - `garbage`: random bytes, half of them behind a valid magic and version;
//! - `forged`: a valid-looking message from a claimed sender, an AppendEntries of a higher term
//!   that appends and commits a forged entry just past the target's commit index (the
//!   attacker sees every datagram, so it knows terms and indexes; the simulator hands it the
//!   target's), sealed with a key of its own or not at all;
//! - `replayed`: a genuine datagram it captured earlier, sent again to its receiver;
//! - `mutated`: a captured datagram with one to three bits flipped and its checksum fixed.
//!
//! The claimed sender is a non-member id, or (with `spoof_member`) half the time a member:
//! the receiver reads the sender from the header, so a datagram from a spoofed member
//! address is the same bytes. With the secret no forged or mutated datagram is ever
//! accepted; a replay can be, only when it arrives before its original (which then counts as
//! the replay): it is still a message the member sent. Without the secret a forged message
//! from a spoofed member is acted on, and the checkers catch what follows
//! (`sim/tests/sim_attacker.rs`).

use crate::simulator::{EventKind, Phase, Simulator};
use crate::trace::TraceEvent;
use rafting_core::raft::{AppendEntries, Entry, EntryPayload, Envelope, Message};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_wire::datagram::{self, DropReason};
use rafting_wire::{ClusterKey, Receiver, Sealer};
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// The cluster id every simulated datagram carries.
const CLUSTER_ID: u64 = 1;
/// The simulated cluster's secret (any 32 bytes: the attacker never learns it).
const CLUSTER_SECRET: &[u8] = b"the simulated cluster's secret!!";
/// The key the attacker seals its forgeries with.
const ATTACKER_SECRET: &[u8] = b"the attacker's guess at a secret";
/// Genuine datagrams the attacker keeps for replays and mutations (the most recent ones).
const CAPTURED_MAX: usize = 64;

/// What an attack datagram was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    Garbage,
    Forged,
    Replayed,
    Mutated,
}

impl Attack {
    pub fn as_str(self) -> &'static str {
        match self {
            Attack::Garbage => "garbage",
            Attack::Forged => "forged",
            Attack::Replayed => "replayed",
            Attack::Mutated => "mutated",
        }
    }
}

/// What the attacker did in one seed, and what became of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AttackReport {
    /// Attack datagrams sent, by kind.
    pub sent: BTreeMap<&'static str, u64>,
    /// Attack datagrams a running node refused, by kind and reason (`forged/auth`).
    pub refused: BTreeMap<String, u64>,
    /// Attack datagrams a node accepted (a whole message, a fragment or a probe), by kind.
    pub accepted: BTreeMap<&'static str, u64>,
}

impl AttackReport {
    /// Attack datagrams of `kind` accepted.
    pub fn accepted_of(&self, kind: Attack) -> u64 {
        self.accepted.get(kind.as_str()).copied().unwrap_or(0)
    }
}

/// The bytes world of a seed in wire mode: each node's sealer and receiver, and what the
/// attacker captured.
pub(crate) struct Wire {
    key: Option<ClusterKey>,
    attacker_key: ClusterKey,
    sealers: Vec<Sealer>,
    receivers: Vec<Receiver>,
    next_message_id: u64,
    captured: Vec<(usize, Vec<u8>)>,
    captured_total: usize,
    pub report: AttackReport,
}

impl Wire {
    pub fn new(nodes: usize, secret: bool) -> Wire {
        let key = secret.then(|| ClusterKey::from_secret(CLUSTER_SECRET).expect("32 bytes"));
        let attacker_key = ClusterKey::from_secret(ATTACKER_SECRET).expect("32 bytes");
        let mut wire = Wire {
            key,
            attacker_key,
            sealers: Vec::new(),
            receivers: Vec::new(),
            next_message_id: 0,
            captured: Vec::new(),
            captured_total: 0,
            report: AttackReport::default(),
        };
        for node in 0..nodes {
            wire.sealers.push(wire.sealer(node, nodes, 1));
            wire.receivers.push(wire.receiver(node, nodes));
        }
        wire
    }

    fn ids(nodes: usize, except: usize) -> impl Iterator<Item = NodeId> {
        (0..nodes)
            .filter(move |&other| other != except)
            .map(|other| NodeId(other as u64 + 1))
    }

    fn sealer(&self, node: usize, nodes: usize, incarnation: u64) -> Sealer {
        match &self.key {
            Some(key) => Sealer::new(key.clone(), incarnation, Self::ids(nodes, node)),
            None => Sealer::open(),
        }
    }

    fn receiver(&self, node: usize, nodes: usize) -> Receiver {
        let me = NodeId(node as u64 + 1);
        let peers = Self::ids(nodes, node).collect();
        Receiver::new(CLUSTER_ID, me, peers, self.key.clone())
    }

    /// A restarted node forgets its replay windows and partial messages, and stamps a new,
    /// larger incarnation (the runtime's wall-clock floor, here the simulated time).
    pub fn restart(&mut self, node: usize, now_us: u64) {
        let nodes = self.receivers.len();
        self.sealers[node] = self.sealer(node, nodes, now_us + 2);
        self.receivers[node] = self.receiver(node, nodes);
    }

    /// Encodes a node's message into datagrams and lets the attacker capture them.
    pub fn encode(&mut self, from: usize, envelope: &Envelope) -> Vec<Vec<u8>> {
        self.next_message_id += 1;
        let datagrams = datagram::encode(
            CLUSTER_ID,
            self.next_message_id,
            envelope,
            &self.sealers[from],
        )
        .unwrap_or_else(|error| panic!("core's limits keep messages encodable: {error}"));
        let to = envelope.to.get() as usize - 1;
        for bytes in &datagrams {
            let slot = self.captured_total % CAPTURED_MAX;
            if slot < self.captured.len() {
                self.captured[slot] = (to, bytes.clone());
            } else {
                self.captured.push((to, bytes.clone()));
            }
            self.captured_total += 1;
        }
        datagrams
    }

    pub fn receive(&mut self, to: usize, bytes: &[u8]) -> Result<Option<Envelope>, DropReason> {
        self.receivers[to].receive(bytes)
    }
}

/// Who a datagram says it is from and to, for the trace (zeros when its header is unreadable).
fn addressing(bytes: &[u8]) -> (u64, u64) {
    datagram::decode_datagram(bytes)
        .map(|framed| (framed.header.from.get(), framed.header.to.get()))
        .unwrap_or((0, 0))
}

impl Simulator<'_, '_> {
    /// Sends a message as datagrams (wire mode).
    pub(crate) fn send_datagrams(&mut self, envelope: Envelope) {
        let from = envelope.from.get() as usize - 1;
        let to = envelope.to.get() as usize - 1;
        let wire = self.wire.as_mut().expect("wire mode");
        let datagrams = wire.encode(from, &envelope);
        match self
            .network
            .send(&mut self.streams.network, self.now_us, from, to)
        {
            crate::network::Fate::Drop(reason) => self.trace_drop(&envelope, self.now_us, reason),
            crate::network::Fate::Deliver {
                at_us,
                duplicate_at_us,
            } => {
                if let Some(duplicate_at_us) = duplicate_at_us {
                    let copy = datagrams.clone();
                    let copy = deliver_bytes(to, Some(from), copy, None, self.now_us);
                    self.schedule(duplicate_at_us, copy);
                }
                let deliver = deliver_bytes(to, Some(from), datagrams, None, self.now_us);
                self.schedule(at_us, deliver);
            }
        }
    }

    /// Datagrams reach node `to`: each goes through its production receiver.
    pub(crate) fn on_deliver_bytes(
        &mut self,
        to: usize,
        from: Option<usize>,
        datagrams: Vec<Vec<u8>>,
        attack: Option<Attack>,
        sent_us: u64,
    ) {
        let blocked = from.is_some_and(|from| self.network.is_blocked(from, to));
        if self.hosts[to].replica.is_none() || blocked {
            let reason = if blocked { "partitioned" } else { "node down" };
            for bytes in &datagrams {
                self.trace_bytes_drop(bytes, sent_us, reason);
            }
            return;
        }
        let kind = deliver_bytes(to, from, datagrams, attack, sent_us);
        let Some(EventKind::DeliverBytes { datagrams, .. }) = self.hold_if_paused(to, kind) else {
            return;
        };
        for bytes in datagrams {
            let received = self.wire.as_mut().expect("wire mode").receive(to, &bytes);
            self.count_attack(attack, received.as_ref().err().copied());
            match received {
                Ok(Some(envelope)) => self.hand_over(to, envelope, sent_us),
                Ok(None) => {}
                Err(reason) => self.trace_bytes_drop(&bytes, sent_us, reason.as_str()),
            }
        }
    }

    fn count_attack(&mut self, attack: Option<Attack>, refused: Option<DropReason>) {
        let Some(attack) = attack else {
            return;
        };
        let report = &mut self.wire.as_mut().expect("wire mode").report;
        match refused {
            None => *report.accepted.entry(attack.as_str()).or_default() += 1,
            Some(reason) => {
                let key = format!("{}/{}", attack.as_str(), reason.as_str());
                *report.refused.entry(key).or_default() += 1;
                let state = match attack {
                    Attack::Garbage => crate::coverage::GARBAGE_DATAGRAM_REFUSED,
                    Attack::Forged => crate::coverage::FORGED_DATAGRAM_REFUSED,
                    Attack::Replayed => crate::coverage::REPLAYED_DATAGRAM_REFUSED,
                    Attack::Mutated => crate::coverage::MUTATED_DATAGRAM_REFUSED,
                };
                self.coverage.reach(state, self.now_us);
            }
        }
    }

    fn trace_bytes_drop(&mut self, bytes: &[u8], sent_us: u64, reason: &'static str) {
        self.events += 1;
        if self.tracer.enabled() {
            let (from, to) = addressing(bytes);
            self.tracer.record(
                self.now_us,
                TraceEvent::Drop {
                    from,
                    to,
                    sent_us,
                    message: "datagram",
                    term: 0,
                    reason,
                },
            );
        }
    }

    /// Schedules the attacker's next datagram, a uniform gap around its mean away.
    pub(crate) fn schedule_attacker(&mut self) {
        let per_second = self.params.attacks_per_second;
        if per_second <= 0.0 {
            return;
        }
        let mean_us = (1_000_000.0 / per_second) as u64;
        let gap_us = self.streams.attacker.random_range(0..=2 * mean_us.max(1));
        self.schedule(self.now_us + gap_us, EventKind::AttackerTurn);
    }

    /// The attacker sends one datagram.
    pub(crate) fn on_attacker_turn(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        self.events += 1;
        let nodes = self.hosts.len();
        let settings = &self.scenario.attacker;
        let mut kinds = vec![Attack::Garbage];
        let captured = self
            .wire
            .as_ref()
            .is_some_and(|wire| !wire.captured.is_empty());
        if settings.forge {
            kinds.push(Attack::Forged);
        }
        if settings.replay && captured {
            kinds.push(Attack::Replayed);
        }
        if settings.mutate && captured {
            kinds.push(Attack::Mutated);
        }
        let attack = kinds[self.streams.attacker.random_range(0..kinds.len())];
        let (to, bytes) = match attack {
            Attack::Garbage => {
                let to = self.streams.attacker.random_range(0..nodes);
                (to, self.garbage())
            }
            Attack::Forged => {
                let to = self.streams.attacker.random_range(0..nodes);
                (to, self.forgery(to))
            }
            Attack::Replayed | Attack::Mutated => self.captured_datagram(attack),
        };
        let wire = self.wire.as_mut().expect("wire mode");
        *wire.report.sent.entry(attack.as_str()).or_default() += 1;
        self.tracer.record(
            self.now_us,
            TraceEvent::Fault {
                what: format!("attacker: {} datagram to n{}", attack.as_str(), to + 1),
            },
        );
        let [low, high] = self.scenario.network.latency_ms;
        let latency_us = self.streams.attacker.random_range(low * 1000..=high * 1000);
        let event = deliver_bytes(to, None, vec![bytes], Some(attack), self.now_us);
        self.schedule(self.now_us + latency_us, event);
        self.schedule_attacker();
    }

    fn garbage(&mut self) -> Vec<u8> {
        let rng = &mut self.streams.attacker;
        let length = rng.random_range(0..160);
        let mut bytes: Vec<u8> = (0..length).map(|_| rng.random()).collect();
        if length >= 5 && rng.random_bool(0.5) {
            bytes[..4].copy_from_slice(&datagram::MAGIC);
            bytes[4] = datagram::PROTOCOL_VERSION;
        }
        bytes
    }

    /// A claimed sender: a member other than `to` (with `spoof_member`, half the time), or a
    /// non-member id.
    fn claimed_sender(&mut self, to: usize) -> NodeId {
        let nodes = self.hosts.len() as u64;
        let rng = &mut self.streams.attacker;
        if self.scenario.attacker.spoof_member && nodes > 1 && rng.random_bool(0.5) {
            let other = (to as u64 + rng.random_range(1..nodes)) % nodes;
            return NodeId(other + 1);
        }
        NodeId(nodes + 1 + rng.random_range(0..3))
    }

    /// An AppendEntries that would have `to` append and commit a forged entry just past its
    /// commit index, in a term above every node's.
    fn forgery(&mut self, to: usize) -> Vec<u8> {
        let from = self.claimed_sender(to);
        let term = self
            .hosts
            .iter()
            .filter_map(|host| host.node().map(|node| node.term()))
            .max()
            .unwrap_or(Term::ZERO)
            .next();
        let (commit, commit_term) = self.hosts[to]
            .node()
            .map(|node| {
                let log = node.log();
                (
                    log.commit(),
                    log.term_at(log.commit()).unwrap_or(Term::ZERO),
                )
            })
            .unwrap_or((LogIndex::ZERO, Term::ZERO));
        let envelope = Envelope {
            from,
            to: NodeId(to as u64 + 1),
            message: Message::AppendEntries(AppendEntries {
                term,
                prev_log_index: commit,
                prev_log_term: commit_term,
                entries: vec![Entry {
                    term,
                    index: commit.next(),
                    payload: EntryPayload::Command(b"forged".to_vec().into()),
                }],
                leader_commit: commit.next(),
            }),
        };
        let wire = self.wire.as_ref().expect("wire mode");
        let sealer = if self.streams.attacker.random_bool(0.5) {
            Sealer::new(wire.attacker_key.clone(), u64::MAX, [envelope.to])
        } else {
            Sealer::open()
        };
        let message_id = self.streams.attacker.random();
        datagram::encode(CLUSTER_ID, message_id, &envelope, &sealer)
            .map(|mut datagrams| datagrams.remove(0))
            .unwrap_or_default()
    }

    /// A captured genuine datagram and its receiver, as is or with bits flipped and the
    /// checksum fixed.
    fn captured_datagram(&mut self, attack: Attack) -> (usize, Vec<u8>) {
        let wire = self.wire.as_ref().expect("wire mode");
        let pick = self.streams.attacker.random_range(0..wire.captured.len());
        let (to, mut bytes) = wire.captured[pick].clone();
        if attack == Attack::Mutated && !bytes.is_empty() {
            let original = bytes.clone();
            for _ in 0..self.streams.attacker.random_range(1..=3) {
                let position = self.streams.attacker.random_range(0..bytes.len());
                bytes[position] ^= 1 << self.streams.attacker.random_range(0..8);
            }
            fix_checksum(&mut bytes);
            if bytes == original {
                // The flips undid each other, or hit only the checksum the fix restored: that
                // would be a replay, not a mutation.
                bytes[0] ^= 1;
            }
        }
        (to, bytes)
    }
}

/// Recomputes a datagram's checksum, as anyone can: it guards against noise, not forgers.
fn fix_checksum(bytes: &mut [u8]) {
    use rafting_wire::auth::TAG_BYTES;
    if bytes.len() < datagram::HEADER_BYTES {
        return;
    }
    let tagged = bytes[5] & datagram::FLAG_AUTHENTICATED != 0;
    let tag = if tagged { TAG_BYTES } else { 0 };
    if bytes.len() < datagram::HEADER_BYTES + tag {
        return;
    }
    let checksum = datagram::checksum_of(&bytes[..bytes.len() - tag]);
    bytes[datagram::CHECKSUM_OFFSET..datagram::HEADER_BYTES]
        .copy_from_slice(&checksum.to_le_bytes());
}

fn deliver_bytes(
    to: usize,
    from: Option<usize>,
    datagrams: Vec<Vec<u8>>,
    attack: Option<Attack>,
    sent_us: u64,
) -> EventKind {
    EventKind::DeliverBytes {
        to,
        from,
        datagrams,
        attack,
        sent_us,
    }
}
