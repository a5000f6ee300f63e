//! Fail-stop with real processes: a node whose loop dies ends its process with a non-zero
//! exit code and the panic in `node.log`, instead of staying up half-alive (issue 10, item 1).

mod common;

use common::{TestCluster, put_retrying, request};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);
/// The exit code of a node whose essential thread died (`fail_stop::EXIT_CODE_THREAD_DIED`).
const EXIT_CODE_THREAD_DIED: i32 = 70;

/// Proves the guard and the fail-stop: without the test variable the panic route does not
/// exist (404); with it, a panic injected into the node loop of a serving node makes the
/// process exit with code 70 within seconds, and `node.log` holds the panic's message with
/// the thread's name. Before the fix the process stayed up, answering 503 to every request
/// and 200 to `/v1/health`, and exited 0 on SIGTERM.
#[test]
fn a_panic_in_the_node_loop_ends_the_process_with_the_panic_in_node_log() {
    let mut cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.node(1).url();
    let (status, _) = request("POST", &format!("{base}/v1/debug/panic"), b"");
    assert_eq!(
        status, 404,
        "the panic route is off unless the test variable is set"
    );

    let node = cluster.node_mut(1);
    node.terminate(Duration::from_secs(10));
    node.spawn_with_environment(&[("RAFTING_TEST_PANIC_ROUTE", "1")]);
    cluster.wait_for_leader(ELECTION_WAIT);
    put_retrying(
        &base,
        "/before",
        "v",
        Instant::now() + Duration::from_secs(10),
    );
    let (status, body) = request("POST", &format!("{base}/v1/debug/panic"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let node = cluster.node_mut(1);
    let exit = node
        .wait_for_exit(Duration::from_secs(10))
        .expect("the node stays up after its loop died");
    assert_eq!(exit.code(), Some(EXIT_CODE_THREAD_DIED), "{exit:?}");
    let log = node.node_log();
    assert!(
        log.contains("injected panic: a test asked the node loop to die"),
        "the panic is not in node.log:\n{log}"
    );
    assert!(log.contains("thread=\"node\""), "{log}");
    assert!(log.contains("has died"), "{log}");
}
