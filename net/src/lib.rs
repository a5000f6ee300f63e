//! rafting-net: the real runtime. Std threads, UDP between peers, the write-ahead log on disk,
//! and the node loop that drives `rafting-core` with real time. It makes no Raft or store
//! decisions; those live in core.

pub mod background;
pub mod data_lock;
/// The datagram format lives in `rafting-wire`, shared with the simulator.
pub use rafting_wire::datagram;
pub mod incarnation;
pub mod metrics;
pub mod runtime;
pub mod socket_buffers;
pub mod storage;
pub mod transport;
pub mod wal;
