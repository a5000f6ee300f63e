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
}
