//! The JSON shapes of the store's answers. Values are bytes: a value that is valid UTF-8 is
//! given as `"value": "<text>"`, any other as `"value_base64": "<standard base64>"`, so that
//! no byte is ever lost or altered on the way to a client.

use rafting_core::store::services::MemberView;
use rafting_core::store::{
    Event, EventKind, KeyValue, Listing, Outcome, TransactionResult, WatchBatch,
};
use serde_json::{Map, Value, json};

/// Adds `value` or `value_base64` for `bytes` to `object`.
pub fn insert_value(object: &mut Map<String, Value>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert("value".into(), Value::String(text.to_owned())),
        Err(_) => object.insert("value_base64".into(), Value::String(base64(bytes))),
    };
}

pub fn key_value(kv: &KeyValue) -> Value {
    let mut object = Map::new();
    object.insert("key".into(), json!(kv.key));
    if let Some(value) = &kv.value {
        insert_value(&mut object, value);
    }
    object.insert("version".into(), json!(kv.version));
    object.insert("create_revision".into(), json!(kv.create_revision.get()));
    object.insert("modify_revision".into(), json!(kv.modify_revision.get()));
    object.insert("session".into(), json!(kv.session.map(|s| s.get())));
    Value::Object(object)
}

pub fn listing(listing: &Listing) -> Value {
    json!({
        "revision": listing.revision.get(),
        "entries": listing.entries.iter().map(key_value).collect::<Vec<_>>(),
        "continue_after": listing.continue_after,
    })
}

fn event(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("revision".into(), json!(event.revision.get()));
    object.insert("key".into(), json!(event.key));
    match &event.kind {
        EventKind::Put {
            value,
            version,
            create_revision,
        } => {
            object.insert("type".into(), json!("put"));
            insert_value(&mut object, value);
            object.insert("version".into(), json!(version));
            object.insert("create_revision".into(), json!(create_revision.get()));
        }
        EventKind::Delete => {
            object.insert("type".into(), json!("delete"));
        }
    }
    Value::Object(object)
}

pub fn watch_batch(batch: &WatchBatch) -> Value {
    json!({
        "events": batch.events.iter().map(event).collect::<Vec<_>>(),
        "next_since": batch.next_since.get(),
        "current_revision": batch.current_revision.get(),
    })
}

fn transaction_result(result: &TransactionResult) -> Value {
    match result {
        TransactionResult::Got(kv) => json!({"op": "get", "kv": kv.as_ref().map(key_value)}),
        TransactionResult::Written { version } => json!({"op": "put", "version": version}),
        TransactionResult::Deleted { existed } => json!({"op": "delete", "existed": existed}),
    }
}

/// The JSON answer of an applied write.
pub fn outcome(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Written { revision, version } => {
            json!({"revision": revision.get(), "version": version})
        }
        Outcome::Deleted { revision } => json!({"revision": revision.get()}),
        Outcome::Transaction {
            succeeded,
            revision,
            results,
        } => json!({
            "succeeded": succeeded,
            "revision": revision.get(),
            "results": results.iter().map(transaction_result).collect::<Vec<_>>(),
        }),
        Outcome::SessionOpened {
            session,
            ttl_ms,
            expires_at,
        } => json!({"session": session.get(), "ttl_ms": ttl_ms, "expires_at_ms": expires_at.get()}),
        Outcome::KeptAlive {
            session,
            expires_at,
        } => json!({"session": session.get(), "expires_at_ms": expires_at.get()}),
        Outcome::SessionClosed {
            session,
            keys_deleted,
            revision,
        } => json!({
            "session": session.get(),
            "keys_deleted": keys_deleted,
            "revision": revision.get(),
        }),
        Outcome::ClientRegistered { client } => json!({"client": client.get()}),
        Outcome::Ticked { now, revision, .. } => {
            json!({"now_ms": now.get(), "revision": revision.get()})
        }
        Outcome::MemberRegistered(view) | Outcome::MemberKeptAlive(view) => member_view(view),
        Outcome::GroupChanged { epoch, master } => json!({"epoch": epoch, "master": master}),
        Outcome::MemberDrained {
            instance,
            drained_by_operator,
            draining,
            revision,
        } => json!({
            "instance": instance,
            "drained_by_operator": drained_by_operator,
            "draining": draining,
            "revision": revision.get(),
        }),
        Outcome::TokenIssued { tenant, token } => {
            json!({"tenant_id": tenant.get(), "token_id": token})
        }
        Outcome::TenantChanged { tenant } => json!({"tenant_id": tenant.get()}),
        Outcome::TenantDeleted {
            tenant,
            keys_deleted,
            sessions_closed,
        } => json!({
            "tenant_id": tenant.get(),
            "keys_deleted": keys_deleted,
            "sessions_closed": sessions_closed,
        }),
    }
}

/// What a service group member is told: its role, the epoch, the master.
pub fn member_view(view: &MemberView) -> Value {
    json!({
        "role": view.role,
        "epoch": view.epoch,
        "phase": view.phase,
        "master": view.master,
        "session": view.session.get(),
        "expires_at_ms": view.expires_at.get(),
    })
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for position in 0..4 {
            if position <= chunk.len() {
                let index = (n >> (18 - 6 * position)) & 0x3f;
                out.push(char::from(BASE64_ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn values_that_are_not_text_travel_as_base64() {
        let mut object = Map::new();
        insert_value(&mut object, &[0xff, 0x00]);
        assert_eq!(object.get("value_base64"), Some(&json!("/wA=")));
        assert!(!object.contains_key("value"));
    }
}
