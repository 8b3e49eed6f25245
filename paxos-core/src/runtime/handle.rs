//! The client side of a running node.

use super::error::{Fate, NodeError};
use super::node::Command;
use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::epoch::{MemberChange, Membership};
use crate::log::{ClientId, Decision, Entry, ProposalId};
use crate::message::Value;
use crate::snapshot::SnapshotMeta;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The answer to [`NodeHandle::propose_at`], as in the Elixir coursework API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<V> {
    /// The instance is decided with this entry (yours, another proposer's, or a no-op).
    Decided(Entry<V>),
    /// `{:abort}`: the node that held the proposal lost its leadership before the instance was
    /// decided. The proposal may still be chosen; ask again to learn the decision.
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
    /// Every instance below this is applied here (decided, in order).
    pub applied: InstanceId,
    /// The first instance of the log kept here: everything below is in the node's snapshot
    /// (`InstanceId(0)` until it compacts).
    pub log_start: InstanceId,
    /// The snapshot this node is receiving from a peer, if a transfer is under way.
    pub receiving_snapshot: Option<SnapshotMeta>,
    /// Number of decisions known here.
    pub decided: usize,
    /// Inputs waiting to be handled when the status was taken: messages in the transport's
    /// mailbox plus queued client commands. A node that keeps up drains it (the Elixir
    /// coursework's `{:message_queue_len, 0}` check).
    pub backlog: usize,
    /// The configuration in force here (its epoch, members and roles).
    pub membership: Membership,
}

/// The answer to a request ([`NodeHandle::call`]): where it sits in the log, and what the
/// state machine returned when it applied it (empty without a state machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The instance the request was applied at (its first copy's, for a retry).
    pub instance: InstanceId,
    /// [`crate::StateMachine::apply`]'s output for it.
    pub output: Bytes,
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

/// A client session on a node ([`NodeHandle::session`]): numbers its requests, so each one
/// is in the log at most once however often it is retried. Cheap to clone; clones share the
/// numbering.
#[derive(Clone, Debug)]
pub struct Session<V> {
    node: NodeHandle<V>,
    client: ClientId,
    next: Arc<AtomicU64>,
}

impl<V: Value> Session<V> {
    /// The session's client id: a request is `ProposalId { client, seq }`.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The id the next [`Session::append`] will use.
    pub fn next_request(&self) -> ProposalId {
        ProposalId {
            client: self.client,
            seq: self.next.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// Put `value` in the log, once: returns its instance once it is decided and every
    /// instance before it too (see [`NodeHandle::append_request`]).
    ///
    /// # Errors
    /// As [`NodeHandle::append_request`].
    pub async fn append(&self, value: V, timeout: Duration) -> Result<InstanceId, NodeError> {
        self.node
            .append_request(self.next_request(), value, timeout)
            .await
    }

    /// [`Session::append`], answered with the state machine's output as well
    /// ([`NodeHandle::call`]).
    ///
    /// # Errors
    /// As [`NodeHandle::append_request`].
    pub async fn call(&self, value: V, timeout: Duration) -> Result<Reply, NodeError> {
        self.node.call(self.next_request(), value, timeout).await
    }

    /// The node this session runs through.
    pub fn node(&self) -> &NodeHandle<V> {
        &self.node
    }
}

/// The applied log, slot after slot in instance order ([`NodeHandle::subscribe`]).
#[derive(Debug)]
pub struct Decisions<V> {
    rx: mpsc::Receiver<Result<Decision<V>, NodeError>>,
}

impl<V> Decisions<V> {
    /// The next applied slot, in instance order with no gaps; `None` once the node stopped.
    /// An `Err` ends the stream: `Rejected(Compacted)` when the next slot is no longer in the
    /// node's log (the reader started, or fell, below its log start; catch up from a
    /// snapshot instead).
    pub async fn next(&mut self) -> Option<Result<Decision<V>, NodeError>> {
        self.rx.recv().await
    }
}

impl<V: Value> NodeHandle<V> {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Open a client session on this node: its requests are numbered, and a request the
    /// client retries (after a timeout, or through another node) is applied at most once.
    ///
    /// # Errors
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn session(&self) -> Result<Session<V>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Session { reply }).await?;
        let client = rx.await.map_err(|_| self.fate.error())?;
        Ok(Session {
            node: self.clone(),
            client,
            next: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Put *this* value in the log, as a request of the node's own client: returns its instance
    /// once it is decided and every instance before it too. Each call is a new request: to
    /// retry one without risking a second copy, use a [`Session`] and
    /// [`NodeHandle::append_request`] with the same id.
    ///
    /// # Errors
    /// As [`NodeHandle::append_request`].
    pub async fn append(&self, value: V, timeout: Duration) -> Result<InstanceId, NodeError> {
        Ok(self.append_command(None, value, timeout).await?.instance)
    }

    /// Put *this* value in the log as request `id`: returns its instance once that entry (not
    /// another's) is chosen **and every instance before it is decided**, so acknowledgements
    /// come in log order and an append acknowledged before another began sits below it.
    /// Callable on any node: a follower forwards to the leader it trusts, and forwards again
    /// whenever the leader changes. Asking again with the same `id` (here or on another node)
    /// is safe: the log applies a request once and answers a retry with the first instance.
    ///
    /// # Errors
    /// - [`NodeError::TimedOut`] after `timeout`: the value may still be chosen (retry with the
    ///   same `id` to find out);
    /// - [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn append_request(
        &self,
        id: ProposalId,
        value: V,
        timeout: Duration,
    ) -> Result<InstanceId, NodeError> {
        Ok(self
            .append_command(Some(id), value, timeout)
            .await?
            .instance)
    }

    /// [`NodeHandle::append_request`], answered with what the node's state machine returned
    /// when it applied the request ([`crate::StateMachine::apply`]): a service's reply to its
    /// client. A retry of an applied request gets the same output, from the sessions, as long
    /// as they remember it ([`crate::Config::session_window_entries`]); after that it is
    /// refused as [`InputError::SessionExpired`](crate::InputError::SessionExpired).
    ///
    /// # Errors
    /// As [`NodeHandle::append_request`], and `Rejected(SessionExpired)`.
    pub async fn call(
        &self,
        id: ProposalId,
        value: V,
        timeout: Duration,
    ) -> Result<Reply, NodeError> {
        self.append_command(Some(id), value, timeout).await
    }

    /// [`NodeHandle::append`] answered with the state machine's output: a new request of the
    /// node's own client (each call is a new request; retry with [`NodeHandle::call`] and a
    /// session's id to be exactly once).
    ///
    /// # Errors
    /// As [`NodeHandle::append_request`].
    pub async fn call_new(&self, value: V, timeout: Duration) -> Result<Reply, NodeError> {
        self.append_command(None, value, timeout).await
    }

    async fn append_command(
        &self,
        id: Option<ProposalId>,
        value: V,
        timeout: Duration,
    ) -> Result<Reply, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append {
            id,
            value,
            timeout,
            reply,
        })
        .await?;
        rx.await.map_err(|_| self.fate.error())?
    }

    /// Propose `value` in the next instance this node sees free and wait for that instance's
    /// decision (Go-log style): returns the instance and the entry chosen there, which is
    /// another proposer's (or a no-op) if that one won. Called on a follower, it is forwarded
    /// to the leader and answers once the value is in the log.
    ///
    /// # Errors
    /// [`NodeError::Aborted`] if this node lost its leadership first; [`NodeError::Fatal`]
    /// with the cause if the node stopped.
    pub async fn propose(&self, value: V) -> Result<(InstanceId, Entry<V>), NodeError> {
        self.request(None, value).await
    }

    /// Propose `value` in `instance` and wait at most `timeout` (Elixir-log style). On a
    /// follower the proposal is forwarded to the leader, as in the coursework.
    ///
    /// # Errors
    /// [`NodeError::Rejected`] for an instance beyond [`InstanceId::MAX`] or too far above the
    /// decided prefix; [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn propose_at(
        &self,
        instance: InstanceId,
        value: V,
        timeout: Duration,
    ) -> Result<Outcome<V>, NodeError> {
        match tokio::time::timeout(timeout, self.request(Some(instance), value)).await {
            Err(_) => Ok(Outcome::TimedOut),
            Ok(Ok((_, entry))) => Ok(Outcome::Decided(entry)),
            Ok(Err(NodeError::Aborted { .. })) => Ok(Outcome::Aborted),
            Ok(Err(e)) => Err(e),
        }
    }

    /// The entry decided in `instance`, once this node knows it.
    ///
    /// # Errors
    /// [`NodeError::Rejected`] with [`crate::InputError::Compacted`] if the instance is decided
    /// but its entry was compacted into a snapshot (already, or while waiting: the node
    /// installed a snapshot covering it); [`NodeError::Fatal`] with the cause if the node
    /// stopped.
    pub async fn wait_decided(&self, instance: InstanceId) -> Result<Entry<V>, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::WaitDecided { instance, reply }).await?;
        rx.await.map_err(|_| self.fate.error())?
    }

    /// The applied log from `from` on, in instance order with no gaps, as it grows: every
    /// slot once it and every slot before it are decided, with what applying it did (a state
    /// machine applies only [`crate::Applied::First`]). Slots are read from the node's log
    /// as the stream is consumed (nothing is copied ahead), so a slow reader costs a cursor,
    /// not memory; a reader that falls below the log start (the node compacted past it) gets
    /// `Rejected(Compacted)` and the stream ends, rather than a gap.
    ///
    /// # Errors
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn subscribe(&self, from: InstanceId) -> Result<Decisions<V>, NodeError> {
        let (sink, rx) = mpsc::channel(super::node::SUBSCRIBER_BUFFER);
        self.send(Command::Subscribe { from, sink }).await?;
        Ok(Decisions { rx })
    }

    /// At most `limit` applied slots from `from` on, and the applied frontier (every slot below
    /// it is applied here).
    ///
    /// # Errors
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn read(
        &self,
        from: InstanceId,
        limit: usize,
    ) -> Result<(Vec<Decision<V>>, InstanceId), NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Read { from, limit, reply }).await?;
        rx.await.map_err(|_| self.fate.error())
    }

    /// A linearizable read barrier: returns, with this node's applied index, once this node
    /// has applied every write acknowledged (by any node) before the call began, so state
    /// read from this node's state machine afterwards is up to date (ReadIndex: the leader
    /// confirms its ballot with a quorum after the call, and its frontier is the index to
    /// apply up to; nothing is written to the log). Callable on any node: a follower asks the
    /// leader for the index and waits only for its own applying.
    ///
    /// # Errors
    /// [`NodeError::TimedOut`] after `timeout` (no leader reachable with a quorum);
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<InstanceId, NodeError> {
        Ok(self.linearize(None, timeout).await?.0)
    }

    /// A linearizable read-only query: after [`NodeHandle::read_barrier`], the state machine
    /// answers `query` ([`crate::StateMachine::query`]) on the node loop, so the answer
    /// reflects every write acknowledged before the call began and no write is missed
    /// between the barrier and the answer.
    ///
    /// # Errors
    /// As [`NodeHandle::read_barrier`].
    pub async fn query(&self, query: Bytes, timeout: Duration) -> Result<Bytes, NodeError> {
        Ok(self.linearize(Some(query), timeout).await?.1)
    }

    async fn linearize(
        &self,
        query: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(InstanceId, Bytes), NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Linearize {
            query,
            timeout,
            reply,
        })
        .await?;
        rx.await.map_err(|_| self.fate.error())?
    }

    /// Every decision this node knows (a copy: for tests and small logs; read a long log with
    /// [`NodeHandle::read`] or [`NodeHandle::subscribe`]).
    ///
    /// # Errors
    /// [`NodeError::Fatal`] with the cause if the node stopped.
    pub async fn decisions(&self) -> Result<BTreeMap<InstanceId, Entry<V>>, NodeError> {
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

    /// Change the cluster's membership (on the leader): returns the new configuration once it
    /// is in force on this node, i.e. once the change and every instance below the new epoch's
    /// start are decided and applied here. A node joins as a learner first
    /// ([`MemberChange::learners`]) and becomes an acceptor by a later change, once it caught
    /// up; one change runs at a time.
    ///
    /// ```no_run
    /// # use paxos_core::{MemberChange, NodeHandle, NodeId};
    /// # use std::time::Duration;
    /// # async fn grow(leader: NodeHandle<u64>) -> Result<(), paxos_core::NodeError> {
    /// let wait = Duration::from_secs(10);
    /// let voters = [1, 2, 3].map(NodeId);
    /// // Node 4 joins as a learner (its address is news to the others' transports)...
    /// let change = MemberChange::new(voters, [NodeId(4)]).with_address(NodeId(4), "10.0.0.4:7000");
    /// leader.reconfigure(change, wait).await?;
    /// // ... and, once it has caught up, votes.
    /// leader.reconfigure(MemberChange::new([1, 2, 3, 4].map(NodeId), []), wait).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`NodeError::Reconfig`] with why the change was refused or did not happen (not the
    /// leader, another change in progress, an id reused, ...); [`NodeError::TimedOut`] if the
    /// new epoch was not in force here within `timeout` (the change may still happen: look at
    /// [`NodeStatus::membership`]); [`NodeError::Fatal`] if the node stopped.
    pub async fn reconfigure(
        &self,
        change: MemberChange,
        timeout: Duration,
    ) -> Result<Membership, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Reconfigure { change, reply }).await?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(NodeError::TimedOut { maybe_chosen: true }),
            Ok(answer) => answer.map_err(|_| self.fate.error())?,
        }
    }

    /// Ask the node to stop after its current step. Returns once the request is queued.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    async fn request(
        &self,
        instance: Option<InstanceId>,
        value: V,
    ) -> Result<(InstanceId, Entry<V>), NodeError> {
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
