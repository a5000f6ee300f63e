//! Validation of a parsed scenario: values in range, and the profile's assumptions respected.
//!
//! Each failure names the key (`network.loss_probability`) so that, with the file name the
//! caller adds, the author knows exactly what to change.

use crate::scenario::{PartitionKind, Profile, Scenario, Span, WorkloadKind};

/// The key at fault and what is wrong with it.
pub type Invalid = (String, String);

fn fail<T>(key: &str, message: impl Into<String>) -> Result<T, Invalid> {
    Err((key.to_string(), message.into()))
}

fn probability(key: &str, span: Span<f64>) -> Result<(), Invalid> {
    let (low, high) = (span.low(), span.high());
    if !(0.0..=1.0).contains(&low) || !(0.0..=1.0).contains(&high) {
        return fail(key, "a probability must be within [0, 1]");
    }
    if low > high {
        return fail(key, "the range's low end exceeds its high end");
    }
    Ok(())
}

fn non_negative(key: &str, span: Span<f64>, max: f64) -> Result<(), Invalid> {
    let (low, high) = (span.low(), span.high());
    if !(low >= 0.0 && high <= max) {
        return fail(key, format!("must be within [0, {max}]"));
    }
    if low > high {
        return fail(key, "the range's low end exceeds its high end");
    }
    Ok(())
}

fn ordered(key: &str, range: [u64; 2]) -> Result<(), Invalid> {
    if range[0] > range[1] {
        return fail(key, "the range's low end exceeds its high end");
    }
    Ok(())
}

/// Checks every value and the profile's assumptions.
pub fn validate(scenario: &Scenario) -> Result<(), Invalid> {
    if !(1..=9).contains(&scenario.nodes) {
        return fail("nodes", "must be between 1 and 9");
    }
    if scenario.duration_ms == 0 {
        return fail("duration_ms", "must be positive");
    }
    if let Some([low, high]) = scenario.nodes_drawn {
        if low == 0 || low > high || high > scenario.nodes {
            return fail("nodes_drawn", "needs 1 <= low <= high <= nodes");
        }
        if let Some((key, node)) = scenario
            .named_nodes()
            .into_iter()
            .find(|&(_, node)| node > low)
        {
            return fail(
                &key,
                format!("node {node} may not exist: nodes_drawn starts at {low}"),
            );
        }
    }
    validate_membership(scenario)?;
    validate_timing(scenario)?;
    validate_tenants(scenario)?;
    validate_store(scenario)?;
    validate_ranges(scenario)?;
    validate_profile(scenario)?;
    validate_script(scenario)
}

/// `initial_voters`, `add_node` and `remove_node`: spares exist only beside a fixed cluster
/// size, an added node is a spare, and a node is added at most once.
fn validate_membership(scenario: &Scenario) -> Result<(), Invalid> {
    use crate::scenario::ScriptedEvent;
    let voters = scenario.initial_voters.unwrap_or(scenario.nodes);
    if let Some(initial) = scenario.initial_voters {
        if initial == 0 || initial > scenario.nodes {
            return fail("initial_voters", "needs 1 <= initial_voters <= nodes");
        }
        if scenario.nodes_drawn.is_some() {
            return fail("initial_voters", "cannot be used with nodes_drawn");
        }
    }
    let mut added = Vec::new();
    for (position, event) in scenario.events.iter().enumerate() {
        let ScriptedEvent::AddNode { node, .. } = event else {
            continue;
        };
        let key = format!("events[{position}].node");
        if *node <= voters {
            return fail(
                &key,
                format!("node {node} is an initial voter; add_node takes a spare (> {voters})"),
            );
        }
        if added.contains(node) {
            return fail(&key, format!("node {node} is added twice"));
        }
        added.push(*node);
    }
    Ok(())
}

/// `[[tenants]]`: KV only, well-formed distinct names, at least one client each, hostile
/// values within the store's limit, latency bounds only where they mean something.
fn validate_tenants(scenario: &Scenario) -> Result<(), Invalid> {
    use rafting_core::store::StoreConfig;
    use rafting_core::store::tenants::validate_tenant_name;
    if !scenario.tenants.is_empty() && scenario.workload.kind != WorkloadKind::Kv {
        return fail("tenants", "tenants need workload.kind = \"kv\"");
    }
    let value_bytes_max = StoreConfig::default().value_bytes_max;
    for (position, tenant) in scenario.tenants.iter().enumerate() {
        let key = |field: &str| format!("tenants[{position}].{field}");
        if let Err(error) = validate_tenant_name(&tenant.name) {
            return fail(&key("name"), error.to_string());
        }
        if scenario.tenants[..position]
            .iter()
            .any(|other| other.name == tenant.name)
        {
            return fail(&key("name"), "two tenants have this name");
        }
        if tenant.clients == 0 {
            return fail(&key("clients"), "must be positive");
        }
        if tenant.hostile && !(1..=value_bytes_max).contains(&tenant.value_bytes) {
            return fail(
                &key("value_bytes"),
                format!("must be within [1, {value_bytes_max}] (the store's value limit)"),
            );
        }
        if tenant.hostile && tenant.flood_interval_ms == 0 {
            return fail(&key("flood_interval_ms"), "must be positive");
        }
        match tenant.latency_ms_max {
            Some(_) if tenant.hostile => {
                return fail(
                    &key("latency_ms_max"),
                    "a hostile tenant has no latency bound",
                );
            }
            Some(0) => return fail(&key("latency_ms_max"), "must be positive"),
            _ => {}
        }
    }
    Ok(())
}

fn validate_timing(scenario: &Scenario) -> Result<(), Invalid> {
    let timing = &scenario.timing;
    if timing.heartbeat_interval_ms == 0 {
        return fail("timing.heartbeat_interval_ms", "must be positive");
    }
    let [low, high] = timing.election_timeout_ms;
    if low <= timing.heartbeat_interval_ms || high <= low {
        return fail(
            "timing.election_timeout_ms",
            "needs heartbeat_interval_ms < low < high",
        );
    }
    let limits = [
        (
            "timing.entries_per_append_max",
            timing.entries_per_append_max,
        ),
        ("timing.bytes_per_append_max", timing.bytes_per_append_max),
        ("timing.inflight_messages_max", timing.inflight_messages_max),
        ("timing.inflight_bytes_max", timing.inflight_bytes_max),
        (
            "timing.uncommitted_entries_max",
            timing.uncommitted_entries_max,
        ),
        ("timing.uncommitted_bytes_max", timing.uncommitted_bytes_max),
        ("timing.pending_reads_max", timing.pending_reads_max),
    ];
    for (key, span) in limits {
        if span.low() == 0 {
            return fail(key, "must be positive");
        }
        ordered(key, [span.low(), span.high()])?;
    }
    if scenario.workload.request_timeout_ms == 0 {
        return fail("workload.request_timeout_ms", "must be positive");
    }
    if scenario.liveness.bound_ms == 0 {
        return fail("liveness.bound_ms", "must be positive");
    }
    validate_kv_workload(&scenario.workload)
}

/// `[store]`: every drawn limit positive and ordered, and large enough for what the workloads
/// send (a KV value, a KV transaction, a hostile tenant's value), so that no request of theirs
/// is refused by a limit and retried for ever.
fn validate_store(scenario: &Scenario) -> Result<(), Invalid> {
    /// The KV workload's longest value ("no longer ephemeral", `c12-s3456`) and largest
    /// transaction (one compare, two operations per branch).
    const KV_VALUE_BYTES_MAX: u64 = 24;
    const KV_TRANSACTION_OPERATIONS: u64 = 5;
    let store = &scenario.store;
    let limits = [
        ("store.value_bytes_max", store.value_bytes_max),
        (
            "store.transaction_operations_max",
            store.transaction_operations_max,
        ),
        (
            "store.watch_history_events_max",
            store.watch_history_events_max,
        ),
        (
            "store.watch_history_bytes_max",
            store.watch_history_bytes_max,
        ),
    ];
    for (key, span) in limits {
        if span.low() == 0 {
            return fail(key, "must be positive");
        }
        ordered(key, [span.low(), span.high()])?;
    }
    let hostile_value_bytes = scenario
        .tenants
        .iter()
        .filter(|tenant| tenant.hostile)
        .map(|tenant| tenant.value_bytes as u64)
        .max()
        .unwrap_or(0);
    if store.value_bytes_max.low() < KV_VALUE_BYTES_MAX.max(hostile_value_bytes) {
        return fail(
            "store.value_bytes_max",
            "must hold the workload's values (24 bytes, or a hostile tenant's value_bytes)",
        );
    }
    if store.transaction_operations_max.low() < KV_TRANSACTION_OPERATIONS {
        return fail(
            "store.transaction_operations_max",
            "must hold the KV workload's transactions (5 compares and operations)",
        );
    }
    Ok(())
}

/// The KV workload's own keys (they are ignored by the opaque workload).
fn validate_kv_workload(workload: &crate::scenario::Workload) -> Result<(), Invalid> {
    if !(1..=16).contains(&workload.keys_per_directory) {
        return fail("workload.keys_per_directory", "must be in 1..=16");
    }
    let defaults = rafting_core::store::StoreConfig::default();
    if workload.session_ttl_ms <= defaults.tick_advance_ms_max
        || workload.session_ttl_ms > defaults.session_ttl_ms_max
    {
        return fail(
            "workload.session_ttl_ms",
            "must exceed the store's tick_advance_ms_max (2000) and fit its TTL cap",
        );
    }
    if workload.session_tick_interval_ms == 0
        || workload.session_tick_interval_ms >= workload.session_ttl_ms
    {
        return fail(
            "workload.session_tick_interval_ms",
            "must be positive and below session_ttl_ms",
        );
    }
    Ok(())
}

fn validate_ranges(scenario: &Scenario) -> Result<(), Invalid> {
    let network = &scenario.network;
    ordered("network.latency_ms", network.latency_ms)?;
    probability("network.loss_probability", network.loss_probability)?;
    probability(
        "network.duplicate_probability",
        network.duplicate_probability,
    )?;
    probability("network.reorder_probability", network.reorder_probability)?;
    non_negative(
        "partitions.per_minute",
        scenario.partitions.per_minute,
        600.0,
    )?;
    ordered("partitions.duration_ms", scenario.partitions.duration_ms)?;
    if scenario.partitions.per_minute.high() > 0.0 && scenario.partitions.kinds.is_empty() {
        return fail(
            "partitions.kinds",
            "name at least one kind when partitions happen",
        );
    }
    non_negative("crashes.per_minute", scenario.crashes.per_minute, 600.0)?;
    ordered(
        "crashes.restart_delay_ms",
        scenario.crashes.restart_delay_ms,
    )?;
    probability(
        "crashes.wipe_probability",
        scenario.crashes.wipe_probability,
    )?;
    probability(
        "workload.wander_probability",
        scenario.workload.wander_probability,
    )?;
    ordered(
        "workload.client_latency_ms",
        scenario.workload.client_latency_ms,
    )?;
    non_negative("pauses.per_minute", scenario.pauses.per_minute, 600.0)?;
    ordered("pauses.duration_ms", scenario.pauses.duration_ms)?;
    ordered("disk.fsync_latency_ms", scenario.disk.fsync_latency_ms)?;
    probability(
        "disk.torn_write_probability",
        scenario.disk.torn_write_probability,
    )?;
    non_negative("clock.drift_max", scenario.clock.drift_max, 0.5)?;
    non_negative(
        "attacker.per_second",
        scenario.attacker.per_second,
        10_000.0,
    )?;
    let interval = scenario.workload.request_interval_ms;
    if interval.low() > interval.high() {
        return fail(
            "workload.request_interval_ms",
            "the range's low end exceeds its high end",
        );
    }
    Ok(())
}

/// The brief assumes links that lose but never reorder or duplicate, atomic persistence,
/// and nothing stranger than lost messages; a `brief` scenario may not ask for more.
fn validate_profile(scenario: &Scenario) -> Result<(), Invalid> {
    if scenario.profile != Profile::Brief {
        return Ok(());
    }
    let why = "profile `brief` assumes it away; set it to 0 or use profile `relaxed`";
    if scenario.network.duplicate_probability.high() > 0.0 {
        return fail("network.duplicate_probability", why);
    }
    if scenario.network.reorder_probability.high() > 0.0 {
        return fail("network.reorder_probability", why);
    }
    if scenario.disk.torn_write_probability.high() > 0.0 {
        return fail("disk.torn_write_probability", why);
    }
    if scenario.crashes.wipe_probability.high() > 0.0 {
        return fail("crashes.wipe_probability", why);
    }
    if scenario.pauses.per_minute.high() > 0.0 {
        return fail("pauses.per_minute", why);
    }
    if scenario.clock.drift_max.high() > 0.0 {
        return fail("clock.drift_max", why);
    }
    let wiping = |event: &crate::scenario::ScriptedEvent| {
        matches!(
            event,
            crate::scenario::ScriptedEvent::Crash { wipe: true, .. }
        )
    };
    if let Some(position) = scenario.events.iter().position(wiping) {
        return fail(&format!("events[{position}].wipe"), why);
    }
    if scenario.attacker.enabled() {
        return fail("attacker.per_second", why);
    }
    let brief_kinds = [PartitionKind::Halves, PartitionKind::IsolateLeader];
    if let Some(kind) = scenario
        .partitions
        .kinds
        .iter()
        .find(|kind| !brief_kinds.contains(kind))
    {
        return fail(
            "partitions.kinds",
            format!("{kind:?} is not allowed by profile `brief` (only halves, isolate_leader)"),
        );
    }
    Ok(())
}

fn validate_script(scenario: &Scenario) -> Result<(), Invalid> {
    for (key, node) in scenario.named_nodes() {
        if node == 0 || node > scenario.nodes {
            return fail(
                &key,
                format!(
                    "node {node} does not exist (nodes are 1..={})",
                    scenario.nodes
                ),
            );
        }
    }
    for (position, event) in scenario.events.iter().enumerate() {
        if let crate::scenario::ScriptedEvent::Network {
            loss_probability, ..
        } = event
            && !(0.0..=1.0).contains(loss_probability)
        {
            return fail(
                &format!("events[{position}].loss_probability"),
                "a probability must be within [0, 1]",
            );
        }
    }
    for (position, expectation) in scenario.expect.iter().enumerate() {
        if let crate::scenario::Expectation::NoCommit {
            since_ms, at_ms, ..
        } = expectation
            && since_ms > at_ms
        {
            return fail(
                &format!("expect[{position}].since_ms"),
                "must not exceed at_ms",
            );
        }
        if let crate::scenario::Expectation::Reached { state, .. } = expectation
            && !crate::coverage::STATES.contains(&state.as_str())
        {
            return fail(
                &format!("expect[{position}].state"),
                format!(
                    "unknown state; one of {}",
                    crate::coverage::STATES.join(", ")
                ),
            );
        }
    }
    if scenario.limits.events_max == 0 || scenario.limits.queued_events_max == 0 {
        return fail(
            "limits",
            "events_max and queued_events_max must be positive",
        );
    }
    Ok(())
}
