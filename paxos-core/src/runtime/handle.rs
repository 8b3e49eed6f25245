//! The client side of a running node.

use super::error::{Fate, NodeError};
use super::node::Command;
use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::message::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The answer to [`NodeHandle::propose_at`], as in the Elixir coursework API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<V> {
    /// The instance is decided with this value (yours or another proposer's).
    Decided(V),
    /// This node is not the leader (leader mode): retry on the leader or later.
    Aborted,
    /// No decision within the timeout. The proposal may still be decided later.
    TimedOut,
}

/// A snapshot of a node's protocol state, for tests and monitoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// The trusted leader, in leader mode.
    pub leader: Option<NodeId>,
    /// The proposer's current or last ballot.
    pub ballot: Ballot,
    /// The acceptor's promise.
    pub promised: Ballot,
    /// Every instance below this is decided here.
    pub first_undecided: InstanceId,
    /// Number of decisions known here.
    pub decided: usize,
    /// Inputs waiting to be handled when the status was taken: messages in the transport's
    /// mailbox plus queued client commands. A node that keeps up drains it (the Elixir
    /// coursework's `{:message_queue_len, 0}` check).
    pub backlog: usize,
}

/// A cheap, cloneable handle to a running [`super::Node`].
#[derive(Debug)]
pub struct NodeHandle<V> {
    pub(super) id: NodeId,
    pub(super) commands: mpsc::Sender<Command<V>>,
    /// Why the node stopped, once it has.
    pub(super) fate: Fate,
}

impl<V> Clone for NodeHandle<V> {
    fn clone(&self) -> Self {
        NodeHandle {
            id: self.id,
            commands: self.commands.clone(),
            fate: self.fate.clone(),
        }
    }
}

impl<V: Value> NodeHandle<V> {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Propose `value` in the next instance this node sees free and wait for that instance's
    /// decision (Go-log style): returns the instance and the value chosen there, which is
    /// another proposer's value if that one won.
    ///
    /// # Errors
    /// [`NodeError::NotLeader`] in leader mode on a follower; [`NodeError::Fatal`] with the
    /// cause if the node stopped.
    pub async fn propose(&self, value: V) -> Result<(InstanceId, V), NodeError> {
        self.request(None, value).await
    }

    /// Propose `value` in `instance` and wait at most `timeout` (Elixir-log style).
    ///
    /// # Errors
    /// [`NodeError::Rejected`] for an instance beyond [`InstanceId::MAX`];
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn propose_at(
        &self,
        instance: InstanceId,
        value: V,
        timeout: Duration,
    ) -> Result<Outcome<V>, NodeError> {
        match tokio::time::timeout(timeout, self.request(Some(instance), value)).await {
            Err(_) => Ok(Outcome::TimedOut),
            Ok(Ok((_, v))) => Ok(Outcome::Decided(v)),
            Ok(Err(NodeError::NotLeader { .. })) => Ok(Outcome::Aborted),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Every decision this node knows.
    ///
    /// # Errors
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn decisions(&self) -> Result<BTreeMap<InstanceId, V>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Decisions { reply }).await?;
        rx.await.map_err(|_| self.fate.error())
    }

    /// The node's protocol state.
    ///
    /// # Errors
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Status { reply }).await?;
        rx.await.map_err(|_| self.fate.error())
    }

    /// Ask the node to stop after its current step. Returns once the request is queued.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    async fn request(
        &self,
        instance: Option<InstanceId>,
        value: V,
    ) -> Result<(InstanceId, V), NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Propose {
            instance,
            value,
            reply,
        })
        .await?;
        rx.await.map_err(|_| self.fate.error())?
    }

    async fn send(&self, command: Command<V>) -> Result<(), NodeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| self.fate.error())
    }
}
