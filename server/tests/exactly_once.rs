//! Exactly-once writes over REST: a client registers (`POST /v1/clients`), numbers its writes
//! (`X-Rafting-Client`, `X-Rafting-Sequence`), and a retry of a write whose answer it never
//! saw is answered from the client table instead of being applied again.

mod common;

use common::{TestCluster, request, request_with_headers};
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

fn numbered(client: u64, sequence: u64) -> Vec<(&'static str, String)> {
    vec![
        ("X-Rafting-Client", client.to_string()),
        ("X-Rafting-Sequence", sequence.to_string()),
    ]
}

fn version_of(base: &str, key: &str) -> u64 {
    let agent = ureq::AgentBuilder::new().redirects(5).build();
    let response = agent
        .get(&format!("{base}/v1/kv{key}"))
        .call()
        .expect("the key exists");
    response
        .header("X-Rafting-Version")
        .and_then(|version| version.parse().ok())
        .expect("a version header")
}

#[test]
fn a_retried_write_whose_answer_was_lost_is_applied_once() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let (status, body) = request("POST", &format!("{base}/v1/clients"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let client = answer["client"].as_u64().expect("a client id");

    // The first attempt: the request reaches the leader, and the connection is cut before
    // the answer comes back.
    let address = cluster.node(leader).http;
    let mut connection = TcpStream::connect(address).unwrap();
    let head = format!(
        "PUT /v1/kv/once HTTP/1.1\r\nHost: {address}\r\nX-Rafting-Client: {client}\r\n\
         X-Rafting-Sequence: 1\r\nContent-Length: 5\r\n\r\nfirst"
    );
    connection.write_all(head.as_bytes()).unwrap();
    drop(connection);
    let deadline = Instant::now() + Duration::from_secs(10);
    while request("GET", &format!("{base}/v1/kv/once"), b"").0 != 200 {
        assert!(Instant::now() < deadline, "the first attempt never applied");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The retry, through another node (redirected to the leader), with the same numbering.
    let other = cluster.node(leader % 3 + 1).url();
    let (status, body) = request_with_headers(
        "PUT",
        &format!("{other}/v1/kv/once"),
        &numbered(client, 1),
        b"first",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let retry: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        retry["version"], 1,
        "the retry answers the first write: {retry}"
    );
    assert_eq!(version_of(&base, "/once"), 1, "applied once");

    // The next sequence is a new write.
    let (status, body) = request_with_headers(
        "PUT",
        &format!("{base}/v1/kv/once"),
        &numbered(client, 2),
        b"second",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(version_of(&base, "/once"), 2);

    // The same write without numbering applies again, as before.
    let (status, _) = request("PUT", &format!("{base}/v1/kv/once"), b"second");
    assert_eq!(status, 200);
    assert_eq!(version_of(&base, "/once"), 3);
}

#[test]
fn bad_numbering_headers_and_unknown_clients_get_clear_errors_and_apply_nothing() {
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(leader).url();
    let url = format!("{base}/v1/kv/guarded");
    type Case = (Vec<(&'static str, String)>, u16, &'static str);
    let cases: [Case; 3] = [
        (vec![("X-Rafting-Client", "7".into())], 400, "bad_request"),
        (
            numbered(7, 1)
                .into_iter()
                .take(1)
                .chain([("X-Rafting-Sequence", "x".to_string())])
                .collect(),
            400,
            "bad_request",
        ),
        (numbered(987_654, 1), 409, "unknown_client"),
    ];
    for (headers, expected_status, expected_code) in cases {
        let (status, body) = request_with_headers("PUT", &url, &headers, b"v");
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, answer["code"].as_str()),
            (expected_status, Some(expected_code)),
            "{answer}"
        );
    }
    let (status, _) = request("GET", &url, b"");
    assert_eq!(status, 404, "nothing was applied");
}
