//! rafting-wire: the datagrams peers exchange, as pure functions over bytes — their format and
//! fragmentation ([`datagram`]) and their authentication with a cluster secret ([`auth`]:
//! HMAC-SHA256 tags and a replay guard).
//!
//! Shared by the real runtime (`rafting-net`, which does the socket IO) and the simulator
//! (`rafting-sim`, whose attacker sends forged, replayed and mutated bytes at nodes that check
//! them with this very code), so that the simulator exercises the verification production
//! runs. It depends on `rafting-core` only, like `rafting-wal`.

pub mod auth;
pub mod datagram;

pub use auth::{ClusterKey, ReplayWindow, Replayed, Sealer, SecretError, Stamp};
pub use datagram::{DropReason, EncodeError, Header, Receiver};
