//! State coverage: which protocol situations a seed actually reached.
//!
//! A checker can only catch a bug in a situation the run creates. Each seed records the first
//! time it reached each of the [`STATES`] below; `rafting sim run` prints how many seeds reached
//! each, and a scenario can demand one with an `expect_reached` expectation, so that a scenario
//! whose story never happens fails instead of passing vacuously.

use std::collections::BTreeMap;

/// A new leader holds entries of an earlier term that no node has known committed (Figure 8's
/// setup: old-term entries that must not be committed by counting).
pub const OLD_TERM_ENTRY_AT_NEW_LEADER: &str = "old_term_entry_at_new_leader";
/// A leader committed an entry while another node held a different entry of a later term at
/// its index (Figure 8 (e): that node must never win an election again).
pub const COMMITTED_OVER_LATER_CONFLICT: &str = "committed_over_later_conflict";
/// A node crashed with a write handed to its disk but not yet durable.
pub const CRASH_WITH_UNSYNCED_WRITE: &str = "crash_with_unsynced_write";
/// A follower replaced a conflicting suffix of its durable log.
pub const FOLLOWER_TRUNCATED_SUFFIX: &str = "follower_truncated_suffix";
/// A client request reached a node that still believed it led while a later term had a
/// leader (a deposed leader).
pub const REQUEST_AT_DEPOSED_LEADER: &str = "request_at_deposed_leader";
/// A linearizable read was handed to a node that still believed it led while a later term
/// had a leader (ReadIndex's reason to exist).
pub const READ_AT_DEPOSED_LEADER: &str = "read_at_deposed_leader";
/// A node campaigned on a leadership transfer (TimeoutNow) and won.
pub const ELECTED_BY_TRANSFER: &str = "elected_by_transfer";
/// A second, different node became leader during the seed.
pub const LEADER_CHANGE: &str = "leader_change";
/// A node lost its whole disk in a crash and came back with nothing.
pub const WIPED_DISK_REJOINED: &str = "wiped_disk_rejoined";

/// A node took a snapshot of its store (and compacted its log once it was durable).
pub const SNAPSHOT_TAKEN: &str = "snapshot_taken";
/// A follower installed a snapshot streamed by a leader.
pub const SNAPSHOT_INSTALLED: &str = "snapshot_installed";
/// A leader resent snapshot chunks from the follower's acknowledged offset (chunks or answers
/// were lost, or the follower lost its partial copy).
pub const SNAPSHOT_RESENT: &str = "snapshot_resent";
/// A new leader went on with a transfer an earlier leader began (same snapshot, the
/// follower's offset).
pub const SNAPSHOT_RESUMED_BY_NEW_LEADER: &str = "snapshot_resumed_by_new_leader";
/// A follower refused an assembled snapshot whose checksum did not match.
pub const SNAPSHOT_CHECKSUM_REFUSED: &str = "snapshot_checksum_refused";
/// A node restarted from a snapshot (and the log after it).
pub const RESTARTED_FROM_SNAPSHOT: &str = "restarted_from_snapshot";
/// A node restarted with its newest snapshot file damaged and fell back to the previous one.
pub const SNAPSHOT_FALLBACK: &str = "snapshot_fallback";

/// A service member began acting as master after another member had (a handover happened).
pub const MASTER_HANDOVER: &str = "master_handover";
/// A master resigned (a graceful handover).
pub const MASTER_RESIGNED: &str = "master_resigned";
/// A member acting as master was paused or cut off for longer than its TTL.
pub const MASTER_STALLED_PAST_TTL: &str = "master_stalled_past_ttl";

/// A service group whose members had all gone formed again (its cold start began anew).
pub const GROUP_REFORMED: &str = "group_reformed";

/// A farm caller learned that a member it could pick began draining.
pub const FARM_DRAIN_SEEN: &str = "farm_drain_seen";

/// An attack datagram of random bytes was refused (wire mode, see [`crate::attacker`]).
pub const GARBAGE_DATAGRAM_REFUSED: &str = "garbage_datagram_refused";
/// A forged message (a claimed sender, no or a wrong tag) was refused.
pub const FORGED_DATAGRAM_REFUSED: &str = "forged_datagram_refused";
/// A replayed genuine datagram was refused.
pub const REPLAYED_DATAGRAM_REFUSED: &str = "replayed_datagram_refused";
/// A captured datagram with flipped bits (and a fixed checksum) was refused.
pub const MUTATED_DATAGRAM_REFUSED: &str = "mutated_datagram_refused";
/// A tenant's write was refused because it would pass a stored cap (`quota_*`).
pub const TENANT_REFUSED_QUOTA: &str = "tenant_refused_quota";
/// A tenant's write was refused because it was over its write rate (`rate_*`).
pub const TENANT_REFUSED_RATE: &str = "tenant_refused_rate";

/// Every state the simulator tracks, in the order summaries print them.
pub const STATES: &[&str] = &[
    OLD_TERM_ENTRY_AT_NEW_LEADER,
    COMMITTED_OVER_LATER_CONFLICT,
    CRASH_WITH_UNSYNCED_WRITE,
    FOLLOWER_TRUNCATED_SUFFIX,
    REQUEST_AT_DEPOSED_LEADER,
    READ_AT_DEPOSED_LEADER,
    ELECTED_BY_TRANSFER,
    LEADER_CHANGE,
    WIPED_DISK_REJOINED,
    SNAPSHOT_TAKEN,
    SNAPSHOT_INSTALLED,
    SNAPSHOT_RESENT,
    SNAPSHOT_RESUMED_BY_NEW_LEADER,
    SNAPSHOT_CHECKSUM_REFUSED,
    RESTARTED_FROM_SNAPSHOT,
    SNAPSHOT_FALLBACK,
    MASTER_HANDOVER,
    MASTER_RESIGNED,
    MASTER_STALLED_PAST_TTL,
    GROUP_REFORMED,
    FARM_DRAIN_SEEN,
    GARBAGE_DATAGRAM_REFUSED,
    FORGED_DATAGRAM_REFUSED,
    REPLAYED_DATAGRAM_REFUSED,
    MUTATED_DATAGRAM_REFUSED,
    TENANT_REFUSED_QUOTA,
    TENANT_REFUSED_RATE,
];

/// The states one seed reached, with the simulated time (µs) it first reached each.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    pub reached: BTreeMap<&'static str, u64>,
}

impl Coverage {
    /// Notes that `state` holds at `now_us` (only the first time counts).
    pub fn reach(&mut self, state: &'static str, now_us: u64) {
        debug_assert!(STATES.contains(&state), "unknown coverage state {state}");
        self.reached.entry(state).or_insert(now_us);
    }

    /// Whether `state` was reached at or before `at_us`.
    pub fn reached_by(&self, state: &str, at_us: u64) -> bool {
        self.reached.get(state).is_some_and(|&first| first <= at_us)
    }
}

/// How many seeds of a run reached each state.
pub fn tally<'a>(seeds: impl Iterator<Item = &'a Coverage>) -> BTreeMap<&'static str, u64> {
    let mut counts: BTreeMap<&'static str, u64> = STATES.iter().map(|&state| (state, 0)).collect();
    for coverage in seeds {
        for state in coverage.reached.keys() {
            *counts.entry(state).or_default() += 1;
        }
    }
    counts
}
