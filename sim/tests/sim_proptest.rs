//! A property test over scenario parameters: any cluster size, fault mix and seed proptest draws
//! runs without violating a check. When one fails, proptest shrinks the parameters toward the
//! smallest failing mix and prints it with the seed.

use proptest::prelude::*;
use rafting_sim::{Scenario, run_seed};
use std::path::Path;

#[allow(clippy::too_many_arguments)]
fn scenario(
    nodes: u64,
    relaxed: bool,
    loss: f64,
    duplicate: f64,
    crashes_per_minute: f64,
    partitions_per_minute: f64,
    torn: f64,
    drift: f64,
) -> Scenario {
    let (profile, kinds, extra) = if relaxed {
        (
            "relaxed",
            r#"["halves", "isolate_leader", "bridge", "one_way"]"#,
            format!(
                "[disk]\ntorn_write_probability = {torn}\n[clock]\ndrift_max = {drift}\n\
                 [pauses]\nper_minute = 3.0\nduration_ms = [100, 1000]\n"
            ),
        )
    } else {
        ("brief", r#"["halves", "isolate_leader"]"#, String::new())
    };
    let duplicate = if relaxed { duplicate } else { 0.0 };
    let text = format!(
        "name = \"proptest\"\nprofile = \"{profile}\"\nnodes = {nodes}\nduration_ms = 6000\n\
         [network]\nloss_probability = {loss}\nduplicate_probability = {duplicate}\n\
         [crashes]\nper_minute = {crashes_per_minute}\nrestart_delay_ms = [0, 1500]\n\
         [partitions]\nper_minute = {partitions_per_minute}\nduration_ms = [200, 3000]\nkinds = {kinds}\n\
         [liveness]\nbound_ms = 25000\n{extra}"
    );
    Scenario::parse(&text, Path::new("proptest.toml")).unwrap_or_else(|error| panic!("{error}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    // Draws parameters and a seed, runs the seed, and requires no violation.
    #[test]
    fn any_parameters_keep_raft_safe(
        nodes in 1u64..=5,
        relaxed in any::<bool>(),
        loss in 0.0f64..0.3,
        duplicate in 0.0f64..0.2,
        crashes_per_minute in 0.0f64..20.0,
        partitions_per_minute in 0.0f64..20.0,
        torn in 0.0f64..1.0,
        drift in 0.0f64..0.1,
        seed in any::<u64>(),
    ) {
        let scenario = scenario(
            nodes, relaxed, loss, duplicate, crashes_per_minute, partitions_per_minute, torn, drift,
        );
        let report = run_seed(&scenario, seed, None).expect("the seed runs").report;
        prop_assert!(report.violation.is_none(), "seed {seed}: {:?}", report.violation);
        prop_assert!(report.events > 100, "the seed ran: {} events", report.events);
    }
}
