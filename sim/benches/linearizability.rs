//! Benchmark of the linearizability checker on a 10,000-operation key-value history: 10
//! clients, 100 keys in directories of 5, 1% of outcomes unknown, from a seeded simulated
//! concurrent execution of a correct store.

use criterion::{Criterion, criterion_group, criterion_main};
use rafting_sim::linearizability::kv::{GeneratorConfig, KvModel, generate_history};
use rafting_sim::linearizability::{CheckOptions, Verdict, check};
use std::hint::black_box;

fn check_ten_thousand_operations(criterion: &mut Criterion) {
    let config = GeneratorConfig {
        seed: 42,
        clients: 10,
        operations: 10_000,
        keys: 100,
        ..GeneratorConfig::default()
    };
    let history = generate_history(&config);
    let model = KvModel::default();
    let options = CheckOptions::default();
    let report = check(&model, &history, &options);
    assert_eq!(report.verdict, Verdict::Linearizable, "{report}");
    println!("history of 10,000 operations: {report}");
    criterion.bench_function("check 10k ops, 10 clients, 100 keys", |bencher| {
        bencher.iter(|| check(&model, black_box(&history), &options))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = check_ten_thousand_operations
}
criterion_main!(benches);
