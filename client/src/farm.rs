//! Farms: members that register themselves, and callers that pick among them.

use crate::{Error, Member, Rafting, encode};
use rafting_core::farm;
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
///
/// Implement it for a policy of your own and pass it to [`Farm::with_balancer`]. Least load
/// (members report their load with [`Membership::report_load`]):
///
/// ```
/// use rafting_client::{Balancer, FarmMember};
///
/// struct LeastLoaded;
///
/// impl Balancer for LeastLoaded {
///     fn pick(&self, members: &[FarmMember]) -> Option<usize> {
///         (0..members.len()).min_by_key(|&index| members[index].load)
///     }
/// }
/// ```
///
/// Sticky by key (the same customer to the same member while the membership holds; a member
/// that leaves moves only its own customers, by rendezvous hashing):
///
/// ```
/// use rafting_client::{Balancer, FarmMember};
/// use std::collections::hash_map::DefaultHasher;
/// use std::hash::{Hash, Hasher};
///
/// struct StickyBy(String);
///
/// impl Balancer for StickyBy {
///     fn pick(&self, members: &[FarmMember]) -> Option<usize> {
///         let score = |member: &FarmMember| {
///             let mut hasher = DefaultHasher::new();
///             (&self.0, &member.instance).hash(&mut hasher);
///             hasher.finish()
///         };
///         (0..members.len()).max_by_key(|&index| score(&members[index]))
///     }
/// }
/// ```
///
/// A policy that depends on the call (like the key above) goes to [`Farm::pick_with`]:
/// `search.pick_with(&StickyBy(customer.into()))`.
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
        farm::round_robin(turn as u64, members.len())
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

impl Balancer for MonteCarlo {
    fn pick(&self, members: &[FarmMember]) -> Option<usize> {
        let draw: f64 = self
            .random
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random();
        farm::monte_carlo(members, draw)
    }
}

/// Callers hold only pickable members: never draining.
impl farm::Candidate for FarmMember {
    fn weight(&self) -> u32 {
        self.weight
    }
    fn load(&self) -> u64 {
        self.load
    }
    fn draining(&self) -> bool {
        false
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
        self.pick_with(self.balancer.as_ref())
    }

    /// A member chosen by `balancer` for this call only (a sticky-by-key policy, say), among
    /// the same members [`Farm::pick`] chooses from.
    pub fn pick_with(&self, balancer: &dyn Balancer) -> Result<Picked, Error> {
        let mut members = self
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if self.any_failing.load(Ordering::Relaxed) {
            members = self.without_failing(members);
        }
        match balancer.pick(&members) {
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
        .filter(farm::pickable)
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
    let body = member.registration("farm", false).to_string();
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
                            // Its session expired (a long stall): register again, still
                            // draining if it was.
                            let draining = report.is_some_and(|(_, draining)| draining);
                            let _ = rafting.write(
                                "POST",
                                &join,
                                member.registration("farm", draining).to_string().as_bytes(),
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
    let mirror = Mirror::of(name);
    let (members, since) = mirror.read(&rafting)?;
    let members = Arc::new(RwLock::new(Arc::new(members)));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (members, stop) = (members.clone(), stop.clone());
        let set = move |list: Vec<FarmMember>| {
            *members.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        };
        std::thread::Builder::new()
            .name(format!("rafting-farm-watch-{}", mirror.path))
            .spawn(move || {
                // The watch starts where the first read ended, so no change falls between
                // them; a watch that fell behind the kept history reads the group afresh.
                let mut since = Some(since);
                while !stop.load(Ordering::Relaxed) {
                    let Some(from) = since else {
                        match mirror.read(&rafting) {
                            Ok((list, next)) => {
                                set(list);
                                since = Some(next);
                            }
                            Err(_) => sleep_unless(&stop, Duration::from_millis(200)),
                        }
                        continue;
                    };
                    match mirror.watch(&rafting, from) {
                        Ok((latest, next)) => {
                            if let Some(list) = latest {
                                set(list);
                            }
                            since = Some(next);
                        }
                        Err(error) if error.code() == Some("compacted") => since = None,
                        Err(_) => sleep_unless(&stop, Duration::from_millis(200)),
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

/// A group's mirror key (`/_services<name>`, the group's view as JSON, rewritten at each
/// change): what a caller reads once and then watches.
struct Mirror {
    /// The key as watch events name it.
    key: String,
    /// The key in a URL.
    path: String,
}

impl Mirror {
    fn of(name: &str) -> Mirror {
        let group = encode(name);
        Mirror {
            key: format!("/_services/{}", name.trim_start_matches('/')),
            path: format!("_services/{group}"),
        }
    }

    /// The pickable members now, and the revision to watch from. One listing: the key
    /// sorts before every longer key it prefixes, so the first entry is the group's view if
    /// the group exists.
    fn read(&self, rafting: &Rafting) -> Result<(Vec<FarmMember>, u64), Error> {
        let listing = rafting
            .request(
                "GET",
                &format!("/v1/kv/{}?list&limit=1", self.path),
                &[],
                None,
            )?
            .json()?;
        let revision = listing["revision"]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("a listing without a revision: {listing}")))?;
        let members = match listing["entries"].get(0) {
            Some(entry) if entry["key"] == self.key.as_str() => self.members(entry)?,
            _ => Vec::new(),
        };
        Ok((members, revision + 1))
    }

    /// One long poll from `since`: the members after the group's last change in the batch
    /// (`None` if the batch did not change it), and where to poll next.
    fn watch(
        &self,
        rafting: &Rafting,
        since: u64,
    ) -> Result<(Option<Vec<FarmMember>>, u64), Error> {
        let url = format!("/v1/kv/{}?watch&timeout_ms=10000&since={since}", self.path);
        let batch = rafting
            .request_with_timeout("GET", &url, &[], None, Duration::from_secs(15))?
            .json()?;
        let next = batch["next_since"].as_u64().ok_or_else(|| {
            Error::Protocol(format!("a watch answer without next_since: {batch}"))
        })?;
        let last = batch["events"]
            .as_array()
            .and_then(|events| events.iter().rev().find(|e| e["key"] == self.key.as_str()));
        let latest = match last {
            None => None,
            Some(event) if event["type"] == "delete" => Some(Vec::new()),
            Some(event) => Some(self.members(event)?),
        };
        Ok((latest, next))
    }

    /// The pickable members of a listing entry or watch event carrying the group's view.
    fn members(&self, carrier: &Value) -> Result<Vec<FarmMember>, Error> {
        let view: Value = carrier["value"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| Error::Protocol(format!("{} does not hold a group view", self.key)))?;
        Ok(pickable(&view))
    }
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
    fn monte_carlo_is_seedable_and_never_picks_a_zero_share() {
        // Its distribution is core's (`rafting_core::farm`, chi-square tested there).
        let members = [member("a", 3, 0), member("b", 1, 0), member("z", 0, 0)];
        let draws = |seed| -> Vec<usize> {
            let balancer = MonteCarlo::seeded(seed);
            (0..200).map(|_| balancer.pick(&members).unwrap()).collect()
        };
        assert_eq!(draws(9), draws(9));
        assert!(!draws(9).contains(&2));
        assert!(draws(9).contains(&0) && draws(9).contains(&1));
    }

    /// A farm over fixed members, with no watch behind it.
    pub(super) fn fixed_farm(members: Vec<FarmMember>) -> Farm {
        Farm {
            name: "/fixed".into(),
            members: Arc::new(RwLock::new(Arc::new(members))),
            balancer: Box::new(RoundRobin::default()),
            failing: Mutex::new(BTreeMap::new()),
            any_failing: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn a_custom_balancer_plugs_in_for_the_farm_and_for_one_call() {
        struct LeastLoaded;
        impl Balancer for LeastLoaded {
            fn pick(&self, members: &[FarmMember]) -> Option<usize> {
                (0..members.len()).min_by_key(|&index| members[index].load)
            }
        }
        struct Named(&'static str);
        impl Balancer for Named {
            fn pick(&self, members: &[FarmMember]) -> Option<usize> {
                members.iter().position(|member| member.instance == self.0)
            }
        }
        let members = vec![member("a", 1, 5), member("b", 1, 2), member("c", 1, 9)];
        let farm = fixed_farm(members).with_balancer(LeastLoaded);
        assert_eq!(farm.pick().unwrap().instance, "b");
        assert_eq!(farm.pick_with(&Named("c")).unwrap().instance, "c");
        // A balancer that finds nothing, or answers out of range, is "no member".
        assert!(matches!(
            farm.pick_with(&Named("zz")),
            Err(Error::NoMember(_))
        ));
    }

    /// A node that answers each request (one per connection) from `script`, keyed by the
    /// request's path, and records the paths asked for.
    fn scripted_node(
        script: impl Fn(&str, usize) -> (u16, String) + Send + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = asked.clone();
        std::thread::spawn(move || {
            for (turn, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let path = first.split(' ').nth(1).unwrap_or_default().to_owned();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                record.lock().unwrap().push(path.clone());
                let (status, body) = script(&path, turn);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, asked)
    }

    fn view_of(instances: &[&str]) -> String {
        let members: Vec<Value> = instances
            .iter()
            .map(|instance| json!({"instance": instance, "addresses": {}, "weight": 1}))
            .collect();
        json!({"members": members}).to_string()
    }

    fn instances(farm: &Farm) -> Vec<String> {
        farm.members().into_iter().map(|m| m.instance).collect()
    }

    fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_caller_watches_from_where_its_first_read_ended_and_follows_the_view_in_the_events() {
        // Revision 7: the group holds `a`. The watch must start at 8, where the read ended
        // (a watch "from now on" would miss a member that registered in between); the event
        // at 8 carries the new view, so no other read is needed; at 9 the group is deleted;
        // then the watch falls behind the kept history and the caller reads the group afresh.
        let (url, asked) = scripted_node(|path, turn| {
            let key = "/_services/echo";
            let event = |revision: u64, kind: &str, view: Option<String>| {
                let mut event = json!({"revision": revision, "key": key, "type": kind});
                if let Some(view) = view {
                    event["value"] = json!(view);
                }
                event
            };
            let other = json!({"revision": 8, "key": "/_services/echo2", "type": "put",
                               "value": view_of(&["x"])});
            match path {
                p if p.ends_with("?list&limit=1") && turn == 0 => {
                    let entries = [json!({"key": key, "value": view_of(&["a"])})];
                    (200, json!({"revision": 7, "entries": entries}).to_string())
                }
                p if p.ends_with("?list&limit=1") => {
                    let entries = [json!({"key": key, "value": view_of(&["c"])})];
                    (200, json!({"revision": 20, "entries": entries}).to_string())
                }
                p if p.ends_with("&since=8") => (
                    200,
                    json!({"events": [event(8, "put", Some(view_of(&["a", "b"]))), other],
                           "next_since": 9, "current_revision": 8})
                    .to_string(),
                ),
                p if p.ends_with("&since=9") => {
                    std::thread::sleep(Duration::from_millis(300));
                    (
                        200,
                        json!({"events": [event(9, "delete", None)], "next_since": 10,
                               "current_revision": 9})
                        .to_string(),
                    )
                }
                p if p.ends_with("&since=10") => {
                    std::thread::sleep(Duration::from_millis(300));
                    (
                        410,
                        json!({"code": "compacted", "message": "gone"}).to_string(),
                    )
                }
                _ => {
                    std::thread::sleep(Duration::from_millis(200));
                    (
                        503,
                        json!({"code": "unavailable", "message": "-"}).to_string(),
                    )
                }
            }
        });
        let rafting = crate::connect(&url).unwrap();
        let farm = rafting.farm("/echo").unwrap();
        assert_eq!(instances(&farm), ["a"], "the first read");
        eventually("the event's view", || instances(&farm) == ["a", "b"]);
        eventually("the group's deletion", || instances(&farm).is_empty());
        eventually("a fresh read after compaction", || {
            instances(&farm) == ["c"]
        });
        eventually("the watch from the fresh read", || {
            asked.lock().unwrap().len() >= 6
        });
        let asked = asked.lock().unwrap().clone();
        assert_eq!(
            asked[..4],
            [
                "/v1/kv/_services/echo?list&limit=1",
                "/v1/kv/_services/echo?watch&timeout_ms=10000&since=8",
                "/v1/kv/_services/echo?watch&timeout_ms=10000&since=9",
                "/v1/kv/_services/echo?watch&timeout_ms=10000&since=10",
            ],
            "{asked:?}"
        );
        assert_eq!(
            asked[4..6],
            [
                "/v1/kv/_services/echo?list&limit=1",
                "/v1/kv/_services/echo?watch&timeout_ms=10000&since=21",
            ],
            "{asked:?}"
        );
    }

    #[test]
    fn a_member_reported_failing_is_skipped_unless_every_member_is() {
        let farm = fixed_farm(vec![member("a", 1, 0), member("b", 1, 0)]);
        let a = farm.pick().unwrap();
        assert_eq!(a.instance, "a");
        farm.report_failure(&a);
        for _ in 0..10 {
            assert_eq!(farm.pick().unwrap().instance, "b");
        }
        let b = farm.pick().unwrap();
        farm.report_failure(&b);
        // Both failing: better a member that may have recovered than none.
        let picked: Vec<String> = (0..4)
            .map(|_| farm.pick().unwrap().instance.clone())
            .collect();
        assert!(picked.contains(&"a".to_owned()) && picked.contains(&"b".to_owned()));
    }

    #[test]
    fn round_robin_stays_even_as_members_come_and_go() {
        let balancer = RoundRobin::default();
        let mut members = vec![member("a", 1, 0), member("b", 1, 0), member("c", 1, 0)];
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let round = |members: &[FarmMember], counts: &mut BTreeMap<String, usize>| {
            for _ in 0..members.len() {
                let index = balancer.pick(members).unwrap();
                *counts.entry(members[index].instance.clone()).or_default() += 1;
            }
        };
        round(&members, &mut counts);
        members.push(member("d", 1, 0));
        round(&members, &mut counts);
        members.remove(0);
        round(&members, &mut counts);
        // Over each round, every member then present got exactly one pick.
        assert_eq!(counts["a"], 2);
        assert_eq!(counts["b"], 3);
        assert_eq!(counts["c"], 3);
        assert_eq!(counts["d"], 2);
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
        let farm = super::tests::fixed_farm(members);
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
