//! A dead node loop is noticed: the runtime names the thread that ended, and the loop's
//! heartbeat goes silent, while a live loop beats even when the node is idle.

use rafting_core::NodeId;
use rafting_core::raft::Config;
use rafting_core::store::StoreConfig;
use rafting_net::runtime::liveness::LOOP_ROUND_INTERVAL_MAX;
use rafting_net::runtime::{Runtime, RuntimeConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn one_node(data: &std::path::Path) -> RuntimeConfig {
    let mut raft = Config::new(NodeId(1), [NodeId(1)], 1);
    raft.heartbeat_interval_ms = 50;
    raft.election_timeout_ms_min = 300;
    raft.election_timeout_ms_max = 600;
    RuntimeConfig {
        raft,
        store: StoreConfig::default(),
        cluster_id: 7,
        udp_listen: "127.0.0.1:0".parse().unwrap(),
        peers: BTreeMap::new(),
        data_directory: data.to_path_buf(),
        session_tick_interval_ms: 200,
        request_queue_max: 64,
        snapshot_every_entries: rafting_core::replica::SNAPSHOT_EVERY_ENTRIES_DEFAULT,
        snapshot_every_bytes: rafting_core::replica::SNAPSHOT_EVERY_BYTES_DEFAULT,
        leader_probes: false,
        bootstrap: true,
        cluster_key: None,
    }
}

/// Proves the two signals the server's fail-stop relies on: an idle live loop keeps its
/// heartbeat fresh and no thread has ended; after an injected panic the runtime reports the
/// `node` thread as ended and the heartbeat's silence grows past a second.
#[test]
fn a_panicking_node_loop_is_reported_as_ended_and_its_heartbeat_goes_silent() {
    let data = tempfile::tempdir().unwrap();
    let runtime = Runtime::start(one_node(data.path())).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        runtime.handle.loop_silence() <= LOOP_ROUND_INTERVAL_MAX * 3,
        "an idle loop beats every round: silent for {:?}",
        runtime.handle.loop_silence()
    );
    assert_eq!(runtime.ended_thread(), None);

    runtime.handle.inject_node_loop_panic();
    let deadline = Instant::now() + Duration::from_secs(5);
    while runtime.ended_thread().is_none() {
        assert!(Instant::now() < deadline, "the loop never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(runtime.ended_thread().as_deref(), Some("node"));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(runtime.handle.loop_silence() > Duration::from_secs(1));
}
