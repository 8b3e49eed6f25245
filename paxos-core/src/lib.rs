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
//!     .map(|&id| {
//!         let mut node = Replica::new(&Config::symmetric(id, ids), DurableState::default(), 7)
//!             .expect("a valid config");
//!         // Each boot reserves a round first (a real runtime saves this write before serving).
//!         node.start(&mut Effects::new());
//!         node
//!     })
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
//!     node.on_message(from, env.message, &mut out).expect("valid input");
//!     // A real runtime would make `out.writes` durable here, before sending.
//!     wire.extend(out.messages.into_iter().map(|e| (node.id(), e)));
//! }
//! for node in &nodes {
//!     let decided = node.learner().decided(InstanceId(0)).expect("decided");
//!     assert_eq!(decided.value(), Some(&100));
//! }
//! ```
//!
//! ## Features
//! - `testing`: the storage conformance suite (`testing::conformance`), an in-process
//!   channel transport (`testing::ChannelNetwork`) and the switches that break a protocol
//!   rule on purpose (`testing::AcceptorFaults`, `testing::ProposerFaults`,
//!   `Node::with_faults`), for your own tests and checkers.

#![deny(missing_docs)]

// Every type has one path: the crate root (or `testing` for the test tools). The modules say
// where each rule lives; they are not part of the API.
mod acceptor;
mod ballot;
mod config;
mod effects;
mod election;
mod epoch;
mod learner;
mod log;
mod message;
mod proposer;
mod quorum;
mod read;
mod replica;
mod rng;
mod runtime;
mod session;
mod snapshot;
mod state_machine;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod transfer;
mod transport;
mod validate;
mod zero_copy;

pub use acceptor::Acceptor;
pub use ballot::{Ballot, InstanceId, NodeId};
pub use config::{Config, ConfigError, LeaderMode, LearnerStrategy, ReadPolicy};
pub use effects::{Effects, Restored, Write};
pub use election::Election;
pub use epoch::{Epochs, MAX_ADDRESS_LEN, MemberChange, Membership, ReconfigError};
pub use learner::Learner;
pub use log::{ClientId, Decision, Entry, ProposalId};
pub use message::{AcceptedEntry, Envelope, Message, Value};
pub use proposer::{HandOver, Phase, Proposer};
pub use quorum::majority;
pub use read::ReadId;
pub use replica::{AppendStatus, CompactError, ProposeStatus, Replica, SnapshotPoint, StartError};
pub use runtime::{
    Batch, BatchConfig, BatchError, Batcher, Commit, Commits, Committed, Decisions, Fatal,
    MAX_UNSAVED_DECISIONS, Node, NodeError, NodeHandle, NodeStatus, NodeTask, Outcome, PackedBytes,
    Reply, Session, Step, Submitter,
};
pub use session::{Applied, Sessions};
pub use snapshot::{Snapshot, SnapshotError, SnapshotMeta};
pub use state_machine::{RestoreError, SnapshotJob, StateMachine};
pub use storage::{DurableState, Storage, StorageError, StorageOp};
pub use transport::{Peers, Transport, TransportError};
pub use validate::InputError;
pub use zero_copy::decode_from as decode_zero_copy;
