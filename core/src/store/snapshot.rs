//! The store as one deterministic byte image: what a snapshot holds of the state machine
//! (see `docs/snapshots-and-membership.md`).
//!
//! The image is a format version followed by the `bincode` encoding of the whole [`Store`]:
//! every tenant's keys, the watch history within its bounds, the sessions and their replicated
//! clock, the exactly-once client table and the service groups; then (format 3) the tenants'
//! weights. Every map in the store is
//! ordered (`BTreeMap`), so equal stores give equal bytes, and two replicas that applied the
//! same log give the same image. Integrity against a damaged disk (checksums, the file's
//! header naming cluster, node, index and term) is the snapshot file's business, not this
//! module's; here, bytes that do not decode are refused with a typed error, never a panic.

use super::command::bincode_config;
use super::key::TenantId;
use super::store::Store;
use crate::codec::VecAppender;
use std::collections::BTreeMap;

/// The image format this build writes. Version 2: a service group holds the instances its
/// operator drained. Version 3: the tenants' weights follow the store.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 3;
/// The oldest format this build still reads: an image of format 2 restores with every tenant
/// at the default weight.
pub const SNAPSHOT_FORMAT_VERSION_MIN: u32 = 2;

/// Why an image could not become a store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot image is {length} bytes, too short for its format version")]
    TooShort { length: usize },
    #[error(
        "the snapshot image is format version {found}; this build reads versions {SNAPSHOT_FORMAT_VERSION_MIN} to {SNAPSHOT_FORMAT_VERSION}"
    )]
    Version { found: u32 },
    #[error("the snapshot image does not decode: {reason}")]
    Decode { reason: String },
    #[error("the snapshot image has {extra} bytes after the store")]
    TrailingBytes { extra: usize },
}

/// Decodes a store with a bound on what the image may claim to hold (lengths of strings,
/// vectors and maps, in memory), so that damaged lengths are refused instead of allocated.
/// The bound grows with the image, about 16 times its size: a store holds in memory a small
/// multiple of its encoding (integers are variable-length on disk).
fn decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    const MIB: usize = 1 << 20;
    let config = bincode_config();
    if body.len() < 64 * MIB {
        bincode::serde::decode_from_slice(body, config.with_limit::<{ 1 << 30 }>())
    } else if body.len() < 1024 * MIB {
        bincode::serde::decode_from_slice(body, config.with_limit::<{ 1 << 34 }>())
    } else {
        bincode::serde::decode_from_slice(body, config.with_limit::<{ 1 << 40 }>())
    }
}

fn decode_error(error: bincode::error::DecodeError) -> SnapshotError {
    SnapshotError::Decode {
        reason: error.to_string(),
    }
}

impl Store {
    /// The whole replicated state as bytes. Equal stores give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut image = SNAPSHOT_FORMAT_VERSION.to_le_bytes().to_vec();
        bincode::serde::encode_into_writer(self, VecAppender(&mut image), bincode_config())
            .expect("writing into a Vec cannot fail and every store encodes");
        bincode::serde::encode_into_writer(
            &self.tenant_table.weights,
            VecAppender(&mut image),
            bincode_config(),
        )
        .expect("writing into a Vec cannot fail and a map of integers encodes");
        image
    }

    /// The store an image of [`Store::snapshot`] holds.
    pub fn restore(image: &[u8]) -> Result<Store, SnapshotError> {
        let Some((version, body)) = image.split_first_chunk::<4>() else {
            return Err(SnapshotError::TooShort {
                length: image.len(),
            });
        };
        let found = u32::from_le_bytes(*version);
        if !(SNAPSHOT_FORMAT_VERSION_MIN..=SNAPSHOT_FORMAT_VERSION).contains(&found) {
            return Err(SnapshotError::Version { found });
        }
        let (mut store, mut length): (Store, usize) = decode(body).map_err(decode_error)?;
        if found >= 3 {
            let (weights, weights_length): (BTreeMap<TenantId, u32>, usize) =
                decode(&body[length..]).map_err(decode_error)?;
            store.tenant_table.weights = weights;
            length += weights_length;
        }
        if length != body.len() {
            return Err(SnapshotError::TrailingBytes {
                extra: body.len() - length,
            });
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogIndex;
    use crate::store::{Command, Operation, Request};

    fn store_with_a_key() -> Store {
        let mut store = Store::default();
        let _ = store.apply(LogIndex::new(1), &Command::RegisterClient.encode());
        let client = crate::store::ClientId::new(1);
        let put = Command::Request(Request::new(client, 1, Operation::put("/a/b", b"v")));
        let _ = store.apply(LogIndex::new(2), &put.encode());
        store
    }

    #[test]
    fn an_image_restores_the_same_store_and_encodes_to_the_same_bytes() {
        let store = store_with_a_key();
        let image = store.snapshot();
        let restored = Store::restore(&image).unwrap();
        assert_eq!(restored, store);
        assert_eq!(restored.snapshot(), image);
    }

    #[test]
    fn damaged_images_are_refused_with_what_is_wrong() {
        let image = store_with_a_key().snapshot();
        assert_eq!(
            Store::restore(&image[..3]),
            Err(SnapshotError::TooShort { length: 3 })
        );
        let mut other_version = image.clone();
        other_version[0] = 9;
        assert_eq!(
            Store::restore(&other_version),
            Err(SnapshotError::Version { found: 9 })
        );
        assert!(matches!(
            Store::restore(&image[..image.len() - 1]),
            Err(SnapshotError::Decode { .. })
        ));
        let mut longer = image.clone();
        longer.push(0);
        assert_eq!(
            Store::restore(&longer),
            Err(SnapshotError::TrailingBytes { extra: 1 })
        );
    }

    fn store_with_a_weighted_tenant() -> Store {
        use crate::store::{TenantCommand, TokenRecord};
        let mut store = store_with_a_key();
        let client = crate::store::ClientId::new(1);
        let commands = [
            TenantCommand::Create {
                name: "heavy".to_owned(),
                caps: crate::store::Caps::default(),
                token: TokenRecord::new(b"salt", "secret"),
            },
            TenantCommand::SetWeight {
                name: "heavy".to_owned(),
                weight: 3,
            },
        ];
        for (sequence, command) in (2..).zip(commands) {
            let operation = Operation::Tenant(Box::new(command));
            let request = Command::Request(Request::new(client, sequence, operation));
            let applied = store.apply(LogIndex::new(sequence + 1), &request.encode());
            assert!(applied.is_ok(), "{applied:?}");
        }
        store
    }

    /// Proves that weights survive a snapshot (format 3), and that an image of format 2,
    /// written before weights existed, still restores, every tenant at the default weight.
    #[test]
    fn weights_are_in_the_image_and_a_format_2_image_still_restores() {
        let store = store_with_a_weighted_tenant();
        let heavy = crate::store::TenantId::new(1);
        assert_eq!(store.tenant_weight(heavy), 3);
        let restored = Store::restore(&store.snapshot()).unwrap();
        assert_eq!(restored, store);
        assert_eq!(restored.tenant_weight(heavy), 3);

        let mut format_2 = 2u32.to_le_bytes().to_vec();
        bincode::serde::encode_into_std_write(&store, &mut format_2, bincode_config()).unwrap();
        let old = Store::restore(&format_2).unwrap();
        assert_eq!(old.tenant_weight(heavy), 1);
        assert_eq!(old.tenant_caps(heavy), store.tenant_caps(heavy));
        assert_eq!(
            Store::restore(&1u32.to_le_bytes()),
            Err(SnapshotError::Version { found: 1 })
        );
    }
}
