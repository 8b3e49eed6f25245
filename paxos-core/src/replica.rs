//! A node's roles composed: acceptor, proposer, learner and (optionally) leader detector,
//! plus the node's clients: their requests, routed to the leader, and the applied log.

use crate::acceptor::{Acceptor, AcceptorFaults};
use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::{Config, ConfigError, LeaderMode};
use crate::effects::{Effects, Restored, Write};
use crate::election::Election;
use crate::epoch::{Epochs, MemberChange, Membership, ReconfigError};
use crate::learner::Learner;
use crate::log::{ClientId, Decision, Entry, ProposalId};
use crate::message::{Message, Value};
use crate::proposer::{Phase, Proposer, ProposerFaults};
use crate::read::{Asker, OwnReads, ReadId, ReadIndex};
use crate::session::Sessions;
use crate::snapshot::{Snapshot, SnapshotError, SnapshotMeta, decode_payload, encode_payload};
use crate::storage::DurableState;
use crate::transfer::{Piece, Receiver, piece};
use crate::validate::{InputError, check_instance, check_message, check_sender};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a node could not be built from its configuration and durable state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The stored snapshot cannot be read by this build.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Why [`Replica::compact`] took no snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The point is not above the snapshot kept (nothing new was applied since, or a newer
    /// snapshot was installed meanwhile): snapshots never go back.
    #[error("a snapshot below {index} is not newer than the one kept (below {kept})")]
    NotNewer {
        /// The point's index.
        index: InstanceId,
        /// The kept snapshot's index.
        kept: InstanceId,
    },
}

/// A point of the applied log a snapshot can be taken at ([`Replica::snapshot_point`]): every
/// instance below `index` applied, with the sessions as they were there. The state machine's
/// state at the same point goes with it into [`Replica::compact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPoint {
    index: InstanceId,
    sessions: Sessions,
    epochs: Epochs,
}

impl SnapshotPoint {
    /// Every instance below this is in the snapshot.
    pub fn index(&self) -> InstanceId {
        self.index
    }
}

/// What became of a client's proposal ([`Replica::propose`]), as far as this node can tell at
/// once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeStatus<V> {
    /// The instance was already decided with this entry.
    Decided(Entry<V>),
    /// The proposal is under way in this instance; its decision will appear in
    /// [`Effects::decided`].
    Proposing(InstanceId),
    /// The proposal went to the leader, which picks the instance; it will appear in
    /// [`Effects::applied`] with this id.
    Forwarded(ProposalId),
    /// The request itself is invalid (an instance beyond [`InstanceId::MAX`], or too far
    /// above the decided prefix).
    Rejected(InputError),
}

/// What became of a request ([`Replica::append`]) at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendStatus {
    /// Already applied, at this instance (a retry of a request that made it).
    Applied(InstanceId),
    /// Under way: it will appear in [`Effects::applied`] (or, abandoned, in
    /// [`Effects::abandoned`]).
    Pending,
}

/// A request of this node's own clients, until it is answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Own<V> {
    value: V,
    /// The instance the client pinned it to (`propose_at`), if any.
    at: Option<InstanceId>,
    /// Where it went: this node's proposer, or the leader it was forwarded to.
    sent_to: NodeId,
    /// When (tick) it was last sent there.
    sent_at: u64,
}

/// One node's protocol state.
///
/// Still pure: [`Replica`] routes each input to the roles it concerns and wires their outputs
/// together (a chosen value reaches the learner; a decision stops the proposer retrying). The
/// runtime, the in-process pump and the model checker all drive this one type.
///
/// Clients' requests enter here. Each carries a [`ProposalId`]; on the leader (or in
/// leaderless mode) it goes to this node's proposer, elsewhere it is forwarded to the leader
/// this node trusts, and sent again whenever that leader changes or stays silent for a
/// phase timeout. The decided prefix is applied in instance order through [`Sessions`], so a
/// request decided twice is applied once, and a request is answered from the applied log
/// only: in log order, after every instance before it is decided.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Replica<V> {
    id: NodeId,
    /// The configuration the node was started with: each epoch's roles are built from it
    /// with that epoch's members ([`Membership::apply_to`]).
    base: Config,
    /// The epochs, following the applied log (see `epoch.rs`).
    epochs: Epochs,
    /// This node's own membership change in flight: the instance it was proposed in, and
    /// the configuration it names.
    change: Option<(InstanceId, Membership)>,
    /// Feeds the backoff jitter of each epoch's proposer.
    seed: u64,
    /// The fault switches, for the roles of later epochs too.
    faults: (AcceptorFaults, ProposerFaults),
    acceptor: Option<Acceptor<V>>,
    proposer: Proposer<V>,
    learner: Learner<V>,
    election: Option<Election>,
    was_leader: bool,
    /// The round this boot reserved ([`Replica::start`]); `None` before.
    boot: Option<u64>,
    /// Sessions minted in this boot (0 is the node's own client's).
    sessions_minted: u64,
    /// The node's own client's next request number.
    next_seq: u64,
    /// Requests of this node's clients not yet answered.
    own: BTreeMap<ProposalId, Own<V>>,
    /// Requests applied so far (the replicated dedupe state).
    sessions: Sessions,
    /// Every instance below this is applied.
    applied: InstanceId,
    /// How far above the decided prefix a client may pin a proposal.
    max_ahead: u64,
    /// A forwarded request the leader has not decided within this many ticks is sent again.
    forward_every: u64,
    /// The latest snapshot this node holds (taken here or installed): what a peer that needs
    /// compacted instances is sent.
    snapshot: Option<Snapshot>,
    /// Snapshots coming from peers.
    receiver: Receiver,
    chunk_bytes: usize,
    keep_entries: u64,
    /// [`Config::session_window_entries`], for the sessions a snapshot brings.
    session_window: u64,
    /// The leader's side of ReadIndex: reads asking this node for a read index.
    read_index: ReadIndex,
    /// Reads of this node's clients.
    reads: OwnReads,
    /// Fault switch: answer reads at once from the local state.
    reads_without_barrier: bool,
    /// The latest clock reading ([`Replica::observe_time`]), for leases.
    clock: Duration,
    now: u64,
}

impl<V: Value> Replica<V> {
    /// Rebuild a node from its durable state; `seed` feeds its backoff jitter.
    ///
    /// A node with a stored snapshot resumes from it: its sessions come from the snapshot,
    /// every instance below its index counts as applied, and the decided entries kept above
    /// are applied on top (the state machine restores [`Replica::snapshot`] and replays
    /// [`Replica::applied_log`] from its index).
    ///
    /// # Errors
    /// An invalid `config`; a stored snapshot this build cannot decode.
    pub fn new(config: &Config, state: DurableState<V>, seed: u64) -> Result<Self, StartError> {
        config.validate()?;
        Ok(Self::assemble(config, state, seed)?)
    }

    /// [`Replica::new`] for a `config` already validated (the runtime checks it when the node
    /// is built, before anything runs).
    pub(crate) fn assemble(
        config: &Config,
        state: DurableState<V>,
        seed: u64,
    ) -> Result<Self, SnapshotError> {
        // Rule: never reuse a ballot. Start above every round used (persisted) or seen (promised).
        let max_round = state.proposer_round.max(state.promised.round);
        let (sessions, snapshot_index, epochs) = match &state.snapshot {
            Some(s) => {
                let (sessions, _, epochs) = decode_payload(s)?;
                (sessions, s.meta.index, epochs)
            }
            None => (Sessions::new(), InstanceId(0), None),
        };
        let mut epochs = epochs.unwrap_or_else(|| Epochs::initial(config));
        let mut sessions = sessions.with_window(config.session_window_entries);
        let mut learner = Learner::new(config, state.decided);
        learner.skip_to(snapshot_index);
        learner.compact_below(state.log_start);
        // The proposer starts at what the learner recovered, not at instance 0, so a restarted
        // leader's phase 1 asks only for what it does not know.
        let frontier = learner.first_undecided();
        let decided_above = learner
            .decisions()
            .range(frontier..)
            .map(|(i, _)| *i)
            .collect();
        // The sessions and the epochs are functions of the decided prefix: replay what the
        // snapshot (if any) does not cover.
        for (&instance, entry) in learner.decisions().range(snapshot_index..frontier) {
            sessions.apply(instance, entry);
            epochs.on_applied(instance, entry);
            epochs.enter_due(instance.next());
        }
        sessions.forget_flags_below(state.log_start);
        // Every role is built for the epoch in force, from that epoch's members.
        let base = config.clone();
        let epoch = epochs.current().clone();
        let config = &epoch.apply_to(config);
        let member = epoch.contains(config.id);
        learner.reconfigure(config, epoch.epoch);
        let mut proposer = Proposer::new(config, max_round, seed, frontier, decided_above)
            .in_epoch(epoch.epoch, epochs.start());
        if let Some((end, _)) = epochs.next() {
            proposer.end_epoch_at(*end, &mut Effects::new());
        }
        let acceptor = (member && config.acceptors.contains(&config.id)).then(|| {
            let mut a = Acceptor::new(config, state.promised, state.accepted);
            a.compact_below(state.log_start);
            a
        });
        let elected = member && config.leader_mode == LeaderMode::Elected;
        Ok(Replica {
            id: config.id,
            base,
            epochs,
            change: None,
            seed,
            faults: Default::default(),
            acceptor,
            proposer,
            learner,
            election: elected.then(|| Election::new(config)),
            was_leader: false,
            boot: None,
            sessions_minted: 0,
            next_seq: 0,
            own: BTreeMap::new(),
            sessions,
            applied: frontier,
            max_ahead: config.max_instances_ahead,
            forward_every: config.phase_timeout_ticks.saturating_mul(2).max(1),
            snapshot: state.snapshot,
            receiver: Receiver::new(config.max_snapshot_bytes, config.phase_timeout_ticks),
            chunk_bytes: config.snapshot_chunk_bytes.max(1),
            keep_entries: config.snapshot_keep_entries,
            session_window: config.session_window_entries,
            read_index: ReadIndex::for_config(config),
            clock: Duration::ZERO,
            reads: OwnReads::default(),
            reads_without_barrier: false,
            now: 0,
        })
    }

    /// Break this node on purpose, to prove a checker catches it (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn with_faults(self, acceptor: AcceptorFaults, proposer: ProposerFaults) -> Self {
        self.break_on_purpose((acceptor, proposer))
    }

    /// [`Replica::with_faults`] for the runtime, which holds the switches in every build (they
    /// can be turned on only where `testing` exports them).
    pub(crate) fn break_on_purpose(mut self, faults: (AcceptorFaults, ProposerFaults)) -> Self {
        self.faults = faults;
        self.acceptor = self.acceptor.map(|a| a.with_faults(faults.0));
        self.proposer = self.proposer.with_faults(faults.1);
        self.reads_without_barrier = faults.1.read_without_barrier;
        self
    }

    /// Begin this boot: reserve a round as the boot's number, so every request id minted
    /// from now on is new forever ([`ClientId`]). Its write must be durable before anything
    /// of this boot leaves the node; the runtime saves it before it serves.
    pub fn start(&mut self, out: &mut Effects<V>) {
        if self.boot.is_none() {
            self.boot = self.proposer.reserve_round(out);
            if let Some(a) = &mut self.acceptor {
                a.boot();
            }
        }
    }

    /// The clock now, from the runtime before each input (monotonic: an earlier reading is
    /// ignored). Only leases ([`crate::ReadPolicy::Lease`]) read it; everything else counts
    /// ticks. Read it at (or after) the input's arrival, never before: a lease checked
    /// against an old reading could look valid when it is not.
    pub fn observe_time(&mut self, clock: Duration) {
        self.clock = self.clock.max(clock);
        if let Some(a) = &mut self.acceptor {
            a.observe_time(clock);
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The learner (decisions known here).
    pub fn learner(&self) -> &Learner<V> {
        &self.learner
    }

    /// The proposer.
    pub fn proposer(&self) -> &Proposer<V> {
        &self.proposer
    }

    /// The acceptor, if this node is one.
    pub fn acceptor(&self) -> Option<&Acceptor<V>> {
        self.acceptor.as_ref()
    }

    /// The trusted leader (leader mode), or `None` when leaderless.
    pub fn leader(&self) -> Option<NodeId> {
        self.election.as_ref().map(Election::leader)
    }

    /// The promised ballot of this node's acceptor ([`Ballot::ZERO`] if not an acceptor).
    pub fn promised(&self) -> Ballot {
        self.acceptor
            .as_ref()
            .map_or(Ballot::ZERO, Acceptor::promised)
    }

    /// Every instance below this is applied (decided, in order, through the sessions).
    pub fn applied(&self) -> InstanceId {
        self.applied
    }

    /// Where request `id` was applied, if it was.
    pub fn applied_at(&self, id: ProposalId) -> Option<InstanceId> {
        self.sessions.applied_at(id)
    }

    /// Record the output of request `id`, which the state machine just applied (a runtime
    /// calls this after every first application in [`Effects::applied`], before the next
    /// step): retries are answered with it, and snapshots carry it.
    pub fn record_output(&mut self, id: ProposalId, output: Bytes) {
        self.sessions.set_output(id, output);
    }

    /// The output recorded for request `id`, while the sessions remember it.
    pub fn output_of(&self, id: ProposalId) -> Option<&Bytes> {
        self.sessions.output(id)
    }

    /// The applied log from `from` on, in instance order (at most `limit` slots).
    pub fn applied_log(&self, from: InstanceId, limit: usize) -> Vec<Decision<V>> {
        self.learner
            .decisions()
            .range(from..self.applied)
            .take(limit)
            .map(|(&instance, entry)| Decision {
                instance,
                entry: entry.clone(),
                applied: self.sessions.applied_as(instance, entry),
            })
            .collect()
    }

    /// The latest snapshot this node holds (taken here, installed from a peer, or restored at
    /// start-up), if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The state machine bytes of the snapshot this node holds, and what it covers: what a
    /// state machine restores at start-up before replaying [`Replica::applied_log`] from
    /// `meta.index`.
    pub fn snapshot_state(&self) -> Option<(SnapshotMeta, Bytes)> {
        let s = self.snapshot.as_ref()?;
        // Decoded once already (at start-up or install): it cannot fail now.
        decode_payload(s).ok().map(|(_, state, _)| (s.meta, state))
    }

    /// The snapshot being received from a peer, if any.
    pub fn receiving_snapshot(&self) -> Option<SnapshotMeta> {
        self.receiver.receiving()
    }

    /// Where a snapshot of this node would be taken now: at the applied index, with the
    /// sessions there. The state machine captures its own state at the same point (before it
    /// applies anything further) and hands it to [`Replica::compact`], whenever it has encoded
    /// it; the node carries on meanwhile.
    pub fn snapshot_point(&self) -> SnapshotPoint {
        SnapshotPoint {
            index: self.applied,
            sessions: self.sessions.clone(),
            epochs: self.epochs.clone(),
        }
    }

    /// Keep a snapshot at `point` holding the state machine's `state`, and drop the log below
    /// `point.index` minus [`Config::snapshot_keep_entries`]: in memory now, durably in this
    /// step's save ([`Write::Snapshot`] and [`Write::TruncateBelow`], one atomic step).
    /// Bounded by what this node *applied*, never by what it merely decided (OmniPaxos #131),
    /// and never waits for other nodes: one that needs what was dropped is sent the snapshot.
    ///
    /// # Errors
    /// [`CompactError::NotNewer`] if a snapshot at or above the point is kept already.
    pub fn compact(
        &mut self,
        point: SnapshotPoint,
        state: Bytes,
        out: &mut Effects<V>,
    ) -> Result<SnapshotMeta, CompactError> {
        let kept = self
            .snapshot
            .as_ref()
            .map_or(InstanceId(0), |s| s.meta.index);
        if point.index <= kept {
            return Err(CompactError::NotNewer {
                index: point.index,
                kept,
            });
        }
        let ballot = self.promised().max(self.proposer.ballot());
        let snapshot = Snapshot::new(
            point.index,
            ballot,
            encode_payload(&point.sessions, &state, &point.epochs),
        );
        let meta = snapshot.meta;
        let start = InstanceId(point.index.0.saturating_sub(self.keep_entries));
        out.write(Write::Snapshot(snapshot.clone()));
        if start > self.learner.log_start() {
            out.write(Write::TruncateBelow(start));
            self.learner.compact_below(start);
            self.sessions.forget_flags_below(self.learner.log_start());
            if let Some(a) = &mut self.acceptor {
                a.compact_below(start);
            }
        }
        tracing::info!(node = %self.id, %meta, log_start = %self.learner.log_start(), "snapshot taken");
        self.snapshot = Some(snapshot);
        Ok(meta)
    }

    /// A complete snapshot from a peer: install it, in one atomic save, if it is ahead of
    /// what this node applied. Its sessions replace this node's; every instance below its
    /// index counts as applied and decided; the log below it is dropped; the state machine is
    /// told to restore ([`Effects::restored`]; after whatever an earlier install of the same
    /// step applied), and decisions kept above it are applied next.
    fn install(&mut self, snapshot: Snapshot, out: &mut Effects<V>) {
        let index = snapshot.meta.index;
        if index <= self.applied {
            return;
        }
        let (sessions, state, epochs) = match decode_payload(&snapshot) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(node = %self.id, error = %e, "received snapshot dropped");
                return;
            }
        };
        out.write(Write::Snapshot(snapshot.clone()));
        out.write(Write::TruncateBelow(index));
        self.learner.skip_to(index);
        self.learner.compact_below(index);
        if let Some(a) = &mut self.acceptor {
            a.compact_below(index);
        }
        self.proposer.on_compacted(index, out);
        self.sessions = sessions.with_window(self.session_window);
        self.sessions.forget_flags_below(index);
        self.applied = index;
        // The membership is part of the state: a snapshot taken in a later epoch (or after a
        // change was decided) moves this node there.
        let before = self.epochs.current().epoch;
        if let Some(epochs) = epochs
            && self.epochs.adopt(epochs)
        {
            if self.epochs.current().epoch != before {
                self.enter_epoch(out);
            }
            if let Some((end, _)) = self.epochs.next() {
                self.proposer.end_epoch_at(*end, out);
            }
        }
        // This node's clients' requests the snapshot shows applied are answered; one pinned
        // below it was decided with an entry no longer known here.
        let mut requests = Vec::new();
        let mut below = Vec::new();
        for (&id, own) in &self.own {
            if let Some(at) = self.sessions.applied_at(id) {
                let value = own.value.clone();
                requests.push((at, Entry::Value { id, value }));
            } else if own.at.is_some_and(|at| at < index) {
                below.push(id);
            }
        }
        for (_, entry) in &requests {
            if let Some(id) = entry.id() {
                self.own.remove(&id);
            }
        }
        for id in below {
            self.own.remove(&id);
            out.abandoned.push((id, true));
        }
        tracing::info!(node = %self.id, meta = %snapshot.meta, "snapshot installed");
        out.restored.push(Restored {
            meta: snapshot.meta,
            state,
            requests,
            after: out.applied.len(),
        });
        self.snapshot = Some(snapshot);
        self.apply_decided(out);
    }

    /// Send `to` the piece of the kept snapshot at `offset` (from the start if `index` is not
    /// the kept one's: the peer restarts on it if it is newer than what it has).
    fn serve_snapshot(&self, to: NodeId, index: InstanceId, offset: u64, out: &mut Effects<V>) {
        if let Some(s) = &self.snapshot {
            let offset = if s.meta.index == index { offset } else { 0 };
            out.send(to, piece(s, offset, self.chunk_bytes));
        }
    }

    /// A new client session of this node: its requests are `ProposalId { client, seq }` for
    /// the client's own `seq`s. `None` before [`Replica::start`].
    pub fn mint_session(&mut self) -> Option<ClientId> {
        let boot = self.boot?;
        self.sessions_minted += 1;
        Some(ClientId {
            node: self.id,
            boot,
            session: self.sessions_minted,
        })
    }

    /// The next request id of the node's own client (session 0 of this boot).
    pub(crate) fn next_own_request(&mut self) -> ProposalId {
        self.next_seq += 1;
        self.last_own_request()
    }

    /// The request id [`Replica::next_own_request`] returned last.
    pub(crate) fn last_own_request(&self) -> ProposalId {
        ProposalId {
            client: ClientId {
                node: self.id,
                boot: self.boot.unwrap_or(0),
                session: 0,
            },
            seq: self.next_seq,
        }
    }

    /// A client proposes `value` in `instance` (Elixir's `propose_at`: the instance ends up
    /// decided with *some* entry), or in the next instance free (Go style).
    pub fn propose(
        &mut self,
        instance: Option<InstanceId>,
        value: V,
        out: &mut Effects<V>,
    ) -> ProposeStatus<V> {
        if let Some(i) = instance {
            if let Err(e) = check_instance(i) {
                return ProposeStatus::Rejected(e);
            }
            if let Some(entry) = self.learner.decided(i) {
                return ProposeStatus::Decided(entry.clone());
            }
            if i < self.learner.first_undecided() {
                return ProposeStatus::Rejected(InputError::Compacted {
                    instance: i,
                    log_start: self.learner.log_start(),
                });
            }
            if i.0
                > self
                    .learner
                    .first_undecided()
                    .0
                    .saturating_add(self.max_ahead)
            {
                return ProposeStatus::Rejected(InputError::TooFarAhead {
                    instance: i,
                    limit: self.max_ahead,
                });
            }
        }
        let id = self.next_own_request();
        let instance = match instance {
            Some(i) => Some(i),
            // Go style on the proposer itself: the instance is ours to choose now.
            None if self.proposes_here() => Some(
                self.proposer
                    .next_free_instance(self.learner.next_after_decided()),
            ),
            None => None,
        };
        self.own.insert(
            id,
            Own {
                value: value.clone(),
                at: instance,
                sent_to: self.id,
                sent_at: self.now,
            },
        );
        self.route(id, out);
        match instance {
            Some(i) => ProposeStatus::Proposing(i),
            None => ProposeStatus::Forwarded(id),
        }
    }

    /// A client asks for request `id` (with `value`) to be in the log once, in the next
    /// instance free. Retrying with the same id is safe: a request applied already is
    /// answered from the sessions, and one decided twice is applied once.
    pub fn append(&mut self, id: ProposalId, value: V, out: &mut Effects<V>) -> AppendStatus {
        if let Some(at) = self.sessions.applied_at(id) {
            return AppendStatus::Applied(at);
        }
        self.own.insert(
            id,
            Own {
                value,
                at: None,
                sent_to: self.id,
                sent_at: self.now,
            },
        );
        self.route(id, out);
        AppendStatus::Pending
    }

    /// Forget request `id` of this node's clients (its caller gave up); it may still be
    /// decided, and is then applied as any other.
    pub fn cancel(&mut self, id: ProposalId) {
        self.own.remove(&id);
    }

    /// A linearizable read of this node's clients: it appears in [`Effects::reads`] once this
    /// node has applied every instance below a read index that the leader confirmed with a
    /// quorum after this call (ReadIndex; see `read.rs`). Answer it then from the state
    /// machine: the state holds every write acknowledged before the read began. A read is
    /// asked of the leader again when the leader changes or stays silent; nothing else ends
    /// it but [`Replica::cancel_read`].
    pub fn read(&mut self, out: &mut Effects<V>) -> ReadId {
        let id = self.reads.mint();
        if self.reads_without_barrier {
            out.reads.push((id, self.applied));
            return id;
        }
        self.route_read(id, out);
        self.settle_reads(out);
        id
    }

    /// Forget read `id` (its caller gave up).
    pub fn cancel_read(&mut self, id: ReadId) {
        self.reads.cancel(id);
    }

    /// Reads of this node's clients not answered yet.
    pub fn reads_pending(&self) -> usize {
        self.reads.len()
    }

    /// Ask for read `id`'s index where it belongs now: this node's own ReadIndex if it
    /// proposes, else the leader it trusts (none known: asked again on a later tick).
    fn route_read(&mut self, id: ReadId, out: &mut Effects<V>) {
        if self.proposes_here() {
            self.reads.asked(id, self.id, self.now);
            self.read_index.ask(Asker::Local(id));
        } else if let Some(leader) = self.leader() {
            self.reads.asked(id, leader, self.now);
            out.send(leader, Message::ReadIndex { id });
        }
    }

    /// Start a ReadIndex round if reads wait and this node leads; hand out the read indexes
    /// confirmed; answer the reads whose index is applied.
    fn settle_reads(&mut self, out: &mut Effects<V>) {
        // Leaderless (or a leader before its first tick, or back from a backoff with nothing
        // else to do): reads need a ballot as much as writes do.
        if self.read_index.asking() > 0
            && self.proposes_here()
            && matches!(self.proposer.phase(), Phase::Idle)
        {
            self.proposer.start_phase1(out);
        }
        let leading = self.proposer.read_frontier();
        let self_ok = match (&self.acceptor, leading) {
            (Some(a), Some((ballot, _))) => a.promised() <= ballot,
            _ => false,
        };
        let (confirmed, sent) = self
            .read_index
            .poll(leading, self_ok, self.now, self.clock, out);
        if sent
            && self_ok
            && let (Some(a), Some((ballot, _))) = (&mut self.acceptor, leading)
        {
            a.grant(ballot);
        }
        self.hand_out(confirmed, out);
        out.reads.extend(self.reads.ready(self.applied));
    }

    fn hand_out(&mut self, confirmed: Vec<(Asker, InstanceId)>, out: &mut Effects<V>) {
        for (asker, index) in confirmed {
            match asker {
                Asker::Local(id) => self.reads.indexed(id, index),
                Asker::Peer(peer, id) => out.send(peer, Message::ReadAt { id, index }),
            }
        }
    }

    /// True if requests go to this node's own proposer (leaderless, or the leader).
    fn proposes_here(&self) -> bool {
        self.epochs.current().contains(self.id)
            && self.election.as_ref().is_none_or(Election::is_leader)
    }

    /// Send request `id` of this node's clients where it belongs now.
    fn route(&mut self, id: ProposalId, out: &mut Effects<V>) {
        let here = self.proposes_here();
        let target = self.leader().filter(|_| !here).unwrap_or(self.id);
        let Some(own) = self.own.get_mut(&id) else {
            return;
        };
        own.sent_to = target;
        own.sent_at = self.now;
        let (value, at) = (own.value.clone(), own.at);
        if target != self.id {
            tracing::debug!(node = %self.id, %id, leader = %target, "forwarding to the leader");
            out.send(target, Message::Forward { id, value, at });
            return;
        }
        match at {
            Some(at) => self
                .proposer
                .propose_at(at, Entry::Value { id, value }, out),
            None => self.proposer.append(id, value, out),
        }
    }

    /// A peer forwarded its client's request: propose it if this node leads (otherwise the
    /// peer sends it again to whoever does).
    fn on_forward(
        &mut self,
        id: ProposalId,
        value: V,
        at: Option<InstanceId>,
        out: &mut Effects<V>,
    ) {
        if !self.proposes_here() || self.sessions.applied_at(id).is_some() {
            return;
        }
        // A pin at a decided instance is dropped by the proposer (it knows every decision).
        match at {
            Some(at) => self
                .proposer
                .propose_at(at, Entry::Value { id, value }, out),
            None => self.proposer.append(id, value, out),
        }
    }

    /// A message arrived from `from` (authenticated by the transport).
    ///
    /// # Errors
    /// [`InputError`] for a message no correct member sends (a non-member sender, a round or an
    /// instance out of range): it changes nothing and the caller should log and drop it.
    pub fn on_message(
        &mut self,
        from: NodeId,
        message: Message<V>,
        out: &mut Effects<V>,
    ) -> Result<(), InputError> {
        if !self.epochs.knows(from) {
            return Err(InputError::NotAMember(from));
        }
        check_message(&message)?;
        check_sender(from, &message)?;
        if self.answer_older_epoch(from, &message, out) {
            return Ok(());
        }
        if let Some(e) = &mut self.election {
            e.on_heard(from);
        }
        let decided_before = out.decided.len();
        match message {
            Message::Prepare { ballot, first } => {
                if let Some(a) = &mut self.acceptor {
                    a.on_prepare(from, ballot, first, out);
                }
            }
            Message::Accept {
                ballot,
                instance,
                entry,
            } => {
                if let Some(a) = &mut self.acceptor {
                    a.on_accept(from, ballot, instance, entry, out);
                }
            }
            Message::Promise {
                ballot,
                first,
                accepted,
                more,
                compacted,
            } => self
                .proposer
                .on_promise(from, ballot, first, accepted, more, compacted, out),
            Message::Nack { ballot, promised } => {
                // A newer epoch answered: this node missed a change; ask for it now.
                if promised.epoch > self.epochs.current().epoch {
                    let first = self.learner.first_undecided();
                    out.send(from, Message::CatchUp { first });
                }
                self.proposer.on_nack(ballot, promised);
            }
            Message::Accepted {
                ballot,
                instance,
                entry,
            } => {
                if let Some(chosen) = self.proposer.on_accepted(from, ballot, instance) {
                    self.learner.on_chosen_here(ballot, instance, chosen, out);
                }
                if let Some(entry) = entry {
                    self.learner.on_accepted(from, ballot, instance, entry, out);
                }
            }
            Message::Decided { instance, entry } => {
                self.learner.on_decided(instance, entry, out);
            }
            Message::Chosen { ballot, instances } => {
                // Only `ballot`'s proposer sends this, and it proposed one entry per instance
                // at `ballot`: whatever this acceptor accepted there at `ballot` is that entry.
                // Instances it did not accept there are left to catch-up.
                for instance in instances {
                    let accepted = self.acceptor.as_ref().and_then(|a| a.accepted(instance));
                    if let Some((b, entry)) = accepted
                        && *b == ballot
                    {
                        let entry = entry.clone();
                        self.learner.on_decided(instance, entry, out);
                    }
                }
            }
            Message::CatchUp { first } => {
                if !self.learner.on_catch_up(from, first, out) {
                    self.serve_snapshot(from, InstanceId(0), 0, out);
                }
            }
            Message::Heartbeat => {}
            Message::Forward { id, value, at } => self.on_forward(id, value, at, out),
            Message::SnapshotRead { index, offset } => {
                self.serve_snapshot(from, index, offset, out);
            }
            Message::SnapshotChunk { meta, offset, data } => {
                let piece = self
                    .receiver
                    .on_chunk(from, meta, offset, data, self.applied, out);
                if let Piece::Complete(snapshot) = piece {
                    self.install(snapshot, out);
                }
            }
            Message::Confirm { ballot, seq } => {
                if let Some(a) = &mut self.acceptor {
                    a.on_confirm(from, ballot, seq, out);
                }
            }
            Message::Confirmed { ballot, seq } => {
                let confirmed = self.read_index.on_confirmed(from, ballot, seq);
                self.hand_out(confirmed, out);
            }
            Message::ReadIndex { id } => {
                // Only a node that proposes gives read indexes; the asker asks again
                // elsewhere when its leader changes or stays silent.
                if self.proposes_here() {
                    self.read_index.ask(Asker::Peer(from, id));
                }
            }
            Message::ReadAt { id, index } => self.reads.indexed(id, index),
        }
        self.after_decisions(decided_before, out);
        self.settle_reads(out);
        Ok(())
    }

    /// Call at the end of a runtime step (after its last input, before its writes are saved):
    /// if the step sends `Accept`s to peers, the decisions this node has yet to announce
    /// (leader strategy) go with them, in the same flush, instead of on the next tick.
    pub fn end_step(&mut self, out: &mut Effects<V>) {
        // Accepts go to every acceptor, this node's own among them: any Accept in the step
        // means a flush to the peers.
        if self.learner.has_unannounced()
            && out
                .messages
                .iter()
                .any(|e| matches!(e.message, Message::Accept { .. }))
        {
            self.learner.announce(out);
        }
    }

    /// One tick of time for every role.
    pub fn tick(&mut self, out: &mut Effects<V>) {
        self.now += 1;
        let decided_before = out.decided.len();
        if let Some(e) = &mut self.election {
            e.tick(out);
            let leader = e.is_leader();
            if self.was_leader && !leader {
                self.step_down(out);
            }
            // A leader holds a ballot at all times, so it recovers what earlier leaders left
            // half-done even before a client asks.
            if leader && matches!(self.proposer.phase(), Phase::Idle) {
                self.proposer.start_phase1(out);
            }
            self.was_leader = leader;
        }
        self.reroute_stale(out);
        self.proposer.tick(out);
        self.receiver.tick(self.applied, out);
        // A transfer in progress is what catching up needs; asking again would only bring
        // first pieces.
        let catch_up = self.receiver.receiving().is_none();
        self.learner.tick(catch_up, out);
        self.after_decisions(decided_before, out);
        self.reroute_stale_reads(out);
        self.settle_reads(out);
    }

    /// This node stopped leading: its proposer gives everything up. Its own clients' requests
    /// for any instance go to the new leader; the ones pinned to an instance (Elixir's
    /// `propose_at`) end as the coursework's `{:abort}`.
    fn step_down(&mut self, out: &mut Effects<V>) {
        let leader = self.leader();
        tracing::info!(node = %self.id, ballot = %self.proposer.ballot(), ?leader, "no longer the leader");
        let in_flight = self.proposer.step_down();
        // A change already applied (decided as ours) is in the log whoever fills the rest of
        // the window: its caller hears when the epoch begins, not "not the leader".
        if let Some((at, _)) = &self.change
            && *at >= self.applied
        {
            self.change = None;
            out.reconfigured
                .push(Err(ReconfigError::NotLeader(self.leader())));
        }
        // Reads asked here go to the new leader (a peer's ask again on their own).
        for asker in self.read_index.give_up() {
            if let Asker::Local(id) = asker {
                self.route_read(id, out);
            }
        }
        let mine: Vec<ProposalId> = self
            .own
            .iter()
            .filter(|(_, o)| o.sent_to == self.id)
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            if self.own.get(&id).is_some_and(|o| o.at.is_some()) {
                self.own.remove(&id);
                out.abandoned.push((id, in_flight.contains(&id)));
            } else {
                self.route(id, out);
            }
        }
    }

    /// Forwarded requests whose leader changed, or did not decide them for a while, go again
    /// to the leader trusted now.
    fn reroute_stale(&mut self, out: &mut Effects<V>) {
        let leader = self.leader();
        let now = self.now;
        let stale: Vec<ProposalId> = self
            .own
            .iter()
            .filter(|(_, o)| {
                o.sent_to != self.id
                    && (Some(o.sent_to) != leader || now - o.sent_at >= self.forward_every)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(o) = self.own.get(&id) {
                tracing::info!(node = %self.id, %id, from = %o.sent_to, to = ?leader, "forwarding again");
            }
            self.route(id, out);
        }
    }

    /// Reads asked of a leader that changed, or that did not answer for a while, are asked
    /// again of the leader trusted now.
    fn reroute_stale_reads(&mut self, out: &mut Effects<V>) {
        let stale_at = self.now.saturating_sub(self.forward_every);
        for id in self.reads.stale(self.leader(), self.id, stale_at) {
            self.route_read(id, out);
        }
    }

    /// New decisions reach the proposer; then the decided prefix is applied in order.
    fn after_decisions(&mut self, from: usize, out: &mut Effects<V>) {
        let first = self.learner.first_undecided();
        let decided: Vec<(InstanceId, Entry<V>)> = out.decided[from..].to_vec();
        for (instance, entry) in &decided {
            self.proposer.on_decided(*instance, entry, first, out);
            // A client's request pinned to this instance is answered by its decision.
            self.own.retain(|_, o| o.at != Some(*instance));
        }
        self.apply_decided(out);
    }

    /// Apply the decided prefix, in order, from the applied index on.
    fn apply_decided(&mut self, out: &mut Effects<V>) {
        // Everything below the applied index is decided, so this walks the decided prefix.
        while let Some(entry) = self.learner.decided(self.applied).cloned() {
            let instance = self.applied;
            let applied = self.sessions.apply(instance, &entry);
            if let Some(id) = entry.id() {
                self.own.remove(&id);
            }
            let ends_epoch = match self.faults.1.epoch_without_window {
                // Broken on purpose (the model check's proof that it catches it).
                true => self.epochs.on_applied_within(instance, &entry, 1),
                false => self.epochs.on_applied(instance, &entry),
            };
            if let Some((at, mine)) = &self.change
                && *at == instance
                && !(ends_epoch && entry == Entry::Reconfigure(mine.clone()))
            {
                self.change = None;
                out.reconfigured.push(Err(ReconfigError::Superseded));
            }
            out.applied.push((instance, entry, applied));
            self.applied = instance.next();
            if self.epochs.enter_due(self.applied).is_some() {
                self.enter_epoch(out);
            }
        }
    }

    /// A peer still in an older epoch asks for a promise or an accept: answer with a `Nack`
    /// that names this epoch, so that it stops and catches up (the hand-off's entry and the
    /// prefix below it are served to it as to anyone). True if answered so.
    fn answer_older_epoch(&self, from: NodeId, message: &Message<V>, out: &mut Effects<V>) -> bool {
        let ballot = match message {
            Message::Prepare { ballot, .. } | Message::Accept { ballot, .. } => *ballot,
            _ => return false,
        };
        let epoch = self.epochs.current().epoch;
        if ballot.epoch >= epoch {
            return false;
        }
        let promised = self.promised().max(Ballot::in_epoch(epoch, 0, NodeId(0)));
        out.send(from, Message::Nack { ballot, promised });
        true
    }

    /// The configuration this node has applied.
    pub fn membership(&self) -> &Membership {
        self.epochs.current()
    }

    /// Every node this one talks to now: the members of this epoch and of the one before,
    /// with the addresses the changes named (see [`crate::Transport::set_peers`]).
    pub fn peers(&self) -> crate::transport::Peers {
        self.epochs.peers(self.id)
    }

    /// Propose a membership change (on the leader, or any node when leaderless): the
    /// configuration `change` names becomes the next epoch once decided and once every
    /// instance below its start is decided. The end appears in [`Effects::reconfigured`]: the
    /// new membership when this node enters it, or why it did not happen.
    ///
    /// # Errors
    /// A change this node refuses at once: another in progress, not the leader, or a
    /// configuration [`Membership::next`] refuses.
    pub fn reconfigure(
        &mut self,
        change: &MemberChange,
        out: &mut Effects<V>,
    ) -> Result<InstanceId, ReconfigError> {
        if matches!(
            self.base.learner_strategy,
            crate::LearnerStrategy::Distinguished(_)
        ) {
            return Err(ReconfigError::DistinguishedLearners);
        }
        if let Some((_, next)) = self.epochs.next() {
            return Err(ReconfigError::ChangeInProgress(next.epoch));
        }
        if let Some((_, next)) = &self.change {
            return Err(ReconfigError::ChangeInProgress(next.epoch));
        }
        if !self.proposes_here() {
            return Err(ReconfigError::NotLeader(self.leader()));
        }
        let next = self.epochs.current().next(change)?;
        let instance = self
            .proposer
            .next_free_instance(self.learner.next_after_decided());
        tracing::info!(node = %self.id, %instance, %next, "proposing a membership change");
        self.proposer
            .propose_at(instance, Entry::Reconfigure(next.clone()), out);
        self.change = Some((instance, next));
        Ok(instance)
    }

    /// Every instance below the next epoch's start is applied: build the roles of the epoch
    /// (now current) from its members. The decided log, the sessions and the durable state
    /// carry over; the proposer starts over at the epoch's start with its ballots, and hands
    /// it the requests that were waiting; a node that is no longer a member keeps only its
    /// learner (it still answers stragglers' catch-up).
    fn enter_epoch(&mut self, out: &mut Effects<V>) {
        let membership = self.epochs.current().clone();
        let config = membership.apply_to(&self.base);
        let member = membership.contains(self.id);
        tracing::info!(node = %self.id, %membership, start = %self.epochs.start(), member, "entering a new epoch");
        // What this node saw chosen in the old epoch is told before its learners change (the
        // last of the tail is what lets the others enter too).
        if self.learner.has_unannounced() {
            self.learner.announce(out);
        }
        self.learner.reconfigure(&config, membership.epoch);
        let (queued, pinned) = self.proposer.hand_over();
        let decided_above = self
            .learner
            .decisions()
            .range(self.applied..)
            .map(|(i, _)| *i)
            .collect();
        self.seed = self.seed.wrapping_add(membership.epoch);
        self.proposer = Proposer::new(
            &config,
            self.proposer.max_round(),
            self.seed,
            self.applied,
            decided_above,
        )
        .in_epoch(membership.epoch, self.epochs.start())
        .with_faults(self.faults.1);
        let acceptor = member && config.acceptors.contains(&self.id);
        match (&mut self.acceptor, acceptor) {
            (Some(a), true) => a.reconfigure(&config),
            (None, true) => {
                let a = Acceptor::new(&config, Ballot::ZERO, BTreeMap::new());
                self.acceptor = Some(a.with_faults(self.faults.0));
            }
            (_, false) => self.acceptor = None,
        }
        self.election =
            (member && config.leader_mode == LeaderMode::Elected).then(|| Election::new(&config));
        self.was_leader = false;
        let askers = self.read_index.give_up();
        self.read_index = ReadIndex::for_config(&config);
        for asker in askers {
            if let Asker::Local(id) = asker {
                self.route_read(id, out);
            }
        }
        // Requests waiting here go to whoever proposes in the new epoch.
        if self.proposes_here() {
            for (id, value) in queued {
                self.proposer.append(id, value, out);
            }
            for (instance, entry) in pinned {
                self.proposer.propose_at(instance, entry, out);
            }
        }
        let mine: Vec<ProposalId> = self.own.keys().copied().collect();
        for id in mine {
            self.route(id, out);
        }
        if let Some((_, next)) = &self.change
            && next.epoch == membership.epoch
        {
            self.change = None;
            out.reconfigured.push(Ok(membership.clone()));
        }
        out.epochs.push(membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LearnerStrategy, ReadPolicy};
    use crate::message::Envelope;
    use std::collections::VecDeque;

    fn cluster() -> Vec<Replica<u64>> {
        cluster_with(|_| {})
    }

    /// [`cluster`], each node's config changed by `tune` first.
    fn cluster_with(tune: impl Fn(&mut Config)) -> Vec<Replica<u64>> {
        [NodeId(1), NodeId(2), NodeId(3)]
            .iter()
            .map(|&id| {
                let config = config_with(id, &tune);
                let mut r = Replica::new(&config, DurableState::default(), id.0).expect("valid");
                r.start(&mut Effects::new());
                r
            })
            .collect()
    }

    /// The configuration of node `id` of [`cluster_with`].
    fn config_with(id: NodeId, tune: impl Fn(&mut Config)) -> Config {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let mut config = Config::symmetric(id, ids).with_learner_strategy(LearnerStrategy::Leader);
        tune(&mut config);
        config
    }

    /// A membership change (issue 18): the first change decided ends the epoch a window
    /// later, every node enters the next one once it applied the prefix below its start, the
    /// removed node stops being asked, and writes go on in the new epoch at its ballots.
    #[test]
    fn a_decided_change_moves_every_node_to_the_next_epoch() {
        let mut nodes = cluster_with(|c| c.max_instances_ahead = 4);
        let mut out = Effects::new();
        nodes[0].propose(None, 10, &mut out);
        pump(&mut nodes, out, NodeId(1));
        let mut out = Effects::new();
        let change = MemberChange::new([NodeId(1), NodeId(2)], []);
        let at = nodes[0].reconfigure(&change, &mut out).expect("proposed");
        assert_eq!(
            nodes[0].reconfigure(&change, &mut Effects::new()),
            Err(ReconfigError::ChangeInProgress(1)),
            "one change at a time"
        );
        pump(&mut nodes, out, NodeId(1));
        for n in &nodes {
            assert_eq!(n.membership().epoch, 1, "{} entered epoch 1", n.id());
            assert_eq!(n.epochs.start(), InstanceId(at.0 + 4));
        }
        let mut out = Effects::new();
        let status = nodes[0].propose(None, 11, &mut out);
        assert_eq!(status, ProposeStatus::Proposing(InstanceId(at.0 + 4)));
        pump(&mut nodes, out, NodeId(1));
        let mut out = Effects::new();
        nodes[0].tick(&mut out); // announces what it saw chosen
        pump(&mut nodes, out, NodeId(1));
        assert_eq!(nodes[0].proposer().ballot().epoch, 1);
        for n in &nodes[..2] {
            assert_eq!(
                n.learner()
                    .decided(InstanceId(at.0 + 4))
                    .and_then(Entry::value),
                Some(&11)
            );
        }
        assert!(nodes[2].acceptor().is_none(), "n3 accepts nothing any more");
        // A straggler still in epoch 0 is answered with the new epoch, whatever its round,
        // even by a node that accepts nothing any more.
        let stale = Ballot::in_epoch(0, 99, NodeId(2));
        let mut out = Effects::new();
        let prepare = Message::Prepare {
            ballot: stale,
            first: InstanceId(0),
        };
        nodes[2]
            .on_message(NodeId(2), prepare, &mut out)
            .expect("valid input");
        assert!(
            matches!(
                &out.messages[..],
                [Envelope { to: NodeId(2), message: Message::Nack { ballot, promised } }]
                    if *ballot == stale && promised.epoch == 1
            ),
            "{:?}",
            out.messages
        );
        assert_eq!(
            nodes[2].reconfigure(&MemberChange::new([NodeId(3)], []), &mut Effects::new()),
            Err(ReconfigError::NotLeader(None)),
            "a removed node proposes nothing"
        );
    }

    /// A leader that steps down after its change was decided and applied (the old epoch still
    /// fills the window) answers the change once the epoch begins, not with "not the leader":
    /// the change is in the log whoever finishes the window.
    #[test]
    fn a_decided_change_is_answered_though_its_proposer_stepped_down() {
        let mut nodes = cluster_with(|c| c.max_instances_ahead = 4);
        let mut out = Effects::new();
        let change = MemberChange::new([NodeId(1), NodeId(2)], []);
        let at = nodes[0].reconfigure(&change, &mut out).expect("proposed");
        let mut queue: VecDeque<(NodeId, Envelope<u64>)> =
            out.messages.drain(..).map(|e| (NodeId(1), e)).collect();
        let mut answers = Vec::new();
        let mut stepped_down = false;
        for _ in 0..500 {
            if nodes[0].membership().epoch == 1 && queue.is_empty() {
                break;
            }
            let Some((from, env)) = queue.pop_front() else {
                for n in nodes.iter_mut() {
                    let mut out = Effects::new();
                    n.tick(&mut out);
                    n.end_step(&mut out);
                    if n.id() == NodeId(1) {
                        answers.append(&mut out.reconfigured);
                    }
                    queue.extend(out.messages.into_iter().map(|e| (n.id(), e)));
                }
                continue;
            };
            let to = env.to;
            let node = &mut nodes[(to.0 - 1) as usize];
            let mut out = Effects::new();
            node.on_message(from, env.message, &mut out)
                .expect("valid input");
            if to == NodeId(1) && !stepped_down && node.applied() > at {
                assert_eq!(node.membership().epoch, 0, "the window is still open");
                node.step_down(&mut out);
                stepped_down = true;
            }
            node.end_step(&mut out);
            if to == NodeId(1) {
                answers.append(&mut out.reconfigured);
            }
            queue.extend(out.messages.into_iter().map(|e| (to, e)));
        }
        assert!(
            stepped_down,
            "the change was applied before the epoch began"
        );
        assert_eq!(nodes[0].membership().epoch, 1);
        assert_eq!(answers, vec![Ok(nodes[0].membership().clone())]);
    }

    /// Deliver every message (FIFO) until the cluster is quiet; returns the messages seen.
    fn pump(nodes: &mut [Replica<u64>], out: Effects<u64>, from: NodeId) -> Vec<Message<u64>> {
        pump_except(nodes, out, from, &[])
    }

    /// [`pump`], dropping every message to or from the nodes in `cut`.
    fn pump_except(
        nodes: &mut [Replica<u64>],
        out: Effects<u64>,
        from: NodeId,
        cut: &[NodeId],
    ) -> Vec<Message<u64>> {
        pump_reads(nodes, out, from, cut).0
    }

    /// [`pump_except`], also returning the reads that became ready (those in `out` first):
    /// by node, with their read index and the node's applied index when they were ready
    /// (what the read would have seen).
    #[allow(clippy::type_complexity)]
    fn pump_reads(
        nodes: &mut [Replica<u64>],
        out: Effects<u64>,
        from: NodeId,
        cut: &[NodeId],
    ) -> (
        Vec<Message<u64>>,
        Vec<(NodeId, ReadId, InstanceId, InstanceId)>,
    ) {
        let mut reads = Vec::new();
        let seen = pump_with(nodes, out, from, cut, |node, out| {
            let applied = node.applied();
            reads.extend(out.reads.iter().map(|&(r, i)| (node.id(), r, i, applied)));
        });
        (seen, reads)
    }

    /// [`pump_except`], showing `step` every step's effects (`out` first, as `from`'s) with
    /// the node after it.
    fn pump_with(
        nodes: &mut [Replica<u64>],
        mut out: Effects<u64>,
        from: NodeId,
        cut: &[NodeId],
        mut step: impl FnMut(&Replica<u64>, &Effects<u64>),
    ) -> Vec<Message<u64>> {
        step(&nodes[(from.0 - 1) as usize], &out);
        let mut queue: VecDeque<(NodeId, Envelope<u64>)> =
            out.messages.drain(..).map(|e| (from, e)).collect();
        let mut seen = Vec::new();
        while let Some((from, env)) = queue.pop_front() {
            if cut.contains(&env.to) || cut.contains(&from) {
                continue;
            }
            seen.push(env.message.clone());
            let node = &mut nodes[(env.to.0 - 1) as usize];
            let mut out = Effects::new();
            node.on_message(from, env.message, &mut out)
                .expect("valid input");
            node.end_step(&mut out);
            step(node, &out);
            queue.extend(out.messages.into_iter().map(|e| (env.to, e)));
        }
        seen
    }

    /// Leader strategy end to end: `Accepted` carries no value and goes to the proposer only;
    /// the followers learn from a `Chosen` that rides with the proposer's next `Accept`s.
    #[test]
    fn leader_strategy_decides_everywhere_without_resending_values() {
        let mut nodes = cluster();
        let mut out = Effects::new();
        nodes[0].propose(None, 5, &mut out);
        let seen = pump(&mut nodes, out, NodeId(1));
        assert_eq!(
            nodes[0]
                .learner()
                .decided(InstanceId(0))
                .and_then(Entry::value),
            Some(&5)
        );
        assert!(seen.iter().all(|m| !matches!(
            m,
            Message::Accepted { entry: Some(_), .. } | Message::Decided { .. }
        )));
        assert_eq!(
            nodes[1].learner().decided(InstanceId(0)),
            None,
            "not yet announced"
        );
        // The next proposal's step carries the announcement.
        let mut out = Effects::new();
        nodes[0].propose(None, 6, &mut out);
        nodes[0].end_step(&mut out);
        assert!(
            out.messages
                .iter()
                .any(|e| matches!(e.message, Message::Chosen { .. }))
        );
        pump(&mut nodes, out, NodeId(1));
        for n in &nodes[1..] {
            assert_eq!(
                n.learner().decided(InstanceId(0)).and_then(Entry::value),
                Some(&5)
            );
        }
        // With nothing more to send, a tick announces instance 1.
        let mut out = Effects::new();
        nodes[0].tick(&mut out);
        pump(&mut nodes, out, NodeId(1));
        for n in &nodes {
            assert_eq!(
                n.learner().decided(InstanceId(1)).and_then(Entry::value),
                Some(&6)
            );
        }
    }

    /// `Chosen` at a ballot teaches only what the acceptor accepted at that very ballot: a
    /// value accepted at another ballot may not be the chosen one.
    #[test]
    fn chosen_is_learned_only_at_the_named_ballot() {
        let mut nodes = cluster();
        let mut out = Effects::new();
        let b1 = Ballot::new(1, NodeId(1));
        nodes[1]
            .on_message(
                NodeId(1),
                Message::Accept {
                    ballot: b1,
                    instance: InstanceId(0),
                    entry: Entry::Value {
                        id: ProposalId::default(),
                        value: 9,
                    },
                },
                &mut out,
            )
            .expect("valid input");
        let other = Ballot::new(2, NodeId(3));
        nodes[1]
            .on_message(
                NodeId(3),
                Message::Chosen {
                    ballot: other,
                    instances: vec![InstanceId(0)],
                },
                &mut out,
            )
            .expect("valid input");
        assert_eq!(nodes[1].learner().decided(InstanceId(0)), None);
        nodes[1]
            .on_message(
                NodeId(1),
                Message::Chosen {
                    ballot: b1,
                    instances: vec![InstanceId(0)],
                },
                &mut out,
            )
            .expect("valid input");
        assert_eq!(
            nodes[1]
                .learner()
                .decided(InstanceId(0))
                .and_then(Entry::value),
            Some(&9)
        );
    }

    /// A follower cut off while the others decide and compact catches up by snapshot, in
    /// pieces: it installs it in one save (snapshot + truncation), takes the sessions and the
    /// applied index from it, hands the state to its state machine, and a request of its own
    /// the snapshot shows applied is answered.
    #[test]
    fn a_follower_behind_a_compacted_log_installs_the_snapshot() {
        let mut nodes = cluster();
        for n in &mut nodes {
            n.chunk_bytes = 16;
            n.keep_entries = 0;
        }
        let n3 = NodeId(3);
        // n3's own request reaches n1 before n3 is cut off (n3's own phase 1 is lost).
        let id = nodes[2].next_own_request();
        nodes[2].append(id, 300, &mut Effects::new());
        let mut out = Effects::new();
        nodes[0]
            .on_message(
                n3,
                Message::Forward {
                    id,
                    value: 300,
                    at: None,
                },
                &mut out,
            )
            .expect("valid");
        pump_except(&mut nodes, out, NodeId(1), &[n3]);
        // n3's clients also pin requests at i0, which the snapshot will cover, and at i5, its
        // index (their phase 1 is lost too).
        nodes[2].propose(Some(InstanceId(0)), 900, &mut Effects::new());
        let below = nodes[2].last_own_request();
        nodes[2].propose(Some(InstanceId(5)), 905, &mut Effects::new());
        for v in 1..=4 {
            let mut out = Effects::new();
            nodes[0].propose(None, v, &mut out);
            nodes[0].tick(&mut out);
            pump_except(&mut nodes, out, NodeId(1), &[n3]);
        }
        let mut out = Effects::new();
        nodes[0].tick(&mut out);
        pump_except(&mut nodes, out, NodeId(1), &[n3]);
        assert_eq!(nodes[1].applied(), InstanceId(5));
        for n in &mut nodes[..2] {
            let point = n.snapshot_point();
            assert_eq!(point.index(), InstanceId(5));
            let mut out = Effects::new();
            let meta = n
                .compact(point, Bytes::from_static(b"state after i0-i4"), &mut out)
                .expect("new");
            assert_eq!(meta.index, InstanceId(5));
            assert_eq!(n.learner().log_start(), InstanceId(5));
            assert!(matches!(
                out.writes[..],
                [Write::Snapshot(_), Write::TruncateBelow(InstanceId(5))]
            ));
        }
        // n3 asks for what it missed; n1 and n2 can only send the snapshot.
        let mut out = Effects::new();
        nodes[2].tick(&mut out);
        assert!(out.messages.iter().any(|e| matches!(
            e.message,
            Message::CatchUp {
                first: InstanceId(0)
            }
        )));
        let mut installed = None;
        let mut queue: VecDeque<(NodeId, Envelope<u64>)> =
            out.messages.drain(..).map(|e| (n3, e)).collect();
        let mut pieces = 0;
        while let Some((from, env)) = queue.pop_front() {
            let to = env.to;
            if matches!(env.message, Message::SnapshotChunk { .. }) {
                pieces += 1;
            }
            let node = &mut nodes[(to.0 - 1) as usize];
            let mut out = Effects::new();
            node.on_message(from, env.message, &mut out)
                .expect("valid input");
            if to == n3
                && let Some(r) = out.restored.pop()
            {
                assert!(matches!(
                    out.writes[..],
                    [Write::Snapshot(_), Write::TruncateBelow(InstanceId(5))]
                ));
                // The pin below the snapshot was decided with an entry n3 never sees: it
                // ends; the one at the index is still open.
                assert_eq!(out.abandoned, vec![(below, true)]);
                installed = Some(r);
            }
            queue.extend(out.messages.into_iter().map(|e| (to, e)));
        }
        let restored = installed.expect("n3 installed the snapshot");
        // While a transfer is under way the follower does not ask for catch-up (peers would
        // only send first pieces again): it asks for the next piece after a silence instead.
        let mut out = Effects::new();
        let first = nodes[0].snapshot().map(|s| piece(s, 0, 16)).expect("kept");
        let mut fresh = cluster().remove(2);
        fresh.on_message(NodeId(1), first, &mut out).expect("valid");
        assert!(fresh.receiving_snapshot().is_some());
        for _ in 0..120 {
            fresh.tick(&mut out);
        }
        assert!(
            !out.messages
                .iter()
                .any(|e| matches!(e.message, Message::CatchUp { .. }))
        );
        assert!(
            out.messages
                .iter()
                .any(|e| matches!(e.message, Message::SnapshotRead { .. }))
        );
        assert!(pieces > 2, "the snapshot came in pieces ({pieces})");
        assert_eq!(restored.meta.index, InstanceId(5));
        assert_eq!(restored.state, Bytes::from_static(b"state after i0-i4"));
        assert_eq!(
            restored.requests,
            vec![(
                nodes[0].applied_at(id).expect("applied"),
                Entry::Value { id, value: 300 }
            )]
        );
        assert_eq!(nodes[2].applied(), InstanceId(5));
        assert_eq!(nodes[2].learner().first_undecided(), InstanceId(5));
        assert_eq!(nodes[2].sessions, nodes[0].sessions);
        assert_eq!(
            nodes[2].snapshot().map(|s| s.meta),
            nodes[0].snapshot().map(|s| s.meta)
        );
        // The next decision is applied on top, everywhere.
        let mut out = Effects::new();
        nodes[0].propose(None, 6, &mut out);
        nodes[0].tick(&mut out);
        pump(&mut nodes, out, NodeId(1));
        let mut out = Effects::new();
        nodes[0].tick(&mut out);
        pump(&mut nodes, out, NodeId(1));
        for n in &nodes {
            assert_eq!(n.applied(), InstanceId(6), "{}", n.id());
        }
    }

    /// A step that folds several inputs may install two snapshots: both are reported, in the
    /// order installed, each at its place in the applied entries (the runtime restores each).
    #[test]
    fn two_snapshots_installed_in_one_step_are_both_reported() {
        let mut nodes = cluster();
        let n3 = NodeId(3);
        let mut snapshots = Vec::new();
        for round in 0..2u64 {
            for v in 1..=5 {
                let mut out = Effects::new();
                nodes[0].propose(None, round * 10 + v, &mut out);
                nodes[0].tick(&mut out);
                pump_except(&mut nodes, out, NodeId(1), &[n3]);
            }
            let mut out = Effects::new();
            nodes[0].tick(&mut out);
            pump_except(&mut nodes, out, NodeId(1), &[n3]);
            let point = nodes[0].snapshot_point();
            let state = Bytes::from(format!("state {round}"));
            let mut out = Effects::new();
            nodes[0].compact(point, state, &mut out).expect("newer");
            snapshots.push(nodes[0].snapshot().cloned().expect("taken"));
        }
        let mut out = Effects::new();
        for s in &snapshots {
            nodes[2]
                .on_message(NodeId(1), piece(s, 0, 1 << 20), &mut out)
                .expect("valid");
        }
        let installed: Vec<(InstanceId, Bytes)> = out
            .restored
            .iter()
            .map(|r| (r.meta.index, r.state.clone()))
            .collect();
        let first = snapshots[0].meta.index;
        let second = snapshots[1].meta.index;
        assert!(first < second);
        assert_eq!(
            installed,
            [
                (first, Bytes::from_static(b"state 0")),
                (second, Bytes::from_static(b"state 1"))
            ]
        );
        assert_eq!(nodes[2].applied(), second);
    }

    /// A node restarted over a stored snapshot and a kept tail resumes from them: the sessions
    /// of the snapshot plus the tail, everything below the tail's end applied, and a pinned
    /// proposal below the kept log refused as compacted.
    #[test]
    fn a_restart_resumes_from_the_snapshot_and_the_kept_tail() {
        let mut nodes = cluster();
        for v in 1..=4 {
            let mut out = Effects::new();
            nodes[0].propose(None, v, &mut out);
            nodes[0].tick(&mut out);
            pump(&mut nodes, out, NodeId(1));
        }
        let n = &mut nodes[0];
        n.keep_entries = 1;
        let mut out = Effects::new();
        n.compact(n.snapshot_point(), Bytes::from_static(b"s"), &mut out)
            .expect("new");
        let mut disk = DurableState::default();
        for (i, e) in n.learner().decisions() {
            disk.apply(&Write::Decided {
                instance: *i,
                entry: e.clone(),
            });
        }
        out.writes.iter().for_each(|w| disk.apply(w));
        assert_eq!(disk.log_start, InstanceId(3));
        let config = Config::symmetric(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)])
            .with_learner_strategy(crate::config::LearnerStrategy::Leader);
        let mut back = Replica::new(&config, disk.clone(), 1).expect("restored");
        assert_eq!(back.applied(), n.applied());
        assert_eq!(back.sessions, n.sessions);
        assert_eq!(back.learner().log_start(), InstanceId(3));
        assert_eq!(
            back.snapshot_state(),
            Some((n.snapshot().expect("kept").meta, Bytes::from_static(b"s")))
        );
        assert_eq!(
            back.propose(Some(InstanceId(1)), 9, &mut Effects::new()),
            ProposeStatus::Rejected(InputError::Compacted {
                instance: InstanceId(1),
                log_start: InstanceId(3)
            })
        );
        assert_eq!(
            back.compact(back.snapshot_point(), Bytes::new(), &mut Effects::new()),
            Err(CompactError::NotNewer {
                index: InstanceId(4),
                kept: InstanceId(4)
            })
        );
        let mut no_pieces = config.clone();
        no_pieces.snapshot_chunk_bytes = 0;
        assert!(matches!(
            Replica::<u64>::new(&no_pieces, disk.clone(), 1),
            Err(StartError::Config(ConfigError::Snapshot(_)))
        ));
        // A snapshot this build cannot read stops the start, typed.
        disk.snapshot = Some(Snapshot::new(
            InstanceId(4),
            Ballot::ZERO,
            b"garbage".to_vec(),
        ));
        assert!(matches!(
            Replica::<u64>::new(&config, disk, 1),
            Err(StartError::Snapshot(SnapshotError::Undecodable { .. }))
        ));
    }

    /// Input no correct member sends is refused before any rule runs and changes nothing: a
    /// `Nack` naming round `u64::MAX` (a proposer would climb above it and wrap), a `Decided`
    /// at instance `u64::MAX` (the frontier would wrap), a message from a stranger, a `Prepare`
    /// from n2 for n3's ballot (no promise made in n3's name), and a client asking for an
    /// instance beyond the bound.
    #[test]
    fn out_of_range_input_is_rejected_and_changes_nothing() {
        let mut nodes = cluster();
        let before = nodes[0].clone();
        let mut out = Effects::new();
        let top = Ballot::new(u64::MAX, NodeId(2));
        assert_eq!(
            nodes[0].on_message(
                NodeId(2),
                Message::Nack {
                    ballot: Ballot::new(1, NodeId(1)),
                    promised: top,
                },
                &mut out,
            ),
            Err(InputError::RoundOutOfRange { round: u64::MAX })
        );
        assert_eq!(
            nodes[0].on_message(
                NodeId(2),
                Message::Decided {
                    instance: InstanceId(u64::MAX),
                    entry: Entry::Noop,
                },
                &mut out,
            ),
            Err(InputError::InstanceOutOfRange {
                instance: InstanceId(u64::MAX)
            })
        );
        assert_eq!(
            nodes[0].on_message(NodeId(9), Message::Heartbeat, &mut out),
            Err(InputError::NotAMember(NodeId(9)))
        );
        let forged = Ballot::new(7, NodeId(3));
        assert_eq!(
            nodes[0].on_message(
                NodeId(2),
                Message::Prepare {
                    ballot: forged,
                    first: InstanceId(0),
                },
                &mut out,
            ),
            Err(InputError::NotTheSendersBallot {
                from: NodeId(2),
                ballot: forged
            })
        );
        assert_eq!(
            nodes[0].propose(Some(InstanceId(u64::MAX)), 5, &mut out),
            ProposeStatus::Rejected(InputError::InstanceOutOfRange {
                instance: InstanceId(u64::MAX)
            })
        );
        assert_eq!(out, Effects::new());
        assert_eq!(nodes[0], before);
    }
    /// Three replicas with an elected leader (n1, once it ticked), every decision announced.
    fn elected() -> Vec<Replica<u64>> {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let mut nodes: Vec<Replica<u64>> = ids
            .iter()
            .map(|&id| {
                let config = Config::symmetric(id, ids).with_leader_mode(LeaderMode::Elected);
                let mut r = Replica::new(&config, DurableState::default(), id.0).expect("valid");
                r.start(&mut Effects::new());
                r
            })
            .collect();
        let mut out = Effects::new();
        nodes[0].tick(&mut out);
        pump(&mut nodes, out, NodeId(1));
        assert!(matches!(nodes[0].proposer().phase(), Phase::Leading { .. }));
        nodes
    }

    /// A follower's read asks the leader, which confirms its ballot with a quorum and answers
    /// with its frontier; the read is ready once the follower applied up to it, and it sees
    /// the write the leader acknowledged before. No entry is written to the log for it.
    #[test]
    fn a_followers_read_waits_for_the_leaders_frontier() {
        let mut nodes = elected();
        let mut out = Effects::new();
        nodes[0].propose(None, 5, &mut out);
        // n3 hears nothing of the write: its read must wait for it.
        pump_except(&mut nodes, out, NodeId(1), &[NodeId(3)]);
        assert_eq!(nodes[0].applied(), InstanceId(1), "acknowledged on n1");
        let mut out = Effects::new();
        let id = nodes[2].read(&mut out);
        assert!(out.reads.is_empty(), "no index yet");
        let (seen, reads) = pump_reads(&mut nodes, out, NodeId(3), &[]);
        assert!(seen.iter().any(|m| matches!(m, Message::Confirm { .. })));
        assert!(
            !seen.iter().any(|m| matches!(m, Message::Accept { .. })),
            "a read writes nothing to the log"
        );
        let ready: Vec<_> = reads.iter().filter(|(n, ..)| *n == NodeId(3)).collect();
        assert!(
            ready.is_empty(),
            "not before n3 applied the write: {reads:?}"
        );
        assert_eq!(nodes[2].reads_pending(), 1);
        // Catch-up brings the write; the read is ready with it applied.
        let mut out = Effects::new();
        for _ in 0..Config::symmetric(NodeId(3), [NodeId(3)]).catch_up_ticks {
            nodes[2].tick(&mut out);
        }
        let (_, reads) = pump_reads(&mut nodes, out, NodeId(3), &[]);
        assert_eq!(reads, vec![(NodeId(3), id, InstanceId(1), InstanceId(1))]);
        assert_eq!(nodes[2].applied(), InstanceId(1));
        assert_eq!(nodes[2].reads_pending(), 0);
    }

    /// A leader that was deposed without knowing it gets a `Nack` for its confirmation round,
    /// not a stale answer: its read is answered only after it recovered the newer write.
    #[test]
    fn a_deposed_leader_does_not_answer_a_read_from_its_stale_state() {
        let mut nodes = cluster(); // leaderless: n2 can take over at once
        let mut out = Effects::new();
        nodes[0].propose(None, 1, &mut out);
        pump(&mut nodes, out, NodeId(1));
        // n2 takes a higher ballot and decides 2 with n3, n1 cut off.
        let mut out = Effects::new();
        let request = ProposalId {
            seq: 99,
            ..ProposalId::default()
        };
        nodes[1].append(request, 2, &mut out);
        pump_except(&mut nodes, out, NodeId(2), &[NodeId(1)]);
        let mut out = Effects::new();
        nodes[1].tick(&mut out); // announces instance 1 (leader strategy)
        pump_except(&mut nodes, out, NodeId(2), &[NodeId(1)]);
        assert_eq!(nodes[1].applied(), InstanceId(2));
        assert_eq!(nodes[0].applied(), InstanceId(1));
        assert!(matches!(nodes[0].proposer().phase(), Phase::Leading { .. }));
        // n1 still leads in its own eyes; its read is refused by the quorum.
        let mut out = Effects::new();
        let id = nodes[0].read(&mut out);
        let (seen, reads) = pump_reads(&mut nodes, out, NodeId(1), &[]);
        assert!(seen.iter().any(|m| matches!(m, Message::Nack { .. })));
        assert!(reads.is_empty(), "stale: {reads:?}");
        // It retries with a higher ballot, recovers 2, and answers above it.
        let mut ready = Vec::new();
        for _ in 0..200 {
            let mut out = Effects::new();
            nodes[0].tick(&mut out);
            ready.extend(pump_reads(&mut nodes, out, NodeId(1), &[]).1);
            if !ready.is_empty() {
                break;
            }
        }
        assert_eq!(ready, vec![(NodeId(1), id, InstanceId(2), InstanceId(2))]);
        assert_eq!(nodes[0].applied(), InstanceId(2));
    }

    /// A new leader that has recovered a value in phase 1 but not yet decided it serves no
    /// read below it (the frontier covers it); with the read index taken from the decided
    /// prefix instead (the broken rule, etcd #7331), the read is answered without the value
    /// the old leader acknowledged.
    #[test]
    fn a_new_leaders_read_index_covers_what_it_recovered() {
        for broken in [false, true] {
            let mut nodes = cluster();
            if broken {
                let faults = ProposerFaults {
                    read_index_from_decided: true,
                    ..ProposerFaults::default()
                };
                nodes[1] = nodes[1]
                    .clone()
                    .break_on_purpose((AcceptorFaults::default(), faults));
            }
            // n1 gets 7 chosen and acknowledged; n2 and n3 accepted it but were not told.
            let mut out = Effects::new();
            nodes[0].propose(None, 7, &mut out);
            pump(&mut nodes, out, NodeId(1));
            assert_eq!(nodes[0].applied(), InstanceId(1));
            assert_eq!(nodes[1].learner().first_undecided(), InstanceId(0));
            // n2 reads (n1 gone): it takes a ballot, recovers 7, and must apply it first.
            let mut out = Effects::new();
            let id = nodes[1].read(&mut out);
            let (_, reads) = pump_reads(&mut nodes, out, NodeId(2), &[NodeId(1)]);
            // Broken: index 0, so the read may be answered before 7 is applied (whether it
            // is depends on which reply comes first: the model checker finds the order).
            let index = if broken { InstanceId(0) } else { InstanceId(1) };
            assert!(
                matches!(reads[..], [(NodeId(2), r, i, seen)] if r == id && i == index && seen >= i),
                "broken: {broken}: {reads:?}"
            );
        }
    }

    /// The switch that breaks reads answers them at once, without a leader.
    #[test]
    fn reads_without_barrier_are_answered_from_the_local_state() {
        let mut nodes = cluster();
        let faults = ProposerFaults {
            read_without_barrier: true,
            ..ProposerFaults::default()
        };
        let mut n = nodes
            .remove(2)
            .break_on_purpose((AcceptorFaults::default(), faults));
        let mut out = Effects::new();
        let id = n.read(&mut out);
        assert_eq!(out.reads, vec![(id, InstanceId(0))]);
        assert!(out.messages.is_empty());
    }
    /// Leases: a leader that earned a lease answers reads at once (no message) while it
    /// holds; meanwhile the acceptors that granted it refuse another leader's ballot, so
    /// nothing newer can be chosen; once the grants run out the other leader gets through,
    /// and the old one's lease has ended before (it is shorter by the drift bound).
    #[test]
    fn a_lease_holder_reads_alone_and_nobody_else_leads_meanwhile() {
        let ms = Duration::from_millis;
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let mut nodes: Vec<Replica<u64>> = ids
            .iter()
            .map(|&id| {
                let mut config = Config::symmetric(id, ids);
                config.read_policy = ReadPolicy::Lease {
                    duration: ms(100),
                    max_drift: ms(10),
                };
                let mut r = Replica::new(&config, DurableState::default(), id.0).expect("valid");
                r.start(&mut Effects::new());
                r
            })
            .collect();
        let at = |nodes: &mut [Replica<u64>], t: u64| {
            for n in nodes.iter_mut() {
                n.observe_time(ms(t));
            }
        };
        // Within the boot wait nobody promises: a read gets no ballot.
        at(&mut nodes, 50);
        let mut out = Effects::new();
        let early = nodes[0].read(&mut out);
        let (_, reads) = pump_reads(&mut nodes, out, NodeId(1), &[]);
        assert!(reads.is_empty(), "{reads:?}");
        nodes[0].cancel_read(early);
        // After it, n1's read earns a lease at 200 (held to 290, granted to 300).
        at(&mut nodes, 200);
        let mut out = Effects::new();
        for _ in 0..60 {
            nodes[0].tick(&mut out); // its prepare timed out: again, with a higher ballot
        }
        let id = nodes[0].read(&mut out);
        let (_, reads) = pump_reads(&mut nodes, out, NodeId(1), &[]);
        assert_eq!(reads.iter().map(|r| r.1).collect::<Vec<_>>(), vec![id]);
        // Cut off from n1, n2 cannot get a ballot while n3's grant runs.
        at(&mut nodes, 250);
        let mut out = Effects::new();
        let request = ProposalId {
            seq: 7,
            ..ProposalId::default()
        };
        nodes[1].append(request, 2, &mut out);
        let seen = pump_except(&mut nodes, out, NodeId(2), &[NodeId(1)]);
        assert!(
            !seen.iter().any(|m| matches!(m, Message::Promise { .. })),
            "n3 promised during its grant"
        );
        // n1 reads alone, at once, with no message.
        at(&mut nodes, 280);
        let mut out = Effects::new();
        let alone = nodes[0].read(&mut out);
        assert_eq!(out.reads, vec![(alone, InstanceId(0))]);
        assert!(
            out.messages
                .iter()
                .all(|e| matches!(e.message, Message::Confirm { .. })),
            "only the renewal of a lease past its half (lost: n1 is cut off)"
        );
        // Past the grant, n2 gets its ballot and decides 2; n1's lease is over: its read
        // now needs a round, which the quorum refuses (they promised n2).
        at(&mut nodes, 301);
        for _ in 0..60 {
            let mut out = Effects::new();
            nodes[1].tick(&mut out);
            pump_except(&mut nodes, out, NodeId(2), &[NodeId(1)]);
        }
        assert_eq!(
            nodes[1].applied(),
            InstanceId(1),
            "n2 decided after the grant"
        );
        let mut out = Effects::new();
        nodes[0].read(&mut out);
        assert!(out.reads.is_empty(), "the lease ended at 290");
        let (_, reads) = pump_reads(&mut nodes, out, NodeId(1), &[]);
        assert!(
            reads.iter().all(|(.., seen)| *seen >= InstanceId(1)),
            "no stale read: {reads:?}"
        );
    }

    /// One tick of n1 and of n2, nothing delivered but n1's heartbeats to n2 (if `n1_heard`):
    /// n3 and the rest of the traffic are cut off. Returns the two steps' effects.
    fn tick_n1_and_n2(nodes: &mut [Replica<u64>], n1_heard: bool) -> (Effects<u64>, Effects<u64>) {
        let mut out1 = Effects::new();
        nodes[0].tick(&mut out1);
        let mut out2 = Effects::new();
        nodes[1].tick(&mut out2);
        if n1_heard {
            for e in &out1.messages {
                if e.to == NodeId(2) && matches!(e.message, Message::Heartbeat) {
                    nodes[1]
                        .on_message(NodeId(1), Message::Heartbeat, &mut out2)
                        .expect("valid input");
                }
            }
        }
        (out1, out2)
    }

    /// A follower's requests go to the leader it trusts, not to its own proposer; one the
    /// leader has not decided is sent again after `forward_every` ticks (not before), and at
    /// once to a new leader; one its client cancelled is not; a decision of another instance
    /// leaves it waiting; a read asked of the leader is asked again with it. Meanwhile neither
    /// the leader nor the follower starts a phase 1. Once the follower leads and the old
    /// leader is heard again, it steps down: its pinned request ends (the coursework's
    /// `{:abort}`) and its other one goes to the old leader.
    #[test]
    fn a_followers_requests_follow_the_leader() {
        let (n1, n2) = (NodeId(1), NodeId(2));
        let mut nodes = elected();
        for _ in 0..5 {
            tick_n1_and_n2(&mut nodes, true);
        }
        let forwarded = |status| match status {
            ProposeStatus::Forwarded(id) => id,
            other => panic!("not forwarded: {other:?}"),
        };
        let mut out = Effects::new();
        let id = forwarded(nodes[1].propose(None, 7, &mut out));
        let cancelled = forwarded(nodes[1].propose(None, 8, &mut out));
        nodes[1].cancel(cancelled);
        nodes[1].read(&mut out);
        assert!(
            out.messages.iter().all(|e| e.to == n1),
            "only to the leader: {:?}",
            out.messages
        );
        assert_eq!(out.messages.len(), 3, "{:?}", out.messages);
        // All of that is lost. n2 learns of a decision in another instance meanwhile.
        let mut out = Effects::new();
        nodes[0].propose(None, 1, &mut out);
        pump(&mut nodes, out, n1);
        assert_eq!(
            nodes[1]
                .learner()
                .decided(InstanceId(0))
                .and_then(Entry::value),
            Some(&1)
        );
        let sent_at = nodes[1].now;
        let every = nodes[1].forward_every;
        let (mut again, mut read_again) = (Vec::new(), Vec::new());
        for _ in 0..every + 10 {
            let (out1, out2) = tick_n1_and_n2(&mut nodes, true);
            assert!(
                !out1
                    .messages
                    .iter()
                    .chain(&out2.messages)
                    .any(|e| matches!(e.message, Message::Prepare { .. })),
                "nobody starts a phase 1"
            );
            for e in out2.messages {
                match e.message {
                    Message::Forward { id, .. } => again.push((nodes[1].now, e.to, id)),
                    Message::ReadIndex { .. } => read_again.push((nodes[1].now, e.to)),
                    _ => {}
                }
            }
        }
        assert_eq!(again, vec![(sent_at + every, n1, id)]);
        assert_eq!(read_again, vec![(sent_at + every, n1)]);
        // n1 falls silent: n2 takes over, and takes the request at once (its phase 1 is not
        // a forward's wait away), deciding it with n3.
        let mut took_over = false;
        for _ in 0..100 {
            let (_, out2) = tick_n1_and_n2(&mut nodes, false);
            if !took_over && nodes[1].leader() == Some(n2) {
                took_over = true;
                assert_eq!(nodes[1].own[&id].sent_to, n2, "rerouted at the change");
            }
            pump_except(&mut nodes, out2, n2, &[n1]);
            if nodes[1].applied_at(id).is_some() {
                break;
            }
        }
        assert!(took_over);
        assert!(
            nodes[1].applied_at(id).is_some(),
            "decided by the new leader"
        );
        // n2 leads; its clients pin a request at i9 (a `propose` here picks its instance
        // too) and append another; neither is decided.
        let mut out = Effects::new();
        nodes[1].propose(Some(InstanceId(9)), 50, &mut out);
        let pinned = nodes[1].last_own_request();
        let unpinned = nodes[1].next_own_request();
        nodes[1].append(unpinned, 51, &mut out);
        // n1 is heard again: n2 steps down.
        let (mut abandoned, mut to_n1) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let (_, out2) = tick_n1_and_n2(&mut nodes, true);
            abandoned.extend(out2.abandoned.iter().map(|a| a.0));
            for e in out2.messages {
                if let Message::Forward { id, .. } = e.message {
                    to_n1.push((e.to, id));
                }
            }
        }
        assert_eq!(nodes[1].leader(), Some(n1));
        assert_eq!(abandoned, vec![pinned]);
        assert_eq!(to_n1, vec![(n1, unpinned)]);
    }

    /// A forwarded request is proposed by the node that proposes (the leader) and once: a
    /// follower ignores it, the leader proposes a pinned one at its instance, and ignores it
    /// once it is applied.
    #[test]
    fn a_forwarded_request_is_proposed_by_the_leader_once() {
        let mut nodes = elected();
        let id = ProposalId {
            seq: 1,
            ..ProposalId::default()
        };
        let forward = |at| Message::Forward { id, value: 9, at };
        let mut out = Effects::new();
        nodes[1]
            .on_message(NodeId(3), forward(None), &mut out)
            .expect("valid input");
        assert!(out.messages.is_empty(), "{:?}", out.messages);
        let mut out = Effects::new();
        nodes[0]
            .on_message(NodeId(3), forward(Some(InstanceId(2))), &mut out)
            .expect("valid input");
        assert!(out.messages.iter().any(|e| matches!(
            e.message,
            Message::Accept {
                instance: InstanceId(2),
                ..
            }
        )));
        pump(&mut nodes, out, NodeId(1));
        assert_eq!(nodes[0].applied_at(id), Some(InstanceId(2)));
        let other = ProposalId {
            seq: 2,
            ..ProposalId::default()
        };
        assert_eq!(nodes[0].applied_at(other), None);
        let mut out = Effects::new();
        nodes[0]
            .on_message(NodeId(3), forward(None), &mut out)
            .expect("valid input");
        assert!(
            !out.messages
                .iter()
                .any(|e| matches!(e.message, Message::Accept { .. })),
            "applied already: {:?}",
            out.messages
        );
    }

    /// A `Nack` naming a newer epoch means this node missed a change: it asks the sender at
    /// once for the decisions it lacks. One from its own epoch only makes it back off.
    #[test]
    fn a_nack_from_a_newer_epoch_asks_for_catch_up() {
        let mut nodes = cluster();
        let mine = Ballot::new(1, NodeId(1));
        for (epoch, asks) in [(0, false), (1, true)] {
            let mut out = Effects::new();
            let promised = Ballot::in_epoch(epoch, 5, NodeId(2));
            nodes[0]
                .on_message(
                    NodeId(2),
                    Message::Nack {
                        ballot: mine,
                        promised,
                    },
                    &mut out,
                )
                .expect("valid input");
            let asked = out.messages.iter().any(|e| {
                e.to == NodeId(2)
                    && matches!(
                        e.message,
                        Message::CatchUp {
                            first: InstanceId(0)
                        }
                    )
            });
            assert_eq!(asked, asks, "epoch {epoch}: {:?}", out.messages);
        }
    }

    /// A pin is refused only beyond `max_instances_ahead` above the decided prefix: at the
    /// prefix and at the bound it is proposed. The acceptors promise the proposer's ballot.
    #[test]
    fn a_pin_is_taken_up_to_the_bound_above_the_prefix() {
        let mut nodes = cluster_with(|c| c.max_instances_ahead = 4);
        let mut out = Effects::new();
        assert_eq!(
            nodes[0].propose(Some(InstanceId(0)), 1, &mut out),
            ProposeStatus::Proposing(InstanceId(0))
        );
        assert_eq!(
            nodes[0].propose(Some(InstanceId(4)), 2, &mut out),
            ProposeStatus::Proposing(InstanceId(4))
        );
        assert_eq!(
            nodes[0].propose(Some(InstanceId(5)), 3, &mut out),
            ProposeStatus::Rejected(InputError::TooFarAhead {
                instance: InstanceId(5),
                limit: 4
            })
        );
        pump(&mut nodes, out, NodeId(1));
        assert_eq!(nodes[0].learner().first_undecided(), InstanceId(5));
        assert_eq!(nodes[1].promised(), nodes[0].proposer().ballot());
        assert_eq!(
            nodes[0].propose(Some(InstanceId(0)), 4, &mut Effects::new()),
            ProposeStatus::Decided(
                nodes[0]
                    .learner()
                    .decided(InstanceId(0))
                    .cloned()
                    .expect("decided")
            )
        );
    }

    /// Sessions are minted only once the boot's round is reserved, each new.
    #[test]
    fn sessions_are_minted_after_the_boot_and_never_twice() {
        let config = config_with(NodeId(1), |_| {});
        let mut r = Replica::<u64>::new(&config, DurableState::default(), 1).expect("valid");
        assert_eq!(r.mint_session(), None, "before start");
        r.start(&mut Effects::new());
        let a = r.mint_session().expect("started");
        let b = r.mint_session().expect("started");
        assert_eq!((a.node, a.session, b.session), (NodeId(1), 1, 2));
        assert_eq!(a.boot, b.boot);
    }

    /// A snapshot keeps `snapshot_keep_entries` below its index: while that reaches back to
    /// the log's start nothing is truncated.
    #[test]
    fn a_snapshot_within_the_kept_entries_truncates_nothing() {
        let mut nodes = cluster_with(|c| c.snapshot_keep_entries = 2);
        let mut truncated = Vec::new();
        for v in 1..=3 {
            let mut out = Effects::new();
            nodes[0].propose(None, v, &mut out);
            pump(&mut nodes, out, NodeId(1));
            let point = nodes[0].snapshot_point();
            let mut out = Effects::new();
            nodes[0]
                .compact(point, Bytes::new(), &mut out)
                .expect("newer");
            let writes: Vec<_> = out
                .writes
                .iter()
                .filter_map(|w| match w {
                    Write::TruncateBelow(i) => Some(*i),
                    _ => None,
                })
                .collect();
            truncated.push(writes);
        }
        assert_eq!(truncated, vec![vec![], vec![], vec![InstanceId(1)]]);
        assert_eq!(nodes[0].learner().log_start(), InstanceId(1));
    }

    /// A node that missed a change (cut off) learns it from a snapshot taken in the next
    /// epoch, and enters that epoch with the roles the new membership gives it: here a
    /// learner, no acceptor. Restarted from the snapshots they keep, the nodes have the
    /// roles of that epoch too.
    #[test]
    fn a_snapshot_from_a_later_epoch_moves_a_node_there() {
        let tune = |c: &mut Config| {
            c.max_instances_ahead = 4;
            c.snapshot_keep_entries = 0;
        };
        let mut nodes = cluster_with(tune);
        let n3 = NodeId(3);
        let mut out = Effects::new();
        let change = MemberChange::new([NodeId(1), NodeId(2)], [n3]);
        nodes[0].reconfigure(&change, &mut out).expect("proposed");
        pump_except(&mut nodes, out, NodeId(1), &[n3]);
        let mut out = Effects::new();
        nodes[0].tick(&mut out); // announces the tail of the window
        pump_except(&mut nodes, out, NodeId(1), &[n3]);
        for n in &mut nodes[..2] {
            assert_eq!(n.membership().epoch, 1, "{}", n.id());
            let point = n.snapshot_point();
            n.compact(point, Bytes::new(), &mut Effects::new())
                .expect("newer");
        }
        assert_eq!(nodes[2].membership().epoch, 0);
        assert!(nodes[2].acceptor().is_some());
        for _ in 0..config_with(n3, tune).catch_up_ticks {
            let mut out = Effects::new();
            nodes[2].tick(&mut out);
            pump(&mut nodes, out, n3);
        }
        assert!(nodes[2].snapshot().is_some(), "installed");
        assert_eq!(nodes[2].membership().epoch, 1);
        assert!(nodes[2].acceptor().is_none(), "a learner in epoch 1");
        for (i, acceptor) in [(0, true), (2, false)] {
            let snapshot = nodes[i].snapshot().cloned().expect("kept");
            let state = DurableState {
                log_start: snapshot.meta.index,
                snapshot: Some(snapshot),
                ..DurableState::default()
            };
            let config = config_with(nodes[i].id(), tune);
            let r = Replica::<u64>::new(&config, state, 1).expect("valid");
            assert_eq!(r.membership().epoch, 1);
            assert_eq!(r.acceptor().is_some(), acceptor, "{}", r.id());
        }
    }

    /// Two nodes propose changes in the same instance (leaderless): one is decided, and the
    /// other's caller hears that it was superseded, not that its change happened.
    #[test]
    fn a_change_that_lost_its_instance_is_superseded() {
        let mut nodes = cluster_with(|c| c.max_instances_ahead = 4);
        let mut answers: BTreeMap<NodeId, Vec<Result<Membership, ReconfigError>>> = BTreeMap::new();
        let mut record = |n: &Replica<u64>, out: &Effects<u64>| {
            answers
                .entry(n.id())
                .or_default()
                .extend(out.reconfigured.iter().cloned());
        };
        let mut out1 = Effects::new();
        let ours = MemberChange::new([NodeId(1), NodeId(2)], []);
        let at1 = nodes[0].reconfigure(&ours, &mut out1).expect("proposed");
        let mut out2 = Effects::new();
        let theirs = MemberChange::new([NodeId(2), NodeId(3)], []);
        let at2 = nodes[1].reconfigure(&theirs, &mut out2).expect("proposed");
        assert_eq!(at1, at2);
        pump_with(&mut nodes, out1, NodeId(1), &[], &mut record);
        pump_with(&mut nodes, out2, NodeId(2), &[], &mut record);
        for _ in 0..100 {
            for i in 0..3 {
                let mut out = Effects::new();
                nodes[i].tick(&mut out);
                let from = nodes[i].id();
                pump_with(&mut nodes, out, from, &[], &mut record);
            }
        }
        let epoch1 = nodes[0].membership().clone();
        assert_eq!(epoch1.epoch, 1);
        assert_eq!(nodes[1].membership(), &epoch1);
        assert_eq!(answers[&NodeId(1)], vec![Ok(epoch1)]);
        assert_eq!(answers[&NodeId(2)], vec![Err(ReconfigError::Superseded)]);
    }

    /// Without reads waiting, a message starts no round: an idle leaderless node that hears a
    /// heartbeat sends nothing.
    #[test]
    fn an_idle_node_without_reads_stays_idle() {
        let mut nodes = cluster();
        let mut out = Effects::new();
        nodes[1]
            .on_message(NodeId(1), Message::Heartbeat, &mut out)
            .expect("valid input");
        assert!(out.messages.is_empty(), "{:?}", out.messages);
    }
}
