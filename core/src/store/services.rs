//! Service groups: one master and ordered standbys, self-registered, fenced by an epoch.
//!
//! A *service group* is created by the first member that registers with its name, with the
//! settings that member brings (mode, expected members, start delay, failover hold-off); no
//! separate configuration step exists. A later member that brings a different setting is
//! refused (`settings_conflict`, naming the difference); one that brings none takes the
//! group's.
//!
//! # Members
//!
//! A member is an instance id chosen by the service (unique in the group), free-form addresses
//! and metadata, a priority, and a session of its own (opened by the registration, with the
//! member's TTL, on the replicated session clock). The registration is ephemeral: the member
//! leaves when its session ends, closed or expired. Registering an instance id that is already
//! there is refused (`member_exists`) while its session lives, as ZooKeeper refuses an
//! ephemeral node that exists: the live registration may be a master acting on its lease, and
//! replacing it (say, by a registration retried or delayed from the process's previous life)
//! would appoint a successor while it still acts. A restarted process registers again once its
//! old session has ended (at once if it left gracefully, else after its TTL); a client that
//! numbers its registration (exactly-once headers) gets its first answer back on a retry.
//!
//! # The master and the epoch
//!
//! At any replicated moment a group has exactly one master or none. Candidates are ordered by
//! priority (higher first), then registration order (earlier first). **Every change of master,
//! to another member or to none, bumps the group's epoch**: a u64 that only grows, is never
//! reused (groups are never deleted) and is part of the replicated state, so it survives
//! leader changes, restarts and log replay. A member learns its role with the epoch in every
//! answer; a resource that must refuse a stale master compares epochs.
//!
//! - **Graceful stop**: a master that resigns, deregisters or closes its session is replaced
//!   in the same log entry, with no wait. A resigning member stays registered, is skipped
//!   until another master has been appointed, and may name its successor. A resign with a
//!   stale epoch is refused (`stale_epoch`).
//! - **Brutal stop**: a master whose session expires is replaced at the same tick, or, if the
//!   group has a hold-off (`failover_delay_ms`, default 0), the group has no master until the
//!   replicated clock has run that long: time for the old master's in-flight writes to drain
//!   from the resources it used, before anyone else acts.
//! - **Two-step cold start**: a group registered with `expected_members: N` stays *forming*,
//!   with no master, until N registrations have arrived since it was (re)formed; then it runs
//!   and the best member is appointed. `start_after_ms` starts it anyway once the replicated
//!   clock has run that long since forming began; a `StartGroup` request starts it at once.
//!   When every member has gone, a running group forms again.
//!
//! # Draining, by the member or by the operator
//!
//! A farm member that is *draining* stays registered and is never picked. Two flags make it
//! so, owned by two different parties: the member's own (its registration and every report it
//! sends carry it, so its next keep-alive sets it back to what the member thinks), and the
//! operator's ([`Operation::DrainMember`](super::Operation::DrainMember), the dashboard's
//! *drain* button). The operator's flag is kept on the group by instance id, apart from the
//! member's registration: no report of the member touches it, and it outlives the member's
//! session, so a process restarted during maintenance comes back drained. Only the operator
//! clears it. A member is picked only when neither flag is set; the views say which is.
//!
//! # Watching
//!
//! After every change a group's view is written as JSON to the key `/_services<name>` (so
//! `/_services/billing/web` for the group `/billing/web`) at the change's revision: the watch
//! stream carries every change of a group, and a listing of `/_services` lists them all. Keys
//! under `/_services` are written by the store alone.

use super::answer::Outcome;
use super::error::StoreError;
use super::key::{Revision, SessionId, TenantId};
use super::store::Store;
use super::tenants::Cap;
use crate::types::{LogIndex, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The prefix of the keys that mirror service groups for watchers.
pub const SERVICES_PREFIX: &str = "/_services";
/// Longest instance id, address or metadata name or value, in bytes.
const TEXT_BYTES_MAX: usize = 256;
/// Most addresses and metadata entries of one member, each.
const ENTRIES_MAX: usize = 32;
/// Most instances the operator may hold drained in one group (registered or not).
pub const OPERATOR_DRAINED_MAX: usize = 256;

/// How a group shares work among its members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceMode {
    /// One master, the others on standby.
    #[default]
    MasterStandby,
    /// Every member is active; callers pick among them (round robin, Monte Carlo, their own
    /// balancer). A farm has no master and its epoch does not move.
    Farm,
}

/// What a member reports about itself (with a keep-alive, or on its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdate {
    /// Its load, in the service's own unit (in-flight requests, CPU %): Monte Carlo picks
    /// favour low loads.
    pub load: Option<u64>,
    /// Draining for maintenance: it stays registered and is not picked.
    pub draining: Option<bool>,
    pub weight: Option<u32>,
}

/// A member's registration request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The group's name, a hierarchical path like a key (`/billing/web`).
    pub group: String,
    /// Chosen by the service; unique within the group.
    pub instance: String,
    pub addresses: BTreeMap<String, String>,
    /// Higher is preferred as master.
    pub priority: i64,
    /// A farm member's share of the picks (default 1; 0: never picked).
    pub weight: Option<u32>,
    /// A farm member that registers again (its session ended in a stall) while draining
    /// stays out of the picks from its first moment back.
    pub draining: bool,
    pub meta: BTreeMap<String, String>,
    /// The member's session TTL on the replicated clock.
    pub ttl_ms: u64,
    /// Group settings: taken from the first member; a later member's must agree.
    pub mode: Option<ServiceMode>,
    pub expected_members: Option<u32>,
    pub start_after_ms: Option<u64>,
    pub failover_delay_ms: Option<u64>,
}

/// A group's settings, fixed by its first member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    pub mode: ServiceMode,
    pub expected_members: Option<u32>,
    pub start_after_ms: Option<u64>,
    pub failover_delay_ms: u64,
}

/// Whether a group has started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupPhase {
    /// Waiting for its expected members (or its start delay, or a start request).
    #[default]
    Forming,
    Running,
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Standby,
    /// A farm member: active, picked by callers.
    Active,
}

/// One registered member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub instance: String,
    pub addresses: BTreeMap<String, String>,
    pub priority: i64,
    pub meta: BTreeMap<String, String>,
    pub session: SessionId,
    /// Registration order within the group.
    pub order: u64,
    /// It resigned: skipped until another master is appointed.
    pub resigned: bool,
    pub weight: u32,
    pub load: u64,
    /// Draining by its own report (its registration, its updates).
    pub draining: bool,
}

/// One service group's replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub settings: GroupSettings,
    pub phase: GroupPhase,
    /// When the group last began forming (replicated clock).
    pub forming_since: Millis,
    /// Registrations since the group last began forming.
    pub registered_while_forming: u32,
    pub epoch: u64,
    pub master: Option<String>,
    pub members: BTreeMap<String, Member>,
    next_order: u64,
    /// A brutal stop's hold-off: no master is appointed before the clock reads this.
    pub hold_off_until: Option<Millis>,
    /// The revision of the group's last published change (its mirror key's).
    pub revision: Revision,
    /// Instances the operator drained, by id: kept apart from the members' registrations so
    /// that no report of a member clears it, and across a member's re-registration.
    pub drained_by_operator: BTreeSet<String>,
}

impl Group {
    fn role_of(&self, instance: &str) -> Role {
        if self.settings.mode == ServiceMode::Farm {
            Role::Active
        } else if self.master.as_deref() == Some(instance) {
            Role::Master
        } else {
            Role::Standby
        }
    }

    /// The standbys in succession order: priority (higher first), then registration order.
    pub fn standbys(&self) -> Vec<&Member> {
        let mut standbys: Vec<&Member> = self
            .members
            .values()
            .filter(|member| self.master.as_deref() != Some(member.instance.as_str()))
            .collect();
        standbys.sort_by_key(|member| (std::cmp::Reverse(member.priority), member.order));
        standbys
    }

    /// The member to appoint next: the first standby that has not resigned.
    fn successor(&self) -> Option<String> {
        self.standbys()
            .into_iter()
            .find(|member| !member.resigned)
            .map(|member| member.instance.clone())
    }

    /// Makes `master` the master; a change (to another member or to none) bumps the epoch.
    fn appoint(&mut self, master: Option<String>) {
        if master == self.master {
            return;
        }
        self.epoch += 1;
        if master.is_some() {
            for member in self.members.values_mut() {
                member.resigned = false;
            }
        }
        self.master = master;
    }

    /// Appoints the successor if the group runs, has no master and is not holding off.
    fn fill_vacancy(&mut self, now: Millis) {
        if self.settings.mode == ServiceMode::Farm
            || self.phase != GroupPhase::Running
            || self.master.is_some()
        {
            return;
        }
        if self.hold_off_until.is_some_and(|until| now < until) {
            return;
        }
        self.hold_off_until = None;
        let successor = self.successor();
        self.appoint(successor);
    }

    fn start(&mut self, now: Millis) {
        self.phase = GroupPhase::Running;
        self.fill_vacancy(now);
    }
}

/// Every service group of every tenant, and which member each session holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTable {
    groups: BTreeMap<(TenantId, String), Group>,
    by_session: BTreeMap<SessionId, (TenantId, String, String)>,
}

impl ServiceTable {
    pub fn group(&self, tenant: TenantId, name: &str) -> Option<&Group> {
        self.groups.get(&(tenant, name.to_owned()))
    }

    /// The groups of a tenant, by name.
    pub fn groups(&self, tenant: TenantId) -> impl Iterator<Item = (&str, &Group)> {
        self.groups
            .range((tenant, String::new())..)
            .take_while(move |((owner, _), _)| *owner == tenant)
            .map(|((_, name), group)| (name.as_str(), group))
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn group_mut(&mut self, tenant: TenantId, name: &str) -> Result<&mut Group, StoreError> {
        self.groups
            .get_mut(&(tenant, name.to_owned()))
            .ok_or_else(|| StoreError::GroupNotFound {
                group: name.to_owned(),
            })
    }

    /// Removes every group of `tenant` (its tenant is deleted, and tenant ids are never
    /// reused, so no epoch can be seen again); returns how many.
    pub(crate) fn remove_tenant(&mut self, tenant: TenantId) -> usize {
        let before = self.groups.len();
        self.groups.retain(|(owner, _), _| *owner != tenant);
        self.by_session.retain(|_, (owner, _, _)| *owner != tenant);
        before - self.groups.len()
    }

    /// Whether any group waits for the clock (a hold-off, or a start delay).
    fn waits_for_clock(&self) -> bool {
        self.groups.values().any(|group| {
            group.hold_off_until.is_some()
                || (group.phase == GroupPhase::Forming && group.settings.start_after_ms.is_some())
        })
    }
}

/// What the member is told after a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub role: Role,
    pub epoch: u64,
    pub phase: GroupPhase,
    pub master: Option<String>,
    pub session: SessionId,
    pub expires_at: Millis,
}

/// A group as readers see it (`GET /v1/services/<name>`, the mirror key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub mode: ServiceMode,
    pub phase: GroupPhase,
    /// Registrations since the group last began forming (the cold-start barrier counts them).
    pub joined_while_forming: u32,
    pub expected_members: Option<u32>,
    pub start_after_ms: Option<u64>,
    pub failover_delay_ms: u64,
    pub epoch: u64,
    pub master: Option<MasterView>,
    /// Instance ids in succession order.
    pub standbys: Vec<String>,
    pub members: Vec<MemberEntry>,
    /// Instances the operator drained, registered now or not (one that left and registers
    /// again comes back drained).
    #[serde(default)]
    pub drained_by_operator: Vec<String>,
    /// The revision of the group's last change: a caller caching the view watches the mirror
    /// key from here.
    pub revision: u64,
}

/// The master with its fencing token, for resources that check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterView {
    pub instance: String,
    pub epoch: u64,
    pub addresses: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    pub instance: String,
    pub role: Role,
    pub addresses: BTreeMap<String, String>,
    pub priority: i64,
    pub weight: u32,
    pub load: u64,
    /// Whether the member is out of the picks: drained by itself, by the operator, or both.
    pub draining: bool,
    /// The member's own report says draining.
    #[serde(default)]
    pub drained_by_self: bool,
    /// The operator drained it; only the operator undrains it.
    #[serde(default)]
    pub drained_by_operator: bool,
    pub meta: BTreeMap<String, String>,
    pub session: SessionId,
    /// The member's session deadline on the replicated clock.
    pub expires_at: Millis,
}

impl Store {
    /// The view of a group, as readers and the mirror key see it.
    pub fn group_view(&self, tenant: TenantId, name: &str) -> Option<GroupView> {
        let group = self.services.group(tenant, name)?;
        let member_entry = |member: &Member| MemberEntry {
            instance: member.instance.clone(),
            role: group.role_of(&member.instance),
            addresses: member.addresses.clone(),
            priority: member.priority,
            weight: member.weight,
            load: member.load,
            draining: member.draining || group.drained_by_operator.contains(&member.instance),
            drained_by_self: member.draining,
            drained_by_operator: group.drained_by_operator.contains(&member.instance),
            meta: member.meta.clone(),
            session: member.session,
            expires_at: self.sessions.expires_at(member.session).unwrap_or_default(),
        };
        Some(GroupView {
            name: name.to_owned(),
            mode: group.settings.mode,
            phase: group.phase,
            joined_while_forming: group.registered_while_forming,
            expected_members: group.settings.expected_members,
            start_after_ms: group.settings.start_after_ms,
            failover_delay_ms: group.settings.failover_delay_ms,
            epoch: group.epoch,
            master: group.master.as_ref().and_then(|master| {
                group.members.get(master).map(|member| MasterView {
                    instance: master.clone(),
                    epoch: group.epoch,
                    addresses: member.addresses.clone(),
                })
            }),
            standbys: group
                .standbys()
                .into_iter()
                .map(|member| member.instance.clone())
                .collect(),
            members: group.members.values().map(member_entry).collect(),
            drained_by_operator: group.drained_by_operator.iter().cloned().collect(),
            revision: group.revision.get(),
        })
    }

    /// Registers a member (rules in the module documentation).
    pub(crate) fn register_member(
        &mut self,
        index: LogIndex,
        tenant: TenantId,
        registration: Registration,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        self.check_registration(tenant, &registration)?;
        let name = registration.group.clone();
        let existing = self
            .services
            .group(tenant, &name)
            .is_some_and(|group| group.members.contains_key(&registration.instance));
        if existing {
            // Never replace a live registration: its holder may be master and acting on its
            // lease. A restarted process registers again once its old session has ended.
            return Err(StoreError::MemberExists {
                group: name,
                instance: registration.instance,
            });
        }
        let new_group = self.services.group(tenant, &name).is_none();
        self.check_cap(tenant, Cap::Services, i64::from(new_group))?;
        self.check_cap(tenant, Cap::Members, 1)?;
        let opened = self.open_session(index, tenant, registration.ttl_ms)?;
        self.count(tenant, Cap::Services, i64::from(new_group));
        self.count(tenant, Cap::Members, 1);
        let Outcome::SessionOpened {
            session,
            expires_at,
            ..
        } = opened
        else {
            unreachable!("opening a session answers SessionOpened");
        };
        let now = self.sessions.now();
        let key = (tenant, name.clone());
        let group = self.services.groups.entry(key).or_insert_with(|| Group {
            settings: settings_of(&registration),
            forming_since: now,
            ..Group::default()
        });
        let order = group.next_order;
        group.next_order += 1;
        group.members.insert(
            registration.instance.clone(),
            Member {
                instance: registration.instance.clone(),
                addresses: registration.addresses,
                priority: registration.priority,
                meta: registration.meta,
                session,
                order,
                resigned: false,
                weight: registration.weight.unwrap_or(1),
                load: 0,
                draining: registration.draining,
            },
        );
        if group.phase == GroupPhase::Forming {
            group.registered_while_forming += 1;
            let expected = group.settings.expected_members.unwrap_or(1);
            if group.registered_while_forming >= expected {
                group.start(now);
            }
        } else {
            group.fill_vacancy(now);
        }
        self.services.by_session.insert(
            session,
            (tenant, name.clone(), registration.instance.clone()),
        );
        self.publish_group(tenant, &name, revision);
        let group = self.services.group(tenant, &name).expect("just registered");
        Ok(Outcome::MemberRegistered(MemberView {
            role: group.role_of(&registration.instance),
            epoch: group.epoch,
            phase: group.phase,
            master: group.master.clone(),
            session,
            expires_at,
        }))
    }

    fn check_registration(
        &self,
        tenant: TenantId,
        registration: &Registration,
    ) -> Result<(), StoreError> {
        self.check_key(&registration.group)?;
        let text_ok = |text: &str| !text.is_empty() && text.len() <= TEXT_BYTES_MAX;
        if !text_ok(&registration.instance) {
            return Err(StoreError::invalid_request(format!(
                "an instance id is 1 to {TEXT_BYTES_MAX} bytes"
            )));
        }
        for map in [&registration.addresses, &registration.meta] {
            if map.len() > ENTRIES_MAX
                || !map
                    .iter()
                    .all(|(k, v)| text_ok(k) && v.len() <= TEXT_BYTES_MAX)
            {
                return Err(StoreError::invalid_request(format!(
                    "at most {ENTRIES_MAX} addresses and {ENTRIES_MAX} metadata entries, names of 1 to \
                     {TEXT_BYTES_MAX} bytes, values of at most {TEXT_BYTES_MAX}"
                )));
            }
        }
        if registration.expected_members == Some(0) {
            return Err(StoreError::invalid_request(
                "expected_members must be at least 1".to_owned(),
            ));
        }
        let Some(group) = self.services.group(tenant, &registration.group) else {
            return Ok(());
        };
        let settings = group.settings;
        let mut differences = Vec::new();
        if let Some(mode) = registration.mode
            && mode != settings.mode
        {
            differences.push(format!("mode {mode:?} (the group's: {:?})", settings.mode));
        }
        if registration.expected_members.is_some()
            && registration.expected_members != settings.expected_members
        {
            differences.push(format!(
                "expected_members {:?} (the group's: {:?})",
                registration.expected_members, settings.expected_members
            ));
        }
        if registration.start_after_ms.is_some()
            && registration.start_after_ms != settings.start_after_ms
        {
            differences.push(format!(
                "start_after_ms {:?} (the group's: {:?})",
                registration.start_after_ms, settings.start_after_ms
            ));
        }
        if let Some(delay) = registration.failover_delay_ms
            && delay != settings.failover_delay_ms
        {
            differences.push(format!(
                "failover_delay_ms {delay} (the group's: {})",
                settings.failover_delay_ms
            ));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(StoreError::SettingsConflict {
                group: registration.group.clone(),
                differences: differences.join("; "),
            })
        }
    }

    /// Keeps a member's session alive and tells it its role.
    pub(crate) fn member_keep_alive(
        &mut self,
        tenant: TenantId,
        group: &str,
        instance: &str,
    ) -> Result<Outcome, StoreError> {
        let session = self.member_session(tenant, group, instance)?;
        let expires_at = self.sessions.keep_alive(session, tenant)?;
        Ok(Outcome::MemberKeptAlive(
            self.member_view(tenant, group, instance, expires_at),
        ))
    }

    /// A member reports its load, drains, or changes its weight; its session is kept alive
    /// too. Watchers see the change (a load that did not change writes nothing new).
    pub(crate) fn update_member(
        &mut self,
        tenant: TenantId,
        group: &str,
        instance: &str,
        update: MemberUpdate,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        let session = self.member_session(tenant, group, instance)?;
        let expires_at = self.sessions.keep_alive(session, tenant)?;
        let member = self
            .services
            .group_mut(tenant, group)?
            .members
            .get_mut(instance)
            .expect("found by member_session");
        let before = (member.load, member.draining, member.weight);
        member.load = update.load.unwrap_or(member.load);
        member.draining = update.draining.unwrap_or(member.draining);
        member.weight = update.weight.unwrap_or(member.weight);
        if (member.load, member.draining, member.weight) != before {
            self.publish_group(tenant, group, revision);
        }
        Ok(Outcome::MemberKeptAlive(
            self.member_view(tenant, group, instance, expires_at),
        ))
    }

    /// A member leaves gracefully: its session is closed, and if it was master the successor
    /// is appointed in the same entry.
    pub(crate) fn deregister_member(
        &mut self,
        tenant: TenantId,
        group: &str,
        instance: &str,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        let session = self.member_session(tenant, group, instance)?;
        self.end_session(session, revision, Departure::Graceful);
        let group = self
            .services
            .group(tenant, group)
            .expect("groups are never deleted");
        Ok(Outcome::GroupChanged {
            epoch: group.epoch,
            master: group.master.clone(),
        })
    }

    /// The master steps down, naming its successor or not.
    pub(crate) fn resign(
        &mut self,
        tenant: TenantId,
        name: &str,
        instance: &str,
        epoch: u64,
        to: Option<String>,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        let group = self.services.group_mut(tenant, name)?;
        if group.settings.mode == ServiceMode::Farm {
            return Err(StoreError::invalid_request(format!(
                "{name} is a farm: it has no master to resign"
            )));
        }
        let member = group
            .members
            .get_mut(instance)
            .ok_or_else(|| StoreError::MemberNotFound {
                group: name.to_owned(),
                instance: instance.to_owned(),
            })?;
        if group.master.as_deref() != Some(instance) || epoch != group.epoch {
            return Err(StoreError::StaleEpoch {
                group: name.to_owned(),
                epoch,
                current: group.epoch,
            });
        }
        // It stays registered, as the last standby, and is skipped until someone else leads.
        member.resigned = true;
        member.order = group.next_order;
        group.next_order += 1;
        let successor = match to {
            Some(to) if to != instance => {
                if !group.members.contains_key(&to) {
                    return Err(StoreError::MemberNotFound {
                        group: name.to_owned(),
                        instance: to,
                    });
                }
                Some(to)
            }
            _ => group.successor(),
        };
        group.appoint(successor);
        let (epoch, master) = (group.epoch, group.master.clone());
        self.publish_group(tenant, name, revision);
        Ok(Outcome::GroupChanged { epoch, master })
    }

    /// The operator drains a farm member (`draining`) or undrains it. Draining needs a
    /// registered member; undraining also clears an instance that has left since.
    pub(crate) fn drain_member(
        &mut self,
        tenant: TenantId,
        name: &str,
        instance: &str,
        draining: bool,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        let group = self.services.group_mut(tenant, name)?;
        if group.settings.mode != ServiceMode::Farm {
            return Err(StoreError::invalid_request(format!(
                "{name} is a master/standby group: only a farm's members are drained (resign \
                 the master instead)"
            )));
        }
        let known = group.members.contains_key(instance)
            || (!draining && group.drained_by_operator.contains(instance));
        if !known {
            return Err(StoreError::MemberNotFound {
                group: name.to_owned(),
                instance: instance.to_owned(),
            });
        }
        let changed = if draining {
            if !group.drained_by_operator.contains(instance)
                && group.drained_by_operator.len() >= OPERATOR_DRAINED_MAX
            {
                return Err(StoreError::LimitReached {
                    what: format!("instances drained by the operator in {name}"),
                    max: OPERATOR_DRAINED_MAX as u64,
                });
            }
            group.drained_by_operator.insert(instance.to_owned())
        } else {
            group.drained_by_operator.remove(instance)
        };
        if changed {
            self.publish_group(tenant, name, revision);
        }
        let group = self
            .services
            .group(tenant, name)
            .expect("groups are never deleted");
        Ok(Outcome::MemberDrained {
            instance: instance.to_owned(),
            drained_by_operator: draining,
            draining: draining
                || group
                    .members
                    .get(instance)
                    .is_some_and(|member| member.draining),
            revision: group.revision,
        })
    }

    /// Starts a forming group now, with whoever has registered.
    pub(crate) fn start_group(
        &mut self,
        tenant: TenantId,
        name: &str,
        revision: Revision,
    ) -> Result<Outcome, StoreError> {
        let now = self.sessions.now();
        let group = self.services.group_mut(tenant, name)?;
        if group.phase == GroupPhase::Forming {
            group.start(now);
        }
        let (epoch, master) = (group.epoch, group.master.clone());
        self.publish_group(tenant, name, revision);
        Ok(Outcome::GroupChanged { epoch, master })
    }

    fn member_session(
        &self,
        tenant: TenantId,
        group: &str,
        instance: &str,
    ) -> Result<SessionId, StoreError> {
        let group_state =
            self.services
                .group(tenant, group)
                .ok_or_else(|| StoreError::GroupNotFound {
                    group: group.to_owned(),
                })?;
        group_state
            .members
            .get(instance)
            .map(|member| member.session)
            .ok_or_else(|| StoreError::MemberNotFound {
                group: group.to_owned(),
                instance: instance.to_owned(),
            })
    }

    fn member_view(
        &self,
        tenant: TenantId,
        name: &str,
        instance: &str,
        expires_at: Millis,
    ) -> MemberView {
        let group = self
            .services
            .group(tenant, name)
            .expect("checked by the caller");
        MemberView {
            role: group.role_of(instance),
            epoch: group.epoch,
            phase: group.phase,
            master: group.master.clone(),
            session: group.members[instance].session,
            expires_at,
        }
    }

    /// A session ended: if it held a member, the member leaves its group. A graceful
    /// departure (close, deregister) appoints the successor at once; an expiry waits for the
    /// group's hold-off.
    pub(crate) fn on_session_ended(
        &mut self,
        session: SessionId,
        revision: Revision,
        departure: Departure,
    ) {
        let Some((tenant, name, instance)) = self.services.by_session.remove(&session) else {
            return;
        };
        let now = self.sessions.now();
        let Some(group) = self.services.groups.get_mut(&(tenant, name.clone())) else {
            return;
        };
        if group.members.remove(&instance).is_some() {
            self.tenant_table.add(tenant, Cap::Members, -1);
        }
        let group = self
            .services
            .groups
            .get_mut(&(tenant, name.clone()))
            .expect("looked up just above");
        if group.members.is_empty() {
            group.appoint(None);
            group.phase = GroupPhase::Forming;
            group.forming_since = now;
            group.registered_while_forming = 0;
            group.hold_off_until = None;
        } else if group.master.as_deref() == Some(instance.as_str())
            && group.settings.mode == ServiceMode::MasterStandby
        {
            let delay = group.settings.failover_delay_ms;
            if departure == Departure::Expired && delay > 0 {
                group.hold_off_until = Some(now.plus(delay));
                group.appoint(None);
            } else {
                // One change of master, one epoch: straight to the successor.
                let successor = group.successor();
                group.appoint(successor);
            }
        }
        self.publish_group(tenant, &name, revision);
    }

    /// The replicated clock advanced: hold-offs that ran out appoint, start delays that ran
    /// out start their groups.
    pub(crate) fn services_on_clock(&mut self, revision: Revision) {
        if !self.services.waits_for_clock() {
            return;
        }
        let now = self.sessions.now();
        let mut changed = Vec::new();
        for ((tenant, name), group) in &mut self.services.groups {
            let (epoch, phase) = (group.epoch, group.phase);
            if group.phase == GroupPhase::Forming
                && group
                    .settings
                    .start_after_ms
                    .is_some_and(|after| now >= group.forming_since.plus(after))
                && !group.members.is_empty()
            {
                group.start(now);
            } else {
                group.fill_vacancy(now);
            }
            if group.epoch != epoch || group.phase != phase {
                changed.push((*tenant, name.clone()));
            }
        }
        for (tenant, name) in changed {
            self.publish_group(tenant, &name, revision);
        }
    }

    /// Writes the group's view to its mirror key, for watchers.
    fn publish_group(&mut self, tenant: TenantId, name: &str, revision: Revision) {
        if let Some(group) = self.services.groups.get_mut(&(tenant, name.to_owned())) {
            group.revision = revision;
        }
        let Some(view) = self.group_view(tenant, name) else {
            return;
        };
        let value = serde_json::to_vec(&view).expect("a group view always encodes");
        self.write_key(
            tenant,
            format!("{SERVICES_PREFIX}{name}"),
            value.into(),
            None,
            revision,
        );
    }
}

/// How a member left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Closed its session or deregistered: the successor is appointed at once.
    Graceful,
    /// Its session expired: the successor waits for the group's hold-off.
    Expired,
}

fn settings_of(registration: &Registration) -> GroupSettings {
    GroupSettings {
        mode: registration.mode.unwrap_or_default(),
        expected_members: registration.expected_members,
        start_after_ms: registration.start_after_ms,
        failover_delay_ms: registration.failover_delay_ms.unwrap_or(0),
    }
}
