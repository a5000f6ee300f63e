//! The simulated network: per-link latency, loss, duplication and reordering, and the
//! partitions (random halves, an isolated node, a bridge, one-way links) that block links.
//!
//! Under profile `brief` each link is first-in first-out (a message never overtakes an earlier
//! one on the same link) and nothing is duplicated; under `relaxed` latencies are independent
//! and a message may be held back or delivered twice.

use crate::scenario::{PartitionKind, Profile};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Microseconds in a millisecond, the simulator's time unit.
pub const MICROS_PER_MS: u64 = 1000;

/// The fate of a sent message: delivered at these times (one, or two when duplicated), or
/// dropped for this reason.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver {
        at_us: u64,
        duplicate_at_us: Option<u64>,
    },
    Drop(&'static str),
}

/// Links between `nodes` nodes, by position (node id - 1).
#[derive(Clone, Debug)]
pub struct Network {
    nodes: usize,
    profile: Profile,
    /// `blocked[from * nodes + to]`: messages on that link are dropped.
    blocked: Vec<bool>,
    /// Under `brief`, the latest delivery time per link, to keep links first-in first-out.
    last_delivery_us: Vec<u64>,
    pub latency_ms: [u64; 2],
    pub loss_probability: f64,
    pub duplicate_probability: f64,
    pub reorder_probability: f64,
    pub reorder_delay_ms_max: u64,
}

impl Network {
    pub fn new(nodes: usize, profile: Profile) -> Network {
        Network {
            nodes,
            profile,
            blocked: vec![false; nodes * nodes],
            last_delivery_us: vec![0; nodes * nodes],
            latency_ms: [1, 10],
            loss_probability: 0.0,
            duplicate_probability: 0.0,
            reorder_probability: 0.0,
            reorder_delay_ms_max: 0,
        }
    }

    pub fn is_blocked(&self, from: usize, to: usize) -> bool {
        self.blocked[from * self.nodes + to]
    }

    pub fn is_partitioned(&self) -> bool {
        self.blocked.iter().any(|&blocked| blocked)
    }

    /// Whether `from` and `to` can talk both ways.
    pub fn connected(&self, from: usize, to: usize) -> bool {
        !self.is_blocked(from, to) && !self.is_blocked(to, from)
    }

    /// Decides the fate of one message sent at `now_us`.
    pub fn send(&mut self, rng: &mut ChaCha8Rng, now_us: u64, from: usize, to: usize) -> Fate {
        if self.is_blocked(from, to) {
            return Fate::Drop("partitioned");
        }
        if self.loss_probability > 0.0 && rng.random_bool(self.loss_probability) {
            return Fate::Drop("lost");
        }
        let at_us = now_us + self.latency_us(rng);
        let link = from * self.nodes + to;
        if self.profile == Profile::Brief {
            let at_us = at_us.max(self.last_delivery_us[link]);
            self.last_delivery_us[link] = at_us;
            return Fate::Deliver {
                at_us,
                duplicate_at_us: None,
            };
        }
        let mut at_us = at_us;
        if self.reorder_probability > 0.0 && rng.random_bool(self.reorder_probability) {
            at_us += rng.random_range(0..=self.reorder_delay_ms_max * MICROS_PER_MS);
        }
        let duplicate_at_us = (self.duplicate_probability > 0.0
            && rng.random_bool(self.duplicate_probability))
        .then(|| now_us + self.latency_us(rng));
        Fate::Deliver {
            at_us,
            duplicate_at_us,
        }
    }

    fn latency_us(&self, rng: &mut ChaCha8Rng) -> u64 {
        let [low, high] = self.latency_ms;
        rng.random_range(low * MICROS_PER_MS..=high * MICROS_PER_MS)
    }

    /// Unblocks every link.
    pub fn heal(&mut self) {
        self.blocked.fill(false);
    }

    fn block(&mut self, from: usize, to: usize) {
        if from != to {
            self.blocked[from * self.nodes + to] = true;
        }
    }

    /// Blocks every link between different groups; nodes in no group are cut off entirely.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        let group_of = |node: usize| groups.iter().position(|group| group.contains(&node));
        for from in 0..self.nodes {
            for to in 0..self.nodes {
                let (a, b) = (group_of(from), group_of(to));
                if a.is_none() || a != b {
                    self.block(from, to);
                }
            }
        }
    }

    /// Cuts `node` off from everyone, both ways.
    pub fn isolate(&mut self, node: usize) {
        for other in 0..self.nodes {
            self.block(node, other);
            self.block(other, node);
        }
    }

    /// Cuts the link between `a` and `b`, both ways; every other link stays as it was (a
    /// partial partition: both may still talk to everyone else).
    pub fn cut(&mut self, a: usize, b: usize) {
        self.block(a, b);
        self.block(b, a);
    }

    /// `node` can send but not receive (`receive = false`), or receive but not send.
    pub fn one_way(&mut self, node: usize, receive: bool) {
        for other in 0..self.nodes {
            if receive {
                self.block(node, other);
            } else {
                self.block(other, node);
            }
        }
    }

    /// Applies a random partition of `kind`; `leader` is the node to isolate, if known.
    /// Returns a description for the trace.
    pub fn random_partition(
        &mut self,
        rng: &mut ChaCha8Rng,
        kind: PartitionKind,
        leader: Option<usize>,
    ) -> String {
        let mut order: Vec<usize> = (0..self.nodes).collect();
        order.shuffle(rng);
        match kind {
            PartitionKind::Halves if self.nodes >= 2 => {
                let split = rng.random_range(1..self.nodes);
                let groups = vec![order[..split].to_vec(), order[split..].to_vec()];
                self.partition(&groups);
                format!("halves {}", describe(&groups))
            }
            PartitionKind::IsolateLeader => {
                let node = leader.unwrap_or(order[0]);
                self.isolate(node);
                format!("isolate n{}", node + 1)
            }
            PartitionKind::Bridge if self.nodes >= 3 => {
                let bridge = order[0];
                let split = rng.random_range(2..self.nodes);
                let mut left = order[1..split].to_vec();
                let mut right = order[split..].to_vec();
                left.push(bridge);
                right.push(bridge);
                let groups = vec![left, right];
                self.partition_overlapping(&groups);
                format!("bridge n{} between {}", bridge + 1, describe(&groups))
            }
            PartitionKind::OneWay => {
                let receive = rng.random_bool(0.5);
                self.one_way(order[0], receive);
                let what = if receive {
                    "receives only"
                } else {
                    "sends only"
                };
                format!("one-way: n{} {what}", order[0] + 1)
            }
            _ => String::from("none (too few nodes)"),
        }
    }

    /// Blocks links between nodes that share no group (groups may overlap, as a bridge does).
    fn partition_overlapping(&mut self, groups: &[Vec<usize>]) {
        for from in 0..self.nodes {
            for to in 0..self.nodes {
                let share = groups
                    .iter()
                    .any(|group| group.contains(&from) && group.contains(&to));
                if !share {
                    self.block(from, to);
                }
            }
        }
    }
}

/// `{1,2}|{3,4,5}` with node ids.
pub fn describe(groups: &[Vec<usize>]) -> String {
    let parts: Vec<String> = groups
        .iter()
        .map(|group| {
            let mut ids: Vec<usize> = group.iter().map(|node| node + 1).collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    // A bridge node sees both sides while the sides cannot see each other.
    #[test]
    fn bridge_connects_both_sides_only_through_itself() {
        let mut network = Network::new(5, Profile::Relaxed);
        network.partition_overlapping(&[vec![0, 1, 2], vec![2, 3, 4]]);
        assert!(network.connected(0, 2));
        assert!(network.connected(4, 2));
        assert!(!network.connected(0, 4));
        network.heal();
        assert!(!network.is_partitioned());
    }

    // Under `brief`, later messages on a link never arrive before earlier ones.
    #[test]
    fn brief_links_are_first_in_first_out() {
        let mut network = Network::new(2, Profile::Brief);
        network.latency_ms = [1, 50];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut last = 0;
        for now in 0..200 {
            if let Fate::Deliver { at_us, .. } = network.send(&mut rng, now * 10, 0, 1) {
                assert!(at_us >= last);
                last = at_us;
            }
        }
    }
}
