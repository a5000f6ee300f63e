//! A voter never forgets silently, and an idle cluster writes nothing (issue 10, items 8 and
//! 9), with real `rafting node` processes on loopback.

mod common;

use common::{TestCluster, get_retrying, put_retrying, request};
use serde_json::Value;
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

fn status_of(cluster: &TestCluster, id: u64) -> Option<Value> {
    cluster.node(id).status()
}

fn leader_among(cluster: &TestCluster, ids: &[u64]) -> Option<u64> {
    ids.iter()
        .copied()
        .find(|&id| status_of(cluster, id).is_some_and(|status| status["role"] == "leader"))
}

/// Restarts node `id` on an empty data directory with the cluster's usual command line, less
/// `--initial-cluster-state new`: what an operator does after replacing its disk.
fn wipe_and_restart(cluster: &mut TestCluster, id: u64) {
    let node = cluster.node_mut(id);
    node.kill();
    std::fs::remove_dir_all(&node.directory).expect("wipe the data directory");
    if let Some(position) = node
        .arguments
        .iter()
        .position(|argument| argument == "--initial-cluster-state")
    {
        node.arguments.drain(position..position + 2);
    }
    node.spawn();
}

/// The issue's reproduction: C is down while A (the leader) and B acknowledge 20 writes;
/// A and B are killed; B's data directory is wiped; B and C start. B must not vote stale C
/// into leadership (it catches up first, and says so in its health); once A returns, every
/// acknowledged write reads back through every node.
#[test]
fn a_voter_restarted_on_a_wiped_disk_does_not_elect_a_stale_node() {
    let mut cluster = TestCluster::start(3);
    let a = cluster.wait_for_leader(ELECTION_WAIT);
    let others: Vec<u64> = (1..=3).filter(|&id| id != a).collect();
    let (b, c) = (others[0], others[1]);
    cluster.node_mut(c).kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let a_url = cluster.node(a).url();
    for i in 0..20 {
        put_retrying(&a_url, &format!("/acked/{i}"), &format!("v{i}"), deadline);
    }
    cluster.node_mut(a).kill();
    wipe_and_restart(&mut cluster, b);
    cluster.node_mut(c).spawn();

    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        leader_among(&cluster, &[b, c]),
        None,
        "B and C elected a leader without A"
    );
    let status = status_of(&cluster, b).expect("B answers");
    assert_eq!(status["catching_up"], true, "{status}");
    let (code, body) = request("GET", &format!("{}/v1/health", cluster.node(b).url()), b"");
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("catching up"));

    cluster.node_mut(a).spawn();
    cluster.wait_for_leader(ELECTION_WAIT);
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in [a, b, c] {
        let url = cluster.node(id).url();
        for i in 0..20 {
            let (code, value) = get_retrying(&url, &format!("/acked/{i}"), deadline);
            assert_eq!(
                (code, value),
                (200, format!("v{i}").into_bytes()),
                "n{id} /acked/{i}"
            );
        }
    }
    loop {
        let status = status_of(&cluster, b).expect("B answers");
        if status["catching_up"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "B never caught up: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!cluster.node(b).directory.join("catching-up").exists());
}

/// The milder form: a follower wiped under the same leader used to be probed at its old
/// match point forever while its health said 200. Now the leader reports the disk loss in
/// its progress, brings the follower up to date, and the follower's health says 503 until
/// it is.
#[test]
fn a_follower_wiped_under_the_same_leader_catches_up_and_the_leader_reports_it() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader_url = cluster.node(leader).url();
    for i in 0..10 {
        put_retrying(&leader_url, &format!("/before/{i}"), "x", deadline);
    }
    wipe_and_restart(&mut cluster, follower);
    put_retrying(&leader_url, "/after", "y", deadline);
    loop {
        let status = status_of(&cluster, leader).expect("the leader answers");
        let progress = status["progress"]
            .as_array()
            .and_then(|peers| peers.iter().find(|peer| peer["id"] == follower))
            .cloned()
            .unwrap_or(Value::Null);
        let caught_up = status_of(&cluster, follower).is_some_and(|s| {
            s["catching_up"] == false && s["commit_index"] == status["commit_index"]
        });
        if progress["disk_lost"] == true && caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader {status}, follower {progress}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, value) = request(
        "GET",
        &format!("{}/v1/kv/after?stale", cluster.node(follower).url()),
        b"",
    );
    assert_eq!((code, value), (200, b"y".to_vec()));
    assert!(
        cluster.node(leader).node_log().contains("disk lost data"),
        "the leader logs the loss"
    );
}

/// Issue 16: a damaged snapshot is never half-loaded. A follower whose every snapshot file
/// is damaged after its log was compacted restarts on a log that misses entries: it says so,
/// does not vote until the leader has brought it up to date (a snapshot and the tail), and
/// then holds every acknowledged write.
#[test]
fn a_follower_whose_snapshots_are_all_damaged_catches_up_from_the_leader() {
    let extra = ["--snapshot-every-entries".to_string(), "20".to_string()];
    let mut cluster = TestCluster::start_with(3, &extra);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader_url = cluster.node(leader).url();
    for i in 0..100 {
        put_retrying(
            &leader_url,
            &format!("/kept/{i}"),
            &format!("v{i}"),
            deadline,
        );
    }
    loop {
        let status = status_of(&cluster, follower).expect("the follower answers");
        let files = cluster.node(follower).snapshot_files().len();
        if status["first_log_index"].as_u64() > Some(1) && files == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "never compacted: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.node_mut(follower).kill();
    cluster.node(follower).damage_snapshot_files();
    cluster.node_mut(follower).spawn();
    put_retrying(&leader_url, "/after", "y", deadline);
    let url = cluster.node(follower).url();
    loop {
        let leader_commit = status_of(&cluster, leader).map(|s| s["commit_index"].clone());
        let caught_up = status_of(&cluster, follower).is_some_and(|s| {
            s["catching_up"] == false && Some(s["commit_index"].clone()) == leader_commit
        });
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never caught up: {:?}",
            status_of(&cluster, follower)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = cluster.node(follower).node_log();
    assert!(log.contains("skipped a damaged snapshot file"), "{log}");
    assert!(log.contains("misses entries"), "{log}");
    for i in 0..100 {
        let (code, value) = request("GET", &format!("{url}/v1/kv/kept/{i}?stale"), b"");
        assert_eq!(
            (code, value),
            (200, format!("v{i}").into_bytes()),
            "/kept/{i}"
        );
    }
    let (code, value) = request("GET", &format!("{url}/v1/kv/after?stale"), b"");
    assert_eq!((code, value), (200, b"y".to_vec()));
    assert!(
        !cluster
            .node(follower)
            .directory
            .join("catching-up")
            .exists()
    );
}

/// Item 8: with no session open, an idle cluster appends nothing to its log (it used to
/// append about 4 session-clock ticks a second); a session brings the ticks back, and its
/// end stops them again.
#[test]
fn an_idle_cluster_writes_nothing_to_its_log() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let commit = |cluster: &TestCluster| {
        status_of(cluster, leader).expect("the leader answers")["commit_index"]
            .as_u64()
            .expect("commit index")
    };
    std::thread::sleep(Duration::from_millis(500));
    let idle_start = commit(&cluster);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(commit(&cluster), idle_start, "the idle log grew");

    let url = cluster.node(leader).url();
    let (code, body) = request(
        "POST",
        &format!("{url}/v1/sessions"),
        br#"{"ttl_ms": 10000}"#,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let session: Value = serde_json::from_slice(&body).unwrap();
    let with_session = commit(&cluster);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        commit(&cluster) > with_session + 2,
        "an open session's clock ticks"
    );

    let id = session["session"].as_u64().unwrap();
    let (code, _) = request("DELETE", &format!("{url}/v1/sessions/{id}"), b"");
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_millis(600));
    let closed = commit(&cluster);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(commit(&cluster), closed, "ticks stop with the last session");
}
