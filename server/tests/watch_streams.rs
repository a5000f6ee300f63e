//! Watch streams (issue 17): one request that stays open and carries every change under a
//! prefix as a line of JSON, resumable after a reconnect, refused clearly when asked wrongly,
//! and cut (not waited for) when its client does not read.

mod common;

use common::{TestCluster, request};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

fn revision_of(body: &[u8]) -> u64 {
    let json: Value = serde_json::from_slice(body).unwrap();
    json["revision"].as_u64().unwrap()
}

fn put(base: &str, key: &str, value: &[u8]) -> u64 {
    let (status, body) = request("PUT", &format!("{base}/v1/kv{key}"), value);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    revision_of(&body)
}

/// A watch stream read line by line from a raw connection, decoding the chunked body.
struct Stream {
    reader: BufReader<TcpStream>,
    /// Decoded body bytes not yet returned as a line.
    body: Vec<u8>,
}

impl Stream {
    /// Opens `target` and checks that the answer is a 200 stream.
    fn open(address: &str, target: &str) -> Stream {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        write!(writer, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("transfer-encoding: chunked"), "{head}");
        assert!(lower.contains("application/x-ndjson"), "{head}");
        Stream {
            reader,
            body: Vec::new(),
        }
    }

    /// The next line of JSON; `None` when the body ended cleanly.
    fn line(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).unwrap();
            assert_eq!(&data[size..], b"\r\n");
            if size == 0 {
                return None;
            }
            self.body.extend_from_slice(&data[..size]);
        }
    }

    /// Lines until `count` events have come: the events (revision, key) and the last
    /// `next_since`.
    fn events(&mut self, count: usize) -> (Vec<(u64, String)>, u64) {
        let mut events = Vec::new();
        let mut next_since = 0;
        while events.len() < count {
            let line = self.line().expect("the stream ended");
            assert!(line.get("code").is_none(), "{line}");
            for event in line["events"].as_array().unwrap() {
                let key = event["key"].as_str().unwrap().to_owned();
                events.push((event["revision"].as_u64().unwrap(), key));
            }
            next_since = line["next_since"].as_u64().unwrap();
        }
        (events, next_since)
    }
}

/// Proves the stream's contract: the first line says where it starts; every change under the
/// prefix arrives once, in revision order, and none elsewhere; an idle stream reports
/// progress; and a client that reconnects with `since` = the last `next_since` it read gets
/// what it missed (in its first line) and nothing twice.
#[test]
fn a_stream_carries_every_change_in_order_and_resumes_after_a_reconnect() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let address = base.trim_start_matches("http://").to_owned();
    let before = put(&base, "/s/before", b"0");

    let mut stream = Stream::open(&address, "/v1/kv/s?watch&stream&progress_ms=200");
    let first = stream.line().unwrap();
    assert_eq!(first["events"], Value::Array(Vec::new()), "{first}");
    assert_eq!(first["next_since"].as_u64(), Some(before + 1), "{first}");

    let mut written = Vec::new();
    for index in 0..5 {
        put(&base, "/elsewhere", b"x");
        let key = format!("/s/{index}");
        written.push((put(&base, &key, b"v"), key));
    }
    let (events, next_since) = stream.events(5);
    assert_eq!(events, written);
    assert_eq!(next_since, written[4].0 + 1);

    // Idle: progress lines, with no events, at the stream's position.
    let idle = Instant::now();
    let progress = stream.line().unwrap();
    assert!(idle.elapsed() < Duration::from_secs(2));
    assert_eq!(progress["events"], Value::Array(Vec::new()), "{progress}");
    assert!(progress["next_since"].as_u64().unwrap() >= next_since);
    let resume_from = progress["next_since"].as_u64().unwrap();

    // The client goes away; changes happen; it comes back from where it stood.
    drop(stream);
    let mut missed = Vec::new();
    for index in 5..8 {
        let key = format!("/s/{index}");
        missed.push((put(&base, &key, b"v"), key));
    }
    let mut stream = Stream::open(
        &address,
        &format!("/v1/kv/s?watch&stream&since={resume_from}&progress_ms=60000"),
    );
    let (events, _) = stream.events(3);
    assert_eq!(events, missed);
    let later = (put(&base, "/s/later", b"v"), "/s/later".to_owned());
    let (events, _) = stream.events(1);
    assert_eq!(events, [later]);
}

/// Proves that parameters that do not fit a stream are refused with a clear 400 naming them,
/// before any stream opens.
#[test]
fn bad_stream_parameters_are_a_clear_400() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    for (query, named) in [
        ("watch&stream&timeout_ms=1000", "timeout_ms"),
        ("watch&stream&progress_ms=0", "progress_ms"),
        ("watch&stream&progress_ms=999999999", "progress_ms"),
        ("watch&progress_ms=100", "progress_ms"),
        ("watch&stream&since=abc", "since"),
        ("watch&stream&since=1&since=2", "since"),
    ] {
        let (status, body) = request("GET", &format!("{base}/v1/kv/s?{query}"), b"");
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400, "{query}: {json}");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {json}");
    }
}

/// Proves that a stream whose client never reads is cut without holding anyone up: one client
/// opens a stream on a prefix and never reads while 8 streams on the same prefix read; 48
/// changes of 250 KB (12 MB, more than the socket buffers and the node's per-stream bound
/// hold) each reach every reader within a second of their acknowledgement, every put is
/// answered within a second, and the stalled connection ends without the terminating chunk
/// (cut, not a clean end).
#[test]
fn a_stream_that_never_reads_is_cut_without_blocking_the_others() {
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let address = base.trim_start_matches("http://").to_owned();
    let start = put(&base, "/big/start", b"0");

    let mut stalled = TcpStream::connect(&address).unwrap();
    write!(
        stalled,
        "GET /v1/kv/big?watch&stream&since={} HTTP/1.1\r\nHost: x\r\n\r\n",
        start + 1
    )
    .unwrap();
    let changes = 48;
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = Stream::open(
                &address,
                &format!("/v1/kv/big?watch&stream&since={}", start + 1),
            );
            std::thread::spawn(move || {
                let mut received = Vec::new();
                while received.len() < changes {
                    let line = stream.line().expect("the stream ended");
                    assert!(line.get("code").is_none(), "{line}");
                    for event in line["events"].as_array().unwrap() {
                        received.push((event["revision"].as_u64().unwrap(), Instant::now()));
                    }
                }
                received
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let big = vec![b'x'; 250_000];
    let mut acknowledged = Vec::new();
    for change in 0..changes {
        let asked = Instant::now();
        let revision = put(&base, &format!("/big/{change}"), &big);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "a put took {:?}",
            asked.elapsed()
        );
        acknowledged.push((revision, Instant::now()));
    }
    for reader in readers {
        let received = reader.join().unwrap();
        let revisions: Vec<u64> = received.iter().map(|(revision, _)| *revision).collect();
        let expected: Vec<u64> = acknowledged.iter().map(|(revision, _)| *revision).collect();
        assert_eq!(revisions, expected);
        for ((_, delivered), (_, at)) in received.iter().zip(&acknowledged) {
            let late = delivered.saturating_duration_since(*at);
            assert!(late < Duration::from_secs(1), "delivered {late:?} late");
        }
    }

    // The stalled client finally reads: what the node had sent, then the end of the
    // connection, without the chunk that ends a body cleanly.
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        match stalled.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => bytes.extend_from_slice(&buffer[..read]),
        }
    }
    assert!(bytes.starts_with(b"HTTP/1.1 200"));
    assert!(
        bytes.len() < changes * big.len(),
        "the stalled stream got {} bytes: it was not cut",
        bytes.len()
    );
    assert!(!bytes.ends_with(b"\r\n0\r\n\r\n"), "a clean end, not a cut");
    let (status, _) = request("GET", &format!("{base}/v1/health"), b"");
    assert_eq!(status, 200);
}

/// Proves the client library's stream: `watch_stream` yields each change once, in order, and
/// carries on by itself across a restart of the node it was streaming from.
#[test]
fn the_client_library_streams_changes_and_resumes_across_a_node_restart() {
    let mut cluster = TestCluster::start(1);
    cluster.wait_for_leader(ELECTION_WAIT);
    let base = cluster.url(0);
    let start = put(&base, "/lib/start", b"0");
    let rafting = rafting_client::connect(&base).unwrap();
    let (sender, events) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let stream = rafting.watch_stream("/lib", Some(start + 1)).unwrap();
        for event in stream {
            if sender.send(event).is_err() {
                return;
            }
        }
    });
    let mut written = Vec::new();
    for index in 0..3 {
        let key = format!("/lib/{index}");
        written.push((put(&base, &key, b"v"), key));
    }
    let receive = |count: usize| -> Vec<(u64, String)> {
        (0..count)
            .map(|_| {
                let event = events
                    .recv_timeout(Duration::from_secs(20))
                    .expect("an event")
                    .expect("not an error");
                assert_eq!(event.value.as_deref(), Some(&b"v"[..]));
                (event.revision, event.key)
            })
            .collect()
    };
    assert_eq!(receive(3), written);

    cluster.node_mut(1).terminate(Duration::from_secs(10));
    cluster.node_mut(1).spawn();
    cluster.wait_for_leader(ELECTION_WAIT);
    let mut after = Vec::new();
    for index in 3..6 {
        let key = format!("/lib/{index}");
        after.push((put(&base, &key, b"v"), key));
    }
    assert_eq!(receive(3), after);
}
