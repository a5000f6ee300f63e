//! The incarnation a node stamps on its authenticated datagrams (see `rafting_wire::auth`):
//! a number that grows at every start, so that peers tell the datagrams of this run from
//! replays of an earlier one.
//!
//! It is kept in `DATA/incarnation` and is the larger of the previous one plus one and the
//! wall clock in milliseconds since the Unix epoch. The file alone would restart at 1 after a
//! wiped disk, and peers that remember a higher number would refuse the node until they
//! restart; the clock alone would go backwards with a clock set back. Together, a node's
//! incarnation goes backwards only when its disk is wiped *and* its clock set back past its
//! previous start.

use std::io::Write;
use std::path::Path;

/// The file inside the data directory.
pub const INCARNATION_FILE: &str = "incarnation";

/// Picks this start's incarnation and makes it durable before any datagram carries it.
pub fn next_incarnation(data_directory: &Path) -> std::io::Result<u64> {
    let path = data_directory.join(INCARNATION_FILE);
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let clock_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let incarnation = previous.saturating_add(1).max(clock_ms);
    let temporary = data_directory.join(format!("{INCARNATION_FILE}.new"));
    let mut file = std::fs::File::create(&temporary)?;
    writeln!(file, "{incarnation}")?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(data_directory)?.sync_all()?;
    Ok(incarnation)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every start gets a larger number, even when the file holds one ahead of the clock.
    #[test]
    fn each_start_is_a_newer_incarnation() {
        let directory = tempfile::tempdir().unwrap();
        let first = next_incarnation(directory.path()).unwrap();
        let second = next_incarnation(directory.path()).unwrap();
        assert!(second > first);
        std::fs::write(directory.path().join(INCARNATION_FILE), "u64::MAX-ish\n").unwrap();
        assert!(next_incarnation(directory.path()).unwrap() >= first);
        let ahead = u64::MAX / 2;
        std::fs::write(
            directory.path().join(INCARNATION_FILE),
            format!("{ahead}\n"),
        )
        .unwrap();
        assert_eq!(next_incarnation(directory.path()).unwrap(), ahead + 1);
    }
}
