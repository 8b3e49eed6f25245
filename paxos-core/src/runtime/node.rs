//! The node loop.

use super::apply::{Applier, Encoded};
use super::clock::Clock;
use super::error::{Fatal, Fate, NodeError};
use super::handle::{NodeHandle, NodeStatus, Reply};
use super::step::Step;
use super::waiters::{AppendReply, ProposeReply, ReadReply, ReconfigReply, Waiters};
use crate::acceptor::AcceptorFaults;
use crate::ballot::{InstanceId, NodeId};
use crate::config::{Config, ConfigError};
use crate::effects::{Effects, Write};
use crate::epoch::MemberChange;
use crate::log::{ClientId, Decision, Entry, ProposalId};
use crate::message::{Envelope, Message, Value};
use crate::proposer::ProposerFaults;
use crate::replica::{AppendStatus, ProposeStatus, Replica};
use crate::state_machine::StateMachine;
use crate::storage::{Storage, StorageError};
use crate::transport::{Peers, Transport};
use crate::validate::InputError;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

/// At most this many ready inputs are folded into one step (one storage write).
const MAX_INPUTS_PER_STEP: usize = 1024;
/// Bound on local (self-addressed) deliveries in one step; a protocol bug must not hang a node.
const MAX_LOCAL_DELIVERIES: usize = 1 << 20;
/// Client commands queued before `propose` callers wait.
const COMMAND_QUEUE: usize = 4096;
/// Decided entries buffered for one reader of the log ([`NodeHandle::subscribe`]).
pub(super) const SUBSCRIBER_BUFFER: usize = 1024;

/// A request from a [`NodeHandle`].
#[derive(Debug)]
pub(crate) enum Command<V> {
    Propose {
        instance: Option<InstanceId>,
        value: V,
        reply: ProposeReply<V>,
    },
    Append {
        /// `None`: a request of the node's own client.
        id: Option<ProposalId>,
        value: V,
        timeout: Duration,
        reply: AppendReply,
    },
    Session {
        reply: oneshot::Sender<ClientId>,
    },
    WaitDecided {
        instance: InstanceId,
        reply: oneshot::Sender<Result<Entry<V>, NodeError>>,
    },
    Subscribe {
        from: InstanceId,
        sink: mpsc::Sender<Result<Decision<V>, NodeError>>,
    },
    Read {
        from: InstanceId,
        limit: usize,
        reply: oneshot::Sender<(Vec<Decision<V>>, InstanceId)>,
    },
    Decisions {
        reply: oneshot::Sender<BTreeMap<InstanceId, Entry<V>>>,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
    /// A linearizable read ([`NodeHandle::query`], [`NodeHandle::read_barrier`]).
    Linearize {
        query: Option<bytes::Bytes>,
        timeout: Duration,
        reply: ReadReply,
    },
    /// A membership change ([`NodeHandle::reconfigure`]).
    Reconfigure {
        change: MemberChange,
        reply: ReconfigReply,
    },
    Shutdown,
}

/// A Paxos node: state machines + storage + transport, driven on tokio.
///
/// Build it with [`Node::new`], run it with [`Node::run`] (inline, e.g. as a turmoil host) or
/// [`Node::spawn`], talk to it through the [`NodeHandle`].
pub struct Node<V, S, T> {
    config: Config,
    storage: S,
    transport: T,
    commands: mpsc::Receiver<Command<V>>,
    seed: u64,
    faults: (AcceptorFaults, ProposerFaults),
    fate: Fate,
    state_machine: Option<Box<dyn StateMachine<V>>>,
    clock_rate: f64,
}

/// A spawned node ([`Node::spawn`]): resolves once the node has stopped and dropped its
/// storage and transport (a RocksDB directory can then be opened again), with `Ok(())` after
/// a requested shutdown or the [`Fatal`] cause of a failure.
#[derive(Debug)]
pub struct NodeTask {
    task: tokio::task::JoinHandle<Result<(), Fatal>>,
}

impl NodeTask {
    /// Stop the node where it is, as a crash would (its pending write is lost, nothing is
    /// flushed). Await the task afterwards to know it is gone.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Future for NodeTask {
    type Output = Result<(), Fatal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task)
            .poll(cx)
            .map(|joined| match joined {
                Ok(result) => result,
                Err(e) if e.is_cancelled() => Err(Fatal::Stopped),
                Err(_) => Err(Fatal::Panicked),
            })
    }
}

impl<V: Value, S: Storage<V>, T: Transport<V>> Node<V, S, T> {
    /// A node and its handle. Nothing runs until [`Node::run`]. `seed` feeds the backoff
    /// jitter: same seed, same run.
    ///
    /// # Errors
    /// An invalid `config`.
    pub fn new(
        config: Config,
        storage: S,
        transport: T,
        seed: u64,
    ) -> Result<(Self, NodeHandle<V>), ConfigError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let fate = Fate::default();
        let handle = NodeHandle {
            id: config.id,
            commands: tx,
            fate: fate.clone(),
        };
        Ok((
            Node {
                config,
                storage,
                transport,
                commands: rx,
                seed,
                faults: Default::default(),
                fate,
                state_machine: None,
                clock_rate: 1.0,
            },
            handle,
        ))
    }

    /// Drive `machine` with this node's log: restored from the node's snapshot at start-up,
    /// then every decided request applied in order, snapshots taken by
    /// [`Config::snapshot_every_entries`] and the log compacted below them (see
    /// [`StateMachine`]). Without one, a node keeps its whole decided log.
    pub fn with_state_machine(mut self, machine: impl StateMachine<V>) -> Self {
        self.state_machine = Some(Box::new(machine));
        self
    }

    /// Run this node's clock (what leases are measured with, [`crate::ReadPolicy::Lease`])
    /// at `rate` times real time: for tests of clock drift (a lease is safe only while the
    /// nodes' clocks disagree by less than its `max_drift`). Rates that are not finite and
    /// positive are ignored.
    pub fn with_clock_rate(mut self, rate: f64) -> Self {
        if rate.is_finite() && rate > 0.0 {
            self.clock_rate = rate;
        }
        self
    }

    /// Break this node's protocol on purpose, to prove that checkers catch it (feature
    /// `testing` only).
    #[cfg(feature = "testing")]
    pub fn with_faults(mut self, acceptor: AcceptorFaults, proposer: ProposerFaults) -> Self {
        self.faults = (acceptor, proposer);
        self
    }

    /// Build and `tokio::spawn` a node; returns its handle and its task, which resolves once
    /// the node has stopped and released its storage.
    ///
    /// # Errors
    /// An invalid `config`.
    pub fn spawn(
        config: Config,
        storage: S,
        transport: T,
        seed: u64,
    ) -> Result<(NodeHandle<V>, NodeTask), ConfigError> {
        let (node, handle) = Node::new(config, storage, transport, seed)?;
        let task = tokio::spawn(node.run());
        Ok((handle, NodeTask { task }))
    }

    /// Load durable state and run until shut down or a fatal error. When it returns, the
    /// storage and the transport have been dropped, and every handle's requests fail with
    /// [`NodeError::Fatal`] carrying the same cause.
    ///
    /// # Errors
    /// The [`Fatal`] cause: storage failed (load or save), the transport closed.
    pub async fn run(self) -> Result<(), Fatal> {
        let Node {
            config,
            storage,
            transport,
            mut commands,
            seed,
            faults,
            fate,
            state_machine,
            clock_rate,
        } = self;
        let id = config.id;
        let mut waiters = Waiters::default();
        let result = serve(
            &config,
            &storage,
            transport,
            &mut commands,
            &mut waiters,
            Boot {
                seed,
                faults,
                state_machine,
                clock: Clock::start(clock_rate),
            },
        )
        .await;
        match &result {
            Ok(()) => tracing::info!(node = %id, "node stopped"),
            Err(e) => tracing::error!(node = %id, error = %e, "node failed"),
        }
        // The cause first: a handle whose request is dropped below reads it at once.
        fate.set(result.clone().err().unwrap_or(Fatal::Stopped));
        drop(waiters);
        drop(commands);
        drop(storage);
        result
    }
}

/// What a node starts with besides its backends.
struct Boot<V> {
    seed: u64,
    faults: (AcceptorFaults, ProposerFaults),
    state_machine: Option<Box<dyn StateMachine<V>>>,
    clock: Clock,
}

/// The node loop, until shutdown (`Ok`) or a fatal error.
async fn serve<V: Value, S: Storage<V>, T: Transport<V>>(
    config: &Config,
    storage: &S,
    mut transport: T,
    commands: &mut mpsc::Receiver<Command<V>>,
    waiters: &mut Waiters<V>,
    boot: Boot<V>,
) -> Result<(), Fatal> {
    let Boot {
        seed,
        faults,
        state_machine,
        clock,
    } = boot;
    let id = config.id;
    let state = storage.load().await?;
    let mut replica = Replica::assemble(config, state, seed)
        .map_err(|e| StorageError::Corrupt {
            key: "snapshot".into(),
            reason: e.to_string(),
        })?
        .break_on_purpose(faults);
    let mut applier = state_machine
        .map(|m| Applier::start(m, config, &mut replica))
        .transpose()?;
    // This boot's number is durable before anything of this boot leaves the node.
    let mut out = Effects::new();
    replica.observe_time(clock.now());
    replica.start(&mut out);
    save(storage, id, &mut out.writes).await?;
    // The transport talks to the members of the epoch the log is in, not to whom it was
    // configured with: a restarted node may be epochs further on.
    set_peers(&mut transport, id, &replica.peers()).await;
    tracing::info!(node = %id, first_undecided = %replica.learner().first_undecided(), "node started");
    let mut ticker = tokio::time::interval(config.tick_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut remote: Vec<Envelope<V>> = Vec::new();
    // Writes not yet saved: this step's, and decision records waiting for a later save.
    let mut unsaved: Vec<Write<V>> = Vec::new();
    // Whether a save happened since the last tick: decision records wait for one, and are
    // saved on their own only once a whole tick passed without any (the node is idle).
    let mut saved_this_tick = false;
    let mut clients_open = true;
    let mut leader = replica.leader();

    loop {
        // 1. Wait for one input. `biased` keeps the choice deterministic under turmoil; the
        //    tick goes first so a busy network can never starve timeouts and heartbeats.
        let mut idle_tick = false;
        let mut encoded: Option<Encoded> = None;
        let stop = tokio::select! {
            biased;
            _ = ticker.tick() => {
                replica.observe_time(clock.now());
                replica.tick(&mut out);
                let now = Instant::now();
                for expired in waiters.expire(now) {
                    replica.cancel(expired);
                }
                for expired in waiters.expire_reads(now) {
                    replica.cancel_read(expired);
                }
                idle_tick = !std::mem::take(&mut saved_this_tick);
                false
            }
            cmd = commands.recv(), if clients_open => match cmd {
                Some(cmd) => {
                    let backlog = || commands.len() + transport.backlog();
                    replica.observe_time(clock.now());
                    on_command(&mut replica, cmd, &mut out, waiters, backlog)
                }
                None => { clients_open = false; false }
            },
            msg = transport.recv() => {
                let (from, msg) = msg?;
                replica.observe_time(clock.now());
                deliver(&mut replica, from, msg, &mut out);
                false
            }
            done = async { Some(applier.as_mut()?.encoded().await) },
                if applier.is_some() => {
                encoded = done;
                false
            }
        };
        if let Some(done) = encoded.take() {
            done.compact(&mut replica, &mut unsaved);
        }
        // 2. Fold every input that is already waiting into this step (group commit).
        let mut stop = stop;
        for _ in 0..MAX_INPUTS_PER_STEP {
            if stop {
                break;
            }
            if clients_open && let Ok(cmd) = commands.try_recv() {
                // Each input reads the clock at its arrival: a lease checked against a reading
                // from before a read arrived could look valid when it no longer is.
                replica.observe_time(clock.now());
                stop |= on_command(&mut replica, cmd, &mut out, waiters, || {
                    commands.len() + transport.backlog()
                });
                continue;
            }
            match transport.recv().now_or_never() {
                Some(Ok((from, msg))) => {
                    replica.observe_time(clock.now());
                    deliver(&mut replica, from, msg, &mut out);
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        replica.end_step(&mut out);
        // 3. Deliver self-addressed messages now. What they trigger (our acceptor's reply to
        //    our proposer, say) stays in this step and waits for its save like the rest.
        let mut pending = std::mem::take(&mut out.messages);
        let mut local = 0;
        while !pending.is_empty() && local <= MAX_LOCAL_DELIVERIES {
            for env in pending.drain(..) {
                if env.to == id {
                    deliver(&mut replica, id, env.message, &mut out);
                    local += 1;
                } else {
                    remote.push(env);
                }
            }
            std::mem::swap(&mut pending, &mut out.messages);
        }
        if !pending.is_empty() {
            tracing::error!(node = %id, "local delivery loop did not settle; dropping the rest");
        }
        // A new epoch: its members are the transport's peers before anything is sent to them.
        if !out.epochs.is_empty() {
            set_peers(&mut transport, id, &replica.peers()).await;
        }
        // 4. Durable before anything leaves, with the two exceptions of `Step`.
        unsaved.append(&mut out.writes);
        let step = Step::plan(std::mem::take(&mut remote), &unsaved, idle_tick, stop);
        for env in step.early {
            send(&transport, id, env).await;
        }
        if step.save {
            save(storage, id, &mut unsaved).await?;
            saved_this_tick = true;
        }
        // 5. Send and answer.
        for env in step.late {
            send(&transport, id, env).await;
        }
        // Applied before anyone is answered: an answer carries the request's output.
        let outputs = match &mut applier {
            Some(applier) => applier.after_step(&mut replica, &out)?,
            None => Default::default(),
        };
        waiters.answer(&out, faults.1.ack_before_prefix, &outputs);
        waiters.answer_reconfig(&out);
        waiters.answer_reads(&out, replica.applied(), |q| {
            applier.as_ref().map(|a| a.query(q)).unwrap_or_default()
        });
        waiters.feed(replica.learner().log_start(), |from, limit| {
            replica.applied_log(from, limit)
        });
        if let Some(applier) = &mut applier {
            applier.snapshot_if_due(&mut replica, &mut unsaved);
        }
        if replica.leader() != leader {
            leader = replica.leader();
            tracing::info!(node = %id, leader = ?leader, ballot = %replica.proposer().ballot(), "leader changed");
        }
        out.clear();
        if stop {
            return Ok(());
        }
    }
}

/// Make `writes` durable and empty the list; a failure stops the node.
async fn save<V: Value, S: Storage<V>>(
    storage: &S,
    id: NodeId,
    writes: &mut Vec<Write<V>>,
) -> Result<(), Fatal> {
    if writes.is_empty() {
        return Ok(());
    }
    if let Err(e) = storage.save(writes).await {
        tracing::error!(node = %id, error = %e, "storage write failed; stopping node");
        return Err(e.into());
    }
    writes.clear();
    Ok(())
}

/// Hand one message to the replica; one that no correct member sends is logged and dropped.
fn deliver<V: Value>(
    replica: &mut Replica<V>,
    from: NodeId,
    message: Message<V>,
    out: &mut Effects<V>,
) {
    let kind = message.kind();
    if let Err(e) = replica.on_message(from, message, out) {
        tracing::warn!(node = %replica.id(), %from, kind, error = %e, "message rejected");
    }
}

/// Make `peers` the transport's peers; a failure is logged (the protocol ignores non-members
/// on its own, and a peer it cannot reach is one more silent node).
async fn set_peers<V: Value, T: Transport<V>>(transport: &mut T, id: NodeId, peers: &Peers) {
    tracing::debug!(node = %id, peers = ?peers.keys().collect::<Vec<_>>(), "transport peers");
    if let Err(e) = transport.set_peers(peers).await {
        tracing::warn!(node = %id, error = %e, "transport could not take the new peers");
    }
}

/// Hand `env` to the transport; a failed send is logged (Paxos retries on its own timers).
async fn send<V: Value, T: Transport<V>>(transport: &T, id: NodeId, env: Envelope<V>) {
    if let Err(e) = transport.send(env.to, env.message).await {
        tracing::debug!(node = %id, to = %env.to, error = %e, "send failed");
    }
}

/// Apply one client command; returns true on shutdown.
fn on_command<V: Value>(
    replica: &mut Replica<V>,
    cmd: Command<V>,
    out: &mut Effects<V>,
    waiters: &mut Waiters<V>,
    backlog: impl FnOnce() -> usize,
) -> bool {
    match cmd {
        Command::Propose {
            instance,
            value,
            reply,
        } => match replica.propose(instance, value, out) {
            ProposeStatus::Decided(entry) => {
                let _ = reply.send(Ok((instance.unwrap_or_default(), entry)));
            }
            ProposeStatus::Rejected(e) => {
                let _ = reply.send(Err(NodeError::Rejected(e)));
            }
            ProposeStatus::Proposing(i) => {
                let id = replica.last_own_request();
                waiters.proposal_at(i, id, reply);
            }
            ProposeStatus::Forwarded(id) => waiters.proposal_applied(id, reply),
        },
        Command::Append {
            id,
            value,
            timeout,
            reply,
        } => {
            let id = id.unwrap_or_else(|| replica.next_own_request());
            match replica.append(id, value, out) {
                AppendStatus::Applied(at) => {
                    let output = replica.output_of(id).cloned().unwrap_or_default();
                    let _ = reply.send(Ok(Reply {
                        instance: at,
                        output,
                    }));
                }
                AppendStatus::Pending => waiters.append(id, Instant::now() + timeout, reply),
            }
        }
        Command::Session { reply } => {
            if let Some(client) = replica.mint_session() {
                let _ = reply.send(client);
            }
        }
        Command::WaitDecided { instance, reply } => match replica.learner().decided(instance) {
            Some(entry) => {
                let _ = reply.send(Ok(entry.clone()));
            }
            // Decided, and compacted into the snapshot: its entry is no longer known here.
            None if instance < replica.learner().first_undecided() => {
                let _ = reply.send(Err(NodeError::Rejected(InputError::Compacted {
                    instance,
                    log_start: replica.learner().log_start(),
                })));
            }
            None => waiters.decision(instance, reply),
        },
        Command::Subscribe { from, sink } => waiters.subscribe(from, sink),
        Command::Read { from, limit, reply } => {
            let _ = reply.send((replica.applied_log(from, limit), replica.applied()));
        }
        Command::Decisions { reply } => {
            let _ = reply.send(replica.learner().decisions().clone());
        }
        Command::Status { reply } => {
            let _ = reply.send(NodeStatus {
                id: replica.id(),
                leader: replica.leader(),
                ballot: replica.proposer().ballot(),
                promised: replica.promised(),
                first_undecided: replica.learner().first_undecided(),
                applied: replica.applied(),
                log_start: replica.learner().log_start(),
                receiving_snapshot: replica.receiving_snapshot(),
                decided: replica.learner().decisions().len(),
                backlog: backlog(),
                membership: replica.membership().clone(),
            });
        }
        Command::Linearize {
            query,
            timeout,
            reply,
        } => {
            let id = replica.read(out);
            waiters.read(id, query, Instant::now() + timeout, reply);
        }
        Command::Reconfigure { change, reply } => match replica.reconfigure(&change, out) {
            Ok(_) => waiters.reconfigure(reply),
            Err(e) => {
                let _ = reply.send(Err(NodeError::Reconfig(e)));
            }
        },
        Command::Shutdown => return true,
    }
    false
}
