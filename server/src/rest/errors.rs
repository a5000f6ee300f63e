//! How the REST API answers: the [`Reply`] every handler builds, and [`ApiError`], a failure
//! with an HTTP status, a stable `code` and a message, rendered as `{"code","message"}`.
//!
//! The mapping from runtime and store errors to HTTP statuses lives here, in one table, so
//! that every route answers the same failure the same way.

use rafting_core::replica::RateRefusal;
use rafting_core::store::StoreError;
use rafting_net::runtime::ClientError;

/// A complete HTTP answer, independent of the HTTP library.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A 200 with a JSON body.
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply::json_with_status(200, value)
    }

    pub fn json_with_status(status: u16, value: &serde_json::Value) -> Reply {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    /// A 200 with raw bytes (a key's value).
    pub fn bytes(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type: "application/octet-stream",
            body,
            headers: Vec::new(),
        }
    }

    /// A 200 with plain text (Prometheus metrics).
    pub fn text(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// A failed request: what the client sees as `{"code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds the client should wait before retrying (503, 429).
    pub retry_after_seconds: Option<u32>,
    /// Where to send the request instead (307 to the leader).
    pub location: Option<String>,
    /// Machine-readable fields added to the body beside `code` and `message` (a 410 says
    /// from which revisions a watch can restart).
    pub details: Vec<(&'static str, serde_json::Value)>,
    /// The methods the path serves (405).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
            location: None,
            details: Vec::new(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    pub fn not_found_route(method: &str, path: &str) -> ApiError {
        ApiError::new(404, "no_route", format!("no route for {method} {path}"))
    }

    /// A 405; `allow` lists the methods the path serves, as the `Allow` header does.
    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> ApiError {
        let mut error = ApiError::new(
            405,
            "method_not_allowed",
            format!("{method} is not served on {path} (allowed: {allow})"),
        );
        error.allow = Some(allow);
        error
    }

    /// A query parameter that cannot be used as given.
    pub fn bad_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_parameter", message)
    }

    /// No leader is known: the client should retry shortly.
    pub fn no_leader() -> ApiError {
        ApiError::new(503, "no_leader", "no leader is known; retry shortly").retry_after(1)
    }

    /// A 307 to the leader; the body still explains why.
    pub fn redirect(location: String, leader: u64) -> ApiError {
        let mut error = ApiError::new(
            307,
            "not_leader",
            format!("this node is not the leader; node {leader} is (follow the Location header)"),
        );
        error.location = Some(location);
        error
    }

    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }

    pub fn with_detail(mut self, name: &'static str, value: serde_json::Value) -> ApiError {
        self.details.push((name, value));
        self
    }

    /// The error as an HTTP answer.
    pub fn into_reply(self) -> Reply {
        let mut body = serde_json::json!({"code": self.code, "message": self.message});
        for (name, value) in self.details {
            body[name] = value;
        }
        let mut reply = Reply::json_with_status(self.status, &body);
        if let Some(seconds) = self.retry_after_seconds {
            reply = reply.with_header("Retry-After", seconds);
        }
        if let Some(location) = self.location {
            reply = reply.with_header("Location", location);
        }
        if let Some(allow) = self.allow {
            reply = reply.with_header("Allow", allow);
        }
        reply
    }
}

/// The HTTP status of a store error. `not_leader` is handled by the caller (redirect).
fn store_status(error: &StoreError) -> u16 {
    match error {
        StoreError::QuotaExceeded { .. } => 403,
        StoreError::TenantNotFound { .. } | StoreError::TokenNotFound { .. } => 404,
        StoreError::TenantExists { .. } | StoreError::TenantNotEmpty { .. } => 409,
        StoreError::InvalidTenantName { .. } => 400,
        StoreError::NotFound { .. }
        | StoreError::SessionNotFound { .. }
        | StoreError::GroupNotFound { .. }
        | StoreError::MemberNotFound { .. } => 404,
        StoreError::VersionMismatch { .. }
        | StoreError::UnknownClient { .. }
        | StoreError::StaleRequest { .. }
        | StoreError::StaleEpoch { .. }
        | StoreError::MemberExists { .. }
        | StoreError::SettingsConflict { .. } => 409,
        StoreError::InvalidKey { .. }
        | StoreError::InvalidRequest { .. }
        | StoreError::BadCommand { .. } => 400,
        StoreError::TooLarge { .. } => 413,
        StoreError::Compacted { .. } => 410,
        StoreError::LimitReached { .. } => 429,
        StoreError::NotLeader => 503,
    }
}

/// Maps a runtime error to its HTTP form. `leader_location` turns a leader hint into the
/// URL to redirect to (`None` when the leader's HTTP address is unknown, or is this node).
pub fn from_client_error(
    error: ClientError,
    leader_location: impl Fn(u64) -> Option<String>,
) -> ApiError {
    let code = error.code();
    let message = error.to_string();
    match error {
        ClientError::NotLeader {
            leader: Some(leader),
        } => match leader_location(leader.get()) {
            Some(location) => ApiError::redirect(location, leader.get()),
            None => ApiError::no_leader(),
        },
        ClientError::NotLeader { leader: None } => ApiError::no_leader(),
        ClientError::Store(StoreError::NotLeader) => ApiError::no_leader(),
        ClientError::Store(store_error) => {
            let status = store_status(&store_error);
            let error = ApiError::new(status, code, message);
            match store_error {
                StoreError::LimitReached { .. } => error.retry_after(1),
                StoreError::Compacted {
                    restart_from,
                    current_revision,
                    ..
                } => error
                    .with_detail("compact_revision", restart_from.get().into())
                    .with_detail("current_revision", current_revision.get().into()),
                _ => error,
            }
        }
        ClientError::Timeout => ApiError::new(504, code, message),
        ClientError::OutcomeUnknown { .. }
        | ClientError::Overloaded(_)
        | ClientError::ShuttingDown => ApiError::new(503, code, message).retry_after(1),
        ClientError::TooLarge { .. } => ApiError::new(413, code, message),
        ClientError::RateLimited(refusal) => rate_limited(&refusal),
        ClientError::StorageFailed(_) => ApiError::new(500, code, message),
        ClientError::MembershipRefused {
            code: "leader_not_ready",
            ..
        } => ApiError::new(503, code, message).retry_after(1),
        ClientError::MembershipRefused {
            code: "unknown_member",
            ..
        } => ApiError::new(404, code, message),
        ClientError::MembershipRefused { .. } => ApiError::new(409, code, message),
    }
}

/// `429` for a tenant over a rate, with `Retry-After` in whole seconds and the exact wait in
/// `retry_after_ms`.
pub fn rate_limited(refusal: &RateRefusal) -> ApiError {
    let seconds = refusal.retry_after_ms.div_ceil(1_000).clamp(1, 3_600) as u32;
    ApiError::new(429, refusal.kind.code(), refusal.to_string())
        .retry_after(seconds)
        .with_detail("retry_after_ms", refusal.retry_after_ms.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafting_core::NodeId;

    #[test]
    fn store_errors_keep_their_stable_codes_and_map_to_statuses() {
        let error = ClientError::Store(StoreError::VersionMismatch {
            key: "/a".into(),
            expected: 1,
            actual: 2,
        });
        let api = from_client_error(error, |_| None);
        assert_eq!((api.status, api.code), (409, "version_mismatch"));
        let missing = ClientError::Store(StoreError::NotFound { key: "/a".into() });
        assert_eq!(from_client_error(missing, |_| None).status, 404);
    }

    /// Membership refusals keep the replica's codes: a leader not ready is retried (503), an
    /// unknown member is 404, the rest (another change in progress, a learner not caught up)
    /// 409.
    #[test]
    fn membership_refusals_map_to_their_statuses() {
        let refused = |code: &'static str| {
            let error = ClientError::MembershipRefused {
                code,
                message: code.to_owned(),
            };
            let api = from_client_error(error, |_| None);
            (api.status, api.code)
        };
        assert_eq!(refused("leader_not_ready"), (503, "leader_not_ready"));
        assert_eq!(refused("unknown_member"), (404, "unknown_member"));
        assert_eq!(refused("change_in_progress"), (409, "change_in_progress"));
        assert_eq!(refused("not_caught_up"), (409, "not_caught_up"));
    }

    #[test]
    fn a_follower_redirects_to_a_known_leader_and_refuses_without_one() {
        let known = ClientError::NotLeader {
            leader: Some(NodeId(2)),
        };
        let api = from_client_error(known.clone(), |id| Some(format!("http://n{id}/v1/kv/a")));
        assert_eq!(api.status, 307);
        assert_eq!(api.location.as_deref(), Some("http://n2/v1/kv/a"));
        let unknown = from_client_error(known, |_| None);
        assert_eq!(
            (unknown.status, unknown.retry_after_seconds),
            (503, Some(1))
        );
    }
}
