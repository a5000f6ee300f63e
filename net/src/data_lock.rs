//! One process per data directory: an exclusive `flock` on `DIR/LOCK`, held for the life of
//! the process.
//!
//! Two processes appending to one write-ahead log interleave their records, and the log is
//! refused at the next start with every acknowledged write unreachable. The lock makes the
//! second process fail at once instead, naming the pid of the first (written into the lock
//! file). The kernel releases a `flock` when its holder exits, however it exits, so a crash
//! never leaves a stale lock behind; the file itself stays, and only the lock on it counts.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The lock file's name inside the data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Why the data directory could not be locked.
#[derive(Debug, Error)]
pub enum DataLockError {
    /// Another process holds the lock.
    #[error(
        "the data directory {directory} is in use by another process (pid {holder_pid}, \
         holding {lock_file}); stop that process first, or give this node its own --data"
    )]
    InUse {
        directory: PathBuf,
        lock_file: PathBuf,
        /// The holder's pid as it wrote it, or `unknown` if it has not yet.
        holder_pid: String,
    },
    #[error("cannot lock {lock_file}: {source}")]
    Io {
        lock_file: PathBuf,
        source: std::io::Error,
    },
}

impl DataLockError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            DataLockError::InUse { .. } => "data_directory_in_use",
            DataLockError::Io { .. } => "data_directory_lock_failed",
        }
    }
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DataDirectoryLock {
    _file: File,
}

impl DataDirectoryLock {
    /// Locks `directory` (which must exist) for this process, or fails at once if another
    /// process holds it. Writes this process's pid into the lock file.
    pub fn acquire(directory: &Path) -> Result<DataDirectoryLock, DataLockError> {
        let lock_file = directory.join(LOCK_FILE_NAME);
        let io_error = |source| DataLockError::Io {
            lock_file: lock_file.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .map_err(io_error)?;
        // SAFETY: flock(2) on a descriptor this function owns; it touches no memory.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(io_error(error));
            }
            let mut holder_pid = String::new();
            let _ = file.read_to_string(&mut holder_pid);
            let holder_pid = match holder_pid.trim() {
                "" => "unknown".to_owned(),
                pid => pid.to_owned(),
            };
            return Err(DataLockError::InUse {
                directory: directory.to_path_buf(),
                lock_file,
                holder_pid,
            });
        }
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        Ok(DataDirectoryLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the lock is exclusive and names its holder: a second acquire of a held directory
    /// fails with this process's pid, and succeeds once the first lock is dropped.
    #[test]
    fn a_held_directory_is_refused_with_the_holder_pid_until_released() {
        let directory = tempfile::tempdir().unwrap();
        let first = DataDirectoryLock::acquire(directory.path()).unwrap();
        let error = DataDirectoryLock::acquire(directory.path()).unwrap_err();
        let DataLockError::InUse { holder_pid, .. } = &error else {
            panic!("expected InUse, got {error}");
        };
        assert_eq!(holder_pid, &std::process::id().to_string());
        assert_eq!(error.code(), "data_directory_in_use");
        drop(first);
        DataDirectoryLock::acquire(directory.path()).unwrap();
    }
}
