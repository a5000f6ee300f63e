//! Crash tests: a child process appends batches to the log and prints an acknowledgement
//! after each one is durable; the parent kills it with SIGKILL at a random moment, reopens
//! the log and checks that every acknowledged batch is there and that nothing follows that
//! was never written. Repeated over many seeded iterations on the same directory.
//!
//! The child is this same test binary, re-executed with an environment variable naming the
//! directory, running `crash_child_process`.

use rafting_core::raft::{Entry, EntryPayload, HardState};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_net::wal::{Wal, WalConfig};
use rafting_wal::{Batch, ClusterId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DIRECTORY_VARIABLE: &str = "RAFTING_WAL_CRASH_CHILD_DIRECTORY";
const CHILD_SEED_VARIABLE: &str = "RAFTING_WAL_CRASH_CHILD_SEED";
const ITERATIONS: u64 = 30;
const SEED: u64 = 0x5eed_0005;

fn config(directory: &Path) -> WalConfig {
    WalConfig {
        segment_bytes_target: 16 * 1024,
        ..WalConfig::new(directory, ClusterId(5), NodeId::new(1))
    }
}

/// The payload of the entry at (term, index): anything recovered can be checked against it.
fn payload(term: u64, index: u64) -> Vec<u8> {
    let mut bytes = format!("term {term} index {index} ").into_bytes();
    bytes.resize(100, b'.');
    bytes
}

/// One batch as the child announces it: term, first index, count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchLine {
    term: u64,
    from: u64,
    count: u64,
}

impl BatchLine {
    fn parse(words: &[&str]) -> Option<BatchLine> {
        let number = |position: usize| words.get(position)?.parse().ok();
        Some(BatchLine {
            term: number(1)?,
            from: number(2)?,
            count: number(3)?,
        })
    }

    fn batch(self) -> Batch {
        let entries = (self.from..self.from + self.count)
            .map(|index| Entry {
                term: Term::new(self.term),
                index: LogIndex::new(index),
                payload: EntryPayload::Command(payload(self.term, index).into()),
            })
            .collect();
        Batch {
            hard_state: Some(self.hard_state()),
            entries,
        }
    }

    fn hard_state(self) -> HardState {
        HardState {
            term: Term::new(self.term),
            voted_for: Some(NodeId::new(1)),
            commit: LogIndex::new(self.from - 1),
        }
    }
}

/// The log the parent expects: the term of each index from 1, and the hard state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    terms: Vec<u64>,
    hard_state: Option<HardState>,
}

impl Model {
    fn apply(&mut self, line: BatchLine) {
        self.terms.truncate(line.from as usize - 1);
        self.terms
            .extend(std::iter::repeat_n(line.term, line.count as usize));
        self.hard_state = Some(line.hard_state());
    }

    fn from_log(hard_state: Option<HardState>, entries: &[Entry]) -> Model {
        for (position, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index.get(),
                position as u64 + 1,
                "log does not start at 1"
            );
            let expected =
                EntryPayload::Command(payload(entry.term.get(), entry.index.get()).into());
            assert_eq!(
                entry.payload, expected,
                "entry {} was never written",
                entry.index
            );
        }
        Model {
            terms: entries.iter().map(|entry| entry.term.get()).collect(),
            hard_state,
        }
    }
}

// The child side: recover, then append random batches (sometimes overwriting a suffix under
// a new term) and acknowledge each after it is durable, until killed.
#[test]
fn crash_child_process() {
    let (Ok(directory), Ok(seed)) = (
        std::env::var(CHILD_DIRECTORY_VARIABLE),
        std::env::var(CHILD_SEED_VARIABLE),
    ) else {
        return;
    };
    let mut random = StdRng::seed_from_u64(seed.parse().unwrap());
    let (mut wal, recovered) = Wal::open(config(Path::new(&directory))).unwrap();
    let mut last_index = recovered
        .entries
        .last()
        .map_or(0, |entry| entry.index.get());
    let mut term = recovered
        .hard_state
        .map_or(1, |hard_state| hard_state.term.get());
    println!("recovered {last_index}");
    loop {
        let mut from = last_index + 1;
        if last_index > 0 && random.random_ratio(1, 8) {
            term += 1;
            from = random.random_range(from.saturating_sub(6).max(1)..=last_index);
        }
        let line = BatchLine {
            term,
            from,
            count: random.random_range(1..=8),
        };
        println!("begin {} {} {}", line.term, line.from, line.count);
        wal.append(&line.batch()).unwrap();
        println!("ack {} {} {}", line.term, line.from, line.count);
        last_index = line.from + line.count - 1;
    }
}

/// Runs one child until a random moment, kills it, and returns its output lines.
fn run_child_and_kill(directory: &Path, seed: u64, kill_after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIRECTORY_VARIABLE, directory)
        .env(CHILD_SEED_VARIABLE, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

// Many SIGKILLs at random moments never lose an acknowledged batch and never show one that
// was not written: after each restart the log is the acknowledged log, or the acknowledged
// log plus the one batch that was in flight.
#[test]
fn sigkill_never_loses_acknowledged_entries() {
    let directory = tempfile::tempdir().unwrap();
    let mut random = StdRng::seed_from_u64(SEED);
    let mut model = Model::default();
    let mut total_acknowledged = 0;
    let mut recovered_in_flight = 0;
    for iteration in 0..ITERATIONS {
        let kill_after = Duration::from_millis(random.random_range(20..120));
        let lines = run_child_and_kill(directory.path(), random.random(), kill_after);
        let mut acknowledged = model.clone();
        let mut in_flight = None;
        for line in &lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"begin") => in_flight = BatchLine::parse(&words),
                Some(&"ack") => {
                    let batch = BatchLine::parse(&words).unwrap();
                    assert_eq!(in_flight, Some(batch), "iteration {iteration}");
                    acknowledged.apply(batch);
                    in_flight = None;
                    total_acknowledged += 1;
                }
                _ => {}
            }
        }
        let (wal, recovered) = Wal::open(config(directory.path())).unwrap();
        drop(wal);
        let found = Model::from_log(recovered.hard_state, &recovered.entries);
        let mut with_in_flight = acknowledged.clone();
        if let Some(batch) = in_flight {
            with_in_flight.apply(batch);
        }
        assert!(
            found == acknowledged || found == with_in_flight,
            "iteration {iteration}: recovered {found:?}\nacknowledged {acknowledged:?}\n\
             in flight {in_flight:?}"
        );
        if found != acknowledged {
            recovered_in_flight += 1;
        }
        model = found;
    }
    eprintln!(
        "{ITERATIONS} kills, {total_acknowledged} batches acknowledged, \
         {recovered_in_flight} in-flight batches found durable, final log {} entries",
        model.terms.len()
    );
    assert!(
        total_acknowledged > ITERATIONS,
        "children acknowledged too little to prove much"
    );
}
