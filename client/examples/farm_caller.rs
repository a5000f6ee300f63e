//! A caller of the farm `/echo`: picks a member for each request, round robin and Monte
//! Carlo side by side, and prints which member served it. A member that fails a request is
//! reported and skipped for a while.
//!
//!     cargo run -p rafting-client --example farm_caller [INTERVAL_MS]
//!
//! Each line shows one call of each balancer: `served by w2`, `w3 failed: ...`, or
//! `no member: ...`.

use rafting_client::{Farm, MonteCarlo};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn call(farm: &Farm) -> String {
    let member = match farm.pick() {
        Ok(member) => member,
        Err(error) => return format!("no member: {error}"),
    };
    let address = member.addresses.get("http").cloned().unwrap_or_default();
    let answer = TcpStream::connect(&address).and_then(|mut stream| {
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: echo\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    });
    match answer {
        Ok(text) => text.lines().last().unwrap_or_default().to_owned(),
        Err(error) => {
            farm.report_failure(&member);
            format!("{} failed: {error}", member.instance)
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let interval_ms: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(500), |text| text.parse())?;
    let rafting = rafting_client::connect_from_env()?;
    let round_robin = rafting.farm("/echo")?;
    let monte_carlo = rafting.farm("/echo")?.with_balancer(MonteCarlo::new());
    loop {
        println!(
            "round robin: {:<24} monte carlo: {}",
            call(&round_robin),
            call(&monte_carlo)
        );
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
}
