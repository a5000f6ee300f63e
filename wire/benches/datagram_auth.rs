//! The cost of authentication per datagram: encoding and receiving a heartbeat-sized and an
//! append-sized message, open and with a cluster secret.
//! `cargo bench -p rafting-wire --bench datagram_auth`

use criterion::{Criterion, criterion_group, criterion_main};
use rafting_core::raft::{AppendEntries, Entry, EntryPayload, Envelope, Message};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_wire::{ClusterKey, Receiver, Sealer, datagram};

fn append(command_bytes: usize) -> Envelope {
    let entries = (command_bytes > 0)
        .then(|| Entry {
            term: Term(3),
            index: LogIndex(10),
            payload: EntryPayload::Command(vec![7; command_bytes].into()),
        })
        .into_iter()
        .collect();
    Envelope {
        from: NodeId(2),
        to: NodeId(1),
        message: Message::AppendEntries(AppendEntries {
            term: Term(3),
            prev_log_index: LogIndex(9),
            prev_log_term: Term(3),
            entries,
            leader_commit: LogIndex(9),
        }),
    }
}

fn bench(criterion: &mut Criterion) {
    let key = ClusterKey::from_secret(b"a cluster secret of 32 bytes!!!!").unwrap();
    for (name, command_bytes) in [
        ("heartbeat", 0),
        ("append_200B", 200),
        ("append_4KiB", 4096),
    ] {
        let envelope = append(command_bytes);
        for secure in [false, true] {
            let mode = if secure { "secret" } else { "open" };
            let sealer = if secure {
                Sealer::new(key.clone(), 1, [NodeId(1)])
            } else {
                Sealer::open()
            };
            criterion.bench_function(&format!("encode_{name}_{mode}"), |bencher| {
                bencher.iter(|| datagram::encode(1, 1, &envelope, &sealer).unwrap())
            });
            let mut receiver =
                Receiver::new(1, NodeId(1), vec![NodeId(2)], secure.then(|| key.clone()));
            criterion.bench_function(&format!("encode_and_receive_{name}_{mode}"), |bencher| {
                bencher.iter(|| {
                    for bytes in datagram::encode(1, 1, &envelope, &sealer).unwrap() {
                        receiver.receive(&bytes).unwrap();
                    }
                })
            });
        }
    }
    let bytes = vec![0u8; 200];
    criterion.bench_function("tag_200B", |bencher| bencher.iter(|| key.tag(&bytes)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
