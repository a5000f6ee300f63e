//! Real `rafting node` processes on loopback, driven through the REST API: elections,
//! replication, failover after kill -9, recovery from the log, clean SIGTERM, and garbage
//! on both the UDP and the HTTP port.

mod common;

use common::{TestCluster, datagrams_dropped, get_retrying, put_retrying, request};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

/// Three nodes elect a leader; 1,000 writes sent round-robin to all nodes (followers answer
/// 307 to the leader) are all acknowledged, then each is read back linearizably through a
/// different node than the one that took it, and a follower's stale view catches up.
#[test]
fn a_three_node_cluster_takes_a_thousand_writes_through_any_node() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let deadline = Instant::now() + Duration::from_secs(40);
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let cluster = &cluster;
            scope.spawn(move || {
                for i in (thread..1000).step_by(4) {
                    put_retrying(
                        &cluster.url(i),
                        &format!("/load/{i}"),
                        &format!("v{i}"),
                        deadline,
                    );
                }
            });
        }
    });
    for i in 0..1000 {
        let (status, value) = get_retrying(&cluster.url(i + 1), &format!("/load/{i}"), deadline);
        assert_eq!(
            (status, value),
            (200, format!("v{i}").into_bytes()),
            "key /load/{i}"
        );
    }
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    loop {
        let (status, value) = request(
            "GET",
            &format!("{}/v1/kv/load/999?stale", follower.url()),
            b"",
        );
        if status == 200 {
            assert_eq!(value, b"v999");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never applied the writes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = request(
        "GET",
        &format!("{}/v1/kv/load/?list&limit=2000", follower.url()),
        b"",
    );
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let entries = listing["entries"].as_array().map(Vec::len);
    assert_eq!(entries, Some(1000), "{listing:.300}");
}

/// kill -9 the leader: another node is elected, every acknowledged write is still readable,
/// the cluster takes new writes, and the killed node restarts from its log and catches up.
#[test]
fn killing_the_leader_loses_no_acknowledged_write_and_the_node_catches_up() {
    let mut cluster = TestCluster::start(3);
    let first_leader = cluster.wait_for_leader(ELECTION_WAIT);
    let deadline = Instant::now() + Duration::from_secs(40);
    for i in 0..200 {
        put_retrying(
            &cluster.url(i),
            &format!("/before/{i}"),
            &format!("b{i}"),
            deadline,
        );
    }
    cluster.node_mut(first_leader).kill();
    let second_leader = cluster.wait_for_leader(ELECTION_WAIT);
    assert_ne!(second_leader, first_leader);
    for i in 0..200 {
        let answer = get_retrying(&cluster.url(i), &format!("/before/{i}"), deadline);
        assert_eq!(
            answer,
            (200, format!("b{i}").into_bytes()),
            "acknowledged write /before/{i} lost"
        );
    }
    for i in 0..50 {
        put_retrying(&cluster.url(i), &format!("/after/{i}"), "a", deadline);
    }
    let restarted = cluster.node_mut(first_leader);
    restarted.spawn();
    loop {
        let (status, value) = request(
            "GET",
            &format!("{}/v1/kv/after/49?stale", restarted.url()),
            b"",
        );
        if status == 200 {
            assert_eq!(value, b"a");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never caught up:\n{}",
            restarted.console()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, value) = request(
        "GET",
        &format!("{}/v1/kv/before/0?stale", restarted.url()),
        b"",
    );
    assert_eq!((status, value), (200, b"b0".to_vec()));
}

/// SIGTERM stops a node cleanly (exit 0), and what it acknowledged is there after a restart.
#[test]
fn sigterm_stops_a_node_cleanly_and_it_restarts_with_its_data() {
    let mut cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let deadline = Instant::now() + Duration::from_secs(20);
    put_retrying(&cluster.url(0), "/kept", "yes", deadline);
    let status = cluster.node_mut(1).terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        cluster.node(1).console()
    );
    assert!(cluster.node(1).console().contains("node stopped cleanly"));
    cluster.node_mut(1).spawn();
    cluster.wait_for_leader(ELECTION_WAIT);
    assert_eq!(
        get_retrying(&cluster.url(0), "/kept", deadline),
        (200, b"yes".to_vec())
    );
}

fn send_raw_http(address: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Garbage datagrams are dropped and counted; malformed HTTP requests and bodies get 4xx
/// answers; the node keeps serving throughout.
#[test]
fn garbage_datagrams_and_malformed_http_are_refused_without_harm() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let node = cluster.node(1);
    let base = node.url();
    let dropped_before = datagrams_dropped(&base);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let big = vec![0xA5u8; 60_000];
    for datagram in [&b""[..], b"x", b"RAFT garbage garbage garbage", &big[..]] {
        let _ = socket.send_to(datagram, node.udp);
    }
    let answer = send_raw_http(node.http, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    let answer = send_raw_http(node.http, b"GET /v1/kv/%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    for (method, path, body, expected) in [
        ("POST", "/v1/txn", &b"{not json"[..], 400),
        ("POST", "/v1/sessions", b"[]", 400),
        ("PUT", "/v1/kv/a?cas=banana", b"x", 400),
        ("PUT", "/v1/kv/a%01b", b"x", 400),
        ("GET", "/v1/nowhere", b"", 404),
        ("PUT", "/v1/kv/big", &vec![b'x'; 400 * 1024][..], 413),
    ] {
        let (status, body) = request(method, &format!("{base}{path}"), body);
        assert_eq!(
            status,
            expected,
            "{method} {path}: {}",
            String::from_utf8_lossy(&body)
        );
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(error["code"].is_string() && error["message"].is_string());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    put_retrying(&base, "/still/serving", "yes", deadline);
    assert_eq!(
        get_retrying(&base, "/still/serving", deadline),
        (200, b"yes".to_vec())
    );
    while datagrams_dropped(&base) < dropped_before + 4 {
        assert!(
            Instant::now() < deadline,
            "garbage datagrams were not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = request("GET", &format!("{base}/v1/health"), b"");
    assert_eq!(status, 200);
}
