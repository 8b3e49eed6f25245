//! Tools for testing Paxos code and your own backends (feature `testing`).
//!
//! - [`conformance`]: the storage conformance suite every [`crate::Storage`] should pass:
//!   implement [`conformance::StorageFactory`] (create, and optionally reopen / corrupt a store)
//!   and call [`conformance::run_all`] from one test.
//! - [`ChannelNetwork`]: an in-process [`crate::Transport`] over tokio channels.

mod channel;
pub mod conformance;

pub use channel::{ChannelNetwork, ChannelTransport};
