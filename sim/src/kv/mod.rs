//! The KV workload: clients that use the replicated store the way services do, a
//! linearizability check of what they observed, and session checks.
//!
//! Enabled by `[workload] kind = "kv"`. Every host runs the production
//! [`Replica`](rafting_core::replica::Replica) (as every scenario does): it applies committed
//! entries to its node's store, and as leader proposes the session clock's `Tick`s with its
//! own (drifting) clock. Each client is a client of the replica's request interface, the one
//! the runtime's HTTP API uses:
//!
//! 1. registers an exactly-once client record (`Input::RegisterClient`);
//! 2. issues one request at a time ([`operations`]): get / list as linearizable reads
//!    (`Input::Read`, ReadIndex inside the replica), and put / delete / cas / transaction as
//!    writes numbered with its `(client, sequence)` (`Input::Write` with `Numbered`, then
//!    `Input::Flush`); sometimes it opens a session, writes an ephemeral key under it, keeps it
//!    alive, closes it or abandons it;
//! 3. retries a request whose outcome is unknown (timeout, leader lost, refused) with the
//!    SAME (client, sequence), so the store applies it at most once and the retry returns the
//!    original answer.
//!
//! Every KV request becomes one operation of a linearizability [`History`] (invoked at its
//! first attempt, completed at its definite answer, unknown if it never got one). At the end
//! of the seed [`check`](crate::linearizability::check) judges it; `NotLinearizable` is the
//! violation `linearizability`, `Unknown` (budget spent) is counted, never taken as a pass.
//! Session records feed the checks in [`sessions`].

mod driver;
pub mod limits;
mod observe;
pub mod operations;
pub mod sessions;
mod tenants;

use crate::linearizability::History;
use crate::linearizability::kv::{KvInput, KvOutput};
use operations::KvRequest;
use rafting_core::store::{ClientId, Operation, TenantId};
use sessions::{ClockBounds, SessionRecord};
use std::collections::BTreeMap;

/// Request ids of read attempts carry this bit, so they never collide with the ids of write
/// attempts (the workload history's operation ids).
pub(crate) const READ_ATTEMPT_BIT: u64 = 1 << 62;
/// Request ids of write attempts that are not part of any checked history carry this bit:
/// a hostile tenant's flood (unnumbered, never waited for) and the creation of a tenant. Their
/// answers are not matched against the log; what they do to the store is checked instead
/// (`tenant_caps`, `applied_answers_agree`).
pub(crate) const UNCHECKED_ATTEMPT_BIT: u64 = 1 << 60;
const _: () = assert!(UNCHECKED_ATTEMPT_BIT != crate::services::MEMBER_REQUEST_BIT);
/// Search steps the linearizability check may spend per seed; past it the verdict is unknown.
const CHECK_STEPS_MAX: u64 = 5_000_000;

/// Why a client sends a session request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SessionPurpose {
    Open,
    Bind {
        session: u64,
        key: String,
    },
    KeepAlive {
        session: u64,
    },
    /// Overwrite the session's key without the session (`Workload::kv_edge_cases`): the key
    /// stays, and is no longer the session's to delete.
    Unbind {
        session: u64,
        key: String,
    },
    Close {
        session: u64,
    },
}

/// What a client's logical request is; every attempt sends the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PendingKind {
    /// Learn the id of the client's tenant: create it (its first client) or look it up.
    JoinTenant,
    Register,
    Kv {
        sequence: u64,
        request: KvRequest,
    },
    Session {
        sequence: u64,
        operation: Operation,
        purpose: SessionPurpose,
    },
}

/// A client's logical request in progress.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub kind: PendingKind,
    /// The first attempt's send time: the invocation the checker sees.
    pub invoked_us: u64,
}

/// A client's session, while it keeps it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientSession {
    pub session: u64,
    pub bound: bool,
    /// Its key was overwritten without the session since it was bound.
    pub unbound: bool,
    pub renewal_invoked_us: u64,
}

/// One KV client's state beyond the generic [`crate::workload::Client`].
#[derive(Clone, Debug, Default)]
pub(crate) struct KvClient {
    /// The tenant it acts in, as a position in the scenario's `tenants` (`None`: default).
    pub tenant: Option<usize>,
    /// Its tenant's id, once known (the default tenant's from the start).
    pub tenant_id: Option<TenantId>,
    /// It creates its tenant (the tenant's first client) instead of looking it up.
    pub creates_tenant: bool,
    pub record: Option<ClientId>,
    pub next_sequence: u64,
    pub pending: Option<Pending>,
    pub session: Option<ClientSession>,
}

/// Everything the KV workload holds for one seed.
pub struct KvWorld {
    pub(crate) clients: Vec<KvClient>,
    /// One history per tenant (keyed like [`KvClient::tenant`]): tenants have separate key
    /// spaces, so each is checked for linearizability on its own.
    pub(crate) histories: BTreeMap<Option<usize>, History<KvInput, KvOutput>>,
    /// The longest a well-behaved tenant's request took, by tenant name, in µs.
    pub(crate) latency_us_max: BTreeMap<String, u64>,
    pub(crate) sessions: BTreeMap<u64, SessionRecord>,
    pub(crate) bounds: ClockBounds,
    /// The last request id given to a read or an unchecked write (under its bit).
    pub(crate) next_attempt: u64,
    /// The highest commit index any node reached, and when the newest entry it covers was
    /// proposed (the session clock stands at about that time: a tick tells the time it was
    /// proposed, however late it commits).
    pub(crate) commit_max: u64,
    pub(crate) commit_max_us: u64,
    /// When each index was last proposed by a leader, by index.
    pub(crate) proposed_us: Vec<u64>,
    /// A longer gap between a commit and the proposal of the entry the previous one reached
    /// counts as time the session clock could not run: a cluster that commits nothing, or one
    /// that commits only long after proposing (a leader heard through a trickle of relayed
    /// datagrams), leaves the clock behind real time.
    pub(crate) stall_threshold_us: u64,
    /// Requests the store refused without deciding (evicted record, forgotten sequence).
    pub(crate) undecided: u64,
}

/// The KV part of a seed's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KvReport {
    /// Operations the linearizability check covered.
    pub ops_checked: usize,
    /// The check's budget ran out: the history was neither passed nor failed.
    pub linearizability_unknown: bool,
    pub sessions_opened: usize,
    pub sessions_expired: usize,
    pub undecided: u64,
    /// The longest any request of each tenant with clients of the KV workload took (first
    /// attempt to answer), in µs; the hostile tenants' are left out.
    pub latency_us_max: BTreeMap<String, u64>,
}

impl KvWorld {
    /// `tenants` holds the tenant of each client (see [`crate::Scenario::client_tenants`]).
    pub(crate) fn new(
        tenants: &[Option<usize>],
        bounds: ClockBounds,
        stall_threshold_us: u64,
    ) -> KvWorld {
        let clients = tenants
            .iter()
            .enumerate()
            .map(|(position, &tenant)| KvClient {
                tenant,
                tenant_id: tenant.is_none().then_some(TenantId::DEFAULT),
                creates_tenant: tenant.is_some() && !tenants[..position].contains(&tenant),
                ..KvClient::default()
            })
            .collect();
        KvWorld {
            clients,
            histories: BTreeMap::new(),
            latency_us_max: BTreeMap::new(),
            sessions: BTreeMap::new(),
            bounds,
            next_attempt: 0,
            commit_max: 0,
            commit_max_us: 0,
            proposed_us: Vec::new(),
            stall_threshold_us,
            undecided: 0,
        }
    }
}
