//! [`TurmoilTransport`]: the same transport over turmoil's simulated TCP (`turmoil::net`).
//!
//! Build it inside a turmoil host (`sim.host(name, || async { ... })`): its tasks run on that
//! host, so they die when the host crashes, and after `sim.bounce` the host closure runs again
//! and binds a fresh transport. Peers are addressed by host name (`"n2:7000"`).

use crate::backoff::derive_seed;
use crate::config::NetConfig;
use crate::endpoint::Endpoint;
use crate::error::NetError;
use crate::network::Network;
use paxos_core::Value;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use turmoil::net::{TcpListener, TcpStream};

/// Seed purpose of handshake challenges.
const SEED_NONCE: u64 = 2;

/// `turmoil::net` as a [`Network`].
pub(crate) struct Sim;

impl Network for Sim {
    type Stream = TcpStream;
    type Listener = TcpListener;

    fn connect(addr: String) -> impl Future<Output = io::Result<TcpStream>> + Send {
        TcpStream::connect(addr)
    }

    fn accept(
        listener: &TcpListener,
    ) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        listener.accept()
    }
}

/// A [`paxos_core::Transport`] over turmoil's simulated TCP; behaves exactly like [`crate::TcpTransport`]
/// (same codec, handshake, queues and reconnects) but in virtual time and deterministically.
pub struct TurmoilTransport<V> {
    endpoint: Endpoint<V>,
    local_addr: SocketAddr,
}

impl<V: Value> TurmoilTransport<V> {
    /// Bind `listen_addr` (e.g. `"0.0.0.0:7000"`) on the current turmoil host and start.
    ///
    /// # Errors
    /// [`NetError::Config`] if `cfg` is invalid, [`NetError::Bind`] if the port is taken.
    ///
    /// # Panics
    /// Outside a turmoil host.
    pub async fn bind(listen_addr: &str, cfg: NetConfig) -> Result<Self, NetError> {
        cfg.validate()?;
        let listener = TcpListener::bind(listen_addr)
            .await
            .map_err(|source| NetError::Bind {
                addr: listen_addr.to_owned(),
                source,
            })?;
        let local_addr = listener.local_addr()?;
        // Deterministic, yet fresh after a bounce: mix in the virtual time of this start.
        let started = turmoil::sim_elapsed().unwrap_or_default().as_nanos() as u64;
        let nonces = StdRng::seed_from_u64(derive_seed(cfg.seed, SEED_NONCE, cfg.id.0 ^ started));
        let endpoint = Endpoint::start::<Sim>(listener, cfg, nonces)?;
        Ok(TurmoilTransport {
            endpoint,
            local_addr,
        })
    }
}

crate::endpoint::delegate_to_endpoint!(TurmoilTransport);
