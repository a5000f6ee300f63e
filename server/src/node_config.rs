//! `rafting node`'s settings: the flags as clap parses them ([`RawNode`]), the optional TOML
//! file with the same names ([`FileNode`]), and the validated [`NodeConfig`] they merge into.
//! A flag given on the command line wins over the file; the file wins over the defaults.

use crate::rest::{HTTP_CONNECTIONS_DEFAULT, NodeAddresses};
use anyhow::{Context, Result, bail};
use clap::Args;
use rafting_core::NodeId;
use rafting_wire::ClusterKey;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
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
    /// UDP address (HOST:PORT) the node receives Raft messages on [default: 127.0.0.1:8101]
    #[arg(long)]
    pub udp: Option<String>,
    /// HTTP address (HOST:PORT) of the REST API [default: 127.0.0.1:8001]
    #[arg(long)]
    pub http: Option<String>,
    /// Another member of the cluster as ID=UDP_ADDRESS,HTTP_ADDRESS, e.g.
    /// 2=127.0.0.1:8102,127.0.0.1:8002 or 2=host2:8102,host2:8002; repeat once per member,
    /// never for this node itself. With none, the node is a one-node cluster
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
    /// HTTP connections served at once (each a socket of the event loop, not a thread); a
    /// connection beyond it evicts an idle one, or is answered 503 when none is idle
    /// [default: 16384, lowered to what the open-files limit allows]
    #[arg(long)]
    pub http_connections_max: Option<usize>,
    /// Probe a leader that falls silent for 1.5 heartbeat intervals: when its host answers
    /// that nothing listens on its port (a crashed process), elect a new leader at once
    /// instead of after the election timeout [default: true]
    #[arg(long, value_name = "true|false")]
    pub leader_probes: Option<bool>,
    /// Snapshot the store and compact the log after this many entries applied since the
    /// last snapshot (0: never by count) [default: 100000]
    #[arg(long, value_name = "N")]
    pub snapshot_every_entries: Option<u64>,
    /// Snapshot the store and compact the log after this many bytes of entries applied since
    /// the last snapshot (0: never by size) [default: 67108864, 64 MiB]
    #[arg(long, value_name = "BYTES")]
    pub snapshot_every_bytes: Option<u64>,
    /// `new` bootstraps a brand-new cluster: a node that finds no log in its data directory
    /// votes at once. `existing` (the default) is for joining or re-joining a running
    /// cluster: such a node catches up from a leader before it votes or campaigns, since its
    /// data may have been lost and a voter that forgot what it acknowledged could elect a
    /// stale node. Ignored when the data directory holds a log
    #[arg(long, value_name = "new|existing")]
    pub initial_cluster_state: Option<InitialClusterState>,
    /// Recovery only: start even though the members given (--id and --peer) differ from
    /// those recorded in DATA/members.toml, and record the given ones. Without it such a
    /// start is refused, since it would run this data as another cluster. Command line only
    #[arg(long)]
    pub force_new_membership: bool,
    /// Join a running cluster through any member's REST API (e.g. http://10.0.0.1:8001):
    /// learn its members there, ask to be added as a learner, catch up, then ask to be
    /// promoted to a voter. Start it with an empty data directory; a restart with the same
    /// flag resumes where the join stopped. Command line only
    #[arg(long, value_name = "URL")]
    pub join: Option<String>,
    /// File holding the administrator's token (one line, at least 16 characters). With it,
    /// every request but /v1/health and /metrics needs `Authorization: Bearer <token>`
    /// (this one, or a tenant's); without it the cluster runs open, in the default tenant.
    /// Give every member the same file
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the cluster secret (at least 32 bytes, e.g. from `openssl rand -hex 32`;
    /// surrounding whitespace is ignored; readable by its owner only). With it, every
    /// datagram between members carries an HMAC-SHA256 tag and a replay guard, and datagrams
    /// without a right tag are dropped. Give every member the same file. Without it, peers
    /// trust any datagram with the right cluster id
    #[arg(long, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

/// The TOML file of `rafting node --config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    pub id: Option<u64>,
    pub data: Option<PathBuf>,
    pub udp: Option<String>,
    pub http: Option<String>,
    #[serde(default)]
    pub peers: Vec<FilePeer>,
    pub cluster_id: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub election_timeout_ms_min: Option<u64>,
    pub election_timeout_ms_max: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub http_connections_max: Option<usize>,
    pub leader_probes: Option<bool>,
    pub snapshot_every_entries: Option<u64>,
    pub snapshot_every_bytes: Option<u64>,
    pub initial_cluster_state: Option<InitialClusterState>,
    pub admin_token_file: Option<PathBuf>,
    pub cluster_secret_file: Option<PathBuf>,
}

/// How a node on an empty data directory starts (`--initial-cluster-state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum InitialClusterState {
    /// Bootstrap a new cluster: vote at once.
    New,
    /// Join or re-join a running cluster: catch up from a leader before voting.
    #[default]
    Existing,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePeer {
    pub id: u64,
    pub udp: String,
    pub http: String,
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
    /// Entries and bytes applied between two snapshots (0: that trigger is off).
    pub snapshot_every_entries: u64,
    pub snapshot_every_bytes: u64,
    /// An empty data directory bootstraps a new cluster (`--initial-cluster-state new`).
    pub bootstrap: bool,
    /// Start even with members other than those recorded with the data (recovery).
    pub force_new_membership: bool,
    /// `--join`: the base URL of a member of the running cluster to join.
    pub join: Option<String>,
    /// The administrator's token (`--admin-token-file`); `None`: the cluster runs open.
    pub admin_token: Option<String>,
    /// The key of the cluster secret (`--cluster-secret-file`); `None`: peer datagrams are
    /// not authenticated.
    pub cluster_key: Option<ClusterKey>,
}

impl NodeConfig {
    pub fn own_addresses(&self) -> NodeAddresses {
        self.members[&self.id]
    }
}

/// Parses `ID=UDP_ADDRESS,HTTP_ADDRESS`; the addresses may name hosts.
pub fn parse_peer(text: &str) -> Result<(NodeId, NodeAddresses)> {
    let shape = || format!("--peer {text:?} must read ID=UDP_ADDRESS,HTTP_ADDRESS");
    let (id, addresses) = text.split_once('=').with_context(shape)?;
    let (udp, http) = addresses.split_once(',').with_context(shape)?;
    let id: u64 = id.trim().parse().with_context(shape)?;
    let setting = format!("--peer {text:?}");
    let udp = resolve(udp.trim(), &setting)?;
    let http = resolve(http.trim(), &setting)?;
    Ok((NodeId(id), NodeAddresses { udp, http }))
}

/// Resolves `HOST:PORT` (an IP address or a host name) to one address, IPv4 first: a node
/// binds it and its peers send to it, so every node must pick the same one.
pub fn resolve(text: &str, setting: &str) -> Result<SocketAddr> {
    let addresses: Vec<SocketAddr> = text
        .to_socket_addrs()
        .with_context(|| format!("{setting}: cannot resolve {text:?} as HOST:PORT"))?
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .with_context(|| format!("{setting}: {text:?} resolves to no address"))
}

fn load_file(path: &Path) -> Result<FileNode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing the config file {}", path.display()))
}

/// How an error names a setting: by its flag when it was typed (or defaulted), by its key and
/// the file when it came from the config file, so a mistake in the file is not reported as a
/// flag the user never typed.
struct SettingNames {
    from_file: BTreeSet<&'static str>,
    file: Option<PathBuf>,
}

impl SettingNames {
    fn new(raw: &RawNode, file: &FileNode) -> SettingNames {
        let settings = [
            ("id", raw.id.is_some(), file.id.is_some()),
            ("udp", raw.udp.is_some(), file.udp.is_some()),
            ("http", raw.http.is_some(), file.http.is_some()),
            ("peers", !raw.peers.is_empty(), !file.peers.is_empty()),
            (
                "heartbeat_interval_ms",
                raw.heartbeat_interval_ms.is_some(),
                file.heartbeat_interval_ms.is_some(),
            ),
            (
                "election_timeout_ms_min",
                raw.election_timeout_ms_min.is_some(),
                file.election_timeout_ms_min.is_some(),
            ),
            (
                "election_timeout_ms_max",
                raw.election_timeout_ms_max.is_some(),
                file.election_timeout_ms_max.is_some(),
            ),
            (
                "request_timeout_ms",
                raw.request_timeout_ms.is_some(),
                file.request_timeout_ms.is_some(),
            ),
            (
                "http_connections_max",
                raw.http_connections_max.is_some(),
                file.http_connections_max.is_some(),
            ),
        ];
        let from_file = settings
            .into_iter()
            .filter(|&(_, in_flags, in_file)| in_file && !in_flags)
            .map(|(key, _, _)| key)
            .collect();
        SettingNames {
            from_file,
            file: raw.config.clone(),
        }
    }

    fn of(&self, key: &'static str) -> String {
        match &self.file {
            Some(path) if self.from_file.contains(key) => {
                format!("`{key}` in the config file {}", path.display())
            }
            _ if key == "peers" => "--peer".to_owned(),
            _ => format!("--{}", key.replace('_', "-")),
        }
    }
}

/// This node and its peers, refusing a peer that is this node (by id or address) or a
/// member named twice.
fn members_of(
    id: NodeId,
    own: NodeAddresses,
    peers: Vec<(NodeId, NodeAddresses)>,
    setting: &str,
) -> Result<BTreeMap<NodeId, NodeAddresses>> {
    let mut members = BTreeMap::from([(id, own)]);
    for (peer, addresses) in peers {
        if peer == NodeId::ZERO {
            bail!("{setting}: peer ids must be at least 1");
        }
        if peer == id {
            bail!(
                "{setting}: node {} is this node (its --id); list only the other members",
                peer.get()
            );
        }
        if addresses.udp == own.udp || addresses.http == own.http {
            bail!(
                "{setting}: node {} has this node's own address (UDP {}, HTTP {}); list only \
                 the other members",
                peer.get(),
                own.udp,
                own.http
            );
        }
        if members.insert(peer, addresses).is_some() {
            bail!("{setting}: node {} is named twice", peer.get());
        }
    }
    Ok(members)
}

fn file_peers(file: &FileNode, setting: &str) -> Result<Vec<(NodeId, NodeAddresses)>> {
    file.peers
        .iter()
        .map(|peer| {
            let addresses = NodeAddresses {
                udp: resolve(&peer.udp, setting)?,
                http: resolve(&peer.http, setting)?,
            };
            Ok((NodeId(peer.id), addresses))
        })
        .collect()
}

impl RawNode {
    /// Merges the flags, the config file and the defaults, and checks the result.
    pub fn validate(self) -> Result<NodeConfig> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileNode::default(),
        };
        let names = SettingNames::new(&self, &file);
        let id = self.id.or(file.id).unwrap_or(1);
        if id == 0 {
            bail!("{} must be at least 1", names.of("id"));
        }
        let id = NodeId(id);
        let udp = (self.udp.as_deref().or(file.udp.as_deref())).unwrap_or(UDP_LISTEN_DEFAULT);
        let http = (self.http.as_deref().or(file.http.as_deref())).unwrap_or(HTTP_LISTEN_DEFAULT);
        let own = NodeAddresses {
            udp: resolve(udp, &names.of("udp"))?,
            http: resolve(http, &names.of("http"))?,
        };
        let peers = if self.peers.is_empty() {
            file_peers(&file, &names.of("peers"))?
        } else {
            self.peers
                .iter()
                .map(|text| parse_peer(text))
                .collect::<Result<_>>()?
        };
        let members = members_of(id, own, peers, &names.of("peers"))?;
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
            snapshot_every_entries: (self.snapshot_every_entries)
                .or(file.snapshot_every_entries)
                .unwrap_or(rafting_core::replica::SNAPSHOT_EVERY_ENTRIES_DEFAULT),
            snapshot_every_bytes: (self.snapshot_every_bytes)
                .or(file.snapshot_every_bytes)
                .unwrap_or(rafting_core::replica::SNAPSHOT_EVERY_BYTES_DEFAULT),
            bootstrap: (self.initial_cluster_state)
                .or(file.initial_cluster_state)
                .unwrap_or_default()
                == InitialClusterState::New,
            force_new_membership: self.force_new_membership,
            join: match self.join {
                Some(url) if !url.starts_with("http://") => {
                    bail!("--join must be an http:// URL of a member, like http://127.0.0.1:8001")
                }
                Some(url) => Some(url.trim_end_matches('/').to_owned()),
                None => None,
            },
            admin_token: match self.admin_token_file.or(file.admin_token_file) {
                Some(path) => Some(read_admin_token(&path)?),
                None => None,
            },
            cluster_key: match self.cluster_secret_file.or(file.cluster_secret_file) {
                Some(path) => Some(read_cluster_secret(&path)?),
                None => None,
            },
        };
        if config.join.is_some() && config.bootstrap {
            bail!(
                "--join adds this node to a running cluster; it cannot also bootstrap a new one \
                 (--initial-cluster-state new)"
            );
        }
        check_timing(&config, &names)?;
        Ok(config)
    }
}

/// Shortest admin token accepted: a guessable one would open every tenant.
const ADMIN_TOKEN_CHARS_MIN: usize = 16;

/// Reads the admin token file: its first line, trimmed.
fn read_admin_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--admin-token-file: reading {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.chars().count() < ADMIN_TOKEN_CHARS_MIN || token.contains(char::is_whitespace) {
        bail!(
            "--admin-token-file: {} must hold one token of at least {ADMIN_TOKEN_CHARS_MIN} \
             characters without spaces",
            path.display()
        );
    }
    Ok(token)
}

/// Reads the cluster secret file and derives the key. Refused: an unreadable file, a secret
/// shorter than [`rafting_wire::auth::SECRET_BYTES_MIN`] bytes, and a file that others may
/// read or that anyone but its owner may write (as ssh refuses such a private key): a secret
/// others can read is no secret.
fn read_cluster_secret(path: &Path) -> Result<ClusterKey> {
    use std::os::unix::fs::PermissionsExt;
    let setting = "--cluster-secret-file";
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("{setting}: reading {}", path.display()))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o026 != 0 {
        bail!(
            "{setting}: {} has mode {mode:03o}: others may read it or someone but its owner may \
             write it; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("{setting}: reading {}", path.display()))?;
    let secret = bytes.trim_ascii();
    ClusterKey::from_secret(secret).with_context(|| {
        format!(
            "{setting}: {} (make one with `openssl rand -hex 32 > FILE`)",
            path.display()
        )
    })
}

fn check_timing(config: &NodeConfig, names: &SettingNames) -> Result<()> {
    let heartbeat = names.of("heartbeat_interval_ms");
    let election_min = names.of("election_timeout_ms_min");
    let election_max = names.of("election_timeout_ms_max");
    if config.heartbeat_interval_ms == 0 {
        bail!("{heartbeat} must be at least 1");
    }
    if config.election_timeout_ms_min <= config.heartbeat_interval_ms {
        bail!("{election_min} must exceed {heartbeat}");
    }
    if config.election_timeout_ms_max <= config.election_timeout_ms_min {
        bail!("{election_max} must exceed {election_min}");
    }
    if config.request_timeout_ms == 0 {
        bail!("{} must be at least 1", names.of("request_timeout_ms"));
    }
    if !(1..=65_536).contains(&config.http_connections_max) {
        bail!(
            "{} must be between 1 and 65536",
            names.of("http_connections_max")
        );
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

    /// Host names work wherever an address does (`localhost:9101`), resolved once at start
    /// (IPv4 first); a name that does not resolve is refused naming the flag and the name.
    #[test]
    fn host_names_are_resolved_in_every_address() {
        let raw = RawNode {
            udp: Some("localhost:9101".into()),
            http: Some("localhost:9001".into()),
            peers: vec!["2=localhost:9102,localhost:9002".into()],
            ..RawNode::default()
        };
        let config = raw.validate().unwrap();
        let own = config.own_addresses();
        assert_eq!(own.udp, "127.0.0.1:9101".parse().unwrap());
        assert_eq!(own.http, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(
            config.members[&NodeId(2)].http,
            "127.0.0.1:9002".parse().unwrap()
        );
        let raw = RawNode {
            udp: Some("no-such-host.invalid:9101".into()),
            ..RawNode::default()
        };
        let error = format!("{:#}", raw.validate().unwrap_err());
        assert!(error.contains("--udp"), "{error}");
        assert!(error.contains("no-such-host.invalid:9101"), "{error}");
    }

    /// A `--peer` that is this node itself, by id or by either address, is refused: it would
    /// count this node twice in every quorum.
    #[test]
    fn a_peer_with_this_nodes_own_id_or_address_is_refused() {
        for peer in [
            "1=127.0.0.1:9102,127.0.0.1:9002",
            "2=127.0.0.1:8101,127.0.0.1:9002",
            "2=127.0.0.1:9102,127.0.0.1:8001",
            "2=localhost:8101,127.0.0.1:9002",
        ] {
            let raw = RawNode {
                peers: vec![peer.into()],
                ..RawNode::default()
            };
            let error = format!("{:#}", raw.validate().unwrap_err());
            assert!(error.contains("this node"), "{peer}: {error}");
        }
    }

    /// A bad value in the config file is reported as the file's: its path and its key, not a
    /// flag the user never typed. The same value given as a flag names the flag.
    #[test]
    fn a_bad_value_in_the_config_file_names_the_file_and_the_key() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("node.toml");
        std::fs::write(&path, "heartbeat_interval_ms = 0\n").unwrap();
        let raw = RawNode {
            config: Some(path.clone()),
            ..RawNode::default()
        };
        let error = format!("{:#}", raw.validate().unwrap_err());
        assert!(!error.contains("--heartbeat"), "{error}");
        assert!(error.contains("heartbeat_interval_ms"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        let raw = RawNode {
            heartbeat_interval_ms: Some(0),
            ..RawNode::default()
        };
        let error = format!("{:#}", raw.validate().unwrap_err());
        assert!(error.contains("--heartbeat-interval-ms"), "{error}");
    }

    /// The cluster secret file is read with its whitespace trimmed; a short secret, a
    /// missing file and a file others can read are refused naming the flag.
    #[test]
    fn the_cluster_secret_file_is_checked() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("cluster.secret");
        let with_secret = |path: &Path| {
            RawNode {
                cluster_secret_file: Some(path.to_path_buf()),
                ..RawNode::default()
            }
            .validate()
            .map_err(|error| format!("{error:#}"))
        };
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(with_secret(&path).unwrap().cluster_key.is_some());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = with_secret(&path).unwrap_err();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::write(&path, "short\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = with_secret(&path).unwrap_err();
        assert!(error.contains("--cluster-secret-file"), "{error}");
        assert!(error.contains("at least 32"), "{error}");
        let error = with_secret(&directory.path().join("missing")).unwrap_err();
        assert!(error.contains("--cluster-secret-file"), "{error}");
        assert!(RawNode::default().validate().unwrap().cluster_key.is_none());
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
