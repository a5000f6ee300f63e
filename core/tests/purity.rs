//! Core stays pure: no clock, threads, sockets, files, or ambient randomness anywhere in its
//! source. This test reads every file under core/src and fails on any forbidden use.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::time",
    "std::thread",
    "std::net",
    "std::fs",
    "std::env",
    "std::process",
    "thread_rng",
    "rand::rng(",
    "OsRng",
    "from_entropy",
    "from_os_rng",
    "HashMap",
    "HashSet",
    "SystemTime",
    "Instant::now",
];

fn visit(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                for word in FORBIDDEN {
                    if line.contains(word) {
                        found.push(format!("{}:{}: {word}", path.display(), number + 1));
                    }
                }
            }
        }
    }
}

/// Core's sources use nothing that reads the environment or breaks determinism. (HashMap and
/// HashSet are out too: their random hasher makes iteration order vary between runs.)
#[test]
fn core_sources_use_no_io_clock_threads_or_ambient_randomness() {
    let mut found = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "forbidden in core/src:\n{}",
        found.join("\n")
    );
}
