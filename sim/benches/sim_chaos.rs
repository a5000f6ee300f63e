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
    let cpu_started = thread_cpu_seconds();
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
    let cpu = cpu_started.and_then(|start| Some(thread_cpu_seconds()? - start));
    println!(
        "chaos, 5 nodes, 1 thread: {seeds} seeds, {events} events in {wall:.2} s = {:.0} events/s; \
         simulated/wall = {:.0}x; violations {violations}",
        events as f64 / wall,
        simulated_ms as f64 / 1000.0 / wall,
    );
    // On a shared machine the wall figure depends on the neighbours; the thread's own CPU
    // time does much less.
    if let Some(cpu) = cpu {
        println!(
            "  on CPU {cpu:.2} s = {:.0} events per CPU second",
            events as f64 / cpu
        );
    }
}

/// This thread's time on a CPU so far (Linux: the first field of `/proc/thread-self/schedstat`,
/// in nanoseconds); `None` elsewhere.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos as f64 / 1e9)
}
