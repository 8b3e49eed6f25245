//! # paxos-storage
//!
//! [`paxos_core::Storage`] backends:
//! - [`MemoryStorage`]: in memory, shared by clones; for tests and simulations.
//!
//! ## Features
//! - `rocksdb`: the RocksDB backend (compiles RocksDB's C++; needs clang and libclang).

#![deny(missing_docs)]

mod memory;

pub use memory::MemoryStorage;
