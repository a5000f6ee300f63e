//! Newtypes shared by consensus and the store: terms, log indexes, node ids and time.
//!
//! Each quantity has its own type so that a term can never be passed where an index is
//! expected. Conversions are explicit (`.get()`, `::new`).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! counter_newtype {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const ZERO: Self = Self(0);

            pub const fn new(value: u64) -> Self {
                Self(value)
            }

            pub const fn get(self) -> u64 {
                self.0
            }

            /// The next value; saturates instead of wrapping.
            pub const fn next(self) -> Self {
                Self(self.0.saturating_add(1))
            }

            /// The previous value; saturates at zero.
            pub const fn prev(self) -> Self {
                Self(self.0.saturating_sub(1))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

counter_newtype!(
    /// A Raft term. Terms only grow on every node.
    Term,
    "t"
);
counter_newtype!(
    /// A position in the replicated log. Index 0 is the empty prefix; the first entry is 1.
    LogIndex,
    "i"
);
counter_newtype!(
    /// A node's identity in the cluster. Zero is never a valid node id.
    NodeId,
    "n"
);

/// A point in time in milliseconds, counted from an origin the driver chooses (the simulator
/// starts at 0, the runtime at process start). Core never reads a clock; time arrives here.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    pub const ZERO: Self = Self(0);

    pub const fn new(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating.
    pub const fn plus(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}ms", self.0)
    }
}
