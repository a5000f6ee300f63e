//! Many clients on one node (issue 17): a client that never reads its answers blocks neither
//! the node nor anyone else.

mod common;

use common::{TestCluster, raw_answer as answer, request};
use serde_json::Value;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

fn revision_of(body: &[u8]) -> u64 {
    let json: Value = serde_json::from_slice(body).unwrap();
    json["revision"].as_u64().unwrap()
}

/// Proves that a stalled watcher harms no one: one client pipelines 60 watches whose answer
/// is 1 MB of changes (60 MB in all) and never reads, so its answers pile up until the node cannot write
/// them; meanwhile 20 watchers on another prefix each receive each of 10 puts within a
/// second of its acknowledgement, every put is answered within a second, and the node stays
/// healthy. Before issue 17 a watcher held a thread; now the node buffers one answer for the
/// stalled client and reads nothing more from it.
#[test]
fn a_watcher_that_never_reads_blocks_neither_the_node_nor_other_clients() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let address = base.trim_start_matches("http://").to_owned();

    let big = vec![b'x'; 250_000];
    let mut big_revision = 0;
    for key in 0..4 {
        let (status, body) = request("PUT", &format!("{base}/v1/kv/stalled/big{key}"), &big);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        if big_revision == 0 {
            big_revision = revision_of(&body);
        }
    }
    let mut stalled = TcpStream::connect(&address).unwrap();
    stalled
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let watch_big = format!(
        "GET /v1/kv/stalled?watch&since={big_revision}&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    for _ in 0..60 {
        // Once the node stops reading from it, this client's own sends block and time out.
        if stalled.write_all(watch_big.as_bytes()).is_err() {
            break;
        }
    }

    let (status, body) = request("PUT", &format!("{base}/v1/kv/others/start"), b"0");
    assert_eq!(status, 200);
    let since = revision_of(&body) + 1;
    let changes = 10;
    let watchers: Vec<_> = (0..20)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&address).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut since = since;
                let mut received = Vec::new();
                while received.len() < changes {
                    let poll = format!(
                        "GET /v1/kv/others?watch&since={since}&timeout_ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n"
                    );
                    writer.write_all(poll.as_bytes()).unwrap();
                    let (status, body) = answer(&mut reader);
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    let batch: Value = serde_json::from_slice(&body).unwrap();
                    for event in batch["events"].as_array().unwrap() {
                        received.push((event["revision"].as_u64().unwrap(), Instant::now()));
                    }
                    since = batch["next_since"].as_u64().unwrap();
                }
                received
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let mut acknowledged = Vec::new();
    for change in 0..changes {
        let asked = Instant::now();
        let (status, body) = request("PUT", &format!("{base}/v1/kv/others/{change}"), b"v");
        assert_eq!(status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "a put took {:?}",
            asked.elapsed()
        );
        acknowledged.push((revision_of(&body), Instant::now()));
        std::thread::sleep(Duration::from_millis(100));
    }
    for watcher in watchers {
        let received = watcher.join().unwrap();
        for (revision, at) in &acknowledged {
            let (_, delivered) = received
                .iter()
                .find(|(got, _)| got == revision)
                .unwrap_or_else(|| panic!("revision {revision} never delivered"));
            let late = delivered.saturating_duration_since(*at);
            assert!(late < Duration::from_secs(1), "delivered {late:?} late");
        }
    }
    let (status, _) = request("GET", &format!("{base}/v1/health"), b"");
    assert_eq!(status, 200);
    drop(stalled);
}
