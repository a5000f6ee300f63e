//! How many simple puts the store applies per second on one core.
//!
//! Each batch applies `PUTS_PER_BATCH` puts (16-byte keys over 1,000 distinct keys, 16-byte
//! values, one registered client acknowledging as it goes) to a fresh store: once through
//! `Store::apply` with encoded command bytes, as a node applies committed entries, and once
//! through the typed `Store::apply_command`. Only the applies are timed; encoding and cloning
//! happen before the clock starts. Run with `cargo bench -p rafting-core --bench store`.
//!
//! The `store_put_cpu` group times with the thread's CPU clock rather than the wall clock: the
//! question is "puts per second on one core", and on a shared machine the wall clock also
//! counts the time other processes held the core. `store_put_wall` is the same encoded-bytes
//! run on the wall clock, for comparison.
//!
//! `store_snapshot_cpu` takes and restores the image of a store of large values (100 keys of
//! 256 KiB, and the watch history they leave): `cargo bench -p rafting-core --bench store --
//! snapshot`.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use rafting_core::LogIndex;
use rafting_core::store::{ClientId, Command, Operation, Request, Store};
use std::time::{Duration, Instant};

/// The calling thread's CPU time. Declared here rather than pulling a libc crate into core's
/// dev-dependencies for one call.
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock_id: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut time = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: `time` is a valid, writable timespec with the C layout on 64-bit Linux.
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(time.seconds as u64, time.nanoseconds as u32)
}

/// Elsewhere, fall back to the wall clock.
#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// Which clock a benchmark reads.
#[derive(Clone, Copy)]
enum Clock {
    ThreadCpu,
    Wall,
}

impl Clock {
    fn read(self) -> Duration {
        match self {
            Clock::ThreadCpu => thread_cpu_time(),
            Clock::Wall => WALL_ORIGIN.with(|origin| origin.elapsed()),
        }
    }
}

thread_local! {
    static WALL_ORIGIN: Instant = Instant::now();
}

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

fn bench_apply_encoded(criterion: &mut Criterion, group_name: &str, clock: Clock) {
    let (_, client) = store_with_client();
    let encoded: Vec<Vec<u8>> = put_commands(client).iter().map(Command::encode).collect();
    let mut group = criterion.benchmark_group(group_name);
    group.throughput(Throughput::Elements(PUTS_PER_BATCH));
    group.bench_function(BenchmarkId::new("apply_bytes", PUTS_PER_BATCH), |bencher| {
        bencher.iter_custom(|batches| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..batches {
                let (mut store, _) = store_with_client();
                let start = clock.read();
                for (position, bytes) in encoded.iter().enumerate() {
                    let index = LogIndex::new(position as u64 + 2);
                    black_box(store.apply(index, bytes)).expect("puts succeed");
                }
                elapsed += clock.read() - start;
            }
            elapsed
        });
    });
    group.finish();
}

fn bench_apply_typed(criterion: &mut Criterion, group_name: &str, clock: Clock) {
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
                    let start = clock.read();
                    for (position, command) in batch.into_iter().enumerate() {
                        let index = LogIndex::new(position as u64 + 2);
                        black_box(store.apply_command(index, command)).expect("puts succeed");
                    }
                    elapsed += clock.read() - start;
                }
                elapsed
            });
        },
    );
    group.finish();
}

/// A store holding large values: 100 keys of 256 KiB each, written four times over, so the
/// watch history is full of values too (about 90 MB of image), as a tenant writing large
/// values leaves it.
fn store_with_large_values() -> Store {
    let value = vec![0x5a_u8; 256 * 1024];
    store_with_puts(400, &value, |sequence| {
        format!("/bench/large-{:03}", sequence % 100)
    })
}

/// A store of 200,000 keys of 100 bytes, each written once.
fn store_with_many_keys() -> Store {
    store_with_puts(200_000, &[0x5a_u8; 100], |sequence| {
        format!("/bench/many/{sequence:06}")
    })
}

/// A store after `puts` puts of `value`, put number `n` to `key(n)`.
fn store_with_puts(puts: u64, value: &[u8], key: impl Fn(u64) -> String) -> Store {
    let (mut store, client) = store_with_client();
    for sequence in 1..=puts {
        let operation = Operation::put(&key(sequence), value);
        let command = Command::Request(
            Request::new(client, sequence, operation).acknowledging_below(sequence),
        );
        store
            .apply_command(LogIndex::new(sequence + 1), command)
            .expect("puts succeed");
    }
    store
}

/// Times `work` on the thread's CPU clock.
fn cpu_timed<T>(
    name: &str,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    work: impl Fn() -> T,
) {
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|times| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..times {
                let start = Clock::ThreadCpu.read();
                black_box(work());
                elapsed += Clock::ThreadCpu.read() - start;
            }
            elapsed
        });
    });
}

/// Taking and restoring a snapshot of a store of large values, and copying the store: the
/// node loop copies the store in one step and an encoder thread takes the image from the
/// copy, so the copy's time is the pause every client sees.
fn store_snapshots(criterion: &mut Criterion) {
    let store = store_with_large_values();
    let image = store.snapshot();
    let mut group = criterion.benchmark_group("store_snapshot_cpu");
    group.throughput(Throughput::Bytes(image.len() as u64));
    cpu_timed("take_large_values", &mut group, || store.snapshot());
    cpu_timed("copy_large_values", &mut group, || store.clone());
    let many = store_with_many_keys();
    cpu_timed("take_many_keys", &mut group, || many.snapshot());
    cpu_timed("copy_many_keys", &mut group, || many.clone());
    group.bench_function("restore_large_values", |bencher| {
        bencher.iter_custom(|times| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..times {
                let start = Clock::ThreadCpu.read();
                black_box(Store::restore(&image).expect("the image restores"));
                elapsed += Clock::ThreadCpu.read() - start;
            }
            elapsed
        });
    });
    group.finish();
}

fn store_puts(criterion: &mut Criterion) {
    bench_apply_encoded(criterion, "store_put_cpu", Clock::ThreadCpu);
    bench_apply_typed(criterion, "store_put_cpu", Clock::ThreadCpu);
    bench_apply_encoded(criterion, "store_put_wall", Clock::Wall);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = store_puts
}
criterion_group! {
    name = snapshots;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = store_snapshots
}
criterion_main!(benches, snapshots);
