//! What a node's data directory protects with real processes: one process per directory (a
//! lock naming its holder), and the cluster's members recorded with the data.

mod common;

use common::TestCluster;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

/// Runs `rafting` with `arguments` and waits up to `timeout` for it to exit; a process still
/// running then is killed and reported as `None`.
fn run_briefly(arguments: &[String], timeout: Duration) -> Option<Output> {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `rafting node` arguments for node `id` on `data` with fresh loopback ports.
fn node_arguments(id: u64, data: &Path, peers: &[String]) -> Vec<String> {
    let (http, udp) = common::free_address_pair();
    let mut arguments: Vec<String> = [
        "node",
        "--id",
        &id.to_string(),
        "--data",
        &data.display().to_string(),
        "--udp",
        &udp.to_string(),
        "--http",
        &http.to_string(),
        "--cluster-id",
        "42",
    ]
    .iter()
    .map(|text| text.to_string())
    .collect();
    for peer in peers {
        arguments.push("--peer".to_owned());
        arguments.push(peer.clone());
    }
    arguments
}

/// Proves the data directory lock: while a node runs, a second `rafting node` on the same
/// directory (other ports, so only the directory is shared) exits at once, non-zero, naming
/// the first process's pid. Before the lock, both ran and acknowledged writes into one log.
#[test]
fn a_second_process_on_a_data_directory_in_use_fails_at_once_naming_the_holder() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let first = cluster.node(1);
    let holder_pid = first.child.as_ref().unwrap().id();
    let arguments = node_arguments(1, &first.directory, &[]);
    let output = run_briefly(&arguments, Duration::from_secs(10))
        .expect("the second process kept running on a directory in use");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(stderr.contains(&format!("pid {holder_pid}")), "{stderr}");
}

/// Proves the membership record: the data directory of a member of a three-node cluster,
/// started with no `--peer` (which used to make it a one-node cluster that elected itself on
/// that data and took writes: a split brain), is refused at once with an error naming the
/// recorded members and the given ones; with `--force-new-membership` the operator's explicit
/// choice wins and the node runs.
#[test]
fn a_member_of_a_three_node_cluster_started_without_its_peers_is_refused() {
    let mut cluster = TestCluster::start(3);
    cluster.wait_for_leader(ELECTION_WAIT);
    let node = cluster.node_mut(3);
    node.terminate(Duration::from_secs(10));
    let directory = node.directory.clone();

    let alone = node_arguments(3, &directory, &[]);
    let output = run_briefly(&alone, Duration::from_secs(10))
        .expect("the member started without its peers kept running");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("members.toml"), "{stderr}");
    for member in ["1 (udp", "2 (udp", "3 (udp"] {
        assert!(stderr.contains(member), "{member} missing: {stderr}");
    }
    assert!(stderr.contains("--force-new-membership"), "{stderr}");

    let mut forced = alone.clone();
    forced.push("--force-new-membership".to_owned());
    let output = run_briefly(&forced, Duration::from_secs(3));
    assert!(
        output.is_none(),
        "the forced start exited: {:?}",
        output.map(|output| String::from_utf8_lossy(&output.stderr).into_owned())
    );
}

/// Issue 16: a lone voter whose log misses entries (every snapshot file that covered the
/// compacted part damaged) has no leader to catch up from: it refuses to start, naming the
/// damaged files and what the operator can do, instead of serving what is left.
#[test]
fn a_lone_voter_whose_snapshots_are_all_damaged_refuses_to_start() {
    let extra = ["--snapshot-every-entries".to_string(), "20".to_string()];
    let mut cluster = TestCluster::start_with(1, &extra);
    cluster.wait_for_leader(ELECTION_WAIT);
    let url = cluster.node(1).url();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..100 {
        common::put_retrying(&url, &format!("/k/{i}"), "v", deadline);
    }
    while cluster
        .node(1)
        .status()
        .and_then(|s| s["first_log_index"].as_u64())
        <= Some(1)
        || cluster.node(1).snapshot_files().len() < 2
    {
        assert!(Instant::now() < deadline, "never compacted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let arguments = cluster.node(1).arguments.clone();
    cluster.node_mut(1).kill();
    cluster.node(1).damage_snapshot_files();
    let output = run_briefly(&arguments, Duration::from_secs(10))
        .expect("a lone voter missing entries kept running");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("misses entries"), "{stderr}");
    assert!(stderr.contains("only voter"), "{stderr}");
    assert!(stderr.contains(".snap"), "{stderr}");
}
