//! Master/standby: a candidate keeps its registration alive on a thread of its own and hands
//! out a guard while — and only while — it may act as master.
//!
//! The acting rule is core's [`rafting_core::member::Member`], the one the simulator checks
//! with `no_overlapping_masters`: the guard is valid only until the session deadline counted
//! from when the last keep-alive answered "master" was *sent*, less a margin and the clock's
//! drift, so a paused or cut-off master stops acting before anyone else can be appointed.

use crate::farm::sleep_unless;
use crate::{Error, Member, Rafting, encode};
use rafting_core::Millis;
use rafting_core::member::{Action, Member as Agent, MemberConfig};
use rafting_core::store::SessionId;
use rafting_core::store::services::{GroupPhase, MemberView, Role};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the candidate's thread shares with the guards.
struct Shared {
    agent: Mutex<Agent>,
    changed: Condvar,
    origin: Instant,
    stop: AtomicBool,
}

impl Shared {
    fn now(&self) -> Millis {
        Millis(self.origin.elapsed().as_millis() as u64)
    }
}

/// A member of a master/standby group. Dropping it resigns (if master) and leaves.
pub struct Candidate {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Held while this process is master. `epoch()` is the fencing token to pass to whatever the
/// master writes; check `is_valid()` before every act of mastership.
pub struct MasterGuard {
    shared: Arc<Shared>,
    epoch: u64,
}

impl MasterGuard {
    /// The group's epoch when this process became master: a resource that sees a higher one
    /// refuses this master's writes.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this process may still act as master right now (its own clock, its lease).
    pub fn is_valid(&self) -> bool {
        let agent = self.shared.agent.lock().unwrap_or_else(|p| p.into_inner());
        leads(&agent, self.shared.now(), self.epoch)
    }

    /// A signal sent once, the moment this process stops being master: its lease ran out on
    /// its own clock, it learned of a successor, or the candidate was dropped. For work that
    /// must stop at once rather than at its next `is_valid()` check.
    pub fn lost(&self) -> std::sync::mpsc::Receiver<()> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let (shared, epoch) = (self.shared.clone(), self.epoch);
        let watch = move || {
            let mut agent = shared.agent.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let now = shared.now();
                if !leads(&agent, now, epoch) || shared.stop.load(Ordering::Relaxed) {
                    let _ = sender.send(());
                    return;
                }
                // Wake at the end of the acting window, or on any change.
                let left = agent.acting_until().since(now).clamp(1, 100);
                agent = shared
                    .changed
                    .wait_timeout(agent, Duration::from_millis(left))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        if let Err(error) = std::thread::Builder::new()
            .name("rafting-master-lost".into())
            .spawn(watch)
        {
            // No thread: the receiver's sender is gone, which reads as "lost" at once.
            tracing::warn!(%error, "cannot watch the master's lease");
        }
        receiver
    }
}

/// Whether the member may act as master of `epoch` at `now`: the one rule behind
/// [`MasterGuard::is_valid`] and [`MasterGuard::lost`].
fn leads(agent: &Agent, now: Millis, epoch: u64) -> bool {
    agent.acting_role(now) == Role::Master && agent.epoch() == epoch
}

impl Candidate {
    /// Blocks until this process may act as master.
    pub fn wait_until_master(&self) -> Result<MasterGuard, Error> {
        let mut agent = self.shared.agent.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Err(Error::Ended);
            }
            if agent.acting_role(self.shared.now()) == Role::Master {
                return Ok(MasterGuard {
                    shared: self.shared.clone(),
                    epoch: agent.epoch(),
                });
            }
            agent = self
                .shared
                .changed
                .wait_timeout(agent, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The master named by the last answer, if any.
    pub fn master(&self) -> Option<String> {
        let agent = self.shared.agent.lock().unwrap_or_else(|p| p.into_inner());
        agent.master().map(str::to_owned)
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A member's role as the REST API answers it (registration, keep-alive), for
/// [`rafting_core::member::Member::on_answer`].
pub fn member_view(answer: &Value) -> Option<MemberView> {
    let role = match answer["role"].as_str()? {
        "master" => Role::Master,
        "active" => Role::Active,
        _ => Role::Standby,
    };
    Some(MemberView {
        role,
        epoch: answer["epoch"].as_u64()?,
        phase: if answer["phase"] == "forming" {
            GroupPhase::Forming
        } else {
            GroupPhase::Running
        },
        master: answer["master"].as_str().map(str::to_owned),
        session: SessionId::new(answer["session"].as_u64().unwrap_or(0)),
        expires_at: Millis(answer["expires_at_ms"].as_u64().unwrap_or(0)),
    })
}

impl Rafting {
    /// Joins the master/standby group `name` (creating it if this is the first member) and
    /// keeps the registration alive on a thread of its own. Returns once registered; use
    /// [`Candidate::wait_until_master`] to block until this process leads.
    pub fn join_master_standby(
        self: &Arc<Self>,
        name: &str,
        member: Member,
    ) -> Result<Candidate, Error> {
        let shared = Arc::new(Shared {
            agent: Mutex::new(Agent::new(MemberConfig::with_ttl(member.ttl_ms))),
            changed: Condvar::new(),
            origin: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let rafting = self.clone();
        let group = encode(name);
        let join = format!("/v1/services/{group}/members");
        let member_path = format!("/v1/services/{group}/members/{}", encode(&member.instance));
        let registration = member.registration("master_standby", false).to_string();
        // The first registration happens here, so that a bad request fails the call (an
        // instance whose previous life's session is still alive waits for it on the thread).
        match step(&rafting, &shared, &join, &member_path, &registration) {
            Err(error) if !error.is_retryable() && error.code() != Some("member_exists") => {
                return Err(error);
            }
            _ => {}
        }
        let thread = {
            let shared = shared.clone();
            let instance = member.instance.clone();
            std::thread::Builder::new()
                .name(format!("rafting-member-{instance}"))
                .spawn(move || {
                    while !shared.stop.load(Ordering::Relaxed) {
                        if let Err(error) =
                            step(&rafting, &shared, &join, &member_path, &registration)
                        {
                            tracing::debug!(%error, "member request failed");
                        }
                    }
                    farewell(&rafting, &shared, &group, &instance, &member_path);
                })
                .map_err(|error| Error::Unavailable(format!("cannot start a thread: {error}")))?
        };
        Ok(Candidate {
            shared,
            thread: Some(thread),
        })
    }
}

/// One turn of the member: wait for the agent's next send, send it, report the answer.
fn step(
    rafting: &Rafting,
    shared: &Shared,
    join: &str,
    member_path: &str,
    registration: &str,
) -> Result<(), Error> {
    let action = {
        let agent = shared.agent.lock().unwrap_or_else(|p| p.into_inner());
        agent.next_action(shared.now())
    };
    let (method, path, body) = match action {
        Action::Register => ("POST", join.to_owned(), registration.as_bytes()),
        Action::KeepAlive => ("PUT", format!("{member_path}/keepalive"), &b""[..]),
        Action::WaitUntil(at) => {
            sleep_unless(
                &shared.stop,
                Duration::from_millis(at.since(shared.now()).clamp(1, 20)),
            );
            return Ok(());
        }
    };
    let sent_at = shared.now();
    let timeout = {
        let mut agent = shared.agent.lock().unwrap_or_else(|p| p.into_inner());
        agent.on_sent();
        Duration::from_millis(agent.config().keep_alive_every_ms.max(50))
    };
    let result = rafting.request_with_timeout(method, &path, body, None, timeout);
    let mut agent = shared.agent.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = match result {
        Ok(answer) => match answer.json().ok().as_ref().and_then(member_view) {
            Some(view) => {
                agent.on_answer(sent_at, &view);
                Ok(())
            }
            None => {
                agent.on_failure(shared.now());
                Err(Error::Protocol("a member answer without a role".into()))
            }
        },
        Err(error) if matches!(error.code(), Some("member_not_found" | "session_not_found")) => {
            agent.on_gone(shared.now());
            Ok(())
        }
        Err(error) => {
            agent.on_failure(shared.now());
            Err(error)
        }
    };
    shared.changed.notify_all();
    outcome
}

/// Stops acting, resigns if master, and leaves.
fn farewell(rafting: &Rafting, shared: &Shared, group: &str, instance: &str, member_path: &str) {
    let (was_master, epoch) = {
        let mut agent = shared.agent.lock().unwrap_or_else(|p| p.into_inner());
        let was_master = agent.acting_role(shared.now()) == Role::Master;
        agent.step_down();
        (was_master, agent.epoch())
    };
    shared.changed.notify_all();
    if was_master {
        let body = json!({"instance": instance, "epoch": epoch}).to_string();
        let _ = rafting.write(
            "POST",
            &format!("/v1/services/{group}/resign"),
            body.as_bytes(),
        );
    }
    let _ = rafting.write("DELETE", member_path, &[]);
}
