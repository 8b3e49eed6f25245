//! Counters a transport keeps about itself, readable while it runs.

#[cfg(any(feature = "tcp", feature = "turmoil"))]
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a transport's counters (see [`crate::TcpTransport::metrics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetMetrics {
    /// Messages dropped: a peer's outbound queue or our inbox was full, or a message was too
    /// large to encode.
    pub dropped: u64,
    /// Outbound connections established (first connects and reconnects).
    pub connects: u64,
    /// Inbound handshakes refused (wrong cluster, version, unknown node, bad auth, a failed TLS
    /// handshake, or none finished in time).
    pub refused: u64,
    /// Inbound connections closed because of a bad frame (garbage, oversize, truncated).
    pub bad_frames: u64,
}

/// The live counters, shared by a transport's tasks.
#[cfg(any(feature = "tcp", feature = "turmoil"))]
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dropped: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
}

#[cfg(any(feature = "tcp", feature = "turmoil"))]
impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> NetMetrics {
        NetMetrics {
            dropped: self.dropped.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            bad_frames: self.bad_frames.load(Ordering::Relaxed),
        }
    }
}
