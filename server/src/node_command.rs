//! `rafting node`: runs one cluster member — the runtime (Raft over UDP, the write-ahead
//! log) and the REST API — until SIGTERM or Ctrl-C, then stops cleanly: the HTTP workers
//! finish, the batch in flight is made durable, and the process exits 0.
//!
//! Before it starts anything it locks its data directory (one process per directory) and
//! checks the members recorded there ([`crate::membership_record`]); while it runs, the death
//! of a thread it cannot live without ends the process ([`crate::fail_stop`]).

use crate::fail_stop;
use crate::join;
use crate::membership_record::{self, MembershipCheck};
use crate::node_config::NodeConfig;
use crate::rest::http_metrics::HttpMetrics;
use crate::rest::{Api, NodeAddresses, RestServer};
use crate::signals;
use anyhow::{Context, Result};
use rafting_core::NodeId;
use rafting_core::raft::Config;
use rafting_core::raft::Membership;
use rafting_core::store::StoreConfig;
use rafting_net::data_lock::DataDirectoryLock;
use rafting_net::runtime::{Runtime, RuntimeConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The node's log file inside its data directory.
pub const LOG_FILE_NAME: &str = "node.log";
/// Set to `1` to serve `POST /v1/debug/panic`, which kills the node loop: for the tests of
/// fail-stop only, never in production.
pub const DEBUG_PANIC_ROUTE_VARIABLE: &str = "RAFTING_TEST_PANIC_ROUTE";
const SESSION_TICK_INTERVAL_MS: u64 = 250;
const REQUEST_QUEUE_MAX: usize = 4096;
/// Largest HTTP body: the store's largest value plus room for a transaction's keys.
const BODY_BYTES_EXTRA: usize = 64 * 1024;

/// Logs go to stderr (in colour only on a terminal) and, without colours, to `node.log` in the
/// data directory. The level
/// comes from `RUST_LOG` (default `info`).
fn init_logging(config: &NodeConfig) -> Result<()> {
    let path = config.data_directory.join(LOG_FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: `dev` sends stderr to `console.log`.
    let stderr_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(stderr_is_terminal)
        .with_writer(std::io::stderr);
    let file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file));
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .try_init()
        .context("installing the logger")
}

/// Who the node starts with: the members' addresses and the bootstrap configuration (voters
/// and learners). Every member votes unless the record of the log or a join says otherwise.
struct Start {
    members: BTreeMap<NodeId, NodeAddresses>,
    voters: BTreeSet<NodeId>,
    learners: BTreeSet<NodeId>,
}

fn runtime_config(config: &NodeConfig, start: &Start) -> RuntimeConfig {
    let seed = config.id.get() ^ config.cluster_id.rotate_left(32);
    let mut raft = Config::new(config.id, start.voters.iter().copied(), seed);
    raft.learners = start.learners.clone();
    raft.heartbeat_interval_ms = config.heartbeat_interval_ms;
    raft.election_timeout_ms_min = config.election_timeout_ms_min;
    raft.election_timeout_ms_max = config.election_timeout_ms_max;
    let peers: BTreeMap<NodeId, SocketAddr> = start
        .members
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(id, addresses)| (*id, addresses.udp))
        .collect();
    RuntimeConfig {
        raft,
        store: StoreConfig::default(),
        cluster_id: config.cluster_id,
        udp_listen: config.own_addresses().udp,
        peers,
        data_directory: config.data_directory.clone(),
        session_tick_interval_ms: SESSION_TICK_INTERVAL_MS,
        request_queue_max: REQUEST_QUEUE_MAX,
        leader_probes: config.leader_probes,
        snapshot_every_entries: config.snapshot_every_entries,
        snapshot_every_bytes: config.snapshot_every_bytes,
        bootstrap: config.bootstrap,
        cluster_key: config.cluster_key.clone(),
    }
}

/// Runs the node until a stop signal; returns once it has stopped cleanly.
pub fn run(config: &NodeConfig) -> Result<bool> {
    std::fs::create_dir_all(&config.data_directory).with_context(|| {
        format!(
            "creating the data directory {}",
            config.data_directory.display()
        )
    })?;
    // Before anything writes into the directory, node.log included.
    let _lock = DataDirectoryLock::acquire(&config.data_directory)?;
    init_logging(config)?;
    fail_stop::install_panic_hook();
    signals::install();
    let own = config.own_addresses();
    let membership = MembershipCheck::before_start(
        &config.data_directory,
        &config.members,
        config.force_new_membership,
    )?;
    let start = start_members(config, &membership)?;
    let runtime = Runtime::start(runtime_config(config, &start)).context("starting the node")?;
    if let Err(error) = membership.record() {
        runtime.shutdown();
        return Err(error.context("recording the cluster's members"));
    }
    let api = Arc::new(Api {
        handle: runtime.handle.clone(),
        members: start.members.clone(),
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        body_bytes_max: StoreConfig::default().value_bytes_max + BODY_BYTES_EXTRA,
        http_metrics: HttpMetrics::default(),
        stopping: AtomicBool::new(false),
        debug_panic_route: std::env::var(DEBUG_PANIC_ROUTE_VARIABLE).as_deref() == Ok("1"),
        pick_counters: Default::default(),
        admin_token: config.admin_token.clone(),
        watches_open: Default::default(),
        throttles: Default::default(),
        tenant_connections: Default::default(),
    });
    let server = match RestServer::start(own.http, config.http_connections_max, api.clone()) {
        Ok(server) => server,
        Err(error) => {
            runtime.shutdown();
            return Err(error.context("starting the REST API"));
        }
    };
    tracing::info!(
        id = config.id.get(),
        http = %server.local_addr(),
        udp = %own.udp,
        members = start.members.len(),
        data = %config.data_directory.display(),
        auth = if config.admin_token.is_some() { "tokens" } else { "open" },
        peers = if config.cluster_key.is_some() { "authenticated" } else { "open" },
        "node started"
    );
    if api.debug_panic_route {
        tracing::warn!("{DEBUG_PANIC_ROUTE_VARIABLE}=1: POST /v1/debug/panic kills this node");
    }
    let joiner = config.join.clone().map(|url| {
        let api = api.clone();
        std::thread::spawn(move || join::run(&api, &url))
    });
    let mut recorded = None;
    while !signals::stop_requested() {
        fail_stop::exit_if_a_thread_died(&runtime);
        record_committed_configuration(&api, &config.data_directory, &mut recorded);
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(joiner);
    tracing::info!("stop requested: finishing requests and making the last batch durable");
    server.stop(&api);
    runtime.shutdown();
    tracing::info!("node stopped cleanly");
    Ok(true)
}

/// The members and the bootstrap configuration this start runs with: the log's record when
/// there is one; for `--join` without one, the cluster's members as the member named there
/// lists them, this node a learner; otherwise the flags, every member a voter.
fn start_members(config: &NodeConfig, check: &MembershipCheck) -> Result<Start> {
    let members = check.start.members.clone();
    if let Some((voters, learners)) = &check.start.from_log {
        return Ok(Start {
            members,
            voters: voters.clone(),
            learners: learners.clone(),
        });
    }
    if let Some(url) = &config.join {
        let listed = join::cluster_members(url, config.admin_token.as_deref())?;
        let mut start = Start {
            members,
            voters: listed.voters,
            learners: listed.learners,
        };
        for (id, addresses) in listed.members {
            start.members.entry(id).or_insert(addresses);
        }
        start.voters.remove(&config.id);
        start.learners.insert(config.id);
        return Ok(start);
    }
    Ok(Start {
        voters: members.keys().copied().collect(),
        learners: BTreeSet::new(),
        members,
    })
}

/// Rewrites `members.toml` from the log's committed configuration whenever it changes and
/// this node is in it (a removed node keeps its last record).
fn record_committed_configuration(
    api: &Api,
    directory: &std::path::Path,
    recorded: &mut Option<Membership>,
) {
    let status = api.handle.status();
    let Some(committed) = status.committed_membership else {
        return;
    };
    if recorded.as_ref() == Some(&committed) || !committed.contains(api.handle.id()) {
        return;
    }
    let addresses = api.member_addresses();
    let members: BTreeMap<NodeId, NodeAddresses> = committed
        .members()
        .filter_map(|id| addresses.get(&id).map(|address| (id, *address)))
        .collect();
    match membership_record::record_from_log(directory, &members, &committed.learners) {
        Ok(()) => {
            tracing::info!(
                voters = ?committed.voters,
                learners = ?committed.learners,
                "recorded the committed configuration in {}",
                membership_record::MEMBERS_FILE_NAME
            );
            *recorded = Some(committed);
        }
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "cannot record the members"),
    }
}
