//! UDP between peers: a receive thread that turns datagrams into messages for the node loop,
//! and a sending thread per peer that the node loop hands messages to.

use crate::datagram::{self, DropReason, Receiver};
use crate::metrics::Metrics;
use crate::runtime::members::KnownPeers;
use rafting_core::NodeId;
use rafting_core::raft::{Entry, Envelope, Message};
use rafting_wire::Sealer;
use std::collections::{BTreeMap, btree_map};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Sends messages to peers by their configured addresses. Each peer has a lane: a thread
/// that encodes, seals and sends, in order, the messages the node loop hands it. The loop
/// only queues a large message (its entries are shared, not copied), so a large append never
/// holds it: encoding, sealing and sending a 256 KiB entry took 1-3 ms per follower, every
/// request and acknowledgement of the node waited behind it, and each follower's copy waited
/// behind the other's. The lanes run side by side, and a peer's lane holds only its own
/// messages. A small message to a peer whose lane is idle is sent at once by the loop itself:
/// that costs a few microseconds, less than waking the lane's thread, and cannot overtake
/// anything (nothing is queued for that peer).
#[derive(Debug)]
pub struct Sender {
    socket: UdpSocket,
    cluster_id: u64,
    lanes: BTreeMap<NodeId, Lane>,
    /// The ids of messages, drawn by the lanes and by the loop's own sends: never reused
    /// while the process lives, even by a lane started again (a receiver reassembles
    /// fragments by sender and id).
    message_ids: Arc<AtomicU64>,
    /// Authenticates datagrams with the cluster key, if any; shared with the [`Prober`], so
    /// that messages and probes to a peer draw from one sequence.
    sealer: Arc<Sealer>,
    metrics: Arc<Metrics>,
}

/// Messages queued for one peer at most; beyond, a message is dropped (and counted), as the
/// network would drop it: Raft sends again what is not acknowledged.
const LANE_MESSAGES_MAX: usize = 1024;

/// The largest payload (bytes of entries) the node loop sends itself when a peer's lane is
/// idle: a message of this size is encoded and sealed in a few microseconds.
const INLINE_PAYLOAD_BYTES_MAX: usize = 16 * 1024;

/// One peer's sending thread, its queue, and the count of messages queued or being sent.
#[derive(Debug)]
struct Lane {
    address: SocketAddr,
    queue: SyncSender<Envelope>,
    /// Messages handed to the thread and not yet sent: only the node loop adds to it.
    pending: Arc<AtomicUsize>,
}

impl Lane {
    /// Starts the thread sending to `address`; it ends when the lane is dropped.
    fn spawn(
        to: NodeId,
        address: SocketAddr,
        socket: &UdpSocket,
        cluster_id: u64,
        message_ids: &Arc<AtomicU64>,
        sealer: &Arc<Sealer>,
        metrics: &Arc<Metrics>,
    ) -> std::io::Result<Lane> {
        let (queue, messages) = mpsc::sync_channel::<Envelope>(LANE_MESSAGES_MAX);
        let socket = socket.try_clone()?;
        let (sealer, metrics) = (sealer.clone(), metrics.clone());
        let pending = Arc::new(AtomicUsize::new(0));
        let (sent, ids) = (pending.clone(), message_ids.clone());
        std::thread::Builder::new()
            .name(format!("send-to-{to}"))
            .spawn(move || {
                for envelope in messages {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    send_now(
                        &socket, address, cluster_id, id, &envelope, &sealer, &metrics,
                    );
                    sent.fetch_sub(1, Ordering::Release);
                }
            })?;
        Ok(Lane {
            address,
            queue,
            pending,
        })
    }
}

/// Encodes `envelope` (split across datagrams if needed) and sends it to `address`. Failures
/// are counted, not returned: Raft treats a lost message like any other loss.
fn send_now(
    socket: &UdpSocket,
    address: SocketAddr,
    cluster_id: u64,
    message_id: u64,
    envelope: &Envelope,
    sealer: &Sealer,
    metrics: &Metrics,
) {
    let datagrams = match datagram::encode(cluster_id, message_id, envelope, sealer) {
        Ok(datagrams) => datagrams,
        Err(error) => {
            tracing::warn!(%error, to = %envelope.to, "message not sent");
            Metrics::count(&metrics.datagrams_send_failed);
            return;
        }
    };
    Metrics::count(&metrics.messages_out);
    for datagram in datagrams {
        match socket.send_to(&datagram, address) {
            Ok(_) => Metrics::count(&metrics.datagrams_out),
            Err(_) => Metrics::count(&metrics.datagrams_send_failed),
        }
    }
}

/// The bytes of entries (or of a snapshot) a message carries: what its encoding costs.
fn payload_bytes(message: &Message) -> usize {
    match message {
        Message::AppendEntries(append) => append.entries.iter().map(Entry::size_bytes).sum(),
        Message::InstallSnapshot(_) => usize::MAX,
        _ => 0,
    }
}

impl Sender {
    pub fn new(
        socket: UdpSocket,
        cluster_id: u64,
        peers: BTreeMap<NodeId, SocketAddr>,
        sealer: Arc<Sealer>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Sender> {
        let mut sender = Sender {
            socket,
            cluster_id,
            lanes: BTreeMap::new(),
            message_ids: Arc::new(AtomicU64::new(1)),
            sealer,
            metrics,
        };
        for (peer, address) in peers {
            sender.open_lane(peer, address)?;
        }
        Ok(sender)
    }

    fn open_lane(&mut self, peer: NodeId, address: SocketAddr) -> std::io::Result<()> {
        let lane = Lane::spawn(
            peer,
            address,
            &self.socket,
            self.cluster_id,
            &self.message_ids,
            &self.sealer,
            &self.metrics,
        )?;
        self.lanes.insert(peer, lane);
        Ok(())
    }

    /// Replaces the peers' addresses (the configuration in force changed): a lane for each new
    /// peer or address, none for a peer that is gone.
    pub fn set_peers(&mut self, peers: BTreeMap<NodeId, SocketAddr>) {
        self.lanes
            .retain(|peer, lane| peers.get(peer) == Some(&lane.address));
        for (peer, address) in peers {
            if !self.lanes.contains_key(&peer)
                && let Err(error) = self.open_lane(peer, address)
            {
                tracing::error!(%peer, %error, "cannot start a thread to send to a peer");
            }
        }
    }

    /// Sends one message: at once if it is small and nothing is queued for its peer, else
    /// through the peer's lane. Failures are counted, not returned: Raft treats a lost message
    /// like any other loss. A lane whose thread is gone is started again.
    pub fn send(&mut self, envelope: Envelope) {
        let Some(lane) = self.lanes.get(&envelope.to) else {
            return;
        };
        let idle = lane.pending.load(Ordering::Acquire) == 0;
        if idle && payload_bytes(&envelope.message) <= INLINE_PAYLOAD_BYTES_MAX {
            let id = self.message_ids.fetch_add(1, Ordering::Relaxed);
            let (socket, address) = (&self.socket, lane.address);
            send_now(
                socket,
                address,
                self.cluster_id,
                id,
                &envelope,
                &self.sealer,
                &self.metrics,
            );
            return;
        }
        lane.pending.fetch_add(1, Ordering::AcqRel);
        let refused = lane.queue.try_send(envelope);
        if refused.is_err() {
            lane.pending.fetch_sub(1, Ordering::AcqRel);
        }
        match refused {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => Metrics::count(&self.metrics.datagrams_send_failed),
            Err(TrySendError::Disconnected(envelope)) => {
                tracing::warn!(to = %envelope.to, "the thread sending to a peer was gone; starting it again");
                Metrics::count(&self.metrics.datagrams_send_failed);
                let (peer, address) = (envelope.to, lane.address);
                if let Err(error) = self.open_lane(peer, address) {
                    tracing::error!(%peer, %error, "cannot start a thread to send to a peer");
                }
            }
        }
    }
}

/// Learns quickly that a silent peer's process is gone. A probe is an empty datagram sent from
/// a socket connected to the peer; when nothing listens on the peer's port any more, the
/// peer's host answers "port unreachable" (ICMP) and the kernel reports it on that socket as
/// `ConnectionRefused`. Loss, a partition or a dead host give no answer, so silence proves
/// nothing and the election timeout still covers those cases.
#[derive(Debug)]
pub struct Prober {
    cluster_id: u64,
    me: NodeId,
    peers: BTreeMap<NodeId, SocketAddr>,
    sockets: BTreeMap<NodeId, UdpSocket>,
    sealer: Arc<Sealer>,
    metrics: Arc<Metrics>,
}

impl Prober {
    pub fn new(
        cluster_id: u64,
        me: NodeId,
        peers: BTreeMap<NodeId, SocketAddr>,
        sealer: Arc<Sealer>,
        metrics: Arc<Metrics>,
    ) -> Prober {
        Prober {
            cluster_id,
            me,
            peers,
            sockets: BTreeMap::new(),
            sealer,
            metrics,
        }
    }

    /// Replaces the peers' addresses; a peer whose address changed gets a new socket.
    pub fn set_peers(&mut self, peers: BTreeMap<NodeId, SocketAddr>) {
        self.sockets
            .retain(|id, _| peers.get(id) == self.peers.get(id));
        self.peers = peers;
    }

    /// Probes `peer` once. Returns true when its host refused this probe or an earlier one:
    /// nothing listens on the peer's port.
    pub fn probe(&mut self, peer: NodeId) -> bool {
        let Some(socket) = probe_socket(&mut self.sockets, &self.peers, peer) else {
            return false;
        };
        let refused = |error: Option<std::io::Error>| {
            error.is_some_and(|error| error.kind() == std::io::ErrorKind::ConnectionRefused)
        };
        if refused(socket.take_error().ok().flatten()) {
            return true;
        }
        Metrics::count(&self.metrics.leader_probes);
        let probe = datagram::encode_probe(self.cluster_id, self.me, peer, &self.sealer);
        if refused(socket.send(&probe).err()) {
            return true;
        }
        // On a local network the answer is often back before `send` returns.
        refused(socket.take_error().ok().flatten())
    }
}

/// The socket connected to `peer` that probes it, opened on first use.
fn probe_socket<'a>(
    sockets: &'a mut BTreeMap<NodeId, UdpSocket>,
    peers: &BTreeMap<NodeId, SocketAddr>,
    peer: NodeId,
) -> Option<&'a UdpSocket> {
    let vacant = match sockets.entry(peer) {
        btree_map::Entry::Occupied(open) => return Some(open.into_mut()),
        btree_map::Entry::Vacant(vacant) => vacant,
    };
    let address = *peers.get(&peer)?;
    let any: SocketAddr = if address.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any)
        .and_then(|socket| socket.connect(address).map(|()| socket))
        .inspect_err(|error| tracing::warn!(%error, %peer, "cannot open a probe socket"))
        .ok()?;
    Some(vacant.insert(socket))
}

/// Starts the thread that receives datagrams and hands whole messages to `deliver`. It stops
/// when `stop` is set (checked at least every 200 ms) or `deliver` returns false. The senders
/// it accepts follow `known` (members added at runtime are heard).
pub fn spawn_receiver(
    socket: UdpSocket,
    mut receiver: Receiver,
    known: Arc<KnownPeers>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    deliver: impl Fn(Envelope) -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    std::thread::Builder::new()
        .name("udp-receive".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 65_536];
            let mut warnings = DropWarnings::default();
            let mut known_version = None;
            while !stop.load(Ordering::Relaxed) {
                let (length, source) = match socket.recv_from(&mut buffer) {
                    Ok(received) => received,
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "UDP receive failed");
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                Metrics::count(&metrics.datagrams_in);
                let version = known.version();
                if known_version != Some(version) {
                    known_version = Some(version);
                    receiver.peers = known.get();
                }
                match receiver.receive(&buffer[..length]) {
                    Ok(Some(envelope)) => {
                        Metrics::count(&metrics.messages_in);
                        if !deliver(envelope) {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        tracing::debug!(reason = reason.as_str(), %source, "datagram dropped");
                        metrics.dropped(reason);
                        warnings.note(reason, source);
                    }
                }
            }
        })
}

/// How often, at most, one kind of security drop is logged as a warning.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Warns of datagrams refused for security reasons (a wrong or missing tag, a replay), at most
/// once per [`DROP_WARNING_INTERVAL`] and reason, with how many were refused meanwhile: a
/// flood of forged datagrams must not become a flood of log lines. Other drops stay at debug.
#[derive(Default)]
struct DropWarnings {
    last: BTreeMap<DropReason, (std::time::Instant, u64)>,
}

impl DropWarnings {
    fn note(&mut self, reason: DropReason, source: SocketAddr) {
        let Some(explanation) = security_explanation(reason) else {
            return;
        };
        let now = std::time::Instant::now();
        let (last_warned, refused) = self
            .last
            .entry(reason)
            .or_insert((now - DROP_WARNING_INTERVAL, 0));
        *refused += 1;
        if now.duration_since(*last_warned) < DROP_WARNING_INTERVAL {
            return;
        }
        tracing::warn!(
            reason = reason.as_str(),
            %source,
            refused = *refused,
            "datagrams refused: {explanation}"
        );
        *last_warned = now;
        *refused = 0;
    }
}

/// What a security drop means, for the operator reading the log.
fn security_explanation(reason: DropReason) -> Option<&'static str> {
    Some(match reason {
        DropReason::Auth => {
            "wrong authentication tag (a sender without this cluster's secret, or a changed \
             datagram)"
        }
        DropReason::Unauthenticated => {
            "a peer sends unauthenticated datagrams but this node has --cluster-secret-file; \
             give every member the same secret"
        }
        DropReason::AuthNotConfigured => {
            "a peer sends authenticated datagrams but this node has no --cluster-secret-file; \
             give every member the same secret"
        }
        DropReason::Replay => "a datagram received before (a replay, or a duplicate)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(to: NodeId, index: u64, payload_bytes: usize) -> Envelope {
        use rafting_core::raft::{AppendEntries, Entry, EntryPayload, Message};
        use rafting_core::{LogIndex, Term};
        let entries = vec![Entry {
            term: Term(1),
            index: LogIndex(index),
            payload: EntryPayload::Command(vec![7; payload_bytes].into()),
        }];
        Envelope {
            from: NodeId(1),
            to,
            message: Message::AppendEntries(AppendEntries {
                term: Term(1),
                prev_log_index: LogIndex(index - 1),
                prev_log_term: Term(1),
                entries,
                leader_commit: LogIndex(0),
            }),
        }
    }

    /// What `listener` receives as node 2 within `wait`, decoded.
    fn received(listener: &UdpSocket, wait: Duration) -> Vec<Envelope> {
        listener.set_read_timeout(Some(wait)).unwrap();
        let mut receiver = Receiver::new(7, NodeId(2), vec![NodeId(1)], None);
        let mut buffer = vec![0u8; 65_536];
        let mut envelopes = Vec::new();
        while let Ok(length) = listener.recv(&mut buffer) {
            if let Ok(Some(envelope)) = receiver.receive(&buffer[..length]) {
                envelopes.push(envelope);
            }
        }
        envelopes
    }

    // The node loop only queues; the peer's lane sends every message, a large one split
    // across datagrams, in the order queued. A peer dropped from the table gets nothing more.
    #[test]
    fn a_lane_sends_a_peers_messages_in_order_and_stops_when_the_peer_goes() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peers = BTreeMap::from([(NodeId(2), listener.local_addr().unwrap())]);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut sender = Sender::new(socket, 7, peers, Arc::new(Sealer::open()), metrics).unwrap();
        let sent = vec![
            append(NodeId(2), 1, 10),
            append(NodeId(2), 2, 200_000),
            append(NodeId(2), 3, 10),
        ];
        for envelope in sent.clone() {
            sender.send(envelope);
        }
        sender.send(append(NodeId(3), 1, 10));
        assert_eq!(received(&listener, Duration::from_millis(500)), sent);
        assert_eq!(
            payload_bytes(&sent[1].message),
            200_000 + Entry::OVERHEAD_BYTES
        );

        sender.set_peers(BTreeMap::new());
        sender.send(append(NodeId(2), 4, 10));
        assert_eq!(received(&listener, Duration::from_millis(200)), []);
    }

    fn prober_to(address: SocketAddr) -> Prober {
        let peers = BTreeMap::from([(NodeId(2), address)]);
        let sealer = Arc::new(Sealer::open());
        Prober::new(7, NodeId(1), peers, sealer, Arc::new(Metrics::default()))
    }

    #[test]
    fn a_probe_to_a_listening_peer_finds_it_alive_and_arrives_as_a_probe() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut prober = prober_to(listener.local_addr().unwrap());
        assert!(!prober.probe(NodeId(2)));
        assert!(!prober.probe(NodeId(2)));
        listener
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buffer = [0u8; 128];
        let length = listener.recv(&mut buffer).unwrap();
        let mut receiver = Receiver::new(7, NodeId(2), vec![NodeId(1)], None);
        assert_eq!(receiver.receive(&buffer[..length]), Ok(None));
    }

    #[test]
    fn a_probe_to_a_closed_port_finds_the_peer_gone() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let mut prober = prober_to(address);
        // The refusal comes back as ICMP; on loopback it is there by the second probe at the latest.
        let found = (0..10).any(|_| {
            let gone = prober.probe(NodeId(2));
            std::thread::sleep(Duration::from_millis(5));
            gone
        });
        assert!(found, "a closed port is never reported");
    }

    #[test]
    fn an_unknown_peer_is_never_reported_gone() {
        let mut prober = prober_to("127.0.0.1:9".parse().unwrap());
        assert!(!prober.probe(NodeId(5)));
    }
}
