//! A service group member's side, as a pure state machine: when to register and keep alive,
//! and — the part that matters for safety — in which role it may *act* right now.
//!
//! The replicated group says who is master; a member only learns it from answers, which
//! arrive late or not at all. Acting as master on a stale answer is how Curator
//! (CURATOR-696), client-go's leader election and etcd leases across leader changes
//! (etcd#9395) have let two masters act at once. The rule here:
//!
//! > A member acts as master only while its own clock says that the session deadline, counted
//! > from when it **sent** the last keep-alive that was answered "master", has not passed, less
//! > a safety margin and the worst clock drift.
//!
//! Why it is safe: the keep-alive was applied after it was sent, so the replicated deadline is
//! at least `sent + ttl` on the replicated clock, and the replicated clock runs slow, never
//! fast, against real time (a leader change pauses it). No other member is appointed before
//! that session expires (or the master resigns, which it only does after it stops acting). So
//! the member's acting window ends before the session can expire, whatever the network does.
//! A member that resigned never acts again in the epoch it resigned from: a keep-alive sent
//! after the resignation can be applied before it and answered "master", and acting on that
//! answer would overlap the member appointed once the resignation is applied.
//! The simulator's `no_overlapping_masters` checker holds every run to it.
//!
//! The driver (the `rafting service join` command, a client library, a simulated member) calls
//! [`Member::next_action`] to know what to send and when, reports each answer with the time
//! its request was sent, and asks [`Member::acting_role`] before every act of mastership.

use crate::store::services::{MemberView, Role};
use crate::types::Millis;

/// A member's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// The session TTL the member registers with.
    pub ttl_ms: u64,
    /// How often it keeps alive (default a third of the TTL).
    pub keep_alive_every_ms: u64,
    /// Subtracted from the acting window, for the time between reading the clock and acting.
    pub safety_margin_ms: u64,
    /// The worst rate error of the member's clock, in parts per million (default 1%).
    pub clock_drift_ppm: u64,
    /// How soon a failed request is tried again.
    pub retry_ms: u64,
}

impl MemberConfig {
    pub fn with_ttl(ttl_ms: u64) -> MemberConfig {
        MemberConfig {
            ttl_ms,
            keep_alive_every_ms: (ttl_ms / 3).max(1),
            safety_margin_ms: (ttl_ms / 10).clamp(10, 500),
            clock_drift_ppm: 10_000,
            retry_ms: (ttl_ms / 10).clamp(10, 200),
        }
    }

    /// How long after sending an answered keep-alive the member may act as master.
    pub fn acting_window_ms(&self) -> u64 {
        let drift = self.ttl_ms.saturating_mul(self.clock_drift_ppm) / 1_000_000;
        self.ttl_ms
            .saturating_sub(drift)
            .saturating_sub(self.safety_margin_ms)
    }
}

/// What the driver should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the registration now.
    Register,
    /// Send a keep-alive now.
    KeepAlive,
    /// Nothing to send before this time (the acting role may still change at
    /// [`Member::acting_until`]).
    WaitUntil(Millis),
}

/// One member's view of its own registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    config: MemberConfig,
    registered: bool,
    /// The role and epoch of the last answer.
    role: Role,
    epoch: u64,
    master: Option<String>,
    /// While the member may act as master (local clock).
    acting_until: Millis,
    next_send: Millis,
    /// A request is out: nothing else is sent until it is answered or failed.
    in_flight: bool,
    /// When the last answered registration or keep-alive was sent: the member's session lives
    /// at least until then + TTL.
    renewed_at: Millis,
    /// The newest epoch this member resigned from (0: none). An answer naming it master of
    /// that epoch or an earlier one was decided before the resignation was applied.
    resigned_epoch: u64,
    /// The last answer still named the member master of an epoch it resigned from: the
    /// resignation was not applied yet, or was lost.
    resign_unconfirmed: bool,
}

impl Member {
    pub fn new(config: MemberConfig) -> Member {
        Member {
            config,
            registered: false,
            role: Role::Standby,
            epoch: 0,
            master: None,
            acting_until: Millis::ZERO,
            next_send: Millis::ZERO,
            in_flight: false,
            renewed_at: Millis::ZERO,
            resigned_epoch: 0,
            resign_unconfirmed: false,
        }
    }

    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// What to do at `now`.
    pub fn next_action(&self, now: Millis) -> Action {
        if self.in_flight || now < self.next_send {
            return Action::WaitUntil(self.next_send.max(now.plus(1)));
        }
        if self.registered {
            Action::KeepAlive
        } else {
            Action::Register
        }
    }

    /// The driver sent the request [`Member::next_action`] asked for.
    pub fn on_sent(&mut self) {
        self.in_flight = true;
    }

    /// The registration or keep-alive sent at `sent_at` was answered with `view`.
    pub fn on_answer(&mut self, sent_at: Millis, view: &MemberView) {
        self.in_flight = false;
        self.registered = true;
        self.renewed_at = sent_at;
        self.resign_unconfirmed = view.role == Role::Master && view.epoch <= self.resigned_epoch;
        self.role = if self.resign_unconfirmed {
            Role::Standby
        } else {
            view.role
        };
        self.epoch = view.epoch;
        self.master = view.master.clone();
        self.acting_until = if self.role == Role::Master {
            sent_at.plus(self.config.acting_window_ms())
        } else {
            Millis::ZERO
        };
        self.next_send = sent_at.plus(self.config.keep_alive_every_ms);
    }

    /// The request failed without a verdict (no leader, timeout, connection): try again soon.
    /// The acting window is not extended.
    pub fn on_failure(&mut self, now: Millis) {
        self.in_flight = false;
        self.next_send = now.plus(self.config.retry_ms);
    }

    /// The cluster no longer knows this member (its session expired, or it was replaced):
    /// it stops acting at once and registers again.
    pub fn on_gone(&mut self, now: Millis) {
        self.in_flight = false;
        self.registered = false;
        self.role = Role::Standby;
        self.acting_until = Millis::ZERO;
        self.next_send = now;
    }

    /// The member observed the group (a watch) at a newer `epoch` naming `master`. A member
    /// appointed master acts at once, inside the window of its last answered renewal: its
    /// session lives at least that long, and while it lives and the member has not resigned,
    /// nobody else is appointed. A member that sees someone else named stops at once. A view
    /// of an epoch it already knows, or an older one (a lagging node), changes nothing.
    pub fn on_observed(&mut self, epoch: u64, master: Option<&str>, me: &str) {
        if !self.registered || epoch <= self.epoch {
            return;
        }
        self.epoch = epoch;
        self.master = master.map(str::to_owned);
        if master == Some(me) && epoch > self.resigned_epoch {
            self.role = Role::Master;
            self.acting_until = self.renewed_at.plus(self.config.acting_window_ms());
        } else {
            self.role = Role::Standby;
            self.acting_until = Millis::ZERO;
        }
        // Renew soon, to confirm the role and extend the window from a fresh send.
        self.next_send = Millis::ZERO;
    }

    /// The member resigned or left: it stops acting before the request is sent, and does not
    /// act again in the epoch of its last answer (see [`Member::resign_unconfirmed`]).
    pub fn step_down(&mut self) {
        self.role = Role::Standby;
        self.acting_until = Millis::ZERO;
        self.resigned_epoch = self.resigned_epoch.max(self.epoch);
    }

    /// The epoch to resign from again: the last answer still named this member master of an
    /// epoch it resigned from (a keep-alive applied before the resignation, or a resignation
    /// lost on the way). The member does not act in it; until the resignation is applied,
    /// nobody else is appointed either, so a driver that stays registered sends it again.
    pub fn resign_unconfirmed(&self) -> Option<u64> {
        self.resign_unconfirmed.then_some(self.resigned_epoch)
    }

    /// The role the member may act in at `now`: master only inside its acting window.
    pub fn acting_role(&self, now: Millis) -> Role {
        if self.role == Role::Master && now < self.acting_until {
            Role::Master
        } else {
            Role::Standby
        }
    }

    /// When the current acting window ends (zero when not master).
    pub fn acting_until(&self) -> Millis {
        self.acting_until
    }

    /// The epoch of the last answer: the fencing token while master.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The master named by the last answer.
    pub fn master(&self) -> Option<&str> {
        self.master.as_deref()
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionId;
    use crate::store::services::GroupPhase;

    fn view(role: Role, epoch: u64) -> MemberView {
        MemberView {
            role,
            epoch,
            phase: GroupPhase::Running,
            master: (role == Role::Master).then(|| "me".to_owned()),
            session: SessionId::new(1),
            expires_at: Millis(0),
        }
    }

    // services_chaos seed 70: a master resigned epoch 4, then its next keep-alive was applied
    // before the resignation and answered "master of epoch 4"; it acted on that answer while
    // the member appointed in epoch 5 did too. The answer is no warrant: the member stays a
    // standby and is told to resign again; a later epoch naming it counts as usual.
    #[test]
    fn a_member_never_acts_again_in_the_epoch_it_resigned_from() {
        let mut member = Member::new(MemberConfig::with_ttl(1_000));
        member.on_sent();
        member.on_answer(Millis(100), &view(Role::Master, 4));
        assert_eq!(member.acting_role(Millis(150)), Role::Master);
        member.step_down();
        assert_eq!(member.acting_role(Millis(151)), Role::Standby);
        assert_eq!(member.resign_unconfirmed(), None);
        member.on_sent();
        member.on_answer(Millis(160), &view(Role::Master, 4));
        assert_eq!(member.acting_role(Millis(170)), Role::Standby);
        assert_eq!(member.resign_unconfirmed(), Some(4));
        member.on_observed(4, Some("me"), "me");
        assert_eq!(member.acting_role(Millis(171)), Role::Standby);
        member.on_sent();
        member.on_answer(Millis(200), &view(Role::Standby, 5));
        assert_eq!(member.resign_unconfirmed(), None);
        member.on_observed(6, Some("me"), "me");
        assert_eq!(member.acting_role(Millis(210)), Role::Master);
    }

    #[test]
    fn a_master_acts_only_inside_its_window_counted_from_the_send() {
        let config = MemberConfig::with_ttl(1_000);
        assert_eq!(config.acting_window_ms(), 1_000 - 10 - 100);
        let mut member = Member::new(config);
        assert_eq!(member.next_action(Millis(0)), Action::Register);
        member.on_sent();
        // The answer arrives 300 ms after the registration was sent: the window still counts
        // from the send.
        member.on_answer(Millis(0), &view(Role::Master, 1));
        assert_eq!(member.acting_role(Millis(300)), Role::Master);
        assert_eq!(member.acting_role(Millis(889)), Role::Master);
        assert_eq!(member.acting_role(Millis(890)), Role::Standby);
        assert_eq!(
            member.next_action(Millis(300)),
            Action::WaitUntil(Millis(333))
        );
        assert_eq!(member.next_action(Millis(333)), Action::KeepAlive);
    }

    #[test]
    fn failed_keep_alives_never_extend_the_window_and_a_standby_never_acts() {
        let mut member = Member::new(MemberConfig::with_ttl(1_000));
        member.on_sent();
        member.on_answer(Millis(0), &view(Role::Master, 1));
        member.on_sent();
        member.on_failure(Millis(400));
        assert_eq!(
            member.next_action(Millis(400)),
            Action::WaitUntil(Millis(500))
        );
        assert_eq!(member.acting_role(Millis(900)), Role::Standby);
        member.on_sent();
        member.on_answer(Millis(500), &view(Role::Standby, 2));
        assert_eq!(member.acting_role(Millis(501)), Role::Standby);
        assert_eq!(member.epoch(), 2);
    }

    #[test]
    fn an_observed_appointment_acts_inside_the_last_renewal_window_only() {
        let mut member = Member::new(MemberConfig::with_ttl(1_000));
        member.on_sent();
        member.on_answer(Millis(100), &view(Role::Standby, 1));
        // A watch shows it appointed at epoch 2: it acts until 100 + 890, not longer.
        member.on_observed(2, Some("me"), "me");
        assert_eq!(member.acting_role(Millis(500)), Role::Master);
        assert_eq!(member.acting_role(Millis(990)), Role::Standby);
        assert_eq!(member.next_action(Millis(500)), Action::KeepAlive);
        // A lagging node's older view changes nothing; a newer one naming another stops it.
        member.on_observed(1, Some("other"), "me");
        assert_eq!(member.acting_role(Millis(500)), Role::Master);
        member.on_observed(3, Some("other"), "me");
        assert_eq!(member.acting_role(Millis(500)), Role::Standby);
    }

    #[test]
    fn a_member_the_cluster_forgot_stops_at_once_and_registers_again() {
        let mut member = Member::new(MemberConfig::with_ttl(1_000));
        member.on_sent();
        member.on_answer(Millis(0), &view(Role::Master, 3));
        member.on_gone(Millis(100));
        assert_eq!(member.acting_role(Millis(100)), Role::Standby);
        assert_eq!(member.next_action(Millis(100)), Action::Register);
    }
}
