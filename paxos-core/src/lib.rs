//! # paxos-core
//!
//! Single-decree and Multi-Paxos as pure state machines, the [`Storage`] and [`Transport`]
//! traits they need, and a tokio runtime ([`Node`]) that drives them.
//!
//! ```text
//!   messages, ticks, client proposals                 writes, messages, decisions
//!  ─────────────────────────────────────▶ Replica ─────────────────────────────────▶
//!                                   (acceptor, proposer,        Effects: the runtime makes
//!                                    learner, election)         `writes` durable, *then* sends
//! ```
//!
//! Every protocol decision lives in the pure part: [`Acceptor`] (promise and accept rules),
//! [`Proposer`] (phases 1 and 2, adopt the highest accepted value, climb over `Nack`s),
//! [`Learner`] (majority of `Accepted`, learner strategies, catch-up), [`Election`] (Omega).
//! They read no clock (they count ticks), draw no entropy of their own (a seed is handed in)
//! and do no I/O. [`Replica`] composes them for one node.
//!
//! The runtime ([`Node`], [`NodeHandle`]) is the only code that awaits: it persists each step's
//! writes through a [`Storage`] in one atomic `save` *before* sending that step's messages
//! through a [`Transport`]. Backends live in `paxos-storage` (memory, RocksDB) and `paxos-net`
//! (TCP, turmoil); implement the traits yourself to use your own.
//!
//! ## Example: three replicas, no I/O at all
//! ```
//! use paxos_core::{Config, DurableState, Effects, InstanceId, NodeId, ProposeStatus, Replica};
//! use std::collections::VecDeque;
//!
//! let ids = [NodeId(1), NodeId(2), NodeId(3)];
//! let mut nodes: Vec<Replica<u64>> = ids
//!     .iter()
//!     .map(|&id| Replica::new(&Config::symmetric(id, ids), DurableState::default(), 7).unwrap())
//!     .collect();
//!
//! // Node 1 proposes 100; deliver every message until the network is quiet.
//! let mut out = Effects::new();
//! let status = nodes[0].propose(None, 100, &mut out);
//! assert_eq!(status, ProposeStatus::Proposing(InstanceId(0)));
//! let mut wire: VecDeque<_> = out.messages.drain(..).map(|e| (NodeId(1), e)).collect();
//! while let Some((from, env)) = wire.pop_front() {
//!     let node = &mut nodes[env.to.0 as usize - 1];
//!     let mut out = Effects::new();
//!     node.on_message(from, env.message, &mut out);
//!     // A real runtime would make `out.writes` durable here, before sending.
//!     wire.extend(out.messages.into_iter().map(|e| (node.id(), e)));
//! }
//! for node in &nodes {
//!     assert_eq!(node.learner().decided(InstanceId(0)), Some(&100));
//! }
//! ```
//!
//! ## Features
//! - `testing`: the storage conformance suite (`testing::conformance`) and an in-process
//!   channel transport (`testing::ChannelNetwork`) for your own tests.

#![deny(missing_docs)]

pub mod acceptor;
pub mod ballot;
pub mod config;
pub mod effects;
pub mod election;
pub mod learner;
pub mod message;
pub mod proposer;
pub mod quorum;
pub mod replica;
pub mod rng;
pub mod runtime;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod zero_copy;

pub use acceptor::{Acceptor, AcceptorFaults};
pub use ballot::{Ballot, InstanceId, NodeId};
pub use config::{Config, ConfigError, LeaderMode, LearnerStrategy};
pub use effects::{Effects, Write, may_leave_before_save};
pub use election::Election;
pub use learner::Learner;
pub use message::{AcceptedEntry, Envelope, Message, Value};
pub use proposer::{Phase, Proposer, ProposerFaults};
pub use replica::{ProposeStatus, Replica};
pub use runtime::{
    Batch, BatchConfig, Batcher, Commit, Commits, Committed, Node, NodeError, NodeHandle,
    NodeStatus, Outcome, PackedBytes, Submitter,
};
pub use storage::{DurableState, Storage, StorageError, StorageOp};
pub use transport::{Transport, TransportError};
