//! The store's bounds. Every node of a cluster must run with the same values: they decide
//! what is applied, so they are part of the replicated state (and of its snapshots).

use serde::{Deserialize, Serialize};

/// Every bound of the store, explicit. Reaching one gives a typed error, never growth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Longest key or prefix, in bytes.
    pub key_bytes_max: usize,
    /// Largest value, in bytes.
    pub value_bytes_max: usize,
    /// Most compares plus operations in one transaction.
    pub transaction_operations_max: usize,
    /// Most entries in one listing page.
    pub list_entries_max: usize,
    /// Most events in one watch page (a revision's events are never split, so a page may
    /// exceed it by the size of one transaction).
    pub watch_events_per_poll_max: usize,
    /// Events kept for watchers; older ones are dropped and answered with `compacted`.
    pub watch_history_events_max: usize,
    /// Bytes of keys and values kept for watchers.
    pub watch_history_bytes_max: usize,
    pub session_ttl_ms_min: u64,
    pub session_ttl_ms_max: u64,
    /// Most open sessions across all tenants.
    pub sessions_max: usize,
    /// The most one tick may advance the replicated clock, whatever the leader's clock did
    /// (a stalled leader or a clock jump cannot expire every session at once).
    pub tick_advance_ms_max: u64,
    /// Most exactly-once client records; registering one more evicts the least recently
    /// active client.
    pub clients_max: usize,
    /// Most unacknowledged answers cached per client; past it the oldest is dropped and its
    /// sequence number becomes stale.
    pub responses_per_client_max: usize,
    /// Test-only planted bug: the keys cap is never checked (neither by the leader before
    /// proposing nor by the state machine), so a tenant can hold more keys than its cap. The
    /// simulator's `tenant_caps` checker must catch it. Never read from a file.
    #[doc(hidden)]
    #[serde(skip)]
    pub planted_keys_cap_unchecked: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            key_bytes_max: 512,
            value_bytes_max: 256 * 1024,
            transaction_operations_max: 128,
            list_entries_max: 10_000,
            watch_events_per_poll_max: 10_000,
            watch_history_events_max: 100_000,
            watch_history_bytes_max: 64 * 1024 * 1024,
            session_ttl_ms_min: 100,
            session_ttl_ms_max: 24 * 60 * 60 * 1000,
            sessions_max: 100_000,
            tick_advance_ms_max: 2_000,
            clients_max: 10_000,
            responses_per_client_max: 1_024,
            planted_keys_cap_unchecked: false,
        }
    }
}
