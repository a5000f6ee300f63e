//! Opens many watch long polls on one prefix of one node, puts changes under that prefix, and
//! reports how long after each put every watcher received it (issue 17: 10,000 watchers, p99
//! under 100 ms), with the node's resident memory.
//!
//! ```text
//! cargo run --release -p rafting-server --example watch_flood -- \
//!     --watch 127.0.0.1:8001 --put 127.0.0.1:8001 --watchers 10000 --changes 20 --pid <node pid>
//! ```
//!
//! One thread drives every watcher with `mio` (a watcher is a socket and a small buffer, as on
//! the server); another puts a change every `--interval-ms` and records when each put was
//! sent and acknowledged, by the revision it got. A watcher that receives a change records the
//! delay from the put's acknowledgement (the commit, as the client sees it) and from its
//! sending, then polls again from `next_since` on the same connection. Only the first event of
//! each answer counts, the change the watcher was waiting for.
//!
//! With `--stream`, each watcher is one RAFTiNG watch stream (`?watch&stream`): one request,
//! one chunked answer that carries every change as a line of JSON.
//!
//! With `--etcd`, the same against etcd's v3 JSON gateway: each watcher is one HTTP
//! connection carrying one `POST /v3/watch` stream on the prefix (the gateway turns it into a
//! gRPC watch stream, as `etcdctl watch --prefix` opens one), and puts go to `/v3/kv/put`.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Options {
    watch: SocketAddr,
    put: SocketAddr,
    watchers: usize,
    changes: usize,
    interval: Duration,
    prefix: String,
    pid: Option<u32>,
    /// Watch and put through etcd's v3 JSON gateway instead (`POST /v3/watch` streams).
    etcd: bool,
    /// Watch with RAFTiNG's streams (`?watch&stream`) instead of long polls.
    stream: bool,
}

fn options() -> Options {
    let mut options = Options {
        watch: "127.0.0.1:8001".parse().unwrap(),
        put: "127.0.0.1:8001".parse().unwrap(),
        watchers: 10_000,
        changes: 20,
        interval: Duration::from_millis(1000),
        prefix: "/flood".into(),
        pid: None,
        etcd: false,
        stream: false,
    };
    let mut arguments: Vec<String> = std::env::args().skip(1).collect();
    if let Some(position) = arguments.iter().position(|a| a == "--etcd") {
        arguments.remove(position);
        options.etcd = true;
    }
    if let Some(position) = arguments.iter().position(|a| a == "--stream") {
        arguments.remove(position);
        options.stream = true;
    }
    for pair in arguments.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--watch" => options.watch = value.parse().expect("--watch host:port"),
            "--put" => options.put = value.parse().expect("--put host:port"),
            "--watchers" => options.watchers = value.parse().expect("--watchers N"),
            "--changes" => options.changes = value.parse().expect("--changes N"),
            "--interval-ms" => options.interval = Duration::from_millis(value.parse().unwrap()),
            "--prefix" => options.prefix = value,
            "--pid" => options.pid = Some(value.parse().expect("--pid PID")),
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// One blocking HTTP exchange on a fresh connection; returns the body.
fn exchange(address: SocketAddr, request: &str) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("receive");
    let start = find(&answer, b"\r\n\r\n").expect("a head") + 4;
    answer[start..].to_vec()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn etcd_put(address: SocketAddr, key: &str, value: &str) -> u64 {
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        base64(key.as_bytes()),
        base64(value.as_bytes())
    );
    let request = format!(
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(address, &request);
    let json: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON answer");
    json["header"]["revision"]
        .as_str()
        .and_then(|revision| revision.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {json}"))
}

/// The `POST /v3/watch` request of a stream on `prefix` (every key below it), from `since`.
fn etcd_watch_request(prefix: &str, since: u64) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let body = format!(
        r#"{{"create_request":{{"key":"{}","range_end":"{}","start_revision":"{since}"}}}}"#,
        base64(prefix.as_bytes()),
        base64(&end)
    );
    format!(
        "POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The revisions of the events in what an etcd watch stream sent so far, consuming them
/// (a pattern cut at the end of the buffer stays for the next read).
fn etcd_revisions(buffer: &mut Vec<u8>) -> Vec<u64> {
    const PATTERN: &[u8] = b"\"mod_revision\":\"";
    let mut revisions = Vec::new();
    let mut consumed = 0;
    while let Some(at) = find(&buffer[consumed..], PATTERN) {
        let start = consumed + at + PATTERN.len();
        let Some(length) = buffer[start..].iter().position(|&b| b == b'"') else {
            consumed += at;
            buffer.drain(..consumed);
            return revisions;
        };
        if let Ok(revision) = std::str::from_utf8(&buffer[start..start + length])
            .unwrap_or("")
            .parse()
        {
            revisions.push(revision);
        }
        consumed = start + length;
    }
    let keep = buffer.len().saturating_sub(PATTERN.len());
    buffer.drain(..keep.max(consumed).min(buffer.len()));
    revisions
}

fn put(address: SocketAddr, key: &str, value: &str) -> u64 {
    let request = format!(
        "PUT /v1/kv{key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{value}",
        value.len()
    );
    let body = exchange(address, &request);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
    json["revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("no revision in {json}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Watcher {
    stream: TcpStream,
    buffer: Vec<u8>,
    since: u64,
    connected: bool,
    outgoing: Vec<u8>,
    /// A stream's head has been read; `buffer` holds chunked body bytes.
    stream_head_read: bool,
    /// A stream's body decoded so far, up to a line not yet whole.
    lines: Vec<u8>,
}

impl Watcher {
    fn stream_request(&mut self, prefix: &str) {
        self.outgoing = format!(
            "GET /v1/kv{prefix}?watch&stream&since={}&progress_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n",
            self.since
        )
        .into_bytes();
    }

    /// The revisions of the events in what a stream sent so far, consuming its whole lines.
    fn stream_revisions(&mut self) -> Vec<u64> {
        if !self.stream_head_read {
            let Some(head_end) = find(&self.buffer, b"\r\n\r\n") else {
                return Vec::new();
            };
            let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "a stream failed: {head}");
            assert!(
                head.contains("transfer-encoding: chunked"),
                "not a stream: {head}"
            );
            self.buffer.drain(..head_end + 4);
            self.stream_head_read = true;
        }
        // Decode the whole chunks.
        while let Some(line_end) = find(&self.buffer, b"\r\n") {
            let size = std::str::from_utf8(&self.buffer[..line_end])
                .ok()
                .and_then(|text| usize::from_str_radix(text.trim(), 16).ok())
                .expect("a chunk size");
            assert!(size > 0, "a stream ended");
            if self.buffer.len() < line_end + 2 + size + 2 {
                break;
            }
            self.lines
                .extend_from_slice(&self.buffer[line_end + 2..line_end + 2 + size]);
            self.buffer.drain(..line_end + 2 + size + 2);
        }
        let mut revisions = Vec::new();
        while let Some(end) = self.lines.iter().position(|&b| b == b'\n') {
            let json: serde_json::Value =
                serde_json::from_slice(&self.lines[..end]).expect("a JSON line");
            self.lines.drain(..=end);
            assert!(json.get("code").is_none(), "a stream ended with {json}");
            for event in json["events"].as_array().into_iter().flatten() {
                revisions.push(event["revision"].as_u64().expect("a revision"));
            }
            if let Some(next_since) = json["next_since"].as_u64() {
                self.since = next_since;
            }
        }
        revisions
    }

    fn poll_request(&mut self, prefix: &str) {
        self.outgoing = format!(
            "GET /v1/kv{prefix}?watch&since={}&timeout_ms=120000 HTTP/1.1\r\nHost: x\r\n\r\n",
            self.since
        )
        .into_bytes();
    }

    fn flush(&mut self) -> bool {
        while !self.outgoing.is_empty() {
            match self.stream.write(&self.outgoing) {
                Ok(written) => {
                    self.outgoing.drain(..written);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == std::io::ErrorKind::NotConnected => return false,
                Err(error) => panic!("a watcher cannot send: {error}"),
            }
        }
        self.connected = true;
        true
    }

    /// A whole answer in the buffer: (first event's revision, next_since).
    fn answer(&mut self) -> Option<(Option<u64>, u64)> {
        let head_end = find(&self.buffer, b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("a Content-Length");
        if self.buffer.len() < head_end + length {
            return None;
        }
        let body: Vec<u8> = self
            .buffer
            .drain(..head_end + length)
            .skip(head_end)
            .collect();
        assert!(head.starts_with("http/1.1 200"), "a watch failed: {head}");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON batch");
        let first = json["events"]
            .as_array()
            .and_then(|events| events.first())
            .and_then(|event| event["revision"].as_u64());
        Some((first, json["next_since"].as_u64().expect("next_since")))
    }
}

/// When each change was put: revision -> (sent, acknowledged).
type Puts = Arc<Mutex<BTreeMap<u64, (Instant, Instant)>>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    let options = options();
    let put_change: fn(SocketAddr, &str, &str) -> u64 = if options.etcd { etcd_put } else { put };
    let start_revision = put_change(options.put, &format!("{}/start", options.prefix), "0");
    let mut poll = Poll::new().expect("poll");
    let mut watchers = Vec::with_capacity(options.watchers);
    for index in 0..options.watchers {
        let stream = TcpStream::connect(options.watch).expect("connect (raise ulimit -n)");
        let mut watcher = Watcher {
            stream,
            buffer: Vec::new(),
            since: start_revision + 1,
            connected: false,
            outgoing: Vec::new(),
            stream_head_read: false,
            lines: Vec::new(),
        };
        if options.etcd {
            watcher.outgoing = etcd_watch_request(&options.prefix, start_revision + 1);
        } else if options.stream {
            watcher.stream_request(&options.prefix);
        } else {
            watcher.poll_request(&options.prefix);
        }
        poll.registry()
            .register(
                &mut watcher.stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )
            .expect("register");
        watchers.push(watcher);
    }
    let puts: Puts = Arc::default();
    let mut events = Events::with_capacity(4096);
    let opened = Instant::now();
    // Let every watcher connect and send its poll before the first change.
    while watchers.iter().any(|w| !w.connected) && opened.elapsed() < Duration::from_secs(60) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for event in events.iter() {
            watchers[event.token().0].flush();
        }
    }
    let connected = watchers.iter().filter(|w| w.connected).count();
    eprintln!(
        "{connected} of {} watchers connected and polling after {:?}",
        options.watchers,
        opened.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = options.pid.and_then(|pid| rss_kib(pid, "VmRSS:"));
    let putter = {
        let puts = puts.clone();
        let (address, prefix, changes, interval) = (
            options.put,
            options.prefix.clone(),
            options.changes,
            options.interval,
        );
        std::thread::spawn(move || {
            for change in 0..changes {
                std::thread::sleep(interval);
                let sent = Instant::now();
                let revision = put_change(address, &format!("{prefix}/key{change}"), "changed");
                let acknowledged = Instant::now();
                puts.lock().unwrap().insert(revision, (sent, acknowledged));
            }
        })
    };
    let mut from_ack_ms = Vec::new();
    let mut from_sent_ms = Vec::new();
    let mut received = Vec::new();
    let expected = options.watchers * options.changes;
    let deadline = Instant::now() + options.interval * (options.changes as u32 + 10);
    let mut rss_peak = 0;
    while received.len() < expected && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .expect("poll");
        let now = Instant::now();
        for event in events.iter() {
            let watcher = &mut watchers[event.token().0];
            watcher.flush();
            let mut chunk = [0u8; 4096];
            loop {
                match watcher.stream.read(&mut chunk) {
                    Ok(0) => panic!(
                        "the node closed a watcher; it had sent: {}",
                        String::from_utf8_lossy(&watcher.buffer[..watcher.buffer.len().min(300)])
                    ),
                    Ok(read) => watcher.buffer.extend_from_slice(&chunk[..read]),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => panic!("a watcher cannot read: {error}"),
                }
            }
            if options.etcd {
                let since = watcher.since;
                for revision in etcd_revisions(&mut watcher.buffer) {
                    if revision >= since {
                        received.push((revision, now));
                        watcher.since = revision + 1;
                    }
                }
                continue;
            }
            if options.stream {
                for revision in watcher.stream_revisions() {
                    received.push((revision, now));
                }
                continue;
            }
            while let Some((first, next_since)) = watcher.answer() {
                if let Some(revision) = first {
                    received.push((revision, now));
                }
                watcher.since = next_since;
                watcher.poll_request(&options.prefix);
                watcher.flush();
            }
        }
        if let Some(rss) = options.pid.and_then(|pid| rss_kib(pid, "VmRSS:")) {
            rss_peak = rss_peak.max(rss);
        }
    }
    putter.join().expect("the putter");
    let puts = puts.lock().unwrap();
    for (revision, at) in &received {
        if let Some((sent, acknowledged)) = puts.get(revision) {
            from_ack_ms.push(at.saturating_duration_since(*acknowledged).as_secs_f64() * 1e3);
            from_sent_ms.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
        }
    }
    from_ack_ms.sort_by(f64::total_cmp);
    from_sent_ms.sort_by(f64::total_cmp);
    let mode = match (options.etcd, options.stream) {
        (true, _) => "etcd watch streams",
        (false, true) => "streams",
        (false, false) => "long polls",
    };
    println!(
        "mode={mode} watchers={} changes={} deliveries={} of {expected}",
        options.watchers,
        options.changes,
        from_ack_ms.len()
    );
    println!(
        "latency from put acknowledged: p50={:.1} ms p99={:.1} ms max={:.1} ms",
        percentile(&from_ack_ms, 0.5),
        percentile(&from_ack_ms, 0.99),
        from_ack_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "latency from put sent:         p50={:.1} ms p99={:.1} ms max={:.1} ms",
        percentile(&from_sent_ms, 0.5),
        percentile(&from_sent_ms, 0.99),
        from_sent_ms.last().copied().unwrap_or(f64::NAN)
    );
    if let Some(pid) = options.pid {
        println!(
            "node pid {pid}: VmRSS before changes {} KiB, peak during {} KiB, VmHWM {} KiB",
            rss_before.unwrap_or(0),
            rss_peak,
            rss_kib(pid, "VmHWM:").unwrap_or(0)
        );
    }
}
