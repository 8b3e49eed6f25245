//! [`TcpTransport`]: the transport over real TCP (`tokio::net`).

use crate::config::NetConfig;
use crate::endpoint::Endpoint;
use crate::error::NetError;
use crate::network::Network;
use paxos_core::Value;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

/// `tokio::net` as a [`Network`].
pub(crate) struct Tcp;

fn no_delay(stream: &TcpStream) {
    // Paxos messages are small and latency-bound: never let Nagle hold them back.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

impl Network for Tcp {
    type Stream = TcpStream;
    type Listener = TcpListener;

    async fn connect(addr: String) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        // Dialing a local port nobody listens on can connect the socket to itself (TCP
        // simultaneous open, when the kernel picks that very port as the source port). It would
        // hold the port its node needs on restart and wait for a handshake that never comes.
        if stream.local_addr()? == stream.peer_addr()? {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "connected to itself: nobody listens there",
            ));
        }
        no_delay(&stream);
        Ok(stream)
    }

    async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, remote) = listener.accept().await?;
        no_delay(&stream);
        Ok((stream, remote))
    }
}

/// A [`paxos_core::Transport`] over TCP: one outbound connection per peer, one listener for inbound ones.
///
/// Dropping it (or [`TcpTransport::shutdown`]) closes the listener and every connection.
pub struct TcpTransport<V> {
    endpoint: Endpoint<V>,
    local_addr: SocketAddr,
}

impl<V: Value> TcpTransport<V> {
    /// Bind `listen_addr` (e.g. `"127.0.0.1:7000"`) and start.
    ///
    /// # Errors
    /// [`NetError::Config`] if `cfg` is invalid, [`NetError::Bind`] if the address is unusable.
    pub async fn bind(listen_addr: &str, cfg: NetConfig) -> Result<Self, NetError> {
        cfg.validate()?;
        let listener = TcpListener::bind(listen_addr)
            .await
            .map_err(|source| NetError::Bind {
                addr: listen_addr.to_owned(),
                source,
            })?;
        Self::with_listener(listener, cfg)
    }

    /// Start on an already bound listener (bind port 0 first to learn the address).
    ///
    /// # Errors
    /// [`NetError::Config`] if `cfg` is invalid, [`NetError::Io`] if the listener has no
    /// local address.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns tasks).
    pub fn with_listener(listener: TcpListener, cfg: NetConfig) -> Result<Self, NetError> {
        let local_addr = listener.local_addr()?;
        if !cfg.is_authenticated() {
            tracing::warn!(node = %cfg.id, %local_addr, "peer links are open: anyone who reaches this port can join as any member; configure TLS credentials or a secret");
        }
        // Real networks have real adversaries: challenges come from the OS, not the seed.
        let nonces = StdRng::from_entropy();
        let endpoint = Endpoint::start::<Tcp>(listener, cfg, nonces)?;
        Ok(TcpTransport {
            endpoint,
            local_addr,
        })
    }
}

crate::endpoint::delegate_to_endpoint!(TcpTransport);
