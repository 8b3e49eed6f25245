//! An in-process transport: every node's inbox is a tokio channel.

use crate::ballot::NodeId;
use crate::message::{Message, Value};
use crate::transport::{Peers, Transport, TransportError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Inbox<V> = mpsc::UnboundedSender<(NodeId, Message<V>)>;

/// A set of in-process endpoints that can reach each other. Cheap to clone.
#[derive(Debug)]
pub struct ChannelNetwork<V> {
    inboxes: Arc<Mutex<BTreeMap<NodeId, Inbox<V>>>>,
    /// Nodes cut off from every other: what they send and what is sent to them is lost.
    isolated: Arc<Mutex<BTreeSet<NodeId>>>,
    /// Each endpoint's peers, once its node set them ([`Transport::set_peers`]): it talks to
    /// those only, as a TCP transport dials and admits its peers only.
    peers: Arc<Mutex<BTreeMap<NodeId, Peers>>>,
}

impl<V> Clone for ChannelNetwork<V> {
    fn clone(&self) -> Self {
        ChannelNetwork {
            inboxes: self.inboxes.clone(),
            isolated: self.isolated.clone(),
            peers: self.peers.clone(),
        }
    }
}

impl<V> Default for ChannelNetwork<V> {
    fn default() -> Self {
        ChannelNetwork {
            inboxes: Arc::new(Mutex::new(BTreeMap::new())),
            isolated: Arc::new(Mutex::new(BTreeSet::new())),
            peers: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }
}

impl<V: Value> ChannelNetwork<V> {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cut `id` off from every other node (`cut`), or join it again: messages between it and
    /// the rest are lost meanwhile, as on a partitioned network (sends still succeed).
    pub fn isolate(&self, id: NodeId, cut: bool) {
        let mut isolated = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        if cut {
            isolated.insert(id);
        } else {
            isolated.remove(&id);
        }
    }

    /// The peers node `id` last gave its endpoint (`None`: it never did).
    pub fn peers_of(&self, id: NodeId) -> Option<Peers> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(&id).cloned()
    }

    /// True if a message from `from` to `to` is lost: either is isolated, or either has set
    /// its peers and the other is not among them (a link between them would not exist).
    fn cut(&self, from: NodeId, to: NodeId) -> bool {
        if from == to {
            return false;
        }
        let isolated = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        if isolated.contains(&from) || isolated.contains(&to) {
            return true;
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let unknown = |a: NodeId, b: NodeId| peers.get(&a).is_some_and(|p| !p.contains_key(&b));
        unknown(from, to) || unknown(to, from)
    }

    /// The endpoint of node `id`; replaces any earlier endpoint of `id` (a restart).
    pub fn endpoint(&self, id: NodeId) -> ChannelTransport<V> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        ChannelTransport {
            id,
            network: self.clone(),
            inbox: rx,
        }
    }
}

/// One node's endpoint of a [`ChannelNetwork`].
#[derive(Debug)]
pub struct ChannelTransport<V> {
    id: NodeId,
    network: ChannelNetwork<V>,
    inbox: mpsc::UnboundedReceiver<(NodeId, Message<V>)>,
}

#[async_trait]
impl<V: Value> Transport<V> for ChannelTransport<V> {
    async fn send(&self, to: NodeId, message: Message<V>) -> Result<(), TransportError> {
        if self.network.cut(self.id, to) {
            return Ok(());
        }
        let inbox = self
            .network
            .inboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&to)
            .cloned();
        let inbox = inbox.ok_or(TransportError::UnknownPeer(to))?;
        inbox
            .send((self.id, message))
            .map_err(|_| TransportError::Dropped(to, "peer stopped".into()))
    }

    fn backlog(&self) -> usize {
        self.inbox.len()
    }

    async fn set_peers(&mut self, peers: &Peers) -> Result<(), TransportError> {
        let mut all = self.network.peers.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(self.id, peers.clone());
        Ok(())
    }

    async fn recv(&mut self) -> Result<(NodeId, Message<V>), TransportError> {
        self.inbox.recv().await.ok_or(TransportError::Closed)
    }
}
