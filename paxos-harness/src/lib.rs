//! # paxos-harness
//!
//! What your own tests call to check Paxos code the way the `paxos-harness` binary does:
//!
//! - [`cluster`]: the one cluster builder, on simulated (turmoil) or real (TCP, channels)
//!   networks and any storage, with crashes, restarts and network [`faults`];
//! - [`observer`] and [`invariants`]: safety checked from outside the nodes, after every
//!   durable write; [`history`]: what clients were told, checked for linearizability;
//! - [`scenarios`] (the seed logs' suites) and the [`runner`] that prints them `go test`-style;
//! - [`chaos`]: seeded random fault schedules, with liveness after the faults stop;
//! - [`client`]: a client of the node binary's client port, and [`service`]: the key-value
//!   service that binary runs;
//! - [`jepsen`]: the Jepsen-style test of real node processes (history, checker, nemesis);
//! - [`wait::eventually`] and [`ports`]: the one polling loop and the one port picker.
//!
//! The command line itself (argument parsing, the node daemon, the benchmark) lives in the
//! binary, not here.

#![deny(missing_docs)]

// First: the `named!` macro is used by the modules below.
#[macro_use]
pub mod names;

pub mod chaos;
pub mod client;
pub mod cluster;
pub mod credentials;
pub mod faults;
pub mod history;
pub mod invariants;
pub mod jepsen;
pub mod junit;
pub mod kv;
pub mod observer;
pub mod ports;
pub mod runner;
pub mod scenarios;
pub mod service;
pub mod wait;
