//! Atomic transactions: compares, then one branch of operations, all at one revision.
//!
//! A transaction is checked whole before anything changes: every key in the compares and in
//! both branches, every value size, every session, and the operation cap. A transaction that
//! passes the checks cannot fail half-way (a delete of an absent key only reports
//! `existed: false`), which is what makes it atomic without an undo log.

use super::answer::{Outcome, Response, TransactionResult};
use super::command::{Compare, CompareTarget, Relation, Transaction, TransactionOperation};
use super::error::StoreError;
use super::key::{Revision, TenantId};
use super::keyspace::{Record, key_value};
use super::store::Store;
use std::cmp::Ordering;

impl Store {
    pub(crate) fn apply_transaction(
        &mut self,
        tenant: TenantId,
        transaction: Transaction,
        revision: Revision,
    ) -> Response {
        self.check_transaction(tenant, &transaction)?;
        let succeeded = transaction
            .compares
            .iter()
            .all(|compare| self.holds(tenant, compare));
        let branch = if succeeded {
            transaction.success
        } else {
            transaction.failure
        };
        self.check_branch_quota(tenant, &branch)?;
        let mut results = Vec::with_capacity(branch.len());
        for operation in branch {
            results.push(self.apply_transaction_operation(tenant, operation, revision));
        }
        Ok(Outcome::Transaction {
            succeeded,
            revision: self.revision,
            results,
        })
    }

    fn check_transaction(
        &self,
        tenant: TenantId,
        transaction: &Transaction,
    ) -> Result<(), StoreError> {
        let operations =
            transaction.compares.len() + transaction.success.len() + transaction.failure.len();
        let operations_max = self.config.transaction_operations_max;
        if operations > operations_max {
            return Err(StoreError::invalid_request(format!(
                "a transaction holds {operations} compares and operations, over the cap of \
                 {operations_max}"
            )));
        }
        for compare in &transaction.compares {
            self.check_key(&compare.key)?;
        }
        for operation in transaction.success.iter().chain(&transaction.failure) {
            match operation {
                TransactionOperation::Get { key } => self.check_key(key)?,
                TransactionOperation::Delete { key } => self.check_writable_key(key)?,
                TransactionOperation::Put {
                    key,
                    value,
                    session,
                } => self.check_put(tenant, key, value, *session)?,
            }
        }
        Ok(())
    }

    fn holds(&self, tenant: TenantId, compare: &Compare) -> bool {
        if let CompareTarget::Epoch(expected) = compare.target {
            let epoch = self
                .services
                .group(tenant, &compare.key)
                .map_or(0, |group| group.epoch);
            return relation_holds(compare.relation, epoch.cmp(&expected));
        }
        let record = self
            .tenants
            .get(&tenant)
            .and_then(|space| space.get(&compare.key));
        compare_holds(record, compare)
    }

    fn apply_transaction_operation(
        &mut self,
        tenant: TenantId,
        operation: TransactionOperation,
        revision: Revision,
    ) -> TransactionResult {
        match operation {
            TransactionOperation::Get { key } => {
                let found = self.tenants.get(&tenant).and_then(|space| space.get(&key));
                TransactionResult::Got(found.map(|record| key_value(&key, record, false)))
            }
            TransactionOperation::Put {
                key,
                value,
                session,
            } => {
                let version = self.write_key(tenant, key, value.into(), session, revision);
                TransactionResult::Written { version }
            }
            TransactionOperation::Delete { key } => TransactionResult::Deleted {
                existed: self.delete_key(tenant, &key, revision),
            },
        }
    }
}

/// Whether one compare holds against a key's record (`None`: the key is absent, with
/// version 0, revisions 0 and no value).
fn compare_holds(record: Option<&Record>, compare: &Compare) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Version(expected) => record.map_or(0, |found| found.version).cmp(expected),
        CompareTarget::CreateRevision(expected) => record
            .map_or(Revision::ZERO, |found| found.create_revision)
            .cmp(expected),
        CompareTarget::ModifyRevision(expected) => record
            .map_or(Revision::ZERO, |found| found.modify_revision)
            .cmp(expected),
        CompareTarget::Value(expected) => match record {
            Some(found) => found.value[..].cmp(expected.as_slice()),
            None => return compare.relation == Relation::NotEqual,
        },
        // Answered by `Store::holds` from the service table.
        CompareTarget::Epoch(_) => return false,
    };
    relation_holds(compare.relation, ordering)
}

fn relation_holds(relation: Relation, ordering: Ordering) -> bool {
    match relation {
        Relation::Equal => ordering == Ordering::Equal,
        Relation::NotEqual => ordering != Ordering::Equal,
        Relation::Less => ordering == Ordering::Less,
        Relation::Greater => ordering == Ordering::Greater,
    }
}
