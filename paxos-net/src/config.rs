//! [`NetConfig`]: who this node is, where its peers listen, and the network's limits.

use crate::codec::{DEFAULT_MAX_FRAME_LEN, HANDSHAKE_MAX_FRAME_LEN};
use crate::error::NetError;
use paxos_core::NodeId;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Configuration of one node's transport ([`crate::TcpTransport`] or
/// [`crate::TurmoilTransport`]).
///
/// Built with [`NetConfig::new`] and `with_*` setters; every field has a sensible default.
#[derive(Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// This node's id; sent in the handshake.
    pub id: NodeId,
    /// Identifies the cluster; a peer with another id is refused. Default 0.
    pub cluster_id: u64,
    /// `"host:port"` of every *other* node. Also the membership: inbound connections from ids
    /// not in this map are refused.
    pub peers: BTreeMap<NodeId, String>,
    /// Largest frame accepted or sent, in bytes. Default 16 MiB.
    pub max_frame_len: usize,
    /// Messages queued per peer before `send` starts dropping. Default 4096. Also the capacity
    /// of the inbox `recv` reads.
    pub queue_capacity: usize,
    /// Bytes of frames queued per peer before `send` starts dropping, and bytes of messages
    /// the inbox holds. Default 64 MiB; at least `max_frame_len`. With `queue_capacity` it
    /// bounds what a slow or dead peer (or a node not keeping up) costs in memory.
    pub queue_bytes: usize,
    /// Deadline for a connect and for the whole handshake. Default 2 s.
    pub connect_timeout: Duration,
    /// Deadline for writing (and flushing) one batch of frames. Default 2 s.
    pub write_timeout: Duration,
    /// Interval between keepalive pings on an idle outbound connection. Default 500 ms.
    pub keepalive_interval: Duration,
    /// A connection on which nothing arrived for this long is closed (and redialled by its
    /// dialer). Must exceed `keepalive_interval`. Default 3 s.
    pub idle_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt. Default 50 ms.
    pub backoff_min: Duration,
    /// Cap of the reconnect delay. Default 2 s.
    pub backoff_max: Duration,
    /// Seed of every random choice (reconnect jitter; handshake nonces under turmoil).
    /// Default 0.
    pub seed: u64,
    /// Shared secret; when set, every inbound handshake must prove it (HMAC-SHA256).
    /// Default none.
    pub secret: Option<Vec<u8>>,
    /// TLS credentials; when set, every link is mutually authenticated TLS 1.3 and every
    /// frame is encrypted ([`crate::tls`]). Default none.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsCredentials>,
}

impl NetConfig {
    /// Node `id` with the given peers (`"host:port"` of every other node) and default limits.
    pub fn new(id: NodeId, peers: BTreeMap<NodeId, String>) -> NetConfig {
        NetConfig {
            id,
            cluster_id: 0,
            peers,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            queue_capacity: 4096,
            queue_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            seed: 0,
            secret: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Set the cluster id.
    pub fn with_cluster_id(mut self, cluster_id: u64) -> Self {
        self.cluster_id = cluster_id;
        self
    }

    /// Set the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Set the maximum frame length.
    pub fn with_max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self
    }

    /// Set the per-peer queue capacity.
    pub fn with_queue_capacity(mut self, queue_capacity: usize) -> Self {
        self.queue_capacity = queue_capacity;
        self
    }

    /// Set the per-peer (and inbox) bound in bytes.
    pub fn with_queue_bytes(mut self, queue_bytes: usize) -> Self {
        self.queue_bytes = queue_bytes;
        self
    }

    /// Set the connect (and handshake) timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set the write timeout.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Set the keepalive interval and the idle timeout.
    pub fn with_keepalive(mut self, interval: Duration, idle_timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.idle_timeout = idle_timeout;
        self
    }

    /// Set the reconnect backoff bounds.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// Require peers to prove `secret` in the handshake.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Run every link inside mutually authenticated TLS 1.3 with these credentials (issued
    /// for this node by the cluster's CA).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, credentials: crate::tls::TlsCredentials) -> Self {
        self.tls = Some(credentials);
        self
    }

    /// True if links are authenticated (TLS credentials or a shared secret).
    pub fn is_authenticated(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        self.secret.is_some()
    }

    /// Check the configuration is usable.
    ///
    /// # Errors
    /// [`NetError::Config`] naming the first problem found.
    pub fn validate(&self) -> Result<(), NetError> {
        let problem = if self.peers.contains_key(&self.id) {
            "peers must not contain this node's own id"
        } else if self.max_frame_len < HANDSHAKE_MAX_FRAME_LEN
            || self.max_frame_len > u32::MAX as usize
        {
            "max_frame_len must be between 1 KiB and 4 GiB"
        } else if self.queue_capacity == 0 {
            "queue_capacity must be positive"
        } else if self.queue_bytes < self.max_frame_len {
            "queue_bytes must hold one frame of max_frame_len"
        } else if self.connect_timeout.is_zero()
            || self.write_timeout.is_zero()
            || self.keepalive_interval.is_zero()
        {
            "timeouts must be positive"
        } else if self.idle_timeout <= self.keepalive_interval {
            "idle_timeout must exceed keepalive_interval"
        } else if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            "backoff bounds must satisfy 0 < min <= max"
        } else if self.secret.as_ref().is_some_and(|s| s.is_empty()) {
            "secret must not be empty"
        } else if self.tls_for_another_node() {
            "the TLS credentials are for another node"
        } else {
            return Ok(());
        };
        Err(NetError::Config(problem.into()))
    }
}

impl NetConfig {
    fn tls_for_another_node(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(creds) = &self.tls {
            return creds.node() != self.id;
        }
        false
    }
}

impl fmt::Debug for NetConfig {
    /// Like a derived `Debug`, but never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetConfig")
            .field("id", &self.id)
            .field("cluster_id", &self.cluster_id)
            .field("peers", &self.peers)
            .field("max_frame_len", &self.max_frame_len)
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_bytes", &self.queue_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("seed", &self.seed)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("authenticated", &self.is_authenticated())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_debug_hides_the_secret() {
        let cfg = NetConfig::new(NodeId(1), BTreeMap::from([(NodeId(2), "h:1".into())]))
            .with_secret("hunter2");
        cfg.validate().expect("valid");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn self_in_peers_is_invalid() {
        let cfg = NetConfig::new(NodeId(1), BTreeMap::from([(NodeId(1), "h:1".into())]));
        assert!(matches!(cfg.validate(), Err(NetError::Config(_))));
    }
}
