//! The [`Transport`] trait: how messages reach other nodes.
//!
//! Message passing, not RPC. Paxos tolerates loss, duplication and reordering, so `send` is best
//! effort and its error is only informative; the protocol retries on its own timers.

use crate::ballot::NodeId;
use crate::message::{Message, Value};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// The nodes a node talks to after a membership change, each with the address the change
/// named for it (`None`: the one the transport knows already, from its own configuration).
pub type Peers = BTreeMap<NodeId, Option<String>>;

/// Errors of a [`Transport`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer is not in the membership this transport was built with.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The message could not be queued for the peer (queue full, peer unreachable); it was dropped.
    #[error("message to {0} dropped: {1}")]
    Dropped(NodeId, String),
    /// The transport was shut down; no message will arrive any more.
    #[error("transport closed")]
    Closed,
    /// Anything else the transport wants to report.
    #[error("transport error: {0}")]
    Other(String),
}

/// Moves [`Message`]s between nodes.
///
/// # Contract
/// - `send` never waits for the peer: it queues (or drops) and returns, so a dead peer cannot
///   stall the node. `Ok` means "handed to the network", not "delivered".
/// - Delivery may fail, reorder or duplicate; the protocol does not care.
/// - `recv` must be cancel-safe (the runtime polls it inside `tokio::select!`): a message is
///   either returned or stays queued.
/// - The `from` returned by `recv` is the id the peer proved in its handshake, never a field the
///   peer could forge in the message body.
#[async_trait]
pub trait Transport<V: Value>: Send + Sync + 'static {
    /// Queue `message` for `to`.
    ///
    /// # Errors
    /// [`TransportError::UnknownPeer`], [`TransportError::Dropped`] or [`TransportError::Closed`];
    /// the runtime logs these and carries on.
    async fn send(&self, to: NodeId, message: Message<V>) -> Result<(), TransportError>;

    /// The next message from any peer, with its authenticated sender.
    ///
    /// # Errors
    /// [`TransportError::Closed`] when no message can arrive any more; the node then stops.
    async fn recv(&mut self) -> Result<(NodeId, Message<V>), TransportError>;

    /// The membership changed: from now on exchange messages with `peers` only. Dial the new
    /// ones, close the links of those gone, and refuse handshakes from anyone else, so the
    /// transport's peers are always what the protocol's configuration says (the runtime calls
    /// it at start and on every new epoch). Transports without a peer list keep the default,
    /// which does nothing: the protocol itself ignores messages from non-members.
    ///
    /// # Errors
    /// A peer the transport cannot reach (no address known for it); the others are set, and
    /// the runtime logs the error and carries on.
    async fn set_peers(&mut self, peers: &Peers) -> Result<(), TransportError> {
        let _ = peers;
        Ok(())
    }

    /// Messages that arrived and wait for `recv` (the node's mailbox), for monitoring: a node
    /// that keeps up drains it. Transports that cannot tell report 0.
    fn backlog(&self) -> usize {
        0
    }
}
