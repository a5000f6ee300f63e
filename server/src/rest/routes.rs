//! The REST API's routes: a request line (method and URL) parsed into a typed [`Route`], with
//! its key and query parameters decoded and checked. Nothing here touches the node.

use super::errors::ApiError;
use super::ui::{self, UiAsset};
use std::collections::BTreeMap;

/// Longest a watch long poll may wait, whatever the client asks.
pub const WATCH_TIMEOUT_MS_MAX: u64 = 60_000;
/// How long a watch long poll waits when the client does not say.
pub const WATCH_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// How often a watch stream reports progress while nothing changes, when the client does not
/// say (`progress_ms`), and the range it may ask for.
pub const WATCH_STREAM_PROGRESS_MS_DEFAULT: u64 = 5_000;
pub const WATCH_STREAM_PROGRESS_MS_MIN: u64 = 10;
pub const WATCH_STREAM_PROGRESS_MS_MAX: u64 = 600_000;

/// One request the API serves, with its parameters parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    KvGet {
        key: String,
        stale: bool,
    },
    KvPut {
        key: String,
        compare_version: Option<u64>,
        session: Option<u64>,
    },
    KvDelete {
        key: String,
    },
    KvList {
        prefix: String,
        limit: u32,
        after: Option<String>,
        keys_only: bool,
        stale: bool,
    },
    KvWatch {
        prefix: String,
        /// The first revision to report; `None`: the changes after the current revision.
        since: Option<u64>,
        timeout_ms: u64,
        limit: u32,
        /// `Some`: a stream (`?watch&stream`), not a long poll, with a progress line at
        /// least this often (milliseconds) while nothing changes.
        progress_ms: Option<u64>,
    },
    Transaction,
    RegisterClient,
    /// `GET /v1/services`.
    ServiceList,
    /// `GET /v1/services/<name>`.
    ServiceShow {
        group: String,
        stale: bool,
    },
    /// `GET /v1/services/<name>/master`.
    ServiceMaster {
        group: String,
        stale: bool,
    },
    /// `POST /v1/services/<name>/members`.
    ServiceJoin {
        group: String,
    },
    /// `PUT /v1/services/<name>/members/<instance>/keepalive`.
    ServiceKeepAlive {
        group: String,
        instance: String,
    },
    /// `DELETE /v1/services/<name>/members/<instance>`.
    ServiceLeave {
        group: String,
        instance: String,
    },
    /// `POST /v1/services/<name>/resign`.
    ServiceResign {
        group: String,
    },
    /// `POST /v1/services/<name>/start`.
    ServiceStart {
        group: String,
    },
    /// `PUT /v1/services/<name>/members/<instance>`: load, draining, weight.
    ServiceUpdate {
        group: String,
        instance: String,
    },
    /// `POST /v1/services/<name>/members/<instance>/drain` (`draining`) or `.../undrain`: the
    /// operator's drain flag, apart from the member's own.
    ServiceDrain {
        group: String,
        instance: String,
        draining: bool,
    },
    /// `GET /v1/services/<name>/pick?strategy=round_robin|monte_carlo&n=K`.
    ServicePick {
        group: String,
        monte_carlo: bool,
        n: u64,
        stale: bool,
    },
    SessionOpen,
    SessionKeepAlive {
        session: u64,
    },
    SessionClose {
        session: u64,
    },
    Status,
    Cluster,
    Health,
    TransferLeader {
        to: u64,
    },
    /// `GET /v1/cluster/members`: the configuration in force, with every member's addresses.
    MemberList,
    /// `POST /v1/cluster/members` with `{id, udp, http, learner}`.
    MemberAdd,
    /// `POST /v1/cluster/members/<id>/promote`.
    MemberPromote {
        id: u64,
    },
    /// `DELETE /v1/cluster/members/<id>`.
    MemberRemove {
        id: u64,
    },
    Metrics,
    /// `GET /ui` and its assets: the dashboard.
    Ui {
        asset: UiAsset,
    },
    /// Kills the node loop; served only when the node was started for a fail-stop test.
    DebugPanic,
    /// `GET /v1/tenants` (every tenant) or `GET /v1/tenants/<name>`.
    Tenants {
        name: Option<String>,
        stale: bool,
    },
    /// `POST /v1/tenants`.
    TenantCreate,
    /// `PUT /v1/tenants/<name>`: the body is the caps.
    TenantCaps {
        name: String,
    },
    /// `PUT /v1/tenants/<name>/weight`: the body is `{"weight": N}`.
    TenantWeight {
        name: String,
    },
    /// `DELETE /v1/tenants/<name>[?purge]`.
    TenantDelete {
        name: String,
        purge: bool,
    },
    /// `POST /v1/tenants/<name>/tokens`.
    TokenIssue {
        name: String,
    },
    /// `DELETE /v1/tenants/<name>/tokens/<id>`.
    TokenRevoke {
        name: String,
        token: u64,
    },
}

impl Route {
    /// The route's name in metrics (`rafting_http_requests_total{route=...}`).
    pub fn name(&self) -> &'static str {
        match self {
            Route::KvGet { .. } => "kv_get",
            Route::KvPut { .. } => "kv_put",
            Route::KvDelete { .. } => "kv_delete",
            Route::KvList { .. } => "kv_list",
            Route::KvWatch {
                progress_ms: Some(_),
                ..
            } => "kv_watch_stream",
            Route::KvWatch { .. } => "kv_watch",
            Route::Transaction => "txn",
            Route::RegisterClient => "client_register",
            Route::ServiceList => "service_list",
            Route::ServiceShow { .. } => "service_show",
            Route::ServiceMaster { .. } => "service_master",
            Route::ServiceJoin { .. } => "service_join",
            Route::ServiceKeepAlive { .. } => "service_keepalive",
            Route::ServiceLeave { .. } => "service_leave",
            Route::ServiceResign { .. } => "service_resign",
            Route::ServiceStart { .. } => "service_start",
            Route::ServiceUpdate { .. } => "service_update",
            Route::ServicePick { .. } => "service_pick",
            Route::ServiceDrain { draining: true, .. } => "service_drain",
            Route::ServiceDrain { .. } => "service_undrain",
            Route::SessionOpen => "session_open",
            Route::SessionKeepAlive { .. } => "session_keepalive",
            Route::SessionClose { .. } => "session_close",
            Route::Status => "status",
            Route::Cluster => "cluster",
            Route::Health => "health",
            Route::TransferLeader { .. } => "transfer_leader",
            Route::MemberList => "member_list",
            Route::MemberAdd => "member_add",
            Route::MemberPromote { .. } => "member_promote",
            Route::MemberRemove { .. } => "member_remove",
            Route::Metrics => "metrics",
            Route::Ui { .. } => "ui",
            Route::DebugPanic => "debug_panic",
            Route::Tenants { name: None, .. } => "tenant_list",
            Route::Tenants { .. } => "tenant_show",
            Route::TenantCreate => "tenant_create",
            Route::TenantCaps { .. } => "tenant_caps",
            Route::TenantWeight { .. } => "tenant_weight",
            Route::TenantDelete { .. } => "tenant_delete",
            Route::TokenIssue { .. } => "token_issue",
            Route::TokenRevoke { .. } => "token_revoke",
        }
    }

    /// Whether the route reads a request body.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Route::KvPut { .. }
                | Route::Transaction
                | Route::SessionOpen
                | Route::ServiceJoin { .. }
                | Route::ServiceResign { .. }
                | Route::ServiceKeepAlive { .. }
                | Route::ServiceUpdate { .. }
                | Route::TenantCreate
                | Route::TenantCaps { .. }
                | Route::TenantWeight { .. }
                | Route::MemberAdd
        )
    }
}

/// The `Allow` header of a path served by `GET` alone (`HEAD` comes with it).
const ALLOW_GET: &str = "GET, HEAD";
const ALLOW_KV: &str = "GET, HEAD, PUT, DELETE";

/// Parses a method and a URL (`/v1/kv/a/b?cas=3`) into a route. `HEAD` is parsed as `GET`:
/// the server sends the same head without the body.
pub fn parse(method: &str, url: &str) -> Result<Route, ApiError> {
    let method = if method == "HEAD" { "GET" } else { method };
    let (path, query_string) = url.split_once('?').unwrap_or((url, ""));
    let query = parse_query(query_string)?;
    if path == "/ui" || path.starts_with("/ui/") {
        let asset = ui::parse(method, path)?;
        return expect_method(method, "GET", path, Route::Ui { asset });
    }
    if let Some(rest) = path.strip_prefix("/v1/kv") {
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(ApiError::not_found_route(method, path));
        }
        let key = format!("/{}", percent_decode(rest.trim_start_matches('/'))?);
        return parse_kv(method, path, key, &query);
    }
    if let Some(rest) = path.strip_prefix("/v1/sessions") {
        return parse_sessions(method, path, rest);
    }
    if let Some(rest) = path.strip_prefix("/v1/services") {
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(ApiError::not_found_route(method, path));
        }
        return parse_services(method, path, rest, &query);
    }
    if let Some(rest) = path.strip_prefix("/v1/cluster/members") {
        return parse_members(method, path, rest);
    }
    if let Some(rest) = path.strip_prefix("/v1/tenants") {
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(ApiError::not_found_route(method, path));
        }
        return parse_tenants(method, path, rest, &query);
    }
    let route = match path {
        "/v1/txn" => expect_method(method, "POST", path, Route::Transaction)?,
        "/v1/clients" => expect_method(method, "POST", path, Route::RegisterClient)?,
        "/v1/status" => expect_method(method, "GET", path, Route::Status)?,
        "/v1/cluster" => expect_method(method, "GET", path, Route::Cluster)?,
        "/v1/health" => expect_method(method, "GET", path, Route::Health)?,
        "/metrics" => expect_method(method, "GET", path, Route::Metrics)?,
        "/v1/debug/panic" => expect_method(method, "POST", path, Route::DebugPanic)?,
        "/v1/cluster/transfer-leader" => {
            let to = required_number(&query, "to")?;
            expect_method(method, "POST", path, Route::TransferLeader { to })?
        }
        _ => return Err(ApiError::not_found_route(method, path)),
    };
    Ok(route)
}

fn expect_method(method: &str, wanted: &str, path: &str, route: Route) -> Result<Route, ApiError> {
    if method == wanted {
        return Ok(route);
    }
    let allow = match wanted {
        "GET" => ALLOW_GET,
        "POST" => "POST",
        "PUT" => "PUT",
        _ => "DELETE",
    };
    Err(ApiError::method_not_allowed(method, path, allow))
}

fn parse_kv(
    method: &str,
    path: &str,
    key: String,
    query: &BTreeMap<String, String>,
) -> Result<Route, ApiError> {
    // A prefix may be written with a trailing slash (`/v1/kv/services/?list`): the store's
    // prefixes have none, and `/services` already covers everything below `/services/`.
    let prefix = || match key.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    };
    match method {
        "GET" if query.contains_key("watch") => watch_route(prefix(), query),
        "GET" if query.contains_key("list") => Ok(Route::KvList {
            prefix: prefix(),
            limit: limit(query)?,
            after: query.get("after").cloned(),
            keys_only: query.contains_key("keys_only"),
            stale: query.contains_key("stale"),
        }),
        "GET" => Ok(Route::KvGet {
            key,
            stale: query.contains_key("stale"),
        }),
        "PUT" => Ok(Route::KvPut {
            key,
            compare_version: optional_number(query, "cas")?,
            session: optional_number(query, "session")?,
        }),
        "DELETE" => Ok(Route::KvDelete { key }),
        _ => Err(ApiError::method_not_allowed(method, path, ALLOW_KV)),
    }
}

/// `/v1/cluster/members[/<id>[/promote]]`.
fn parse_members(method: &str, path: &str, rest: &str) -> Result<Route, ApiError> {
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(ApiError::not_found_route(method, path));
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let member = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("member id {text:?} is not a number")))
    };
    match (method, segments.as_slice()) {
        ("GET", []) => Ok(Route::MemberList),
        ("POST", []) => Ok(Route::MemberAdd),
        ("POST", [id, "promote"]) => Ok(Route::MemberPromote { id: member(id)? }),
        ("DELETE", [id]) => Ok(Route::MemberRemove { id: member(id)? }),
        (_, []) => Err(ApiError::method_not_allowed(
            method,
            path,
            "GET, HEAD, POST",
        )),
        (_, [_, "promote"]) => Err(ApiError::method_not_allowed(method, path, "POST")),
        (_, [_]) => Err(ApiError::method_not_allowed(method, path, "DELETE")),
        _ => Err(ApiError::not_found_route(method, path)),
    }
}

fn parse_sessions(method: &str, path: &str, rest: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let session = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("session id {text:?} is not a number")))
    };
    match (method, segments.as_slice()) {
        ("POST", []) => Ok(Route::SessionOpen),
        ("PUT", [id, "keepalive"]) => Ok(Route::SessionKeepAlive {
            session: session(id)?,
        }),
        ("DELETE", [id]) => Ok(Route::SessionClose {
            session: session(id)?,
        }),
        (_, []) => Err(ApiError::method_not_allowed(method, path, "POST")),
        (_, [_, "keepalive"]) => Err(ApiError::method_not_allowed(method, path, "PUT")),
        (_, [_]) => Err(ApiError::method_not_allowed(method, path, "DELETE")),
        _ => Err(ApiError::not_found_route(method, path)),
    }
}

/// The last segments of a service path that name an action, never part of a group's name.
pub const SERVICE_ACTIONS: [&str; 6] =
    ["members", "master", "resign", "start", "keepalive", "pick"];

/// `/v1/services[/<name>[/members[/<instance>[/keepalive|/drain|/undrain]]|/master|/resign|
/// /start|/pick]]`. The group's name is a path itself, so the action is read from the end.
fn parse_services(
    method: &str,
    path: &str,
    rest: &str,
    query: &BTreeMap<String, String>,
) -> Result<Route, ApiError> {
    let stale = query.contains_key("stale");
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return expect_method(method, "GET", path, Route::ServiceList);
    }
    let group = |name: &str| -> Result<String, ApiError> {
        let name = percent_decode(name.trim_start_matches('/'))?;
        Ok(format!("/{name}"))
    };
    if let Some(name) = rest.strip_suffix("/keepalive") {
        let (name, instance) = name
            .rsplit_once("/members/")
            .ok_or_else(|| ApiError::not_found_route(method, path))?;
        let route = Route::ServiceKeepAlive {
            group: group(name)?,
            instance: percent_decode(instance)?,
        };
        return expect_method(method, "PUT", path, route);
    }
    for (action, draining) in [("/drain", true), ("/undrain", false)] {
        let Some(name) = rest.strip_suffix(action) else {
            continue;
        };
        let Some((name, instance)) = name.rsplit_once("/members/") else {
            continue;
        };
        let route = Route::ServiceDrain {
            group: group(name)?,
            instance: percent_decode(instance)?,
            draining,
        };
        return expect_method(method, "POST", path, route);
    }
    if let Some(name) = rest.strip_suffix("/members") {
        return expect_method(
            method,
            "POST",
            path,
            Route::ServiceJoin {
                group: group(name)?,
            },
        );
    }
    if let Some((name, instance)) = rest.rsplit_once("/members/") {
        let (group, instance) = (group(name)?, percent_decode(instance)?);
        return match method {
            "DELETE" => Ok(Route::ServiceLeave { group, instance }),
            "PUT" => Ok(Route::ServiceUpdate { group, instance }),
            _ => Err(ApiError::method_not_allowed(method, path, "PUT, DELETE")),
        };
    }
    if let Some(name) = rest.strip_suffix("/pick") {
        let monte_carlo = match query.get("strategy").map(String::as_str) {
            None | Some("round_robin") => false,
            Some("monte_carlo") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "strategy {other:?}: use round_robin or monte_carlo"
                )));
            }
        };
        let route = Route::ServicePick {
            group: group(name)?,
            monte_carlo,
            n: optional_number(query, "n")?.unwrap_or(1).max(1),
            stale,
        };
        return expect_method(method, "GET", path, route);
    }
    if let Some(name) = rest.strip_suffix("/resign") {
        return expect_method(
            method,
            "POST",
            path,
            Route::ServiceResign {
                group: group(name)?,
            },
        );
    }
    if let Some(name) = rest.strip_suffix("/start") {
        return expect_method(
            method,
            "POST",
            path,
            Route::ServiceStart {
                group: group(name)?,
            },
        );
    }
    if let Some(name) = rest.strip_suffix("/master") {
        let route = Route::ServiceMaster {
            group: group(name)?,
            stale,
        };
        return expect_method(method, "GET", path, route);
    }
    let group = group(rest)?;
    if method == "GET" && query.contains_key("watch") {
        // A group's changes are its mirror key's: the same long poll (or stream) as a key's
        // watch.
        let prefix = format!("{}{group}", rafting_core::store::services::SERVICES_PREFIX);
        return watch_route(prefix, query);
    }
    expect_method(method, "GET", path, Route::ServiceShow { group, stale })
}

/// `/v1/tenants[/<name>[/weight|/tokens[/<id>]]]`.
fn parse_tenants(
    method: &str,
    path: &str,
    rest: &str,
    query: &BTreeMap<String, String>,
) -> Result<Route, ApiError> {
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Result<_, _>>()?;
    let stale = query.contains_key("stale");
    match (method, segments.as_slice()) {
        ("GET", []) => Ok(Route::Tenants { name: None, stale }),
        ("POST", []) => Ok(Route::TenantCreate),
        ("GET", [name]) => Ok(Route::Tenants {
            name: Some(name.clone()),
            stale,
        }),
        ("PUT", [name]) => Ok(Route::TenantCaps { name: name.clone() }),
        ("DELETE", [name]) => Ok(Route::TenantDelete {
            name: name.clone(),
            purge: query.contains_key("purge"),
        }),
        ("POST", [name, tokens]) if tokens == "tokens" => {
            Ok(Route::TokenIssue { name: name.clone() })
        }
        ("PUT", [name, weight]) if weight == "weight" => {
            Ok(Route::TenantWeight { name: name.clone() })
        }
        ("DELETE", [name, tokens, id]) if tokens == "tokens" => Ok(Route::TokenRevoke {
            name: name.clone(),
            token: id
                .parse()
                .map_err(|_| ApiError::bad_request(format!("token id {id:?} is not a number")))?,
        }),
        (_, []) => Err(ApiError::method_not_allowed(
            method,
            path,
            "GET, HEAD, POST",
        )),
        (_, [_]) => Err(ApiError::method_not_allowed(
            method,
            path,
            "GET, HEAD, PUT, DELETE",
        )),
        (_, [_, tokens]) if tokens == "tokens" => {
            Err(ApiError::method_not_allowed(method, path, "POST"))
        }
        (_, [_, weight]) if weight == "weight" => {
            Err(ApiError::method_not_allowed(method, path, "PUT"))
        }
        (_, [_, tokens, _]) if tokens == "tokens" => {
            Err(ApiError::method_not_allowed(method, path, "DELETE"))
        }
        _ => Err(ApiError::not_found_route(method, path)),
    }
}

/// `?watch[&since=][&limit=]` and either `[&timeout_ms=]` (a long poll) or
/// `&stream[&progress_ms=]` (a stream); a parameter of the other kind is refused, so that a
/// client never believes it set what does not apply.
fn watch_route(prefix: String, query: &BTreeMap<String, String>) -> Result<Route, ApiError> {
    let stream = query.contains_key("stream");
    let progress_ms = if stream {
        if query.contains_key("timeout_ms") {
            return Err(ApiError::bad_request(
                "timeout_ms is for long polls: a stream (?stream) stays open; use progress_ms \
                 for how often it reports progress while nothing changes",
            ));
        }
        let progress_ms =
            optional_number(query, "progress_ms")?.unwrap_or(WATCH_STREAM_PROGRESS_MS_DEFAULT);
        if !(WATCH_STREAM_PROGRESS_MS_MIN..=WATCH_STREAM_PROGRESS_MS_MAX).contains(&progress_ms) {
            return Err(ApiError::bad_request(format!(
                "progress_ms={progress_ms} is out of range: from \
                 {WATCH_STREAM_PROGRESS_MS_MIN} to {WATCH_STREAM_PROGRESS_MS_MAX}"
            )));
        }
        Some(progress_ms)
    } else {
        if query.contains_key("progress_ms") {
            return Err(ApiError::bad_request(
                "progress_ms is for streams: add ?stream, or use timeout_ms for a long poll",
            ));
        }
        None
    };
    let timeout_ms = optional_number(query, "timeout_ms")?
        .unwrap_or(WATCH_TIMEOUT_MS_DEFAULT)
        .min(WATCH_TIMEOUT_MS_MAX);
    Ok(Route::KvWatch {
        prefix,
        since: optional_number(query, "since")?,
        timeout_ms,
        limit: limit(query)?,
        progress_ms,
    })
}

fn limit(query: &BTreeMap<String, String>) -> Result<u32, ApiError> {
    let limit = optional_number(query, "limit")?.unwrap_or(0);
    u32::try_from(limit).map_err(|_| ApiError::bad_request("limit is too large"))
}

fn optional_number(query: &BTreeMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("query parameter {name}={text:?} is not a number"))
        }),
    }
}

fn required_number(query: &BTreeMap<String, String>, name: &str) -> Result<u64, ApiError> {
    optional_number(query, name)?
        .ok_or_else(|| ApiError::bad_request(format!("query parameter {name} is required")))
}

/// `a=1&b&c=x%2Fy` into a map; a flag without `=` maps to the empty string. A parameter given
/// twice is refused: taking either value silently could do what the client did not mean.
pub fn parse_query(query: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut parameters = BTreeMap::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name)?;
        if parameters.contains_key(&name) {
            return Err(ApiError::bad_parameter(format!(
                "query parameter {name} is given more than once"
            )));
        }
        parameters.insert(name, percent_decode(value)?);
    }
    Ok(parameters)
}

/// Decodes `%XX` escapes (and `+` as a space in no case: keys may contain `+`). The result
/// must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| ApiError::bad_request("malformed percent escape in the URL"))?;
            decoded.push(hex);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| ApiError::bad_request("the URL is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_routes_carry_the_absolute_key_and_their_parameters() {
        assert_eq!(
            parse("PUT", "/v1/kv/services/web?cas=0&session=12").unwrap(),
            Route::KvPut {
                key: "/services/web".into(),
                compare_version: Some(0),
                session: Some(12)
            }
        );
        assert_eq!(
            parse("GET", "/v1/kv/a%20b?stale").unwrap(),
            Route::KvGet {
                key: "/a b".into(),
                stale: true
            }
        );
        let list = parse("GET", "/v1/kv/?list&limit=5&after=%2Fx").unwrap();
        assert!(
            matches!(list, Route::KvList { prefix, limit: 5, after: Some(after), .. }
            if prefix == "/" && after == "/x")
        );
        let list = parse("GET", "/v1/kv/services/?list").unwrap();
        assert!(matches!(list, Route::KvList { prefix, .. } if prefix == "/services"));
        let watch = parse("GET", "/v1/kv/a?watch&since=7&timeout_ms=999999").unwrap();
        assert!(matches!(
            watch,
            Route::KvWatch {
                since: Some(7),
                timeout_ms: WATCH_TIMEOUT_MS_MAX,
                ..
            }
        ));
    }

    /// The operator's drain names the member by its encoded id (a `/` in it too); the
    /// member's own update of the same path stays a `PUT`.
    #[test]
    fn drain_and_undrain_name_the_group_and_the_member() {
        assert_eq!(
            parse("POST", "/v1/services/shop/api/members/n%2F1/drain").unwrap(),
            Route::ServiceDrain {
                group: "/shop/api".into(),
                instance: "n/1".into(),
                draining: true
            }
        );
        assert_eq!(
            parse("POST", "/v1/services/shop/members/b/undrain").unwrap(),
            Route::ServiceDrain {
                group: "/shop".into(),
                instance: "b".into(),
                draining: false
            }
        );
        assert_eq!(
            parse("PUT", "/v1/services/shop/members/b/drain")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            parse("PUT", "/v1/services/shop/members/drain").unwrap(),
            Route::ServiceUpdate {
                group: "/shop".into(),
                instance: "drain".into()
            }
        );
    }

    /// The membership routes: list, add, promote and remove; a bad id is a client error and a
    /// wrong method names the allowed ones.
    #[test]
    fn membership_routes_name_the_member() {
        assert_eq!(
            parse("GET", "/v1/cluster/members").unwrap(),
            Route::MemberList
        );
        assert_eq!(
            parse("POST", "/v1/cluster/members").unwrap(),
            Route::MemberAdd
        );
        assert_eq!(
            parse("POST", "/v1/cluster/members/4/promote").unwrap(),
            Route::MemberPromote { id: 4 }
        );
        assert_eq!(
            parse("DELETE", "/v1/cluster/members/4").unwrap(),
            Route::MemberRemove { id: 4 }
        );
        assert_eq!(
            parse("DELETE", "/v1/cluster/members/x").unwrap_err().status,
            400
        );
        assert_eq!(
            parse("GET", "/v1/cluster/members/4/promote")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(parse("PUT", "/v1/cluster/members").unwrap_err().status, 405);
        assert_eq!(
            parse("GET", "/v1/cluster/membersx").unwrap_err().status,
            404
        );
        assert!(Route::MemberAdd.has_body());
    }

    #[test]
    fn malformed_requests_are_refused_with_a_client_error() {
        assert_eq!(parse("PUT", "/v1/kv/a?cas=x").unwrap_err().status, 400);
        assert_eq!(parse("GET", "/v1/kv/%zz").unwrap_err().status, 400);
        assert_eq!(parse("GET", "/v1/kv/%ff").unwrap_err().status, 400);
        assert_eq!(parse("GET", "/nowhere").unwrap_err().status, 404);
        assert_eq!(parse("PATCH", "/v1/kv/a").unwrap_err().status, 405);
        assert_eq!(parse("GET", "/v1/kvx").unwrap_err().status, 404);
        assert_eq!(
            parse("POST", "/v1/cluster/transfer-leader")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse("PUT", "/v1/sessions/abc/keepalive")
                .unwrap_err()
                .status,
            400
        );
    }

    /// `HEAD` is served wherever `GET` is (the server drops the body), and every 405 says in
    /// `Allow` which methods the path does serve.
    #[test]
    fn head_is_served_like_get_and_every_405_names_the_allowed_methods() {
        assert_eq!(
            parse("HEAD", "/v1/kv/a").unwrap(),
            Route::KvGet {
                key: "/a".into(),
                stale: false
            }
        );
        assert_eq!(parse("HEAD", "/v1/health").unwrap(), Route::Health);
        assert_eq!(parse("HEAD", "/metrics").unwrap(), Route::Metrics);
        for (method, url, allowed) in [
            ("PATCH", "/v1/kv/a", "GET, HEAD, PUT, DELETE"),
            ("GET", "/v1/txn", "POST"),
            ("POST", "/v1/health", "GET, HEAD"),
            ("PUT", "/v1/cluster", "GET, HEAD"),
            ("GET", "/v1/cluster/transfer-leader?to=2", "POST"),
            ("GET", "/v1/sessions", "POST"),
            ("GET", "/v1/sessions/4/keepalive", "PUT"),
            ("GET", "/v1/sessions/4", "DELETE"),
        ] {
            let error = parse(method, url).unwrap_err();
            assert_eq!(error.status, 405, "{method} {url}");
            let reply = error.into_reply();
            let allow = reply.headers.iter().find(|(name, _)| *name == "Allow");
            assert_eq!(
                allow.map(|(_, value)| value.as_str()),
                Some(allowed),
                "{method} {url}"
            );
        }
    }

    /// A query parameter given twice is refused, not silently resolved to one of its values:
    /// `?cas=0&cas=5` could otherwise write when the client meant create-only.
    #[test]
    fn a_repeated_query_parameter_is_refused() {
        let error = parse("PUT", "/v1/kv/a?cas=0&cas=5").unwrap_err();
        assert_eq!((error.status, error.code), (400, "bad_parameter"));
        assert!(error.message.contains("cas"), "{}", error.message);
        assert_eq!(
            parse("GET", "/v1/kv/a?stale&stale").unwrap_err().status,
            400
        );
    }

    /// The dashboard's files are served by `GET` under `/ui`; another file there is the same
    /// 404 as any unknown path, and `/uix` is no dashboard path at all.
    #[test]
    fn dashboard_paths_name_their_asset() {
        assert_eq!(
            parse("GET", "/ui").unwrap(),
            Route::Ui {
                asset: UiAsset::Page
            }
        );
        assert_eq!(
            parse("HEAD", "/ui/app.js").unwrap(),
            Route::Ui {
                asset: UiAsset::Script
            }
        );
        assert_eq!(parse("POST", "/ui").unwrap_err().status, 405);
        assert_eq!(parse("GET", "/ui/other.js").unwrap_err().status, 404);
        assert_eq!(parse("GET", "/uix").unwrap_err().status, 404);
    }

    #[test]
    fn session_routes_parse_their_id() {
        assert_eq!(parse("POST", "/v1/sessions").unwrap(), Route::SessionOpen);
        assert_eq!(
            parse("PUT", "/v1/sessions/9/keepalive").unwrap(),
            Route::SessionKeepAlive { session: 9 }
        );
        assert_eq!(
            parse("DELETE", "/v1/sessions/9").unwrap(),
            Route::SessionClose { session: 9 }
        );
    }
}
