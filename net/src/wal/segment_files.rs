//! The segment and snapshot files of one log directory: their names, listing them, creating
//! a new one atomically, and the fsyncs that make file creation and removal durable.

use rafting_wal::{LogOwner, WalError, new_segment_bytes};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SEGMENT_SUFFIX: &str = ".wal";
const TEMPORARY_SUFFIX: &str = ".wal.tmp";
const SNAPSHOT_TEMPORARY_SUFFIX: &str = ".snap.tmp";
/// A segment or snapshot file the log no longer needs, waiting for its space to be given back
/// ([`retire_files`]); no reader looks at it, and opening a log removes it.
const RETIRED_SUFFIX: &str = ".retired";

/// The file name of segment `sequence`: zero-padded so names sort in log order.
pub fn segment_file_name(sequence: u64) -> String {
    format!("{sequence:020}{SEGMENT_SUFFIX}")
}

/// The path of segment `sequence` in `directory`.
pub fn segment_path(directory: &Path, sequence: u64) -> PathBuf {
    directory.join(segment_file_name(sequence))
}

/// Lists the segment sequence numbers in `directory`, in order, after removing the
/// temporary files a crash during segment creation may have left, and the retired files a
/// node stopped before releasing. Other files are ignored.
pub fn list_segments(directory: &Path) -> Result<Vec<u64>, WalError> {
    let read_error = |error| WalError::io(directory.display(), "read directory", error);
    let mut sequences = Vec::new();
    let mut removed_temporary = false;
    for item in fs::read_dir(directory).map_err(read_error)? {
        let item = item.map_err(read_error)?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let left_over = [TEMPORARY_SUFFIX, SNAPSHOT_TEMPORARY_SUFFIX, RETIRED_SUFFIX];
        if left_over.iter().any(|suffix| name.ends_with(suffix)) {
            let path = item.path();
            fs::remove_file(&path)
                .map_err(|error| WalError::io(path.display(), "remove", error))?;
            removed_temporary = true;
        } else if let Some(sequence) = parse_segment_name(name) {
            sequences.push(sequence);
        }
    }
    if removed_temporary {
        sync_directory(directory)?;
    }
    sequences.sort_unstable();
    check_contiguous(directory, &sequences)?;
    Ok(sequences)
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn check_contiguous(directory: &Path, sequences: &[u64]) -> Result<(), WalError> {
    for pair in sequences.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(WalError::MissingSegment {
                file: segment_path(directory, pair[1]).display().to_string(),
                reason: format!(
                    "segment {} is missing between {} and {}",
                    pair[0] + 1,
                    pair[0],
                    pair[1]
                ),
            });
        }
    }
    Ok(())
}

/// Creates segment `sequence` holding its header followed by `initial_frames`, atomically:
/// written and synced under a temporary name, renamed, then the directory synced. A crash
/// leaves either no segment or a whole one, never an empty or half-written header.
pub fn create_segment(
    directory: &Path,
    owner: LogOwner,
    sequence: u64,
    initial_frames: &[u8],
) -> Result<(PathBuf, File), WalError> {
    let path = segment_path(directory, sequence);
    let temporary_path = directory.join(format!("{sequence:020}{TEMPORARY_SUFFIX}"));
    let mut content = new_segment_bytes(owner, sequence).to_vec();
    content.extend_from_slice(initial_frames);
    write_atomically(directory, &temporary_path, &path, &[&content])?;
    let file = open_for_writing(&path)?;
    Ok((path, file))
}

/// Bytes of a large file written between two syncs: a snapshot of tens of megabytes
/// flushed in one go holds the disk (and every log write's fdatasync behind it) for a long
/// moment; flushed a piece at a time, the log's syncs get their turn in between. A log sync
/// that commits the file system's journal waits for the dirty data of the piece in flight
/// (ext4's ordered mode), so the piece bounds what one log write can wait for: with 4 MiB
/// pieces a 100-byte put beside a 90 MB snapshot file took 30-50 ms at its 99th percentile,
/// with 512 KiB pieces 5-6 ms, and the file itself was written three times faster (900-1,100
/// ms → 280-320 ms on this machine's virtio disk; `bench/tenants-flood.py`). Since the log
/// writes its frames over zeros laid down ahead (see `Wal`), most of its syncs commit no
/// journal at all; the pieces still bound the few that do.
const SYNC_EVERY_BYTES: usize = 512 * 1024;

/// Writes `parts`, one after the other, as the file `path` so that a crash leaves either the
/// whole file or none: under `temporary_path` first, synced, renamed, and the directory
/// synced.
fn write_atomically(
    directory: &Path,
    temporary_path: &Path,
    path: &Path,
    parts: &[&[u8]],
) -> Result<(), WalError> {
    let shown = temporary_path.display();
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(temporary_path)
        .map_err(|error| WalError::io(&shown, "create", error))?;
    let mut unsynced = 0;
    for piece in parts.iter().flat_map(|part| part.chunks(SYNC_EVERY_BYTES)) {
        file.write_all(piece)
            .map_err(|error| WalError::io(&shown, "write", error))?;
        unsynced += piece.len();
        if unsynced >= SYNC_EVERY_BYTES {
            file.sync_data()
                .map_err(|error| WalError::io(&shown, "fdatasync", error))?;
            unsynced = 0;
        }
    }
    file.sync_all()
        .map_err(|error| WalError::io(&shown, "fsync", error))?;
    drop(file);
    fs::rename(temporary_path, path)
        .map_err(|error| WalError::io(path.display(), "rename", error))?;
    sync_directory(directory)
}

/// Writes the snapshot file `name` (see [`rafting_wal::snapshot_file`]), made of `parts`,
/// atomically.
pub fn write_snapshot_file(directory: &Path, name: &str, parts: &[&[u8]]) -> Result<(), WalError> {
    let temporary_path = directory.join(format!("{name}{SNAPSHOT_TEMPORARY_SUFFIX}"));
    write_atomically(directory, &temporary_path, &directory.join(name), parts)
}

/// Every snapshot file in `directory`, by name, with its content.
pub fn read_snapshot_files(directory: &Path) -> Result<Vec<(String, Vec<u8>)>, WalError> {
    let read_error = |error| WalError::io(directory.display(), "read directory", error);
    let mut files = Vec::new();
    for item in fs::read_dir(directory).map_err(read_error)? {
        let item = item.map_err(read_error)?;
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if rafting_wal::snapshot_file::parse_snapshot_file_name(&name).is_some() {
            let bytes = read_segment(&item.path())?;
            files.push((name, bytes));
        }
    }
    Ok(files)
}

/// Takes the files `names` out of `directory` durably, without giving their space back yet:
/// each is renamed to `NAME.retired` and the directory is synced. Returns the new paths, for
/// [`release_files`]. (Unlinking a file of tens of megabytes at once, on a file system
/// mounted with `discard`, held every fdatasync of every log on the disk for about 20 ms
/// while the journal trimmed its blocks.)
pub fn retire_files(directory: &Path, names: &[String]) -> Result<Vec<PathBuf>, WalError> {
    let mut retired = Vec::with_capacity(names.len());
    for name in names {
        let (path, new_path) = (
            directory.join(name),
            directory.join(format!("{name}{RETIRED_SUFFIX}")),
        );
        fs::rename(&path, &new_path)
            .map_err(|error| WalError::io(path.display(), "rename", error))?;
        retired.push(new_path);
    }
    if !names.is_empty() {
        sync_directory(directory)?;
    }
    Ok(retired)
}

/// Bytes one step of [`release_files`] gives back to the file system.
const RELEASE_STEP_BYTES: u64 = 4 * 1024 * 1024;
/// The rest after each step, so the log's syncs find the journal free in between.
const RELEASE_REST: Duration = Duration::from_millis(2);

/// Gives the space of retired files back a slice at a time: each file is cut short by
/// [`RELEASE_STEP_BYTES`] at a time, with a rest in between, then unlinked. Each cut frees
/// (and, on a `discard` mount, trims) a few megabytes, so a log sync waits for at most that
/// much: 4 ms at worst on this machine's disk, against 20 ms for a 93 MB file unlinked
/// whole. This is what RocksDB's file deletion scheduler does for the same reason.
pub fn release_files(paths: &[PathBuf]) -> Result<(), WalError> {
    for path in paths {
        let shown = path.display();
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|error| WalError::io(&shown, "open", error))?;
        let mut length = file
            .metadata()
            .map_err(|error| WalError::io(&shown, "stat", error))?
            .len();
        while length > 0 {
            length = length.saturating_sub(RELEASE_STEP_BYTES);
            file.set_len(length)
                .map_err(|error| WalError::io(&shown, "truncate", error))?;
            std::thread::sleep(RELEASE_REST);
        }
        drop(file);
        fs::remove_file(path).map_err(|error| WalError::io(&shown, "remove", error))?;
    }
    Ok(())
}

/// Opens an existing segment to write frames at given offsets (not in append mode: frames
/// are written over the zeros ahead of them, before the end of the file).
pub fn open_for_writing(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|error| WalError::io(path.display(), "open", error))
}

/// Reads a whole segment. Segments are bounded by the roll-over size plus one frame.
pub fn read_segment(path: &Path) -> Result<Vec<u8>, WalError> {
    fs::read(path).map_err(|error| WalError::io(path.display(), "read", error))
}

/// Cuts a segment to `length` bytes and makes the new length durable.
pub fn truncate_segment(path: &Path, length: u64) -> Result<(), WalError> {
    let shown = path.display();
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|error| WalError::io(&shown, "open", error))?;
    file.set_len(length)
        .map_err(|error| WalError::io(&shown, "truncate", error))?;
    file.sync_all()
        .map_err(|error| WalError::io(&shown, "fsync", error))
}

/// Makes the creation, renaming or removal of files in `directory` durable.
pub fn sync_directory(directory: &Path) -> Result<(), WalError> {
    let shown = directory.display();
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| WalError::io(&shown, "fsync directory", error))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only well-formed segment names count, and they sort in log order.
    #[test]
    fn segment_names_parse() {
        assert_eq!(parse_segment_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_name("00000000000000000042.wal.tmp"), None);
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("notes.txt"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    // A file written in parts holds the parts end to end, under its name only.
    #[test]
    fn a_file_of_several_parts_is_written_whole() {
        let directory = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..SYNC_EVERY_BYTES * 2 + 77)
            .map(|i| (i % 251) as u8)
            .collect();
        let parts: [&[u8]; 3] = [b"head", &big, b"tail"];
        write_snapshot_file(directory.path(), "one.snap", &parts).unwrap();
        let written = fs::read(directory.path().join("one.snap")).unwrap();
        assert_eq!(written, parts.concat());
        let names: Vec<_> = fs::read_dir(directory.path())
            .unwrap()
            .map(|item| item.unwrap().file_name())
            .collect();
        assert_eq!(names, ["one.snap"]);
    }

    // A retired file leaves its name at once; released, it is cut down slice by slice and
    // removed.
    #[test]
    fn a_retired_file_is_renamed_then_released() {
        let directory = tempfile::tempdir().unwrap();
        let size = RELEASE_STEP_BYTES as usize * 2 + 5;
        fs::write(directory.path().join("old.wal"), vec![1u8; size]).unwrap();
        let retired = retire_files(directory.path(), &["old.wal".to_string()]).unwrap();
        assert_eq!(retired, [directory.path().join("old.wal.retired")]);
        assert!(!directory.path().join("old.wal").exists());
        assert_eq!(fs::metadata(&retired[0]).unwrap().len(), size as u64);
        release_files(&retired).unwrap();
        assert!(!retired[0].exists());
    }
}
