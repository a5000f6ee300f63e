//! Authentication of peer datagrams: the cluster key, the sender's [`Sealer`] and the
//! receiver's [`ReplayWindow`].
//!
//! With a cluster secret, every datagram ends with a trailer
//!
//! ```text
//!  +-------------+-------------+------------------------------------+
//!  | incarnation |  sequence   | tag: HMAC-SHA256(key, everything    |
//!  |  u64 (LE)   |  u64 (LE)   | before the tag), first 16 bytes    |
//!  +-------------+-------------+------------------------------------+
//! ```
//!
//! and the header's flags carry [`crate::datagram::FLAG_AUTHENTICATED`]. The tag covers the
//! whole header (magic, version, flags, fragments, cluster, sender, receiver, message id,
//! length, checksum), the payload, the incarnation and the sequence, so none of them can be
//! changed without the key.
//!
//! The key is not the secret itself: it is `HMAC-SHA256(secret, "RAFTiNG datagram key v1")`,
//! so the same secret used for something else one day gives another key. It is computed once;
//! each datagram clones the keyed HMAC state instead of keying it again.
//!
//! The tag is truncated to 16 bytes (128 bits, as NIST SP 800-107 allows): a forger must guess
//! it online, one datagram at a time, with a chance of 2^-128 per try, and the 16 bytes saved
//! matter on heartbeats of about 70 bytes. Comparison is constant-time
//! (`verify_truncated_left`).
//!
//! Replays: each sender numbers its datagrams per receiver (1, 2, 3, ...) within an
//! incarnation, a number that grows at every start of the sender's process (the runtime
//! keeps it in the data directory and never lets it fall below the wall clock in
//! milliseconds, so a wiped disk still starts higher). A receiver keeps, per sender, the
//! newest incarnation it has seen and a window of the last [`REPLAY_WINDOW_BITS`] sequence
//! numbers (as IPsec and WireGuard do): a datagram of an older incarnation, one already seen,
//! or one older than the window is refused. Raft itself tolerates duplicated and delayed
//! messages, so this is defence in depth: a replayed datagram can only repeat what a member
//! once said. A receiver that restarts forgets its windows and accepts the next incarnation it
//! hears; a replay of an older incarnation is then accepted only until the sender's current
//! one arrives, and it is still a message the member really sent.
//!
//! Every member holds the same key, so a member can speak for another: the secret keeps out
//! those who do not hold it, not a member that turns bad.

use hmac::{Hmac, Mac};
use rafting_core::NodeId;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// Bytes of the truncated HMAC-SHA256 tag.
pub const TAG_BYTES: usize = 16;
/// Bytes an authenticated datagram carries after its payload: incarnation, sequence, tag.
pub const AUTH_TRAILER_BYTES: usize = 8 + 8 + TAG_BYTES;
/// Shortest cluster secret accepted, in bytes (as `openssl rand -hex 32` writes 64).
pub const SECRET_BYTES_MIN: usize = 32;
/// Sequence numbers a receiver remembers per sender, behind the highest it has seen.
pub const REPLAY_WINDOW_BITS: u64 = 1024;
const WINDOW_WORDS: usize = (REPLAY_WINDOW_BITS / 64) as usize;
const KEY_LABEL: &[u8] = b"RAFTiNG datagram key v1";

const _: () = assert!(WINDOW_WORDS as u64 * 64 == REPLAY_WINDOW_BITS);
const _: () = assert!(TAG_BYTES >= 16 && TAG_BYTES <= 32);

/// Why a cluster secret was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("the cluster secret has {bytes} bytes; at least {SECRET_BYTES_MIN} are needed")]
    TooShort { bytes: usize },
}

impl SecretError {
    pub fn kind(&self) -> &'static str {
        match self {
            SecretError::TooShort { .. } => "secret_too_short",
        }
    }
}

/// The key every member of a cluster authenticates its datagrams with, derived from the
/// cluster secret. Cheap to clone.
#[derive(Clone)]
pub struct ClusterKey {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// Derives the key from a secret of at least [`SECRET_BYTES_MIN`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<ClusterKey, SecretError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(SecretError::TooShort {
                bytes: secret.len(),
            });
        }
        let mut derive =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
        derive.update(KEY_LABEL);
        let key = derive.finalize().into_bytes();
        let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
        Ok(ClusterKey { keyed })
    }

    /// The tag of `bytes`.
    pub fn tag(&self, bytes: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.keyed.clone();
        mac.update(bytes);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// Whether `tag` is the tag of `bytes`, compared in constant time.
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_BYTES {
            return false;
        }
        let mut mac = self.keyed.clone();
        mac.update(bytes);
        mac.verify_truncated_left(tag).is_ok()
    }
}

/// What a sender stamps on its datagrams: the key (none: an open cluster), its incarnation and
/// a sequence number per receiver. Shared by everything that sends for one node (messages and
/// probes draw from the same numbers), hence the atomics.
#[derive(Debug)]
pub struct Sealer {
    key: Option<ClusterKey>,
    incarnation: u64,
    sequences: BTreeMap<NodeId, AtomicU64>,
    /// Numbers for a receiver that is not a known peer (nothing sends to one today).
    others: AtomicU64,
}

/// The authentication fields of one datagram, before the tag is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub incarnation: u64,
    pub sequence: u64,
}

impl Sealer {
    /// A sealer for an open cluster: datagrams carry no trailer, as before authentication.
    pub fn open() -> Sealer {
        Sealer {
            key: None,
            incarnation: 0,
            sequences: BTreeMap::new(),
            others: AtomicU64::new(0),
        }
    }

    /// A sealer for a cluster with a secret, numbering datagrams to each of `peers`.
    pub fn new(
        key: ClusterKey,
        incarnation: u64,
        peers: impl IntoIterator<Item = NodeId>,
    ) -> Sealer {
        Sealer {
            key: Some(key),
            incarnation,
            sequences: peers
                .into_iter()
                .map(|peer| (peer, AtomicU64::new(0)))
                .collect(),
            others: AtomicU64::new(0),
        }
    }

    pub fn key(&self) -> Option<&ClusterKey> {
        self.key.as_ref()
    }

    /// The next stamp for a datagram to `to`, or `None` for an open cluster.
    pub fn next_stamp(&self, to: NodeId) -> Option<(&ClusterKey, Stamp)> {
        let key = self.key.as_ref()?;
        let counter = self.sequences.get(&to).unwrap_or(&self.others);
        let sequence = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let stamp = Stamp {
            incarnation: self.incarnation,
            sequence,
        };
        Some((key, stamp))
    }
}

/// Why the replay guard refused a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replayed {
    /// Of an incarnation older than the sender's newest one seen.
    OldIncarnation,
    /// Already received.
    Duplicate,
    /// Older than the window: it cannot be told apart from a duplicate any more.
    TooOld,
}

/// One sender's replay state at a receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    incarnation: u64,
    highest: u64,
    /// Bit `s % REPLAY_WINDOW_BITS` is set when sequence `s` (within the window) was seen.
    seen: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    /// A window that has seen nothing of `incarnation` yet.
    pub fn new(incarnation: u64) -> ReplayWindow {
        ReplayWindow {
            incarnation,
            highest: 0,
            seen: [0; WINDOW_WORDS],
        }
    }

    /// Whether a datagram stamped `stamp` may be accepted; when it may, it is marked seen.
    /// Call only with a stamp whose tag has been verified.
    pub fn accept(&mut self, stamp: Stamp) -> Result<(), Replayed> {
        if stamp.incarnation < self.incarnation {
            return Err(Replayed::OldIncarnation);
        }
        if stamp.incarnation > self.incarnation {
            *self = ReplayWindow::new(stamp.incarnation);
        }
        let sequence = stamp.sequence;
        if sequence == 0 || sequence.saturating_add(REPLAY_WINDOW_BITS) <= self.highest {
            return Err(Replayed::TooOld);
        }
        if sequence > self.highest {
            self.clear_between(self.highest, sequence);
            self.highest = sequence;
        } else if self.is_seen(sequence) {
            return Err(Replayed::Duplicate);
        }
        self.mark(sequence);
        Ok(())
    }

    fn slot(sequence: u64) -> (usize, u64) {
        let bit = sequence % REPLAY_WINDOW_BITS;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    fn is_seen(&self, sequence: u64) -> bool {
        let (word, mask) = Self::slot(sequence);
        self.seen[word] & mask != 0
    }

    fn mark(&mut self, sequence: u64) {
        let (word, mask) = Self::slot(sequence);
        self.seen[word] |= mask;
    }

    /// Forgets the slots of sequences `(from, to]`, which now stand for newer numbers.
    fn clear_between(&mut self, from: u64, to: u64) {
        if to - from >= REPLAY_WINDOW_BITS {
            self.seen = [0; WINDOW_WORDS];
            return;
        }
        for sequence in from + 1..=to {
            let (word, mask) = Self::slot(sequence);
            self.seen[word] &= !mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> ClusterKey {
        ClusterKey::from_secret(secret).unwrap()
    }

    #[test]
    fn a_short_secret_is_refused() {
        let error = ClusterKey::from_secret(b"too short").unwrap_err();
        assert_eq!(error, SecretError::TooShort { bytes: 9 });
        assert_eq!(error.kind(), "secret_too_short");
    }

    #[test]
    fn a_tag_verifies_only_under_its_key_and_bytes() {
        let right = key(b"0123456789abcdef0123456789abcdef");
        let wrong = key(b"0123456789abcdef0123456789abcdeF");
        let tag = right.tag(b"hello");
        assert!(right.verify(b"hello", &tag));
        assert!(!right.verify(b"hellO", &tag));
        assert!(!wrong.verify(b"hello", &tag));
        assert!(!right.verify(b"hello", &tag[..15]));
    }

    #[test]
    fn sequences_count_per_receiver_from_one() {
        let sealer = Sealer::new(
            key(b"0123456789abcdef0123456789abcdef"),
            7,
            [NodeId(2), NodeId(3)],
        );
        let sequence = |to| sealer.next_stamp(NodeId(to)).unwrap().1.sequence;
        assert_eq!((sequence(2), sequence(2), sequence(3)), (1, 2, 1));
        assert!(Sealer::open().next_stamp(NodeId(2)).is_none());
    }

    fn stamp(incarnation: u64, sequence: u64) -> Stamp {
        Stamp {
            incarnation,
            sequence,
        }
    }

    /// Each sequence is accepted once, in any order within the window; older ones, and every
    /// datagram of an older incarnation once a newer one is seen, are refused.
    #[test]
    fn the_window_accepts_each_sequence_once() {
        let mut window = ReplayWindow::new(0);
        assert_eq!(window.accept(stamp(5, 3)), Ok(()));
        assert_eq!(window.accept(stamp(5, 1)), Ok(()));
        assert_eq!(window.accept(stamp(5, 3)), Err(Replayed::Duplicate));
        assert_eq!(window.accept(stamp(5, 1)), Err(Replayed::Duplicate));
        assert_eq!(window.accept(stamp(5, 2)), Ok(()));
        assert_eq!(window.accept(stamp(5, 0)), Err(Replayed::TooOld));
        assert_eq!(window.accept(stamp(5, 2000)), Ok(()));
        assert_eq!(window.accept(stamp(5, 900)), Err(Replayed::TooOld));
        assert_eq!(window.accept(stamp(5, 977)), Ok(()));
        assert_eq!(window.accept(stamp(5, 977)), Err(Replayed::Duplicate));
        assert_eq!(window.accept(stamp(4, 5000)), Err(Replayed::OldIncarnation));
        assert_eq!(window.accept(stamp(6, 1)), Ok(()));
        assert_eq!(window.accept(stamp(5, 2001)), Err(Replayed::OldIncarnation));
    }

    proptest::proptest! {
        /// Against a model that remembers every sequence: the window never accepts one twice,
        /// and accepts every new one no older than the window.
        #[test]
        fn the_window_matches_a_model(sequences in proptest::collection::vec(1u64..3000, 1..400)) {
            let mut window = ReplayWindow::new(1);
            let mut seen = std::collections::BTreeSet::new();
            let mut highest = 0;
            for sequence in sequences {
                let accepted = window.accept(stamp(1, sequence)).is_ok();
                let fresh = !seen.contains(&sequence) && sequence + REPLAY_WINDOW_BITS > highest;
                proptest::prop_assert_eq!(accepted, fresh, "sequence {}", sequence);
                if accepted {
                    seen.insert(sequence);
                    highest = highest.max(sequence);
                }
            }
        }
    }
}
