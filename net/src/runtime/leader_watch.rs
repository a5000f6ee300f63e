//! Crash detection for a follower's leader: when the leader falls silent for one and a half
//! heartbeat intervals, the follower probes it (see [`Prober`]) a few times per heartbeat
//! interval. A probe answered "port unreachable" means the leader's process is gone, and
//! core hears of it at once (`Input::PeerUnreachable`) instead of after the election timeout.
//! Silence alone never triggers anything but probes.

use crate::transport::Prober;
use rafting_core::NodeId;
use std::time::{Duration, Instant};

pub(super) struct LeaderWatch {
    prober: Option<Prober>,
    silence: Duration,
    probe_interval: Duration,
    /// The leader this node follows; `None` when it knows none or leads itself.
    leader: Option<NodeId>,
    last_heard: Instant,
    next_probe: Instant,
    /// The leader was already reported down; nothing more until it is heard from again.
    reported: bool,
}

impl LeaderWatch {
    /// `prober` is `None` when probing is turned off.
    pub(super) fn new(prober: Option<Prober>, heartbeat_interval_ms: u64) -> LeaderWatch {
        let heartbeat = Duration::from_millis(heartbeat_interval_ms.max(1));
        let now = Instant::now();
        LeaderWatch {
            prober,
            silence: heartbeat * 3 / 2,
            probe_interval: (heartbeat / 4).max(Duration::from_millis(5)),
            leader: None,
            last_heard: now,
            next_probe: now,
            reported: false,
        }
    }

    /// A message arrived from `peer`.
    pub(super) fn heard_from(&mut self, peer: NodeId, now: Instant) {
        if self.leader == Some(peer) {
            self.last_heard = now;
            self.reported = false;
        }
    }

    /// The node now follows `leader` (`None`: no leader known, or this node leads).
    pub(super) fn follow(&mut self, leader: Option<NodeId>, now: Instant) {
        if self.leader != leader {
            self.leader = leader;
            self.last_heard = now;
            self.reported = false;
        }
    }

    /// When a probe is next due, if one can be.
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.prober.is_none() || self.leader.is_none() || self.reported {
            return None;
        }
        Some(self.next_probe.max(self.last_heard + self.silence))
    }

    /// Sends a probe if one is due. Returns the leader when a probe found its port closed.
    pub(super) fn poll(&mut self, now: Instant) -> Option<NodeId> {
        let due = self.next_due()?;
        if now < due {
            return None;
        }
        let leader = self.leader?;
        self.next_probe = now + self.probe_interval;
        let prober = self.prober.as_mut()?;
        if prober.probe(leader) {
            self.reported = true;
            return Some(leader);
        }
        None
    }
}
