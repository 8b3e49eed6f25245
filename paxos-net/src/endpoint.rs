//! [`Endpoint`]: the transport core both [`crate::TcpTransport`] and
//! [`crate::TurmoilTransport`] wrap — per-peer queues, the inbox, the tasks and the counters.

use crate::backoff::{Backoff, derive_seed};
use crate::codec::{EncodedFrame, Frame};
use crate::config::NetConfig;
use crate::error::NetError;
use crate::handshake::Identity;
use crate::inbound::Inbound;
use crate::metrics::{Counters, NetMetrics};
use crate::network::Network;
use crate::outbound::{Outbound, Timing};
use crate::queue;
use futures::future::BoxFuture;
use paxos_core::{Message, NodeId, Peers, TransportError, Value};
use rand::rngs::StdRng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Seed purpose of the reconnect jitter of each outbound task.
const SEED_BACKOFF: u64 = 1;

/// A running transport: spawned tasks plus the handles `send` and `recv` use.
///
/// Dropping it aborts every task, which closes the listener and every connection.
pub(crate) struct Endpoint<V> {
    id: NodeId,
    max_frame_len: usize,
    /// One queue (and outbound task) per peer dialled.
    queues: BTreeMap<NodeId, queue::Sender<EncodedFrame>>,
    /// Where each node listens: the configured peers, plus what membership changes named.
    addresses: BTreeMap<NodeId, String>,
    inbox: queue::Receiver<(NodeId, Message<V>)>,
    counters: Arc<Counters>,
    identity: Arc<Identity>,
    inbound: Arc<Inbound<V>>,
    dialing: Dialing,
    stop: CancellationToken,
    // Behind a mutex only so the endpoint is `Sync`; touched with `&mut self` alone.
    tasks: Mutex<JoinSet<()>>,
    closed: bool,
}

/// What every outbound task is started with.
struct Dialing {
    timing: Timing,
    queue_capacity: usize,
    queue_bytes: usize,
    backoff: (std::time::Duration, std::time::Duration),
    seed: u64,
    /// An outbound task over the transport's network (`Outbound::run::<N, V>`).
    run: fn(Outbound) -> BoxFuture<'static, ()>,
}

impl<V: Value> Endpoint<V> {
    /// Start the accept loop on `listener` and one outbound task per peer.
    ///
    /// `nonces` draws the handshake challenges. Must be called inside a tokio runtime.
    pub(crate) fn start<N: Network>(
        listener: N::Listener,
        cfg: NetConfig,
        nonces: StdRng,
    ) -> Result<Self, NetError> {
        cfg.validate()?;
        let counters = Arc::new(Counters::default());
        let identity = Arc::new(Identity {
            id: cfg.id,
            cluster_id: cfg.cluster_id,
            members: Mutex::new(cfg.peers.keys().copied().collect()),
            secret: cfg.secret.clone(),
            #[cfg(feature = "tls")]
            tls: cfg
                .tls
                .as_ref()
                .map(crate::tls::Contexts::new)
                .transpose()
                .map_err(|e| NetError::Config(e.to_string()))?,
        });
        let timing = Timing {
            connect_timeout: cfg.connect_timeout,
            write_timeout: cfg.write_timeout,
            keepalive_interval: cfg.keepalive_interval,
            idle_timeout: cfg.idle_timeout,
        };
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let (inbox_tx, inbox) = queue::bounded(cfg.queue_capacity, cfg.queue_bytes);
        let inbound = Arc::new(Inbound {
            identity: identity.clone(),
            inbox: inbox_tx,
            counters: counters.clone(),
            max_frame_len: cfg.max_frame_len,
            handshake_timeout: cfg.connect_timeout,
            write_timeout: cfg.write_timeout,
            idle_timeout: cfg.idle_timeout,
            live: Mutex::new(BTreeMap::new()),
            refusals: Mutex::new(crate::throttle::LogThrottle::default()),
        });
        tasks.spawn(
            inbound
                .clone()
                .accept_loop::<N>(listener, nonces, stop.clone()),
        );
        let mut endpoint = Endpoint {
            id: cfg.id,
            max_frame_len: cfg.max_frame_len,
            queues: BTreeMap::new(),
            addresses: cfg.peers.clone(),
            inbox,
            counters,
            identity,
            inbound,
            dialing: Dialing {
                timing,
                queue_capacity: cfg.queue_capacity,
                queue_bytes: cfg.queue_bytes,
                backoff: (cfg.backoff_min, cfg.backoff_max),
                seed: cfg.seed,
                run: |outbound| Box::pin(outbound.run::<N, V>()),
            },
            stop,
            tasks: Mutex::new(tasks),
            closed: false,
        };
        for peer in cfg.peers.keys() {
            endpoint.dial(*peer);
        }
        Ok(endpoint)
    }

    /// Start `peer`'s queue and outbound task, dialling its known address.
    fn dial(&mut self, peer: NodeId) {
        let Some(addr) = self.addresses.get(&peer) else {
            return;
        };
        let (tx, rx) = queue::bounded(self.dialing.queue_capacity, self.dialing.queue_bytes);
        // Replacing a queue drops the old sender: the old task ends with it.
        self.queues.insert(peer, tx);
        let (min, max) = self.dialing.backoff;
        let outbound = Outbound {
            peer,
            addr: addr.clone(),
            queue: rx,
            identity: self.identity.clone(),
            timing: self.dialing.timing,
            backoff: Backoff::new(
                min,
                max,
                derive_seed(
                    self.dialing.seed,
                    SEED_BACKOFF,
                    peer.0 ^ self.id.0.rotate_left(17),
                ),
            ),
            counters: self.counters.clone(),
        };
        let stop = self.stop.clone();
        let run = self.dialing.run;
        self.tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(async move {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => {}
                    () = run(outbound) => {}
                }
            });
    }

    /// The membership changed: dial the new peers (at the address named, or the one known),
    /// redial those whose address changed, close the links of those gone (both ways), and
    /// admit only `peers` to handshakes from now on.
    pub(crate) fn set_peers(&mut self, peers: &Peers) -> Result<(), TransportError> {
        let peers: BTreeMap<NodeId, Option<String>> = peers
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        self.identity.admit_only(peers.keys().copied().collect());
        let gone: Vec<NodeId> = self
            .queues
            .keys()
            .filter(|id| !peers.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.queues.remove(&id);
            self.inbound.disconnect(id);
            tracing::info!(node = %self.id, peer = %id, "peer left the cluster; link closed");
        }
        let mut unreachable = Vec::new();
        for (&id, address) in &peers {
            let moved = address
                .as_ref()
                .is_some_and(|a| self.addresses.get(&id) != Some(a));
            if let Some(a) = address.clone().filter(|_| moved) {
                self.addresses.insert(id, a);
            }
            if moved || !self.queues.contains_key(&id) {
                if self.addresses.contains_key(&id) {
                    tracing::info!(node = %self.id, peer = %id, addr = ?self.addresses.get(&id), "dialling a new peer");
                    self.dial(id);
                } else {
                    unreachable.push(id);
                }
            }
        }
        if unreachable.is_empty() {
            Ok(())
        } else {
            Err(TransportError::Other(format!(
                "no address known for {unreachable:?}: name it in the membership change"
            )))
        }
    }

    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn metrics(&self) -> NetMetrics {
        self.counters.snapshot()
    }

    /// Encode `message` and queue it for `to`, never waiting.
    pub(crate) fn send(&self, to: NodeId, message: Message<V>) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        let queue = self
            .queues
            .get(&to)
            .ok_or(TransportError::UnknownPeer(to))?;
        let frame =
            EncodedFrame::encode(&Frame::Message(message), self.max_frame_len).map_err(|e| {
                Counters::bump(&self.counters.dropped);
                TransportError::Dropped(to, e.to_string())
            })?;
        let bytes = frame.as_bytes().len();
        queue.try_send(frame, bytes).map_err(|e| match e {
            queue::Refused::Full => {
                Counters::bump(&self.counters.dropped);
                TransportError::Dropped(to, "queue full".into())
            }
            queue::Refused::Closed => TransportError::Closed,
        })
    }

    /// Messages received and not yet taken by [`Endpoint::recv`].
    pub(crate) fn backlog(&self) -> usize {
        self.inbox.len()
    }

    /// The next inbound message. Cancel-safe: [`queue::Receiver::recv`] is.
    pub(crate) async fn recv(&mut self) -> Result<(NodeId, Message<V>), TransportError> {
        self.inbox.recv().await.ok_or(TransportError::Closed)
    }

    /// Stop every task and wait until the listener and all connections are closed.
    pub(crate) async fn shutdown(&mut self) {
        self.closed = true;
        self.stop.cancel();
        self.inbox.close();
        let mut tasks = std::mem::take(self.tasks.get_mut().unwrap_or_else(|p| p.into_inner()));
        while tasks.join_next().await.is_some() {}
    }
}

impl<V> Drop for Endpoint<V> {
    fn drop(&mut self) {
        // The JoinSet aborts its tasks when dropped; cancelling also reaches the connection
        // tasks of the accept loop.
        self.stop.cancel();
    }
}

/// The methods and the [`paxos_core::Transport`] impl every transport type shares: each is a
/// struct with `endpoint: Endpoint<V>` and `local_addr: SocketAddr` fields.
macro_rules! delegate_to_endpoint {
    ($transport:ident) => {
        impl<V: paxos_core::Value> $transport<V> {
            /// The address the listener is bound to.
            pub fn local_addr(&self) -> std::net::SocketAddr {
                self.local_addr
            }

            /// This node's id.
            pub fn id(&self) -> paxos_core::NodeId {
                self.endpoint.id()
            }

            /// The transport's counters.
            pub fn metrics(&self) -> $crate::NetMetrics {
                self.endpoint.metrics()
            }

            /// Messages dropped so far (a queue or the inbox was full, or a message was too
            /// large to encode).
            pub fn dropped(&self) -> u64 {
                self.endpoint.metrics().dropped
            }

            /// Close the listener and every connection, and wait until they are closed.
            /// `recv` then drains what had already arrived and returns
            /// [`paxos_core::TransportError::Closed`].
            pub async fn shutdown(&mut self) {
                self.endpoint.shutdown().await;
            }
        }

        impl<V> std::fmt::Debug for $transport<V> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($transport))
                    .field("local_addr", &self.local_addr)
                    .finish_non_exhaustive()
            }
        }

        #[async_trait::async_trait]
        impl<V: paxos_core::Value> paxos_core::Transport<V> for $transport<V> {
            async fn send(
                &self,
                to: paxos_core::NodeId,
                message: paxos_core::Message<V>,
            ) -> Result<(), paxos_core::TransportError> {
                self.endpoint.send(to, message)
            }

            async fn recv(
                &mut self,
            ) -> Result<(paxos_core::NodeId, paxos_core::Message<V>), paxos_core::TransportError>
            {
                self.endpoint.recv().await
            }

            fn backlog(&self) -> usize {
                self.endpoint.backlog()
            }

            async fn set_peers(
                &mut self,
                peers: &paxos_core::Peers,
            ) -> Result<(), paxos_core::TransportError> {
                self.endpoint.set_peers(peers)
            }
        }
    };
}
pub(crate) use delegate_to_endpoint;
