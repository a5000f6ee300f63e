//! Who this node talks to: the members of its newest configuration and how to reach them.
//!
//! The configuration entry carries each member's addresses as opaque text (core never reads
//! it); the runtime writes `UDP,HTTP` there (the shape of `--peer`'s value after `ID=`). A
//! member without an address in the configuration (the members a cluster was bootstrapped
//! with) is reached at the address the node was started with.

use rafting_core::NodeId;
use rafting_core::raft::Membership;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The two addresses of a member, as the configuration entry carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberAddress {
    pub udp: SocketAddr,
    pub http: SocketAddr,
}

impl MemberAddress {
    /// The text stored in the configuration: `UDP,HTTP`.
    pub fn encode(&self) -> String {
        format!("{},{}", self.udp, self.http)
    }

    /// Reads [`MemberAddress::encode`]'s text; `None` for anything else (the text comes from
    /// the log, which another build may have written).
    pub fn decode(text: &str) -> Option<MemberAddress> {
        let (udp, http) = text.split_once(',')?;
        Some(MemberAddress {
            udp: udp.trim().parse().ok()?,
            http: http.trim().parse().ok()?,
        })
    }
}

/// The members other than `own` that the node talks to, each with its address.
///
/// While the node has learned no configuration from the log (`learned` false: the bootstrap
/// one is in force) or is not in its newest configuration (a node joining, or one removed),
/// every configured peer stays reachable, so it can answer whoever leads. Otherwise the
/// newest configuration decides: a member added at runtime is reached at the address its
/// entry carries, one removed is forgotten.
pub fn resolve<A: Clone>(
    own: NodeId,
    membership: &Membership,
    learned: bool,
    configured: &BTreeMap<NodeId, A>,
    decode: impl Fn(&str) -> Option<A>,
) -> BTreeMap<NodeId, A> {
    let mut table = BTreeMap::new();
    if !learned || !membership.contains(own) {
        table.extend(
            configured
                .iter()
                .filter(|(id, _)| **id != own)
                .map(|(id, address)| (*id, address.clone())),
        );
    }
    for member in membership.members().filter(|member| *member != own) {
        let from_entry = membership
            .addresses
            .get(&member)
            .and_then(|text| decode(text));
        if let Some(address) = from_entry.or_else(|| configured.get(&member).cloned()) {
            table.insert(member, address);
        }
    }
    table
}

/// The senders the datagram receiver accepts, updated by the node loop as the configuration
/// changes and read by the receive thread (which copies it only when its version moved).
#[derive(Debug, Default)]
pub struct KnownPeers {
    version: AtomicU64,
    peers: Mutex<Vec<NodeId>>,
}

impl KnownPeers {
    pub fn new(peers: Vec<NodeId>) -> Arc<KnownPeers> {
        Arc::new(KnownPeers {
            version: AtomicU64::new(0),
            peers: Mutex::new(peers),
        })
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn set(&self, peers: Vec<NodeId>) {
        if let Ok(mut shared) = self.peers.lock() {
            *shared = peers;
        }
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn get(&self) -> Vec<NodeId> {
        self.peers
            .lock()
            .map(|peers| peers.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Proves the table's rule: the bootstrap configuration keeps every configured peer, a
    /// learned one adds members from their entries' addresses and forgets removed members.
    #[test]
    fn the_table_follows_the_newest_configuration_once_learned() {
        let configured: BTreeMap<NodeId, SocketAddr> =
            [(NodeId(2), address(2)), (NodeId(3), address(3))].into();
        let decode = |text: &str| MemberAddress::decode(text).map(|a| a.udp);
        let bootstrap = Membership::new([NodeId(1), NodeId(2), NodeId(3)], []);
        let table = resolve(NodeId(1), &bootstrap, false, &configured, decode);
        assert_eq!(table, configured);

        let mut grown = Membership::new([NodeId(1), NodeId(2)], [NodeId(4)]);
        let four = MemberAddress {
            udp: address(4),
            http: address(40),
        };
        grown.addresses.insert(NodeId(4), four.encode());
        let table = resolve(NodeId(1), &grown, true, &configured, decode);
        assert_eq!(
            table,
            [(NodeId(2), address(2)), (NodeId(4), address(4))].into()
        );

        // A joining node not yet in the configuration keeps its configured peers.
        let joining = resolve(NodeId(5), &grown, true, &configured, decode);
        assert_eq!(joining.len(), 3);
        assert_eq!(MemberAddress::decode(&four.encode()), Some(four));
        assert_eq!(MemberAddress::decode("garbage"), None);
    }
}
