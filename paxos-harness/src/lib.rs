//! # paxos-harness
//!
//! The library behind the `paxos-harness` binary: one cluster builder ([`cluster`]), one
//! invariant checker ([`invariants`], fed by the [`observer`]), network faults ([`faults`]),
//! the scenarios of the seed logs ([`scenarios`]) and the runner that prints `go test`-style
//! results ([`runner`]). The integration tests call the same code as the binary.

#![deny(missing_docs)]

pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod faults;
pub mod invariants;
pub mod node;
pub mod observer;
pub mod report;
pub mod runner;
pub mod scenarios;
