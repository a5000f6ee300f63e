//! The replica's request path: admission, batching, the proposal table, exactly-once
//! numbering, session ticks and deadlines, on a small in-memory cluster of replicas.

use rafting_core::raft::{Config, Envelope, Node, PersistBatch};
use rafting_core::replica::{
    Answer, Applied, Consistency, Input, Numbered, Output, Replica, ReplicaConfig, ReplicaError,
    RequestId, SnapshotJob,
};
use rafting_core::store::{
    ClientId, Operation, Outcome, Query, ReadAnswer, Store, StoreError, TenantId,
};
use rafting_core::{LogIndex, Millis, NodeId};
use std::collections::VecDeque;

const FAR: Millis = Millis(1_000_000_000);

/// Replicas with instant, manual or no persistence and a message queue the test drives.
struct Cluster {
    replicas: Vec<Replica>,
    now: Millis,
    queue: VecDeque<Envelope>,
    /// Persist batches not yet reported durable, per replica (reported by `settle`).
    unpersisted: Vec<Vec<PersistBatch>>,
    answers: Vec<(usize, Answer)>,
    /// Replicas cut off from everyone.
    isolated: Vec<bool>,
    persist_count: Vec<usize>,
    /// When set, snapshots to encode are kept here (with the replica that asked) instead of
    /// being encoded at once, as an encoder thread still busy with them would.
    held_snapshots: Option<Vec<(usize, SnapshotJob)>>,
}

impl Cluster {
    fn new(size: u64, config: ReplicaConfig) -> Cluster {
        Cluster::with_raft(size, config, |_| {})
    }

    fn with_raft(size: u64, config: ReplicaConfig, adjust: impl Fn(&mut Config)) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let replicas = ids
            .iter()
            .map(|&id| {
                let mut raft = Config::new(id, ids.iter().copied(), 7);
                adjust(&mut raft);
                let node = Node::new(raft).unwrap();
                Replica::new(node, Store::default(), config)
            })
            .collect();
        Cluster {
            replicas,
            now: Millis(0),
            queue: VecDeque::new(),
            unpersisted: vec![Vec::new(); size as usize],
            answers: Vec::new(),
            isolated: vec![false; size as usize],
            persist_count: vec![0; size as usize],
            held_snapshots: None,
        }
    }

    fn step(&mut self, at: usize, input: Input) {
        let output = self.replicas[at].step(self.now, input);
        self.carry_out(at, output);
    }

    fn carry_out(&mut self, at: usize, output: Output) {
        self.persist_count[at] += output.persist.len();
        self.unpersisted[at].extend(output.persist);
        self.queue.extend(output.messages);
        self.answers
            .extend(output.answers.into_iter().map(|answer| (at, answer)));
        if let Some(job) = output.snapshot_to_encode {
            if let Some(held) = &mut self.held_snapshots {
                held.push((at, job));
                return;
            }
            let image = job.encode();
            self.step(
                at,
                Input::SnapshotEncoded {
                    index: job.index,
                    image,
                },
            );
        }
    }

    /// The snapshots replica `at` asked for that are held (see `held_snapshots`), taken out.
    fn take_held_snapshots(&mut self, at: usize) -> Vec<SnapshotJob> {
        let held = self.held_snapshots.as_mut().expect("snapshots are held");
        let (taken, kept) = std::mem::take(held)
            .into_iter()
            .partition(|(asker, _)| *asker == at);
        *held = kept;
        taken.into_iter().map(|(_, job)| job).collect()
    }

    /// Persists everything, delivers every message, until quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            for at in 0..self.replicas.len() {
                if let Some(last) = self.unpersisted[at].last().map(|batch| batch.id) {
                    self.unpersisted[at].clear();
                    self.step(at, Input::Persisted(last));
                    busy = true;
                }
            }
            while let Some(envelope) = self.queue.pop_front() {
                busy = true;
                let from = envelope.from.get() as usize - 1;
                let to = envelope.to.get() as usize - 1;
                if self.isolated[from] || self.isolated[to] {
                    continue;
                }
                self.step(to, Input::Message(envelope));
            }
            if !busy {
                return;
            }
        }
        panic!("the cluster never went quiet");
    }

    /// Advances time in 10 ms ticks, settling after each.
    fn run_for(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now = self.now.plus(10);
            for at in 0..self.replicas.len() {
                self.step(at, Input::Tick);
            }
            self.settle();
        }
    }

    fn leader(&self) -> Option<usize> {
        self.replicas.iter().position(|replica| {
            replica.is_leader() && !self.isolated[replica.id().get() as usize - 1]
        })
    }

    fn elect(&mut self) -> usize {
        for _ in 0..200 {
            if let Some(leader) = self.leader() {
                // Let the term's no-op commit.
                self.run_for(50);
                return leader;
            }
            self.run_for(50);
        }
        panic!("no leader elected");
    }

    fn answer(&mut self, id: RequestId) -> Answer {
        let position = self
            .answers
            .iter()
            .position(|(_, answer)| answer.id() == id)
            .unwrap_or_else(|| panic!("no answer to {id:?}; answers: {:?}", self.answers));
        self.answers.remove(position).1
    }

    fn has_answer(&self, id: RequestId) -> bool {
        self.answers.iter().any(|(_, answer)| answer.id() == id)
    }

    fn write(&mut self, at: usize, id: u64, operation: Operation, numbered: Option<Numbered>) {
        self.step(
            at,
            Input::Write {
                id: RequestId(id),
                tenant: TenantId::DEFAULT,
                operation,
                numbered,
                deadline: FAR,
            },
        );
    }

    /// Writes through replica `at`, flushes its queue, lets the cluster settle and returns
    /// the write's applied answer (panicking on any other).
    fn write_committed(&mut self, at: usize, id: u64, operation: Operation) -> Applied {
        self.write(at, id, operation, None);
        self.step(at, Input::Flush);
        self.settle();
        written(self.answer(RequestId(id)))
    }

    fn register(&mut self, at: usize, id: u64) -> ClientId {
        self.step(
            at,
            Input::RegisterClient {
                id: RequestId(id),
                deadline: FAR,
            },
        );
        self.settle();
        match self.answer(RequestId(id)) {
            Answer::Write {
                result:
                    Ok(Applied {
                        response: Ok(Outcome::ClientRegistered { client }),
                        ..
                    }),
                ..
            } => client,
            other => panic!("registration answered {other:?}"),
        }
    }
}

fn written(answer: Answer) -> Applied {
    match answer {
        Answer::Write {
            result: Ok(applied),
            ..
        } => applied,
        other => panic!("expected an applied write, got {other:?}"),
    }
}

fn write_error(answer: Answer) -> ReplicaError {
    match answer {
        Answer::Write {
            result: Err(error), ..
        } => error,
        other => panic!("expected a write error, got {other:?}"),
    }
}

#[test]
fn a_write_is_answered_once_applied_with_the_store_answer_and_its_place_in_the_log() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    cluster.write(leader, 1, Operation::put("/a", b"1"), None);
    cluster.step(leader, Input::Flush);
    assert!(
        !cluster.has_answer(RequestId(1)),
        "answered before it committed"
    );
    cluster.settle();
    let applied = written(cluster.answer(RequestId(1)));
    let Ok(Outcome::Written {
        revision, version, ..
    }) = applied.response
    else {
        panic!("unexpected outcome {:?}", applied.response);
    };
    assert_eq!(version, 1);
    assert!(revision.get() >= 1);
    assert_eq!(applied.term, cluster.replicas[leader].node().term());
    // Every replica applies it to its store (followers learn the commit with the next append).
    cluster.run_for(100);
    for replica in &cluster.replicas {
        assert_eq!(
            replica
                .store()
                .get(TenantId::DEFAULT, "/a")
                .unwrap()
                .version,
            1
        );
    }
}

#[test]
fn a_follower_refuses_writes_and_linearizable_reads_naming_the_leader_but_serves_stale_reads() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    let follower = (leader + 1) % 3;
    let leader_id = cluster.replicas[leader].id();
    cluster.write(follower, 1, Operation::put("/a", b"1"), None);
    assert_eq!(
        write_error(cluster.answer(RequestId(1))),
        ReplicaError::NotLeader {
            leader: Some(leader_id)
        }
    );
    let query = Query::Get {
        tenant: TenantId::DEFAULT,
        key: "/a".into(),
    };
    cluster.step(
        follower,
        Input::Read {
            id: RequestId(2),
            query: query.clone(),
            consistency: Consistency::Linearizable,
            deadline: FAR,
        },
    );
    assert!(matches!(
        cluster.answer(RequestId(2)),
        Answer::Read { result: Err(ReplicaError::NotLeader { leader: Some(id) }), .. } if id == leader_id
    ));
    cluster.step(
        follower,
        Input::Read {
            id: RequestId(3),
            query,
            consistency: Consistency::Stale,
            deadline: FAR,
        },
    );
    assert!(matches!(
        cluster.answer(RequestId(3)),
        Answer::Read {
            result: Err(ReplicaError::Store(StoreError::NotFound { .. })),
            ..
        }
    ));
}

#[test]
fn writes_of_one_round_share_one_persist_batch_at_the_leader() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    // Register this node's own record first, so the round below is only the writes.
    cluster.write_committed(leader, 1, Operation::put("/warm", b"up"));
    let before = cluster.persist_count[leader];
    for id in 10..20 {
        cluster.write(leader, id, Operation::put(&format!("/k{id}"), b"v"), None);
    }
    assert_eq!(
        cluster.persist_count[leader], before,
        "proposed before the flush"
    );
    cluster.step(leader, Input::Flush);
    assert_eq!(
        cluster.persist_count[leader],
        before + 1,
        "one batch for the round"
    );
    cluster.settle();
    for id in 10..20 {
        written(cluster.answer(RequestId(id)));
    }
}

#[test]
fn a_retried_numbered_write_gets_the_first_answer_and_applies_once() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    let client = cluster.register(leader, 1);
    let numbered = Numbered {
        client,
        sequence: 1,
        acknowledged_below: 1,
    };
    cluster.write(leader, 2, Operation::put("/counter", b"x"), Some(numbered));
    cluster.step(leader, Input::Flush);
    cluster.settle();
    let first = written(cluster.answer(RequestId(2)));
    // The client never saw that answer and retries the same (client, sequence).
    cluster.write(leader, 3, Operation::put("/counter", b"x"), Some(numbered));
    cluster.step(leader, Input::Flush);
    cluster.settle();
    let retry = written(cluster.answer(RequestId(3)));
    assert_eq!(
        retry.response, first.response,
        "the retry gets the first answer"
    );
    assert_ne!(retry.index, first.index, "the retry is a new entry");
    let version = cluster.replicas[leader]
        .store()
        .get(TenantId::DEFAULT, "/counter")
        .unwrap()
        .version;
    assert_eq!(version, 1, "applied once");
}

#[test]
fn a_write_numbered_by_an_unknown_client_is_refused_by_the_log_without_applying() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    let numbered = Numbered {
        client: ClientId(999),
        sequence: 1,
        acknowledged_below: 1,
    };
    cluster.write(leader, 1, Operation::put("/a", b"1"), Some(numbered));
    cluster.step(leader, Input::Flush);
    cluster.settle();
    let applied = written(cluster.answer(RequestId(1)));
    assert_eq!(
        applied.response,
        Err(StoreError::UnknownClient {
            client: ClientId(999)
        })
    );
    assert!(
        cluster.replicas[leader]
            .store()
            .get(TenantId::DEFAULT, "/a")
            .is_err()
    );
}

#[test]
fn a_full_write_queue_refuses_with_overloaded_instead_of_growing() {
    let config = ReplicaConfig {
        queued_writes_max: 3,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::new(3, config);
    let leader = cluster.elect();
    for id in 1..=4 {
        cluster.write(leader, id, Operation::put("/a", b"1"), None);
    }
    assert_eq!(
        write_error(cluster.answer(RequestId(4))),
        ReplicaError::Overloaded("write queue full")
    );
    cluster.step(leader, Input::Flush);
    cluster.settle();
    for id in 1..=3 {
        written(cluster.answer(RequestId(id)));
    }
}

#[test]
fn a_tenant_holding_its_share_of_pending_reads_is_refused_while_others_still_read() {
    let config = ReplicaConfig {
        pending_reads_per_tenant_max: 2,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::new(3, config);
    let leader = cluster.elect();
    let flooder = TenantId(9);
    let read = |id: u64, tenant: TenantId| Input::Read {
        id: RequestId(id),
        query: Query::Get {
            tenant,
            key: "/a".into(),
        },
        consistency: Consistency::Linearizable,
        deadline: FAR,
    };
    // Three reads before any quorum round: the third is over the flooder's share.
    for id in 1..=3 {
        cluster.step(leader, read(id, flooder));
    }
    let Answer::Read {
        result: Err(error), ..
    } = cluster.answer(RequestId(3))
    else {
        panic!("the read over the tenant's share was not refused");
    };
    assert_eq!(
        error,
        ReplicaError::Overloaded("this tenant's share of the pending reads is full")
    );
    // Another tenant's read still goes in, and every admitted read is served.
    cluster.step(leader, read(4, TenantId::DEFAULT));
    cluster.settle();
    for id in [1, 2, 4] {
        let Answer::Read { result, .. } = cluster.answer(RequestId(id)) else {
            panic!("a read answered as a write");
        };
        assert!(
            !matches!(result, Err(ReplicaError::Overloaded(_))),
            "read {id} refused: {result:?}"
        );
    }
    // Served reads leave the flooder's share: it may read again.
    cluster.step(leader, read(5, flooder));
    cluster.settle();
    let Answer::Read { result, .. } = cluster.answer(RequestId(5)) else {
        panic!("a read answered as a write");
    };
    assert!(!matches!(result, Err(ReplicaError::Overloaded(_))));
}

#[test]
fn a_write_that_cannot_commit_times_out_at_its_deadline() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    // Cut both followers off: nothing can commit.
    for at in 0..3 {
        cluster.isolated[at] = at != leader;
    }
    cluster.step(
        leader,
        Input::Write {
            id: RequestId(1),
            tenant: TenantId::DEFAULT,
            operation: Operation::put("/a", b"1"),
            numbered: None,
            deadline: cluster.now.plus(300),
        },
    );
    cluster.step(leader, Input::Flush);
    cluster.settle();
    assert!(!cluster.has_answer(RequestId(1)));
    let mut waited = 0;
    while !cluster.has_answer(RequestId(1)) {
        cluster.now = cluster.now.plus(10);
        cluster.step(leader, Input::Tick);
        cluster.settle();
        waited += 10;
        assert!(waited <= 400, "no answer 100 ms past the deadline");
    }
    let error = write_error(cluster.answer(RequestId(1)));
    // The lease may run out first (CheckQuorum): either way the client learns it is unknown.
    assert!(
        matches!(
            error,
            ReplicaError::Timeout | ReplicaError::OutcomeUnknown { .. }
        ),
        "{error:?}"
    );
    // The cut heals and the entry may still commit: nobody waits for it, and the replica's
    // invariants (checked at every step in debug builds) hold.
    for at in 0..3 {
        cluster.isolated[at] = false;
    }
    cluster.run_for(3_000);
    assert!(cluster.leader().is_some());
}

#[test]
fn a_leader_that_loses_leadership_answers_its_writes_in_flight_as_unknown() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let old = cluster.elect();
    for at in 0..3 {
        cluster.isolated[at] = at == old;
    }
    cluster.write(old, 1, Operation::put("/a", b"1"), None);
    cluster.step(old, Input::Flush);
    cluster.settle();
    // The others elect a new leader; the old one hears of it once reconnected.
    cluster.run_for(3_000);
    for at in 0..3 {
        cluster.isolated[at] = false;
    }
    cluster.run_for(1_000);
    assert!(!cluster.replicas[old].is_leader());
    let error = write_error(cluster.answer(RequestId(1)));
    assert!(
        matches!(
            error,
            ReplicaError::OutcomeUnknown { .. } | ReplicaError::NotLeader { .. }
        ),
        "{error:?}"
    );
}

#[test]
fn the_leader_ticks_the_session_clock_only_while_sessions_exist() {
    let config = ReplicaConfig {
        session_tick_interval_ms: 100,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::new(3, config);
    let leader = cluster.elect();
    let applied_before = cluster.replicas[leader].node().commit_index();
    cluster.run_for(1_000);
    assert_eq!(
        cluster.replicas[leader].node().commit_index(),
        applied_before,
        "no ticks without sessions"
    );
    cluster.write_committed(leader, 1, Operation::OpenSession { ttl_ms: 10_000 });
    let store_time_before = cluster.replicas[leader].store().now();
    cluster.run_for(1_000);
    let advanced = cluster.replicas[leader]
        .store()
        .now()
        .since(store_time_before);
    assert!(
        (800..=1_000).contains(&advanced),
        "the replicated clock advanced {advanced} ms in 1000 ms of ticks"
    );
}

#[test]
fn a_linearizable_read_at_the_leader_sees_every_write_answered_before_it() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    cluster.write_committed(leader, 1, Operation::put("/a", b"fresh"));
    cluster.step(
        leader,
        Input::Read {
            id: RequestId(2),
            query: Query::Get {
                tenant: TenantId::DEFAULT,
                key: "/a".into(),
            },
            consistency: Consistency::Linearizable,
            deadline: FAR,
        },
    );
    cluster.settle();
    let Answer::Read {
        result: Ok(ReadAnswer::Value(value)),
        ..
    } = cluster.answer(RequestId(2))
    else {
        panic!("the read failed");
    };
    assert_eq!(value.value.as_deref(), Some(&b"fresh"[..]));
}

#[test]
fn a_registered_client_is_known_to_every_replica() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    let client = cluster.register(leader, 1);
    cluster.run_for(100);
    for replica in &cluster.replicas {
        assert!(replica.store().has_client(client));
    }
}

#[test]
fn a_write_that_timed_out_may_still_commit_and_nobody_waits_for_it() {
    let mut cluster = Cluster::new(3, ReplicaConfig::default());
    let leader = cluster.elect();
    // This node's own client record first, so the write below goes straight into the log.
    cluster.write_committed(leader, 9, Operation::put("/warm", b"up"));
    cluster.step(
        leader,
        Input::Write {
            id: RequestId(1),
            tenant: TenantId::DEFAULT,
            operation: Operation::put("/late", b"1"),
            numbered: None,
            deadline: cluster.now.plus(1),
        },
    );
    cluster.step(leader, Input::Flush);
    // Its deadline passes before any follower has answered.
    cluster.now = cluster.now.plus(100);
    cluster.step(leader, Input::Tick);
    assert_eq!(
        write_error(cluster.answer(RequestId(1))),
        ReplicaError::Timeout
    );
    // Then it commits: applied everywhere, answered to no one (invariants are checked at every
    // step in debug builds).
    cluster.settle();
    cluster.run_for(100);
    assert!(!cluster.has_answer(RequestId(1)));
    assert_eq!(
        cluster.replicas[leader]
            .store()
            .get(TenantId::DEFAULT, "/late")
            .unwrap()
            .version,
        1
    );
}

/// A follower cut off while the leader writes and compacts its log comes back needing
/// entries the leader no longer has: it gets the snapshot in many small chunks (a window of
/// four), installs it and ends with the leader's store, byte for byte, and the entries after.
#[test]
fn a_follower_behind_the_leaders_log_base_catches_up_by_snapshot() {
    let config = ReplicaConfig {
        snapshot_every_entries: 5,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::with_raft(3, config, |raft| {
        raft.snapshot_chunk_bytes = 64;
        raft.inflight_messages_max = 4;
    });
    let leader = cluster.elect();
    let behind = (leader + 1) % 3;
    cluster.isolated[behind] = true;
    for id in 1..=40 {
        let key = format!("/k/{id}");
        cluster.write_committed(leader, id, Operation::put(&key, b"some value"));
    }
    let status = cluster.replicas[leader].node().status();
    assert!(status.snapshot_index.get() > 30, "{status:?}");
    assert_eq!(status.first_log_index, status.snapshot_index.next());
    let behind_status = cluster.replicas[behind].node().status();
    assert!(behind_status.last_index < status.first_log_index);

    cluster.isolated[behind] = false;
    cluster.run_for(2_000);
    let caught_up = cluster.replicas[behind].node().status();
    assert_eq!(caught_up.snapshots_installed, 1, "{caught_up:?}");
    assert_eq!(
        caught_up.applied_index,
        cluster.replicas[leader].node().applied_index()
    );
    assert!(
        cluster.replicas[behind].store().snapshot() == cluster.replicas[leader].store().snapshot(),
        "the installed store differs from the leader's"
    );
    // It goes on replicating by appends after the snapshot.
    cluster.write_committed(leader, 100, Operation::put("/after", b"x"));
    cluster.run_for(300);
    let same = |cluster: &Cluster| {
        cluster.replicas[behind].store().snapshot() == cluster.replicas[leader].store().snapshot()
    };
    assert!(
        same(&cluster),
        "the follower's store differs after the next write"
    );
}

/// The store is encoded by the driver, not in the step: while a snapshot's image is on its
/// way the replica keeps committing and asks for no second one, and its log is compacted only
/// once the image is back and durable. The image is the store as it was at the job's index.
#[test]
fn a_snapshot_is_encoded_off_the_step_and_the_log_compacts_once_its_image_is_back() {
    let config = ReplicaConfig {
        snapshot_every_entries: 5,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::new(3, config);
    cluster.held_snapshots = Some(Vec::new());
    let leader = cluster.elect();
    for id in 1..=20 {
        let key = format!("/k/{id}");
        cluster.write_committed(leader, id, Operation::put(&key, b"v"));
    }
    let asked = cluster.take_held_snapshots(leader);
    assert_eq!(asked.len(), 1, "a second snapshot was asked for: {asked:?}");
    let job = asked[0].clone();
    let applied = cluster.replicas[leader].node().applied_index();
    assert!(job.index.get() + 10 < applied.get(), "{job:?} {applied:?}");
    assert_eq!(job.store.last_applied(), job.index);
    let status = cluster.replicas[leader].node().status();
    assert_eq!(
        status.first_log_index.get(),
        1,
        "compacted without an image"
    );

    let image = job.encode();
    cluster.step(
        leader,
        Input::SnapshotEncoded {
            index: job.index,
            image: image.clone(),
        },
    );
    cluster.settle();
    let status = cluster.replicas[leader].node().status();
    assert_eq!(status.snapshot_index, job.index);
    assert_eq!(status.first_log_index, job.index.next());
    assert_eq!(Store::restore(&image).unwrap(), job.store);
    assert!(Store::restore(&image).unwrap() != *cluster.replicas[leader].store());
    // Once that snapshot is durable, the next one is due at once (more than five entries were
    // applied since), at the applied index.
    let next: Vec<LogIndex> = (cluster.take_held_snapshots(leader).iter())
        .map(|job| job.index)
        .collect();
    assert_eq!(next, vec![applied]);
}

/// Members take their snapshots in three phases, so that they do not all pause to encode
/// one at the same index: with a snapshot every 9 entries, nodes 1, 2 and 3 take their first
/// at different indexes (about 3 apart), and each keeps taking them.
#[test]
fn members_take_their_snapshots_at_different_indexes() {
    let config = ReplicaConfig {
        snapshot_every_entries: 9,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::new(3, config);
    let leader = cluster.elect();
    let mut taken: Vec<Vec<u64>> = vec![Vec::new(); 3];
    for id in 1..=40 {
        let key = format!("/k/{id}");
        cluster.write_committed(leader, id, Operation::put(&key, b"v"));
        for (at, replica) in cluster.replicas.iter().enumerate() {
            let index = replica.node().status().snapshot_index.get();
            if index > 0 && taken[at].last() != Some(&index) {
                taken[at].push(index);
            }
        }
    }
    let mut first: Vec<u64> = taken.iter().map(|indexes| indexes[0]).collect();
    first.sort_unstable();
    assert!(
        first.windows(2).all(|pair| pair[1] >= pair[0] + 2),
        "first snapshots at {taken:?}"
    );
    assert!(taken.iter().all(|indexes| indexes.len() >= 3), "{taken:?}");
}

#[test]
fn a_flush_proposes_at_most_its_bytes_and_the_rest_goes_at_the_next_step() {
    // Proves the flush bound: with 1,000 bytes per flush, five writes of about 470 bytes each
    // go into the log three at a time at most (the flush stops once its bytes are spent), the
    // rest are proposed by the next step a millisecond later without another flush, and all
    // five are answered.
    let config = ReplicaConfig {
        flush_bytes_max: 1_000,
        ..ReplicaConfig::default()
    };
    let mut cluster = Cluster::new(3, config);
    let leader = cluster.elect();
    // A first write registers the leader's own client record, which numbers the others.
    cluster.write_committed(leader, 100, Operation::put("/b", b"1"));
    let before = cluster.replicas[leader].node().last_index().get();
    for id in 1..=5 {
        cluster.write(leader, id, Operation::put("/a", &[b'v'; 400]), None);
    }
    cluster.step(leader, Input::Flush);
    let first = cluster.replicas[leader].node().last_index().get() - before;
    assert_eq!(first, 3, "entries proposed by the first flush");
    for _ in 0..5 {
        cluster.now = cluster.now.plus(1);
        cluster.step(leader, Input::Tick);
        cluster.settle();
    }
    for id in 1..=5 {
        written(cluster.answer(RequestId(id)));
    }
}
