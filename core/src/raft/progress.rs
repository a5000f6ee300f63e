//! The leader's view of one follower: how far it matches, what to send next, and how much is
//! in flight.
//!
//! ```text
//!            rejection / unreachable
//!   +--------+  <-------------------  +-----------+
//!   | Probe  |                        | Replicate |
//!   +--------+  ------------------->  +-----------+
//!     one append at a time,   first accepted     pipelined appends up to the
//!     waits for an answer     append             in-flight window
//!        |     ^
//!        |     | installed (match = snapshot index)
//!        v     |
//!   +----------+   next index at or below the leader's log base: the entries it needs
//!   | Snapshot |   are gone, so the leader streams its snapshot in chunks, within the
//!   +----------+   same window, resuming from the offset the follower acknowledged
//! ```

use crate::types::LogIndex;
use std::collections::VecDeque;

/// How the leader is currently talking to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The follower's match point is unknown: send one append and wait for its answer (or the
    /// next heartbeat interval) before sending another.
    Probe { paused: bool },
    /// The follower is known to match up to `match_index`: stream appends optimistically,
    /// bounded by the in-flight window.
    Replicate { inflight: Inflight },
    /// The follower needs entries the leader has compacted away: stream the snapshot.
    Snapshot(SnapshotTransfer),
}

/// A snapshot being streamed to one follower. Offsets are bytes of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotTransfer {
    /// The snapshot's last included entry.
    pub index: LogIndex,
    pub term: crate::types::Term,
    pub total_bytes: u64,
    /// The follower holds the image up to here (the highest offset it asked for next).
    pub acknowledged: u64,
    /// Chunks up to here were sent.
    pub sent: u64,
    /// The offset the follower asked for in its latest answer (lower than `acknowledged`
    /// when it lost its partial copy, or answered out of order).
    pub reported: u64,
    /// `acknowledged` at the previous heartbeat interval, to notice a stalled transfer.
    pub acknowledged_at_last_interval: u64,
    /// Whether any chunk was sent yet (an empty image still takes one chunk).
    pub started: bool,
}

impl SnapshotTransfer {
    pub fn new(index: LogIndex, term: crate::types::Term, total_bytes: u64) -> Self {
        SnapshotTransfer {
            index,
            term,
            total_bytes,
            acknowledged: 0,
            sent: 0,
            reported: 0,
            acknowledged_at_last_interval: 0,
            started: false,
        }
    }

    /// The next chunk to send, `(offset, length)`, if the window allows one: at most
    /// `messages_max` chunks and about `bytes_max` bytes unacknowledged.
    pub fn next_chunk(
        &self,
        chunk_bytes: usize,
        messages_max: usize,
        bytes_max: usize,
    ) -> Option<(u64, usize)> {
        let chunk = chunk_bytes.max(1) as u64;
        let outstanding = self.sent.saturating_sub(self.acknowledged);
        let outstanding_chunks = outstanding.div_ceil(chunk);
        let done = self.started && self.sent >= self.total_bytes;
        if done || outstanding_chunks >= messages_max as u64 || outstanding >= bytes_max as u64 {
            return None;
        }
        let length = (self.total_bytes - self.sent.min(self.total_bytes)).min(chunk);
        Some((self.sent, length as usize))
    }

    /// The follower asked for `next_offset` next.
    pub fn on_answer(&mut self, next_offset: u64) {
        let next_offset = next_offset.min(self.total_bytes);
        self.reported = next_offset;
        if next_offset > self.acknowledged {
            self.acknowledged = next_offset;
            self.sent = self.sent.max(next_offset);
        }
    }

    /// A heartbeat interval passed: if nothing was acknowledged during it, chunks were lost
    /// (or the follower lost its partial copy), so resend from what the follower last asked for.
    pub fn on_heartbeat_interval(&mut self) {
        if self.acknowledged == self.acknowledged_at_last_interval && self.started {
            // A follower that has the whole image but whose answer was lost needs only one
            // more chunk to answer again: resend the last byte rather than nothing.
            let from = self.reported.min(self.acknowledged);
            let from = if from >= self.total_bytes {
                self.total_bytes.saturating_sub(1)
            } else {
                from
            };
            self.acknowledged = from;
            self.sent = from;
            self.started = false;
        }
        self.acknowledged_at_last_interval = self.acknowledged;
    }
}

/// Appends sent but not yet acknowledged, bounded in messages and bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inflight {
    /// (last index of the append, its size in bytes), oldest first.
    appends: VecDeque<(LogIndex, usize)>,
    bytes: usize,
}

impl Inflight {
    pub fn is_full(&self, messages_max: usize, bytes_max: usize) -> bool {
        self.appends.len() >= messages_max || self.bytes >= bytes_max
    }

    pub fn add(&mut self, last_index: LogIndex, bytes: usize) {
        self.appends.push_back((last_index, bytes));
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Frees every append whose last index is at or below `index`.
    pub fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last_index, bytes)) = self.appends.front() {
            if last_index > index {
                break;
            }
            self.appends.pop_front();
            self.bytes = self.bytes.saturating_sub(bytes);
        }
    }

    pub fn len(&self) -> usize {
        self.appends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    pub state: ProgressState,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// Highest heartbeat round this follower has answered (ReadIndex).
    pub round_acknowledged: u64,
    /// `match_index` at the previous heartbeat, to notice appends that were lost.
    pub match_index_at_last_heartbeat: LogIndex,
    /// Times the follower's log was seen ending below what it had acknowledged.
    pub disk_losses: u64,
    /// Probing at the match point although the follower holds the whole log as far as the
    /// leader knows: its heartbeat answer said otherwise ([`Progress::on_short_log_reported`]).
    pub doubted: bool,
}

impl Progress {
    pub fn new(next_index: LogIndex) -> Self {
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            state: ProgressState::Probe { paused: false },
            recent_active: false,
            round_acknowledged: 0,
            match_index_at_last_heartbeat: LogIndex::ZERO,
            disk_losses: 0,
            doubted: false,
        }
    }

    /// A probe was rejected because the follower's log ends at `hint_index - 1`, below the
    /// match point it acknowledged: its disk lost what it had promised to keep. The leader
    /// believes the follower now, so that it catches up from where its log really ends
    /// (otherwise it would be probed at the old match point forever). Returns whether that
    /// was the case. The commit index never moves back; only the view of this follower does.
    pub fn on_disk_lost(&mut self, rejected_prev_index: LogIndex, hint_index: LogIndex) -> bool {
        let probing_at_match = matches!(self.state, ProgressState::Probe { .. })
            && rejected_prev_index == self.match_index
            && rejected_prev_index == self.next_index.prev();
        if !probing_at_match || hint_index > self.match_index || self.match_index == LogIndex::ZERO
        {
            return false;
        }
        self.disk_losses += 1;
        self.doubted = false;
        self.match_index = hint_index.prev();
        self.match_index_at_last_heartbeat = self.match_index;
        self.next_index = hint_index;
        self.state = ProgressState::Probe { paused: false };
        true
    }

    /// The follower answered a heartbeat saying its log ends at `last_log_index`, below its
    /// match point, while the leader, its log `leader_last` long, believes it holds everything
    /// and has nothing in flight to it. Either it lost what it acknowledged (a wiped disk) or
    /// the answer is older than its last acknowledgement (reordered). A probe at the match point
    /// tells which: refused, it is a disk loss ([`Progress::on_disk_lost`]) and the follower
    /// catches up; accepted, nothing changes. Without it an idle leader would send such a
    /// follower nothing until the next write, and it would neither vote nor count meanwhile.
    /// A follower that is behind needs none of this: the next append tells.
    pub fn on_short_log_reported(&mut self, last_log_index: LogIndex, leader_last: LogIndex) {
        let idle = match &self.state {
            ProgressState::Replicate { inflight } => inflight.is_empty(),
            ProgressState::Probe { .. } | ProgressState::Snapshot(_) => false,
        };
        if idle && self.match_index >= leader_last && last_log_index < self.match_index {
            self.doubted = true;
            self.become_probe();
        }
    }

    /// Whether the leader may send another append now.
    pub fn can_send(&self, messages_max: usize, bytes_max: usize) -> bool {
        match &self.state {
            ProgressState::Probe { paused } => !paused,
            ProgressState::Replicate { inflight } => !inflight.is_full(messages_max, bytes_max),
            ProgressState::Snapshot(_) => false,
        }
    }

    /// Records an append just sent that ends at `last_index` (equal to `next_index - 1` when it
    /// carried no entries).
    pub fn on_sent(&mut self, last_index: LogIndex, bytes: usize, entry_count: usize) {
        match &mut self.state {
            ProgressState::Probe { paused } => *paused = true,
            ProgressState::Replicate { inflight } => {
                if entry_count > 0 {
                    inflight.add(last_index, bytes);
                    self.next_index = last_index.next();
                }
            }
            ProgressState::Snapshot(_) => {}
        }
    }

    /// The follower accepted up to `index`. Returns whether the match index moved.
    pub fn on_accepted(&mut self, index: LogIndex) -> bool {
        let moved = index > self.match_index;
        if moved {
            self.match_index = index;
        }
        self.next_index = self.next_index.max(index.next());
        match &mut self.state {
            ProgressState::Probe { .. } | ProgressState::Snapshot(_) => self.become_replicate(),
            ProgressState::Replicate { inflight } => inflight.free_to(index),
        }
        moved
    }

    /// The follower rejected an append after `rejected_prev_index`. Returns whether the
    /// rejection was current (and `next_index` changed); stale rejections are ignored.
    pub fn on_rejected(&mut self, rejected_prev_index: LogIndex, next_guess: LogIndex) -> bool {
        match &self.state {
            ProgressState::Replicate { .. } => {
                // Anything at or below the match point is an answer to an old append.
                if rejected_prev_index <= self.match_index {
                    return false;
                }
                self.next_index = self.match_index.next();
                self.become_probe();
                true
            }
            ProgressState::Probe { .. } => {
                if rejected_prev_index != self.next_index.prev() {
                    return false;
                }
                let floor = self.match_index.next();
                let next_index = next_guess.min(rejected_prev_index).max(floor);
                // A rejection that leaves the probe where it was would only bring the same
                // probe and the same rejection back at once: a hot loop, multiplied by any
                // duplication on the way. The probe stays paused until the next heartbeat
                // interval instead.
                let moved = next_index != self.next_index;
                self.next_index = next_index;
                self.state = ProgressState::Probe { paused: !moved };
                true
            }
            ProgressState::Snapshot(_) => false,
        }
    }

    /// Starts streaming the snapshot that covers `(index, term)`.
    pub fn become_snapshot(&mut self, index: LogIndex, term: crate::types::Term, total: u64) {
        self.doubted = false;
        self.state = ProgressState::Snapshot(SnapshotTransfer::new(index, term, total));
    }

    /// The follower installed the snapshot that ends at `index`: its log matches up to there.
    pub fn on_snapshot_installed(&mut self, index: LogIndex) {
        self.match_index = self.match_index.max(index);
        self.next_index = self.match_index.next();
        self.state = ProgressState::Probe { paused: false };
    }

    pub fn become_probe(&mut self) {
        self.next_index = self.match_index.next();
        self.state = ProgressState::Probe { paused: false };
    }

    fn become_replicate(&mut self) {
        self.doubted = false;
        self.next_index = self.match_index.next();
        self.state = ProgressState::Replicate {
            inflight: Inflight::default(),
        };
    }

    /// The heartbeat interval passed. Datagrams get lost: if appends were in flight for a whole
    /// interval and none was acknowledged, assume they were lost and fall back to probing from
    /// the match point, which retransmits them. A paused probe may try again.
    pub fn on_heartbeat_interval(&mut self) {
        let stalled = self.match_index == self.match_index_at_last_heartbeat;
        self.match_index_at_last_heartbeat = self.match_index;
        match &mut self.state {
            ProgressState::Replicate { inflight } if stalled && !inflight.is_empty() => {
                self.become_probe();
            }
            ProgressState::Snapshot(transfer) => transfer.on_heartbeat_interval(),
            _ => self.unpause(),
        }
    }

    /// A paused probe may try again.
    pub fn unpause(&mut self) {
        if let ProgressState::Probe { paused } = &mut self.state {
            *paused = false;
        }
    }

    /// The appends in flight, while replicating.
    pub fn inflight(&self) -> Option<&Inflight> {
        match &self.state {
            ProgressState::Replicate { inflight } => Some(inflight),
            _ => None,
        }
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            ProgressState::Probe { .. } => "probe",
            ProgressState::Replicate { .. } => "replicate",
            ProgressState::Snapshot(_) => "snapshot",
        }
    }
}
