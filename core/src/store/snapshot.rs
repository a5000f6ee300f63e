//! The store as one deterministic byte image: what a snapshot holds of the state machine
//! (see `docs/snapshots-and-membership.md`).
//!
//! The image is a format version followed by the `bincode` encoding of the whole [`Store`]:
//! every tenant's keys, the watch history within its bounds, the sessions and their replicated
//! clock, the exactly-once client table and the service groups. Every map in the store is
//! ordered (`BTreeMap`), so equal stores give equal bytes, and two replicas that applied the
//! same log give the same image. Integrity against a damaged disk (checksums, the file's
//! header naming cluster, node, index and term) is the snapshot file's business, not this
//! module's; here, bytes that do not decode are refused with a typed error, never a panic.

use super::command::bincode_config;
use super::store::Store;

/// The image format this build writes and the only one it reads. Version 2: a service group
/// holds the instances its operator drained.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// Why an image could not become a store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot image is {length} bytes, too short for its format version")]
    TooShort { length: usize },
    #[error(
        "the snapshot image is format version {found}; this build reads version {SNAPSHOT_FORMAT_VERSION}"
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
fn decode(body: &[u8]) -> Result<(Store, usize), bincode::error::DecodeError> {
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

impl Store {
    /// The whole replicated state as bytes. Equal stores give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut image = SNAPSHOT_FORMAT_VERSION.to_le_bytes().to_vec();
        bincode::serde::encode_into_std_write(self, &mut image, bincode_config())
            .expect("writing into a Vec cannot fail and every store encodes");
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
        if found != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::Version { found });
        }
        let (store, length) = decode(body).map_err(|error| SnapshotError::Decode {
            reason: error.to_string(),
        })?;
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
}
