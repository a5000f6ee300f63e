//! Crash detection for a follower's leader: when the leader falls silent for one and a half
//! heartbeat intervals, the follower probes it (see [`Prober`]) four times per heartbeat
//! interval, then, after [`QUICK_PROBES`] probes without an answer (a partition or a dead host
//! rather than a crashed process), once per heartbeat interval. A probe answered "port
//! unreachable" means the leader's process is gone, and core hears of it at once
//! (`Input::PeerUnreachable`) instead of after the election timeout. Silence alone never
//! triggers anything but probes.

use crate::transport::Prober;
use rafting_core::NodeId;
use std::time::{Duration, Instant};

/// Probes sent at the quick pace before slowing to one per heartbeat interval.
const QUICK_PROBES: u32 = 8;

pub(super) struct LeaderWatch {
    prober: Option<Prober>,
    heartbeat: Duration,
    silence: Duration,
    probe_interval: Duration,
    /// Probes sent since the leader was last heard from.
    probes: u32,
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
            heartbeat,
            probes: 0,
            silence: heartbeat * 3 / 2,
            probe_interval: (heartbeat / 4).max(Duration::from_millis(5)),
            leader: None,
            last_heard: now,
            next_probe: now,
            reported: false,
        }
    }

    /// A message arrived from `peer`.
    /// The peers' addresses changed (the configuration in force did).
    pub(super) fn set_peers(
        &mut self,
        peers: std::collections::BTreeMap<NodeId, std::net::SocketAddr>,
    ) {
        if let Some(prober) = &mut self.prober {
            prober.set_peers(peers);
        }
    }

    pub(super) fn heard_from(&mut self, peer: NodeId, now: Instant) {
        if self.leader == Some(peer) {
            self.last_heard = now;
            self.reported = false;
            self.probes = 0;
        }
    }

    /// The node now follows `leader` (`None`: no leader known, or this node leads).
    pub(super) fn follow(&mut self, leader: Option<NodeId>, now: Instant) {
        if self.leader != leader {
            self.leader = leader;
            self.last_heard = now;
            self.reported = false;
            self.probes = 0;
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
        self.probes += 1;
        let pace = if self.probes < QUICK_PROBES {
            self.probe_interval
        } else {
            self.heartbeat
        };
        self.next_probe = now + pace;
        let prober = self.prober.as_mut()?;
        if prober.probe(leader) {
            self.reported = true;
            return Some(leader);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::collections::BTreeMap;
    use std::net::UdpSocket;
    use std::sync::Arc;

    /// A watch on leader n2, which listens (so probes are never refused), heartbeat 100 ms.
    fn watch(listener: &UdpSocket) -> LeaderWatch {
        let peers = BTreeMap::from([(NodeId(2), listener.local_addr().unwrap())]);
        let sealer = Arc::new(rafting_wire::Sealer::open());
        let prober = Prober::new(7, NodeId(1), peers, sealer, Arc::new(Metrics::default()));
        LeaderWatch::new(Some(prober), 100)
    }

    #[test]
    fn a_silent_leader_is_probed_quickly_then_once_a_heartbeat() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut watch = watch(&listener);
        let start = Instant::now();
        assert_eq!(watch.next_due(), None, "no leader, no probes");
        watch.follow(Some(NodeId(2)), start);
        let first = start + Duration::from_millis(150);
        assert_eq!(watch.next_due(), Some(first));
        assert_eq!(watch.poll(first - Duration::from_millis(1)), None);
        let mut now = first;
        let mut gaps = Vec::new();
        for _ in 0..10 {
            assert_eq!(watch.poll(now), None, "a listening leader is not reported");
            let next = watch.next_due().unwrap();
            gaps.push((next - now).as_millis());
            now = next;
        }
        assert_eq!(gaps, [25, 25, 25, 25, 25, 25, 25, 100, 100, 100]);
        watch.heard_from(NodeId(2), now);
        assert_eq!(watch.next_due(), Some(now + Duration::from_millis(150)));
    }

    #[test]
    fn a_closed_leader_port_is_reported_once_until_heard_from_again() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut watch = watch(&listener);
        drop(listener);
        let start = Instant::now();
        watch.follow(Some(NodeId(2)), start);
        let mut now = start + Duration::from_millis(150);
        let mut reported = None;
        for _ in 0..10 {
            reported = watch.poll(now);
            if reported.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            now = watch.next_due().unwrap();
        }
        assert_eq!(reported, Some(NodeId(2)));
        assert_eq!(watch.next_due(), None, "reported: no more probes");
        watch.heard_from(NodeId(2), now);
        assert!(watch.next_due().is_some());
    }
}
