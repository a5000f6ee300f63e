//! Authenticated peers with real processes: a 3-node cluster started with
//! `--cluster-secret-file` receives, on one node's UDP port, random bytes, an untagged
//! datagram with the right cluster id, datagrams tagged with a wrong key (each sent twice),
//! and a datagram tagged with the right key, sent twice (a replay).
//! Nothing of it is acted on: writes keep working through every node, and the node counts
//! each kind under `rafting_datagrams_dropped_total` with its reason.

mod common;

use common::{TestCluster, datagrams_dropped_for, get_retrying, put_retrying};
use rafting_core::raft::{AppendEntries, Entry, EntryPayload, Envelope, Message};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_wire::{ClusterKey, Sealer, datagram};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The cluster id `common` starts its nodes with.
const CLUSTER_ID: u64 = 42;

/// A forged AppendEntries from node 2 to node 1 that would commit a forged entry.
fn forged_append() -> Envelope {
    Envelope {
        from: NodeId(2),
        to: NodeId(1),
        message: Message::AppendEntries(AppendEntries {
            term: Term(1_000),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![Entry {
                term: Term(1_000),
                index: LogIndex(1),
                payload: EntryPayload::Command(b"forged".to_vec().into()),
            }],
            leader_commit: LogIndex(1),
        }),
    }
}

/// Waits until `reason`'s counter on `base` reaches `at_least`.
fn wait_for_drops(base: &str, reason: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dropped = datagrams_dropped_for(base, reason);
        if dropped >= at_least || Instant::now() > deadline {
            return dropped;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forged_and_replayed_datagrams_are_dropped_and_counted() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("cluster.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = [
        "--cluster-secret-file".to_owned(),
        secret_file.display().to_string(),
    ];
    let cluster = TestCluster::start_with(3, &extra);
    cluster.wait_for_leader(Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(15);
    put_retrying(&cluster.url(0), "/before", "1", deadline);
    let target = cluster.node(1);
    let base = target.url();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |bytes: &[u8]| {
        attacker.send_to(bytes, target.udp).unwrap();
    };
    for length in [0, 7, 50, 120] {
        send(&vec![0xA5; length]);
    }
    let open = datagram::encode(CLUSTER_ID, 1, &forged_append(), &Sealer::open()).unwrap();
    send(&open[0]);
    let wrong_key = ClusterKey::from_secret(b"not the cluster secret, 32 bytes").unwrap();
    let wrong = Sealer::new(wrong_key, u64::MAX, [NodeId(1)]);
    for message_id in 1..=5 {
        let forged = datagram::encode(CLUSTER_ID, message_id, &forged_append(), &wrong).unwrap();
        send(&forged[0]);
        send(&forged[0]);
    }
    // A probe with the right key (as a recording of node 2's first run would be), sent
    // twice: the second is a replay. (The first is one too when node 1 already heard node 2,
    // whose running incarnation, at least the wall clock in ms at its start, is newer than 1.)
    let right_key = ClusterKey::from_secret(SECRET.as_bytes()).unwrap();
    let old = Sealer::new(right_key, 1, [NodeId(1)]);
    let probe = datagram::encode_probe(CLUSTER_ID, NodeId(2), NodeId(1), &old);
    send(&probe);
    send(&probe);
    assert!(
        wait_for_drops(&base, "auth", 10) >= 10,
        "wrong tags not counted"
    );
    assert!(wait_for_drops(&base, "unauthenticated", 1) >= 1);
    assert!(wait_for_drops(&base, "replay", 1) >= 1);
    // Bytes shorter than a header are truncated, the others have no magic.
    assert!(wait_for_drops(&base, "truncated", 2) >= 2);
    assert!(wait_for_drops(&base, "bad_magic", 2) >= 2);
    // The cluster works on, and nothing forged reached any log.
    for index in 0..3 {
        put_retrying(
            &cluster.url(index),
            &format!("/after-{index}"),
            "2",
            deadline,
        );
    }
    for index in 0..3 {
        let (status, body) = get_retrying(&cluster.url(index), "/after-2", deadline);
        assert_eq!((status, body.as_slice()), (200, b"2".as_slice()));
    }
    let log = target.node_log();
    assert!(
        log.contains("datagrams refused"),
        "no warning in the log:\n{log}"
    );
}
