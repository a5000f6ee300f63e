//! A master/standby worker: waits until it is master of `/billing`, then works while its guard
//! is valid, logging its epoch (the fencing token it would pass to what it writes). Run two
//! and stop the master (Ctrl-C): the other takes over at once; kill -9 it: after its TTL.
//!
//!     cargo run -p rafting-client --example master_worker -- billing-1
//!     cargo run -p rafting-client --example master_worker -- billing-2

use rafting_client::Member;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let instance = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "billing-1".into());
    let rafting = rafting_client::connect_from_env()?;
    let candidate =
        rafting.join_master_standby("/billing", Member::new(&instance).ttl_ms(2_000))?;
    loop {
        println!("{instance}: standby (master: {:?})", candidate.master());
        let master = candidate.wait_until_master()?;
        println!("{instance}: master with epoch {}", master.epoch());
        while master.is_valid() {
            // The work of a master, fenced by its epoch.
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "{instance}: no longer master (epoch {} is over)",
            master.epoch()
        );
    }
}
