//! Key space handlers: get, put (with compare-and-set and sessions) and delete (handed to the
//! node without waiting: [`submit`]), list and the watch long poll (held by
//! [`super::watches`], not by a thread), in the tenant of the request's token (the default
//! tenant on an open cluster).

use super::errors::{ApiError, Reply};
use super::json;
use super::routes::Route;
use super::streams::{Streamer, line, progress_line};
use super::watches::{Waiter, WatchSlot};
use super::{Api, Finish, Scoped};
use crate::http::ResponseStream;
use rafting_core::replica::Numbered;
use rafting_core::store::{
    ListQuery, Operation, Outcome, Query, ReadAnswer, Revision, SessionId, WatchBatch, WatchQuery,
};
use rafting_net::runtime::{ClientError, Consistency};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn consistency(stale: bool) -> Consistency {
    if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    }
}

fn unexpected_answer(what: &str) -> ApiError {
    ApiError::new(
        500,
        "internal",
        format!("the node answered a {what} unexpectedly"),
    )
}

/// `GET`, `PUT` (with compare-and-set and sessions) and `DELETE /v1/kv/<key>`, handed to the
/// node without waiting: `finish` gets the answer later, on the node loop's thread, which
/// builds the reply (a few hundred bytes) and hands it to the HTTP connection. No thread waits
/// for the cluster, and the HTTP event loop serves these requests itself, so a put or a
/// linearizable get crosses two threads (event loop, node loop) instead of four. `api` maps
/// the node's errors when they come (a redirect names the leader's address).
pub fn submit(
    scoped: &Scoped,
    api: Arc<Api>,
    route: Route,
    url: String,
    numbered: Option<Numbered>,
    body: Vec<u8>,
    finish: Finish,
) {
    let timeout = scoped.request_timeout;
    let fail = move |error: ClientError| api.tenant_client_error(error, &url);
    let operation = match route {
        Route::KvGet { key, stale } => {
            let query = Query::Get {
                tenant: scoped.tenant,
                key,
            };
            let on_answer = move |answer: Result<ReadAnswer, ClientError>| {
                finish(answer.map_err(fail).and_then(value_reply))
            };
            scoped
                .handle
                .submit_read(query, consistency(stale), timeout, on_answer);
            return;
        }
        Route::KvPut {
            key,
            compare_version,
            session,
        } => put_operation(key, body, compare_version, session.map(SessionId)),
        Route::KvDelete { key } => Operation::Delete { key },
        _ => return finish(Err(unexpected_answer("key route"))),
    };
    let on_answer = move |outcome: Result<Outcome, ClientError>| {
        finish(
            outcome
                .map(|outcome| Reply::json(&json::outcome(&outcome)))
                .map_err(fail),
        )
    };
    scoped
        .handle
        .submit_write(scoped.tenant, operation, numbered, timeout, on_answer);
}

/// The raw value of a get, with its version and revisions in headers.
fn value_reply(answer: ReadAnswer) -> Result<Reply, ApiError> {
    let ReadAnswer::Value(kv) = answer else {
        return Err(unexpected_answer("get"));
    };
    let mut reply = Reply::bytes(kv.value.map(Vec::from).unwrap_or_default())
        .with_header("X-Rafting-Version", kv.version)
        .with_header("X-Rafting-Create-Revision", kv.create_revision.get())
        .with_header("X-Rafting-Modify-Revision", kv.modify_revision.get());
    if let Some(session) = kv.session {
        reply = reply.with_header("X-Rafting-Session", session.get());
    }
    Ok(reply)
}

/// A put, or a compare-and-set when the client names the version it expects.
fn put_operation(
    key: String,
    value: Vec<u8>,
    compare_version: Option<u64>,
    session: Option<SessionId>,
) -> Operation {
    match compare_version {
        Some(expected_version) => Operation::CompareAndSet {
            key,
            expected_version,
            value,
            session,
        },
        None => Operation::Put {
            key,
            value,
            session,
        },
    }
}

/// Replicates one write and answers its outcome as JSON. With the client's numbering
/// (`X-Rafting-Client`, `X-Rafting-Sequence`), a retry is answered with the first answer.
pub fn write(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    operation: Operation,
) -> Result<Reply, ApiError> {
    let outcome = api
        .handle
        .write_numbered(api.tenant, operation, numbered, api.request_timeout)
        .map_err(|error| api.client_error(error, url))?;
    Ok(Reply::json(&json::outcome(&outcome)))
}

/// `GET /v1/kv/<prefix>?list[&limit=][&after=][&keys_only][&stale]`.
pub fn list(api: &Scoped, url: &str, route: &Route) -> Result<Reply, ApiError> {
    let Route::KvList {
        prefix,
        limit,
        after,
        keys_only,
        stale,
    } = route
    else {
        return Err(unexpected_answer("list route"));
    };
    let query = Query::List(ListQuery {
        tenant: api.tenant,
        prefix: prefix.clone(),
        keys_only: *keys_only,
        limit: *limit,
        after: after.clone(),
    });
    let answer = api
        .handle
        .read(query, consistency(*stale), api.request_timeout)
        .map_err(|error| api.client_error(error, url))?;
    let ReadAnswer::List(listing) = answer else {
        return Err(unexpected_answer("list"));
    };
    Ok(Reply::json(&json::listing(&listing)))
}

/// `GET /v1/kv/<prefix>?watch[&since=<revision>][&timeout_ms=][&limit=]`: a long poll,
/// answered through `finish`, now or later from the watch registry's thread
/// ([`super::watches`]): a waiting watch holds no thread.
///
/// Served from this node's applied state, so any node serves watches (a follower may lag
/// the leader by a few milliseconds). Answers as soon as there is at least one event, or
/// with no events when the timeout passes; either way `next_since` is where to poll next.
/// Without `since`, only the changes after this node's current revision are reported.
pub fn watch(api: &Scoped, url: &str, route: &Route, finish: Finish) {
    match wait(api, url, route) {
        Ok(waiter) => {
            let waiter = Waiter { finish, ..waiter };
            if waiter.deadline <= Instant::now() || api.stopping.load(Ordering::Relaxed) {
                answer_now(api, url, waiter);
            } else {
                api.watches_open.wait(&api.handle, waiter);
            }
        }
        Err(error) => finish(Err(error)),
    }
}

/// `GET /v1/kv/<prefix>?watch&stream[&since=<revision>][&progress_ms=][&limit=]`: a stream
/// of every change from `since` (or, without it, after this node's current revision), held by
/// the watch registry ([`super::streams`]). `open` answers with the stream's head once the
/// request is known good; an error before that is an ordinary error answer.
pub fn stream(
    api: &Scoped,
    url: &str,
    route: &Route,
    open: impl FnOnce() -> Result<ResponseStream, ApiError>,
) -> Result<(), ApiError> {
    let Route::KvWatch {
        progress_ms: Some(progress_ms),
        ..
    } = route
    else {
        return Err(unexpected_answer("watch stream route"));
    };
    if api.stopping.load(Ordering::Relaxed) {
        return Err(ApiError::new(503, "unavailable", "the node is stopping").retry_after(1));
    }
    let Waiter {
        mut query,
        seen,
        slot,
        ..
    } = wait(api, url, route)?;
    // The first line says from which revision the stream reports; from a given `since`, it
    // carries the changes already there (and a `since` older than the kept history is a
    // plain 410, as for a long poll).
    let first = match since_of(route) {
        Some(_) => {
            let batch = read_watch(api, url, &query)?;
            query.since = batch.next_since;
            line(&json::watch_batch(&batch))
        }
        None => progress_line(query.since, seen),
    };
    let stream = open()?;
    if let Some(chunk) = first {
        stream.send(&chunk);
    }
    let streamer = Streamer {
        query,
        progress: Duration::from_millis(*progress_ms),
        slot,
        stream,
    };
    api.watches_open.stream(&api.handle, streamer);
    Ok(())
}

/// The waiter of a watch request, its slot taken (`finish` still to be set).
fn wait(api: &Scoped, url: &str, route: &Route) -> Result<Waiter, ApiError> {
    let Route::KvWatch {
        prefix,
        since,
        timeout_ms,
        limit,
        ..
    } = route
    else {
        return Err(unexpected_answer("watch route"));
    };
    let slot = open_slot(api)?;
    let deadline = Instant::now() + Duration::from_millis(*timeout_ms);
    // What the client has seen: the revisions before `since`, or, without it, everything up
    // to this node's current revision.
    let (since, seen) = match since {
        Some(since) => (Revision(*since), Revision(since.saturating_sub(1))),
        None => {
            let current = current_revision(api, url, prefix)?;
            (current.next(), current)
        }
    };
    Ok(Waiter {
        query: WatchQuery {
            tenant: api.tenant,
            prefix: prefix.clone(),
            since: since.max(Revision(1)),
            limit: *limit,
        },
        seen,
        deadline,
        slot,
        finish: Box::new(|_| {}),
    })
}

fn since_of(route: &Route) -> Option<u64> {
    match route {
        Route::KvWatch { since, .. } => *since,
        _ => None,
    }
}

/// Reads a watch's changes from this node's store.
fn read_watch(api: &Scoped, url: &str, query: &WatchQuery) -> Result<WatchBatch, ApiError> {
    let answer = api
        .handle
        .read(
            Query::Watch(query.clone()),
            Consistency::Stale,
            api.request_timeout,
        )
        .map_err(|error| api.client_error(error, url))?;
    match answer {
        ReadAnswer::Watch(batch) => Ok(batch),
        _ => Err(unexpected_answer("watch")),
    }
}

/// Answers a watch with one read of the local store (a zero timeout, or the node stopping).
fn answer_now(api: &Scoped, url: &str, waiter: Waiter) {
    let answer =
        read_watch(api, url, &waiter.query).map(|batch| Reply::json(&json::watch_batch(&batch)));
    let Waiter { slot, finish, .. } = waiter;
    drop(slot);
    finish(answer);
}

/// Counts one more open watch against the tenant's `watches` cap on this node.
fn open_slot(api: &Scoped) -> Result<WatchSlot, ApiError> {
    let cap = api.caps.and_then(|caps| caps.watches);
    api.watches_open.open(api.tenant, cap).map_err(|count| {
        let tenant = match &api.principal {
            super::auth::Principal::Tenant { name, .. } => name.clone(),
            super::auth::Principal::Admin => api.tenant.to_string(),
        };
        ApiError::new(
            403,
            "quota_watches",
            format!(
                "tenant {tenant} is at its watches cap: usage {count} of {} open on this \
                 node, and this request adds 1",
                cap.unwrap_or(0)
            ),
        )
    })
}

/// This node's current store revision, read through the node loop (a one-key listing of
/// `prefix`, which also checks the prefix) so that it is exact, not the last status copy.
fn current_revision(api: &Scoped, url: &str, prefix: &str) -> Result<Revision, ApiError> {
    let query = Query::List(ListQuery {
        tenant: api.tenant,
        prefix: prefix.to_owned(),
        keys_only: true,
        limit: 1,
        after: None,
    });
    let answer = api
        .handle
        .read(query, Consistency::Stale, api.request_timeout)
        .map_err(|error| api.client_error(error, url))?;
    match answer {
        ReadAnswer::List(listing) => Ok(listing.revision),
        _ => Err(unexpected_answer("list")),
    }
}
