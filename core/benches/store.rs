//! How many simple puts the store applies per second on one core.
//!
//! Each batch applies `PUTS_PER_BATCH` puts (16-byte keys over 1,000 distinct keys, 16-byte
//! values, one registered client acknowledging as it goes) to a fresh store: once through
//! `Store::apply` with encoded command bytes, as a node applies committed entries, and once
//! through the typed `Store::apply_command`. Only the applies are timed; encoding and cloning
//! happen before the clock starts. Run with `cargo bench -p rafting-core --bench store`.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use rafting_core::LogIndex;
use rafting_core::store::{ClientId, Command, Operation, Request, Store};
use std::time::{Duration, Instant};

const PUTS_PER_BATCH: u64 = 10_000;
const DISTINCT_KEYS: u64 = 1_000;

/// A fresh store with one client registered at index 1 (its id is 1).
fn store_with_client() -> (Store, ClientId) {
    let mut store = Store::default();
    let _ = store.apply_command(LogIndex::new(1), Command::RegisterClient);
    (store, ClientId::new(1))
}

/// The batch's commands: put number `n` is the client's request `n`, acknowledging `< n`.
fn put_commands(client: ClientId) -> Vec<Command> {
    (1..=PUTS_PER_BATCH)
        .map(|sequence| {
            let key = format!("/bench/key-{:05}", sequence % DISTINCT_KEYS);
            let operation = Operation::put(&key, b"value-0123456789");
            Command::Request(
                Request::new(client, sequence, operation).acknowledging_below(sequence),
            )
        })
        .collect()
}

fn bench_apply_encoded(criterion: &mut Criterion, group_name: &str) {
    let (_, client) = store_with_client();
    let encoded: Vec<Vec<u8>> = put_commands(client).iter().map(Command::encode).collect();
    let mut group = criterion.benchmark_group(group_name);
    group.throughput(Throughput::Elements(PUTS_PER_BATCH));
    group.bench_function(BenchmarkId::new("apply_bytes", PUTS_PER_BATCH), |bencher| {
        bencher.iter_custom(|batches| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..batches {
                let (mut store, _) = store_with_client();
                let start = Instant::now();
                for (position, bytes) in encoded.iter().enumerate() {
                    let index = LogIndex::new(position as u64 + 2);
                    black_box(store.apply(index, bytes)).expect("puts succeed");
                }
                elapsed += start.elapsed();
            }
            elapsed
        });
    });
    group.finish();
}

fn bench_apply_typed(criterion: &mut Criterion, group_name: &str) {
    let (_, client) = store_with_client();
    let commands = put_commands(client);
    let mut group = criterion.benchmark_group(group_name);
    group.throughput(Throughput::Elements(PUTS_PER_BATCH));
    group.bench_function(
        BenchmarkId::new("apply_command", PUTS_PER_BATCH),
        |bencher| {
            bencher.iter_custom(|batches| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..batches {
                    let (mut store, _) = store_with_client();
                    let batch = commands.clone();
                    let start = Instant::now();
                    for (position, command) in batch.into_iter().enumerate() {
                        let index = LogIndex::new(position as u64 + 2);
                        black_box(store.apply_command(index, command)).expect("puts succeed");
                    }
                    elapsed += start.elapsed();
                }
                elapsed
            });
        },
    );
    group.finish();
}

fn store_puts(criterion: &mut Criterion) {
    bench_apply_encoded(criterion, "store_put");
    bench_apply_typed(criterion, "store_put");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = store_puts
}
criterion_main!(benches);
