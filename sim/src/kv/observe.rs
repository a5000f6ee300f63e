//! The nodes' side of the KV workload: watching sessions end as each replica applies the
//! session clock's ticks (which the replica proposes, as the leader of the runtime does), and
//! the end-of-seed checks.

use super::sessions::{self, SessionRecord, check};
use super::{CHECK_STEPS_MAX, ClientSession, KvReport, KvWorld, SessionPurpose};
use crate::checkers::Violation;
use crate::linearizability::kv::KvModel;
use crate::linearizability::{CheckOptions, Verdict};
use crate::simulator::Simulator;
use rafting_core::LogIndex;
use rafting_core::replica::AppliedEntry;
use rafting_core::store::{Outcome, Response, SessionId, TenantId};

impl Simulator<'_, '_> {
    /// A node's replica applied an entry: a session that ended there is checked.
    pub(crate) fn kv_applied(&mut self, node: usize, applied: &AppliedEntry) {
        let ended = match &applied.response {
            Some(Ok(Outcome::Ticked { expired, .. })) => expired.clone(),
            Some(Ok(Outcome::SessionClosed { session, .. })) => vec![*session],
            _ => Vec::new(),
        };
        if !ended.is_empty() {
            self.kv_sessions_ended(node, &ended);
        }
    }

    /// A node applied the end of these sessions: check the timing once, the keys every time.
    fn kv_sessions_ended(&mut self, node: usize, ended: &[SessionId]) {
        let now = self.now_us;
        let kv = self.kv.as_mut().expect("KV mode");
        let bounds = kv.bounds;
        let mut results = Vec::new();
        for session in ended {
            let Some(record) = kv.sessions.get_mut(&session.get()) else {
                continue;
            };
            if record.ended_at_us.is_none() {
                record.ended_at_us = Some(now);
                results.push(sessions::ephemeral_key_kept(record, now, &bounds));
                results.push(sessions::ephemeral_key_expires(record, now, &bounds));
            }
            let Some(replica) = self.hosts[node].replica.as_ref() else {
                continue;
            };
            let store = replica.store();
            let surviving: Vec<String> = record
                .keys
                .iter()
                .filter(|key| store.get(record.tenant, key).is_ok())
                .cloned()
                .collect();
            results.push(sessions::ephemeral_keys_gone(
                record,
                node as u64 + 1,
                &surviving,
            ));
        }
        for result in results {
            self.check(result);
        }
    }

    /// A node became leader: live sessions get an allowance (its replica ticks at once, and
    /// the first tick of a term does not advance the clock).
    pub(crate) fn kv_on_new_leader(&mut self) {
        let kv = self.kv.as_mut().expect("KV mode");
        for record in kv.sessions.values_mut() {
            if record.ended_at_us.is_none() {
                record.leader_changes += 1;
            }
        }
    }

    /// Some node's commit index reached `commit`: close a stall if the cluster had one.
    pub(crate) fn kv_on_commit(&mut self, commit: LogIndex) {
        let now = self.now_us;
        let kv = self.kv.as_mut().expect("KV mode");
        if commit.get() <= kv.commit_max {
            return;
        }
        kv.commit_max = commit.get();
        add_stall(kv, now);
        let proposed = kv.proposed_us.get(commit.get() as usize).copied();
        kv.commit_max_us = proposed.unwrap_or(now).min(now);
    }

    /// A leader appended entries `first..=last` of its own term at this moment.
    pub(crate) fn kv_on_proposed(&mut self, first: LogIndex, last: LogIndex) {
        let now = self.now_us;
        let kv = self.kv.as_mut().expect("KV mode");
        let (first, last) = (first.get() as usize, last.get() as usize);
        if kv.proposed_us.len() <= last {
            kv.proposed_us.resize(last + 1, now);
        }
        kv.proposed_us[first..=last].fill(now);
    }

    /// What a session request's answer means for the client and the session records.
    pub(crate) fn kv_on_session_answer(
        &mut self,
        client: usize,
        purpose: &SessionPurpose,
        invoked_us: u64,
        response: &Response,
    ) {
        let now = self.now_us;
        let client_id = self.clients[client].id;
        let kv = self.kv.as_mut().expect("KV mode");
        let state = &mut kv.clients[client];
        let mut counted = Ok(());
        match (purpose, response) {
            (
                SessionPurpose::Open,
                Ok(Outcome::SessionOpened {
                    session, ttl_ms, ..
                }),
            ) => {
                state.session = Some(ClientSession {
                    session: session.get(),
                    bound: false,
                    unbound: false,
                    renewal_invoked_us: invoked_us,
                });
                kv.sessions.insert(
                    session.get(),
                    SessionRecord {
                        session: session.get(),
                        client: client_id,
                        tenant: state.tenant_id.unwrap_or(TenantId::DEFAULT),
                        ttl_ms: *ttl_ms,
                        renewal_invoked_us: invoked_us,
                        renewal_acknowledged_us: now,
                        ..SessionRecord::default()
                    },
                );
            }
            (SessionPurpose::Bind { session, key }, Ok(Outcome::Written { .. })) => {
                if let Some(open) = state.session.as_mut() {
                    open.bound = true;
                }
                if let Some(record) = kv.sessions.get_mut(session) {
                    record.keys.insert(key.clone());
                }
            }
            (SessionPurpose::KeepAlive { session }, Ok(Outcome::KeptAlive { .. })) => {
                if let Some(open) = state.session.as_mut() {
                    open.renewal_invoked_us = invoked_us;
                }
                if let Some(record) = kv.sessions.get_mut(session) {
                    record.renewal_invoked_us = invoked_us;
                    record.renewal_acknowledged_us = now;
                    // The expiry bound counts stalls and leader changes from the last renewal.
                    record.stalled_us = 0;
                    record.leader_changes = 0;
                }
            }
            (SessionPurpose::Unbind { session, key }, Ok(Outcome::Written { .. })) => {
                if let Some(open) = state.session.as_mut() {
                    open.unbound = true;
                }
                if let Some(record) = kv.sessions.get_mut(session) {
                    record.keys.remove(key);
                }
            }
            (
                SessionPurpose::Close { session },
                Ok(Outcome::SessionClosed { keys_deleted, .. }),
            ) => {
                state.session = None;
                if let Some(record) = kv.sessions.get(session) {
                    counted = sessions::session_keys_deleted(record, *keys_deleted);
                }
            }
            // The session is gone (closed, or expired while its owner could not renew it).
            (SessionPurpose::Close { .. }, _) | (_, Err(_)) => state.session = None,
            _ => {}
        }
        self.check(counted);
    }

    /// The end-of-seed checks: sessions overdue, then linearizability of the whole history.
    pub(crate) fn kv_end_of_seed(&mut self) -> KvReport {
        let now = self.now_us;
        let Some(kv) = self.kv.as_mut() else {
            return KvReport::default();
        };
        add_stall(kv, now);
        kv.commit_max_us = now;
        let mut report = KvReport {
            sessions_opened: kv.sessions.len(),
            sessions_expired: kv
                .sessions
                .values()
                .filter(|record| record.ended_at_us.is_some() && !record.closing)
                .count(),
            undecided: kv.undecided,
            latency_us_max: kv.latency_us_max.clone(),
            ..KvReport::default()
        };
        if self.violation.is_some() {
            return report;
        }
        let overdue = kv
            .sessions
            .values()
            .map(|record| sessions::ephemeral_key_expires(record, now, &kv.bounds))
            .find(Result::is_err);
        if let Some(result) = overdue {
            self.check(result);
            return report;
        }
        self.kv_check_linearizable(&mut report);
        report
    }

    /// Each tenant's history on its own (tenants have separate key spaces).
    fn kv_check_linearizable(&mut self, report: &mut KvReport) {
        let kv = self.kv.as_mut().expect("KV mode");
        let model = KvModel { first_version: 1 };
        let options = CheckOptions {
            steps_max: CHECK_STEPS_MAX,
            ..CheckOptions::default()
        };
        let mut found = None;
        for history in kv.histories.values() {
            let checked = crate::linearizability::check(&model, history, &options);
            report.ops_checked += checked.operations_checked;
            match checked.verdict {
                Verdict::Linearizable => {}
                Verdict::Unknown { .. } => report.linearizability_unknown = true,
                Verdict::NotLinearizable(anomaly) => {
                    found = Some(anomaly.explain(history));
                    break;
                }
            }
        }
        if let Some(detail) = found {
            self.violate(Violation {
                check: check::LINEARIZABILITY,
                at_us: 0,
                nodes: Vec::new(),
                index: None,
                term: None,
                detail,
            });
        }
    }
}

/// Credits the time since the last commit to live sessions (the part after their last
/// renewal), if it was a stall.
fn add_stall(kv: &mut KvWorld, now_us: u64) {
    if now_us.saturating_sub(kv.commit_max_us) <= kv.stall_threshold_us {
        return;
    }
    for record in kv.sessions.values_mut() {
        if record.ended_at_us.is_some() {
            continue;
        }
        let from = record.renewal_acknowledged_us.max(kv.commit_max_us);
        record.stalled_us += now_us.saturating_sub(from);
    }
}
