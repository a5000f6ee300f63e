//! UDP between peers: a receive thread that turns datagrams into messages for the node loop,
//! and a sender the node loop uses directly.

use crate::datagram::{self, Receiver};
use crate::metrics::Metrics;
use rafting_core::NodeId;
use rafting_core::raft::Envelope;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Sends messages to peers by their configured addresses.
#[derive(Debug)]
pub struct Sender {
    socket: UdpSocket,
    cluster_id: u64,
    peers: BTreeMap<NodeId, SocketAddr>,
    next_message_id: u64,
    metrics: Arc<Metrics>,
}

impl Sender {
    pub fn new(
        socket: UdpSocket,
        cluster_id: u64,
        peers: BTreeMap<NodeId, SocketAddr>,
        metrics: Arc<Metrics>,
    ) -> Sender {
        Sender {
            socket,
            cluster_id,
            peers,
            next_message_id: 1,
            metrics,
        }
    }

    /// Sends one message, split across datagrams if needed. Failures are counted, not
    /// returned: Raft treats a lost message like any other loss.
    pub fn send(&mut self, envelope: &Envelope) {
        let Some(&address) = self.peers.get(&envelope.to) else {
            return;
        };
        self.next_message_id += 1;
        let datagrams = match datagram::encode(self.cluster_id, self.next_message_id, envelope) {
            Ok(datagrams) => datagrams,
            Err(error) => {
                tracing::warn!(%error, to = %envelope.to, "message not sent");
                Metrics::count(&self.metrics.datagrams_send_failed);
                return;
            }
        };
        Metrics::count(&self.metrics.messages_out);
        for datagram in datagrams {
            match self.socket.send_to(&datagram, address) {
                Ok(_) => Metrics::count(&self.metrics.datagrams_out),
                Err(_) => Metrics::count(&self.metrics.datagrams_send_failed),
            }
        }
    }
}

/// Starts the thread that receives datagrams and hands whole messages to `deliver`. It stops
/// when `stop` is set (checked at least every 200 ms) or `deliver` returns false.
pub fn spawn_receiver(
    socket: UdpSocket,
    mut receiver: Receiver,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    deliver: impl Fn(Envelope) -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    std::thread::Builder::new()
        .name("udp-receive".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let length = match socket.recv_from(&mut buffer) {
                    Ok((length, _)) => length,
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
                match receiver.receive(&buffer[..length]) {
                    Ok(Some(envelope)) => {
                        Metrics::count(&metrics.messages_in);
                        if !deliver(envelope) {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        tracing::debug!(reason = reason.as_str(), "datagram dropped");
                        metrics.dropped(reason);
                    }
                }
            }
        })
}
