//! The cluster's members, recorded with the data: `DIR/members.toml`.
//!
//! A node's log is only meaningful inside the cluster that wrote it. Started with another
//! voter set, the same data becomes a different cluster: most dangerously, a member of a
//! three-node cluster restarted without `--peer` is a one-node cluster that elects itself on
//! that data and takes writes, a split brain. So a node records the members it was started
//! with on its first start, and refuses later starts whose member ids differ, naming both
//! lists. Changed addresses of the same members are accepted (moving a node to another host
//! does not change who votes) and recorded. `--force-new-membership` is the operator's way
//! out: the given members win and are recorded.
//!
//! Once the cluster's membership changes at runtime (`POST /v1/cluster/members`, `rafting
//! node --join`), the log's committed configuration is the truth: a running node rewrites the
//! record from it (`from_log = true`, each member with its role). A later start whose flags
//! name other members is then told so clearly and runs with the log's view (the recorded
//! members, voters and learners), never with the flags' contradicting one: it neither votes
//! nor campaigns as a member of a cluster that no longer exists.

use crate::rest::NodeAddresses;
use anyhow::{Context, Result, bail};
use rafting_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The record's name inside the data directory.
pub const MEMBERS_FILE_NAME: &str = "members.toml";
const HEADER: &str = "# The members of the cluster this data belongs to, recorded by `rafting node`.\n\
# A start with other member ids is refused unless --force-new-membership is given.\n";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersFile {
    /// Written from the log's committed configuration (not from the flags of a first start).
    #[serde(default)]
    from_log: bool,
    members: Vec<MemberEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    id: u64,
    udp: SocketAddr,
    http: SocketAddr,
    /// Only in a record from the log: the member replicates without voting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    learner: bool,
}

type Members = BTreeMap<NodeId, NodeAddresses>;

/// The record as read: the members, and (for a record from the log) the learners among them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    members: Members,
    from_log: bool,
    learners: BTreeSet<NodeId>,
}

/// Who the node starts with: every member's addresses and, when the record comes from the
/// log, the configuration there (voters and learners) instead of the flags'.
#[derive(Debug, Clone)]
pub struct StartMembers {
    pub members: Members,
    pub from_log: Option<(BTreeSet<NodeId>, BTreeSet<NodeId>)>,
}

/// What the start must do with the record once the node is running.
#[derive(Debug)]
#[must_use]
pub struct MembershipCheck {
    path: PathBuf,
    /// `Some` when the record is missing or out of date: the members to write.
    to_record: Option<Members>,
    /// The members the node starts with.
    pub start: StartMembers,
}

impl MembershipCheck {
    /// Compares `given` with the record in `directory`. Refuses other member ids unless
    /// `force`; otherwise says whether the record must be (re)written after the start.
    pub fn before_start(directory: &Path, given: &Members, force: bool) -> Result<Self> {
        let path = directory.join(MEMBERS_FILE_NAME);
        let record = load(&path)?;
        if let Some(record) = record.as_ref().filter(|record| record.from_log && !force) {
            return Ok(Self::from_log(path, record, given));
        }
        let recorded = record.map(|record| record.members);
        let to_record = match &recorded {
            None => Some(given.clone()),
            Some(recorded) if recorded == given => None,
            Some(recorded) if force => {
                tracing::warn!(
                    recorded = %describe(recorded),
                    given = %describe(given),
                    "--force-new-membership: replacing the recorded members"
                );
                Some(given.clone())
            }
            Some(recorded) if recorded.keys().eq(given.keys()) => {
                tracing::warn!(
                    recorded = %describe(recorded),
                    given = %describe(given),
                    "the members' addresses changed; recording the new ones"
                );
                Some(given.clone())
            }
            Some(recorded) => bail!(
                "{} records that this data belongs to a cluster of members {}, but this node was \
                 started with members {}. Starting would run that data as another cluster (with \
                 no --peer, a one-node cluster that elects itself and takes writes the others \
                 never see). Give the recorded members with --peer, or, if the membership \
                 really changed, start once with --force-new-membership",
                path.display(),
                describe(recorded),
                describe(given)
            ),
        };
        let start = StartMembers {
            members: given.clone(),
            from_log: None,
        };
        Ok(MembershipCheck {
            path,
            to_record,
            start,
        })
    }

    /// The record holds the log's committed configuration: it wins over the flags, which are
    /// only compared so that the operator hears of a difference.
    fn from_log(path: PathBuf, record: &Record, given: &Members) -> MembershipCheck {
        let mut members = record.members.clone();
        // This node's own addresses are the ones it was started with.
        for (id, addresses) in given {
            if members.contains_key(id) {
                members.insert(*id, *addresses);
            }
        }
        if !record.members.keys().eq(given.keys()) {
            tracing::warn!(
                committed = %describe(&record.members),
                given = %describe(given),
                "the members given (--peer) differ from the cluster's committed configuration \
                 recorded in {}: running with the committed configuration; the flags are \
                 ignored (the log decides who votes once a cluster's membership has changed)",
                path.display()
            );
        }
        let voters = members
            .keys()
            .filter(|id| !record.learners.contains(id))
            .copied()
            .collect();
        MembershipCheck {
            path,
            to_record: None,
            start: StartMembers {
                members,
                from_log: Some((voters, record.learners.clone())),
            },
        }
    }

    /// Writes the record if it was missing or out of date. Called once the node has started,
    /// so that a start that fails for another reason records nothing.
    pub fn record(self) -> Result<()> {
        match self.to_record {
            Some(members) => save(&self.path, &members, None),
            None => Ok(()),
        }
    }
}

/// `1 (udp 127.0.0.1:8101, http 127.0.0.1:8001), 2 (...)`.
fn describe(members: &Members) -> String {
    let described: Vec<String> = members
        .iter()
        .map(|(id, addresses)| {
            format!(
                "{} (udp {}, http {})",
                id.get(),
                addresses.udp,
                addresses.http
            )
        })
        .collect();
    described.join(", ")
}

/// Records the log's committed configuration (`learners` among `members`), written by a
/// running node each time it changes.
pub fn record_from_log(
    directory: &Path,
    members: &Members,
    learners: &BTreeSet<NodeId>,
) -> Result<()> {
    save(&directory.join(MEMBERS_FILE_NAME), members, Some(learners))
}

fn load(path: &Path) -> Result<Option<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    };
    let file: MembersFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let learners = file
        .members
        .iter()
        .filter(|entry| entry.learner)
        .map(|entry| NodeId(entry.id))
        .collect();
    let members = file
        .members
        .into_iter()
        .map(|entry| {
            let addresses = NodeAddresses {
                udp: entry.udp,
                http: entry.http,
            };
            (NodeId(entry.id), addresses)
        })
        .collect();
    Ok(Some(Record {
        members,
        from_log: file.from_log,
        learners,
    }))
}

/// Writes the record atomically: a temporary file, fsynced, renamed over the record, and the
/// directory fsynced, so that a crash leaves the old record or the new one, never a torn one.
fn save(path: &Path, members: &Members, learners: Option<&BTreeSet<NodeId>>) -> Result<()> {
    let file = MembersFile {
        from_log: learners.is_some(),
        members: members
            .iter()
            .map(|(id, addresses)| MemberEntry {
                id: id.get(),
                udp: addresses.udp,
                http: addresses.http,
                learner: learners.is_some_and(|learners| learners.contains(id)),
            })
            .collect(),
    };
    let text = format!(
        "{HEADER}{}",
        toml::to_string(&file).context("encoding the members")?
    );
    let temporary = path.with_extension("toml.tmp");
    let write = || -> std::io::Result<()> {
        let mut output = std::fs::File::create(&temporary)?;
        output.write_all(text.as_bytes())?;
        output.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(directory) = path.parent() {
            std::fs::File::open(directory)?.sync_all()?;
        }
        Ok(())
    };
    write().with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids_and_ports: &[(u64, u16)]) -> Members {
        ids_and_ports
            .iter()
            .map(|&(id, port)| {
                let addresses = NodeAddresses {
                    udp: SocketAddr::from(([127, 0, 0, 1], port + 100)),
                    http: SocketAddr::from(([127, 0, 0, 1], port)),
                };
                (NodeId(id), addresses)
            })
            .collect()
    }

    /// Proves the rules: the first start records, the same members pass without rewriting,
    /// new addresses of the same ids pass and are recorded, other ids are refused with both
    /// lists named, and `force` records the given members over the old ones.
    #[test]
    fn other_member_ids_are_refused_unless_forced_and_new_addresses_are_recorded() {
        let directory = tempfile::tempdir().unwrap();
        let three = members(&[(1, 8001), (2, 8002), (3, 8003)]);
        let first = MembershipCheck::before_start(directory.path(), &three, false).unwrap();
        assert!(first.to_record.is_some(), "the first start records");
        first.record().unwrap();
        let again = MembershipCheck::before_start(directory.path(), &three, false).unwrap();
        assert!(
            again.to_record.is_none(),
            "the same members need no rewrite"
        );

        let moved = members(&[(1, 8001), (2, 8002), (3, 9003)]);
        let check = MembershipCheck::before_start(directory.path(), &moved, false).unwrap();
        check.record().unwrap();
        let path = directory.path().join(MEMBERS_FILE_NAME);
        assert_eq!(load(&path).unwrap().unwrap().members, moved);

        let alone = members(&[(3, 9003)]);
        let error = MembershipCheck::before_start(directory.path(), &alone, false).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("members 1 (udp"), "{message}");
        assert!(message.contains("started with members 3 (udp"), "{message}");
        assert!(message.contains("--force-new-membership"), "{message}");

        let forced = MembershipCheck::before_start(directory.path(), &alone, true).unwrap();
        forced.record().unwrap();
        assert_eq!(load(&path).unwrap().unwrap().members, alone);
        assert!(!path.with_extension("toml.tmp").exists());
    }

    /// Proves that the log's record wins: once a running node recorded the committed
    /// configuration (four members, one a learner), a start with the three members of its
    /// first flags is not refused but runs with the recorded members and roles.
    #[test]
    fn a_record_from_the_log_wins_over_contradicting_flags() {
        let directory = tempfile::tempdir().unwrap();
        let four = members(&[(1, 8001), (2, 8002), (3, 8003), (4, 8004)]);
        let learners = BTreeSet::from([NodeId(4)]);
        record_from_log(directory.path(), &four, &learners).unwrap();
        let three = members(&[(1, 8001), (2, 8002), (3, 8003)]);
        let check = MembershipCheck::before_start(directory.path(), &three, false).unwrap();
        assert_eq!(check.start.members, four);
        let (voters, recorded_learners) = check.start.from_log.clone().unwrap();
        assert_eq!(voters, BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]));
        assert_eq!(recorded_learners, learners);
        assert!(check.to_record.is_none());
    }
}
