//! The REST API: the HTTP server of [`crate::http`] (an event loop and a few workers) in front
//! of one node's [`NodeHandle`].
//!
//! A request is parsed into a [`routes::Route`], its body read under a size cap, handed to a
//! handler ([`kv`], [`transaction`], [`cluster`]) and answered with a JSON body or raw bytes.
//! Every failure is JSON `{"code","message"}` with a stable code ([`errors`]). A write or a
//! linearizable read that reaches a follower is answered `307 Temporary Redirect` with the
//! leader's URL in `Location`, so `curl -L` and the `rafting` client work against any node.
//! A watch long poll is answered later, from the registry of [`watches`], and holds no worker
//! while it waits. A key get, put or delete holds none either: on an open cluster the event
//! loop hands it to the node itself, and the node loop answers it ([`kv::submit`]).

pub mod auth;
pub mod cluster;
pub mod cors;
pub mod errors;
pub mod front;
pub mod http_metrics;
pub mod json;
pub mod kv;
pub mod members;
pub mod pick;
pub mod routes;
pub mod services;
pub mod streams;
pub mod tenants;
#[cfg(test)]
mod tests;
pub mod throttle;
pub mod transaction;
pub mod ui;
pub mod watches;

use crate::http::{
    ConnectionState, Handler, HttpError, HttpServer, Limits, Request, RequestHead, Responder,
    Response, Screened,
};
use errors::{ApiError, Reply};
use http_metrics::HttpMetrics;
use rafting_core::NodeId;
use rafting_core::replica::Numbered;
use rafting_core::store::{Caps, ClientId, TenantId};
use rafting_net::runtime::members::MemberAddress;
use rafting_net::runtime::{ClientError, NodeHandle};
use routes::Route;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where an answer given later goes, once: a watch's (from the watch registry's thread), or a
/// key read's or write's (from the node loop's: [`kv::submit`]).
pub type Finish = Box<dyn FnOnce(Result<Reply, ApiError>) + Send>;

/// The two addresses of one cluster member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddresses {
    pub udp: SocketAddr,
    pub http: SocketAddr,
}

/// What one node's API serves from, shared by its workers.
pub struct Api {
    pub handle: NodeHandle,
    /// The members' addresses the node was started with (flags or `members.toml`), this node
    /// included. The configuration in force decides who is a member now:
    /// [`Api::member_addresses`].
    pub members: BTreeMap<NodeId, NodeAddresses>,
    /// How long a write or a read may wait for the cluster.
    pub request_timeout: Duration,
    /// Largest request body accepted; more is refused with 413.
    pub body_bytes_max: usize,
    pub http_metrics: HttpMetrics,
    /// Set when the node is stopping: long polls end early.
    pub stopping: AtomicBool,
    /// Whether `POST /v1/debug/panic` (kill the node loop) is served; only tests set it.
    pub debug_panic_route: bool,
    /// Round-robin positions of `pick`, per group (each node rotates on its own).
    pub pick_counters: std::sync::Mutex<BTreeMap<String, u64>>,
    /// The administrator's token; `None`: the cluster runs open, in the default tenant.
    pub admin_token: Option<String>,
    /// Watch long polls open on this node, per tenant (the `watches` cap), and the registry
    /// that answers the waiting ones ([`watches`]).
    pub watches_open: watches::OpenWatches,
    /// The replica's rate refusals still in force, to refuse at a request's head ([`throttle`]).
    pub throttles: throttle::Throttles,
    /// Connections open to this node, per tenant (the `connections` cap; see [`front`]).
    pub tenant_connections: front::TenantConnections,
}

/// One request's view of the API: the node, and the tenant the request acts in (from its
/// token; see [`auth`]). Handlers take it where they touch tenant data.
pub struct Scoped<'a> {
    pub api: &'a Api,
    pub tenant: TenantId,
    /// The tenant's caps, as read when its token was checked (`None`: unlimited).
    pub caps: Option<Caps>,
    pub principal: auth::Principal,
}

impl std::ops::Deref for Scoped<'_> {
    type Target = Api;

    fn deref(&self) -> &Api {
        self.api
    }
}

impl Scoped<'_> {
    /// [`Api::tenant_client_error`] (a tenant's request failed).
    pub fn client_error(&self, error: ClientError, url: &str) -> ApiError {
        self.api.tenant_client_error(error, url)
    }
}

impl Api {
    /// Every member of the configuration in force with its addresses, this node included (see
    /// [`rafting_net::runtime::members::resolve`]): members added at runtime come with the
    /// addresses their configuration entry carries.
    pub fn member_addresses(&self) -> BTreeMap<NodeId, NodeAddresses> {
        let status = self.handle.status();
        let own = self.handle.id();
        let decode = |text: &str| {
            MemberAddress::decode(text).map(|address| NodeAddresses {
                udp: address.udp,
                http: address.http,
            })
        };
        let mut table = rafting_net::runtime::members::resolve(
            own,
            &status.membership,
            status.membership_learned,
            &self.members,
            decode,
        );
        if let Some(addresses) = self.members.get(&own) {
            table.insert(own, *addresses);
        }
        table
    }

    /// The request's `Origin` when it is a member's own page ([`cors`]); the members are
    /// looked up only for a request that names an origin.
    pub fn member_origin(&self, headers: &[(String, Vec<u8>)]) -> Option<String> {
        let has_origin = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("Origin"));
        has_origin
            .then(|| cors::member_origin(headers, &self.member_addresses()))
            .flatten()
    }

    /// [`Api::client_error`] for a tenant's request, remembering a rate refusal of the
    /// replica so that the tenant's next requests that would meet it are refused at their
    /// heads ([`throttle`]).
    pub fn tenant_client_error(&self, error: ClientError, url: &str) -> ApiError {
        if let ClientError::RateLimited(refusal) = &error {
            self.throttles.remember(refusal, std::time::Instant::now());
        }
        self.client_error(error, url)
    }

    /// Maps a runtime error, redirecting to the leader when the hint names another member.
    pub fn client_error(&self, error: ClientError, url: &str) -> ApiError {
        errors::from_client_error(error, |leader| {
            let leader = NodeId(leader);
            if leader == self.handle.id() {
                return None;
            }
            let addresses = self.member_addresses().get(&leader).copied()?;
            Some(format!("http://{}{url}", addresses.http))
        })
    }
}

/// Concurrent HTTP connections served when not configured (each costs a descriptor and a few
/// kilobytes, not a thread).
pub const HTTP_CONNECTIONS_DEFAULT: usize = 16_384;

/// Descriptors kept for everything but HTTP connections: the WAL, sockets, logs.
const FILES_RESERVED: u64 = 64;

/// The running HTTP server; [`RestServer::stop`] ends it.
pub struct RestServer {
    server: HttpServer,
}

impl RestServer {
    /// Binds `listen` and serves `api` on up to `connections_max` connections at once.
    pub fn start(
        listen: SocketAddr,
        connections_max: usize,
        api: Arc<Api>,
    ) -> anyhow::Result<RestServer> {
        // Each connection is one descriptor: a cap above the open-files limit would leave
        // newcomers failing to be accepted instead of evicting idle connections.
        let connections_max = match crate::http::raise_open_files_limit() {
            Ok(files) if files < connections_max as u64 + FILES_RESERVED => {
                let allowed = files.saturating_sub(FILES_RESERVED).max(1) as usize;
                tracing::warn!(
                    files,
                    connections_max,
                    allowed,
                    "the open-files limit is below the HTTP connection cap; serving at most \
                     {allowed} connections (raise `ulimit -n` for more)"
                );
                allowed
            }
            Ok(_) => connections_max,
            Err(error) => {
                tracing::warn!(%error, "cannot raise the open-files limit");
                connections_max
            }
        };
        let limits = Limits {
            connections_max,
            body_bytes_max: api.body_bytes_max,
            ..Limits::default()
        };
        let server = HttpServer::start(listen, limits, Arc::new(api))
            .map_err(|error| anyhow::anyhow!("cannot serve HTTP on {listen}: {error}"))?;
        Ok(RestServer { server })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stops accepting requests and lets the ones in progress finish (long polls end early).
    pub fn stop(self, api: &Api) {
        api.stopping.store(true, Ordering::Relaxed);
        let waiting = api.watches_open.waiting();
        if waiting > 0 {
            tracing::info!(waiting, "stopping: answering the watches that wait");
        }
        let streaming = api.watches_open.streaming();
        if streaming > 0 {
            tracing::info!(streaming, "stopping: ending the watch streams");
        }
        api.watches_open.stop();
        self.server
            .stop(api.request_timeout + Duration::from_secs(1));
    }
}

/// The server's handler is the shared API, so that an answer completed later on another
/// thread (a key write's, on the node loop's) can still reach it, to redirect to the leader.
impl Handler for Arc<Api> {
    /// Counts a tenant's connections and refuses what a rate refusal still covers, before the
    /// body is read ([`front`]).
    fn screen(&self, head: &RequestHead<'_>, state: &mut ConnectionState) -> Option<Screened> {
        front::screen(self, head, state)
    }

    /// Serves one request and waits for its answer (a watch's included).
    fn handle(&self, request: Request) -> Response {
        let (responder, answer) = Responder::channel();
        self.serve(request, responder);
        answer.recv().unwrap_or_else(|_| {
            into_response(
                ApiError::new(500, "internal", "the request went unanswered").into_reply(),
            )
        })
    }

    /// On an open cluster, key gets, puts and deletes are handed to the node and never wait
    /// on the event loop ([`kv::submit`]). With tokens, checking one reads the store and
    /// waits, so every request goes to a worker.
    fn serves_without_waiting(&self, request: &Request) -> bool {
        self.admin_token.is_none()
            && matches!(
                routes::parse(&request.method, &request.target),
                Ok(Route::KvGet { .. } | Route::KvPut { .. } | Route::KvDelete { .. })
            )
    }

    /// Serves one request; a member's dashboard may call it from another origin ([`cors`]).
    /// A watch is answered later by the watch registry, a key get, put or delete later by the
    /// node loop ([`kv::submit`]); anything else at once.
    fn serve(&self, request: Request, responder: Responder) {
        let origin = self.member_origin(&request.headers);
        if let Some(origin) = &origin
            && request.method == "OPTIONS"
        {
            self.http_metrics.count("cors_preflight", 204);
            responder.send(cors::preflight(origin));
            return;
        }
        let route = routes::parse(&request.method, &request.target);
        match route {
            Ok(route @ Route::KvWatch { .. }) => {
                self.watch(&route, &request, origin, responder);
                return;
            }
            Ok(route @ (Route::KvGet { .. } | Route::KvPut { .. } | Route::KvDelete { .. })) => {
                self.submit(route, request, origin, responder);
                return;
            }
            _ => {}
        }
        let mut response = self.answer(request, route);
        if let Some(origin) = &origin {
            cors::allow(&mut response, origin);
        }
        responder.send(response);
    }

    fn refuse(&self, error: &HttpError) -> Response {
        let code = match error {
            HttpError::Malformed(_) => "bad_request",
            HttpError::HeadTooLarge(_) => "head_too_large",
            HttpError::TooManyHeaders(_) => "too_many_headers",
            HttpError::BodyTooLarge { .. } => "too_large",
            HttpError::UnsupportedEncoding(_) => "unsupported_encoding",
            HttpError::Timeout(_) => "request_timeout",
            HttpError::TooManyConnections(_) => "too_many_connections",
        };
        let mut api_error = ApiError::new(error.status(), code, error.to_string());
        if matches!(error, HttpError::TooManyConnections(_)) {
            api_error = api_error.retry_after(1);
        }
        let reply = api_error.into_reply();
        self.http_metrics.count("unknown", reply.status);
        into_response(reply)
    }
}

impl Api {
    /// Serves one request from start to finish; never panics on what the client sent.
    fn answer(&self, request: Request, route: Result<Route, ApiError>) -> Response {
        let (route_name, reply) = match route {
            Ok(route) => {
                let name = route.name();
                // A route without a body ignores one sent anyway.
                let body = if route.has_body() {
                    request.body
                } else {
                    Vec::new()
                };
                let reply = auth::scope(self, &route, &request.headers).and_then(|scoped| {
                    numbering(&request.headers).and_then(|numbered| {
                        dispatch(&scoped, &route, &request.target, numbered, body)
                    })
                });
                (name, reply.unwrap_or_else(ApiError::into_reply))
            }
            Err(error) => ("unknown", error.into_reply()),
        };
        self.http_metrics.count(route_name, reply.status);
        into_response(reply)
    }

    /// A watch: its answer goes through `responder` once the registry has it ([`kv::watch`]).
    fn watch(
        &self,
        route: &Route,
        request: &Request,
        origin: Option<String>,
        responder: Responder,
    ) {
        if let Route::KvWatch {
            progress_ms: Some(_),
            ..
        } = route
        {
            self.watch_stream(route, request, origin, responder);
            return;
        }
        let finish = self.finish(route, origin, responder);
        let scoped = auth::scope(self, route, &request.headers)
            .and_then(|scoped| numbering(&request.headers).map(|_| scoped));
        match scoped {
            Ok(scoped) => kv::watch(&scoped, &request.target, route, finish),
            Err(error) => finish(Err(error)),
        }
    }
}

impl Api {
    /// Where the answer to `route`, given later, goes: counted, then sent through `responder`.
    fn finish(&self, route: &Route, origin: Option<String>, responder: Responder) -> Finish {
        let metrics = self.http_metrics.clone();
        let route_name = route.name();
        Box::new(move |reply| {
            let reply = reply.unwrap_or_else(ApiError::into_reply);
            metrics.count(route_name, reply.status);
            let mut response = into_response(reply);
            if let Some(origin) = &origin {
                cors::allow(&mut response, origin);
            }
            responder.send(response);
        })
    }

    /// A key get, put or delete: handed to the node, which answers through `responder` from
    /// its own thread ([`kv::submit`]).
    fn submit(
        self: &Arc<Api>,
        route: Route,
        request: Request,
        origin: Option<String>,
        responder: Responder,
    ) {
        let finish = self.finish(&route, origin, responder);
        let body = if route.has_body() {
            request.body
        } else {
            Vec::new()
        };
        let scoped = auth::scope(self, &route, &request.headers)
            .and_then(|scoped| numbering(&request.headers).map(|numbered| (scoped, numbered)));
        match scoped {
            Ok((scoped, numbered)) => {
                let api = self.clone();
                kv::submit(&scoped, api, route, request.target, numbered, body, finish);
            }
            Err(error) => finish(Err(error)),
        }
    }

    /// A watch stream: its head goes out once the request is known good, then its lines
    /// come from the watch registry ([`kv::stream`]); a bad request is an ordinary error.
    fn watch_stream(
        &self,
        route: &Route,
        request: &Request,
        origin: Option<String>,
        responder: Responder,
    ) {
        let route_name = route.name();
        let mut head = Response {
            status: 200,
            headers: vec![(
                "Content-Type".to_string(),
                "application/x-ndjson".to_string(),
            )],
            body: Vec::new(),
        };
        if let Some(origin) = &origin {
            cors::allow(&mut head, origin);
        }
        let mut responder = Some(responder);
        let started = auth::scope(self, route, &request.headers)
            .and_then(|scoped| numbering(&request.headers).map(|_| scoped))
            .and_then(|scoped| {
                kv::stream(&scoped, &request.target, route, || {
                    let Some(taken) = responder.take() else {
                        return Err(ApiError::new(500, "internal", "a stream opened twice"));
                    };
                    taken.stream(head).map_err(|unanswered| {
                        responder = Some(unanswered);
                        ApiError::new(
                            501,
                            "not_implemented",
                            "this server cannot stream answers; use a long poll",
                        )
                    })
                })
            });
        let status = match started {
            Ok(()) => 200,
            Err(error) => {
                let mut response = into_response(error.into_reply());
                if let Some(origin) = &origin {
                    cors::allow(&mut response, origin);
                }
                let status = response.status;
                if let Some(responder) = responder.take() {
                    responder.send(response);
                }
                status
            }
        };
        self.http_metrics.count(route_name, status);
    }
}

fn into_response(reply: Reply) -> Response {
    let mut headers = Vec::with_capacity(reply.headers.len() + 1);
    headers.push(("Content-Type".to_string(), reply.content_type.to_string()));
    for (name, value) in reply.headers {
        headers.push((name.to_string(), value));
    }
    Response {
        status: reply.status,
        headers,
        body: reply.body,
    }
}

/// The exactly-once numbering of a write: `X-Rafting-Client` and `X-Rafting-Sequence`
/// together (or neither), and optionally `X-Rafting-Acknowledged-Below` (the client holds the
/// answers below it; by default its `sequence`, right for a client with one write at a time).
fn numbering(headers: &[(String, Vec<u8>)]) -> Result<Option<Numbered>, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        let Some((_, value)) = headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
        else {
            return Ok(None);
        };
        std::str::from_utf8(value)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "bad_request",
                    format!("header {name} must be a non-negative integer"),
                )
            })
    };
    let client = number("X-Rafting-Client")?;
    let sequence = number("X-Rafting-Sequence")?;
    let acknowledged_below = number("X-Rafting-Acknowledged-Below")?;
    match (client, sequence) {
        (None, None) => Ok(None),
        (Some(client), Some(sequence)) => Ok(Some(Numbered {
            client: ClientId(client),
            sequence,
            acknowledged_below: acknowledged_below.unwrap_or(sequence),
        })),
        _ => Err(ApiError::new(
            400,
            "bad_request",
            "X-Rafting-Client and X-Rafting-Sequence go together",
        )),
    }
}

fn dispatch(
    api: &Scoped,
    route: &Route,
    url: &str,
    numbered: Option<Numbered>,
    body: Vec<u8>,
) -> Result<Reply, ApiError> {
    match route {
        // Served by `Api::submit` and `Api::watch`, which answer later.
        Route::KvGet { .. }
        | Route::KvPut { .. }
        | Route::KvDelete { .. }
        | Route::KvWatch { .. } => Err(ApiError::new(
            500,
            "internal",
            "a key request reached dispatch",
        )),
        Route::KvList { .. } => kv::list(api, url, route),
        Route::Transaction => transaction::run(api, url, numbered, &body),
        Route::RegisterClient => cluster::register_client(api, url),
        Route::ServiceList => services::list(api, url),
        Route::ServiceShow { group, stale } => services::show(api, url, group, *stale),
        Route::ServiceMaster { group, stale } => services::master(api, url, group, *stale),
        Route::ServiceJoin { group } => services::join(api, url, numbered, group, &body),
        Route::ServiceKeepAlive { group, instance } => {
            services::keep_alive(api, url, numbered, group, instance, &body)
        }
        Route::ServiceUpdate { group, instance } => {
            services::update(api, url, numbered, group, instance, &body)
        }
        Route::ServicePick {
            group,
            monte_carlo,
            n,
            stale,
        } => services::pick(api, url, group, *monte_carlo, *n, *stale),
        Route::ServiceLeave { group, instance } => {
            services::leave(api, url, numbered, group, instance)
        }
        Route::ServiceResign { group } => services::resign(api, url, numbered, group, &body),
        Route::ServiceStart { group } => services::start(api, url, numbered, group),
        Route::ServiceDrain {
            group,
            instance,
            draining,
        } => services::drain(api, url, numbered, group, instance, *draining),
        Route::SessionOpen => transaction::open_session(api, url, numbered, &body),
        Route::SessionKeepAlive { session } => {
            transaction::keep_alive(api, url, numbered, *session)
        }
        Route::SessionClose { session } => transaction::close_session(api, url, numbered, *session),
        Route::Status => Ok(Reply::json(&cluster::status_json(api))),
        Route::Cluster => Ok(cluster::cluster(api)),
        Route::Health => Ok(cluster::health(api)),
        Route::TransferLeader { to } => cluster::transfer_leader(api, url, *to),
        Route::MemberList => Ok(members::list(api)),
        Route::MemberAdd => members::add(api, url, &body),
        Route::MemberPromote { id } => members::promote(api, url, *id),
        Route::MemberRemove { id } => members::remove(api, url, *id),
        Route::Metrics => Ok(cluster::metrics(api)),
        Route::Ui { asset } => Ok(ui::serve(*asset)),
        Route::DebugPanic => cluster::debug_panic(api),
        Route::Tenants { .. }
        | Route::TenantCreate
        | Route::TenantCaps { .. }
        | Route::TenantWeight { .. }
        | Route::TenantDelete { .. }
        | Route::TokenIssue { .. }
        | Route::TokenRevoke { .. } => tenants::serve(api, url, route, numbered, &body),
    }
}
