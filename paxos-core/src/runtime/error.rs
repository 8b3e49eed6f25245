//! What a caller of a node gets back when a request fails: something to react to, or the
//! reason the node is gone.
//!
//! The split follows openraft's `RaftError`/`Fatal`: [`NodeError::NotLeader`] and
//! [`NodeError::Rejected`] answer one request and the node carries on (retry on the leader,
//! fix the request); [`NodeError::Fatal`] means the node has stopped and every later request
//! fails the same way, carrying the same [`Fatal`] cause, whichever handle asks.

use crate::ballot::NodeId;
use crate::storage::StorageError;
use crate::transport::TransportError;
use crate::validate::InputError;
use std::sync::{Arc, OnceLock};

/// Why a request to a node failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Leader mode: this node is not the leader. Ask `leader`, or retry later.
    #[error("not the leader; the leader is {leader}")]
    NotLeader {
        /// The node this one trusts as leader.
        leader: NodeId,
    },
    /// The request is invalid (an instance beyond [`crate::InstanceId::MAX`]).
    #[error("request rejected: {0}")]
    Rejected(InputError),
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
