//! Command-line parsing: clap fills a raw struct ("low" arguments), which is then validated
//! into a typed [`Command`] ("high" arguments) before anything runs.

use crate::client_command::{Endpoint, KvCommand};
use crate::dev_command::{DevConfig, RawDev};
use crate::node_config::{NodeConfig, RawNode};
use crate::service_command::ServiceCommand;
use crate::session_command::SessionCommand;
use crate::tenant_command::TenantCommand;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rafting_sim::Scenario;
use std::path::PathBuf;

/// The arguments as typed on the command line.
#[derive(Debug, Parser)]
#[command(
    name = "rafting",
    version,
    about = "RAFTiNG: Raft consensus and clustering service"
)]
pub struct RawCli {
    #[command(subcommand)]
    pub command: RawCommand,
}

#[derive(Debug, Subcommand)]
pub enum RawCommand {
    /// Run one cluster member: Raft over UDP, the write-ahead log, the REST API.
    Node(Box<RawNode>),
    /// Run a local cluster of real node processes on loopback (the quickest start).
    Dev(RawDev),
    /// Read and write keys through any node's REST API.
    Kv {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(subcommand)]
        command: KvCommand,
    },
    /// Open, renew and close sessions through any node's REST API.
    Session {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Service groups (one master, ordered standbys) through any node's REST API.
    Service {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Tenants, their caps and tokens (admin token in RAFTING_TOKEN) through any node.
    Tenant {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Look at the cluster through any node's REST API.
    Cluster {
        #[command(flatten)]
        endpoint: Endpoint,
        #[command(subcommand)]
        command: RawClusterCommand,
    },
    /// The deterministic simulator.
    #[command(subcommand)]
    Sim(RawSim),
}

#[derive(Debug, Subcommand)]
pub enum RawClusterCommand {
    /// A table of the members: role, term, indexes, addresses, and the leader's progress view.
    Status,
    /// Add a member (a learner unless --voter); it must then be started with
    /// --initial-cluster-state existing (or use `rafting node --join`, which does all of it).
    Add {
        /// The new member's id
        #[arg(long)]
        id: u64,
        /// The UDP address (HOST:PORT) it receives Raft messages on
        #[arg(long)]
        udp: String,
        /// The HTTP address (HOST:PORT) of its REST API
        #[arg(long)]
        http: String,
        /// Add it as a voter at once instead of a learner (safe only for a member that is
        /// already caught up)
        #[arg(long)]
        voter: bool,
    },
    /// Make a caught-up learner a voter (refused with not_caught_up while it trails).
    Promote {
        /// The learner's id
        id: u64,
    },
    /// Remove a voter or a learner.
    Remove {
        /// The member's id
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RawSim {
    /// Run many seeds of a scenario and report every violated check.
    Run(RawSimRun),
    /// Run one seed and write its full trace as JSON lines (and/or its timeline as HTML).
    Replay(RawSimReplay),
    /// Draw a trace written by `sim replay --trace` as a timeline: one self-contained HTML page.
    Timeline(SimTimeline),
}

#[derive(Debug, Args)]
pub struct SimTimeline {
    /// The trace (JSON lines).
    pub trace: PathBuf,
    /// Where to write the page.
    #[arg(long)]
    pub html: PathBuf,
}

#[derive(Debug, Args)]
pub struct RawSimRun {
    /// The scenario file (see scenarios/README.md).
    pub scenario: PathBuf,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed; seeds S..S+N-1 run.
    #[arg(long, default_value_t = 1)]
    pub start_seed: u64,
    /// Threads to run seeds on (default 1).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RawSimReplay {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The seed to replay.
    #[arg(long)]
    pub seed: u64,
    /// Where to write the trace (JSON lines); standard output when neither this nor --html
    /// is given.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Where to write the seed's timeline: one self-contained HTML page to open in a browser.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// A validated `rafting sim run`.
#[derive(Debug)]
pub struct SimRun {
    pub scenario_path: PathBuf,
    pub scenario: Scenario,
    pub seeds: u64,
    pub start_seed: u64,
    pub jobs: usize,
    pub json: bool,
}

/// A validated `rafting sim replay`.
#[derive(Debug)]
pub struct SimReplay {
    pub scenario_path: PathBuf,
    pub scenario: Scenario,
    pub seed: u64,
    pub trace: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

/// What the binary was asked to do, validated.
#[derive(Debug)]
pub enum Command {
    Node(NodeConfig),
    Dev(DevConfig),
    Kv {
        endpoint: String,
        command: KvCommand,
    },
    Session {
        endpoint: String,
        command: SessionCommand,
    },
    Service {
        endpoint: String,
        command: ServiceCommand,
    },
    ClusterStatus {
        endpoint: String,
    },
    ClusterChange {
        endpoint: String,
        change: crate::members_command::MemberCommand,
    },
    Tenant {
        endpoint: String,
        command: TenantCommand,
    },
    SimRun(SimRun),
    SimReplay(SimReplay),
    SimTimeline(SimTimeline),
}

const JOBS_MAX: usize = 256;

impl RawCli {
    /// Checks the values and loads the files the command names.
    pub fn validate(self) -> Result<Command> {
        match self.command {
            RawCommand::Node(raw) => Ok(Command::Node((*raw).validate()?)),
            RawCommand::Dev(raw) => Ok(Command::Dev(raw.validate()?)),
            RawCommand::Kv { endpoint, command } => Ok(Command::Kv {
                endpoint: check_endpoint(endpoint.endpoint)?,
                command,
            }),
            RawCommand::Session { endpoint, command } => Ok(Command::Session {
                endpoint: check_endpoint(endpoint.endpoint)?,
                command,
            }),
            RawCommand::Service { endpoint, command } => Ok(Command::Service {
                endpoint: check_endpoint(endpoint.endpoint)?,
                command,
            }),
            RawCommand::Tenant { endpoint, command } => Ok(Command::Tenant {
                endpoint: check_endpoint(endpoint.endpoint)?,
                command,
            }),
            RawCommand::Cluster { endpoint, command } => {
                use crate::members_command::MemberCommand;
                let endpoint = check_endpoint(endpoint.endpoint)?;
                let change = match command {
                    RawClusterCommand::Status => return Ok(Command::ClusterStatus { endpoint }),
                    RawClusterCommand::Add {
                        id,
                        udp,
                        http,
                        voter,
                    } => {
                        if id == 0 {
                            bail!("--id must be a positive integer");
                        }
                        MemberCommand::Add {
                            id,
                            udp,
                            http,
                            learner: !voter,
                        }
                    }
                    RawClusterCommand::Promote { id } => MemberCommand::Promote { id },
                    RawClusterCommand::Remove { id } => MemberCommand::Remove { id },
                };
                Ok(Command::ClusterChange { endpoint, change })
            }
            RawCommand::Sim(RawSim::Run(raw)) => {
                if raw.seeds == 0 {
                    bail!("--seeds must be at least 1");
                }
                let jobs = raw.jobs.unwrap_or(1);
                if !(1..=JOBS_MAX).contains(&jobs) {
                    bail!("--jobs must be between 1 and {JOBS_MAX}");
                }
                if raw.start_seed.checked_add(raw.seeds).is_none() {
                    bail!("--start-seed + --seeds overflows");
                }
                let scenario = load(&raw.scenario)?;
                Ok(Command::SimRun(SimRun {
                    scenario_path: raw.scenario,
                    scenario,
                    seeds: raw.seeds,
                    start_seed: raw.start_seed,
                    jobs,
                    json: raw.json,
                }))
            }
            RawCommand::Sim(RawSim::Replay(raw)) => {
                let scenario = load(&raw.scenario)?;
                Ok(Command::SimReplay(SimReplay {
                    scenario_path: raw.scenario,
                    scenario,
                    seed: raw.seed,
                    trace: raw.trace,
                    html: raw.html,
                }))
            }
            RawCommand::Sim(RawSim::Timeline(timeline)) => Ok(Command::SimTimeline(timeline)),
        }
    }
}

fn load(path: &std::path::Path) -> Result<Scenario> {
    Scenario::load(path).context("loading the scenario")
}

/// Checks `--endpoint`: one http:// URL, or several separated by commas.
fn check_endpoint(endpoint: String) -> Result<String> {
    let endpoints = crate::client_command::endpoints(&endpoint);
    if endpoints.is_empty() || !endpoints.iter().all(|base| base.starts_with("http://")) {
        bail!(
            "--endpoint must be an http:// URL, like http://127.0.0.1:8001, or several \
             separated by commas"
        );
    }
    Ok(endpoint)
}
