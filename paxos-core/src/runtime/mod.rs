//! The node runtime: the only async code in the crate.
//!
//! [`Node`] owns a [`crate::Replica`], a [`crate::Storage`] and a [`crate::Transport`] and runs
//! one loop: wait for an input (client command, message, tick), fold every input that is already
//! waiting into the same step, deliver self-addressed messages locally, make the step's writes
//! durable in **one** `save` (group commit), and only then send messages and answer clients
//! (with the two narrow exceptions documented on [`crate::Effects`]: `Accept`s overlap the
//! save, and decision records may ride along with a later one). [`NodeHandle`] is the client
//! API; [`Batcher`] batches and pipelines values onto it.

mod apply;
mod batcher;
mod clock;
mod error;
mod handle;
mod node;
mod step;
mod waiters;

pub use batcher::{
    Batch, BatchConfig, BatchError, Batcher, Commit, Commits, Committed, PackedBytes, Submitter,
};
pub use error::{Fatal, NodeError};
pub use handle::{Decisions, NodeHandle, NodeStatus, Outcome, Reply, Session};
pub use node::{Node, NodeTask};
pub use step::{MAX_UNSAVED_DECISIONS, Step};
