//! The client library's examples as their users run them, against a real 3-node cluster: four
//! `farm_worker` echo servers register themselves, a `farm_caller` picks among them round robin
//! and Monte Carlo; the node the caller talks to is killed, then two workers are, with kill -9.
//! The caller keeps working through the other nodes, and its errors stop within TTL + 1 s.

mod common;

use common::{TestCluster, free_address_pair};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);
/// The workers' session TTL (`farm_worker` registers with 1 s).
const TTL: Duration = Duration::from_secs(1);

/// The path of a client example, built by `cargo test --workspace`; built here when this test
/// runs alone.
fn example(name: &str) -> PathBuf {
    let rafting = PathBuf::from(env!("CARGO_BIN_EXE_rafting"));
    let path = rafting.parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "rafting-client", "--examples"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the examples build");
    }
    path
}

/// A killed-on-drop child process.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &PathBuf, arguments: &[&str], endpoints: &str) -> Process {
    let child = Command::new(program)
        .args(arguments)
        .env("RAFTING_ENDPOINTS", endpoints)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example starts");
    Process(child)
}

/// One caller line: when it was read, and the two calls' results.
struct Line {
    at: Instant,
    calls: [String; 2],
}

fn lines(process: &mut Process) -> Receiver<Line> {
    let stdout = process.0.stdout.take().unwrap();
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Some((round_robin, monte_carlo)) = line.split_once("monte carlo:") else {
                continue;
            };
            let round_robin = round_robin.trim_start_matches("round robin:").trim();
            let calls = [round_robin.to_owned(), monte_carlo.trim().to_owned()];
            if sender
                .send(Line {
                    at: Instant::now(),
                    calls,
                })
                .is_err()
            {
                return;
            }
        }
    });
    receiver
}

/// The worker that served a call, if it succeeded.
fn served_by(call: &str) -> Option<&str> {
    call.strip_prefix("served by ")
}

/// Reads caller lines until `done` says so, or fails after `timeout`.
fn read_until(
    receiver: &Receiver<Line>,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Line) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = receiver
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{what} within {timeout:?}"));
        if done(&line) {
            return;
        }
    }
}

#[test]
fn the_farm_examples_survive_a_node_and_two_workers_killed() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let url = |id: u64| cluster.node(id).url();
    // The caller talks to the leader first (it will be killed); the workers to the others.
    let caller_endpoints = format!("{},{},{}", url(leader), url(others[0]), url(others[1]));
    let worker_endpoints = format!("{},{},{}", url(others[0]), url(others[1]), url(leader));

    let worker = example("farm_worker");
    let mut workers: Vec<(String, Process)> = (1..=4)
        .map(|index| {
            let instance = format!("w{index}");
            let port = free_address_pair().0.port().to_string();
            let process = spawn(&worker, &[&instance, &port], &worker_endpoints);
            (instance, process)
        })
        .collect();
    let mut caller = spawn(&example("farm_caller"), &["100"], &caller_endpoints);
    let caller_lines = lines(&mut caller);

    // Every worker serves: round robin reaches all four.
    let mut seen = BTreeSet::new();
    read_until(
        &caller_lines,
        "all four workers serving",
        Duration::from_secs(20),
        |line| {
            seen.extend(
                line.calls
                    .iter()
                    .filter_map(|call| served_by(call).map(str::to_owned)),
            );
            seen.len() == 4
        },
    );

    // The node the caller talks to dies: the caller goes on through the others.
    cluster.node_mut(leader).kill();
    cluster.wait_for_leader(ELECTION_WAIT);
    let mut clean_lines = 0;
    read_until(
        &caller_lines,
        "the caller served again after the node died",
        Duration::from_secs(10),
        |line| {
            clean_lines = if line.calls.iter().all(|call| served_by(call).is_some()) {
                clean_lines + 1
            } else {
                0
            };
            clean_lines >= 10
        },
    );

    // Two workers die without a word (kill -9).
    let killed: Vec<String> = workers.drain(..2).map(|(instance, _)| instance).collect();
    let killed_at = Instant::now();
    let quiet_after = killed_at + TTL + Duration::from_secs(1);
    let mut calls_after = 0;
    let mut errors_before = Vec::new();
    let mut seen_after = Vec::new();
    read_until(
        &caller_lines,
        "five seconds of calls",
        Duration::from_secs(10),
        |line| {
            seen_after.push(format!("{:?}: {:?}", line.at - killed_at, line.calls));
            for call in &line.calls {
                if line.at >= quiet_after {
                    calls_after += 1;
                    let server = served_by(call).unwrap_or_else(|| {
                        panic!(
                            "a call failed {:?} after the kill: {call}",
                            line.at - killed_at
                        )
                    });
                    assert!(
                        !killed.iter().any(|gone| gone == server),
                        "{server} picked after it was killed"
                    );
                } else if served_by(call).is_none() {
                    errors_before.push(format!("{:?} after the kill: {call}", line.at - killed_at));
                }
            }
            line.at >= killed_at + Duration::from_secs(5)
        },
    );
    assert!(
        calls_after >= 20,
        "{calls_after} calls checked after TTL + 1 s"
    );
    // A failed call makes the caller skip that member: at most one error per killed worker
    // and balancer before the cluster drops them.
    assert!(
        errors_before.len() <= 4,
        "{} errors before TTL + 1 s (killed {killed:?}):\n{}",
        errors_before.len(),
        seen_after.join("\n")
    );
}
