//! rafting-net: the real runtime. Std threads, UDP between peers, the write-ahead log on disk,
//! and the node loop that drives `rafting-core` with real time. It makes no Raft or store
//! decisions; those live in core.

pub mod data_lock;
pub mod datagram;
pub mod metrics;
pub mod runtime;
pub mod socket_buffers;
pub mod storage;
pub mod transport;
pub mod wal;
