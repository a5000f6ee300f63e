//! `rafting dev` as a user runs it: a real supervisor process and its real node processes.
//! It refuses ports in use before starting anything, fails when a node does not start, and
//! never leaves a node behind: not on SIGKILL, not on SIGHUP, not on a closed stdout.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

const NODES: u16 = 3;
const UDP_PORT_OFFSET: u16 = 100;
const START_WAIT: Duration = Duration::from_secs(30);

/// A first HTTP port P such that P..P+2 (TCP) and P+100..P+102 (UDP) are all free now.
fn free_port_base() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let offset = NEXT.fetch_add(7, Ordering::Relaxed);
        let base = 20_000 + (std::process::id() as u16 % 97) * 150 + offset % 3_000;
        let free = (0..NODES).all(|i| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).is_ok()
                && UdpSocket::bind((Ipv4Addr::LOCALHOST, base + UDP_PORT_OFFSET + i)).is_ok()
        });
        if free {
            return base;
        }
    }
}

fn dev_command(port: u16, data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rafting"));
    command
        .args([
            "dev",
            "--nodes",
            "3",
            "--http-port",
            &port.to_string(),
            "--data",
        ])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A running `rafting dev`, killed when dropped.
struct Dev {
    child: Child,
    port: u16,
}

impl Dev {
    /// Starts dev and reads its stdout until the banner says a leader is elected.
    fn start(data: &Path) -> (Dev, BufReader<ChildStdout>) {
        let port = free_port_base();
        let mut child = dev_command(port, data).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("RAFTiNG dev cluster"),
            "dev did not start: {line:?}"
        );
        (Dev { child, port }, stdout)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), signal) };
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dev did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ids of the processes whose parent is `parent`, from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if process_field(pid, 1).and_then(|ppid| ppid.parse().ok()) == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Field `index` after the command name of /proc/PID/stat (0: state, 1: parent id).
fn process_field(pid: i32, index: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(index).map(str::to_owned)
}

/// Whether the process has ended (gone, or a zombie nobody has reaped yet).
fn ended(pid: i32) -> bool {
    process_field(pid, 0).is_none_or(|state| state == "Z")
}

fn wait_until_ended(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !pids.iter().all(|&pid| ended(pid)) {
        let alive: Vec<i32> = pids.iter().copied().filter(|&pid| !ended(pid)).collect();
        assert!(
            Instant::now() < deadline,
            "nodes {alive:?} still run {timeout:?} after dev ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With a first dev cluster running, a second one on the same ports (another DIR) starts
/// nothing: it exits non-zero at once, naming each port in use and the node process holding
/// it, and does not report the first cluster's leader as its own.
#[test]
fn a_second_dev_on_ports_in_use_fails_naming_the_port_and_its_holder() {
    let first_data = tempfile::tempdir().unwrap();
    let (first, _stdout) = Dev::start(first_data.path());
    let second_data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = dev_command(first.port, second_data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "exit {:?}", output.status);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!stdout.contains("leader is node"), "stdout: {stdout}");
    let http = first.port;
    let udp = first.port + UDP_PORT_OFFSET + 2;
    assert!(
        stderr.contains(&format!("TCP port {http} (node 1's HTTP): held by pid")),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!("UDP port {udp} (node 3's UDP): held by pid")),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("rafting node --id 1"), "stderr: {stderr}");
    assert!(
        !second_data.path().join("node-1").exists(),
        "a node was started"
    );
}

/// A second dev on the same DIR (other ports) is refused by the DIR's lock, naming the first
/// dev's pid, before any node of the running cluster is touched.
#[test]
fn a_second_dev_on_a_directory_in_use_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let (first, _stdout) = Dev::start(data.path());
    let output = dev_command(free_port_base(), data.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "in use by another `rafting dev` (pid {})",
            first.pid()
        )),
        "stderr: {stderr}"
    );
}

/// A node that cannot start (its log file's path is taken by a folder) makes dev stop the
/// others and exit non-zero, saying which node failed; no node is left running.
#[test]
fn a_node_that_fails_to_start_makes_dev_exit_non_zero() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("node-2").join("node.log")).unwrap();
    let mut child = dev_command(free_port_base(), data.path()).spawn().unwrap();
    let dev_pid = child.id() as i32;
    let deadline = Instant::now() + START_WAIT;
    let mut nodes = Vec::new();
    let status = loop {
        for pid in children_of(dev_pid) {
            if !nodes.contains(&pid) {
                nodes.push(pid);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dev is still running");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "exit {status:?}; stderr: {stderr}");
    assert!(
        stderr.contains("node 2 failed to start"),
        "stderr: {stderr}"
    );
    wait_until_ended(&nodes, Duration::from_secs(1));
}

/// kill -9 of dev (no chance to clean up) still takes its nodes down within a few seconds:
/// each was started with a parent-death signal.
#[test]
fn killing_dev_with_sigkill_takes_its_nodes_down() {
    let data = tempfile::tempdir().unwrap();
    let (mut dev, _stdout) = Dev::start(data.path());
    let nodes = children_of(dev.pid());
    assert_eq!(nodes.len(), usize::from(NODES), "children: {nodes:?}");
    dev.signal(libc::SIGKILL);
    dev.wait(Duration::from_secs(5));
    wait_until_ended(&nodes, Duration::from_secs(5));
}

/// SIGHUP (the terminal closed) stops dev like Ctrl-C: every node stops cleanly, exit 0. (The
/// banner's hints name the binary by its real path, since `rafting` may not be on the PATH,
/// and the nodes' console.log has neither colour codes nor Debug formatting.)
#[test]
fn sighup_stops_dev_and_its_nodes_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let (mut dev, mut stdout) = Dev::start(data.path());
    let nodes = children_of(dev.pid());
    dev.signal(libc::SIGHUP);
    let status = dev.wait(Duration::from_secs(20));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        status.success(),
        "exit {status:?}; stderr: {}",
        dev.stderr()
    );
    for id in 1..=NODES {
        assert!(
            rest.contains(&format!("node {id} stopped cleanly")),
            "{rest}"
        );
    }
    // The banner points at the dashboard of the first node.
    let dashboard = format!("Dashboard: http://127.0.0.1:{}/ui", dev.port);
    assert!(rest.contains(&dashboard), "{rest}");
    wait_until_ended(&nodes, Duration::from_secs(1));
}

/// `rafting dev | head -3`: once the reader of its stdout is gone, dev neither panics nor
/// loses its nodes; SIGTERM still stops them all cleanly (those lines go nowhere) and dev
/// exits 0.
#[test]
fn a_closed_stdout_does_not_panic_dev() {
    let data = tempfile::tempdir().unwrap();
    let (mut dev, stdout) = Dev::start(data.path());
    let nodes = children_of(dev.pid());
    drop(stdout);
    dev.signal(libc::SIGTERM);
    let status = dev.wait(Duration::from_secs(20));
    let stderr = dev.stderr();
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
    wait_until_ended(&nodes, Duration::from_secs(1));
}

/// `rafting dev add` grows a running dev cluster: node 4 starts on the next ports with
/// `--join`, is added as a learner, caught up and promoted (the members' view lists it as a
/// voter), and stops cleanly on SIGTERM.
#[test]
fn dev_add_grows_the_running_cluster_by_one_voter() {
    let data = tempfile::tempdir().unwrap();
    let (dev, _stdout) = Dev::start(data.path());
    let mut add = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .args(["dev", "add", "--http-port", &dev.port.to_string(), "--data"])
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let members_url = format!("http://127.0.0.1:{}/v1/cluster/members", dev.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let voters = ureq::get(&members_url)
            .call()
            .ok()
            .and_then(|response| response.into_json::<serde_json::Value>().ok())
            .map(|members| members["voters"].clone());
        if voters
            .as_ref()
            .is_some_and(|voters| voters == &serde_json::json!([1, 2, 3, 4]))
        {
            break;
        }
        if Instant::now() >= deadline {
            let _ = add.kill();
            let output = add.wait_with_output().unwrap();
            panic!(
                "node 4 never became a voter: {voters:?}; `dev add` said: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(add.id() as i32, libc::SIGTERM) };
    let output = {
        let deadline = Instant::now() + Duration::from_secs(20);
        while add.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "dev add did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        add.wait_with_output().unwrap()
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("node 4 stopped cleanly"), "{stdout}");
}
