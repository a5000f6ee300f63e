//! Simulator throughput: events per second and simulated-to-wall time for the 5-node chaos
//! scenario, release build, one thread. Run with `cargo bench -p rafting-sim --bench sim_chaos`
//! (`SIM_BENCH_SEEDS` sets how many seeds, default 200).

use rafting_sim::{Scenario, run_seed};
use std::path::Path;
use std::time::Instant;

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
    let seeds: u64 = std::env::var("SIM_BENCH_SEEDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200);
    let started = Instant::now();
    let (mut events, mut simulated_ms, mut violations) = (0u64, 0u64, 0u64);
    for seed in 1..=seeds {
        let report = run_seed(&scenario, seed, None)
            .expect("the seed runs")
            .report;
        events += report.events;
        simulated_ms += report.simulated_ms;
        violations += u64::from(report.violation.is_some());
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "chaos, 5 nodes, 1 thread: {seeds} seeds, {events} events in {wall:.2} s = {:.0} events/s; \
         simulated/wall = {:.0}x; violations {violations}",
        events as f64 / wall,
        simulated_ms as f64 / 1000.0 / wall,
    );
}
