//! Three runtimes in one process on loopback: they elect a leader over real UDP, replicate
//! writes through the write-ahead log, serve linearizable reads, and recover after a restart.

use rafting_core::NodeId;
use rafting_core::raft::Config;
use rafting_core::store::{Operation, Outcome, Query, ReadAnswer, StoreConfig, TenantId};
use rafting_net::runtime::{ClientError, Consistency, NodeHandle, Runtime, RuntimeConfig};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

fn free_udp_ports(count: usize) -> Vec<SocketAddr> {
    let sockets: Vec<UdpSocket> = (0..count)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|socket| socket.local_addr().unwrap())
        .collect()
}

fn config(id: u64, addresses: &[SocketAddr], data: &Path) -> RuntimeConfig {
    let ids: Vec<NodeId> = (1..=addresses.len() as u64).map(NodeId).collect();
    let mut raft = Config::new(NodeId(id), ids.iter().copied(), id);
    raft.heartbeat_interval_ms = 50;
    raft.election_timeout_ms_min = 300;
    raft.election_timeout_ms_max = 600;
    let peers: BTreeMap<NodeId, SocketAddr> = ids
        .iter()
        .zip(addresses)
        .filter(|(peer, _)| **peer != NodeId(id))
        .map(|(&peer, &address)| (peer, address))
        .collect();
    RuntimeConfig {
        raft,
        store: StoreConfig::default(),
        cluster_id: 77,
        udp_listen: addresses[id as usize - 1],
        peers,
        data_directory: data.join(format!("n{id}")),
        session_tick_interval_ms: 200,
        request_queue_max: 1024,
        snapshot_every_entries: rafting_core::replica::SNAPSHOT_EVERY_ENTRIES_DEFAULT,
        snapshot_every_bytes: rafting_core::replica::SNAPSHOT_EVERY_BYTES_DEFAULT,
        leader_probes: true,
        bootstrap: true,
        cluster_key: None,
    }
}

fn wait_for_leader(handles: &[NodeHandle]) -> NodeHandle {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(leader) = handles
            .iter()
            .find(|h| h.status().raft.leader == Some(h.id()))
        {
            return leader.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no leader elected within 10 s");
}

fn put(handle: &NodeHandle, key: &str, value: &str) -> Result<Outcome, ClientError> {
    let operation = Operation::put(key, value.as_bytes());
    handle.write(TenantId::DEFAULT, operation, Duration::from_secs(5))
}

fn get(handle: &NodeHandle, key: &str, consistency: Consistency) -> Option<Vec<u8>> {
    let query = Query::Get {
        tenant: TenantId::DEFAULT,
        key: key.to_string(),
    };
    match handle.read(query, consistency, Duration::from_secs(5)) {
        Ok(ReadAnswer::Value(kv)) => kv.value.map(Vec::from),
        Err(ClientError::Store(error)) if error.code() == "not_found" => None,
        other => panic!("unexpected read answer: {other:?}"),
    }
}

/// Starts one runtime per address and waits for a leader.
fn start_cluster(
    addresses: &[SocketAddr],
    data: &Path,
) -> (Vec<Runtime>, Vec<NodeHandle>, NodeHandle) {
    let runtimes: Vec<Runtime> = (1..=addresses.len() as u64)
        .map(|id| Runtime::start(config(id, addresses, data)).unwrap())
        .collect();
    let handles: Vec<NodeHandle> = runtimes.iter().map(|r| r.handle.clone()).collect();
    let leader = wait_for_leader(&handles);
    (runtimes, handles, leader)
}

/// A cluster elects a leader, accepts writes, serves them back linearizably from the leader
/// and eventually from every follower's stale view, and refuses writes on followers.
#[test]
fn a_three_node_cluster_replicates_writes_and_survives_a_full_restart() {
    let data = tempfile::tempdir().unwrap();
    let addresses = free_udp_ports(3);
    let (runtimes, handles, leader) = start_cluster(&addresses, data.path());
    for i in 0..50 {
        let outcome = put(&leader, &format!("/k/{i}"), &format!("v{i}")).unwrap();
        assert!(
            matches!(outcome, Outcome::Written { version: 1, .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(
        get(&leader, "/k/7", Consistency::Linearizable),
        Some(b"v7".to_vec())
    );
    let follower = handles.iter().find(|h| h.id() != leader.id()).unwrap();
    assert!(matches!(
        put(follower, "/x", "y"),
        Err(ClientError::NotLeader { leader: Some(id) }) if id == leader.id()
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(follower, "/k/49", Consistency::Stale).is_none() {
        assert!(
            Instant::now() < deadline,
            "the follower never applied the writes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for runtime in runtimes {
        runtime.shutdown();
    }
    // Everything acknowledged is recovered from the logs after a restart of the whole cluster.
    let (runtimes, _, leader) = start_cluster(&addresses, data.path());
    for i in 0..50 {
        let expected = format!("v{i}").into_bytes();
        assert_eq!(
            get(&leader, &format!("/k/{i}"), Consistency::Linearizable),
            Some(expected)
        );
    }
    for runtime in runtimes {
        runtime.shutdown();
    }
}

/// kill the leader's process (here: stop its runtime, which closes its port): the followers'
/// probes meet the closed port, they say so in their metrics, and a new leader takes over and
/// accepts writes.
#[test]
fn followers_notice_a_closed_leader_port_and_elect_a_new_leader() {
    let data = tempfile::tempdir().unwrap();
    let addresses = free_udp_ports(3);
    let (mut runtimes, _, leader) = start_cluster(&addresses, data.path());
    put(&leader, "/before", "1").unwrap();
    let position = runtimes
        .iter()
        .position(|r| r.handle.id() == leader.id())
        .unwrap();
    runtimes.remove(position).shutdown();
    let survivors: Vec<NodeHandle> = runtimes.iter().map(|r| r.handle.clone()).collect();
    let new_leader = wait_for_leader(&survivors);
    assert_ne!(new_leader.id(), leader.id());
    let found_down: u64 = runtimes
        .iter()
        .map(|r| {
            r.handle
                .metrics()
                .leaders_found_down
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(found_down >= 1, "no follower's probe found the port closed");
    put(&new_leader, "/after", "2").unwrap();
    assert_eq!(
        get(&new_leader, "/before", Consistency::Linearizable),
        Some(b"1".to_vec())
    );
    for runtime in runtimes {
        runtime.shutdown();
    }
}
