//! What a caller of a node gets back when a request fails: something to react to, or the
//! reason the node is gone.
//!
//! The split follows openraft's `RaftError`/`Fatal`: [`NodeError::Rejected`],
//! [`NodeError::TimedOut`] and [`NodeError::Aborted`] answer one request and the node carries
//! on (fix the request, retry it); [`NodeError::Fatal`] means the node has stopped and every
//! later request fails the same way, carrying the same [`Fatal`] cause, whichever handle asks.

use crate::epoch::ReconfigError;
use crate::state_machine::RestoreError;
use crate::storage::StorageError;
use crate::transport::TransportError;
use crate::validate::InputError;
use std::sync::{Arc, OnceLock};

/// Why a request to a node failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The request is invalid (an instance beyond [`crate::InstanceId::MAX`], or too far above
    /// the decided prefix). It was not proposed.
    #[error("request rejected: {0}")]
    Rejected(InputError),
    /// No answer within the caller's deadline. The value may still be chosen: retry the same
    /// request id (a [`crate::Session`]) to learn where, without a second copy.
    #[error("timed out; the value {}", if *.maybe_chosen { "may still be chosen" } else { "was not proposed" })]
    TimedOut {
        /// The request had been proposed (or forwarded to the leader) when time ran out.
        maybe_chosen: bool,
    },
    /// The node lost its leadership before the proposal pinned to an instance was decided
    /// (the Elixir coursework's `{:abort}`). Ask again to learn the instance's decision.
    #[error("aborted: this node lost its leadership; the value {}", if *.maybe_chosen { "may still be chosen" } else { "was not chosen" })]
    Aborted {
        /// Accepts for it had been sent, so a later leader may still choose it.
        maybe_chosen: bool,
    },
    /// A membership change was refused, or did not happen (another was decided first, the
    /// node lost its leadership): see the reason, look at the configuration, ask again.
    #[error("membership change: {0}")]
    Reconfig(#[from] ReconfigError),
    /// The node has stopped, for this reason; it answers nothing any more.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

/// Why a node stopped. Every handle of the node reports the same cause.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Fatal {
    /// Shut down on request ([`crate::NodeHandle::shutdown`]), or the node was dropped.
    #[error("node stopped")]
    Stopped,
    /// A storage call failed; the node stopped without sending anything that depended on it.
    #[error("node stopped: storage failed: {0}")]
    Storage(Arc<StorageError>),
    /// The transport closed: no message can arrive any more.
    #[error("node stopped: transport failed: {0}")]
    Transport(Arc<TransportError>),
    /// The state machine could not restore a snapshot's state: running on would diverge from
    /// the peers.
    #[error("node stopped: {0}")]
    Restore(RestoreError),
    /// The node's task panicked (a bug: please report it).
    #[error("node stopped: its task panicked")]
    Panicked,
}

impl From<StorageError> for Fatal {
    fn from(e: StorageError) -> Self {
        Fatal::Storage(Arc::new(e))
    }
}

impl From<TransportError> for Fatal {
    fn from(e: TransportError) -> Self {
        Fatal::Transport(Arc::new(e))
    }
}

/// Where a node leaves the cause of its end for its handles: set once, by the node, before it
/// drops anything a handle could be waiting on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fate(Arc<OnceLock<Fatal>>);

impl Fate {
    /// Record why the node stopped (the first cause wins).
    pub(crate) fn set(&self, cause: Fatal) {
        let _ = self.0.set(cause);
    }

    /// The error a request gets from a stopped node.
    pub(crate) fn error(&self) -> NodeError {
        NodeError::Fatal(self.0.get().cloned().unwrap_or(Fatal::Stopped))
    }
}
