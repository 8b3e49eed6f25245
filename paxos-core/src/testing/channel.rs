//! An in-process transport: every node's inbox is a tokio channel.

use crate::ballot::NodeId;
use crate::message::{Message, Value};
use crate::transport::{Transport, TransportError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Inbox<V> = mpsc::UnboundedSender<(NodeId, Message<V>)>;

/// A set of in-process endpoints that can reach each other. Cheap to clone.
#[derive(Debug)]
pub struct ChannelNetwork<V> {
    inboxes: Arc<Mutex<BTreeMap<NodeId, Inbox<V>>>>,
}

impl<V> Clone for ChannelNetwork<V> {
    fn clone(&self) -> Self {
        ChannelNetwork {
            inboxes: self.inboxes.clone(),
        }
    }
}

impl<V> Default for ChannelNetwork<V> {
    fn default() -> Self {
        ChannelNetwork {
            inboxes: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }
}

impl<V: Value> ChannelNetwork<V> {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
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

    async fn recv(&mut self) -> Result<(NodeId, Message<V>), TransportError> {
        self.inbox.recv().await.ok_or(TransportError::Closed)
    }
}
