//! `rafting dev`: a local cluster of real `rafting node` processes on loopback, with no
//! configuration. Node i serves HTTP on `PORT+i-1` and receives UDP on `PORT+100+i-1`, and
//! keeps its data in `DIR/node-i`. The command waits for a leader, prints each node's URL,
//! its exact command line and a few curl examples, then supervises: a node that exits is
//! reported with the last lines of its log while the others keep running; Ctrl-C stops
//! them all cleanly. Running it again on the same DIR restarts the same cluster.

use crate::signals;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Distance between a node's HTTP port and its UDP port.
const UDP_PORT_OFFSET: u16 = 100;
const NODES_MAX: u16 = 16;
const LEADER_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(10);
const CLUSTER_FILE: &str = "cluster.toml";
const CONSOLE_FILE: &str = "console.log";
const LOG_LINES_SHOWN: usize = 12;

#[derive(Debug, Args)]
pub struct RawDev {
    /// How many nodes to run
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// HTTP port of node 1; node i serves HTTP on PORT+i-1 and UDP on PORT+100+i-1
    #[arg(long, default_value_t = 8001)]
    pub http_port: u16,
    /// Folder with one sub-folder per node; running again on it restarts the same cluster
    #[arg(long, default_value = ".rafting-dev")]
    pub data: PathBuf,
}

/// A validated `rafting dev`.
#[derive(Debug)]
pub struct DevConfig {
    pub nodes: u16,
    pub http_port: u16,
    pub data: PathBuf,
}

impl RawDev {
    pub fn validate(self) -> Result<DevConfig> {
        if !(1..=NODES_MAX).contains(&self.nodes) {
            bail!("--nodes must be between 1 and {NODES_MAX}");
        }
        let last_port =
            u32::from(self.http_port) + u32::from(UDP_PORT_OFFSET) + u32::from(self.nodes);
        if self.http_port == 0 || last_port > u32::from(u16::MAX) {
            bail!(
                "--http-port {} leaves no room for {} nodes' ports",
                self.http_port,
                self.nodes
            );
        }
        Ok(DevConfig {
            nodes: self.nodes,
            http_port: self.http_port,
            data: self.data,
        })
    }
}

/// One supervised node process.
struct DevNode {
    id: u16,
    http: String,
    arguments: Vec<String>,
    directory: PathBuf,
    child: Option<Child>,
}

fn node_arguments(config: &DevConfig, id: u16) -> Vec<String> {
    let http = |i: u16| format!("127.0.0.1:{}", config.http_port + i - 1);
    let udp = |i: u16| format!("127.0.0.1:{}", config.http_port + UDP_PORT_OFFSET + i - 1);
    let mut arguments = vec![
        "node".to_owned(),
        "--id".to_owned(),
        id.to_string(),
        "--data".to_owned(),
        config.data.join(format!("node-{id}")).display().to_string(),
        "--udp".to_owned(),
        udp(id),
        "--http".to_owned(),
        http(id),
    ];
    for peer in (1..=config.nodes).filter(|&peer| peer != id) {
        arguments.push("--peer".to_owned());
        arguments.push(format!("{peer}={},{}", udp(peer), http(peer)));
    }
    arguments
}

/// Refuses a DIR that holds a cluster of another shape; records the shape on first use.
fn check_cluster_file(config: &DevConfig) -> Result<()> {
    let path = config.data.join(CLUSTER_FILE);
    let wanted = format!(
        "nodes = {}\nhttp_port = {}\n",
        config.nodes, config.http_port
    );
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == wanted => Ok(()),
        Ok(existing) => bail!(
            "{} holds another cluster ({}); run with the same --nodes and --http-port, or \
             choose another --data",
            config.data.display(),
            existing.trim().replace('\n', ", ")
        ),
        Err(_) => {
            std::fs::write(&path, wanted).with_context(|| format!("writing {}", path.display()))
        }
    }
}

fn spawn(node: &mut DevNode, executable: &Path) -> Result<()> {
    std::fs::create_dir_all(&node.directory)?;
    let console_path = node.directory.join(CONSOLE_FILE);
    let console = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&console_path)
        .with_context(|| format!("opening {}", console_path.display()))?;
    let mut command = Command::new(executable);
    command
        .args(&node.arguments)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    // Its own process group: Ctrl-C reaches only `rafting dev`, which stops the nodes in order.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .with_context(|| format!("starting node {}", node.id))?;
    node.child = Some(child);
    Ok(())
}

fn last_lines(path: &Path, count: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(count);
    lines[start..].iter().map(|line| line.to_string()).collect()
}

fn health_of(http: &str) -> Option<serde_json::Value> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(300))
        .build();
    let response = agent.get(&format!("http://{http}/v1/health")).call().ok()?;
    response.into_json().ok()
}

/// Polls the nodes' health until one reports a leader; returns (leader id, term).
fn wait_for_leader(nodes: &mut [DevNode]) -> Option<(u64, u64)> {
    let deadline = Instant::now() + LEADER_WAIT;
    while Instant::now() < deadline && !signals::stop_requested() {
        reap_exited(nodes);
        if let Some(found) = current_leader(nodes) {
            return Some(found);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn current_leader(nodes: &[DevNode]) -> Option<(u64, u64)> {
    nodes
        .iter()
        .filter(|node| node.child.is_some())
        .filter_map(|node| health_of(&node.http))
        .filter_map(|health| Some((health["leader"].as_u64()?, health["term"].as_u64()?)))
        .max_by_key(|&(_, term)| term)
}

/// Reports nodes whose process ended, with the end of their console output.
fn reap_exited(nodes: &mut [DevNode]) {
    for node in nodes.iter_mut() {
        let Some(child) = node.child.as_mut() else {
            continue;
        };
        if let Ok(Some(status)) = child.try_wait() {
            node.child = None;
            let console = node.directory.join(CONSOLE_FILE);
            eprintln!(
                "node {} exited ({status}); last lines of {}:",
                node.id,
                console.display()
            );
            for line in last_lines(&console, LOG_LINES_SHOWN) {
                eprintln!("  | {line}");
            }
            eprintln!("the other nodes keep running; Ctrl-C stops them");
        }
    }
}

fn shell_line(executable: &Path, arguments: &[String]) -> String {
    let mut line = executable.display().to_string();
    for argument in arguments {
        line.push(' ');
        line.push_str(argument);
    }
    line
}

fn print_banner(config: &DevConfig, nodes: &[DevNode], executable: &Path, leader: (u64, u64)) {
    println!(
        "RAFTiNG dev cluster: {} nodes, data in {}, leader is node {} (term {})",
        config.nodes,
        config.data.display(),
        leader.0,
        leader.1
    );
    for node in nodes {
        println!("  node {}  http://{}", node.id, node.http);
        println!("    {}", shell_line(executable, &node.arguments));
    }
    let first = &nodes[0].http;
    let last = &nodes[nodes.len() - 1].http;
    println!("Try:");
    println!("  curl -L -X PUT --data-binary hello http://{first}/v1/kv/greeting");
    println!("  curl -L http://{last}/v1/kv/greeting");
    println!("  curl http://{first}/v1/cluster");
    println!("  rafting cluster status --endpoint http://{first}");
    println!("Kill a node's process to watch the failover; Ctrl-C stops the cluster.");
}

/// Sends SIGTERM to every running node and waits for each to stop.
fn stop_all(nodes: &mut [DevNode]) -> bool {
    for node in nodes.iter() {
        if let Some(child) = &node.child
            && let Ok(pid) = libc::pid_t::try_from(child.id())
        {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let mut all_clean = true;
    for node in nodes.iter_mut() {
        let Some(mut child) = node.child.take() else {
            continue;
        };
        let deadline = Instant::now() + STOP_WAIT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        match status {
            Some(status) if status.success() => println!("node {} stopped cleanly", node.id),
            Some(status) => {
                all_clean = false;
                println!("node {} stopped with {status}", node.id);
            }
            None => {
                all_clean = false;
                println!("node {} did not stop within {STOP_WAIT:?}; killed", node.id);
            }
        }
    }
    all_clean
}

/// Runs the dev cluster until Ctrl-C (or until every node has exited).
pub fn run(config: &DevConfig) -> Result<bool> {
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("creating {}", config.data.display()))?;
    check_cluster_file(config)?;
    let executable = std::env::current_exe().context("finding the rafting executable")?;
    signals::install();
    let mut nodes: Vec<DevNode> = (1..=config.nodes)
        .map(|id| DevNode {
            id,
            http: format!("127.0.0.1:{}", config.http_port + id - 1),
            arguments: node_arguments(config, id),
            directory: config.data.join(format!("node-{id}")),
            child: None,
        })
        .collect();
    for node in nodes.iter_mut() {
        if let Err(error) = spawn(node, &executable) {
            eprintln!("node {}: {error:#}", node.id);
        }
    }
    let Some(leader) = wait_for_leader(&mut nodes) else {
        eprintln!("no leader within {LEADER_WAIT:?} (or stop requested); stopping the nodes");
        stop_all(&mut nodes);
        return Ok(false);
    };
    print_banner(config, &nodes, &executable, leader);
    supervise(&mut nodes, leader);
    Ok(stop_all(&mut nodes))
}

/// Watches the nodes until Ctrl-C: reports exits and changes of leader.
fn supervise(nodes: &mut [DevNode], mut leader: (u64, u64)) {
    let mut last_check = Instant::now();
    while !signals::stop_requested() {
        std::thread::sleep(Duration::from_millis(100));
        reap_exited(nodes);
        if nodes.iter().all(|node| node.child.is_none()) {
            eprintln!("every node has exited");
            return;
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let Some(now) = current_leader(nodes)
                && now != leader
            {
                println!("leader is now node {} (term {})", now.0, now.1);
                leader = now;
            }
        }
    }
    println!("stopping the cluster");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_i_gets_port_p_plus_i_minus_one_and_names_every_peer() {
        let config = DevConfig {
            nodes: 3,
            http_port: 9001,
            data: PathBuf::from("d"),
        };
        let line = node_arguments(&config, 2).join(" ");
        assert_eq!(
            line,
            "node --id 2 --data d/node-2 --udp 127.0.0.1:9102 --http 127.0.0.1:9002 \
             --peer 1=127.0.0.1:9101,127.0.0.1:9001 --peer 3=127.0.0.1:9103,127.0.0.1:9003"
        );
    }
}
