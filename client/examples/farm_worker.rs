//! A farm member: a tiny HTTP echo worker that registers itself in the farm `/echo` as it
//! starts and leaves when stopped.
//!
//!     cargo run --release -- dev                                   # a cluster, in another terminal
//!     cargo run -p rafting-client --example farm_worker -- w1 9101
//!     cargo run -p rafting-client --example farm_worker -- w2 9102
//!     cargo run -p rafting-client --example farm_caller

use rafting_client::Member;
use std::io::{Read, Write};
use std::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let instance = arguments.next().unwrap_or_else(|| "w1".into());
    let port: u16 = arguments.next().unwrap_or_else(|| "9101".into()).parse()?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let rafting = rafting_client::connect_from_env()?;
    let member = Member::new(&instance)
        .address("http", format!("127.0.0.1:{port}"))
        .ttl_ms(1_000);
    let _membership = rafting.join_farm("/echo", member)?;
    println!("{instance} serves on 127.0.0.1:{port} and is in the farm /echo");
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request)?;
        let body = format!("served by {instance}\n");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes())?;
    }
    Ok(())
}
