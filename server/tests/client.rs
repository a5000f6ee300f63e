//! The client commands against a real one-node cluster: `kv put` from standard input (binary
//! safe), `kv txn`, and `session create|keepalive|close`.

mod common;

use common::{TestCluster, request};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `rafting ARGUMENTS... --endpoint URL` with `input` on its standard input.
fn rafting(endpoint: &str, arguments: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .args(arguments)
        .args(["--endpoint", endpoint])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn answer(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `kv put KEY` with no VALUE, or with `-`, stores standard input byte for byte (NUL, 0xff
/// and a trailing newline included); a VALUE argument still works as before.
#[test]
fn kv_put_reads_the_value_from_stdin_when_it_is_omitted_or_a_dash() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(15));
    let endpoint = cluster.url(0);
    let binary = [0u8, 1, 0xff, b'\n', b'x', b'\n'];
    answer(&rafting(&endpoint, &["kv", "put", "/bin"], &binary));
    assert_eq!(
        request("GET", &format!("{endpoint}/v1/kv/bin"), b""),
        (200, binary.to_vec())
    );
    answer(&rafting(
        &endpoint,
        &["kv", "put", "/dash", "-"],
        b"from stdin",
    ));
    assert_eq!(
        request("GET", &format!("{endpoint}/v1/kv/dash"), b""),
        (200, b"from stdin".to_vec())
    );
    answer(&rafting(
        &endpoint,
        &["kv", "put", "/arg", "text"],
        b"ignored",
    ));
    assert_eq!(
        request("GET", &format!("{endpoint}/v1/kv/arg"), b""),
        (200, b"text".to_vec())
    );
}

/// `kv txn` posts its JSON (an argument, or standard input) to /v1/txn and prints the answer;
/// a transaction whose comparison fails exits 1.
#[test]
fn kv_txn_runs_a_transaction_from_an_argument_or_stdin() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(15));
    let endpoint = cluster.url(0);
    let create = r#"{"compare":[{"key":"/t","version":0,"relation":"equal"}],
        "success":[{"op":"put","key":"/t","value":"one"}],"failure":[]}"#;
    let first = answer(&rafting(&endpoint, &["kv", "txn", create], b""));
    assert_eq!(first["succeeded"], true, "{first}");
    let again = rafting(&endpoint, &["kv", "txn"], create.as_bytes());
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["succeeded"], false, "{again}");
    assert_eq!(
        request("GET", &format!("{endpoint}/v1/kv/t"), b""),
        (200, b"one".to_vec())
    );
}

/// `session create --ttl-ms N` opens a session, `session keepalive ID` renews it and
/// `session close ID` ends it, deleting the keys bound to it.
#[test]
fn session_commands_create_keep_alive_and_close_a_session() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(15));
    let endpoint = cluster.url(0);
    let created = answer(&rafting(
        &endpoint,
        &["session", "create", "--ttl-ms", "10000"],
        b"",
    ));
    let session = created["session"]
        .as_u64()
        .expect("a session id")
        .to_string();
    answer(&rafting(
        &endpoint,
        &["kv", "put", "/ephemeral", "x", "--session", &session],
        b"",
    ));
    let renewed = answer(&rafting(
        &endpoint,
        &["session", "keepalive", &session],
        b"",
    ));
    assert_eq!(renewed["session"].to_string(), session, "{renewed}");
    let closed = answer(&rafting(&endpoint, &["session", "close", &session], b""));
    assert_eq!(closed["keys_deleted"], 1, "{closed}");
    assert_eq!(
        request("GET", &format!("{endpoint}/v1/kv/ephemeral"), b"").0,
        404
    );
}

/// `kv put` retries on the next endpoint when one cannot be reached, numbering the write on a
/// client record of its own so that no attempt applies twice.
#[test]
fn kv_put_goes_on_to_the_next_endpoint_and_applies_once() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(15));
    let live = cluster.url(0);
    // Nothing listens on a port we just closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoints = format!("http://{closed},{live}");
    let written = answer(&rafting(&endpoints, &["kv", "put", "/once", "v"], b""));
    assert_eq!(written["version"], 1, "{written}");
    let (status, _) = request("GET", &format!("{live}/v1/kv/once"), b"");
    assert_eq!(status, 200);
}
