//! Tenants in the KV workload: a hostile tenant floods while well-behaved tenants work. The
//! shipped tenant scenarios pass; each tenant checker catches the planted bug it exists for
//! (`tenant_caps` a store that never checks the keys cap, `tenant_latency` a replica that
//! admits writes first come first served); a tenant seed replays byte for byte; and a
//! malformed `[[tenants]]` section is refused with the key at fault.

mod common;

use common::{shipped_for, trace_of};
use rafting_sim::checkers::check;
use rafting_sim::{Scenario, run_seed};

fn quiet(name: &str, duration_ms: u64) -> Scenario {
    let mut scenario = shipped_for(name, duration_ms);
    scenario.expect.clear();
    scenario
}

// Seeds of the flood scenario: no violation, both well-behaved tenants' histories checked,
// and the flood refused both for its rates and for its caps.
#[test]
fn well_behaved_tenants_keep_their_latency_under_a_flood() {
    let scenario = shipped_for("tenants_flood.toml", 8_000);
    for seed in 1..=2 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        eprintln!("seed {seed}: {:?}", report.kv.latency_us_max);
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        assert!(report.kv.ops_checked > 200, "seed {seed}: {:?}", report.kv);
    }
}

// Seeds of the chaos scenario (faults on; the tenant alpha at its small caps): no
// violation, and each seed checks operations of the well-behaved tenants.
#[test]
fn tenants_under_chaos_keep_their_caps_and_histories() {
    let scenario = quiet("tenants_chaos.toml", 10_000);
    for seed in 1..=3 {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        assert!(report.kv.ops_checked > 50, "seed {seed}: {:?}", report.kv);
    }
}

// The planted store bug: the keys cap is never checked, so the flooding tenant (capped at
// 100 keys) writes past it. `tenant_caps`, run on every node after every applied entry,
// must catch it, naming the tenant and the cap.
#[test]
fn a_store_that_skips_the_keys_cap_is_caught_by_tenant_caps() {
    let mut scenario = quiet("tenants_flood.toml", 8_000);
    scenario.workload.planted_keys_cap_unchecked = true;
    // Without a bytes cap the flood's keys cap is the one it runs into.
    scenario.tenants[2].caps.bytes = None;
    let report = run_seed(&scenario, 1, None).expect("runs").report;
    let violation = report.violation.expect("the keys cap is passed");
    assert_eq!(violation.check, check::TENANT_CAPS, "{violation:?}");
    assert!(
        violation.detail.contains("tenant flood holds"),
        "{}",
        violation.detail
    );
    assert!(violation.detail.contains("keys"), "{}", violation.detail);
}

// The planted replica bug: writes are admitted first come first served, with no per-tenant
// rate, queue share or round robin. The flood then fills every batch and the well-behaved
// tenants' writes wait behind it: `tenant_latency` must fire. This is the proof that fair
// admission is what keeps their latency.
#[test]
fn unfair_admission_is_caught_by_tenant_latency() {
    let mut scenario = quiet("tenants_flood.toml", 8_000);
    scenario.workload.planted_unfair_admission = true;
    let caught = (1..=3).find_map(|seed| {
        let report = run_seed(&scenario, seed, None).expect("runs").report;
        eprintln!(
            "seed {seed}: {:?} {:?}",
            report.kv.latency_us_max, report.violation
        );
        report
            .violation
            .filter(|violation| violation.check == check::TENANT_LATENCY)
    });
    let violation = caught.expect("a well-behaved tenant waits behind the flood");
    assert!(
        violation.detail.contains("over its bound"),
        "{}",
        violation.detail
    );
}

// A tenant seed (a flood, refusals, tenant creation) replays to a byte-identical trace.
#[test]
fn a_tenant_seed_replays_identically() {
    let scenario = quiet("tenants_chaos.toml", 6_000);
    let first = trace_of(&scenario, 3);
    assert!(first.len() > 10_000);
    assert!(
        first == trace_of(&scenario, 3),
        "seed 3 replayed differently"
    );
}

// Malformed `[[tenants]]` sections are refused, naming the key at fault.
#[test]
fn malformed_tenants_are_refused_with_the_key_at_fault() {
    let base = "name = \"t\"\nprofile = \"brief\"\nnodes = 3\nduration_ms = 1000\n";
    let cases = [
        ("[[tenants]]\nname = \"a\"\nclients = 1\n", "tenants"),
        (
            "[workload]\nkind = \"kv\"\n[[tenants]]\nname = \"Bad Name\"\nclients = 1\n",
            "tenants[0].name",
        ),
        (
            "[workload]\nkind = \"kv\"\n[[tenants]]\nname = \"default\"\nclients = 1\n",
            "tenants[0].name",
        ),
        (
            "[workload]\nkind = \"kv\"\n[[tenants]]\nname = \"a\"\nclients = 1\n[[tenants]]\nname = \"a\"\nclients = 1\n",
            "tenants[1].name",
        ),
        (
            "[workload]\nkind = \"kv\"\n[[tenants]]\nname = \"a\"\nclients = 0\n",
            "tenants[0].clients",
        ),
        (
            "[workload]\nkind = \"kv\"\n[[tenants]]\nname = \"a\"\nclients = 1\nhostile = true\nvalue_bytes = 999999999\n",
            "tenants[0].value_bytes",
        ),
        (
            "[workload]\nkind = \"kv\"\n[[tenants]]\nname = \"a\"\nclients = 1\nhostile = true\nlatency_ms_max = 5\n",
            "tenants[0].latency_ms_max",
        ),
    ];
    for (text, key) in cases {
        let scenario: Scenario = toml::from_str(&format!("{base}{text}")).expect("parses");
        let (found, message) = rafting_sim::validate::validate(&scenario).expect_err(text);
        assert_eq!(found, key, "{text}: {message}");
    }
}
