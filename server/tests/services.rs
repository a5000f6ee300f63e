//! Service groups with real processes: `rafting service join` members against a real cluster.
//! A SIGTERM'd master hands over at once; a kill -9'd master is replaced after its TTL; the
//! REST API answers the master with its epoch and refuses stale resigns and conflicting
//! settings.

mod common;

use common::{TestCluster, request};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

/// A `rafting service join` process and the lines it prints.
struct Joined {
    child: Child,
    lines: Receiver<String>,
}

impl Joined {
    fn start(endpoint: &str, group: &str, instance: &str, ttl_ms: u64) -> Joined {
        Joined::start_with(endpoint, group, instance, ttl_ms, &[])
    }

    fn start_with(
        endpoint: &str,
        group: &str,
        instance: &str,
        ttl_ms: u64,
        extra: &[&str],
    ) -> Joined {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rafting"))
            .args(["service", "join", group, "--instance", instance])
            .args(extra)
            .args(["--address", &format!("http=10.0.0.1:{}", instance.len())])
            .args(["--ttl-ms", &ttl_ms.to_string(), "--endpoint", endpoint])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Joined { child, lines }
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn expect(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line starting with {prefix:?} within {timeout:?}"),
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn master_of(base: &str, group: &str) -> Value {
    let (status, body) = request("GET", &format!("{base}/v1/services{group}/master"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn a_terminated_master_hands_over_at_once_and_a_killed_one_after_its_ttl() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let a = Joined::start(&base, "/web", "a", 1_000);
    assert_eq!(
        a.expect("master", Duration::from_secs(10)),
        "master epoch=1 master=a"
    );
    let b = Joined::start(&cluster.url(1), "/web", "b", 1_000);
    b.expect("standby epoch=1", Duration::from_secs(10));
    let c = Joined::start(&cluster.url(2), "/web", "c", 1_000);
    c.expect("standby epoch=1", Duration::from_secs(10));
    assert_eq!(master_of(&base, "/web")["instance"], "a");

    // Graceful: SIGTERM the master; it resigns and the next standby takes over at once.
    let stopped = Instant::now();
    a.signal(libc::SIGTERM);
    b.expect("master epoch=2", Duration::from_secs(5));
    let handover = stopped.elapsed();
    a.expect("left", Duration::from_secs(5));
    assert!(
        handover < Duration::from_secs(1),
        "graceful handover took {handover:?}"
    );

    // Brutal: kill -9 the new master; the last standby takes over once the TTL has run.
    let killed = Instant::now();
    b.signal(libc::SIGKILL);
    let line = c.expect("master", Duration::from_secs(10));
    let failover = killed.elapsed();
    assert!(line.starts_with("master epoch=3"), "{line}");
    assert!(
        failover >= Duration::from_millis(700) && failover < Duration::from_secs(4),
        "brutal failover took {failover:?} with a TTL of 1000 ms"
    );
    let master = master_of(&base, "/web");
    assert_eq!(
        (master["instance"].as_str(), master["epoch"].as_u64()),
        (Some("c"), Some(3))
    );
}

#[test]
fn the_rest_api_fences_stale_resigns_refuses_conflicting_settings_and_feeds_watchers() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let join = |instance: &str, extra: &str| {
        let body = format!(r#"{{"instance":"{instance}","ttl_ms":5000{extra}}}"#);
        request(
            "POST",
            &format!("{base}/v1/services/jobs/members"),
            body.as_bytes(),
        )
    };
    let (status, body) = join("a", r#","failover_delay_ms":100"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (first["role"].as_str(), first["epoch"].as_u64()),
        (Some("master"), Some(1))
    );
    let (status, body) = join("b", r#","failover_delay_ms":0"#);
    let refused: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("settings_conflict")),
        "{refused}"
    );
    assert_eq!(join("b", "").0, 200);

    let resign = |epoch: u64| {
        let body = format!(r#"{{"instance":"a","epoch":{epoch}}}"#);
        request(
            "POST",
            &format!("{base}/v1/services/jobs/resign"),
            body.as_bytes(),
        )
    };
    let (status, body) = resign(1);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = resign(1);
    let stale: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, stale["code"].as_str()),
        (409, Some("stale_epoch")),
        "{stale}"
    );

    let (status, body) = request("GET", &format!("{base}/v1/services/jobs"), b"");
    assert_eq!(status, 200);
    let group: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(group["master"]["instance"], "b");
    assert_eq!(group["standbys"], serde_json::json!(["a"]));
    let (status, body) = request("GET", &format!("{base}/v1/services"), b"");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["services"][0]["name"], "/jobs");

    // Every change is in the watch stream, under /_services.
    let (status, body) = request(
        "GET",
        &format!("{base}/v1/kv/_services/jobs?watch&since=1&timeout_ms=100"),
        b"",
    );
    assert_eq!(status, 200);
    let watched: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        watched["events"].as_array().map(Vec::len),
        Some(3),
        "{watched}"
    );
    let (status, body) = request(
        "GET",
        &format!("{base}/v1/services/jobs?watch&since=1&timeout_ms=100"),
        b"",
    );
    assert_eq!(status, 200);
    let same: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        same["events"], watched["events"],
        "a group's watch is its key's"
    );
    let (status, _) = request("PUT", &format!("{base}/v1/kv/_services/jobs"), b"forged");
    assert_eq!(status, 400);
    let (status, _) = request("GET", &format!("{base}/v1/services/nope"), b"");
    assert_eq!(status, 404);
}

#[test]
fn a_farm_is_picked_round_robin_or_monte_carlo_and_draining_members_are_skipped() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    for instance in ["a", "b", "c"] {
        let body = format!(
            r#"{{"instance":"{instance}","ttl_ms":5000,"mode":"farm","addresses":{{"http":"{instance}:80"}}}}"#
        );
        let (status, body) = request(
            "POST",
            &format!("{base}/v1/services/search/members"),
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let joined: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(joined["role"], "active");
    }
    let pick = |query: &str| {
        let (status, body) = request(
            "GET",
            &format!("{base}/v1/services/search/pick{query}"),
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        answer["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["instance"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..30 {
        *counts.entry(pick("")[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [10, 10, 10],
        "{counts:?}"
    );
    assert_eq!(
        pick("?strategy=monte_carlo&n=5").len(),
        3,
        "n distinct, at most all"
    );
    let (status, _) = request(
        "PUT",
        &format!("{base}/v1/services/search/members/b"),
        br#"{"draining":true}"#,
    );
    assert_eq!(status, 200);
    for _ in 0..20 {
        assert_ne!(pick("?strategy=monte_carlo")[0], "b");
        assert_ne!(pick("")[0], "b");
    }
    let (status, _) = request(
        "GET",
        &format!("{base}/v1/services/search/pick?strategy=fastest"),
        b"",
    );
    assert_eq!(status, 400);
}

/// The operator's drain through REST and the CLI: a drained member is never picked, its own
/// keep-alive saying "not draining" does not undo it, the group's view says who drained it,
/// `rafting service undrain` gives it back; unknown groups and members, a wrong method and a
/// wrong token get clear errors.
#[test]
fn an_operator_drain_holds_against_the_members_keep_alives_until_undrained() {
    const ADMIN: &str = "admin-token-for-the-drain-test-0123456789";
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let extra = [
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
    ];
    let cluster = TestCluster::start_with(1, &extra);
    let base = cluster.url(0);
    let admin = [("Authorization", format!("Bearer {ADMIN}"))];
    let call = |method: &str, path: &str, body: &[u8]| {
        let url = format!("{base}{path}");
        let (status, body) = common::request_with_headers(method, &url, &admin, body);
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    // The first registration waits out the election (the status route needs the token too).
    let deadline = Instant::now() + ELECTION_WAIT;
    for instance in ["a", "b"] {
        let body = format!(r#"{{"instance":"{instance}","ttl_ms":5000,"mode":"farm"}}"#);
        loop {
            let (status, answer) = call("POST", "/v1/services/shop/members", body.as_bytes());
            // A retry of a registration that was applied after all finds it there.
            if status == 200 || answer["code"] == "member_exists" {
                break;
            }
            assert!(Instant::now() < deadline, "{status} {answer}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let picks = || -> Vec<String> {
        (0..10)
            .flat_map(|turn| {
                let strategy = if turn % 2 == 0 {
                    "round_robin"
                } else {
                    "monte_carlo"
                };
                let path = format!("/v1/services/shop/pick?strategy={strategy}&n=2");
                let (status, answer) = call("GET", &path, b"");
                assert_eq!(status, 200, "{answer}");
                answer["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|member| member["instance"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert!(picks().contains(&"b".to_owned()));

    let (status, answer) = call("POST", "/v1/services/shop/members/b/drain", b"");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["drained_by_operator"], true, "{answer}");
    assert_eq!(answer["draining"], true, "{answer}");
    // The member's own keep-alive says it is not draining: the operator's drain holds.
    let (status, answer) = call(
        "PUT",
        "/v1/services/shop/members/b/keepalive",
        br#"{"draining":false}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(picks().iter().all(|instance| instance == "a"));
    let (status, group) = call("GET", "/v1/services/shop", b"");
    assert_eq!(status, 200, "{group}");
    let b = &group["members"][1];
    assert_eq!(b["instance"], "b", "{group}");
    assert_eq!(
        (
            &b["draining"],
            &b["drained_by_operator"],
            &b["drained_by_self"]
        ),
        (&Value::Bool(true), &Value::Bool(true), &Value::Bool(false)),
        "{group}"
    );
    assert_eq!(group["drained_by_operator"], serde_json::json!(["b"]));

    // Clear errors: unknown group, unknown member, a master/standby group, a wrong method,
    // a wrong token.
    let (status, answer) = call("POST", "/v1/services/nowhere/members/b/drain", b"");
    assert_eq!(
        (status, &answer["code"]),
        (404, &Value::from("group_not_found"))
    );
    let (status, answer) = call("POST", "/v1/services/shop/members/zz/undrain", b"");
    assert_eq!(
        (status, &answer["code"]),
        (404, &Value::from("member_not_found"))
    );
    let body = br#"{"instance":"m","ttl_ms":5000}"#;
    assert_eq!(call("POST", "/v1/services/db/members", body).0, 200);
    let (status, answer) = call("POST", "/v1/services/db/members/m/drain", b"");
    assert_eq!(
        (status, &answer["code"]),
        (400, &Value::from("invalid_request"))
    );
    let (status, _) = call("GET", "/v1/services/shop/members/b/drain", b"");
    assert_eq!(status, 405);
    let wrong = [("Authorization", "Bearer not-the-token".to_owned())];
    let url = format!("{base}/v1/services/shop/members/b/undrain");
    let (status, _) = common::request_with_headers("POST", &url, &wrong, b"");
    assert_eq!(status, 401);

    // The CLI undrains it: picked again.
    let output = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .args(["service", "undrain", "/shop", "b", "--endpoint", &base])
        .env("RAFTING_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["drained_by_operator"], false, "{printed}");
    assert!(picks().contains(&"b".to_owned()));
}

/// SIGSTOP the master longer than its TTL: the standby takes over; on SIGCONT the old master's
/// first word is "standby" (its acting window ran out while it was stopped), and it learns the
/// new master.
#[test]
fn a_master_stopped_past_its_ttl_stands_down_on_resuming() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let a = Joined::start(&base, "/stall", "a", 1_000);
    a.expect("master epoch=1", Duration::from_secs(10));
    let b = Joined::start(&base, "/stall", "b", 1_000);
    b.expect("standby epoch=1", Duration::from_secs(10));
    a.signal(libc::SIGSTOP);
    b.expect("master epoch=2", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    a.signal(libc::SIGCONT);
    let first = a
        .lines
        .recv_timeout(Duration::from_secs(5))
        .expect("the resumed member says something");
    assert!(
        first.starts_with("standby"),
        "first line after resuming: {first}"
    );
    let mut line = first;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !line.contains("master=b") {
        assert!(
            !line.starts_with("master"),
            "the old master acted again: {line}"
        );
        let left = deadline.saturating_duration_since(Instant::now());
        line = a
            .lines
            .recv_timeout(left)
            .expect("it learns the new master");
    }
    assert_eq!(master_of(&base, "/stall")["instance"], "b");
}

/// A cold start waits for its expected members; when they all go and come back, it waits again.
#[test]
fn a_cold_start_waits_for_the_expected_members_every_time_the_group_forms() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let expect_three = ["--expected-members", "3"];
    for round in 1..=2 {
        let a = Joined::start_with(&base, "/cold", "a", 1_000, &expect_three);
        a.expect("standby epoch=", Duration::from_secs(10));
        let b = Joined::start_with(&base, "/cold", "b", 1_000, &expect_three);
        b.expect("standby epoch=", Duration::from_secs(10));
        let (status, body) = request("GET", &format!("{base}/v1/services/cold"), b"");
        assert_eq!(status, 200);
        let group: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(group["phase"], "forming", "round {round}: {group}");
        assert!(group["master"].is_null(), "round {round}: {group}");
        let c = Joined::start_with(&base, "/cold", "c", 1_000, &expect_three);
        a.expect("master", Duration::from_secs(5));
        c.expect("standby", Duration::from_secs(5));
        // Everyone leaves: the group forms again.
        for member in [&a, &b, &c] {
            member.signal(libc::SIGTERM);
        }
        for member in [&a, &b, &c] {
            member.expect("left", Duration::from_secs(5));
        }
    }
}
