//! Running many seeds of one scenario, on several threads when asked, with a callback per
//! finished seed (for a progress bar). Results come back sorted by seed, so the summary does
//! not depend on thread scheduling.

use crate::scenario::Scenario;
use crate::simulator::{SeedReport, SimError, run_seed};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Totals over a run of seeds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub seeds: u64,
    pub violations: u64,
    pub events: u64,
    pub simulated_ms: u64,
    /// Operations checked for linearizability across all seeds (KV workload).
    pub ops_checked: u64,
    /// Seeds whose linearizability check ran out of budget: neither passed nor failed.
    pub linearizability_unknown: u64,
    /// How many seeds reached each protocol situation of [`crate::coverage::STATES`].
    pub coverage: BTreeMap<&'static str, u64>,
    /// The longest any request of each tenant took across all seeds, in µs (KV workload;
    /// hostile tenants left out): what a `latency_ms_max` bound is chosen from.
    pub latency_us_max: BTreeMap<String, u64>,
    pub reports: Vec<SeedReport>,
}

impl RunSummary {
    fn from_reports(mut reports: Vec<SeedReport>) -> RunSummary {
        reports.sort_by_key(|report| report.seed);
        RunSummary {
            seeds: reports.len() as u64,
            violations: reports
                .iter()
                .filter(|report| report.violation.is_some())
                .count() as u64,
            events: reports.iter().map(|report| report.events).sum(),
            simulated_ms: reports.iter().map(|report| report.simulated_ms).sum(),
            ops_checked: reports
                .iter()
                .map(|report| report.kv.ops_checked as u64)
                .sum(),
            linearizability_unknown: reports
                .iter()
                .filter(|report| report.kv.linearizability_unknown)
                .count() as u64,
            coverage: crate::coverage::tally(reports.iter().map(|report| &report.coverage)),
            latency_us_max: longest_latencies(&reports),
            reports,
        }
    }

    /// The reports of seeds that violated something.
    pub fn failures(&self) -> impl Iterator<Item = &SeedReport> {
        self.reports
            .iter()
            .filter(|report| report.violation.is_some())
    }
}

/// Runs seeds `start..start + count` on `jobs` threads, calling `on_seed` as each finishes.
pub fn run_seeds(
    scenario: &Scenario,
    start: u64,
    count: u64,
    jobs: usize,
    on_seed: &(dyn Fn(&SeedReport) + Sync),
) -> Result<RunSummary, SimError> {
    let next = AtomicU64::new(start);
    let end = start.saturating_add(count);
    let reports = Mutex::new(Vec::new());
    let first_error = Mutex::new(None);
    let worker = || {
        loop {
            let seed = next.fetch_add(1, Ordering::Relaxed);
            if seed >= end {
                return;
            }
            match run_seed(scenario, seed, None) {
                Ok(outcome) => {
                    on_seed(&outcome.report);
                    reports
                        .lock()
                        .expect("no worker panics holding the lock")
                        .push(outcome.report);
                }
                Err(error) => {
                    first_error
                        .lock()
                        .expect("no worker panics holding the lock")
                        .get_or_insert(error);
                    return;
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(worker);
        }
    });
    if let Some(error) = first_error.into_inner().expect("workers have finished") {
        return Err(error);
    }
    let reports = reports.into_inner().expect("workers have finished");
    Ok(RunSummary::from_reports(reports))
}

/// The longest latency of each tenant over `reports`.
fn longest_latencies(reports: &[SeedReport]) -> BTreeMap<String, u64> {
    let mut longest: BTreeMap<String, u64> = BTreeMap::new();
    for (tenant, &latency_us) in reports.iter().flat_map(|report| &report.kv.latency_us_max) {
        let entry = longest.entry(tenant.clone()).or_default();
        *entry = (*entry).max(latency_us);
    }
    longest
}
