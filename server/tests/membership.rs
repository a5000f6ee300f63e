//! Membership change with real `rafting node` processes: members added as learners catch up
//! and are promoted, members removed leave, and every write acknowledged before, during and
//! after the changes reads back at the end (issue 16, step 5).

mod common;

use common::{TestCluster, get_retrying, put_retrying, request};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);
const CHANGE_WAIT: Duration = Duration::from_secs(60);

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// Sends a membership change through `base`, retrying while the cluster answers "not now"
/// (no leader, a leader not ready, another change in progress, a learner not caught up).
fn change(base: &str, method: &str, path: &str, body: &str) -> Value {
    let deadline = Instant::now() + CHANGE_WAIT;
    loop {
        let (status, answer) = request(method, &format!("{base}{path}"), body.as_bytes());
        let code = json(&answer)["code"].as_str().unwrap_or("").to_owned();
        match status {
            200 => return json(&answer),
            0 | 503 | 504 if Instant::now() < deadline => {}
            409 if code == "not_caught_up" || code == "change_in_progress" => {}
            _ => panic!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&answer)
            ),
        }
        assert!(Instant::now() < deadline, "{method} {path}: still {code}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rafting cluster ARGS --endpoint base`, which must succeed.
fn cli(base: &str, arguments: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .arg("cluster")
        .args(arguments)
        .args(["--endpoint", base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rafting cluster {arguments:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Waits until `check` holds for node `id`'s status.
fn wait_for_status(cluster: &TestCluster, id: u64, what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + CHANGE_WAIT;
    loop {
        let status = cluster.node(id).status();
        if status.as_ref().is_some_and(&check) {
            return;
        }
        assert!(Instant::now() < deadline, "n{id}: never {what}: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ids(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

/// Proves the runtime's membership change end to end: three nodes take writes; a fourth,
/// started empty with `--initial-cluster-state existing` and the cluster's members as flags,
/// is added as a learner (REST), catches up (its stale reads see the writes) and shows as a
/// learner in `GET /v1/cluster`; it is promoted (CLI, retried while not caught up), another
/// member is removed (CLI) and stopped; the cluster then takes writes with the new
/// configuration, and every acknowledged write reads back through the new member. Errors
/// keep their codes: promoting or removing an unknown member is `404 unknown_member`.
#[test]
fn a_member_is_added_as_a_learner_promoted_and_another_removed() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..30 {
        put_retrying(&base, &format!("/before/{i}"), &format!("v{i}"), deadline);
    }

    let peers = cluster.peer_flags(&[1, 2, 3]);
    let new = cluster.start_new_node(&peers);
    let node = cluster.node(new);
    let body = format!(
        r#"{{"id": {new}, "udp": "{}", "http": "{}", "learner": true}}"#,
        node.udp, node.http
    );
    // Through a follower: it redirects to the leader.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let added = change(
        &cluster.node(follower).url(),
        "POST",
        "/v1/cluster/members",
        &body,
    );
    assert_eq!(ids(&added["learners"]), [new], "{added}");
    assert_eq!(ids(&added["voters"]), [1, 2, 3], "{added}");

    wait_for_status(&cluster, new, "a caught-up learner", |status| {
        status["role"] == "learner" && status["catching_up"] == false
    });
    let (code, value) = request(
        "GET",
        &format!("{}/v1/kv/before/29?stale", cluster.node(new).url()),
        b"",
    );
    assert_eq!((code, value), (200, b"v29".to_vec()));
    let (_, view) = request("GET", &format!("{base}/v1/cluster"), b"");
    let view = json(&view);
    assert_eq!(ids(&view["learners"]), [new], "{view}");
    let shown = view["nodes"].as_array().unwrap();
    assert!(
        shown
            .iter()
            .any(|node| node["id"] == new && node["role"] == "learner"),
        "{view}"
    );

    let (code, unknown) = request("POST", &format!("{base}/v1/cluster/members/9/promote"), b"");
    assert_eq!(
        (code, json(&unknown)["code"].clone()),
        (404, "unknown_member".into())
    );

    let promoted = cli(&base, &["promote", &new.to_string()]);
    assert!(promoted.contains("voters [1,2,3,4]"), "{promoted}");
    let removed_id = (1..=3).find(|&id| id != leader).unwrap();
    let removed = cli(&base, &["remove", &removed_id.to_string()]);
    let mut expected: Vec<u64> = (1..=4).filter(|&id| id != removed_id).collect();
    expected.sort_unstable();
    let voters = format!("voters {}", serde_json::to_string(&expected).unwrap());
    assert!(removed.contains(&voters), "{removed}");
    cluster.node_mut(removed_id).kill();

    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let (_, view) = request("GET", &format!("{base}/v1/cluster"), b"");
    let view = json(&view);
    assert_eq!(ids(&view["voters"]), expected, "{view}");
    assert!(ids(&view["learners"]).is_empty(), "{view}");

    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..30 {
        put_retrying(&base, &format!("/after/{i}"), &format!("w{i}"), deadline);
    }
    let new_url = cluster.node(new).url();
    for i in 0..30 {
        let (code, value) = get_retrying(&new_url, &format!("/before/{i}"), deadline);
        assert_eq!(
            (code, value),
            (200, format!("v{i}").into_bytes()),
            "/before/{i}"
        );
        let (code, value) = get_retrying(&new_url, &format!("/after/{i}"), deadline);
        assert_eq!(
            (code, value),
            (200, format!("w{i}").into_bytes()),
            "/after/{i}"
        );
    }
    let record = std::fs::read_to_string(cluster.node(new).directory.join("members.toml"))
        .unwrap_or_default();
    assert!(record.contains("from_log = true"), "{record}");

    // An original member restarted with its first flags (which name the removed member and
    // not the new one) is told the flags contradict the committed configuration, and runs
    // with the committed one.
    let restarted = (1..=3)
        .find(|&id| id != removed_id && id != leader)
        .unwrap();
    cluster
        .node_mut(restarted)
        .terminate(Duration::from_secs(10));
    cluster.node_mut(restarted).spawn();
    wait_for_status(
        &cluster,
        restarted,
        "back with the committed view",
        |status| ids(&status["voters"]) == expected && status["catching_up"] == false,
    );
    let log = cluster.node(restarted).node_log();
    assert!(
        log.contains("differ from the cluster's committed configuration"),
        "{log}"
    );
}

/// Writes `/load/<i>` through the given nodes in turn until `stop`, and returns the keys whose
/// write was acknowledged (200). A write with any other answer may or may not have applied and
/// is not counted.
fn write_load(
    urls: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        let mut i = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let url = &urls[i as usize % urls.len()];
            let (status, _) = request(
                "PUT",
                &format!("{url}/v1/kv/load/{i}"),
                i.to_string().as_bytes(),
            );
            if status == 200 {
                acknowledged.push(i);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
            i += 1;
        }
        acknowledged
    })
}

fn voters_of(base: &str) -> Vec<u64> {
    let (_, members) = request("GET", &format!("{base}/v1/cluster/members"), b"");
    ids(&json(&members)["voters"])
}

/// Every key of `acknowledged` reads back, linearizably, through `base`.
fn assert_readable(base: &str, acknowledged: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for &i in acknowledged {
        let (code, value) = get_retrying(base, &format!("/load/{i}"), deadline);
        assert_eq!(
            (code, value),
            (200, i.to_string().into_bytes()),
            "/load/{i} via {base}"
        );
    }
}

/// Proves growing and shrinking under load: while a client writes through the first three
/// nodes, two new nodes start with nothing but `--join` (through the leader, then through
/// the first new node) and each becomes a voter by itself; then both are removed and
/// stopped. The cluster ends with its first three voters, and every acknowledged write reads
/// back through each of them.
#[test]
fn a_cluster_grows_from_three_to_five_under_load_and_shrinks_back() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let urls: Vec<String> = (1..=3).map(|id| cluster.node(id).url()).collect();
    let load = write_load(urls.clone(), stop.clone());

    let first = cluster.start_new_node(&["--join".to_owned(), cluster.node(leader).url()]);
    wait_for_status(&cluster, first, "a voter", |status| {
        ids(&status["voters"]).contains(&first)
    });
    let second = cluster.start_new_node(&["--join".to_owned(), cluster.node(first).url()]);
    wait_for_status(&cluster, second, "a voter", |status| {
        ids(&status["voters"]).contains(&second)
    });
    assert_eq!(voters_of(&urls[0]), [1, 2, 3, 4, 5]);
    std::thread::sleep(Duration::from_millis(500));

    for id in [second, first] {
        change(&urls[0], "DELETE", &format!("/v1/cluster/members/{id}"), "");
        cluster.node_mut(id).kill();
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = load.join().unwrap();
    assert!(
        acknowledged.len() > 20,
        "too few writes went through: {}",
        acknowledged.len()
    );
    assert_eq!(voters_of(&urls[0]), [1, 2, 3]);
    for url in &urls {
        assert_readable(url, &acknowledged);
    }
}

/// Proves the replacement of a member whose disk was wiped: the member is removed, its data
/// directory wiped, and it is started again (same id and addresses) with `--join`; it comes
/// back as a learner, catches up and is promoted. Then another member is stopped: the
/// replaced one is needed for the majority, and the acknowledged writes, before and after,
/// read back through it.
#[test]
fn a_wiped_member_is_removed_rejoins_as_a_learner_and_is_promoted() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..20 {
        put_retrying(&base, &format!("/load/{i}"), &i.to_string(), deadline);
    }
    let wiped = (1..=3).find(|&id| id != leader).unwrap();
    change(&base, "DELETE", &format!("/v1/cluster/members/{wiped}"), "");
    let node = cluster.node_mut(wiped);
    node.kill();
    std::fs::remove_dir_all(&node.directory).unwrap();
    let state = node
        .arguments
        .iter()
        .position(|argument| argument == "--initial-cluster-state")
        .unwrap();
    node.arguments[state + 1] = "existing".to_owned();
    node.arguments.extend(["--join".to_owned(), base.clone()]);
    node.spawn();
    wait_for_status(&cluster, wiped, "a voter again", |status| {
        ids(&status["voters"]).contains(&wiped) && status["catching_up"] == false
    });
    for i in 20..40 {
        put_retrying(&base, &format!("/load/{i}"), &i.to_string(), deadline);
    }
    let other = (1..=3).find(|&id| id != leader && id != wiped).unwrap();
    cluster.node_mut(other).kill();
    for i in 40..50 {
        put_retrying(&base, &format!("/load/{i}"), &i.to_string(), deadline);
    }
    let acknowledged: Vec<u64> = (0..50).collect();
    assert_readable(&cluster.node(wiped).url(), &acknowledged);
}

/// Proves a join into a secured cluster (tokens and authenticated datagrams): membership
/// changes without the admin token are refused (401), and a node started with `--join`, the
/// cluster secret and the admin token joins, is promoted, and serves linearizable reads of
/// writes made before it existed. Its datagrams reach members that did not know it at their
/// start, and theirs reach it.
#[test]
fn a_node_joins_a_cluster_with_tokens_and_authenticated_peers() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("cluster.secret");
    std::fs::write(&secret_file, format!("{}\n", "5a".repeat(32))).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = "admin-0123456789abcdef";
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let extra = [
        "--cluster-secret-file".to_owned(),
        secret_file.display().to_string(),
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
    ];
    let mut cluster = TestCluster::start_with(3, &extra);
    let authorization = [("Authorization", format!("Bearer {token}"))];
    let get = |url: &str| common::request_with_headers("GET", url, &authorization, b"");
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let leader = (1..=3).find(|&id| {
            let (_, status) = get(&format!("{}/v1/status", cluster.node(id).url()));
            json(&status)["role"] == "leader"
        });
        if let Some(leader) = leader {
            break leader;
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    let base = cluster.node(leader).url();
    for i in 0..10 {
        let url = format!("{base}/v1/kv/secure/{i}");
        let (code, body) =
            common::request_with_headers("PUT", &url, &authorization, i.to_string().as_bytes());
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (code, _) = request("DELETE", &format!("{base}/v1/cluster/members/2"), b"");
    assert_eq!(code, 401, "a change without a token is refused");

    let mut join = extra.to_vec();
    join.extend(["--join".to_owned(), base.clone()]);
    let new = cluster.start_new_node(&join);
    let new_url = cluster.node(new).url();
    let deadline = Instant::now() + CHANGE_WAIT;
    loop {
        let (_, status) = get(&format!("{new_url}/v1/status"));
        let status = json(&status);
        if ids(&status["voters"]).contains(&new) && status["catching_up"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n{new} never became a voter: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..10 {
        let (code, value) = get(&format!("{new_url}/v1/kv/secure/{i}"));
        assert_eq!(
            (code, value),
            (200, i.to_string().into_bytes()),
            "/secure/{i}"
        );
    }
}

/// Proves a join into a compacted cluster and a restart of the joined node: with snapshots
/// every 20 entries, the leader's log no longer starts at 1, so the new node receives a
/// snapshot before the log's tail; once a voter it is stopped and started again with the
/// same command line, and comes back a voter (from its own log and record, not asking to be
/// added again) with every write readable through it.
#[test]
fn a_node_joins_a_compacted_cluster_through_a_snapshot_and_restarts() {
    let snapshots = ["--snapshot-every-entries".to_owned(), "20".to_owned()];
    let mut cluster = TestCluster::start_with(3, &snapshots);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..100 {
        put_retrying(&base, &format!("/load/{i}"), &i.to_string(), deadline);
    }
    wait_for_status(&cluster, leader, "compacted", |status| {
        status["first_log_index"].as_u64().unwrap_or(0) > 1
    });
    let mut join = snapshots.to_vec();
    join.extend(["--join".to_owned(), base.clone()]);
    let new = cluster.start_new_node(&join);
    wait_for_status(&cluster, new, "a voter", |status| {
        ids(&status["voters"]).contains(&new) && status["catching_up"] == false
    });
    let installed = cluster.node(new).status().unwrap()["snapshots_installed"].clone();
    assert!(installed.as_u64().unwrap_or(0) >= 1, "{installed}");

    cluster.node_mut(new).terminate(Duration::from_secs(10));
    cluster.node_mut(new).spawn();
    wait_for_status(&cluster, new, "a voter again", |status| {
        ids(&status["voters"]).contains(&new) && status["leader"].is_u64()
    });
    let log = cluster.node(new).node_log();
    assert_eq!(
        log.matches("asking to be added as a learner").count(),
        1,
        "the restart asked to be added again: {log}"
    );
    let acknowledged: Vec<u64> = (0..100).collect();
    assert_readable(&cluster.node(new).url(), &acknowledged);
}
