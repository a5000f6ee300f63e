//! `rafting dev`: a local cluster of real `rafting node` processes on loopback, with no
//! configuration. Node i serves HTTP on `PORT+i-1` and receives UDP on `PORT+100+i-1`, and
//! keeps its data in `DIR/node-i`. The command waits for a leader, prints each node's URL,
//! its exact command line and a few curl examples, then supervises: a node that exits is
//! reported with the last lines of its log while the others keep running; Ctrl-C stops
//! them all cleanly. Running it again on the same DIR restarts the same cluster.
//!
//! Before it starts anything it checks that every port it needs is free (naming the process
//! that holds one) and takes a lock on DIR, so a second `dev` is refused at once; a node that
//! fails to start stops the cluster with a non-zero exit. The nodes never outlive it: each is
//! started with a parent-death signal (SIGTERM, so it still stops cleanly), and SIGHUP,
//! SIGTERM and Ctrl-C stop them in order. A closed standard output (`rafting dev | head -3`)
//! silences it but stops nothing.
//!
//! `rafting dev add` grows a running dev cluster by one node: the next id after the highest
//! `DIR/node-i`, on the ports of that id, started with `rafting node --join` through a live
//! member (it is added as a learner, catches up and is promoted). It runs in the foreground
//! until Ctrl-C, like `dev`.

use crate::port_holder::{self, Protocol};
use crate::signals;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes a line to standard output. A closed output (`rafting dev | head -3`) is ignored: the
/// cluster keeps running and Ctrl-C still stops it.
macro_rules! say {
    ($($argument:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($argument)*);
    }};
}

/// Writes a line to standard error, ignoring a closed one.
macro_rules! warn {
    ($($argument:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}

/// Distance between a node's HTTP port and its UDP port.
const UDP_PORT_OFFSET: u16 = 100;
const NODES_MAX: u16 = 16;
const LEADER_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How long `rafting dev add` waits for a member of the cluster to answer (one started a
/// moment ago may not serve yet).
const MEMBER_WAIT: Duration = Duration::from_secs(30);
const CLUSTER_FILE: &str = "cluster.toml";
const CONSOLE_FILE: &str = "console.log";
const LOG_LINES_SHOWN: usize = 12;
/// Held (with `flock`) by the running `dev`; it contains that process's id.
const LOCK_FILE: &str = "dev.lock";

#[derive(Debug, Args)]
pub struct RawDev {
    /// How many nodes to run
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// HTTP port of node 1; node i serves HTTP on PORT+i-1 and UDP on PORT+100+i-1
    #[arg(long, default_value_t = 8001, global = true)]
    pub http_port: u16,
    /// Folder with one sub-folder per node; running again on it restarts the same cluster
    #[arg(long, default_value = ".rafting-dev", global = true)]
    pub data: PathBuf,
    /// Turn tenants, tokens and authenticated peers on: make an admin token (DIR/admin.token)
    /// and a cluster secret (DIR/cluster.secret), both mode 0600 and reused on the next run,
    /// start the nodes with them, and print how to use the token
    #[arg(long)]
    pub secure: bool,
    #[command(subcommand)]
    pub command: Option<RawDevCommand>,
    /// Flags for every node, after `--` (e.g. `rafting dev -- --snapshot-every-bytes 0`); see
    /// `rafting node --help`
    #[arg(last = true, value_name = "NODE_FLAGS")]
    pub node_flags: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum RawDevCommand {
    /// Add a node to the dev cluster running on DIR: it joins as a learner, catches up and is
    /// promoted to a voter; Ctrl-C stops it.
    Add {
        /// Flags for the new node, after `--`; see `rafting node --help`
        #[arg(last = true, value_name = "NODE_FLAGS")]
        node_flags: Vec<String>,
    },
}

/// A validated `rafting dev`.
#[derive(Debug)]
pub struct DevConfig {
    pub nodes: u16,
    pub http_port: u16,
    pub data: PathBuf,
    pub secure: bool,
    /// `rafting dev add`: grow the running cluster by one node.
    pub add: bool,
    /// Passed to every node after the flags dev sets.
    pub node_flags: Vec<String>,
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
        let (add, node_flags) = match self.command {
            Some(RawDevCommand::Add { node_flags }) => {
                (true, [self.node_flags, node_flags].concat())
            }
            None => (false, self.node_flags),
        };
        Ok(DevConfig {
            nodes: self.nodes,
            http_port: self.http_port,
            data: self.data,
            secure: self.secure,
            add,
            node_flags,
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

/// Whether this run creates the cluster: no node has a log yet, so there is nothing to lose
/// and the nodes bootstrap it (`--initial-cluster-state new`). A later run, or a node whose
/// data directory was wiped while the others kept theirs, starts without it, and such a node
/// catches up before it votes.
fn creates_the_cluster(config: &DevConfig) -> bool {
    (1..=config.nodes).all(|id| !config.data.join(format!("node-{id}")).join("wal").exists())
}

fn node_arguments(config: &DevConfig, id: u16, bootstrap: bool) -> Vec<String> {
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
    if bootstrap {
        arguments.push("--initial-cluster-state".to_owned());
        arguments.push("new".to_owned());
    }
    if config.secure {
        arguments.push("--admin-token-file".to_owned());
        arguments.push(config.data.join(ADMIN_TOKEN_FILE).display().to_string());
        arguments.push("--cluster-secret-file".to_owned());
        arguments.push(config.data.join(CLUSTER_SECRET_FILE).display().to_string());
    }
    arguments.extend(config.node_flags.iter().cloned());
    arguments
}

/// The admin token of `dev --secure`, in DIR.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The cluster secret of `dev --secure`, in DIR: its nodes authenticate their datagrams.
pub const CLUSTER_SECRET_FILE: &str = "cluster.secret";

/// Makes DIR/admin.token and DIR/cluster.secret (mode 0600) unless they exist, and refuses to
/// run a DIR that has either without `--secure` (that would open its tenants' data to anyone,
/// or start nodes that refuse each other's datagrams).
fn prepare_secrets(config: &DevConfig) -> Result<()> {
    for (name, prefix) in [(ADMIN_TOKEN_FILE, "admin-"), (CLUSTER_SECRET_FILE, "")] {
        let path = config.data.join(name);
        if !config.secure {
            if path.exists() {
                bail!(
                    "{} holds {name}: this cluster was started with --secure; run it with \
                     --secure again",
                    config.data.display()
                );
            }
            continue;
        }
        if !path.exists() {
            write_random_secret(&path, prefix)?;
        }
    }
    Ok(())
}

/// Writes `prefix` and 32 random bytes in hex to a new file of mode 0600.
fn write_random_secret(path: &Path, prefix: &str) -> Result<()> {
    use rand::RngCore;
    use std::os::unix::fs::OpenOptionsExt;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let hex: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{prefix}{hex}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
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

/// Refuses to start when any node's HTTP or UDP port is taken, naming the holder when it can.
fn check_ports(config: &DevConfig) -> Result<()> {
    let mut taken = Vec::new();
    for id in 1..=config.nodes {
        let http = config.http_port + id - 1;
        let udp = config.http_port + UDP_PORT_OFFSET + id - 1;
        if let Err(error) = TcpListener::bind((Ipv4Addr::LOCALHOST, http)) {
            taken.push(port_taken(Protocol::Tcp, http, id, &error));
        }
        if let Err(error) = UdpSocket::bind((Ipv4Addr::LOCALHOST, udp)) {
            taken.push(port_taken(Protocol::Udp, udp, id, &error));
        }
    }
    if !taken.is_empty() {
        bail!(
            "cannot start the dev cluster, nothing was started:\n  {}\nstop what holds them, or \
             choose another --http-port",
            taken.join("\n  ")
        );
    }
    Ok(())
}

fn port_taken(protocol: Protocol, port: u16, id: u16, error: &std::io::Error) -> String {
    let role = match protocol {
        Protocol::Tcp => "HTTP",
        Protocol::Udp => "UDP",
    };
    let holder = match port_holder::find(protocol, port) {
        Some(holder) => format!("held by {holder}"),
        None => error.to_string(),
    };
    format!("{protocol} port {port} (node {id}'s {role}): {holder}")
}

/// Takes an exclusive lock on DIR for as long as the returned file is open, so that a second
/// `dev` on the same DIR is refused while this one runs. The lock ends with the process, even
/// on SIGKILL.
fn lock_data_directory(directory: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let path = directory.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    // SAFETY: flock(2) on a descriptor we own; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        bail!(
            "{} is in use by another `rafting dev` (pid {}); stop it first, or choose another \
             --data",
            directory.display(),
            holder.trim()
        );
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

fn spawn(node: &mut DevNode, executable: &Path) -> Result<()> {
    std::fs::create_dir_all(&node.directory)
        .with_context(|| format!("creating {}", node.directory.display()))?;
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
    die_with_parent(&mut command);
    let child = command
        .spawn()
        .with_context(|| format!("running {}", executable.display()))?;
    node.child = Some(child);
    Ok(())
}

/// Has the node receive SIGTERM when `dev` dies, whatever kills it (SIGKILL included), so no
/// node outlives its supervisor. The signal is sent when the thread that spawned the child
/// ends: `dev` spawns its nodes from its main thread.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    let hook = move || {
        // SAFETY: prctl(2) and getppid(2) are async-signal-safe and touch no memory of ours.
        unsafe {
            let signal = libc::c_ulong::try_from(libc::SIGTERM).unwrap_or(15);
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nothing would signal us.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and calls only async-signal-safe functions.
    unsafe { std::os::unix::process::CommandExt::pre_exec(command, hook) };
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

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

/// How the start of the cluster ended.
enum Startup {
    /// A node reports a leader: (leader id, term).
    Leader(u64, u64),
    /// This node's process ended before a leader was known.
    NodeExited(u16),
    TimedOut,
    StopRequested,
}

/// Polls the nodes' health until one reports a leader, a node exits, or time runs out.
fn wait_for_leader(nodes: &mut [DevNode]) -> Startup {
    let deadline = Instant::now() + LEADER_WAIT;
    while Instant::now() < deadline {
        if signals::stop_requested() {
            return Startup::StopRequested;
        }
        if let Some(&id) = reap_exited(nodes).first() {
            return Startup::NodeExited(id);
        }
        if let Some((leader, term)) = current_leader(nodes) {
            return Startup::Leader(leader, term);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Startup::TimedOut
}

fn current_leader(nodes: &[DevNode]) -> Option<(u64, u64)> {
    nodes
        .iter()
        .filter(|node| node.child.is_some())
        .filter_map(|node| health_of(&node.http))
        .filter_map(|health| Some((health["leader"].as_u64()?, health["term"].as_u64()?)))
        .max_by_key(|&(_, term)| term)
}

/// Reports nodes whose process ended, with the end of their console output; returns their ids.
fn reap_exited(nodes: &mut [DevNode]) -> Vec<u16> {
    let mut exited = Vec::new();
    for node in nodes.iter_mut() {
        let Some(child) = node.child.as_mut() else {
            continue;
        };
        if let Ok(Some(status)) = child.try_wait() {
            node.child = None;
            exited.push(node.id);
            let console = node.directory.join(CONSOLE_FILE);
            warn!(
                "node {} exited ({status}); last lines of {}:",
                node.id,
                console.display()
            );
            for line in last_lines(&console, LOG_LINES_SHOWN) {
                warn!("  | {line}");
            }
        }
    }
    exited
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
    say!(
        "RAFTiNG dev cluster: {} nodes, data in {}, leader is node {} (term {})",
        config.nodes,
        config.data.display(),
        leader.0,
        leader.1
    );
    for node in nodes {
        say!("  node {}  http://{}", node.id, node.http);
        say!("    {}", shell_line(executable, &node.arguments));
    }
    let first = &nodes[0].http;
    let last = &nodes[nodes.len() - 1].http;
    say!("Dashboard: http://{first}/ui (any node serves it)");
    say!("Try:");
    say!("  curl -L -X PUT --data-binary hello http://{first}/v1/kv/greeting");
    say!("  curl -L http://{last}/v1/kv/greeting");
    say!("  curl http://{first}/v1/cluster");
    say!(
        "  {} cluster status --endpoint http://{first}",
        executable.display()
    );
    if config.secure {
        let token = config.data.join(ADMIN_TOKEN_FILE);
        say!(
            "Peers authenticate their datagrams with {}.",
            config.data.join(CLUSTER_SECRET_FILE).display()
        );
        say!("Tenants are on: every request but /v1/health and /metrics needs a token.");
        say!("  export RAFTING_TOKEN=$(cat {})", token.display());
        say!(
            "  curl -H \"Authorization: Bearer $RAFTING_TOKEN\" -X POST -d '{{\"name\":\"team-a\"}}' \
             http://{first}/v1/tenants"
        );
        say!(
            "  {} tenant create team-b --caps '{{\"keys\":1000,\"write_rate\":100}}'",
            executable.display()
        );
        say!("  (a tenant's token, from its creation, goes in the same header)");
    }
    say!("Kill a node's process to watch the failover; Ctrl-C stops the cluster.");
}

/// The running nodes; dropping it stops them, so no exit path of `dev` (an error, a panic)
/// leaves one behind.
struct Cluster {
    nodes: Vec<DevNode>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_all(&mut self.nodes);
    }
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
        let Some(child) = node.child.take() else {
            continue;
        };
        all_clean &= wait_for_stop(node.id, child);
    }
    all_clean
}

/// Waits up to [`STOP_WAIT`] for a node sent SIGTERM, then kills it; true if it stopped
/// cleanly.
fn wait_for_stop(id: u16, mut child: Child) -> bool {
    let deadline = Instant::now() + STOP_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    match status {
        Some(status) if status.success() => {
            say!("node {id} stopped cleanly");
            true
        }
        Some(status) => {
            say!("node {id} stopped with {status}");
            false
        }
        None => {
            say!("node {id} did not stop within {STOP_WAIT:?}; killed");
            false
        }
    }
}

/// Runs the dev cluster until a stop signal (or until every node has exited). Refuses to
/// start on a port in use or a DIR in use; fails when a node does not start.
pub fn run(config: &DevConfig) -> Result<bool> {
    if config.add {
        return add(config);
    }
    check_ports(config)?;
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("creating {}", config.data.display()))?;
    let _lock = lock_data_directory(&config.data)?;
    check_cluster_file(config)?;
    prepare_secrets(config)?;
    let executable = std::env::current_exe().context("finding the rafting executable")?;
    let bootstrap = creates_the_cluster(config);
    signals::install();
    signals::install_hangup();
    let mut cluster = Cluster {
        nodes: (1..=config.nodes)
            .map(|id| DevNode {
                id,
                http: format!("127.0.0.1:{}", config.http_port + id - 1),
                arguments: node_arguments(config, id, bootstrap),
                directory: config.data.join(format!("node-{id}")),
                child: None,
            })
            .collect(),
    };
    for node in cluster.nodes.iter_mut() {
        spawn(node, &executable).with_context(|| format!("starting node {}", node.id))?;
    }
    let leader = match wait_for_leader(&mut cluster.nodes) {
        Startup::Leader(leader, term) => (leader, term),
        Startup::NodeExited(id) => bail!("node {id} failed to start; the cluster is stopped"),
        Startup::TimedOut => bail!("no leader within {LEADER_WAIT:?}; the cluster is stopped"),
        Startup::StopRequested => return Ok(stop_all(&mut cluster.nodes)),
    };
    print_banner(config, &cluster.nodes, &executable, leader);
    let all_exited = supervise(&mut cluster.nodes, leader);
    let all_clean = stop_all(&mut cluster.nodes);
    Ok(all_clean && !all_exited)
}

/// The ids of the nodes with a data directory in DIR.
fn existing_ids(config: &DevConfig) -> Vec<u16> {
    let mut ids: Vec<u16> = std::fs::read_dir(&config.data)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix("node-")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// `rafting dev add`: starts the next node with `--join` through a live member and
/// supervises it until a stop signal.
fn add(config: &DevConfig) -> Result<bool> {
    let existing = existing_ids(config);
    let Some(&highest) = existing.last() else {
        bail!(
            "{} holds no dev cluster: start one with `rafting dev` first",
            config.data.display()
        );
    };
    let id = highest + 1;
    let last_port = u32::from(config.http_port) + u32::from(UDP_PORT_OFFSET) + u32::from(id);
    if id > NODES_MAX || last_port > u32::from(u16::MAX) {
        bail!("a dev cluster holds at most {NODES_MAX} nodes within the port range");
    }
    let http = |i: u16| format!("127.0.0.1:{}", config.http_port + i - 1);
    let deadline = Instant::now() + MEMBER_WAIT;
    let member = loop {
        let answering = (existing.iter())
            .map(|&i| http(i))
            .find(|address| health_of(address).is_some());
        if let Some(member) = answering {
            break member;
        }
        if Instant::now() >= deadline || signals::stop_requested() {
            bail!(
                "no node of the dev cluster in {} answered within {} s: is `rafting dev` \
                 running?",
                config.data.display(),
                MEMBER_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Node 1's arguments of a one-node cluster (no --peer: the cluster's members come from
    // --join), with this node's id, directory and ports.
    let alone = DevConfig {
        nodes: 1,
        http_port: config.http_port,
        data: config.data.clone(),
        secure: config.data.join(ADMIN_TOKEN_FILE).exists(),
        add: true,
        node_flags: config.node_flags.clone(),
    };
    let mut arguments = node_arguments(&alone, 1, false);
    arguments[2] = id.to_string();
    arguments[4] = config.data.join(format!("node-{id}")).display().to_string();
    arguments[6] = format!("127.0.0.1:{}", config.http_port + UDP_PORT_OFFSET + id - 1);
    arguments[8] = http(id);
    arguments.push("--join".to_owned());
    arguments.push(format!("http://{member}"));
    let executable = std::env::current_exe().context("finding the rafting executable")?;
    signals::install();
    signals::install_hangup();
    let mut cluster = Cluster {
        nodes: vec![DevNode {
            id,
            http: http(id),
            arguments,
            directory: config.data.join(format!("node-{id}")),
            child: None,
        }],
    };
    spawn(&mut cluster.nodes[0], &executable).with_context(|| format!("starting node {id}"))?;
    say!(
        "node {id}: http://{} joining through http://{member} (log: {})",
        http(id),
        cluster.nodes[0].directory.join(CONSOLE_FILE).display()
    );
    say!("  {}", shell_line(&executable, &cluster.nodes[0].arguments));
    say!("Watch it with `rafting cluster status --endpoint http://{member}`; Ctrl-C stops it.");
    let all_exited = supervise(&mut cluster.nodes, (0, 0));
    let all_clean = stop_all(&mut cluster.nodes);
    Ok(all_clean && !all_exited)
}

/// Watches the nodes until a stop signal: reports exits and changes of leader. Returns true
/// when it ended because every node had exited.
fn supervise(nodes: &mut [DevNode], mut leader: (u64, u64)) -> bool {
    let mut last_check = Instant::now();
    while !signals::stop_requested() {
        std::thread::sleep(Duration::from_millis(100));
        if !reap_exited(nodes).is_empty() {
            if nodes.iter().all(|node| node.child.is_none()) {
                warn!("every node has exited");
                return true;
            }
            warn!("the other nodes keep running; Ctrl-C stops them");
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let Some(now) = current_leader(nodes)
                && now != leader
            {
                say!("leader is now node {} (term {})", now.0, now.1);
                leader = now;
            }
        }
    }
    say!("stopping the cluster");
    false
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
            secure: false,
            add: false,
            node_flags: Vec::new(),
        };
        let line = node_arguments(&config, 2, false).join(" ");
        assert_eq!(
            line,
            "node --id 2 --data d/node-2 --udp 127.0.0.1:9102 --http 127.0.0.1:9002 \
             --peer 1=127.0.0.1:9101,127.0.0.1:9001 --peer 3=127.0.0.1:9103,127.0.0.1:9003"
        );
        let line = node_arguments(&config, 2, true).join(" ");
        assert!(line.ends_with(" --initial-cluster-state new"), "{line}");
    }

    /// Whatever follows `--` goes to every node, after the flags dev sets; `dev add` still
    /// parses as the subcommand.
    #[test]
    fn flags_after_a_double_dash_go_to_every_node() {
        use crate::cli::{RawCli, RawCommand};
        use clap::Parser;
        let dev = |line: &str| match RawCli::try_parse_from(line.split(' ')).unwrap().command {
            RawCommand::Dev(raw) => raw.validate().unwrap(),
            other => panic!("{other:?}"),
        };
        let config = dev("rafting dev --secure -- --snapshot-every-bytes 0 --heartbeat-ms 50");
        assert!(config.secure && !config.add);
        let line = node_arguments(&config, 3, false).join(" ");
        assert!(
            line.ends_with("/cluster.secret --snapshot-every-bytes 0 --heartbeat-ms 50"),
            "{line}"
        );
        let added = dev("rafting dev add -- --snapshot-every-bytes 0");
        assert!(added.add);
        assert_eq!(added.node_flags, ["--snapshot-every-bytes", "0"]);
        assert!(dev("rafting dev").node_flags.is_empty());
    }

    /// `--secure` hands every node the admin token and the cluster secret, both made in DIR
    /// with mode 0600 and kept for the next run; a DIR that has them refuses to run open.
    #[test]
    fn secure_passes_the_token_and_the_cluster_secret() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let mut config = DevConfig {
            nodes: 3,
            http_port: 9001,
            data: directory.path().to_path_buf(),
            secure: true,
            add: false,
            node_flags: Vec::new(),
        };
        let line = node_arguments(&config, 1, false).join(" ");
        let secret = directory.path().join(CLUSTER_SECRET_FILE);
        assert!(
            line.contains(&format!("--cluster-secret-file {}", secret.display())),
            "{line}"
        );
        assert!(line.contains("--admin-token-file"), "{line}");
        prepare_secrets(&config).unwrap();
        let first = std::fs::read_to_string(&secret).unwrap();
        assert_eq!(first.trim().len(), 64);
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        prepare_secrets(&config).unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), first);
        config.secure = false;
        let error = prepare_secrets(&config).unwrap_err().to_string();
        assert!(error.contains("--secure"), "{error}");
    }
}
