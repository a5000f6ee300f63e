//! `POST /v1/txn` and the session routes: their JSON request bodies, decoded into store
//! operations.
//!
//! A transaction body reads:
//!
//! ```json
//! {"compare": [{"key": "/a", "version": 3, "relation": "equal"}],
//!  "success": [{"op": "put", "key": "/a", "value": "x"}, {"op": "get", "key": "/b"}],
//!  "failure": [{"op": "delete", "key": "/a"}]}
//! ```
//!
//! Each compare names exactly one target: `version`, `create_revision`, `modify_revision`
//! or `value` (text); `relation` is `equal` (the default), `not_equal`, `less` or `greater`.

use super::Scoped;
use super::errors::{ApiError, Reply};
use super::kv::write;
use rafting_core::replica::Numbered;
use rafting_core::store::{
    Compare, CompareTarget, Operation, Relation, Revision, SessionId, Transaction,
    TransactionOperation,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionBody {
    #[serde(default)]
    compare: Vec<CompareBody>,
    #[serde(default)]
    success: Vec<OperationBody>,
    #[serde(default)]
    failure: Vec<OperationBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareBody {
    key: String,
    #[serde(default)]
    relation: RelationBody,
    version: Option<u64>,
    create_revision: Option<u64>,
    modify_revision: Option<u64>,
    value: Option<String>,
    /// With `key` naming a service group: its fencing epoch.
    epoch: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RelationBody {
    #[default]
    Equal,
    NotEqual,
    Less,
    Greater,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum OperationBody {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
        session: Option<u64>,
    },
    Delete {
        key: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSessionBody {
    ttl_ms: u64,
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid {what} body: {error}")))
}

fn compare(body: CompareBody) -> Result<Compare, ApiError> {
    let mut targets = Vec::new();
    targets.extend(body.version.map(CompareTarget::Version));
    targets.extend(
        body.create_revision
            .map(|r| CompareTarget::CreateRevision(Revision(r))),
    );
    targets.extend(
        body.modify_revision
            .map(|r| CompareTarget::ModifyRevision(Revision(r))),
    );
    targets.extend(body.value.map(|v| CompareTarget::Value(v.into_bytes())));
    targets.extend(body.epoch.map(CompareTarget::Epoch));
    let [target] = <[CompareTarget; 1]>::try_from(targets).map_err(|_| {
        ApiError::bad_request(format!(
            "compare on {:?} must name exactly one of version, create_revision, modify_revision, value, epoch",
            body.key
        ))
    })?;
    let relation = match body.relation {
        RelationBody::Equal => Relation::Equal,
        RelationBody::NotEqual => Relation::NotEqual,
        RelationBody::Less => Relation::Less,
        RelationBody::Greater => Relation::Greater,
    };
    Ok(Compare {
        key: body.key,
        relation,
        target,
    })
}

fn operation(body: OperationBody) -> TransactionOperation {
    match body {
        OperationBody::Get { key } => TransactionOperation::Get { key },
        OperationBody::Put {
            key,
            value,
            session,
        } => TransactionOperation::Put {
            key,
            value: value.into_bytes(),
            session: session.map(SessionId),
        },
        OperationBody::Delete { key } => TransactionOperation::Delete { key },
    }
}

fn transaction(body: &[u8]) -> Result<Transaction, ApiError> {
    let body: TransactionBody = decode(body, "transaction")?;
    Ok(Transaction {
        compares: body
            .compare
            .into_iter()
            .map(compare)
            .collect::<Result<_, _>>()?,
        success: body.success.into_iter().map(operation).collect(),
        failure: body.failure.into_iter().map(operation).collect(),
    })
}

/// `POST /v1/txn`.
pub fn run(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    write(
        api,
        url,
        numbered,
        Operation::Transaction(transaction(body)?),
    )
}

/// `POST /v1/sessions` with `{"ttl_ms": N}`: answers `{"session", "ttl_ms", "expires_at_ms"}`.
pub fn open_session(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: OpenSessionBody = decode(body, "session")?;
    write(
        api,
        url,
        numbered,
        Operation::OpenSession {
            ttl_ms: body.ttl_ms,
        },
    )
}

/// `PUT /v1/sessions/<id>/keepalive`.
pub fn keep_alive(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    session: u64,
) -> Result<Reply, ApiError> {
    let session = SessionId(session);
    write(api, url, numbered, Operation::KeepAlive { session })
}

/// `DELETE /v1/sessions/<id>`: closes the session and deletes its ephemeral keys.
pub fn close_session(
    api: &Scoped,
    url: &str,
    numbered: Option<Numbered>,
    session: u64,
) -> Result<Reply, ApiError> {
    let session = SessionId(session);
    write(api, url, numbered, Operation::CloseSession { session })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_body_decodes_into_store_operations() {
        let body = br#"{"compare":[{"key":"/a","version":0}],
            "success":[{"op":"put","key":"/a","value":"x"},{"op":"get","key":"/a"}],
            "failure":[{"op":"delete","key":"/a"}]}"#;
        let transaction = transaction(body).unwrap();
        assert_eq!(transaction.compares[0].target, CompareTarget::Version(0));
        assert_eq!(transaction.compares[0].relation, Relation::Equal);
        assert_eq!(transaction.success.len(), 2);
        assert_eq!(
            transaction.failure,
            vec![TransactionOperation::Delete { key: "/a".into() }]
        );
    }

    #[test]
    fn malformed_transaction_bodies_are_bad_requests() {
        for body in [
            &b"not json"[..],
            br#"{"compare":[{"key":"/a"}]}"#,
            br#"{"compare":[{"key":"/a","version":1,"value":"x"}]}"#,
            br#"{"success":[{"op":"explode","key":"/a"}]}"#,
            br#"{"unknown":1}"#,
        ] {
            assert_eq!(transaction(body).unwrap_err().status, 400);
        }
    }
}
