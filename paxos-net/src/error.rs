//! [`NetError`]: what binding, dialling or a handshake can fail with.

use crate::codec::{CodecError, Refusal};
use paxos_core::NodeId;

/// Errors of the network transports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The [`crate::NetConfig`] is unusable.
    #[error("invalid net config: {0}")]
    Config(String),
    /// Binding the listen address failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be read or written.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The handshake was refused (by the peer when dialling, by us when listening).
    #[error("handshake refused: {0}")]
    Refused(Refusal),
    /// The listener we dialled is not the node we meant to reach.
    #[error("dialled {expected} but reached {actual}")]
    WrongPeer {
        /// The node we dialled.
        expected: NodeId,
        /// The node that answered.
        actual: NodeId,
    },
    /// The peer broke the protocol (an unexpected frame, or it closed mid-handshake).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    ConnectionClosed,
    /// The TLS handshake failed, or a TLS record did not authenticate (a byte changed on the
    /// path): the connection is dropped.
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// A connect, handshake or write missed its deadline.
    #[error("{0} timed out")]
    Timeout(&'static str),
}
