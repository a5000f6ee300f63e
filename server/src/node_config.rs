//! `rafting node`'s settings: the flags as clap parses them ([`RawNode`]), the optional TOML
//! file with the same names ([`FileNode`]), and the validated [`NodeConfig`] they merge into.
//! A flag given on the command line wins over the file; the file wins over the defaults.

use crate::rest::{HTTP_CONNECTIONS_DEFAULT, NodeAddresses};
use anyhow::{Context, Result, bail};
use clap::Args;
use rafting_core::NodeId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:8001";
pub const UDP_LISTEN_DEFAULT: &str = "127.0.0.1:8101";
const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
const ELECTION_TIMEOUT_MS_MIN_DEFAULT: u64 = 1000;
const ELECTION_TIMEOUT_MS_MAX_DEFAULT: u64 = 2000;
const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5000;
const CLUSTER_ID_DEFAULT: u64 = 1;

/// The flags of `rafting node`, as typed.
#[derive(Debug, Args, Default)]
pub struct RawNode {
    /// This node's id: a positive integer, unique in the cluster [default: 1]
    #[arg(long)]
    pub id: Option<u64>,
    /// Folder of the node's write-ahead log and its log file `node.log`; created if missing
    /// [default: ./rafting-data/node-<ID>]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// UDP address the node receives Raft messages on [default: 127.0.0.1:8101]
    #[arg(long)]
    pub udp: Option<SocketAddr>,
    /// HTTP address of the REST API [default: 127.0.0.1:8001]
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Another member of the cluster as ID=UDP_ADDRESS,HTTP_ADDRESS, e.g.
    /// 2=127.0.0.1:8102,127.0.0.1:8002; repeat once per member. With none, the node is a
    /// one-node cluster
    #[arg(long = "peer", value_name = "ID=UDP,HTTP")]
    pub peers: Vec<String>,
    /// Cluster id carried in every datagram; datagrams of another cluster are dropped
    /// [default: 1]
    #[arg(long)]
    pub cluster_id: Option<u64>,
    /// TOML file with any of these settings under the same names (with `_` for `-`), and
    /// members as [[peers]] tables of id, udp and http; command-line flags win
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Leader heartbeat interval in milliseconds [default: 100]
    #[arg(long)]
    pub heartbeat_interval_ms: Option<u64>,
    /// Shortest election timeout in milliseconds [default: 1000]
    #[arg(long)]
    pub election_timeout_ms_min: Option<u64>,
    /// Longest election timeout in milliseconds (exclusive) [default: 2000]
    #[arg(long)]
    pub election_timeout_ms_max: Option<u64>,
    /// How long a write or read may wait for the cluster before answering 504 [default: 5000]
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// HTTP connections served at once, each by its own thread; more are answered 503
    /// [default: 1024]
    #[arg(long)]
    pub http_connections_max: Option<usize>,
    /// Probe a leader that falls silent for 1.5 heartbeat intervals: when its host answers
    /// that nothing listens on its port (a crashed process), elect a new leader at once
    /// instead of after the election timeout [default: true]
    #[arg(long, value_name = "true|false")]
    pub leader_probes: Option<bool>,
    /// Recovery only: start even though the members given (--id and --peer) differ from
    /// those recorded in DATA/members.toml, and record the given ones. Without it such a
    /// start is refused, since it would run this data as another cluster. Command line only
    #[arg(long)]
    pub force_new_membership: bool,
}

/// The TOML file of `rafting node --config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    pub id: Option<u64>,
    pub data: Option<PathBuf>,
    pub udp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    #[serde(default)]
    pub peers: Vec<FilePeer>,
    pub cluster_id: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub election_timeout_ms_min: Option<u64>,
    pub election_timeout_ms_max: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub http_connections_max: Option<usize>,
    pub leader_probes: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePeer {
    pub id: u64,
    pub udp: SocketAddr,
    pub http: SocketAddr,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    pub cluster_id: u64,
    pub data_directory: PathBuf,
    /// Every member's addresses, this node included.
    pub members: BTreeMap<NodeId, NodeAddresses>,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    pub request_timeout_ms: u64,
    pub http_connections_max: usize,
    pub leader_probes: bool,
    /// Start even with members other than those recorded with the data (recovery).
    pub force_new_membership: bool,
}

impl NodeConfig {
    pub fn own_addresses(&self) -> NodeAddresses {
        self.members[&self.id]
    }
}

/// Parses `ID=UDP_ADDRESS,HTTP_ADDRESS`.
pub fn parse_peer(text: &str) -> Result<(NodeId, NodeAddresses)> {
    let shape = || format!("--peer {text:?} must read ID=UDP_ADDRESS,HTTP_ADDRESS");
    let (id, addresses) = text.split_once('=').with_context(shape)?;
    let (udp, http) = addresses.split_once(',').with_context(shape)?;
    let id: u64 = id.trim().parse().with_context(shape)?;
    let udp: SocketAddr = udp.trim().parse().with_context(shape)?;
    let http: SocketAddr = http.trim().parse().with_context(shape)?;
    Ok((NodeId(id), NodeAddresses { udp, http }))
}

fn load_file(path: &Path) -> Result<FileNode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing the config file {}", path.display()))
}

fn default_address(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl RawNode {
    /// Merges the flags, the config file and the defaults, and checks the result.
    pub fn validate(self) -> Result<NodeConfig> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileNode::default(),
        };
        let id = self.id.or(file.id).unwrap_or(1);
        if id == 0 {
            bail!("--id must be at least 1");
        }
        let id = NodeId(id);
        let own = NodeAddresses {
            udp: self
                .udp
                .or(file.udp)
                .unwrap_or(default_address(UDP_LISTEN_DEFAULT)),
            http: (self.http.or(file.http)).unwrap_or(default_address(HTTP_LISTEN_DEFAULT)),
        };
        let mut members = BTreeMap::from([(id, own)]);
        let peers: Vec<(NodeId, NodeAddresses)> = if self.peers.is_empty() {
            let peers = file.peers.iter();
            peers
                .map(|p| {
                    (
                        NodeId(p.id),
                        NodeAddresses {
                            udp: p.udp,
                            http: p.http,
                        },
                    )
                })
                .collect()
        } else {
            self.peers
                .iter()
                .map(|text| parse_peer(text))
                .collect::<Result<_>>()?
        };
        for (peer, addresses) in peers {
            if peer == NodeId::ZERO {
                bail!("peer ids must be at least 1");
            }
            if members.insert(peer, addresses).is_some() {
                bail!("node {} is named twice (as --id or in --peer)", peer.get());
            }
        }
        let config = NodeConfig {
            id,
            cluster_id: self
                .cluster_id
                .or(file.cluster_id)
                .unwrap_or(CLUSTER_ID_DEFAULT),
            data_directory: self
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from(format!("rafting-data/node-{}", id.get()))),
            members,
            heartbeat_interval_ms: (self.heartbeat_interval_ms.or(file.heartbeat_interval_ms))
                .unwrap_or(HEARTBEAT_INTERVAL_MS_DEFAULT),
            election_timeout_ms_min: (self.election_timeout_ms_min)
                .or(file.election_timeout_ms_min)
                .unwrap_or(ELECTION_TIMEOUT_MS_MIN_DEFAULT),
            election_timeout_ms_max: (self.election_timeout_ms_max)
                .or(file.election_timeout_ms_max)
                .unwrap_or(ELECTION_TIMEOUT_MS_MAX_DEFAULT),
            request_timeout_ms: (self.request_timeout_ms.or(file.request_timeout_ms))
                .unwrap_or(REQUEST_TIMEOUT_MS_DEFAULT),
            http_connections_max: (self.http_connections_max)
                .or(file.http_connections_max)
                .unwrap_or(HTTP_CONNECTIONS_DEFAULT),
            leader_probes: (self.leader_probes.or(file.leader_probes)).unwrap_or(true),
            force_new_membership: self.force_new_membership,
        };
        check_timing(&config)?;
        Ok(config)
    }
}

fn check_timing(config: &NodeConfig) -> Result<()> {
    if config.heartbeat_interval_ms == 0 {
        bail!("--heartbeat-interval-ms must be at least 1");
    }
    if config.election_timeout_ms_min <= config.heartbeat_interval_ms {
        bail!("--election-timeout-ms-min must exceed --heartbeat-interval-ms");
    }
    if config.election_timeout_ms_max <= config.election_timeout_ms_min {
        bail!("--election-timeout-ms-max must exceed --election-timeout-ms-min");
    }
    if config.request_timeout_ms == 0 {
        bail!("--request-timeout-ms must be at least 1");
    }
    if !(1..=65_536).contains(&config.http_connections_max) {
        bail!("--http-connections-max must be between 1 and 65536");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 2\nheartbeat_interval_ms = 50\n[[peers]]\nid = 1\nudp = \"127.0.0.1:9101\"\nhttp = \"127.0.0.1:9001\"\n",
        )
        .unwrap();
        let raw = RawNode {
            config: Some(path),
            heartbeat_interval_ms: Some(70),
            ..RawNode::default()
        };
        let config = raw.validate().unwrap();
        assert_eq!(config.id, NodeId(2));
        assert_eq!(config.heartbeat_interval_ms, 70);
        assert_eq!(
            config.election_timeout_ms_min,
            ELECTION_TIMEOUT_MS_MIN_DEFAULT
        );
        assert_eq!(config.members.len(), 2);
        assert_eq!(
            config.members[&NodeId(1)].http,
            "127.0.0.1:9001".parse().unwrap()
        );
    }

    #[test]
    fn malformed_peers_and_duplicate_ids_are_refused() {
        for peers in [
            vec!["2=127.0.0.1:1"],
            vec!["x=127.0.0.1:1,127.0.0.1:2"],
            vec!["1=127.0.0.1:1,127.0.0.1:2"],
        ] {
            let raw = RawNode {
                peers: peers.into_iter().map(String::from).collect(),
                ..RawNode::default()
            };
            assert!(raw.validate().is_err());
        }
    }
}
