//! `rafting sim run` and `rafting sim replay`: the simulator's command-line face.

use crate::cli::{SimReplay, SimRun, SimTimeline};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rafting_sim::{SeedReport, run_seed, run_seeds};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One failing seed in the JSON summary.
#[derive(Serialize)]
struct Failure<'a> {
    seed: u64,
    check: &'static str,
    detail: &'a str,
    nodes: &'a [u64],
    index: Option<u64>,
    replay: String,
}

/// The JSON summary printed as the last line with `--json`.
#[derive(Serialize)]
struct JsonSummary<'a> {
    scenario: &'a str,
    seeds: u64,
    violations: u64,
    events: u64,
    simulated_ms: u64,
    wall_ms: u64,
    events_per_second: u64,
    /// Operations checked for linearizability across all seeds (KV scenarios).
    ops_checked: u64,
    /// Seeds whose linearizability check ran out of budget (never counted as passing).
    linearizability_unknown: u64,
    /// Seeds that reached each protocol situation (state coverage).
    coverage: &'a std::collections::BTreeMap<&'static str, u64>,
    failures: Vec<Failure<'a>>,
}

/// The command that replays a seed, with this binary's real path: after `cargo run`,
/// `rafting` is not on the PATH.
fn replay_command(scenario: &Path, seed: u64) -> String {
    let executable = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "rafting".to_owned());
    format!(
        "{executable} sim replay {} --seed {seed} --trace trace-{seed}.jsonl",
        scenario.display()
    )
}

/// The command that draws a seed's timeline (see [`crate::timeline`]).
fn timeline_command(scenario: &Path, seed: u64) -> String {
    let executable = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "rafting".to_owned());
    format!(
        "{executable} sim replay {} --seed {seed} --html timeline-{seed}.html",
        scenario.display()
    )
}

fn progress_bar(seeds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seeds);
    let style = ProgressStyle::with_template(
        "{bar:40} {pos}/{len} seeds  {msg}  [{elapsed_precise} < {eta_precise}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Runs the seeds; returns whether every seed passed.
pub fn run(command: &SimRun) -> Result<bool> {
    let bar = progress_bar(command.seeds);
    let started = Instant::now();
    let on_seed = |report: &SeedReport| {
        bar.inc(1);
        if let Some(violation) = &report.violation {
            bar.println(format!("seed {} violated {violation}", report.seed));
        }
    };
    let summary = run_seeds(
        &command.scenario,
        command.start_seed,
        command.seeds,
        command.jobs,
        &on_seed,
    )
    .context("running the simulator")?;
    bar.finish_and_clear();
    let wall_ms = started.elapsed().as_millis() as u64;
    let events_per_second = summary.events.saturating_mul(1000) / wall_ms.max(1);
    let mut out = std::io::stdout().lock();
    let name = &command.scenario.name;
    writeln!(out, "scenario {name} ({:?})", command.scenario.profile)?;
    writeln!(
        out,
        "seeds {}  violations {}  events {}  simulated {} ms  wall {} ms  {} events/s  sim/wall {:.0}x",
        summary.seeds,
        summary.violations,
        summary.events,
        summary.simulated_ms,
        wall_ms,
        events_per_second,
        summary.simulated_ms as f64 / wall_ms.max(1) as f64,
    )?;
    if summary.ops_checked > 0 || summary.linearizability_unknown > 0 {
        writeln!(
            out,
            "linearizability: {} operations checked, {} seeds unknown (budget spent)",
            summary.ops_checked, summary.linearizability_unknown
        )?;
    }
    if !summary.latency_us_max.is_empty() {
        let longest: Vec<String> = summary
            .latency_us_max
            .iter()
            .map(|(tenant, latency_us)| format!("{tenant} {:.1} ms", *latency_us as f64 / 1000.0))
            .collect();
        writeln!(out, "longest request by tenant: {}", longest.join(", "))?;
    }
    let reached: Vec<String> = summary
        .coverage
        .iter()
        .map(|(state, seeds)| format!("{state} {seeds}"))
        .collect();
    writeln!(out, "coverage (seeds): {}", reached.join(", "))?;
    let mut failures = Vec::new();
    for report in summary.failures() {
        let violation = report
            .violation
            .as_ref()
            .expect("failures have a violation");
        let replay = replay_command(&command.scenario_path, report.seed);
        writeln!(
            out,
            "FAIL seed {}: {violation}\n  replay: {replay}\n  timeline: {}",
            report.seed,
            timeline_command(&command.scenario_path, report.seed)
        )?;
        failures.push(Failure {
            seed: report.seed,
            check: violation.check,
            detail: &violation.detail,
            nodes: &violation.nodes,
            index: violation.index,
            replay,
        });
    }
    if command.json {
        let json = JsonSummary {
            scenario: name,
            seeds: summary.seeds,
            violations: summary.violations,
            events: summary.events,
            simulated_ms: summary.simulated_ms,
            wall_ms,
            events_per_second,
            ops_checked: summary.ops_checked,
            linearizability_unknown: summary.linearizability_unknown,
            coverage: &summary.coverage,
            failures,
        };
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    }
    Ok(summary.violations == 0)
}

/// `rafting sim timeline TRACE --html FILE`.
pub fn timeline(command: &SimTimeline) -> Result<()> {
    let trace = std::fs::read(&command.trace)
        .with_context(|| format!("reading the trace {}", command.trace.display()))?;
    write_timeline(&trace, &command.html)?;
    eprintln!("wrote {}", command.html.display());
    Ok(())
}

/// Draws `trace` into the page at `path`.
fn write_timeline(trace: &[u8], path: &Path) -> Result<()> {
    let timeline = crate::timeline::build(trace).context("reading the trace")?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    crate::timeline::write_html(&timeline, &mut writer)?;
    writer
        .flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Replays one seed, writing its trace and/or its timeline; returns whether it passed.
pub fn replay(command: &SimReplay) -> Result<bool> {
    let outcome = match (&command.trace, &command.html) {
        (None, None) => {
            let mut stdout = std::io::stdout().lock();
            run_seed(&command.scenario, command.seed, Some(&mut stdout))
                .context("replaying the seed")?
        }
        (Some(path), None) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating the trace file {}", path.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            run_seed(&command.scenario, command.seed, Some(&mut writer))
                .context("replaying the seed")?
        }
        (trace_path, Some(html_path)) => {
            let mut trace = Vec::new();
            let outcome = run_seed(&command.scenario, command.seed, Some(&mut trace))
                .context("replaying the seed")?;
            if let Some(path) = trace_path {
                std::fs::write(path, &trace)
                    .with_context(|| format!("writing the trace file {}", path.display()))?;
            }
            write_timeline(&trace, html_path)?;
            outcome
        }
    };
    let report = &outcome.report;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "{} seed {}: {} events, {} ms simulated, {} operations ({} committed), {} checked for linearizability{}",
        command.scenario_path.display(),
        report.seed,
        report.events,
        report.simulated_ms,
        report.operations,
        report.committed_operations,
        report.kv.ops_checked,
        if report.kv.linearizability_unknown {
            " (verdict unknown: budget spent)"
        } else {
            ""
        }
    )?;
    match &report.violation {
        Some(violation) => writeln!(err, "FAIL {violation}")?,
        None => writeln!(err, "ok")?,
    }
    Ok(report.violation.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replay hint names this very binary, which works after `cargo run` too.
    #[test]
    fn the_replay_hint_names_the_running_binary() {
        let executable = std::env::current_exe().unwrap();
        let hint = replay_command(Path::new("scenarios/a.toml"), 7);
        assert_eq!(
            hint,
            format!(
                "{} sim replay scenarios/a.toml --seed 7 --trace trace-7.jsonl",
                executable.display()
            )
        );
    }
}
