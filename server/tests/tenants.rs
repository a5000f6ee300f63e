//! Tenants with real processes: a 3-node cluster started with `--admin-token-file`. Tokens
//! are checked on every node; a tenant never sees another's keys; stored caps answer 403
//! `quota_*` and rates 429 `rate_*` with `Retry-After`; bad, revoked and missing tokens are
//! 401; bad names and duplicate tenants are refused; a tenant with live sessions is deleted
//! only with `?purge`.

mod common;

use common::{TestCluster, request_with_headers};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);
const ADMIN: &str = "admin-token-for-the-tests-0123456789";

/// A cluster with auth on, its leader elected, and a directory holding the admin token.
fn secure_cluster(size: u64) -> (TestCluster, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN}\n")).unwrap();
    let extra = [
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
    ];
    let cluster = TestCluster::start_with(size, &extra);
    wait_for_leader(&cluster);
    (cluster, secrets)
}

/// Waits until a node says it leads (`/v1/status` needs a token when auth is on).
fn wait_for_leader(cluster: &TestCluster) {
    let deadline = Instant::now() + ELECTION_WAIT;
    let admin = [("Authorization", format!("Bearer {ADMIN}"))];
    while Instant::now() < deadline {
        for node in &cluster.nodes {
            let url = format!("{}/v1/status", node.url());
            let (status, body) = request_with_headers("GET", &url, &admin, b"");
            let role = serde_json::from_slice::<Value>(&body).ok();
            if status == 200 && role.is_some_and(|status| status["role"] == "leader") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no leader within {ELECTION_WAIT:?}");
}

/// One request with `token` (none for `""`), retried while the cluster has no leader.
fn call(base: &str, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    call_with(base, method, path, token, &[], body)
}

fn call_with(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut headers: Vec<(&str, String)> = extra.to_vec();
    if !token.is_empty() {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, bytes) =
            request_with_headers(method, &format!("{base}{path}"), &headers, body);
        if matches!(status, 0 | 503) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        return (status, value);
    }
}

/// Creates a tenant and returns its token.
fn create_tenant(base: &str, name: &str, caps: Value) -> String {
    let body = json!({"name": name, "caps": caps}).to_string();
    let (status, answer) = call(base, "POST", "/v1/tenants", ADMIN, body.as_bytes());
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["tenant"]["name"], name);
    answer["token"].as_str().unwrap().to_owned()
}

#[test]
fn tenants_are_isolated_and_tokens_are_checked_on_every_node() {
    // Proves auth and isolation end to end: no token, a malformed or unknown token is 401
    // (health and metrics stay open); two tenants writing the same key each see their own;
    // the administrator sees the default tenant or the one it names; every node checks
    // tokens (stale reads on each); a revoked token stops working at once.
    let (cluster, _secrets) = secure_cluster(3);
    let base = cluster.url(0);
    let (status, answer) = call(&base, "GET", "/v1/kv/k", "", b"");
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    assert_eq!(call(&base, "GET", "/v1/kv/k", "nobody.secret", b"").0, 401);
    assert_eq!(
        call(&base, "GET", "/v1/kv/k", &format!("{ADMIN}x"), b"").0,
        401
    );
    assert_eq!(call(&base, "GET", "/v1/health", "", b"").0, 200);
    assert_eq!(call(&base, "GET", "/metrics", "", b"").0, 200);

    let a = create_tenant(&base, "team-a", json!({}));
    let b = create_tenant(&base, "team-b", json!({}));
    assert_eq!(call(&base, "PUT", "/v1/kv/shared", &a, b"from a").0, 200);
    assert_eq!(call(&base, "GET", "/v1/kv/shared", &b, b"").0, 404);
    assert_eq!(call(&base, "PUT", "/v1/kv/shared", &b, b"from b").0, 200);
    assert_eq!(call(&base, "GET", "/v1/kv/shared", &a, b"").1, "from a");
    assert_eq!(call(&base, "GET", "/v1/kv/shared", ADMIN, b"").0, 404);
    let as_a = [("X-Rafting-Tenant", "team-a".to_owned())];
    let (_, seen) = call_with(&base, "GET", "/v1/kv/shared", ADMIN, &as_a, b"");
    assert_eq!(seen, "from a");
    let (_, listing) = call(&base, "GET", "/v1/kv/?list", &b, b"");
    assert_eq!(listing["entries"].as_array().unwrap().len(), 1, "{listing}");

    for node in &cluster.nodes {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, value) = call(&node.url(), "GET", "/v1/kv/shared?stale", &a, b"");
            if status == 200 && value == "from a" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: {status} {value}",
                node.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let (status, members) = call(&base, "GET", "/v1/cluster", ADMIN, b"");
    assert_eq!(status, 200);
    let nodes = members["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().all(|node| node["reachable"] == true),
        "{members}"
    );
    assert_eq!(
        call(&base, "POST", "/v1/cluster/transfer-leader?to=2", &a, b"").0,
        403
    );

    assert_eq!(call(&base, "GET", "/v1/tenants", &a, b"").0, 403);
    assert_eq!(call(&base, "GET", "/v1/tenants/team-b", &a, b"").0, 403);
    let (status, own) = call(&base, "GET", "/v1/tenants/team-a", &a, b"");
    assert_eq!(
        (status, own["usage"]["keys"].as_u64()),
        (200, Some(1)),
        "{own}"
    );
    let (_, all) = call(&base, "GET", "/v1/tenants", ADMIN, b"");
    assert_eq!(all["tenants"].as_array().unwrap().len(), 2, "{all}");

    let (status, issued) = call(&base, "POST", "/v1/tenants/team-a/tokens", ADMIN, b"");
    assert_eq!(status, 201, "{issued}");
    let second = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["token_id"], 2);
    assert_eq!(
        call(&base, "DELETE", "/v1/tenants/team-a/tokens/1", ADMIN, b"").0,
        200
    );
    assert_eq!(call(&base, "GET", "/v1/kv/shared", &a, b"").0, 401);
    assert_eq!(
        call(&base, "GET", "/v1/kv/shared", &second, b"").1,
        "from a"
    );
    let (status, again) = call(&base, "DELETE", "/v1/tenants/team-a/tokens/1", ADMIN, b"");
    assert_eq!(
        (status, again["code"].as_str()),
        (404, Some("token_not_found"))
    );
}

#[test]
fn caps_refuse_with_a_clear_error_and_cleanup_always_passes() {
    // Proves the caps through the API: over the keys cap is 403 `quota_keys` naming the
    // tenant, the cap and the usage, and a delete still passes; a cap of 0 refuses the first
    // key; over the write rate is 429 `rate_writes` with Retry-After; caps can be raised;
    // bad names, duplicates and unknown cap fields are refused.
    let (cluster, _secrets) = secure_cluster(1);
    let base = cluster.url(0);
    let small = create_tenant(&base, "small", json!({"keys": 1}));
    assert_eq!(call(&base, "PUT", "/v1/kv/one", &small, b"1").0, 200);
    let (status, refused) = call(&base, "PUT", "/v1/kv/two", &small, b"2");
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("quota_keys"))
    );
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("small") && message.contains("usage 1 of 1"),
        "{message}"
    );
    assert_eq!(call(&base, "DELETE", "/v1/kv/one", &small, b"").0, 200);
    assert_eq!(call(&base, "PUT", "/v1/kv/two", &small, b"2").0, 200);
    let raised = json!({"keys": 5}).to_string();
    let (status, view) = call(&base, "PUT", "/v1/tenants/small", ADMIN, raised.as_bytes());
    assert_eq!(
        (status, view["caps"]["keys"].as_u64()),
        (200, Some(5)),
        "{view}"
    );
    assert_eq!(call(&base, "PUT", "/v1/kv/three", &small, b"3").0, 200);

    let zero = create_tenant(&base, "zero", json!({"keys": 0, "sessions": 0}));
    let (status, refused) = call(&base, "PUT", "/v1/kv/a", &zero, b"");
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("quota_keys"))
    );
    let (status, refused) = call(&base, "POST", "/v1/sessions", &zero, br#"{"ttl_ms":1000}"#);
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("quota_sessions"))
    );

    let slow = create_tenant(&base, "slow", json!({"write_rate": 1, "write_burst": 2}));
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut last = None;
    for round in 0..3 {
        let put = agent
            .put(&format!("{base}/v1/kv/r{round}"))
            .set("Authorization", &format!("Bearer {slow}"))
            .send_bytes(b"x");
        last = Some(put);
    }
    match last.unwrap() {
        Err(ureq::Error::Status(429, response)) => {
            assert_eq!(response.header("Retry-After"), Some("1"));
            let body: Value = response.into_json().unwrap();
            assert_eq!(body["code"], "rate_writes", "{body}");
            assert!(body["message"].as_str().unwrap().contains("slow"), "{body}");
        }
        other => panic!("the third put within a second should be 429: {other:?}"),
    }

    for bad in ["Bad", "a/b", "", "default", "a.b"] {
        let body = json!({"name": bad}).to_string();
        let (status, refused) = call(&base, "POST", "/v1/tenants", ADMIN, body.as_bytes());
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("invalid_tenant_name")),
            "{bad:?}: {refused}"
        );
    }
    let duplicate = json!({"name": "small"}).to_string();
    let (status, refused) = call(&base, "POST", "/v1/tenants", ADMIN, duplicate.as_bytes());
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("tenant_exists"))
    );
    let unknown = br#"{"name":"x","caps":{"keyz":1}}"#;
    assert_eq!(call(&base, "POST", "/v1/tenants", ADMIN, unknown).0, 400);
    let (status, forbidden) = call(&base, "POST", "/v1/tenants", &small, duplicate.as_bytes());
    assert_eq!(
        (status, forbidden["code"].as_str()),
        (403, Some("forbidden"))
    );
}

#[test]
fn a_tenant_with_live_sessions_is_deleted_only_with_purge() {
    // Proves deletion: refused with `tenant_not_empty` while the tenant holds a session and
    // an ephemeral key, with nothing lost; `?purge` deletes everything and its token stops
    // working; deleting it again is `tenant_not_found`.
    let (cluster, _secrets) = secure_cluster(1);
    let base = cluster.url(0);
    let token = create_tenant(&base, "leaving", json!({}));
    let (status, opened) = call(
        &base,
        "POST",
        "/v1/sessions",
        &token,
        br#"{"ttl_ms":30000}"#,
    );
    assert_eq!(status, 200, "{opened}");
    let session = opened["session"].as_u64().unwrap();
    let path = format!("/v1/kv/lease?session={session}");
    assert_eq!(call(&base, "PUT", &path, &token, b"held").0, 200);
    let (status, refused) = call(&base, "DELETE", "/v1/tenants/leaving", ADMIN, b"");
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("tenant_not_empty"))
    );
    assert!(
        refused["message"].as_str().unwrap().contains("1 sessions"),
        "{refused}"
    );
    assert_eq!(call(&base, "GET", "/v1/kv/lease", &token, b"").1, "held");
    let (status, deleted) = call(&base, "DELETE", "/v1/tenants/leaving?purge", ADMIN, b"");
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["sessions_closed"], 1);
    assert_eq!(call(&base, "GET", "/v1/kv/lease", &token, b"").0, 401);
    let (status, gone) = call(&base, "DELETE", "/v1/tenants/leaving", ADMIN, b"");
    assert_eq!(
        (status, gone["code"].as_str()),
        (404, Some("tenant_not_found"))
    );
}

#[test]
fn an_open_cluster_runs_in_the_default_tenant_and_has_no_tenants() {
    // Proves the default: without --admin-token-file nothing asks for a token, and the
    // tenant routes say that auth is off.
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    assert_eq!(call(&base, "PUT", "/v1/kv/open", "", b"yes").0, 200);
    let (status, refused) = call(&base, "GET", "/v1/tenants", "", b"");
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("auth_disabled"))
    );
}

#[test]
fn the_client_library_works_inside_its_tenant_with_a_token() {
    // Proves the Rust client on a cluster with auth: with its tenant's token it writes exactly
    // once, reads, and runs a farm in the tenant's own space; another tenant's client sees none
    // of it; without a token every call is 401 `unauthenticated`.
    let (cluster, _secrets) = secure_cluster(1);
    let base = cluster.node(1).url();
    let token_a = create_tenant(&base, "team-a", json!({}));
    let token_b = create_tenant(&base, "team-b", json!({}));
    let connect = |token: &str| {
        rafting_client::Connect::new(&base)
            .token(token)
            .connect()
            .unwrap()
    };
    let (a, b) = (connect(&token_a), connect(&token_b));
    a.put("/config/mode", b"fast").unwrap();
    assert_eq!(
        a.get("/config/mode").unwrap().as_deref(),
        Some(&b"fast"[..])
    );
    assert_eq!(
        b.get("/config/mode").unwrap(),
        None,
        "another tenant's key space"
    );

    let member = rafting_client::Member::new("s1")
        .address("http", "10.0.0.1:80")
        .ttl_ms(1_000);
    let _membership = a.join_farm("/search", member).unwrap();
    let search = a.farm("/search").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while search.members().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the member is seen by its tenant"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(search.pick().unwrap().instance, "s1");
    assert!(
        b.farm("/search").unwrap().pick().is_err(),
        "another tenant's farm is empty"
    );

    let anonymous = rafting_client::connect(&base).unwrap();
    let refused = anonymous.put("/x", b"1").unwrap_err();
    assert_eq!(refused.code(), Some("unauthenticated"), "{refused}");
}

/// Reads one HTTP answer from a raw connection: its status and its JSON body.
fn answer(reader: &mut std::io::BufReader<std::net::TcpStream>) -> (u16, Value) {
    let (status, body) = common::raw_answer(reader);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn a_tenant_over_its_rate_is_refused_at_the_head_before_its_body_is_sent() {
    // Proves the front refuses from the replica's refusal without reading the body: once a
    // 256 KiB put is refused for `rate_write_bytes`, the next one is answered 429 as soon as
    // its head arrives (with no body sent at all), the body sent afterwards is dropped and the
    // same connection serves the next request; a smaller put that fits, and another tenant,
    // are not refused.
    use std::io::{BufReader, Write};
    let (cluster, _secrets) = secure_cluster(1);
    let base = cluster.url(0);
    let caps = json!({"write_bytes_rate": 1_000, "write_bytes_burst": 300_000});
    let flood = create_tenant(&base, "flood", caps);
    let calm = create_tenant(&base, "calm", json!({}));
    let big = vec![b'v'; 256 * 1024];
    assert_eq!(call(&base, "PUT", "/v1/kv/big1", &flood, &big).0, 200);
    let (status, refused) = call(&base, "PUT", "/v1/kv/big2", &flood, &big);
    assert_eq!(
        (status, refused["code"].as_str()),
        (429, Some("rate_write_bytes")),
        "{refused}"
    );

    let address = base.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let head = |key: &str, token: &str, length: usize| {
        format!(
            "PUT /v1/kv/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {length}\r\n\r\n"
        )
    };

    let asked = Instant::now();
    writer
        .write_all(head("big3", &flood, big.len()).as_bytes())
        .unwrap();
    let (status, refused) = answer(&mut reader);
    assert_eq!(
        (status, refused["code"].as_str()),
        (429, Some("rate_write_bytes")),
        "refused from the head alone: {refused}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(refused["retry_after_ms"].as_u64().unwrap() > 0, "{refused}");
    writer.write_all(&big).unwrap();
    writer
        .write_all(head("small", &flood, 10).as_bytes())
        .unwrap();
    writer.write_all(b"0123456789").unwrap();
    let (status, answer_small) = answer(&mut reader);
    assert_eq!(
        status, 200,
        "the refused body was dropped and the connection kept; a put that fits passes: \
         {answer_small}"
    );
    assert_eq!(
        call(&base, "PUT", "/v1/kv/big", &calm, &big).0,
        200,
        "another tenant is not refused"
    );
    let (status, value) = call(&base, "GET", "/v1/kv/big3", &flood, b"");
    assert_eq!(status, 404, "the refused put wrote nothing: {value}");
}

#[test]
fn a_tenant_holds_at_most_its_cap_of_connections_to_a_node() {
    // Proves the `connections` cap: a tenant capped at 2 is served on two keep-alive
    // connections; a third is answered 429 `quota_connections` and closed; once one of the two
    // closes, a new one is served. Another tenant and the administrator are not counted
    // against it, and the tenant's view shows what it holds on the node.
    use std::io::{BufReader, Read, Write};
    let (cluster, _secrets) = secure_cluster(1);
    let base = cluster.url(0);
    let capped = create_tenant(&base, "capped", json!({"connections": 2}));
    let other = create_tenant(&base, "other", json!({"connections": 2}));
    let address = base.trim_start_matches("http://").to_owned();
    // Opens a connection and sends one GET with `token`: its status, and the connection.
    let open = |token: &str| -> (u16, BufReader<std::net::TcpStream>) {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request =
            format!("GET /v1/kv/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let (status, _) = answer(&mut reader);
        (status, reader)
    };
    let (first, _one) = open(&capped);
    let (second, two) = open(&capped);
    assert_eq!((first, second), (404, 404), "served: the key is absent");
    let (third, mut three) = open(&capped);
    assert_eq!(third, 429, "over the cap of 2 connections");
    assert!(
        matches!(three.read(&mut [0; 16]), Ok(0)),
        "the connection over the cap is closed"
    );
    assert_eq!(
        open(&other).0,
        404,
        "another tenant has its own connections"
    );
    let (status, view) = call(&base, "GET", "/v1/tenants/capped", ADMIN, b"");
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["on_this_node"]["connections"], 2, "{view}");
    drop(two);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _kept) = open(&capped);
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection gives its slot back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn weights_are_validated_replicated_and_shown_on_every_node() {
    // Proves the weight's API: a tenant created with a weight shows it on every node (it
    // goes through the log like caps); 0, negative, absurd and non-integer weights are a
    // clear 400 that changes nothing (and a create with a bad weight creates nothing); a
    // tenant cannot set its own weight; an unknown tenant is 404.
    let (cluster, _secrets) = secure_cluster(3);
    let base = cluster.url(0);
    let body = json!({"name": "heavy", "weight": 3}).to_string();
    let (status, created) = call(&base, "POST", "/v1/tenants", ADMIN, body.as_bytes());
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant"]["weight"], 3, "{created}");
    let heavy = created["token"].as_str().unwrap().to_owned();
    let light = create_tenant(&base, "light", json!({}));
    let (_, shown) = call(&base, "GET", "/v1/tenants/light", ADMIN, b"");
    assert_eq!(shown["weight"], 1, "{shown}");

    for bad in ["0", "-1", "101", "4294967297", "1.5", "\"2\""] {
        let body = format!("{{\"weight\":{bad}}}");
        let (status, refused) = call(
            &base,
            "PUT",
            "/v1/tenants/heavy/weight",
            ADMIN,
            body.as_bytes(),
        );
        assert_eq!(status, 400, "{bad}: {refused}");
        let body = format!("{{\"name\":\"never\",\"weight\":{bad}}}");
        let (status, refused) = call(&base, "POST", "/v1/tenants", ADMIN, body.as_bytes());
        assert_eq!(status, 400, "{bad}: {refused}");
    }
    let (status, refused) = call(
        &base,
        "PUT",
        "/v1/tenants/heavy/weight",
        ADMIN,
        b"{\"weight\":0}",
    );
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        refused["message"].as_str().unwrap().contains("1 to 100"),
        "{refused}"
    );
    let (status, _) = call(&base, "GET", "/v1/tenants/never", ADMIN, b"");
    assert_eq!(status, 404);

    let (status, changed) = call(
        &base,
        "PUT",
        "/v1/tenants/heavy/weight",
        ADMIN,
        b"{\"weight\":2}",
    );
    assert_eq!((status, &changed["weight"]), (200, &json!(2)), "{changed}");
    // Every node applies the same entry: each one's own (stale) view converges to weight 2.
    for node in 0..3 {
        let url = cluster.url(node);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, seen) = call(&url, "GET", "/v1/tenants/heavy?stale", ADMIN, b"");
            if seen["weight"] == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "node {node} shows {seen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (status, forbidden) = call(
        &base,
        "PUT",
        "/v1/tenants/heavy/weight",
        &heavy,
        b"{\"weight\":100}",
    );
    assert_eq!(
        (status, forbidden["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = call(
        &base,
        "PUT",
        "/v1/tenants/light/weight",
        &light,
        b"{\"weight\":100}",
    );
    assert_eq!(status, 403);
    let (status, missing) = call(
        &base,
        "PUT",
        "/v1/tenants/nobody/weight",
        ADMIN,
        b"{\"weight\":2}",
    );
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("tenant_not_found"))
    );
    let (status, _) = call(
        &base,
        "POST",
        "/v1/tenants/heavy/weight",
        ADMIN,
        b"{\"weight\":2}",
    );
    assert_eq!(status, 405);
}
