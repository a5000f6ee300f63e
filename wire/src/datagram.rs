//! The UDP datagram format between peers, and the reassembly of messages split across several
//! datagrams.
//!
//! ```text
//!  0      4   5   6        8        10            18      26      34           42       46        50
//!  +------+---+---+--------+--------+-------------+-------+-------+------------+--------+---------+---------
//!  |magic |ver|flg|frag cnt|frag idx| cluster id  | from  |  to   | message id | length | crc32c  | payload
//!  +------+---+---+--------+--------+-------------+-------+-------+------------+--------+---------+---------
//! ```
//!
//! All integers are little endian. The CRC32C covers every byte but its own four: the header
//! up to the checksum, the payload and, when there is one, the authentication trailer. The
//! flags byte has two flags: [`FLAG_PROBE`] marks an empty datagram a node sends a silent
//! leader to learn whether its process still listens (see `rafting_net::transport::Prober`);
//! [`FLAG_AUTHENTICATED`] says the payload is followed by the trailer of [`crate::auth`]
//! (incarnation, sequence, tag). Without a cluster secret no datagram carries it, and the
//! format is the one of protocol version 1 before authentication existed.
//!
//! A message (a bincode-encoded [`Envelope`]) larger than one datagram's payload is split into
//! fragments sharing a message id. Anything malformed, oversized, foreign, misaddressed,
//! unauthenticated or replayed is dropped with a [`DropReason`] the caller counts; nothing here
//! panics on input.

use crate::auth::{AUTH_TRAILER_BYTES, ClusterKey, ReplayWindow, Sealer, Stamp, TAG_BYTES};
use rafting_core::NodeId;
use rafting_core::raft::Envelope;
use std::collections::BTreeMap;
use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"RFTG";
pub const PROTOCOL_VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 50;
/// Largest datagram we send: below the 64 KiB UDP limit with room to spare.
pub const DATAGRAM_BYTES_MAX: usize = 60_000;
/// Payload bytes of one fragment, leaving room for the authentication trailer.
pub const FRAGMENT_PAYLOAD_BYTES_MAX: usize =
    DATAGRAM_BYTES_MAX - HEADER_BYTES - AUTH_TRAILER_BYTES;
/// Most fragments one message may have; bounds a message to about 3.8 MB.
pub const FRAGMENTS_MAX: u16 = 64;
pub const MESSAGE_BYTES_MAX: usize = FRAGMENT_PAYLOAD_BYTES_MAX * FRAGMENTS_MAX as usize;
pub const CHECKSUM_OFFSET: usize = 46;
/// A probe: no payload, nothing to deliver. Only its fate matters to the sender.
pub const FLAG_PROBE: u8 = 0x01;
/// The payload is followed by the authentication trailer (see [`crate::auth`]).
pub const FLAG_AUTHENTICATED: u8 = 0x02;

const _: () = assert!(HEADER_BYTES == CHECKSUM_OFFSET + 4);
const _: () = assert!(DATAGRAM_BYTES_MAX < 65_507);

/// Why a datagram was dropped. Each has a stable name for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    Truncated,
    Oversized,
    BadMagic,
    UnsupportedVersion,
    ForeignCluster,
    Misaddressed,
    UnknownSender,
    BadChecksum,
    BadFragment,
    Undecodable,
    /// The tag is wrong: the sender does not hold the cluster secret, or the bytes were
    /// changed on the way.
    Auth,
    /// This node has a cluster secret and the datagram carries no tag.
    Unauthenticated,
    /// The datagram carries a tag but this node has no cluster secret to check it with.
    AuthNotConfigured,
    /// Authentic, but already received (or older than the replay window, or of an older
    /// incarnation of its sender).
    Replay,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::Truncated,
        DropReason::Oversized,
        DropReason::BadMagic,
        DropReason::UnsupportedVersion,
        DropReason::ForeignCluster,
        DropReason::Misaddressed,
        DropReason::UnknownSender,
        DropReason::BadChecksum,
        DropReason::BadFragment,
        DropReason::Undecodable,
        DropReason::Auth,
        DropReason::Unauthenticated,
        DropReason::AuthNotConfigured,
        DropReason::Replay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::BadMagic => "bad_magic",
            DropReason::UnsupportedVersion => "unsupported_version",
            DropReason::ForeignCluster => "foreign_cluster",
            DropReason::Misaddressed => "misaddressed",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadFragment => "bad_fragment",
            DropReason::Undecodable => "undecodable",
            DropReason::Auth => "auth",
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::AuthNotConfigured => "auth_not_configured",
            DropReason::Replay => "replay",
        }
    }
}

/// The fixed part of every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub fragment_count: u16,
    pub fragment_index: u16,
    pub cluster_id: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub message_id: u64,
    pub length: u32,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MESSAGE_BYTES_MAX>()
}

/// Why a message could not be encoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("cannot encode message: {0}")]
    Encoding(String),
    #[error("message of {bytes} bytes is too large to send")]
    TooLarge { bytes: usize },
}

impl EncodeError {
    pub fn kind(&self) -> &'static str {
        match self {
            EncodeError::Encoding(_) => "encoding",
            EncodeError::TooLarge { .. } => "too_large",
        }
    }
}

/// Encodes `envelope` into one or more datagrams, each sealed by `sealer` (authenticated when
/// it holds a key). Fails only when the message is larger than [`MESSAGE_BYTES_MAX`] (core's
/// limits keep real messages far below it).
pub fn encode(
    cluster_id: u64,
    message_id: u64,
    envelope: &Envelope,
    sealer: &Sealer,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let payload = bincode::serde::encode_to_vec(envelope, bincode_config())
        .map_err(|error| EncodeError::Encoding(error.to_string()))?;
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&payload[..]]
    } else {
        payload.chunks(FRAGMENT_PAYLOAD_BYTES_MAX).collect()
    };
    let fragment_count = u16::try_from(chunks.len())
        .ok()
        .filter(|&count| count <= FRAGMENTS_MAX)
        .ok_or(EncodeError::TooLarge {
            bytes: payload.len(),
        })?;
    let datagrams = chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let header = Header {
                flags: 0,
                fragment_count,
                fragment_index: index as u16,
                cluster_id,
                from: envelope.from,
                to: envelope.to,
                message_id,
                length: chunk.len() as u32,
            };
            seal_datagram(header, chunk, sealer)
        })
        .collect();
    Ok(datagrams)
}

/// One datagram, with the trailer of `sealer`'s next stamp when it holds a key.
fn seal_datagram(mut header: Header, payload: &[u8], sealer: &Sealer) -> Vec<u8> {
    let stamp = sealer.next_stamp(header.to);
    if stamp.is_some() {
        header.flags |= FLAG_AUTHENTICATED;
    }
    encode_datagram(&header, payload, stamp)
}

/// The bytes of one datagram: header, payload and, given a key and stamp, the trailer. The
/// checksum covers everything but itself and the tag; the tag covers everything before it,
/// the checksum included.
pub fn encode_datagram(
    header: &Header,
    payload: &[u8],
    stamp: Option<(&ClusterKey, Stamp)>,
) -> Vec<u8> {
    let trailer = if stamp.is_some() {
        AUTH_TRAILER_BYTES
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + trailer);
    bytes.extend_from_slice(&MAGIC);
    bytes.push(PROTOCOL_VERSION);
    bytes.push(header.flags);
    bytes.extend_from_slice(&header.fragment_count.to_le_bytes());
    bytes.extend_from_slice(&header.fragment_index.to_le_bytes());
    bytes.extend_from_slice(&header.cluster_id.to_le_bytes());
    bytes.extend_from_slice(&header.from.get().to_le_bytes());
    bytes.extend_from_slice(&header.to.get().to_le_bytes());
    bytes.extend_from_slice(&header.message_id.to_le_bytes());
    bytes.extend_from_slice(&header.length.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(payload);
    if let Some((_, stamp)) = stamp {
        bytes.extend_from_slice(&stamp.incarnation.to_le_bytes());
        bytes.extend_from_slice(&stamp.sequence.to_le_bytes());
    }
    let checksum = checksum_of(&bytes);
    bytes[CHECKSUM_OFFSET..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    if let Some((key, _)) = stamp {
        let tag = key.tag(&bytes);
        bytes.extend_from_slice(&tag);
    }
    bytes
}

/// The CRC32C of a datagram without its tag: every byte but the checksum's own four.
pub fn checksum_of(untagged: &[u8]) -> u32 {
    crc32c::crc32c_append(
        crc32c::crc32c(&untagged[..CHECKSUM_OFFSET]),
        &untagged[HEADER_BYTES..],
    )
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buffer = [0u8; 4];
    buffer.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buffer)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buffer = [0u8; 8];
    buffer.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buffer)
}

/// One datagram whose framing and checksum are sound, not yet authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framed<'a> {
    pub header: Header,
    pub payload: &'a [u8],
    /// For a datagram with [`FLAG_AUTHENTICATED`]: its stamp, the bytes its tag covers, and
    /// the tag.
    pub seal: Option<(Stamp, &'a [u8], &'a [u8])>,
}

/// Checks one datagram's framing and checksum and splits it into header, payload and seal.
pub fn decode_datagram(bytes: &[u8]) -> Result<Framed<'_>, DropReason> {
    if bytes.len() > DATAGRAM_BYTES_MAX {
        return Err(DropReason::Oversized);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(DropReason::Truncated);
    }
    if bytes[0..4] != MAGIC {
        return Err(DropReason::BadMagic);
    }
    if bytes[4] != PROTOCOL_VERSION {
        return Err(DropReason::UnsupportedVersion);
    }
    let header = Header {
        flags: bytes[5],
        fragment_count: read_u16(bytes, 6),
        fragment_index: read_u16(bytes, 8),
        cluster_id: read_u64(bytes, 10),
        from: NodeId(read_u64(bytes, 18)),
        to: NodeId(read_u64(bytes, 26)),
        message_id: read_u64(bytes, 34),
        length: read_u32(bytes, 42),
    };
    let authenticated = header.flags & FLAG_AUTHENTICATED != 0;
    let trailer = if authenticated { AUTH_TRAILER_BYTES } else { 0 };
    if bytes.len() < HEADER_BYTES + trailer
        || header.length as usize != bytes.len() - HEADER_BYTES - trailer
    {
        return Err(DropReason::Truncated);
    }
    let untagged = &bytes[..bytes.len() - if authenticated { TAG_BYTES } else { 0 }];
    if read_u32(bytes, CHECKSUM_OFFSET) != checksum_of(untagged) {
        return Err(DropReason::BadChecksum);
    }
    let fragments_valid = header.fragment_count >= 1
        && header.fragment_count <= FRAGMENTS_MAX
        && header.fragment_index < header.fragment_count;
    if !fragments_valid {
        return Err(DropReason::BadFragment);
    }
    let payload_end = HEADER_BYTES + header.length as usize;
    let seal = authenticated.then(|| {
        let stamp = Stamp {
            incarnation: read_u64(bytes, payload_end),
            sequence: read_u64(bytes, payload_end + 8),
        };
        (stamp, untagged, &bytes[untagged.len()..])
    });
    Ok(Framed {
        header,
        payload: &bytes[HEADER_BYTES..payload_end],
        seal,
    })
}

/// A probe datagram from `from` to `to`, sealed by `sealer`.
pub fn encode_probe(cluster_id: u64, from: NodeId, to: NodeId, sealer: &Sealer) -> Vec<u8> {
    let header = Header {
        flags: FLAG_PROBE,
        fragment_count: 1,
        fragment_index: 0,
        cluster_id,
        from,
        to,
        message_id: 0,
        length: 0,
    };
    seal_datagram(header, &[], sealer)
}

/// Decodes a complete message body.
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, DropReason> {
    let (envelope, read): (Envelope, usize) =
        bincode::serde::decode_from_slice(body, bincode_config())
            .map_err(|_| DropReason::Undecodable)?;
    if read != body.len() {
        return Err(DropReason::Undecodable);
    }
    Ok(envelope)
}

/// One node's receiving end: who it is (for checking addressing), the cluster key if any, and
/// per sender the replay window and the messages being reassembled.
#[derive(Clone, Debug)]
pub struct Receiver {
    pub cluster_id: u64,
    pub me: NodeId,
    pub peers: Vec<NodeId>,
    key: Option<ClusterKey>,
    windows: BTreeMap<NodeId, ReplayWindow>,
    reassembly: Reassembly,
}

impl Receiver {
    /// A receiver for an open cluster (`key` none) or one with a secret.
    pub fn new(
        cluster_id: u64,
        me: NodeId,
        peers: Vec<NodeId>,
        key: Option<ClusterKey>,
    ) -> Receiver {
        Receiver {
            cluster_id,
            me,
            peers,
            key,
            windows: BTreeMap::new(),
            reassembly: Reassembly::default(),
        }
    }

    /// Takes one datagram. Returns a whole message when this datagram completed one,
    /// `Ok(None)` when it was a fragment of one still incomplete, or a probe.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Option<Envelope>, DropReason> {
        let Framed {
            header,
            payload,
            seal,
        } = decode_datagram(bytes)?;
        if header.cluster_id != self.cluster_id {
            return Err(DropReason::ForeignCluster);
        }
        if header.to != self.me {
            return Err(DropReason::Misaddressed);
        }
        if !self.peers.contains(&header.from) {
            return Err(DropReason::UnknownSender);
        }
        self.authenticate(header.from, seal)?;
        if header.flags & FLAG_PROBE != 0 {
            return Ok(None);
        }
        let body = if header.fragment_count == 1 {
            payload.to_vec()
        } else {
            match self.reassembly.add(&header, payload)? {
                Some(body) => body,
                None => return Ok(None),
            }
        };
        let envelope = decode_envelope(&body)?;
        // The header and the body must agree on who speaks to whom.
        if envelope.from != header.from || envelope.to != header.to {
            return Err(DropReason::Misaddressed);
        }
        Ok(Some(envelope))
    }

    /// Checks the tag and the replay window of a datagram from `from`; only a datagram whose
    /// tag is right moves the window.
    fn authenticate(
        &mut self,
        from: NodeId,
        seal: Option<(Stamp, &[u8], &[u8])>,
    ) -> Result<(), DropReason> {
        let (key, (stamp, signed, tag)) = match (&self.key, seal) {
            (None, None) => return Ok(()),
            (None, Some(_)) => return Err(DropReason::AuthNotConfigured),
            (Some(_), None) => return Err(DropReason::Unauthenticated),
            (Some(key), Some(seal)) => (key, seal),
        };
        if !key.verify(signed, tag) {
            return Err(DropReason::Auth);
        }
        let window = self
            .windows
            .entry(from)
            .or_insert_with(|| ReplayWindow::new(stamp.incarnation));
        window.accept(stamp).map_err(|_| DropReason::Replay)
    }
}

/// Messages being reassembled, bounded in count and bytes; the oldest are evicted first.
#[derive(Clone, Debug, Default)]
struct Reassembly {
    partial: BTreeMap<(NodeId, u64), Partial>,
    bytes: usize,
    arrivals: u64,
}

#[derive(Clone, Debug)]
struct Partial {
    fragments: Vec<Option<Vec<u8>>>,
    bytes: usize,
    arrival: u64,
}

const PARTIAL_MESSAGES_MAX: usize = 64;
const PARTIAL_BYTES_MAX: usize = 16 * 1024 * 1024;

impl Reassembly {
    fn add(&mut self, header: &Header, payload: &[u8]) -> Result<Option<Vec<u8>>, DropReason> {
        let key = (header.from, header.message_id);
        let count = usize::from(header.fragment_count);
        self.arrivals += 1;
        let arrival = self.arrivals;
        let partial = self.partial.entry(key).or_insert_with(|| Partial {
            fragments: vec![None; count],
            bytes: 0,
            arrival,
        });
        if partial.fragments.len() != count {
            return Err(DropReason::BadFragment);
        }
        let slot = &mut partial.fragments[usize::from(header.fragment_index)];
        if slot.is_none() {
            *slot = Some(payload.to_vec());
            partial.bytes += payload.len();
            self.bytes += payload.len();
        }
        if partial.fragments.iter().all(Option::is_some) {
            let partial = self.partial.remove(&key).expect("present");
            self.bytes -= partial.bytes;
            let mut body = Vec::with_capacity(partial.bytes);
            for fragment in partial.fragments.iter().flatten() {
                body.extend_from_slice(fragment);
            }
            return Ok(Some(body));
        }
        self.evict();
        Ok(None)
    }

    fn evict(&mut self) {
        while self.partial.len() > PARTIAL_MESSAGES_MAX || self.bytes > PARTIAL_BYTES_MAX {
            let oldest = self
                .partial
                .iter()
                .min_by_key(|(_, partial)| partial.arrival)
                .map(|(&key, _)| key);
            let Some(key) = oldest else {
                return;
            };
            if let Some(partial) = self.partial.remove(&key) {
                self.bytes -= partial.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafting_core::raft::{AppendEntries, Entry, EntryPayload, Message};
    use rafting_core::{LogIndex, Term};

    fn envelope(payload_bytes: usize) -> Envelope {
        let entries = vec![Entry {
            term: Term(1),
            index: LogIndex(1),
            payload: EntryPayload::Command(vec![7; payload_bytes].into()),
        }];
        let message = Message::AppendEntries(AppendEntries {
            term: Term(1),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries,
            leader_commit: LogIndex(0),
        });
        Envelope {
            from: NodeId(2),
            to: NodeId(1),
            message,
        }
    }

    fn receiver() -> Receiver {
        Receiver::new(9, NodeId(1), vec![NodeId(2), NodeId(3)], None)
    }

    #[test]
    fn a_small_message_round_trips_in_one_datagram() {
        let sent = envelope(100);
        let datagrams = encode(9, 1, &sent, &Sealer::open()).unwrap();
        assert_eq!(datagrams.len(), 1);
        assert_eq!(receiver().receive(&datagrams[0]), Ok(Some(sent)));
    }

    #[test]
    fn a_large_message_is_split_and_reassembled_in_any_order() {
        let sent = envelope(200_000);
        let mut datagrams = encode(9, 1, &sent, &Sealer::open()).unwrap();
        assert_eq!(datagrams.len(), 4);
        assert!(datagrams.iter().all(|d| d.len() <= DATAGRAM_BYTES_MAX));
        datagrams.reverse();
        let mut receiver = receiver();
        let last = datagrams.pop().unwrap();
        for datagram in &datagrams {
            assert_eq!(receiver.receive(datagram), Ok(None));
            // A duplicate fragment changes nothing.
            assert_eq!(receiver.receive(datagram), Ok(None));
        }
        assert_eq!(receiver.receive(&last), Ok(Some(sent)));
    }

    #[test]
    fn bad_datagrams_are_dropped_with_a_reason() {
        let good = encode(9, 1, &envelope(10), &Sealer::open())
            .unwrap()
            .remove(0);
        let mut receiver = receiver();
        assert_eq!(receiver.receive(&good[..10]), Err(DropReason::Truncated));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(receiver.receive(&flipped), Err(DropReason::BadChecksum));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(receiver.receive(&magic), Err(DropReason::BadMagic));
        let foreign = encode(8, 1, &envelope(10), &Sealer::open())
            .unwrap()
            .remove(0);
        assert_eq!(receiver.receive(&foreign), Err(DropReason::ForeignCluster));
        let mut stranger = envelope(10);
        stranger.from = NodeId(7);
        let stranger = encode(9, 1, &stranger, &Sealer::open()).unwrap().remove(0);
        assert_eq!(receiver.receive(&stranger), Err(DropReason::UnknownSender));
        let mut elsewhere = envelope(10);
        elsewhere.to = NodeId(3);
        let elsewhere = encode(9, 1, &elsewhere, &Sealer::open()).unwrap().remove(0);
        assert_eq!(receiver.receive(&elsewhere), Err(DropReason::Misaddressed));
        assert_eq!(
            receiver.receive(&vec![0; DATAGRAM_BYTES_MAX + 1]),
            Err(DropReason::Oversized)
        );
    }

    #[test]
    fn a_checksummed_body_that_is_not_a_message_is_undecodable() {
        let header = Header {
            flags: 0,
            fragment_count: 1,
            fragment_index: 0,
            cluster_id: 9,
            from: NodeId(2),
            to: NodeId(1),
            message_id: 1,
            length: 3,
        };
        let datagram = encode_datagram(&header, &[0xff, 0xff, 0xff], None);
        assert_eq!(receiver().receive(&datagram), Err(DropReason::Undecodable));
    }

    #[test]
    fn header_and_body_must_agree_on_the_sender() {
        let mut datagram = encode(9, 1, &envelope(10), &Sealer::open())
            .unwrap()
            .remove(0);
        // Rewrite the header's sender to 3 and fix the checksum: the body still says 2.
        datagram[18..26].copy_from_slice(&3u64.to_le_bytes());
        let checksum = checksum_of(&datagram);
        datagram[CHECKSUM_OFFSET..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(receiver().receive(&datagram), Err(DropReason::Misaddressed));
    }

    #[test]
    fn a_probe_is_accepted_and_delivers_nothing() {
        let probe = encode_probe(9, NodeId(2), NodeId(1), &Sealer::open());
        assert_eq!(probe.len(), HEADER_BYTES);
        assert_eq!(receiver().receive(&probe), Ok(None));
        let foreign = encode_probe(8, NodeId(2), NodeId(1), &Sealer::open());
        assert_eq!(
            receiver().receive(&foreign),
            Err(DropReason::ForeignCluster)
        );
        let mut corrupt = probe.clone();
        corrupt[20] ^= 1;
        assert_eq!(receiver().receive(&corrupt), Err(DropReason::BadChecksum));
    }

    #[test]
    fn partial_messages_are_bounded() {
        let mut receiver = receiver();
        for message_id in 0..(PARTIAL_MESSAGES_MAX as u64 + 10) {
            let first = encode(9, message_id, &envelope(100_000), &Sealer::open())
                .unwrap()
                .remove(0);
            assert_eq!(receiver.receive(&first), Ok(None));
        }
        assert_eq!(receiver.reassembly.partial.len(), PARTIAL_MESSAGES_MAX);
    }

    const SECRET: &[u8] = b"a cluster secret of 32 bytes!!!!";

    fn key() -> ClusterKey {
        ClusterKey::from_secret(SECRET).unwrap()
    }

    /// Node 2's sealer in incarnation `incarnation`.
    fn sealer(incarnation: u64) -> Sealer {
        Sealer::new(key(), incarnation, [NodeId(1), NodeId(3)])
    }

    fn secure_receiver() -> Receiver {
        Receiver::new(9, NodeId(1), vec![NodeId(2), NodeId(3)], Some(key()))
    }

    /// With a secret, a sealed message and probe are received once; the same bytes again are
    /// a replay, and a restarted sender (newer incarnation) is accepted while its old
    /// incarnation's datagrams are refused from then on.
    #[test]
    fn authenticated_datagrams_are_received_once() {
        let sent = envelope(100);
        let old = sealer(5);
        let first = encode(9, 1, &sent, &old).unwrap().remove(0);
        assert_eq!(
            first.len(),
            HEADER_BYTES + first[42] as usize + AUTH_TRAILER_BYTES
        );
        let mut receiver = secure_receiver();
        assert_eq!(receiver.receive(&first), Ok(Some(sent.clone())));
        assert_eq!(receiver.receive(&first), Err(DropReason::Replay));
        let probe = encode_probe(9, NodeId(2), NodeId(1), &old);
        assert_eq!(receiver.receive(&probe), Ok(None));
        assert_eq!(receiver.receive(&probe), Err(DropReason::Replay));
        let stale = encode(9, 2, &sent, &old).unwrap().remove(0);
        let restarted = encode(9, 1, &sent, &sealer(6)).unwrap().remove(0);
        assert_eq!(receiver.receive(&restarted), Ok(Some(sent)));
        assert_eq!(receiver.receive(&stale), Err(DropReason::Replay));
    }

    /// A large sealed message: each fragment carries its own stamp and tag.
    #[test]
    fn authenticated_fragments_reassemble() {
        let sent = envelope(200_000);
        let datagrams = encode(9, 1, &sent, &sealer(1)).unwrap();
        assert!(datagrams.iter().all(|d| d.len() <= DATAGRAM_BYTES_MAX));
        let mut receiver = secure_receiver();
        let (last, rest) = datagrams.split_last().unwrap();
        for datagram in rest {
            assert_eq!(receiver.receive(datagram), Ok(None));
        }
        assert_eq!(receiver.receive(last), Ok(Some(sent)));
    }

    /// What the secret refuses: a datagram without a tag, one sealed with another key, and
    /// one whose bytes were changed and whose checksum was fixed (as a forger would); a node
    /// without a secret refuses sealed datagrams rather than ignore their trailer.
    #[test]
    fn forged_and_mismatched_datagrams_are_refused() {
        let sent = envelope(10);
        let open = encode(9, 1, &sent, &Sealer::open()).unwrap().remove(0);
        assert_eq!(
            secure_receiver().receive(&open),
            Err(DropReason::Unauthenticated)
        );
        let other_key = ClusterKey::from_secret(b"another secret of 32 bytes!!!!!!").unwrap();
        let forged = encode(9, 1, &sent, &Sealer::new(other_key, 1, [NodeId(1)]))
            .unwrap()
            .remove(0);
        assert_eq!(secure_receiver().receive(&forged), Err(DropReason::Auth));
        let mut changed = encode(9, 1, &sent, &sealer(1)).unwrap().remove(0);
        changed[18..26].copy_from_slice(&3u64.to_le_bytes());
        let untagged = changed.len() - TAG_BYTES;
        let checksum = checksum_of(&changed[..untagged]);
        changed[CHECKSUM_OFFSET..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(secure_receiver().receive(&changed), Err(DropReason::Auth));
        let sealed = encode(9, 1, &sent, &sealer(1)).unwrap().remove(0);
        assert_eq!(
            receiver().receive(&sealed),
            Err(DropReason::AuthNotConfigured)
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the receiver.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = receiver().receive(&bytes);
        }

        /// Random corruption of a valid datagram is always caught, never delivered altered.
        #[test]
        fn corrupted_datagrams_are_never_delivered(position in 0usize..200, bit in 0u8..8) {
            let sent = envelope(100);
            let mut datagram = encode(9, 1, &sent, &Sealer::open()).unwrap().remove(0);
            let position = position % datagram.len();
            datagram[position] ^= 1 << bit;
            let received = receiver().receive(&datagram);
            proptest::prop_assert!(received.is_err() || received == Ok(Some(sent)));
        }

        /// Arbitrary bytes never panic a receiver with a secret.
        #[test]
        fn arbitrary_bytes_never_panic_with_a_secret(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = secure_receiver().receive(&bytes);
        }

        /// Any bit flipped in a sealed datagram, with the checksum then fixed as a forger
        /// would, is refused without panic: the tag covers every byte.
        #[test]
        fn flipped_bits_in_a_sealed_datagram_are_refused(position in 0usize..400, bit in 0u8..8) {
            let original = encode(9, 1, &envelope(100), &sealer(1)).unwrap().remove(0);
            let mut datagram = original.clone();
            let position = position % datagram.len();
            datagram[position] ^= 1 << bit;
            let authenticated = datagram[5] & FLAG_AUTHENTICATED != 0;
            let tag = if authenticated { TAG_BYTES } else { 0 };
            if datagram.len() >= HEADER_BYTES + tag {
                let checksum = checksum_of(&datagram[..datagram.len() - tag]);
                datagram[CHECKSUM_OFFSET..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
            }
            // A flip in the checksum itself is undone by the fix-up: nothing changed.
            proptest::prop_assume!(datagram != original);
            let received = secure_receiver().receive(&datagram);
            proptest::prop_assert!(received.is_err(), "{:?}", received);
        }
    }
}
