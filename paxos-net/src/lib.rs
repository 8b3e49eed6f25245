//! # paxos-net
//!
//! Network transports for `paxos-core`: [`TcpTransport`] over real TCP and
//! [`TurmoilTransport`] over turmoil's simulated TCP. Both implement
//! [`paxos_core::Transport`] and share everything but dialling and listening.
//!
//! ```text
//!  Node ──send(to, msg)──▶ encode ──try_send──▶ [bounded queue per peer] ──▶ outbound task
//!                          (codec)               full? drop + count          dial, handshake,
//!                                                                            batch, flush, ping,
//!                                                                            redial w/ backoff
//!  Node ◀──recv()── [inbox] ◀── reader task per inbound connection ◀── accept loop + handshake
//!                   (from = the id the peer proved in its handshake)
//! ```
//!
//! - `send` never waits: it encodes the message and `try_send`s it into the peer's queue,
//!   bounded in frames and in bytes ([`NetConfig::queue_bytes`]); a full queue drops the
//!   message and bumps [`NetMetrics::dropped`]. The inbox is bounded the same way.
//! - Every connection is one-way: the dialer sends messages, the listener reads them. Between
//!   two nodes there are two connections, one each way.
//! - Every connect, handshake and write has a deadline, and keepalive pings close a link that
//!   went silent (a partition), so a broken connection is always noticed and redialled with
//!   capped exponential backoff. Jitter comes from [`NetConfig::seed`]; time only from
//!   `tokio::time`, so turmoil controls it.
//! - A bad frame, a refused or failed handshake closes that connection only.
//! - With [`NetConfig::with_tls`] every link is mutual TLS 1.3 ([`tls`]): a peer is the node
//!   its certificate names, and every frame is encrypted and authenticated. Without it links
//!   are plaintext, and the transport logs a `WARN` when it starts.
//!
//! The wire format (framing, handshake, versioning) is documented in [`codec`]; the optional
//! shared-secret authentication in [`auth`]; certificates in [`tls`].
//!
//! ## Example
//! ```no_run
//! use paxos_core::{Message, NodeId, Transport};
//! use paxos_net::{NetConfig, TcpTransport, TlsCredentials};
//! use std::collections::BTreeMap;
//! use std::path::Path;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let peers = BTreeMap::from([
//!     (NodeId(2), "10.0.0.2:7000".to_string()),
//!     (NodeId(3), "10.0.0.3:7000".to_string()),
//! ]);
//! // ca.pem, node-1.pem, node-1.key, as `ClusterCa` (or `paxos-harness certs`) wrote them.
//! let credentials = TlsCredentials::load(Path::new("/etc/paxos"), NodeId(1))?;
//! let cfg = NetConfig::new(NodeId(1), peers)
//!     .with_cluster_id(42)
//!     .with_seed(7)
//!     .with_tls(credentials);
//! let mut net = TcpTransport::<u64>::bind("0.0.0.0:7000", cfg).await?;
//! net.send(NodeId(2), Message::Heartbeat).await?;
//! let (from, message) = net.recv().await?;
//! println!("{from} sent {}", message.kind());
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//! - `tcp` (default): [`TcpTransport`] over `tokio::net`.
//! - `tls` (default): mutual-TLS links ([`tls`]): `rustls` with the `ring` provider (no C
//!   toolchain, no cmake) and `rcgen` to make certificates.
//! - `turmoil`: [`TurmoilTransport`] over `turmoil::net`, for deterministic simulation. Build it
//!   inside a turmoil host; peers are addressed by host name (`"n2:7000"`). A user of the TCP
//!   transport alone compiles no turmoil.

#![deny(missing_docs)]

pub mod auth;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod backoff;
pub mod codec;
mod config;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod endpoint;
mod error;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod handshake;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod inbound;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod link;
mod metrics;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod network;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod outbound;
#[cfg(any(feature = "tcp", feature = "turmoil"))]
mod queue;
#[cfg(feature = "turmoil")]
mod sim;
#[cfg(feature = "tcp")]
mod tcp;
pub mod throttle;
#[cfg(feature = "tls")]
pub mod tls;

pub use codec::CodecError;
pub use config::NetConfig;
pub use error::NetError;
pub use metrics::NetMetrics;
#[cfg(feature = "turmoil")]
pub use sim::TurmoilTransport;
#[cfg(feature = "tcp")]
pub use tcp::TcpTransport;
pub use throttle::LogThrottle;
#[cfg(feature = "tls")]
pub use tls::{ClusterCa, TlsCredentials, TlsError};
