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
//! (The membership-change work will make the committed configuration the record; until
//! then this file is it.)

use crate::rest::NodeAddresses;
use anyhow::{Context, Result, bail};
use rafting_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    members: Vec<MemberEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    id: u64,
    udp: SocketAddr,
    http: SocketAddr,
}

type Members = BTreeMap<NodeId, NodeAddresses>;

/// What the start must do with the record once the node is running.
#[derive(Debug)]
#[must_use]
pub struct MembershipCheck {
    path: PathBuf,
    /// `Some` when the record is missing or out of date: the members to write.
    to_record: Option<Members>,
}

impl MembershipCheck {
    /// Compares `given` with the record in `directory`. Refuses other member ids unless
    /// `force`; otherwise says whether the record must be (re)written after the start.
    pub fn before_start(directory: &Path, given: &Members, force: bool) -> Result<Self> {
        let path = directory.join(MEMBERS_FILE_NAME);
        let recorded = load(&path)?;
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
        Ok(MembershipCheck { path, to_record })
    }

    /// Writes the record if it was missing or out of date. Called once the node has started,
    /// so that a start that fails for another reason records nothing.
    pub fn record(self) -> Result<()> {
        match self.to_record {
            Some(members) => save(&self.path, &members),
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

fn load(path: &Path) -> Result<Option<Members>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    };
    let file: MembersFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
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
    Ok(Some(members))
}

/// Writes the record atomically: a temporary file, fsynced, renamed over the record, and the
/// directory fsynced, so that a crash leaves the old record or the new one, never a torn one.
fn save(path: &Path, members: &Members) -> Result<()> {
    let file = MembersFile {
        members: members
            .iter()
            .map(|(id, addresses)| MemberEntry {
                id: id.get(),
                udp: addresses.udp,
                http: addresses.http,
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
        assert_eq!(load(&path).unwrap(), Some(moved.clone()));

        let alone = members(&[(3, 9003)]);
        let error = MembershipCheck::before_start(directory.path(), &alone, false).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("members 1 (udp"), "{message}");
        assert!(message.contains("started with members 3 (udp"), "{message}");
        assert!(message.contains("--force-new-membership"), "{message}");

        let forced = MembershipCheck::before_start(directory.path(), &alone, true).unwrap();
        forced.record().unwrap();
        assert_eq!(load(&path).unwrap(), Some(alone));
        assert!(!path.with_extension("toml.tmp").exists());
    }
}
