//! Swarm testing: each seed draws its own fault rates inside the scenario's ranges, and its
//! own subset of partition kinds, so that some seeds run calm and others brutal.
//!
//! Every random choice of the simulator comes from one seed. [`Streams`] derives one ChaCha
//! generator per concern (parameters, network, faults, workload, each node) from it, so that
//! adding a draw in one concern does not shift every other.

use crate::scenario::{PartitionKind, Scenario, Span, Toggle};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed's independent generators.
pub struct Streams {
    pub params: ChaCha8Rng,
    pub network: ChaCha8Rng,
    pub faults: ChaCha8Rng,
    pub workload: ChaCha8Rng,
    pub disk: ChaCha8Rng,
    /// Client-to-node delays (drawn only when a scenario sets `workload.client_latency_ms`).
    pub client_network: ChaCha8Rng,
    /// The attacker's choices (drawn only when a scenario has an `[attacker]`).
    pub attacker: ChaCha8Rng,
    /// Seeds for the nodes' own generators (election jitter), one per node.
    pub node_seeds: Vec<u64>,
}

impl Streams {
    pub fn new(seed: u64, nodes: usize) -> Streams {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let mut derive = || ChaCha8Rng::seed_from_u64(master.next_u64());
        let params = derive();
        let network = derive();
        let faults = derive();
        let workload = derive();
        let disk = derive();
        let node_seeds = (0..nodes).map(|_| master.next_u64()).collect();
        // Derived after the node seeds, so that every earlier stream stays as it was.
        let client_network = ChaCha8Rng::seed_from_u64(master.next_u64());
        let attacker = ChaCha8Rng::seed_from_u64(master.next_u64());
        Streams {
            attacker,
            client_network,
            params,
            network,
            faults,
            workload,
            disk,
            node_seeds,
        }
    }
}

/// The cluster size a seed of a `nodes_drawn` scenario runs with. Drawn from a generator of
/// its own, before anything else, so that the size never shifts another draw.
pub fn draw_cluster_size(seed: u64, low: u64, high: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_C1A5_7E55_1CE5);
    draw_u64(&mut rng, low, high)
}

/// The concrete values one seed runs with.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Params {
    /// Cluster size (drawn when the scenario sets `nodes_drawn`).
    pub nodes: u64,
    pub loss_probability: f64,
    pub duplicate_probability: f64,
    pub reorder_probability: f64,
    pub partitions_per_minute: f64,
    pub partition_kinds: Vec<String>,
    pub crashes_per_minute: f64,
    pub pauses_per_minute: f64,
    pub torn_write_probability: f64,
    /// Each node's timer rate in parts per million of real time (1,000,000 = exact).
    pub clock_rate_ppm: Vec<u64>,
    pub request_interval_ms: [u64; 2],
    /// The protocol options this seed runs with (drawn when the scenario says `"either"`).
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub wipe_probability: f64,
    pub wander_probability: f64,
    /// The nodes' batching and flow-control limits this seed runs with.
    pub limits: NodeLimits,
    /// Datagrams the attacker sends per simulated second (0: no attacker).
    pub attacks_per_second: f64,
    /// Entries between snapshots (0: none), chunk size (0: default), and snapshot faults.
    pub snapshot_every_entries: u64,
    pub snapshot_chunk_bytes: u64,
    pub snapshot_corrupt_probability: f64,
    pub chunk_corruption_probability: f64,
    #[serde(skip)]
    pub kinds: Vec<PartitionKind>,
}

/// The limits of `rafting_core::raft::Config` a seed draws (`[timing]` ranges).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeLimits {
    pub entries_per_append_max: usize,
    pub bytes_per_append_max: usize,
    pub inflight_messages_max: usize,
    pub inflight_bytes_max: usize,
    pub uncommitted_entries_max: usize,
    pub uncommitted_bytes_max: usize,
    pub pending_reads_max: usize,
}

impl NodeLimits {
    /// Draws each limit in its range; a fixed value (every default) draws nothing, so that
    /// scenarios without ranges keep every recorded seed as it was.
    fn draw(timing: &crate::scenario::Timing, rng: &mut ChaCha8Rng) -> NodeLimits {
        let mut draw = |span: Span<u64>| draw_u64(rng, span.low(), span.high()) as usize;
        NodeLimits {
            entries_per_append_max: draw(timing.entries_per_append_max),
            bytes_per_append_max: draw(timing.bytes_per_append_max),
            inflight_messages_max: draw(timing.inflight_messages_max),
            inflight_bytes_max: draw(timing.inflight_bytes_max),
            uncommitted_entries_max: draw(timing.uncommitted_entries_max),
            uncommitted_bytes_max: draw(timing.uncommitted_bytes_max),
            pending_reads_max: draw(timing.pending_reads_max),
        }
    }
}

/// A toggle's value for this seed. Drawn only when asked, so that scenarios with fixed
/// options keep every other draw, and so every recorded seed, as it was.
fn draw_toggle(rng: &mut ChaCha8Rng, toggle: Toggle) -> bool {
    match toggle {
        Toggle::Fixed(value) => value,
        Toggle::Drawn(_) => rng.random_bool(0.5),
    }
}

fn draw_f64(rng: &mut ChaCha8Rng, span: Span<f64>) -> f64 {
    let (low, high) = (span.low(), span.high());
    if high <= low {
        return low;
    }
    rng.random_range(low..=high)
}

pub(crate) fn draw_u64(rng: &mut ChaCha8Rng, low: u64, high: u64) -> u64 {
    if high <= low {
        return low;
    }
    rng.random_range(low..=high)
}

impl Params {
    /// Draws this seed's values inside the scenario's ranges.
    pub fn draw(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Params {
        let loss_probability = draw_f64(rng, scenario.network.loss_probability);
        let duplicate_probability = draw_f64(rng, scenario.network.duplicate_probability);
        let reorder_probability = draw_f64(rng, scenario.network.reorder_probability);
        let partitions_per_minute = draw_f64(rng, scenario.partitions.per_minute);
        let kinds = draw_kinds(rng, &scenario.partitions.kinds);
        let crashes_per_minute = draw_f64(rng, scenario.crashes.per_minute);
        let pauses_per_minute = draw_f64(rng, scenario.pauses.per_minute);
        let torn_write_probability = draw_f64(rng, scenario.disk.torn_write_probability);
        let drift_max = draw_f64(rng, scenario.clock.drift_max);
        let drift_ppm = (drift_max * 1_000_000.0) as u64;
        let clock_rate_ppm = (0..scenario.nodes)
            .map(|_| draw_u64(rng, 1_000_000 - drift_ppm, 1_000_000 + drift_ppm))
            .collect();
        let interval = scenario.workload.request_interval_ms;
        let first = draw_u64(rng, interval.low(), interval.high());
        let second = draw_u64(rng, interval.low(), interval.high());
        let pre_vote = draw_toggle(rng, scenario.timing.pre_vote);
        let check_quorum = draw_toggle(rng, scenario.timing.check_quorum);
        // Drawn last, and only consuming the generator when the range is not empty, so that
        // scenarios without wipes keep every recorded seed as it was.
        let wipe_probability = draw_f64(rng, scenario.crashes.wipe_probability);
        let wander_probability = draw_f64(rng, scenario.workload.wander_probability);
        let limits = NodeLimits::draw(&scenario.timing, rng);
        let attacks_per_second = draw_f64(rng, scenario.attacker.per_second);
        // Drawn after everything else, and only when the scenario asks, for the same reason.
        let snapshots = &scenario.snapshots;
        let every = snapshots.every_entries;
        let snapshot_every_entries = draw_u64(rng, every.low(), every.high());
        let chunk = snapshots.chunk_bytes;
        let snapshot_chunk_bytes = draw_u64(rng, chunk.low(), chunk.high());
        let snapshot_corrupt_probability = draw_f64(rng, snapshots.corrupt_probability);
        let chunk_corruption_probability = draw_f64(rng, snapshots.chunk_corruption_probability);
        Params {
            attacks_per_second,
            nodes: scenario.nodes,
            loss_probability,
            duplicate_probability,
            reorder_probability,
            partitions_per_minute,
            partition_kinds: kinds.iter().map(|kind| format!("{kind:?}")).collect(),
            crashes_per_minute,
            pauses_per_minute,
            torn_write_probability,
            clock_rate_ppm,
            request_interval_ms: [first.min(second), first.max(second)],
            pre_vote,
            check_quorum,
            wipe_probability,
            wander_probability,
            limits,
            snapshot_every_entries,
            snapshot_chunk_bytes,
            snapshot_corrupt_probability,
            chunk_corruption_probability,
            kinds,
        }
    }
}

/// A random non-empty subset of the allowed kinds (all of them when only one is allowed).
fn draw_kinds(rng: &mut ChaCha8Rng, allowed: &[PartitionKind]) -> Vec<PartitionKind> {
    let mut kinds: Vec<PartitionKind> = allowed
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.6))
        .collect();
    if kinds.is_empty() && !allowed.is_empty() {
        kinds.push(allowed[rng.random_range(0..allowed.len())]);
    }
    kinds.sort();
    kinds.dedup();
    kinds
}
