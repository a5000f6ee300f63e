//! The REST API driven in process: a one-node runtime on a temporary directory and its
//! [`Api`], called through [`Handler::handle`] without sockets. What a client can send must
//! never kill the node loop, and `/v1/health` must tell a dead loop from a live one.

use super::http_metrics::HttpMetrics;
use super::{Api, NodeAddresses};
use crate::http::{Handler, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use rafting_core::NodeId;
use rafting_core::raft::Config;
use rafting_core::store::StoreConfig;
use rafting_net::runtime::{Runtime, RuntimeConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// One node serving its API in process, elected leader of its one-node cluster.
struct InProcessNode {
    runtime: Runtime,
    api: Arc<Api>,
    _data: tempfile::TempDir,
}

impl InProcessNode {
    fn start() -> InProcessNode {
        InProcessNode::start_with(StoreConfig::default())
    }

    fn start_with(store: StoreConfig) -> InProcessNode {
        let data = tempfile::tempdir().unwrap();
        let mut raft = Config::new(NodeId(1), [NodeId(1)], 1);
        raft.heartbeat_interval_ms = 50;
        raft.election_timeout_ms_min = 200;
        raft.election_timeout_ms_max = 400;
        let runtime = Runtime::start(RuntimeConfig {
            raft,
            store,
            cluster_id: 9,
            udp_listen: "127.0.0.1:0".parse().unwrap(),
            peers: BTreeMap::new(),
            data_directory: data.path().to_path_buf(),
            session_tick_interval_ms: 250,
            request_queue_max: 256,
            snapshot_every_entries: rafting_core::replica::SNAPSHOT_EVERY_ENTRIES_DEFAULT,
            snapshot_every_bytes: rafting_core::replica::SNAPSHOT_EVERY_BYTES_DEFAULT,
            leader_probes: false,
            bootstrap: true,
            cluster_key: None,
        })
        .unwrap();
        let addresses = NodeAddresses {
            udp: "127.0.0.1:1".parse().unwrap(),
            http: "127.0.0.1:2".parse().unwrap(),
        };
        let api = Arc::new(Api {
            handle: runtime.handle.clone(),
            members: BTreeMap::from([(NodeId(1), addresses)]),
            request_timeout: Duration::from_secs(3),
            body_bytes_max: 1 << 20,
            http_metrics: HttpMetrics::default(),
            stopping: AtomicBool::new(false),
            debug_panic_route: false,
            pick_counters: Default::default(),
            admin_token: None,
            watches_open: Default::default(),
            throttles: Default::default(),
            tenant_connections: Default::default(),
        });
        let node = InProcessNode {
            runtime,
            api,
            _data: data,
        };
        node.wait_until_healthy();
        node
    }

    fn call(&self, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
        let response = self.api.handle(Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: body.to_vec(),
        });
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, json)
    }

    fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.call("GET", "/v1/health", b"").0 != 200 {
            assert!(Instant::now() < deadline, "the node never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Proves the dashboard's cross-origin rule: a member's own page (here `http://127.0.0.1:2`,
/// the node's HTTP address) gets its preflight answered and the API's answers readable; a page
/// from elsewhere gets neither (its `OPTIONS` is a plain 405, no CORS header on any answer).
#[test]
fn cross_origin_access_is_granted_to_the_members_pages_only() {
    let node = InProcessNode::start();
    let send = |method: &str, origin: &str| {
        node.api.handle(Request {
            method: method.to_owned(),
            target: "/v1/status".to_owned(),
            headers: vec![("Origin".to_owned(), origin.as_bytes().to_vec())],
            body: Vec::new(),
        })
    };
    let header = |response: &crate::http::Response, name: &str| {
        response
            .headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.clone())
    };
    let preflight = send("OPTIONS", "http://127.0.0.1:2");
    assert_eq!(preflight.status, 204);
    let methods = header(&preflight, "Access-Control-Allow-Methods").unwrap_or_default();
    assert!(methods.contains("PUT"), "{methods}");
    let answer = send("GET", "http://127.0.0.1:2");
    assert_eq!(answer.status, 200);
    assert_eq!(
        header(&answer, "Access-Control-Allow-Origin").as_deref(),
        Some("http://127.0.0.1:2")
    );
    let foreign = send("GET", "http://elsewhere.example");
    assert_eq!(foreign.status, 200);
    assert_eq!(header(&foreign, "Access-Control-Allow-Origin"), None);
    assert_eq!(send("OPTIONS", "http://elsewhere.example").status, 405);
}

/// Proves the liveness heartbeat of `/v1/health`: a healthy node whose loop is killed by an
/// injected panic answers 503 naming the silent loop within a little over a second, although
/// its last published status still shows a leader and everything applied (before the
/// heartbeat, health kept answering 200 from that frozen status).
#[test]
fn health_is_unhealthy_once_the_node_loop_is_dead() {
    let node = InProcessNode::start();
    node.runtime.handle.inject_node_loop_panic();
    std::thread::sleep(Duration::from_millis(1200));
    let (status, body) = node.call("GET", "/v1/health", b"");
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("node loop has not answered"), "{body}");
}

/// `/v1/status` shows what an operator watches besides roles and indexes: the reads waiting
/// for their quorum round, the uncommitted backlog, a catch-up target and a transfer target
/// (none here: a lone leader that was sent no read). The status is the one the node loop
/// published last, so the backlog is whatever that round left: a count, not a fixed value.
#[test]
fn status_shows_pending_reads_backlog_and_targets() {
    let node = InProcessNode::start();
    assert_eq!(node.call("PUT", "/v1/kv/s", b"v").0, 200);
    let (code, status) = node.call("GET", "/v1/status", b"");
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["role"], "leader", "{status}");
    assert_eq!(status["pending_reads"], 0, "{status}");
    assert!(status["uncommitted_bytes"].is_u64(), "{status}");
    assert_eq!(status["catch_up_target"], Value::Null, "{status}");
    assert_eq!(status["transfer_target"], Value::Null, "{status}");
    assert_eq!(status["progress"], Value::Array(Vec::new()), "{status}");
}

/// Proves the listings of issue 10, item 1 (cursors outside the listed prefix, with keys under
/// it) answer 200 with an empty page, and leave the node loop alive and healthy.
#[test]
fn listings_with_a_cursor_past_the_prefix_answer_an_empty_page() {
    let node = InProcessNode::start();
    for key in ["/a/x", "/b/x", "/c/x"] {
        assert_eq!(node.call("PUT", &format!("/v1/kv{key}"), b"v").0, 200);
    }
    for target in [
        "/v1/kv/?list&after=0",
        "/v1/kv/a?list&after=/b",
        "/v1/kv/?list&after=~",
        "/v1/kv/?list&after=zzz",
        "/v1/kv/a?list&after=zzz&stale",
    ] {
        let (status, body) = node.call("GET", target, b"");
        assert_eq!(status, 200, "{target}: {body}");
        assert_eq!(body["entries"], Value::Array(Vec::new()), "{target}");
    }
    assert_eq!(node.runtime.ended_thread(), None);
    assert_eq!(node.call("GET", "/v1/health", b"").0, 200);
}

/// Proves the watch default (issue 10, item 7): `?watch` without `since` reports only the
/// changes after the current revision, so it works however far the history has rolled over
/// (it used to start at revision 1 and answer 410 for ever once the history rolled over);
/// and a 410 carries `compact_revision` (the oldest revision still kept) and
/// `current_revision` to restart from.
#[test]
fn a_watch_without_since_starts_now_and_a_compacted_one_says_where_to_restart() {
    let node = InProcessNode::start_with(StoreConfig {
        watch_history_events_max: 4,
        ..StoreConfig::default()
    });
    for index in 1..=10 {
        assert_eq!(node.call("PUT", &format!("/v1/kv/w/{index}"), b"v").0, 200);
    }
    let (status, listing) = node.call("GET", "/v1/kv/w?list&keys_only&limit=1", b"");
    assert_eq!(status, 200);
    let current = listing["revision"].as_u64().unwrap();

    let (status, batch) = node.call("GET", "/v1/kv/w?watch&timeout_ms=0", b"");
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["events"], Value::Array(Vec::new()), "{batch}");
    assert_eq!(batch["next_since"].as_u64(), Some(current + 1), "{batch}");

    assert_eq!(node.call("PUT", "/v1/kv/w/new", b"n").0, 200);
    let since = batch["next_since"].as_u64().unwrap();
    let (status, batch) = node.call("GET", &format!("/v1/kv/w?watch&since={since}"), b"");
    assert_eq!(status, 200, "{batch}");
    let keys: Vec<&str> = batch["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["key"].as_str())
        .collect();
    assert_eq!(keys, ["/w/new"]);

    let (status, error) = node.call("GET", "/v1/kv/w?watch&since=1&timeout_ms=0", b"");
    assert_eq!(status, 410, "{error}");
    assert_eq!(error["code"], "compacted");
    assert_eq!(
        error["compact_revision"].as_u64(),
        Some(current + 1 - 3),
        "{error}"
    );
    assert_eq!(
        error["current_revision"].as_u64(),
        Some(current + 1),
        "{error}"
    );
}

/// A path the API serves (or nearly), so that most generated requests reach a handler.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "/v1/kv", "/v1/kv/", "/v1/kv/a", "/v1/kv/a/x", "/v1/kv/b/", "/v1/kv/%2F", "/v1/kv/a%00",
            "/v1/kv/..", "/v1/txn", "/v1/sessions", "/v1/sessions/1/keepalive", "/v1/sessions/x",
            "/v1/status", "/v1/health", "/v1/cluster/transfer-leader", "/v1/debug/panic",
            "/metrics",
        ])
        .prop_map(str::to_owned),
        1 => "/v1/kv/[a-z%0-9/.~]{0,12}",
        1 => any::<String>().prop_map(|text| format!("/v1/kv/{text}")),
    ]
}

/// A query string of known and unknown parameters with arbitrary values, raw or escaped.
fn query() -> impl Strategy<Value = String> {
    // Listings are weighted up: their cursor is where issue 10 found a panic.
    let name = prop_oneof![
        3 => prop::sample::select(vec!["list", "after"]),
        2 => prop::sample::select(vec![
            "watch", "limit", "since", "cas", "session", "stale", "keys_only", "to", "x",
        ]),
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "/b",
            "~",
            "zzz",
            "%2F",
            "%ff",
            "%",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "4294967296",
        ])
        .prop_map(str::to_owned),
        any::<u64>().prop_map(|number| number.to_string()),
        "[ -~]{0,8}",
    ];
    prop::collection::vec((name, prop::option::of(value)), 0..6).prop_map(|parameters| {
        let mut pairs: Vec<String> = parameters
            .into_iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={value}"),
                None => name.to_owned(),
            })
            .collect();
        // A watch must not long-poll: the last of a repeated parameter wins today, and a
        // duplicate refused as malformed ends the request just as quickly.
        pairs.push("timeout_ms=0".to_owned());
        pairs.join("&")
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..16),
        prop::sample::select(vec![
            r#"{"ttl_ms": 1000}"#,
            r#"{"ttl_ms": 18446744073709551615}"#,
            r#"{"compare":[{"key":"/a/x","version":18446744073709551615}],"success":[{"op":"put","key":"/a/y","value":"v","session":18446744073709551615}]}"#,
            r#"{"compare":[{"key":"zzz","relation":"less","modify_revision":0}],"failure":[{"op":"get","key":"/"}]}"#,
            r#"{"success":[{"op":"delete","key":"/a/x"},{"op":"get","key":"/a/x"}]}"#,
        ])
        .prop_map(|text| text.as_bytes().to_vec()),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => Just("GET"),
        2 => prop::sample::select(vec!["PUT", "POST", "DELETE", "HEAD", "PATCH"]),
    ]
}

/// Proves that no request line, query string or body kills the node loop or answers a 500:
/// arbitrary methods, paths, known and unknown parameters with arbitrary (malformed,
/// overflowing, escaped) values and bodies are sent to one node, and after each request its
/// essential threads are all alive. The listing cursor of issue 10 is among the values.
#[test]
fn arbitrary_requests_never_kill_the_node_loop() {
    let node = InProcessNode::start();
    for key in ["/a/x", "/b/x", "/c/x"] {
        assert_eq!(node.call("PUT", &format!("/v1/kv{key}"), b"v").0, 200);
    }
    let config = ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let request = (method(), path(), query(), body());
    runner
        .run(&request, |(method, path, query, body)| {
            let target = format!("{path}?{query}");
            let (status, answer) = node.call(method, &target, &body);
            prop_assert!(status != 500, "{method} {target}: {status} {answer}");
            prop_assert_eq!(node.runtime.ended_thread(), None, "{} {}", method, target);
            Ok(())
        })
        .unwrap();
    assert_eq!(node.call("GET", "/v1/health", b"").0, 200);
}

/// Proves that waiting watches are held by the registry, not by threads (issue 17): 500 watch
/// long polls on one prefix are handed to the API from this one thread, each returning at
/// once with its answer still to come; all 500 wait in the registry; one put under the prefix
/// answers every one of them with that change, and a watch elsewhere keeps waiting.
#[test]
fn waiting_watches_are_held_by_the_registry_and_one_change_answers_them_all() {
    use crate::http::Responder;
    let node = InProcessNode::start();
    let (status, written) = node.call("PUT", "/v1/kv/many/start", b"0");
    assert_eq!(status, 200);
    let since = written["revision"].as_u64().unwrap() + 1;
    let watch = |prefix: &str| {
        let (responder, answer) = Responder::channel();
        node.api.serve(
            Request {
                method: "GET".into(),
                target: format!("/v1/kv/{prefix}?watch&since={since}&timeout_ms=30000"),
                headers: Vec::new(),
                body: Vec::new(),
            },
            responder,
        );
        answer
    };
    let answers: Vec<_> = (0..500).map(|_| watch("many")).collect();
    let elsewhere = watch("elsewhere");
    assert_eq!(node.api.watches_open.waiting(), 501);
    assert_eq!(node.call("PUT", "/v1/kv/many/change", b"1").0, 200);
    for answer in answers {
        let response = answer.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(response.status, 200);
        let batch: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(batch["events"][0]["key"], "/many/change", "{batch}");
    }
    assert!(
        elsewhere.try_recv().is_err(),
        "a watch elsewhere was answered"
    );
    assert_eq!(node.api.watches_open.waiting(), 1);
}
