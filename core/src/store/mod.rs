//! The replicated state machine: key space, sessions, service groups and tenants.
//!
//! Applied identically on every node to the entries Raft commits. (Filled in by the store
//! issue; nothing here yet.)
