//! The node runtime: the only async code in the crate.
//!
//! [`Node`] owns a [`crate::Replica`], a [`crate::Storage`] and a [`crate::Transport`] and runs
//! one loop: wait for an input (client command, message, tick), fold every input that is already
//! waiting into the same step, deliver self-addressed messages locally, make the step's writes
//! durable in **one** `save` (group commit), and only then send messages and answer clients.
//! [`NodeHandle`] is the client API.

mod batcher;
mod handle;
mod node;

pub use batcher::{Batch, BatchConfig, Batcher, Committed, PackedBytes};
pub use handle::{NodeHandle, NodeStatus, Outcome};
pub use node::{Node, NodeError};
