//! # paxos-storage
//!
//! [`paxos_core::Storage`] backends:
//! - [`MemoryStorage`]: in memory, shared by clones; for tests and simulations.
//! - `RocksDbStorage` (feature `rocksdb`): a RocksDB directory; every acknowledged `save` is one
//!   synced `WriteBatch`, and concurrent saves share one fsync (group commit). The key layout and
//!   its versioned record encoding are documented in the `rocks` module.
//!
//! Both pass the conformance suite shipped in `paxos_core::testing::conformance` (feature
//! `testing` of `paxos-core`), each from one test in `tests/conformance.rs`; RocksDB is also
//! killed with `SIGKILL` mid-write in `tests/sigkill.rs`.
//!
//! ## Features
//! - `rocksdb`: the RocksDB backend (compiles RocksDB's C++; needs clang and libclang).

#![deny(missing_docs)]

mod memory;
#[cfg(feature = "rocksdb")]
mod record;
#[cfg(feature = "rocksdb")]
pub mod rocks;

pub use memory::MemoryStorage;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksDbStorage;
