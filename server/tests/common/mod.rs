//! A cluster of real `rafting node` processes on free loopback ports, for the integration
//! tests, and a tiny HTTP client that follows the API's 307 redirects to the leader.
//!
//! Timing is short (heartbeat 50 ms, elections 300–600 ms) so failover tests stay fast.
//! Every process still running when the cluster is dropped is killed.

#![allow(dead_code)]

use serde_json::Value;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct TestNode {
    pub id: u64,
    pub http: SocketAddr,
    pub udp: SocketAddr,
    pub arguments: Vec<String>,
    pub child: Option<Child>,
    pub directory: PathBuf,
}

impl TestNode {
    /// The snapshot files in this node's write-ahead log directory.
    pub fn snapshot_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.directory.join("wal")) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
            .collect()
    }

    /// Damages every snapshot file of this node (one bit of its last byte, which its checksum
    /// covers).
    pub fn damage_snapshot_files(&self) {
        for path in self.snapshot_files() {
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x10;
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    _data: tempfile::TempDir,
}

/// A loopback HTTP (TCP) and UDP address pair, both free now, on one port number below the
/// kernel's ephemeral range (32768–60999 by default).
///
/// Ports from `bind(0)` come from that range, so a port a killed node let go of could be
/// handed to another test's socket before the node restarts on it ("Address already in use").
/// Ports here are taken from a counter shared by this test process, starting at an offset
/// derived from the process id, so two tests never pick the same one and no `bind(0)` does.
pub fn free_address_pair() -> (SocketAddr, SocketAddr) {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (Ok(_http), Ok(_udp)) = (TcpListener::bind(address), UdpSocket::bind(address)) else {
            continue;
        };
        return (address, address);
    }
    panic!("no free loopback port pair below the ephemeral range");
}

impl TestCluster {
    /// Starts `size` nodes and returns once every process is spawned (not yet elected).
    pub fn start(size: u64) -> TestCluster {
        TestCluster::start_with(size, &[])
    }

    /// Starts `size` nodes, each with `extra` arguments after the usual ones.
    pub fn start_with(size: u64, extra: &[String]) -> TestCluster {
        let data = tempfile::tempdir().unwrap();
        let addresses: Vec<(SocketAddr, SocketAddr)> =
            (0..size).map(|_| free_address_pair()).collect();
        let nodes = (1..=size)
            .map(|id| {
                let directory = data.path().join(format!("node-{id}"));
                let mut arguments = node_arguments(id, &addresses, &directory);
                arguments.extend(extra.iter().cloned());
                let (http, udp) = addresses[id as usize - 1];
                let mut node = TestNode {
                    id,
                    http,
                    udp,
                    arguments,
                    child: None,
                    directory,
                };
                node.spawn();
                node
            })
            .collect();
        TestCluster { nodes, _data: data }
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[id as usize - 1]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        &mut self.nodes[id as usize - 1]
    }

    /// Waits until a running node says it leads, and returns its id.
    pub fn wait_for_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Some(status) = node.status()
                    && status["role"] == "leader"
                {
                    return node.id;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no leader within {timeout:?}");
    }

    /// Starts node `id` (the next one, after the cluster's) on fresh addresses and an empty
    /// data directory, joining the running cluster: the cluster's timing, `--initial-cluster-
    /// state existing`, and `extra` (such as `--join URL`, or `--peer` flags). Not a member
    /// until the cluster adds it.
    pub fn start_new_node(&mut self, extra: &[String]) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let (http, udp) = free_address_pair();
        let directory = self._data.path().join(format!("node-{id}"));
        let mut arguments = node_arguments(1, &[(http, udp)], &directory);
        arguments[2] = id.to_string();
        let state = arguments
            .iter()
            .position(|argument| argument == "--initial-cluster-state")
            .expect("the usual arguments name the initial state");
        arguments[state + 1] = "existing".to_owned();
        arguments.extend(extra.iter().cloned());
        let mut node = TestNode {
            id,
            http,
            udp,
            arguments,
            child: None,
            directory,
        };
        node.spawn();
        self.nodes.push(node);
        id
    }

    /// `--peer` flags naming the nodes `ids` of this cluster.
    pub fn peer_flags(&self, ids: &[u64]) -> Vec<String> {
        ids.iter()
            .flat_map(|&id| {
                let node = self.node(id);
                [
                    "--peer".to_owned(),
                    format!("{id}={},{}", node.udp, node.http),
                ]
            })
            .collect()
    }

    /// Base URL of some running node, in turn by `index`.
    pub fn url(&self, index: usize) -> String {
        let running: Vec<&TestNode> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        format!("http://{}", running[index % running.len()].http)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

fn node_arguments(id: u64, addresses: &[(SocketAddr, SocketAddr)], data: &Path) -> Vec<String> {
    let (http, udp) = addresses[id as usize - 1];
    let mut arguments: Vec<String> = [
        "node",
        "--id",
        &id.to_string(),
        "--data",
        &data.display().to_string(),
        "--udp",
        &udp.to_string(),
        "--http",
        &http.to_string(),
        "--cluster-id",
        "42",
        "--heartbeat-interval-ms",
        "50",
        "--election-timeout-ms-min",
        "300",
        "--election-timeout-ms-max",
        "600",
        "--request-timeout-ms",
        "3000",
        "--initial-cluster-state",
        "new",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (index, (peer_http, peer_udp)) in addresses.iter().enumerate() {
        let peer = index as u64 + 1;
        if peer != id {
            arguments.push("--peer".into());
            arguments.push(format!("{peer}={peer_udp},{peer_http}"));
        }
    }
    arguments
}

impl TestNode {
    pub fn spawn(&mut self) {
        self.spawn_with_environment(&[]);
    }

    /// Starts the process with extra environment variables.
    pub fn spawn_with_environment(&mut self, environment: &[(&str, &str)]) {
        std::fs::create_dir_all(&self.directory).unwrap();
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.directory.join("console.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rafting"))
            .args(&self.arguments)
            .env("RUST_LOG", "info")
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the node is running");
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the node did not stop within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn status(&self) -> Option<Value> {
        let (status, body) = request("GET", &format!("{}/v1/status", self.url()), b"");
        (status == 200).then(|| serde_json::from_slice(&body).ok())?
    }

    /// Waits up to `timeout` for the process to end on its own; `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("the node was started");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The node's own log, `node.log` in its data directory.
    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.directory.join("node.log")).unwrap_or_default()
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.directory.join("console.log")).unwrap_or_default()
    }
}

/// One HTTP request, following 307s with the same method and body. Status 0 means the
/// connection failed.
pub fn request(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    request_with_headers(method, url, &[], body)
}

/// [`request`] with extra headers (sent again on every redirect).
pub fn request_with_headers(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .redirects(0)
        .build();
    let mut url = url.to_owned();
    for _ in 0..5 {
        let mut call = agent.request(method, &url);
        for (name, value) in headers {
            call = call.set(name, value);
        }
        let result = if method == "GET" || method == "DELETE" {
            call.call()
        } else {
            call.send_bytes(body)
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(_) => return (0, Vec::new()),
        };
        let status = response.status();
        if status == 307
            && let Some(location) = response.header("Location")
        {
            url = location.to_owned();
            continue;
        }
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes);
        return (status, bytes);
    }
    (0, Vec::new())
}

/// Puts `key` = `value` through `base`, retrying while the cluster has no leader (503) or
/// the node is unreachable, until `deadline`. Panics on any other failure.
pub fn put_retrying(base: &str, key: &str, value: &str, deadline: Instant) {
    loop {
        let (status, body) = request("PUT", &format!("{base}/v1/kv{key}"), value.as_bytes());
        match status {
            200 => return,
            0 | 503 | 504 if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => panic!(
                "PUT {key} failed: {status} {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
}

/// Reads `key` linearizably through `base` (retrying while there is no leader).
pub fn get_retrying(base: &str, key: &str, deadline: Instant) -> (u16, Vec<u8>) {
    loop {
        let answer = request("GET", &format!("{base}/v1/kv{key}"), b"");
        match answer.0 {
            0 | 503 | 504 if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => return answer,
        }
    }
}

/// The sum of every `rafting_datagrams_dropped_total` series in a node's metrics.
pub fn datagrams_dropped(base: &str) -> u64 {
    let (_, body) = request("GET", &format!("{base}/metrics"), b"");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("rafting_datagrams_dropped_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A node's `rafting_datagrams_dropped_total{reason="REASON"}`.
pub fn datagrams_dropped_for(base: &str, reason: &str) -> u64 {
    let (_, body) = request("GET", &format!("{base}/metrics"), b"");
    let series = format!("rafting_datagrams_dropped_total{{reason=\"{reason}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Reads one HTTP answer from a raw keep-alive connection: its status and its body (framed by
/// `Content-Length`).
pub fn raw_answer(reader: &mut std::io::BufReader<std::net::TcpStream>) -> (u16, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, body)
}
