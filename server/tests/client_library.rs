//! The Rust client library against real node processes: exactly-once keys, farms with
//! balancers, master/standby with a guard, and a client that outlives a node.

mod common;

use common::TestCluster;
use rafting_client::{Member, MonteCarlo};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ELECTION_WAIT: Duration = Duration::from_secs(15);

fn endpoints(cluster: &TestCluster) -> String {
    (0..cluster.nodes.len())
        .map(|index| cluster.url(index))
        .collect::<Vec<_>>()
        .join(",")
}

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keys_farms_and_a_master_in_one_call_each() {
    let cluster = TestCluster::start(3);
    cluster.wait_for_leader(ELECTION_WAIT);
    let rafting = rafting_client::connect(&endpoints(&cluster)).unwrap();

    // Keys, exactly once.
    let written = rafting.put("/config/mode", b"fast").unwrap();
    assert_eq!(written.version, 1);
    assert_eq!(
        rafting.get("/config/mode").unwrap().as_deref(),
        Some(&b"fast"[..])
    );
    assert_eq!(rafting.get("/config/none").unwrap(), None);
    assert!(rafting.delete("/config/mode").unwrap());
    assert!(!rafting.delete("/config/mode").unwrap());

    // A farm: three members register themselves; a caller picks round robin.
    let members: Vec<_> = ["s1", "s2", "s3"]
        .iter()
        .map(|instance| {
            let member = Member::new(*instance)
                .address("http", format!("{instance}:80"))
                .ttl_ms(1_000);
            rafting.join_farm("/search", member).unwrap()
        })
        .collect();
    let search = rafting.farm("/search").unwrap();
    eventually("three members seen", Duration::from_secs(5), || {
        search.members().len() == 3
    });
    // The listing carries the revision of the group's last change, to watch from.
    let (status, body) = common::request(
        "GET",
        &format!("{}/v1/services/search", cluster.url(0)),
        b"",
    );
    assert_eq!(status, 200);
    let view: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(view["revision"].as_u64().unwrap() > 0, "{view}");
    let mut counts = BTreeMap::new();
    for _ in 0..300 {
        *counts
            .entry(search.pick().unwrap().instance.clone())
            .or_insert(0) += 1;
    }
    assert!(counts.values().all(|&count| count == 100), "{counts:?}");
    // One leaves: the watch drops it from the caller's list at once.
    let mut members = members;
    drop(members.remove(0));
    eventually(
        "the departed member no longer picked",
        Duration::from_secs(5),
        || search.members().len() == 2,
    );
    assert!((0..50).all(|_| search.pick().unwrap().instance != "s1"));
    let weighted = rafting
        .farm("/search")
        .unwrap()
        .with_balancer(MonteCarlo::seeded(1));
    eventually("the weighted view", Duration::from_secs(5), || {
        weighted.members().len() == 2
    });
    assert_ne!(weighted.pick().unwrap().instance, "s1");

    // Master/standby: the first candidate leads; when it goes, the second does.
    let first = rafting
        .join_master_standby("/billing", Member::new("b1").ttl_ms(1_000))
        .unwrap();
    let guard = first.wait_until_master().unwrap();
    assert!(guard.is_valid());
    let second = rafting
        .join_master_standby("/billing", Member::new("b2").ttl_ms(1_000))
        .unwrap();
    let epoch = guard.epoch();
    let lost = guard.lost();
    assert!(
        lost.recv_timeout(Duration::from_millis(300)).is_err(),
        "no loss signal while it leads"
    );
    drop(first);
    assert!(!guard.is_valid(), "a candidate that left no longer leads");
    lost.recv_timeout(Duration::from_secs(1))
        .expect("the guard signals the loss at once");
    let started = Instant::now();
    let next = second.wait_until_master().unwrap();
    assert!(next.epoch() > epoch, "{} after {epoch}", next.epoch());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "handover took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_client_keeps_working_when_the_node_it_talks_to_dies() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(ELECTION_WAIT);
    // The leader's address first: the client prefers it until it dies.
    let mut urls: Vec<String> = vec![cluster.node(leader).url()];
    urls.extend(
        (1..=3)
            .filter(|&id| id != leader)
            .map(|id| cluster.node(id).url()),
    );
    let rafting = rafting_client::connect(&urls.join(",")).unwrap();
    rafting.put("/before", b"1").unwrap();
    cluster.node_mut(leader).kill();
    for i in 0..20 {
        rafting.put(&format!("/after/{i}"), b"2").unwrap();
    }
    assert_eq!(rafting.get("/before").unwrap().as_deref(), Some(&b"1"[..]));
}
