//! rafting-sim: a seeded discrete-event simulator that runs the real `rafting-core` replicas
//! (the Raft node, its store and the request path `rafting node` runs) under a simulated
//! network, disk and clock, injects faults, and checks safety and linearizability.
//!
//! Start with [`run_seed`]: it takes a [`Scenario`] (loaded from a TOML file, see
//! `scenarios/README.md`) and a seed, and returns a [`SeedReport`] with the first violated
//! check, if any, plus the client [`History`]. The same seed always gives the same run, bit
//! for bit; pass a writer to get its trace as JSON lines. [`run_seeds`] runs many seeds on
//! several threads.
//!
//! Modules, in the order a seed uses them: [`scenario`] and [`validate`] (the file),
//! [`params`] (swarm draws and random streams), [`simulator`] (the event loop), `stepping`
//! (driving one host's replica and checking it), `faults`, [`attacker`] (real bytes on the
//! network, and the attacker fault) and `clients`, [`network`] and
//! [`disk`] (the simulated world), [`checkers`] (the named safety checks), [`workload`] (the
//! history), [`trace`] (JSON lines), [`runner`] (many seeds) and [`regressions`] (seeds that
//! once failed).

pub mod attacker;
pub mod checkers;
mod clients;
pub mod coverage;
pub mod disk;
pub mod farm;
mod faults;
pub mod kv;
pub mod linearizability;
mod membership;
pub mod network;
pub mod params;
mod queue;
pub mod regressions;
pub mod runner;
pub mod scenario;
pub mod services;
pub mod simulator;
pub mod status_check;
mod stepping;
pub mod trace;
pub mod validate;
pub mod wal_disk;
pub mod workload;

pub use checkers::Violation;
pub use runner::{RunSummary, run_seeds};
pub use scenario::{Scenario, ScenarioError};
pub use simulator::{SeedOutcome, SeedReport, SimError, run_seed};
pub use workload::History;
