//! The only seam between the transports: how to dial and how to accept.
//!
//! Everything else (handshake, framing, queues, reconnects) is written once, generic over a
//! [`Network`]; `tcp.rs` and `sim.rs` implement it with `tokio::net` and `turmoil::net`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// A stream-oriented network: real TCP or simulated TCP.
pub(crate) trait Network: Send + Sync + 'static {
    /// A connected, bidirectional byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound listener.
    type Listener: Send + 'static;

    /// Open a connection to `addr` (`"host:port"`). Callers put a deadline on it.
    fn connect(addr: String) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Accept the next inbound connection.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}
