//! rafting-sim: a seeded discrete-event simulator that runs the real `rafting-core` nodes under
//! a simulated network, disk and clock, injects faults, and checks safety and linearizability.

pub mod linearizability;
