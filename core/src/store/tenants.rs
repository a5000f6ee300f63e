//! Tenants: named owners of key spaces, sessions and service groups, with access tokens,
//! caps, and the usage counted against them.
//!
//! # Isolation by construction
//!
//! Every key, session and service group is indexed by its [`TenantId`]: a request carries
//! one tenant (the server derives it from the request's token, never from the request's
//! content), and every lookup the store makes is within that tenant. A tenant cannot name
//! another's key, and another's session or group is `not_found` to it.
//!
//! # Tokens
//!
//! A token is `<tenant name>.<secret>`. The store keeps only a salted SHA-256 of the secret
//! per token ([`TokenRecord`]): the server draws the secret and the salt, and proposes the
//! hash, so neither the log nor a snapshot ever holds a usable token.
//!
//! # Usage and caps
//!
//! Usage ([`Usage`]) is counted per tenant as state changes: keys and bytes (key plus value
//! lengths; the `/_services` mirror keys that the store writes for service groups are counted
//! by the `services` and `members` caps instead), open sessions (a service member's session
//! included), service groups and members. A write that would take a counter over its cap is
//! refused with `quota_<cap>` when it is applied, so every node refuses the same writes; the
//! leader also checks before proposing ([`Store::check_quota`]), so a refused write rarely
//! reaches the log. A change that does not grow a counter (a delete, a session close, an
//! overwrite with a smaller value) is never refused, so a tenant at its cap can clean up.
//!
//! The default tenant ([`TenantId::DEFAULT`], `default`) always exists and has no caps: an
//! open cluster (no admin token) keeps everything there, exactly as without tenants.

use super::answer::Outcome;
use super::command::{Operation, TransactionOperation};
use super::error::StoreError;
use super::key::Revision;
use super::key::{SessionId, TenantId};
use super::services::{Departure, SERVICES_PREFIX};
use super::store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The name of the default tenant.
pub const DEFAULT_TENANT_NAME: &str = "default";
/// Longest tenant name, in bytes.
pub const TENANT_NAME_BYTES_MAX: usize = 63;
/// Most live tokens of one tenant.
pub const TOKENS_PER_TENANT_MAX: usize = 16;
/// Most tenants in one cluster.
pub const TENANTS_MAX: usize = 10_000;
/// A tenant's weight in the leader's fair queuing when none was set: every tenant alike.
pub const TENANT_WEIGHT_DEFAULT: u32 = 1;
/// The largest weight: a tenant of this weight gets 100 times the share of a tenant of weight
/// 1 under contention, and a larger ratio would let one tenant crowd out the others in all
/// but name.
pub const TENANT_WEIGHT_MAX: u32 = 100;

/// A tenant's caps: each absent field is unlimited. Rates are per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caps {
    pub keys: Option<u64>,
    pub bytes: Option<u64>,
    pub sessions: Option<u64>,
    pub services: Option<u64>,
    pub members: Option<u64>,
    pub watches: Option<u64>,
    pub write_rate: Option<u64>,
    pub write_burst: Option<u64>,
    /// Bytes of keys and values written per second, and the burst (default: one second's).
    pub write_bytes_rate: Option<u64>,
    pub write_bytes_burst: Option<u64>,
    pub read_rate: Option<u64>,
    pub read_burst: Option<u64>,
    pub connections: Option<u64>,
}

impl Caps {
    /// The caps a tenant gets when it is created without any (documented in the README).
    pub fn new_tenant_default() -> Caps {
        Caps {
            keys: Some(10_000),
            bytes: Some(64 * 1024 * 1024),
            sessions: Some(1_000),
            services: Some(100),
            members: Some(1_000),
            watches: Some(100),
            write_rate: Some(1_000),
            write_burst: Some(2_000),
            write_bytes_rate: Some(4 * 1024 * 1024),
            // A quarter of a second's worth: every byte a tenant writes at once sits in the
            // one log ahead of every other tenant's next write until it commits, so the burst
            // bounds the delay one tenant can put in front of the others (8 MiB of 256 KiB
            // values held another tenant's puts for about 130 ms here; 1 MiB, about 30 ms).
            write_bytes_burst: Some(1024 * 1024),
            read_rate: Some(5_000),
            read_burst: Some(10_000),
            connections: Some(64),
        }
    }

    /// The cap on a stored counter.
    pub fn of(&self, cap: Cap) -> Option<u64> {
        match cap {
            Cap::Keys => self.keys,
            Cap::Bytes => self.bytes,
            Cap::Sessions => self.sessions,
            Cap::Services => self.services,
            Cap::Members => self.members,
            Cap::Watches => self.watches,
        }
    }
}

/// A cap on stored state (or, for watches, on open long polls per node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    Keys,
    Bytes,
    Sessions,
    Services,
    Members,
    Watches,
}

impl Cap {
    /// The stable error code of a refusal by this cap.
    pub fn code(self) -> &'static str {
        match self {
            Cap::Keys => "quota_keys",
            Cap::Bytes => "quota_bytes",
            Cap::Sessions => "quota_sessions",
            Cap::Services => "quota_services",
            Cap::Members => "quota_members",
            Cap::Watches => "quota_watches",
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code()["quota_".len()..])
    }
}

/// What a tenant holds, counted as it changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub keys: u64,
    /// Key plus value lengths of its keys.
    pub bytes: u64,
    pub sessions: u64,
    pub services: u64,
    pub members: u64,
}

impl Usage {
    pub fn of(&self, cap: Cap) -> u64 {
        match cap {
            Cap::Keys => self.keys,
            Cap::Bytes => self.bytes,
            Cap::Sessions => self.sessions,
            Cap::Services => self.services,
            Cap::Members => self.members,
            Cap::Watches => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// One token of a tenant, as stored: a salt and SHA-256(salt ‖ secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

impl TokenRecord {
    /// The record of `secret` under `salt` (the caller draws both at random).
    pub fn new(salt: &[u8], secret: &str) -> TokenRecord {
        TokenRecord {
            salt: salt.to_vec(),
            hash: token_hash(salt, secret).to_vec(),
        }
    }

    fn matches(&self, secret: &str) -> bool {
        let hash = token_hash(&self.salt, secret);
        // Compared in full whatever the first difference, so timing tells nothing.
        hash.len() == self.hash.len()
            && hash
                .iter()
                .zip(&self.hash)
                .fold(0u8, |difference, (a, b)| difference | (a ^ b))
                == 0
    }
}

fn token_hash(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

/// One tenant's replicated record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub caps: Caps,
    /// Live tokens by id.
    pub tokens: BTreeMap<u64, TokenRecord>,
    next_token: u64,
}

/// A tenant as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub caps: Caps,
    pub usage: Usage,
    /// The ids of its live tokens (never the tokens).
    pub tokens: Vec<u64>,
    /// Its share of the leader's batches under contention, relative to other tenants'.
    pub weight: u32,
}

/// A tenant administration command (applied only for the administrator: the default
/// tenant's requests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantCommand {
    Create {
        name: String,
        caps: Caps,
        token: TokenRecord,
    },
    SetCaps {
        name: String,
        caps: Caps,
    },
    IssueToken {
        name: String,
        token: TokenRecord,
    },
    RevokeToken {
        name: String,
        token: u64,
    },
    /// Refused while the tenant holds anything, unless `purge`: then its keys are deleted and
    /// its sessions closed in this one command.
    Delete {
        name: String,
        purge: bool,
    },
    /// Sets the tenant's weight in the leader's fair queuing (1 to [`TENANT_WEIGHT_MAX`]).
    /// Last of the variants, so that log entries written before weights existed still decode.
    SetWeight {
        name: String,
        weight: u32,
    },
}

/// Every tenant, and the usage of every tenant id (the default tenant's included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TenantTable {
    tenants: BTreeMap<TenantId, Tenant>,
    by_name: BTreeMap<String, TenantId>,
    /// Ids are never reused, so a deleted tenant's old token or request names nothing.
    next_id: u64,
    usage: BTreeMap<TenantId, Usage>,
    /// Weights other than [`TENANT_WEIGHT_DEFAULT`]. Not in the serde encoding of the table:
    /// a snapshot image carries them after the store (format 3), so that an image of format 2,
    /// written before weights existed, still restores (every tenant at the default weight).
    #[serde(skip)]
    pub(crate) weights: BTreeMap<TenantId, u32>,
}

impl Default for TenantTable {
    fn default() -> Self {
        TenantTable {
            tenants: BTreeMap::new(),
            by_name: BTreeMap::new(),
            next_id: 1,
            usage: BTreeMap::new(),
            weights: BTreeMap::new(),
        }
    }
}

impl TenantTable {
    /// The tenant's weight in the leader's fair queuing (the default for the default tenant,
    /// and for any tenant whose weight was never set).
    pub fn weight(&self, tenant: TenantId) -> u32 {
        self.weights
            .get(&tenant)
            .copied()
            .unwrap_or(TENANT_WEIGHT_DEFAULT)
    }

    pub fn caps(&self, tenant: TenantId) -> Option<&Caps> {
        self.tenants.get(&tenant).map(|found| &found.caps)
    }

    pub fn usage(&self, tenant: TenantId) -> Usage {
        self.usage.get(&tenant).copied().unwrap_or_default()
    }

    /// Whether `tenant` was created and deleted since. (Ids never allocated are left to
    /// the caller: the server only ever names tenants it authenticated, and the store's own
    /// tests use bare ids.)
    pub fn deleted(&self, tenant: TenantId) -> bool {
        tenant != TenantId::DEFAULT
            && tenant.get() < self.next_id
            && !self.tenants.contains_key(&tenant)
    }

    pub fn name_of(&self, tenant: TenantId) -> String {
        match self.tenants.get(&tenant) {
            Some(found) => found.name.clone(),
            None if tenant == TenantId::DEFAULT => DEFAULT_TENANT_NAME.to_owned(),
            None => tenant.to_string(),
        }
    }

    /// Changes one counter by `delta` (usage never goes below zero).
    pub fn add(&mut self, tenant: TenantId, cap: Cap, delta: i64) {
        let usage = self.usage.entry(tenant).or_default();
        let counter = match cap {
            Cap::Keys => &mut usage.keys,
            Cap::Bytes => &mut usage.bytes,
            Cap::Sessions => &mut usage.sessions,
            Cap::Services => &mut usage.services,
            Cap::Members => &mut usage.members,
            Cap::Watches => return,
        };
        debug_assert!(
            delta >= 0 || *counter >= delta.unsigned_abs(),
            "usage never goes below zero"
        );
        *counter = counter.saturating_add_signed(delta);
        if usage.is_empty() {
            self.usage.remove(&tenant);
        }
    }

    fn find(&self, name: &str) -> Result<TenantId, StoreError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| StoreError::TenantNotFound {
                name: name.to_owned(),
            })
    }

    pub(crate) fn view(&self, id: TenantId) -> Option<TenantView> {
        let tenant = self.tenants.get(&id)?;
        Some(TenantView {
            id,
            name: tenant.name.clone(),
            caps: tenant.caps,
            usage: self.usage(id),
            tokens: tenant.tokens.keys().copied().collect(),
            weight: self.weight(id),
        })
    }
}

/// Checks a tenant's weight: a whole number from 1 to [`TENANT_WEIGHT_MAX`]. Zero would never
/// be served, and a weight past the maximum would make every other tenant's share negligible.
pub fn validate_tenant_weight(weight: i64) -> Result<u32, StoreError> {
    match u32::try_from(weight) {
        Ok(weight @ 1..=TENANT_WEIGHT_MAX) => Ok(weight),
        _ => Err(StoreError::invalid_request(format!(
            "a tenant's weight is a whole number from 1 to {TENANT_WEIGHT_MAX} (its share of \
             the leader's batches under contention, relative to other tenants'), not {weight}"
        ))),
    }
}

/// Checks a tenant name: 1 to 63 bytes of `a-z`, `0-9`, `-` and `_`, starting with a letter
/// or digit, and not `default` (so that it is a path segment, a token prefix and a metric
/// label as it is).
pub fn validate_tenant_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason: &str| StoreError::InvalidTenantName {
        name: name.chars().take(TENANT_NAME_BYTES_MAX + 1).collect(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > TENANT_NAME_BYTES_MAX {
        return Err(invalid("a tenant name is 1 to 63 bytes"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !name.chars().all(allowed) {
        return Err(invalid("a tenant name uses only a-z, 0-9, '-' and '_'"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(invalid("a tenant name starts with a letter or a digit"));
    }
    if name == DEFAULT_TENANT_NAME {
        return Err(invalid("'default' is the name of the default tenant"));
    }
    Ok(())
}

/// Whether `key` is a mirror key of a service group (counted by the service caps, not by
/// keys and bytes).
pub(crate) fn is_mirror_key(key: &str) -> bool {
    key.strip_prefix(SERVICES_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Store {
    /// The caps of `tenant` (`None`: unlimited, as for the default tenant).
    pub fn tenant_caps(&self, tenant: TenantId) -> Option<&Caps> {
        self.tenant_table.caps(tenant)
    }

    /// The weight of `tenant` in the leader's fair queuing.
    pub fn tenant_weight(&self, tenant: TenantId) -> u32 {
        self.tenant_table.weight(tenant)
    }

    /// What `tenant` holds now.
    pub fn usage(&self, tenant: TenantId) -> Usage {
        self.tenant_table.usage(tenant)
    }

    /// Every tenant that has caps, in id order, with its caps and what it holds: the only
    /// tenants a cap can be broken for (the simulator asks after every entry it applies).
    pub fn tenants_with_caps(&self) -> impl Iterator<Item = (TenantId, &Caps, Usage)> + '_ {
        self.tenant_table
            .tenants
            .iter()
            .map(|(&tenant, found)| (tenant, &found.caps, self.tenant_table.usage(tenant)))
    }

    /// The tenant's name (`default` for the default tenant).
    pub fn tenant_name(&self, tenant: TenantId) -> String {
        self.tenant_table.name_of(tenant)
    }

    /// Every tenant but the default one, by name.
    pub fn tenants(&self) -> Vec<TenantView> {
        self.tenant_table
            .by_name
            .values()
            .filter_map(|id| self.tenant_table.view(*id))
            .collect()
    }

    /// One tenant by name.
    pub fn tenant(&self, name: &str) -> Result<TenantView, StoreError> {
        let id = self.tenant_table.find(name)?;
        Ok(self.tenant_table.view(id).expect("indexed by name"))
    }

    /// The tenant a token (`<name>.<secret>`) belongs to, if it is a live token.
    pub fn authenticate(&self, token: &str) -> Option<TenantId> {
        let (name, secret) = token.split_once('.')?;
        let id = *self.tenant_table.by_name.get(name)?;
        let tenant = self.tenant_table.tenants.get(&id)?;
        tenant
            .tokens
            .values()
            .any(|record| record.matches(secret))
            .then_some(id)
    }

    /// What `tenant` holds, counted from scratch (the proof that [`Store::usage`] is kept
    /// right: the two are equal after any sequence of commands).
    pub fn recount_usage(&self, tenant: TenantId) -> Usage {
        let mut usage = Usage::default();
        if let Some(space) = self.tenants.get(&tenant) {
            for (key, value_bytes) in space.sizes() {
                if !is_mirror_key(key) {
                    usage.keys += 1;
                    usage.bytes += (key.len() + value_bytes) as u64;
                }
            }
        }
        usage.sessions = self.sessions.count_of(tenant) as u64;
        for (_, group) in self.services.groups(tenant) {
            usage.services += 1;
            usage.members += group.members.len() as u64;
        }
        usage
    }

    /// Every tenant id that holds anything, by the counters and by a recount.
    pub fn tenants_with_usage(&self) -> Vec<TenantId> {
        let mut ids: Vec<TenantId> = self.tenant_table.usage.keys().copied().collect();
        ids.extend(self.tenants.keys().copied());
        ids.extend(self.tenant_table.tenants.keys().copied());
        ids.sort();
        ids.dedup();
        ids
    }

    /// Refuses a change that would take `tenant`'s `cap` from its usage up by `delta`
    /// beyond the cap. A change that does not grow the counter always passes.
    pub(crate) fn check_cap(
        &self,
        tenant: TenantId,
        cap: Cap,
        delta: i64,
    ) -> Result<(), StoreError> {
        if delta <= 0 || (cap == Cap::Keys && self.config().planted_keys_cap_unchecked) {
            return Ok(());
        }
        let Some(limit) = self.tenant_table.caps(tenant).and_then(|caps| caps.of(cap)) else {
            return Ok(());
        };
        let usage = self.tenant_table.usage(tenant).of(cap);
        if usage.saturating_add(delta as u64) > limit {
            return Err(StoreError::QuotaExceeded {
                tenant: self.tenant_table.name_of(tenant),
                cap,
                usage,
                limit,
                requested: delta as u64,
            });
        }
        Ok(())
    }

    /// The change in keys and bytes of writing `value` to `key` (deleting it with `None`).
    fn key_delta(&self, tenant: TenantId, key: &str, value_bytes: Option<usize>) -> (i64, i64) {
        if is_mirror_key(key) {
            return (0, 0);
        }
        let old = self
            .tenants
            .get(&tenant)
            .and_then(|space| space.get(key))
            .map(|record| record.value.len());
        size_delta(key, old, value_bytes)
    }

    /// Checks the keys and bytes caps for a put of `value_bytes` to `key`.
    pub(crate) fn check_put_quota(
        &self,
        tenant: TenantId,
        key: &str,
        value_bytes: usize,
    ) -> Result<(), StoreError> {
        let (keys, bytes) = self.key_delta(tenant, key, Some(value_bytes));
        self.check_cap(tenant, Cap::Keys, keys)?;
        self.check_cap(tenant, Cap::Bytes, bytes)
    }

    /// Checks the keys and bytes caps for one branch of a transaction, as a whole (a
    /// transaction that deletes as much as it adds passes at the cap).
    pub(crate) fn check_branch_quota(
        &self,
        tenant: TenantId,
        branch: &[TransactionOperation],
    ) -> Result<(), StoreError> {
        // The size each touched key will have after the branch (None: absent).
        let mut after: BTreeMap<&str, Option<usize>> = BTreeMap::new();
        for operation in branch {
            match operation {
                TransactionOperation::Get { .. } => {}
                TransactionOperation::Put { key, value, .. } => {
                    after.insert(key, Some(value.len()));
                }
                TransactionOperation::Delete { key } => {
                    after.insert(key, None);
                }
            }
        }
        let (mut keys, mut bytes) = (0i64, 0i64);
        for (key, value_bytes) in after {
            let (key_delta, byte_delta) = self.key_delta(tenant, key, value_bytes);
            keys += key_delta;
            bytes += byte_delta;
        }
        self.check_cap(tenant, Cap::Keys, keys)?;
        self.check_cap(tenant, Cap::Bytes, bytes)
    }

    /// Counts a key write or delete against its tenant's usage. `old` and `new` are the
    /// value lengths before and after (None: absent).
    pub(crate) fn count_key_change(
        &mut self,
        tenant: TenantId,
        key: &str,
        old: Option<usize>,
        new: Option<usize>,
    ) {
        if is_mirror_key(key) {
            return;
        }
        let (keys, bytes) = size_delta(key, old, new);
        self.tenant_table.add(tenant, Cap::Keys, keys);
        self.tenant_table.add(tenant, Cap::Bytes, bytes);
    }

    pub(crate) fn count(&mut self, tenant: TenantId, cap: Cap, delta: i64) {
        self.tenant_table.add(tenant, cap, delta);
    }

    /// The leader's check before it proposes `operation` for `tenant`: whether it would be
    /// refused by a stored cap if applied now. The state machine decides again when the
    /// write is applied (other writes may come first); this check only keeps writes that
    /// are refused already out of the log. It never refuses what the store would accept
    /// now: a transaction is refused only if every branch it could take would be.
    pub fn check_quota(&self, tenant: TenantId, operation: &Operation) -> Result<(), StoreError> {
        if self.tenant_table.caps(tenant).is_none() {
            return Ok(());
        }
        match operation {
            Operation::Put { key, value, .. } | Operation::CompareAndSet { key, value, .. } => {
                self.check_put_quota(tenant, key, value.len())
            }
            Operation::Transaction(transaction) => {
                let success = self.check_branch_quota(tenant, &transaction.success);
                if success.is_err() && !transaction.compares.is_empty() {
                    self.check_branch_quota(tenant, &transaction.failure)
                        .and(success)
                } else {
                    success
                }
            }
            Operation::OpenSession { .. } => self.check_cap(tenant, Cap::Sessions, 1),
            Operation::RegisterMember(registration) => {
                let new_group = self.services.group(tenant, &registration.group).is_none();
                self.check_cap(tenant, Cap::Services, i64::from(new_group))?;
                self.check_cap(tenant, Cap::Members, 1)?;
                self.check_cap(tenant, Cap::Sessions, 1)
            }
            _ => Ok(()),
        }
    }

    /// Refuses requests in a deleted tenant (deleted after its token was checked): nothing
    /// may be written under an id no one owns any more.
    pub(crate) fn check_tenant_exists(&self, tenant: TenantId) -> Result<(), StoreError> {
        if !self.tenant_table.deleted(tenant) {
            Ok(())
        } else {
            Err(StoreError::TenantNotFound {
                name: tenant.to_string(),
            })
        }
    }

    /// Applies a tenant administration command from `tenant` (only the default tenant, the
    /// administrator's, may).
    pub(crate) fn apply_tenant_command(
        &mut self,
        tenant: TenantId,
        command: TenantCommand,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        if tenant != TenantId::DEFAULT {
            return Err(StoreError::invalid_request(
                "only the administrator manages tenants",
            ));
        }
        match command {
            TenantCommand::Create { name, caps, token } => self.create_tenant(name, caps, token),
            TenantCommand::SetCaps { name, caps } => {
                let id = self.tenant_table.find(&name)?;
                let record = self.tenant_table.tenants.get_mut(&id).expect("found");
                record.caps = caps;
                Ok(Outcome::TenantChanged { tenant: id })
            }
            TenantCommand::SetWeight { name, weight } => {
                let weight = validate_tenant_weight(i64::from(weight))?;
                let id = self.tenant_table.find(&name)?;
                if weight == TENANT_WEIGHT_DEFAULT {
                    self.tenant_table.weights.remove(&id);
                } else {
                    self.tenant_table.weights.insert(id, weight);
                }
                Ok(Outcome::TenantChanged { tenant: id })
            }
            TenantCommand::IssueToken { name, token } => {
                let id = self.tenant_table.find(&name)?;
                let record = self.tenant_table.tenants.get_mut(&id).expect("found");
                if record.tokens.len() >= TOKENS_PER_TENANT_MAX {
                    return Err(StoreError::LimitReached {
                        what: format!("tokens of tenant {name}; revoke one first"),
                        max: TOKENS_PER_TENANT_MAX as u64,
                    });
                }
                let token_id = record.next_token;
                record.next_token += 1;
                record.tokens.insert(token_id, token);
                Ok(Outcome::TokenIssued {
                    tenant: id,
                    token: token_id,
                })
            }
            TenantCommand::RevokeToken { name, token } => {
                let id = self.tenant_table.find(&name)?;
                let record = self.tenant_table.tenants.get_mut(&id).expect("found");
                if record.tokens.remove(&token).is_none() {
                    return Err(StoreError::TokenNotFound {
                        tenant: name,
                        token,
                    });
                }
                Ok(Outcome::TenantChanged { tenant: id })
            }
            TenantCommand::Delete { name, purge } => self.delete_tenant(&name, purge, revision),
        }
    }

    fn create_tenant(
        &mut self,
        name: String,
        caps: Caps,
        token: TokenRecord,
    ) -> Result<Outcome, StoreError> {
        validate_tenant_name(&name)?;
        if self.tenant_table.by_name.contains_key(&name) {
            return Err(StoreError::TenantExists { name });
        }
        if self.tenant_table.tenants.len() >= TENANTS_MAX {
            return Err(StoreError::LimitReached {
                what: "tenants".to_owned(),
                max: TENANTS_MAX as u64,
            });
        }
        let id = TenantId::new(self.tenant_table.next_id);
        self.tenant_table.next_id += 1;
        self.tenant_table.by_name.insert(name.clone(), id);
        self.tenant_table.tenants.insert(
            id,
            Tenant {
                id,
                name,
                caps,
                tokens: BTreeMap::from([(1, token)]),
                next_token: 2,
            },
        );
        Ok(Outcome::TokenIssued {
            tenant: id,
            token: 1,
        })
    }

    /// Deletes a tenant; with `purge`, everything it holds goes in the same command.
    fn delete_tenant(
        &mut self,
        name: &str,
        purge: bool,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        let id = self.tenant_table.find(name)?;
        let usage = self.recount_usage(id);
        let holds_mirrors = self.tenants.contains_key(&id);
        if !purge && (!usage.is_empty() || holds_mirrors) {
            return Err(StoreError::TenantNotEmpty {
                tenant: name.to_owned(),
                keys: usage.keys,
                sessions: usage.sessions,
                services: usage.services,
            });
        }
        let sessions: Vec<SessionId> = self.sessions.ids_of(id);
        for session in &sessions {
            self.end_session(*session, revision, Departure::Graceful);
        }
        let keys: Vec<String> = self
            .tenants
            .get(&id)
            .map(|space| space.sizes().map(|(key, _)| key.to_owned()).collect())
            .unwrap_or_default();
        for key in &keys {
            self.delete_key(id, key, revision);
        }
        let groups = self.services.remove_tenant(id);
        self.count(id, Cap::Services, -(groups as i64));
        self.tenant_table.by_name.remove(name);
        self.tenant_table.tenants.remove(&id);
        self.tenant_table.weights.remove(&id);
        debug_assert!(self.tenant_table.usage(id).is_empty(), "a purge frees all");
        self.tenant_table.usage.remove(&id);
        Ok(Outcome::TenantDeleted {
            tenant: id,
            keys_deleted: keys.len() as u64,
            sessions_closed: sessions.len() as u64,
        })
    }
}

/// The change in (keys, bytes) of a key going from `old` to `new` value lengths.
fn size_delta(key: &str, old: Option<usize>, new: Option<usize>) -> (i64, i64) {
    let size = |value: Option<usize>| value.map_or(0, |bytes| (key.len() + bytes) as i64);
    let present = |value: Option<usize>| i64::from(value.is_some());
    (present(new) - present(old), size(new) - size(old))
}
