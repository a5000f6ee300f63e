//! The attacker fault (`scenarios/attacker.toml`, see `rafting_sim::attacker`): with the
//! cluster secret no check fires and no forged or mutated datagram is ever acted on; the
//! same attack on a cluster without the secret is caught by the checkers, which shows they
//! would see it; and with the secret the clients see exactly the run they see without any
//! attacker.

mod common;

use rafting_sim::attacker::Attack;
use rafting_sim::{Scenario, run_seed, run_seeds};

fn attacker(duration_ms: u64) -> Scenario {
    common::shipped_for("attacker.toml", duration_ms)
}

// Runs 24 seeds of the attacker scenario with the secret: no violation, every kind of attack
// sent and refused, and not one forged, mutated or garbage datagram accepted.
#[test]
fn with_the_secret_nothing_forged_is_acted_on() {
    let scenario = attacker(10_000);
    let summary = run_seeds(&scenario, 1, 24, 2, &|_| {}).expect("runs");
    let failures: Vec<String> = summary
        .failures()
        .map(|report| format!("seed {}: {:?}", report.seed, report.violation))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    for report in &summary.reports {
        let attack = &report.attack;
        for kind in [Attack::Garbage, Attack::Forged, Attack::Mutated] {
            assert_eq!(
                attack.accepted_of(kind),
                0,
                "seed {}: {attack:?}",
                report.seed
            );
        }
        for kind in ["garbage", "forged", "replayed", "mutated"] {
            assert!(
                attack.sent.get(kind).copied().unwrap_or(0) > 0,
                "seed {}: {attack:?}",
                report.seed
            );
        }
        let refused_for_auth: u64 = attack
            .refused
            .iter()
            .filter(|(key, _)| key.ends_with("/auth") || key.ends_with("/unauthenticated"))
            .map(|(_, count)| count)
            .sum();
        assert!(refused_for_auth > 0, "seed {}: {attack:?}", report.seed);
    }
}

// The same attack on a cluster without the secret: forged messages from spoofed members are
// accepted, and a checker catches what they do (a forged entry committed) in most seeds.
#[test]
fn without_the_secret_the_checkers_catch_the_forgeries() {
    let mut scenario = attacker(10_000);
    scenario.secret = false;
    let summary = run_seeds(&scenario, 1, 12, 2, &|_| {}).expect("runs");
    let caught: Vec<&str> = summary
        .failures()
        .filter_map(|report| report.violation.as_ref().map(|violation| violation.check))
        .collect();
    assert!(
        caught.len() >= 6,
        "only {} of 12 seeds caught: {caught:?}",
        caught.len()
    );
    assert!(caught.contains(&"state_machine_safety"), "{caught:?}");
    let accepted: u64 = summary
        .reports
        .iter()
        .map(|report| report.attack.accepted_of(Attack::Forged))
        .sum();
    assert!(accepted > 0, "no forgery was accepted without the secret");
}

/// The trace lines a client's view is made of: what was delivered, persisted, committed,
/// elected and answered (attack datagrams and their drops left out).
fn clients_view(scenario: &Scenario, seed: u64) -> Vec<String> {
    let mut trace = Vec::new();
    run_seed(scenario, seed, Some(&mut trace)).expect("runs");
    let kept = [
        "\"deliver\"",
        "\"persisted\"",
        "\"commit\"",
        "\"role\"",
        "\"client\"",
    ];
    String::from_utf8(trace)
        .expect("JSON lines")
        .lines()
        .filter(|line| kept.iter().any(|kind| line.contains(kind)))
        .map(str::to_owned)
        .collect()
}

// With the secret, an attacker that forges, mutates and sends garbage changes nothing at all:
// the run is the same step for step as without it. (Replays are left out: a replay that
// arrives before its original is accepted in its place, which moves the run.)
#[test]
fn with_the_secret_clients_see_no_difference() {
    let mut attacked = attacker(8_000);
    attacked.attacker.replay = false;
    let mut calm = attacked.clone();
    calm.attacker.per_second = rafting_sim::scenario::Span::zero();
    for seed in [1, 2, 3] {
        let with_attacker = clients_view(&attacked, seed);
        assert!(
            with_attacker.len() > 1000,
            "seed {seed}: the trace records the run"
        );
        assert!(
            with_attacker == clients_view(&calm, seed),
            "seed {seed}: the attacker changed the run"
        );
    }
}

// Same seed, same trace, in wire mode with the attacker too.
#[test]
fn the_attacker_scenario_is_deterministic() {
    let scenario = attacker(5_000);
    let trace = |seed| {
        let mut bytes = Vec::new();
        run_seed(&scenario, seed, Some(&mut bytes)).expect("runs");
        bytes
    };
    assert!(trace(5) == trace(5), "seed 5 replayed differently");
}
