//! The Rust client of RAFTiNG. The common case is one call, and the safe behaviour is the
//! default:
//!
//! ```no_run
//! use rafting_client::{Member, RoundRobin};
//!
//! # fn main() -> Result<(), rafting_client::Error> {
//! let rafting = rafting_client::connect_from_env()?; // RAFTING_ENDPOINTS, default http://127.0.0.1:8001
//!
//! // Keys: writes are exactly-once (numbered, retried safely across nodes).
//! rafting.put("/config/mode", b"fast")?;
//!
//! // A farm member registers itself; dropping the handle leaves gracefully.
//! let _me = rafting.join_farm("/search", Member::new("search-3").address("http", "10.0.0.7:9000").weight(2))?;
//!
//! // A caller picks a member: round robin by default, or any `Balancer`.
//! let search = rafting.farm("/search")?;
//! let member = search.pick()?;
//! println!("ask {}", member.addresses["http"]);
//!
//! // Master/standby: blocks until this process is master, then hands a guard.
//! let candidate = rafting.join_master_standby("/billing", Member::new("billing-1"))?;
//! let master = candidate.wait_until_master()?;
//! while master.is_valid() {
//!     // ... work, passing master.epoch() as the fencing token to what it writes ...
//! #   break;
//! }
//! # let _ = RoundRobin::default();
//! # Ok(())
//! # }
//! ```
//!
//! Every call takes any node's address: a follower's `307` is followed to the leader, a dead
//! node is skipped for the next one. Errors carry the REST API's stable codes. On a cluster
//! with tenants, set `RAFTING_TOKEN` (or use [`Connect::token`]): every request carries it.

mod farm;
mod master;
mod watch;

pub use farm::{Balancer, Farm, FarmMember, Membership, MonteCarlo, Picked, RoundRobin};
pub use master::{Candidate, MasterGuard, member_view};
pub use watch::{WatchEvent, WatchStream};

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The address used when none is given.
pub const ENDPOINT_DEFAULT: &str = "http://127.0.0.1:8001";
/// How many 307s a request follows.
const REDIRECTS_MAX: usize = 5;

/// What went wrong, with the REST API's stable code when the cluster answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster refused the request: `code` is the API's stable code (`not_found`,
    /// `version_mismatch`, `stale_epoch`, ...).
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No node could be reached, or none answered in time; a write may or may not have been
    /// applied (it is numbered, so retrying it is safe).
    #[error("no node answered: {0}")]
    Unavailable(String),
    /// The answer did not look like the API's.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// A farm has no member to pick (none registered, or all draining or failing).
    #[error("{0} has no member to pick")]
    NoMember(String),
    /// The member's registration ended (the handle was dropped, or the process is stopping).
    #[error("the membership ended")]
    Ended,
}

impl Error {
    /// The REST code, for errors the cluster answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth trying again: the cluster could not decide now (no leader, a timeout, an outcome
    /// unknown), or no node was reached.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => matches!(status, 503 | 504),
            Error::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// A written key's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub revision: u64,
    pub version: u64,
}

/// A connection to a cluster: its nodes' addresses and this client's exactly-once record.
/// Cheap to share between threads (`&Rafting` is all any call needs).
pub struct Rafting {
    endpoints: Vec<String>,
    /// The node that answered last: tried first next time.
    preferred: AtomicU64,
    /// How long one request may take.
    timeout: Duration,
    /// How long a write is retried while its outcome is unknown.
    retry_window: Duration,
    /// `Authorization: Bearer <token>` on every request, on a cluster with tenants.
    authorization: Option<String>,
    /// This client's exactly-once record, registered on the first write.
    client: Mutex<Option<u64>>,
    sequence: AtomicU64,
    /// Sequences whose answer has not arrived: the lowest is what the store must keep.
    outstanding: Mutex<std::collections::BTreeSet<u64>>,
}

/// The environment variable that carries a token, for [`connect_from_env`] and the `rafting`
/// CLI alike.
pub const TOKEN_VARIABLE: &str = "RAFTING_TOKEN";

/// Connects to the nodes listed in `RAFTING_ENDPOINTS` (comma-separated), or
/// [`ENDPOINT_DEFAULT`], with the token in `RAFTING_TOKEN` if it is set.
pub fn connect_from_env() -> Result<Arc<Rafting>, Error> {
    let endpoints =
        std::env::var("RAFTING_ENDPOINTS").unwrap_or_else(|_| ENDPOINT_DEFAULT.to_owned());
    let token = std::env::var(TOKEN_VARIABLE).unwrap_or_default();
    Connect::new(&endpoints).token(&token).connect()
}

/// Connects to the given nodes (comma-separated base URLs). Nothing is sent yet. The handle
/// is shared: farms and memberships keep it on their threads.
pub fn connect(endpoints: &str) -> Result<Arc<Rafting>, Error> {
    Connect::new(endpoints).connect()
}

/// [`connect`] with the time one request may take, and how long a write whose outcome is
/// unknown is retried.
pub fn connect_with(
    endpoints: &str,
    timeout: Duration,
    retry_window: Duration,
) -> Result<Arc<Rafting>, Error> {
    Connect::new(endpoints)
        .timeout(timeout)
        .retry_window(retry_window)
        .connect()
}

/// A connection's settings, for what [`connect`] does not set:
/// `Connect::new(endpoints).token(token).timeout(d).connect()`.
#[derive(Clone, Debug)]
pub struct Connect {
    endpoints: String,
    token: Option<String>,
    timeout: Duration,
    retry_window: Duration,
}

impl Connect {
    /// Comma-separated base URLs of any of the cluster's nodes; 5 s per request and 30 s of
    /// retrying a write whose outcome is unknown, no token.
    pub fn new(endpoints: &str) -> Connect {
        Connect {
            endpoints: endpoints.to_owned(),
            token: None,
            timeout: Duration::from_secs(5),
            retry_window: Duration::from_secs(30),
        }
    }

    /// The tenant's (or the admin's) token, sent as `Authorization: Bearer`; an empty one is
    /// none.
    pub fn token(mut self, token: &str) -> Connect {
        let token = token.trim();
        self.token = (!token.is_empty()).then(|| token.to_owned());
        self
    }

    /// The time one request may take.
    pub fn timeout(mut self, timeout: Duration) -> Connect {
        self.timeout = timeout;
        self
    }

    /// How long a write whose outcome is unknown is retried (with the same numbering).
    pub fn retry_window(mut self, retry_window: Duration) -> Connect {
        self.retry_window = retry_window;
        self
    }

    pub fn connect(self) -> Result<Arc<Rafting>, Error> {
        let endpoints: Vec<String> = self
            .endpoints
            .split(',')
            .map(|endpoint| endpoint.trim().trim_end_matches('/').to_owned())
            .filter(|endpoint| !endpoint.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(Error::Unavailable("no endpoint given".into()));
        }
        Ok(Arc::new(Rafting {
            endpoints,
            preferred: AtomicU64::new(0),
            timeout: self.timeout,
            retry_window: self.retry_window,
            authorization: self.token.map(|token| format!("Bearer {token}")),
            client: Mutex::new(None),
            sequence: AtomicU64::new(0),
            outstanding: Mutex::new(std::collections::BTreeSet::new()),
        }))
    }
}

impl Rafting {
    /// The value of `key`, or `None` if it does not exist (a linearizable read).
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = format!("/v1/kv/{}", encode(key));
        match self.request("GET", &path, &[], None) {
            Ok(Answer { body, .. }) => Ok(Some(body)),
            Err(error) if error.code() == Some("not_found") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes `key`, exactly once however many attempts it takes.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<Written, Error> {
        let path = format!("/v1/kv/{}", encode(key));
        let answer = self.write("PUT", &path, value)?;
        Ok(Written {
            revision: answer["revision"].as_u64().unwrap_or(0),
            version: answer["version"].as_u64().unwrap_or(0),
        })
    }

    /// Deletes `key`, exactly once; `Ok(false)` if it did not exist.
    pub fn delete(&self, key: &str) -> Result<bool, Error> {
        let path = format!("/v1/kv/{}", encode(key));
        match self.write("DELETE", &path, &[]) {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("not_found") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// A write to any path of the REST API (`PUT /v1/kv/...?cas=3`, a service action),
    /// exactly once: registers this client's record on first use, gives the write the next
    /// sequence, and retries it with the same numbering on every node in turn while its
    /// outcome is unknown. Answers the node's JSON.
    pub fn write(&self, method: &str, path: &str, body: &[u8]) -> Result<Value, Error> {
        let client = self.client_id()?;
        let (sequence, acknowledged_below) = {
            let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
            outstanding.insert(sequence);
            (sequence, *outstanding.first().expect("just inserted"))
        };
        let headers = [
            ("X-Rafting-Client", client.to_string()),
            ("X-Rafting-Sequence", sequence.to_string()),
            // Every answer below the lowest unanswered write has arrived: the store may
            // forget them.
            (
                "X-Rafting-Acknowledged-Below",
                acknowledged_below.to_string(),
            ),
        ];
        let started = Instant::now();
        let result = loop {
            match self.request(method, path, body, Some(&headers)) {
                Ok(answer) => break answer.json(),
                Err(error) if error.is_retryable() && started.elapsed() < self.retry_window => {
                    tracing::debug!(%error, "retrying a write whose outcome is unknown");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => break Err(error),
            }
        };
        if !result.as_ref().is_err_and(Error::is_retryable) {
            // Answered (or refused for good): a later retry of it will never be sent.
            let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            outstanding.remove(&sequence);
        }
        result
    }

    fn client_id(&self) -> Result<u64, Error> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = *client {
            return Ok(id);
        }
        let started = Instant::now();
        let answer = loop {
            match self.request("POST", "/v1/clients", &[], None) {
                Ok(answer) => break answer.json()?,
                Err(error) if error.is_retryable() && started.elapsed() < self.retry_window => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(error),
            }
        };
        let id = answer["client"].as_u64().ok_or_else(|| {
            Error::Protocol(format!("a registration without a client id: {answer}"))
        })?;
        *client = Some(id);
        Ok(id)
    }

    /// Sends one request to the preferred node, then to the others in turn when a node
    /// cannot be reached; follows 307s to the leader.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: Option<&[(&str, String)]>,
    ) -> Result<Answer, Error> {
        self.request_with_timeout(method, path, body, headers, self.timeout)
    }

    pub(crate) fn request_with_timeout(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: Option<&[(&str, String)]>,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .build();
        let with_token: Vec<(&str, String)>;
        let headers = match &self.authorization {
            Some(authorization) => {
                with_token = headers
                    .unwrap_or_default()
                    .iter()
                    .cloned()
                    .chain([("Authorization", authorization.clone())])
                    .collect();
                Some(&with_token[..])
            }
            None => headers,
        };
        let count = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) as usize % count;
        let mut last = Error::Unavailable("no attempt".into());
        for offset in 0..count {
            let endpoint = (first + offset) % count;
            match send(
                &agent,
                method,
                &format!("{}{path}", self.endpoints[endpoint]),
                body,
                headers,
            ) {
                Err(error @ Error::Unavailable(_)) => last = error,
                result => {
                    self.preferred.store(endpoint as u64, Ordering::Relaxed);
                    return result;
                }
            }
        }
        Err(last)
    }

    /// Opens a streamed answer (a `GET` whose body stays open) on the preferred node, or the
    /// others in turn; a read that waits longer than `read_timeout` fails.
    pub(crate) fn open_stream(
        &self,
        path: &str,
        read_timeout: Duration,
    ) -> Result<Box<dyn std::io::BufRead + Send + Sync>, Error> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout)
            .timeout_read(read_timeout)
            .redirects(0)
            .build();
        let count = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) as usize % count;
        let mut last = Error::Unavailable("no attempt".into());
        for offset in 0..count {
            let endpoint = (first + offset) % count;
            let url = format!("{}{path}", self.endpoints[endpoint]);
            let mut request = agent.get(&url);
            if let Some(authorization) = &self.authorization {
                request = request.set("Authorization", authorization);
            }
            match request.call() {
                Ok(response) => {
                    self.preferred.store(endpoint as u64, Ordering::Relaxed);
                    return Ok(Box::new(std::io::BufReader::new(response.into_reader())));
                }
                Err(ureq::Error::Status(status, response)) => {
                    return Err(api_error(status, response));
                }
                Err(error) => last = Error::Unavailable(format!("GET {url}: {error}")),
            }
        }
        Err(last)
    }

    /// The nodes this client talks to.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
}

/// A successful answer: its status, the API's own headers (`X-Rafting-*`) and its body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of an `X-Rafting-*` header, by its name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|error| Error::Protocol(format!("not JSON: {error}")))
    }
}

/// Sends one request to one URL (not to the other endpoints), following 307s with the same
/// method, headers and body, within `timeout` per exchange. For tools that address a node
/// themselves; services use a [`Rafting`] handle.
pub fn send_to(
    method: &str,
    url: &str,
    body: &[u8],
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<Answer, Error> {
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    send(&agent, method, url, body, Some(headers))
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: &[u8],
    headers: Option<&[(&str, String)]>,
) -> Result<Answer, Error> {
    let mut url = url.to_owned();
    for _ in 0..=REDIRECTS_MAX {
        let mut request = agent.request(method, &url);
        for (name, value) in headers.unwrap_or_default() {
            request = request.set(name, value);
        }
        let result = if body.is_empty() && method != "POST" && method != "PUT" {
            request.call()
        } else {
            request.send_bytes(body)
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => return Err(api_error(status, response)),
            Err(error) => return Err(Error::Unavailable(format!("{method} {url}: {error}"))),
        };
        if matches!(response.status(), 307 | 308) {
            match response.header("Location") {
                Some(location) => {
                    url = location.to_owned();
                    continue;
                }
                None => return Err(Error::Protocol("a redirect without Location".into())),
            }
        }
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter(|name| name.to_ascii_lowercase().starts_with("x-rafting-"))
            .filter_map(|name| {
                let value = response.header(&name)?.to_owned();
                Some((name, value))
            })
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
            .map_err(|error| Error::Unavailable(format!("reading the answer: {error}")))?;
        return Ok(Answer {
            status,
            headers,
            body,
        });
    }
    Err(Error::Protocol(format!(
        "too many redirects for {method} {url}"
    )))
}

/// Percent-encodes a key or a group name for a URL path, keeping its `/` separators (a
/// leading `/` is dropped: `/a b/c` becomes `a%20b/c`).
pub fn encode(key: &str) -> String {
    let mut out = String::new();
    for byte in key.trim_start_matches('/').bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A member's description, for [`Rafting::join_farm`] and [`Rafting::join_master_standby`]:
/// an instance id unique in its group, and what callers need to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub instance: String,
    pub addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub weight: u32,
    pub priority: i64,
    /// Session TTL: a member that stops keeping alive leaves after this long (default 2 s).
    pub ttl_ms: u64,
}

impl Member {
    pub fn new(instance: impl Into<String>) -> Member {
        Member {
            instance: instance.into(),
            addresses: BTreeMap::new(),
            meta: BTreeMap::new(),
            weight: 1,
            priority: 0,
            ttl_ms: 2_000,
        }
    }

    pub fn address(mut self, name: impl Into<String>, value: impl Into<String>) -> Member {
        self.addresses.insert(name.into(), value.into());
        self
    }

    pub fn meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Member {
        self.meta.insert(name.into(), value.into());
        self
    }

    /// A farm member's share of the picks (default 1).
    pub fn weight(mut self, weight: u32) -> Member {
        self.weight = weight;
        self
    }

    /// Preference as master (higher first; default 0).
    pub fn priority(mut self, priority: i64) -> Member {
        self.priority = priority;
        self
    }

    pub fn ttl_ms(mut self, ttl_ms: u64) -> Member {
        self.ttl_ms = ttl_ms;
        self
    }

    /// The registration body; a farm member that registers again while draining says so.
    pub(crate) fn registration(&self, mode: &str, draining: bool) -> Value {
        json!({
            "draining": draining,
            "instance": self.instance,
            "addresses": self.addresses,
            "meta": self.meta,
            "weight": self.weight,
            "priority": self.priority,
            "ttl_ms": self.ttl_ms,
            "mode": mode,
        })
    }
}

/// The API's error answer (`{"code","message"}`) to a request, as an [`Error::Api`].
fn api_error(status: u16, response: ureq::Response) -> Error {
    let body: Value = response.into_json().unwrap_or(Value::Null);
    Error::Api {
        status,
        code: body["code"].as_str().unwrap_or("error").to_owned(),
        message: body["message"].as_str().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_becomes_a_bearer_header_and_an_empty_one_none() {
        let with = Connect::new("http://a:1").token(" t0k ").connect().unwrap();
        assert_eq!(with.authorization.as_deref(), Some("Bearer t0k"));
        let without = Connect::new("http://a:1").token("  ").connect().unwrap();
        assert_eq!(without.authorization, None);
    }

    #[test]
    fn endpoints_are_split_trimmed_and_required() {
        let rafting = connect(" http://a:1/, http://b:2 ,").unwrap();
        assert_eq!(rafting.endpoints(), ["http://a:1", "http://b:2"]);
        assert!(connect(" , ").is_err());
    }

    #[test]
    fn keys_keep_their_slashes_and_escape_the_rest() {
        assert_eq!(encode("/a b/c"), "a%20b/c");
    }

    #[test]
    fn retryable_errors_are_the_undecided_ones() {
        let api = |status| Error::Api {
            status,
            code: "x".into(),
            message: String::new(),
        };
        assert!(api(503).is_retryable() && api(504).is_retryable());
        assert!(!api(409).is_retryable());
        assert!(Error::Unavailable("down".into()).is_retryable());
    }
}
