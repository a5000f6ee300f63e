//! The write-ahead log on disk: segment files, group commit and recovery.
