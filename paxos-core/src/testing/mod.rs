//! Tools for testing Paxos code and your own backends (feature `testing`).
//!
//! - [`conformance`]: the storage conformance suite every [`crate::Storage`] should pass:
//!   implement [`conformance::StorageFactory`] (create, and optionally reopen / corrupt a store)
//!   and call [`conformance::run_all`] from one test.
//! - [`ChannelNetwork`]: an in-process [`crate::Transport`] over tokio channels.
//! - [`AcceptorFaults`] and [`ProposerFaults`]: switches that break a protocol rule on purpose
//!   ([`crate::Node::with_faults`]), so that a test can prove its checker catches the break.
//!   They exist only with this feature, so no production build can turn them on.

mod channel;
pub mod conformance;

pub use crate::acceptor::AcceptorFaults;
pub use crate::proposer::ProposerFaults;
pub use channel::{ChannelNetwork, ChannelTransport};
