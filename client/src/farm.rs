//! Farms: members that register themselves, and callers that pick among them.

use crate::{Error, Member, Rafting, encode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A farm member as callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FarmMember {
    pub instance: String,
    pub addresses: BTreeMap<String, String>,
    pub weight: u32,
    pub load: u64,
    pub meta: BTreeMap<String, String>,
}

/// A load-balancing policy: given the members that may be picked (registered, not draining,
/// weight above zero, not reported failing), choose one by its position.
pub trait Balancer: Send + Sync {
    fn pick(&self, members: &[FarmMember]) -> Option<usize>;
}

/// A picked member: a cheap handle on the farm's member list (no copy is made per pick).
#[derive(Clone, Debug)]
pub struct Picked {
    members: Arc<Vec<FarmMember>>,
    index: usize,
}

impl std::ops::Deref for Picked {
    type Target = FarmMember;

    fn deref(&self) -> &FarmMember {
        &self.members[self.index]
    }
}

/// Even over the current members, in instance order: a member that joins or leaves shifts
/// the rotation by one, no more.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn pick(&self, members: &[FarmMember]) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(turn % members.len())
    }
}

/// Weighted random: a member is picked with probability proportional to
/// `weight / (1 + load)`. Seedable for tests.
#[derive(Debug)]
pub struct MonteCarlo {
    random: Mutex<ChaCha8Rng>,
}

impl MonteCarlo {
    pub fn new() -> MonteCarlo {
        MonteCarlo::seeded(rand::rng().random())
    }

    pub fn seeded(seed: u64) -> MonteCarlo {
        MonteCarlo {
            random: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }
}

impl Default for MonteCarlo {
    fn default() -> Self {
        MonteCarlo::new()
    }
}

fn share(member: &FarmMember) -> f64 {
    f64::from(member.weight) / (1.0 + member.load as f64)
}

impl Balancer for MonteCarlo {
    fn pick(&self, members: &[FarmMember]) -> Option<usize> {
        let total: f64 = members.iter().map(share).sum();
        if total <= 0.0 {
            return None;
        }
        let draw: f64 = self
            .random
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random();
        let mut point = draw * total;
        for (index, member) in members.iter().enumerate() {
            point -= share(member);
            if point < 0.0 {
                return Some(index);
            }
        }
        members.iter().rposition(|member| share(member) > 0.0)
    }
}

/// How long a member reported failing is skipped (Curator's DownInstancePolicy).
const FAILING_FOR: Duration = Duration::from_secs(5);

/// A farm as a caller sees it: a cached list of members, kept fresh by a watch on the
/// group, and a balancer. `pick` is local: no request is sent.
pub struct Farm {
    name: String,
    members: Arc<RwLock<Arc<Vec<FarmMember>>>>,
    balancer: Box<dyn Balancer>,
    failing: Mutex<BTreeMap<String, Instant>>,
    /// Whether `failing` holds anyone: the common path skips its lock.
    any_failing: AtomicBool,
    stop: Arc<AtomicBool>,
}

impl Farm {
    /// Uses another balancer ([`MonteCarlo`], or your own).
    pub fn with_balancer(mut self, balancer: impl Balancer + 'static) -> Farm {
        self.balancer = Box::new(balancer);
        self
    }

    /// A member to send work to. Local: no request is sent, nothing is copied.
    pub fn pick(&self) -> Result<Picked, Error> {
        let mut members = self
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if self.any_failing.load(Ordering::Relaxed) {
            members = self.without_failing(members);
        }
        match self.balancer.pick(&members) {
            Some(index) if index < members.len() => Ok(Picked { members, index }),
            _ => Err(Error::NoMember(self.name.clone())),
        }
    }

    /// The members not reported failing (all of them if every one is).
    fn without_failing(&self, members: Arc<Vec<FarmMember>>) -> Arc<Vec<FarmMember>> {
        let now = Instant::now();
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        failing.retain(|_, until| *until > now);
        self.any_failing
            .store(!failing.is_empty(), Ordering::Relaxed);
        let healthy: Vec<FarmMember> = members
            .iter()
            .filter(|member| !failing.contains_key(&member.instance))
            .cloned()
            .collect();
        if healthy.is_empty() {
            members
        } else {
            Arc::new(healthy)
        }
    }

    /// The member failed a request: skip it for a while.
    pub fn report_failure(&self, member: &FarmMember) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        failing.insert(member.instance.clone(), Instant::now() + FAILING_FOR);
        self.any_failing.store(true, Ordering::Relaxed);
    }

    /// The members that may be picked now.
    pub fn members(&self) -> Vec<FarmMember> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .to_vec()
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The pickable members of a group's JSON view.
fn pickable(view: &Value) -> Vec<FarmMember> {
    let text_map = |value: &Value| -> BTreeMap<String, String> {
        value
            .as_object()
            .map(|object| {
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    view["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|member| !member["draining"].as_bool().unwrap_or(false))
        .map(|member| FarmMember {
            instance: member["instance"].as_str().unwrap_or_default().to_owned(),
            addresses: text_map(&member["addresses"]),
            weight: member["weight"].as_u64().unwrap_or(1) as u32,
            load: member["load"].as_u64().unwrap_or(0),
            meta: text_map(&member["meta"]),
        })
        .filter(|member| member.weight > 0)
        .collect()
}

/// A farm member's registration, kept alive on a thread of its own. Dropping it leaves the
/// farm gracefully.
pub struct Membership {
    stop: Arc<AtomicBool>,
    load: Arc<Mutex<Option<(u64, bool)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Membership {
    /// Reports the member's load (any unit: in-flight requests, CPU %) with its next
    /// keep-alive; Monte Carlo callers favour low loads.
    pub fn report_load(&self, load: u64) {
        let mut report = self.load.lock().unwrap_or_else(|p| p.into_inner());
        let draining = report.map(|(_, draining)| draining).unwrap_or(false);
        *report = Some((load, draining));
    }

    /// Stops receiving new picks (maintenance) or resumes them; stays registered.
    pub fn set_draining(&self, draining: bool) {
        let mut report = self.load.lock().unwrap_or_else(|p| p.into_inner());
        let load = report.map(|(load, _)| load).unwrap_or(0);
        *report = Some((load, draining));
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Rafting {
    /// Registers this process as a member of the farm `name` (creating the farm if it is the
    /// first) and keeps it alive until the returned handle is dropped.
    pub fn join_farm(self: &Arc<Self>, name: &str, member: Member) -> Result<Membership, Error> {
        join_farm(self.clone(), name, member)
    }

    /// The farm `name` as a caller sees it, picking round robin; see [`Farm::with_balancer`].
    pub fn farm(self: &Arc<Self>, name: &str) -> Result<Farm, Error> {
        farm(self.clone(), name)
    }
}

fn join_farm(rafting: Arc<Rafting>, name: &str, member: Member) -> Result<Membership, Error> {
    let group = encode(name);
    let join = format!("/v1/services/{group}/members");
    let body = member.registration("farm").to_string();
    // A restarted process may find its previous life's registration still alive: it waits
    // for that session to end (at most its TTL).
    let deadline = Instant::now() + Duration::from_millis(member.ttl_ms) + Duration::from_secs(2);
    loop {
        match rafting.write("POST", &join, body.as_bytes()) {
            Err(error) if error.code() == Some("member_exists") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            result => break result.map(drop)?,
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load: Arc<Mutex<Option<(u64, bool)>>> = Arc::new(Mutex::new(None));
    let keep_alive = format!(
        "/v1/services/{group}/members/{}/keepalive",
        encode(&member.instance)
    );
    let leave = format!("/v1/services/{group}/members/{}", encode(&member.instance));
    let interval = Duration::from_millis((member.ttl_ms / 3).max(10));
    let thread = {
        let (stop, load) = (stop.clone(), load.clone());
        std::thread::Builder::new()
            .name(format!("rafting-farm-{}", member.instance))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A little jitter, so that members started together do not beat together.
                    let jitter = rand::rng().random_range(0..=interval.as_millis() as u64 / 10);
                    sleep_unless(&stop, interval - Duration::from_millis(jitter));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let report = *load.lock().unwrap_or_else(|p| p.into_inner());
                    let body = report
                        .map(|(load, draining)| {
                            json!({"load": load, "draining": draining}).to_string()
                        })
                        .unwrap_or_default();
                    match rafting.request("PUT", &keep_alive, body.as_bytes(), None) {
                        Ok(_) => {}
                        Err(error) if error.code() == Some("member_not_found") => {
                            // Its session expired (a long stall): register again.
                            let _ = rafting.write(
                                "POST",
                                &join,
                                member.registration("farm").to_string().as_bytes(),
                            );
                        }
                        Err(error) => tracing::debug!(%error, "farm keep-alive failed"),
                    }
                }
                let _ = rafting.write("DELETE", &leave, &[]);
            })
            .map_err(|error| Error::Unavailable(format!("cannot start a thread: {error}")))?
    };
    Ok(Membership {
        stop,
        load,
        thread: Some(thread),
    })
}

fn farm(rafting: Arc<Rafting>, name: &str) -> Result<Farm, Error> {
    let group = encode(name);
    let view = rafting.request("GET", &format!("/v1/services/{group}"), &[], None);
    let members = match view {
        Ok(answer) => pickable(&answer.json()?),
        Err(error) if error.code() == Some("group_not_found") => Vec::new(),
        Err(error) => return Err(error),
    };
    let members = Arc::new(RwLock::new(Arc::new(members)));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (members, stop) = (members.clone(), stop.clone());
        let watch = format!("/v1/kv/_services/{group}?watch&timeout_ms=10000");
        let show = format!("/v1/services/{group}");
        std::thread::Builder::new()
            .name(format!("rafting-farm-watch-{group}"))
            .spawn(move || {
                let mut since: Option<u64> = None;
                while !stop.load(Ordering::Relaxed) {
                    let url = match since {
                        Some(since) => format!("{watch}&since={since}"),
                        None => watch.clone(),
                    };
                    let batch = rafting
                        .request_with_timeout("GET", &url, &[], None, Duration::from_secs(15))
                        .and_then(|answer| answer.json());
                    let Ok(batch) = batch else {
                        sleep_unless(&stop, Duration::from_millis(200));
                        continue;
                    };
                    since = batch["next_since"].as_u64().or(since);
                    let changed = batch["events"]
                        .as_array()
                        .is_some_and(|events| !events.is_empty());
                    if (changed || since.is_none())
                        && let Ok(view) = rafting
                            .request("GET", &show, &[], None)
                            .and_then(|a| a.json())
                    {
                        *members.write().unwrap_or_else(|p| p.into_inner()) =
                            Arc::new(pickable(&view));
                    }
                }
            })
            .map_err(|error| Error::Unavailable(format!("cannot start a thread: {error}")))?;
    }
    Ok(Farm {
        name: name.to_owned(),
        members,
        balancer: Box::new(RoundRobin::default()),
        failing: Mutex::new(BTreeMap::new()),
        any_failing: AtomicBool::new(false),
        stop,
    })
}

/// Sleeps `duration`, waking early if `stop` is set.
pub(crate) fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(instance: &str, weight: u32, load: u64) -> FarmMember {
        FarmMember {
            instance: instance.into(),
            addresses: BTreeMap::new(),
            weight,
            load,
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn round_robin_gives_every_member_its_turn() {
        let members = [member("a", 1, 0), member("b", 1, 0), member("c", 1, 0)];
        let balancer = RoundRobin::default();
        let mut counts = BTreeMap::new();
        for _ in 0..3_000 {
            *counts
                .entry(members[balancer.pick(&members).unwrap()].instance.clone())
                .or_insert(0) += 1;
        }
        assert!(counts.values().all(|&count| count == 1_000), "{counts:?}");
        assert!(balancer.pick(&[]).is_none());
    }

    #[test]
    fn monte_carlo_follows_the_shares_and_never_picks_a_zero_share() {
        let members = [
            member("a", 3, 0),
            member("b", 1, 0),
            member("c", 2, 1),
            member("z", 0, 0),
        ];
        let balancer = MonteCarlo::seeded(9);
        let mut counts = BTreeMap::new();
        let draws = 40_000;
        for _ in 0..draws {
            *counts
                .entry(members[balancer.pick(&members).unwrap()].instance.clone())
                .or_insert(0.0) += 1.0;
        }
        assert!(!counts.contains_key("z"));
        let expected = [("a", 0.6), ("b", 0.2), ("c", 0.2)];
        let chi_square: f64 = expected
            .iter()
            .map(|(name, p)| {
                let e = p * f64::from(draws);
                (counts[*name] - e).powi(2) / e
            })
            .sum();
        assert!(chi_square < 13.8, "chi-square {chi_square:.2}: {counts:?}");
    }

    #[test]
    fn a_custom_balancer_plugs_in() {
        struct LeastLoaded;
        impl Balancer for LeastLoaded {
            fn pick(&self, members: &[FarmMember]) -> Option<usize> {
                (0..members.len()).min_by_key(|&index| members[index].load)
            }
        }
        let members = [member("a", 1, 5), member("b", 1, 2)];
        assert_eq!(LeastLoaded.pick(&members), Some(1));
    }

    #[test]
    fn draining_and_zero_weight_members_are_not_pickable() {
        let view = json!({"members": [
            {"instance": "a", "weight": 1, "draining": false, "addresses": {"http": "a:1"}},
            {"instance": "b", "weight": 1, "draining": true},
            {"instance": "c", "weight": 0, "draining": false},
        ]});
        let members = pickable(&view);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].addresses["http"], "a:1");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -p rafting-client -- --ignored picks_per_second --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn picks_per_second() {
        let members: Vec<FarmMember> = (0..8)
            .map(|index| FarmMember {
                instance: format!("m{index}"),
                addresses: [("http".to_owned(), format!("10.0.0.{index}:80"))].into(),
                weight: 1,
                load: 0,
                meta: BTreeMap::new(),
            })
            .collect();
        let farm = Farm {
            name: "/bench".into(),
            members: Arc::new(RwLock::new(Arc::new(members))),
            balancer: Box::new(RoundRobin::default()),
            failing: Mutex::new(BTreeMap::new()),
            any_failing: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for (name, farm) in [("round robin", farm)] {
            let picks = 10_000_000u64;
            let started = Instant::now();
            let mut sum = 0usize;
            for _ in 0..picks {
                sum += farm.pick().unwrap().instance.len();
            }
            let rate = picks as f64 / started.elapsed().as_secs_f64();
            println!("{name}: {:.1} M picks/s (checksum {sum})", rate / 1e6);
        }
    }
}
