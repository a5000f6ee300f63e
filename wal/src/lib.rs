//! rafting-wal: the write-ahead log's record format and recovery, as pure functions over bytes.
//!
//! Shared by the real runtime (`rafting-net`, which does the file IO) and the simulator's disk
//! model (`rafting-sim`), so that crash and torn-write faults in the simulator exercise the
//! same recovery code as production.
