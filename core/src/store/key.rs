//! Identifiers of the store (tenants, revisions, sessions, clients) and key validation.
//!
//! Keys are hierarchical paths such as `/services/web/members/n1`. A key is absolute (starts
//! with `/`), has at least one segment, and no segment is empty, `.` or `..`; control
//! characters are refused so that keys print and travel as JSON safely. A [`Prefix`] names a
//! subtree: `/services/web` covers the key `/services/web` itself and everything below
//! `/services/web/`, but not `/services/webby`. The prefix `/` covers the whole key space.

use super::error::StoreError;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! store_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const fn new(value: u64) -> Self {
                Self(value)
            }

            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

store_id!(
    /// The tenant that owns a key or a session. Every tenant has its own key space; tenants
    /// never see each other's keys, sessions or watch events.
    TenantId,
    "tenant-"
);
store_id!(
    /// The store's global revision: it grows by one with every applied command that changes
    /// the key space, and all changes of one command (a transaction, a session expiry) share
    /// it. Revision 0 is the empty store.
    Revision,
    "r"
);
store_id!(
    /// A session (lease) with a TTL. Its id is the log index of the command that opened it,
    /// so every node allocates the same id without coordination.
    SessionId,
    "session-"
);
store_id!(
    /// A registered client of the exactly-once layer. Its id is the log index of the
    /// `RegisterClient` command that created it.
    ClientId,
    "client-"
);

impl TenantId {
    /// The tenant of every request that does not name one.
    pub const DEFAULT: Self = Self(0);
}

impl Revision {
    pub const ZERO: Self = Self(0);

    /// The next revision; saturates instead of wrapping.
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// A validated key: an absolute, hierarchical path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(String);

impl Key {
    /// Checks `text` against the key rules and the length cap.
    pub fn parse(text: &str, key_bytes_max: usize) -> Result<Key, StoreError> {
        validate_key(text, key_bytes_max)?;
        Ok(Key(text.to_owned()))
    }

    /// Like [`Key::parse`], but takes ownership of the text and so never copies it.
    pub fn from_string(text: String, key_bytes_max: usize) -> Result<Key, StoreError> {
        validate_key(&text, key_bytes_max)?;
        Ok(Key(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the key rules described in the module documentation.
pub fn validate_key(text: &str, key_bytes_max: usize) -> Result<(), StoreError> {
    let invalid = |reason: &str| StoreError::InvalidKey {
        key: truncated_for_error(text),
        reason: reason.to_owned(),
    };
    if text.len() > key_bytes_max {
        return Err(StoreError::TooLarge {
            what: "key".to_owned(),
            size_bytes: text.len() as u64,
            size_bytes_max: key_bytes_max as u64,
        });
    }
    let Some(path) = text.strip_prefix('/') else {
        return Err(invalid("a key must start with '/'"));
    };
    if path.is_empty() {
        return Err(invalid("a key needs at least one segment"));
    }
    if has_control_character(text) {
        return Err(invalid("a key may not contain control characters"));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(invalid("a key may not contain an empty segment")),
            "." | ".." => return Err(invalid("a key may not contain '.' or '..' segments")),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `text` holds a control character (C0, DEL or C1). Keys are on the path of every
/// write, so plain ASCII, the usual case, is checked byte by byte without decoding.
fn has_control_character(text: &str) -> bool {
    if text.is_ascii() {
        return text.bytes().any(|byte| byte.is_ascii_control());
    }
    text.chars().any(char::is_control)
}

/// Keeps error messages bounded when someone sends a megabyte-long key.
fn truncated_for_error(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 128;
    text.chars().take(SHOWN_CHARS_MAX).collect()
}

/// A validated subtree of the key space: `/` (everything) or a valid key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Prefix(String);

impl Prefix {
    /// Checks `text`: `/` or a valid key.
    pub fn parse(text: &str, key_bytes_max: usize) -> Result<Prefix, StoreError> {
        if text != "/" {
            validate_key(text, key_bytes_max)?;
        }
        Ok(Prefix(text.to_owned()))
    }

    /// The whole key space.
    pub fn root() -> Prefix {
        Prefix("/".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// Whether `key` is the prefix itself or lies below it.
    pub fn covers(&self, key: &str) -> bool {
        if self.is_root() {
            return true;
        }
        match key.strip_prefix(self.0.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// The half-open string range `[prefix + "/", prefix + "0")` that holds exactly the keys
    /// strictly below the prefix (`'0'` is the character right after `'/'`).
    pub(crate) fn descendant_bounds(&self) -> (String, String) {
        if self.is_root() {
            return ("/".to_owned(), "0".to_owned());
        }
        (format!("{}/", self.0), format!("{}0", self.0))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
