//! `rafting kv watch` given several endpoints outlives the node it watches through.

mod common;

use common::{TestCluster, put_retrying};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

/// Waits until `path` holds `needle`, and returns its text.
fn wait_for_output(path: &std::path::Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the watch output:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Proves the watch's failover (issue 10, item 7): a `kv watch` given three endpoints
/// (comma-separated) reports a change through the first node; after that node is killed
/// (kill -9) it resumes on the next from where it stopped, reporting the next change once
/// and the first one only once. Before, the watch took one endpoint and died with it.
#[test]
fn kv_watch_resumes_on_the_next_endpoint_when_its_node_dies() {
    let mut cluster = TestCluster::start(3);
    cluster.wait_for_leader(ELECTION_WAIT);
    let endpoints: Vec<String> = cluster.nodes.iter().map(|node| node.url()).collect();
    let output_directory = tempfile::tempdir().unwrap();
    let output_path = output_directory.path().join("watch.out");
    let output = std::fs::File::create(&output_path).unwrap();
    let errors = std::fs::File::create(output_directory.path().join("watch.err")).unwrap();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .args(["kv", "watch", "/w", "--endpoint", &endpoints.join(",")])
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .unwrap();
    // The watch reports changes after the revision current when it starts: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(30);
    put_retrying(&endpoints[1], "/w/before", "1", deadline);
    wait_for_output(&output_path, "/w/before", Duration::from_secs(10));

    cluster.node_mut(1).kill();
    put_retrying(&endpoints[1], "/w/after", "2", deadline);
    let text = wait_for_output(&output_path, "/w/after", Duration::from_secs(20));
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(text.matches("/w/before").count(), 1, "{text}");
    assert_eq!(text.matches("/w/after").count(), 1, "{text}");
    assert!(text.contains("put\t/w/after\t2"), "{text}");
}
