//! The linearizable reads waiting for Raft's read index, and each tenant's share of them.
//!
//! The node serves every pending read with one quorum round, so a read costs the cluster
//! little; what a flood of them can exhaust is the node's table of pending reads
//! (`raft::Config::pending_reads_max`), after which every tenant's reads are refused
//! `overloaded`. A tenant may therefore hold at most its share of that table
//! ([`ReplicaConfig::pending_reads_per_tenant_max`](super::ReplicaConfig)): past it only its
//! own reads are refused, and the rest of the table stays open to the others.

use super::io::RequestId;
use crate::raft::ReadId;
use crate::store::{Query, TenantId};
use crate::types::Millis;
use std::collections::BTreeMap;

/// A linearizable read waiting for Raft's read index.
#[derive(Debug)]
pub(super) struct PendingRead {
    pub request: RequestId,
    pub query: Query,
    pub deadline: Millis,
    /// The tenant whose share it takes (`None`: the server's own lookups, which take none).
    pub tenant: Option<TenantId>,
}

#[derive(Debug, Default)]
pub(super) struct PendingReads {
    reads: BTreeMap<ReadId, PendingRead>,
    per_tenant: BTreeMap<TenantId, usize>,
}

impl PendingReads {
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// Reads `tenant` has pending.
    pub fn len_of(&self, tenant: TenantId) -> usize {
        self.per_tenant.get(&tenant).copied().unwrap_or(0)
    }

    pub fn insert(&mut self, id: ReadId, read: PendingRead) {
        if let Some(tenant) = read.tenant {
            *self.per_tenant.entry(tenant).or_default() += 1;
        }
        if let Some(replaced) = self.reads.insert(id, read) {
            self.forget(&replaced);
        }
    }

    pub fn remove(&mut self, id: ReadId) -> Option<PendingRead> {
        let read = self.reads.remove(&id)?;
        self.forget(&read);
        Some(read)
    }

    /// Removes and returns every read whose deadline has passed.
    pub fn take_expired(&mut self, now: Millis) -> Vec<PendingRead> {
        let expired: Vec<ReadId> = self
            .reads
            .iter()
            .filter(|(_, read)| read.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.remove(id))
            .collect()
    }

    pub fn drain(&mut self) -> Vec<PendingRead> {
        self.per_tenant.clear();
        std::mem::take(&mut self.reads).into_values().collect()
    }

    fn forget(&mut self, read: &PendingRead) {
        let Some(tenant) = read.tenant else { return };
        if let Some(count) = self.per_tenant.get_mut(&tenant) {
            *count -= 1;
            if *count == 0 {
                self.per_tenant.remove(&tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(request: u64, tenant: Option<u64>, deadline: u64) -> PendingRead {
        PendingRead {
            request: RequestId(request),
            query: Query::Tenants,
            deadline: Millis(deadline),
            tenant: tenant.map(TenantId),
        }
    }

    #[test]
    fn each_tenant_is_counted_apart_and_forgotten_when_its_reads_leave() {
        let mut reads = PendingReads::default();
        reads.insert(ReadId(1), read(1, Some(7), 100));
        reads.insert(ReadId(2), read(2, Some(7), 200));
        reads.insert(ReadId(3), read(3, Some(8), 100));
        reads.insert(ReadId(4), read(4, None, 100));
        assert_eq!((reads.len(), reads.len_of(TenantId(7))), (4, 2));
        assert_eq!(reads.len_of(TenantId(8)), 1);

        let expired = reads.take_expired(Millis(150));
        let mut requests: Vec<u64> = expired.iter().map(|read| read.request.0).collect();
        requests.sort_unstable();
        assert_eq!(requests, vec![1, 3, 4]);
        assert_eq!(reads.len_of(TenantId(7)), 1);
        assert_eq!(reads.len_of(TenantId(8)), 0);

        assert_eq!(reads.remove(ReadId(2)).map(|read| read.request.0), Some(2));
        assert!(reads.remove(ReadId(2)).is_none());
        assert_eq!((reads.len(), reads.len_of(TenantId(7))), (0, 0));
        assert!(reads.per_tenant.is_empty());
    }

    #[test]
    fn drain_empties_the_counts_too() {
        let mut reads = PendingReads::default();
        reads.insert(ReadId(1), read(1, Some(7), 100));
        assert_eq!(reads.drain().len(), 1);
        assert!(reads.is_empty());
        assert_eq!(reads.len_of(TenantId(7)), 0);
    }
}
