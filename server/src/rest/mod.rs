//! The REST API: a small pool of HTTP worker threads (tiny_http) in front of one node's
//! [`NodeHandle`].
//!
//! A request is parsed into a [`routes::Route`], its body read under a size cap, handed to a
//! handler ([`kv`], [`transaction`], [`cluster`]) and answered with a JSON body or raw bytes.
//! Every failure is JSON `{"code","message"}` with a stable code ([`errors`]). A write or a
//! linearizable read that reaches a follower is answered `307 Temporary Redirect` with the
//! leader's URL in `Location`, so `curl -L` and the `rafting` client work against any node.

pub mod cluster;
pub mod errors;
pub mod http_metrics;
pub mod json;
pub mod kv;
pub mod routes;
pub mod transaction;

use errors::{ApiError, Reply};
use http_metrics::HttpMetrics;
use rafting_core::NodeId;
use rafting_net::runtime::{ClientError, NodeHandle};
use routes::Route;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The two addresses of one cluster member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddresses {
    pub udp: SocketAddr,
    pub http: SocketAddr,
}

/// What one node's API serves from, shared by its workers.
pub struct Api {
    pub handle: NodeHandle,
    /// Every member's addresses, this node included.
    pub members: BTreeMap<NodeId, NodeAddresses>,
    /// How long a write or a read may wait for the cluster.
    pub request_timeout: Duration,
    /// Largest request body accepted; more is refused with 413.
    pub body_bytes_max: usize,
    pub http_metrics: HttpMetrics,
    /// Set when the node is stopping: long polls end early.
    pub stopping: AtomicBool,
}

impl Api {
    /// Maps a runtime error, redirecting to the leader when the hint names another member.
    pub fn client_error(&self, error: ClientError, url: &str) -> ApiError {
        errors::from_client_error(error, |leader| {
            let leader = NodeId(leader);
            if leader == self.handle.id() {
                return None;
            }
            let addresses = self.members.get(&leader)?;
            Some(format!("http://{}{url}", addresses.http))
        })
    }
}

/// How many HTTP workers serve requests when not configured; long polls hold one each.
pub const HTTP_WORKERS_DEFAULT: usize = 64;

/// The running HTTP server; [`RestServer::stop`] ends its workers.
pub struct RestServer {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl RestServer {
    /// Binds `listen` and starts `workers` threads serving `api`.
    pub fn start(listen: SocketAddr, workers: usize, api: Arc<Api>) -> anyhow::Result<RestServer> {
        let server = tiny_http::Server::http(listen)
            .map_err(|error| anyhow::anyhow!("cannot serve HTTP on {listen}: {error}"))?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for index in 0..workers.max(1) {
            let (server, api, stop) = (server.clone(), api.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name(format!("http-{index}"))
                .spawn(move || serve(&server, &api, &stop))?;
            threads.push(thread);
        }
        Ok(RestServer {
            server,
            workers: threads,
            stop,
        })
    }

    /// Stops accepting requests and waits for the workers to finish the ones they hold.
    pub fn stop(self, api: &Api) {
        api.stopping.store(true, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

fn serve(server: &tiny_http::Server, api: &Api, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(Duration::from_millis(250)) {
            Ok(Some(request)) => answer(request, api),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "HTTP receive failed");
            }
        }
    }
}

/// Serves one request from start to finish; never panics on what the client sent.
fn answer(mut request: tiny_http::Request, api: &Api) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let (route_name, reply) = match routes::parse(&method, &url) {
        Ok(route) => {
            let name = route.name();
            let reply = read_body(&mut request, &route, api.body_bytes_max)
                .and_then(|body| dispatch(api, &route, &url, body));
            (name, reply.unwrap_or_else(ApiError::into_reply))
        }
        Err(error) => ("unknown", error.into_reply()),
    };
    api.http_metrics.count(route_name, reply.status);
    let mut response = tiny_http::Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type));
    for (name, value) in &reply.headers {
        response.add_header(header(name, value));
    }
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "could not send the HTTP answer");
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|_| tiny_http::Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).unwrap())
}

fn read_body(
    request: &mut tiny_http::Request,
    route: &Route,
    body_bytes_max: usize,
) -> Result<Vec<u8>, ApiError> {
    if !route.has_body() {
        return Ok(Vec::new());
    }
    if let Some(length) = request.body_length()
        && length > body_bytes_max
    {
        return Err(ApiError::too_large(length, body_bytes_max));
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(body_bytes_max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|error| ApiError::bad_request(format!("cannot read the body: {error}")))?;
    if body.len() > body_bytes_max {
        return Err(ApiError::too_large(body.len(), body_bytes_max));
    }
    Ok(body)
}

fn dispatch(api: &Api, route: &Route, url: &str, body: Vec<u8>) -> Result<Reply, ApiError> {
    match route {
        Route::KvGet { key, stale } => kv::get(api, url, key, *stale),
        Route::KvPut {
            key,
            compare_version,
            session,
        } => kv::put(api, url, key, body, *compare_version, *session),
        Route::KvDelete { key } => kv::delete(api, url, key),
        Route::KvList { .. } => kv::list(api, url, route),
        Route::KvWatch { .. } => kv::watch(api, url, route),
        Route::Transaction => transaction::run(api, url, &body),
        Route::SessionOpen => transaction::open_session(api, url, &body),
        Route::SessionKeepAlive { session } => transaction::keep_alive(api, url, *session),
        Route::SessionClose { session } => transaction::close_session(api, url, *session),
        Route::Status => Ok(Reply::json(&cluster::status_json(api))),
        Route::Cluster => Ok(cluster::cluster(api)),
        Route::Health => Ok(cluster::health(api)),
        Route::TransferLeader { to } => cluster::transfer_leader(api, url, *to),
        Route::Metrics => Ok(cluster::metrics(api)),
    }
}
