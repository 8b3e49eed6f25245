//! The model: real [`Replica`]s wired to a nondeterministic network, as a `stateright::Model`.
//!
//! Nothing of the protocol is re-implemented here. A step hands one input (a message, a tick, a
//! client proposal) to one node's `Replica`, then does with the returned `Effects` exactly what
//! the runtime does: apply every write to the node's durable state, atomically with the step,
//! and only then put the messages on the network. A crash rebuilds the `Replica` from that
//! durable state with `Replica::new`, as the runtime does on start-up.
//!
//! The network is a set of in-flight packets. Two modes:
//! - [`NetworkMode::Duplicating`]: a delivered packet stays in flight, so it can be delivered
//!   again (duplication), in any order (reordering), or never (loss). For safety this covers
//!   every lossy, duplicating, reordering network: a dropped packet is one never delivered.
//!   It is also the smallest state space, because the network only grows.
//! - [`NetworkMode::Lossy`]: the same faults as explicit actions — deliver and remove, deliver
//!   and keep a copy, drop. Larger state space; used to check the two modes agree.
//!
//! Ghost history for the properties ([`History`]) is recorded from the effects of each step:
//! values proposed, values learned (`Effects::decided`), each acceptor's vote (an `Accepted`
//! it sent) and each `Accept` a proposer sent.

use crate::wire::{Disk, Packet, Shared};
use paxos_core::testing::{AcceptorFaults, ProposerFaults};
use paxos_core::{
    Ballot, Config, Effects, Entry, InstanceId, MemberChange, Message, NodeId, Phase, ReadId,
    Replica, Step,
};
use stateright::{Model, Property};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How the network may misbehave (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Delivered packets stay in flight; loss is "never delivered".
    Duplicating,
    /// Deliver-and-remove, deliver-and-keep and drop are separate actions.
    Lossy,
}

/// One scripted client request: `node` is asked to propose `value` in `instance` (`None`: the
/// next free instance). It happens at most once, at any point of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub node: NodeId,
    pub instance: Option<InstanceId>,
    pub value: u64,
    /// Only after `node` has restarted at least once (seed 003 Q4: same id, new value).
    pub after_restart: bool,
}

/// Bounds and shape of one model; turned into a checker by `run::check`.
#[derive(Clone, Debug)]
pub struct PaxosModel {
    /// Config per node, in node order.
    pub configs: Vec<Config>,
    pub proposals: Vec<Proposal>,
    /// Ticks each proposer node may take (timeouts, phase-2 resends, end of backoff).
    pub ticks_per_proposer: u8,
    /// Nodes that may crash and recover from their durable state.
    pub crashable: BTreeSet<NodeId>,
    /// Crash+recover steps allowed in one run, over all nodes.
    pub max_crashes: u8,
    pub network: NetworkMode,
    /// Make every proposal without `after_restart` in the initial state, in order, instead of
    /// at any time. A late proposal is then a proposal whose messages are slow.
    pub propose_at_start: bool,
    pub acceptor_faults: AcceptorFaults,
    pub proposer_faults: ProposerFaults,
    /// Also check that every state heals (see [`PaxosModel::heal`]): costly, so opt-in.
    pub check_healing: bool,
    /// Nodes that may take a snapshot of what they applied and compact their log below it.
    pub compactable: BTreeSet<NodeId>,
    /// Snapshots allowed in one run, over all nodes.
    pub max_compactions: u8,
    /// Nodes (besides the proposers) whose clock ticks: their learner asks for missed
    /// decisions every tick (`catch_up_ticks = 1`), and gets a snapshot where its peers
    /// compacted.
    pub catch_up: BTreeSet<NodeId>,
    /// Break the model's state machine on purpose: its snapshots leave out the last entry
    /// applied (to prove the install check catches a snapshot that is not the prefix).
    pub snapshot_drops_last_entry: bool,
    /// Linearizable reads ([`Replica::read`]) by clients of these nodes, each at most once,
    /// at any point of a run.
    pub reads: Vec<NodeId>,
    /// Start the search from a settled state: what is made at start, with every message
    /// delivered in order except those to the nodes in the set (lost), so every other node
    /// knows the outcome and those know nothing.
    pub settled_except: Option<BTreeSet<NodeId>>,
    /// Leader leases of this many time units (1 ms each; no drift: one clock for all), and
    /// the time the model may advance to ([`Action::Advance`]). The run starts once the boot
    /// wait is over (at one lease).
    pub lease: Option<(u64, u64)>,
    /// Read #0 is made at the start (before settling), not at any time.
    pub read_at_start: bool,
    /// Membership changes asked of these nodes ([`Replica::reconfigure`]), each at most once,
    /// at any point of a run.
    pub reconfigurations: Vec<(NodeId, MemberChange)>,
}

/// Ghost state: what happened so far, for the properties only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Every value a client proposed.
    pub proposed: BTreeSet<u64>,
    /// Every `(instance, entry)` any node reported as decided.
    pub learned: BTreeSet<(InstanceId, Entry<u64>)>,
    /// Every vote: acceptor sent `Accepted(instance, ballot, entry)`.
    pub votes: BTreeSet<(InstanceId, Ballot, Entry<u64>, NodeId)>,
    /// Every `Accept(instance, ballot, entry)` a proposer sent.
    pub accepts_sent: BTreeSet<(InstanceId, Ballot, Entry<u64>)>,
    /// Every snapshot a node installed from a peer: its index and the state machine bytes
    /// (the applied prefix, see [`applied_prefix`]).
    pub installed: BTreeSet<(InstanceId, Vec<u8>)>,
    /// Reads begun (index into `PaxosModel::reads`): their id at the node, and every value
    /// any node had learned when the read began (what the read must see).
    pub reads_begun: BTreeMap<usize, (ReadId, BTreeSet<u64>)>,
    /// Reads answered: index, and the values the node had applied when it answered.
    pub reads_answered: BTreeMap<usize, BTreeSet<u64>>,
}

/// The model's state machine: the applied prefix itself, `(instance, entry)` in order. Its
/// state at a node is what its snapshot holds plus what it applied since.
pub fn applied_prefix(replica: &Replica<u64>) -> Vec<(InstanceId, Entry<u64>)> {
    let (mut prefix, from) = match replica.snapshot_state() {
        Some((meta, state)) => (
            postcard::from_bytes::<Vec<(InstanceId, Entry<u64>)>>(&state)
                .expect("the model's snapshots hold a prefix"),
            meta.index,
        ),
        None => (Vec::new(), InstanceId(0)),
    };
    prefix.extend(
        replica
            .applied_log(from, usize::MAX)
            .into_iter()
            .map(|d| (d.instance, d.entry)),
    );
    prefix
}

/// One node: its protocol state and its durable state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub replica: Replica<u64>,
    pub disk: Disk,
    pub ticks: u8,
    pub restarts: u8,
}

/// The model state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub nodes: Vec<Shared<Node>>,
    pub network: BTreeSet<Packet>,
    /// Indices into `PaxosModel::proposals` already made.
    pub proposed: BTreeSet<usize>,
    /// Indices into `PaxosModel::reads` already begun.
    pub read: BTreeSet<usize>,
    /// Indices into `PaxosModel::reconfigurations` already asked.
    pub reconfigured: BTreeSet<usize>,
    pub crashes: u8,
    pub compactions: u8,
    pub history: History,
    /// Reads a node made ready within the step that began them (answered once the step
    /// returned their id).
    pub pending_ready: BTreeMap<NodeId, BTreeSet<ReadId>>,
    /// The time (ms), the same on every node (models with leases only).
    pub clock: u64,
}

/// What can happen next.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// A client request (index into `PaxosModel::proposals`).
    Propose(usize),
    /// A client read (index into `PaxosModel::reads`).
    Read(usize),
    /// An operator's membership change (index into `PaxosModel::reconfigurations`).
    Reconfigure(usize),
    /// Time passes: one unit on every clock (models with leases).
    Advance,
    /// A tick of time at a node.
    Tick(NodeId),
    /// The node crashes and restarts from its durable state.
    Crash(NodeId),
    /// The node snapshots what it applied and compacts its log below it.
    Compact(NodeId),
    /// The packet is delivered; in `Lossy` mode it leaves the network.
    Deliver(Packet),
    /// The packet is delivered and a copy stays in flight (`Lossy` mode only).
    Duplicate(Packet),
    /// The packet is lost (`Lossy` mode only).
    Drop(Packet),
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Propose(i) => write!(f, "propose #{i}"),
            Action::Read(i) => write!(f, "read #{i}"),
            Action::Reconfigure(i) => write!(f, "reconfigure #{i}"),
            Action::Advance => write!(f, "time passes"),
            Action::Tick(n) => write!(f, "tick {n}"),
            Action::Crash(n) => write!(f, "crash+recover {n}"),
            Action::Compact(n) => write!(f, "compact {n}"),
            Action::Deliver(p) => write!(f, "deliver {p:?}"),
            Action::Duplicate(p) => write!(f, "deliver (keep copy) {p:?}"),
            Action::Drop(p) => write!(f, "drop {p:?}"),
        }
    }
}

/// Seed of every replica's backoff jitter (fixed: the model explores all orders anyway).
const SEED: u64 = 7;

impl PaxosModel {
    /// A model of `nodes` with the given roles, scripted proposals and no faults; timing is
    /// shrunk so one tick is a timeout (`phase_timeout_ticks = 1`, `backoff_ticks = (1, 1)`) and
    /// catch-up is off (it only re-sends decisions, never decides).
    pub fn new(
        nodes: &[u64],
        acceptors: &[u64],
        learners: &[u64],
        proposals: Vec<Proposal>,
    ) -> PaxosModel {
        let ids = nodes.iter().map(|&n| NodeId(n));
        let configs = nodes
            .iter()
            .map(|&n| {
                let mut c = Config::symmetric(NodeId(n), ids.clone())
                    .with_acceptors(acceptors.iter().map(|&a| NodeId(a)))
                    .with_learners(learners.iter().map(|&l| NodeId(l)));
                c.phase_timeout_ticks = 1;
                c.backoff_ticks = (1, 1);
                c.catch_up_ticks = 0;
                c
            })
            .collect();
        PaxosModel {
            configs,
            proposals,
            ticks_per_proposer: 1,
            crashable: BTreeSet::new(),
            max_crashes: 0,
            network: NetworkMode::Duplicating,
            propose_at_start: false,
            acceptor_faults: AcceptorFaults::default(),
            proposer_faults: ProposerFaults::default(),
            check_healing: false,
            compactable: BTreeSet::new(),
            max_compactions: 0,
            catch_up: BTreeSet::new(),
            snapshot_drops_last_entry: false,
            reads: Vec::new(),
            settled_except: None,
            lease: None,
            read_at_start: false,
            reconfigurations: Vec::new(),
        }
    }

    /// Leader leases of `units` ms (no drift), time advancing up to `until`.
    pub fn with_lease(mut self, units: u64, until: u64) -> Self {
        self.lease = Some((units, until));
        for c in &mut self.configs {
            c.read_policy = paxos_core::ReadPolicy::Lease {
                duration: std::time::Duration::from_millis(units),
                max_drift: std::time::Duration::ZERO,
            };
        }
        self
    }

    /// Let `compactable` snapshot and compact (at most `max` times in a run, their log kept
    /// from the snapshot's index only), and `catch_up` tick and ask for what they missed.
    pub fn with_compaction(
        mut self,
        compactable: impl IntoIterator<Item = NodeId>,
        max: u8,
        catch_up: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        self.compactable = compactable.into_iter().collect();
        self.max_compactions = max;
        self.catch_up = catch_up.into_iter().collect();
        for c in &mut self.configs {
            c.snapshot_keep_entries = 0;
            if self.catch_up.contains(&c.id) {
                c.catch_up_ticks = 1;
            }
        }
        self
    }

    /// The faults stop in `state`: whatever is in flight is lost, and from then on every
    /// message is delivered, in order, and every node's clock ticks, with no client and no
    /// crash. Runs `rounds` rounds (each: one tick at every node, then every delivery that
    /// follows) or until `healed` holds, and returns the state reached. A quiet network is no
    /// reason to stop: a proposer in backoff, or waiting out a hole, sends nothing for ticks.
    pub fn heal(&self, state: &State, rounds: usize, healed: impl Fn(&State) -> bool) -> State {
        let mut s = state.clone();
        s.network.clear();
        for _ in 0..rounds {
            if healed(&s) {
                break;
            }
            for i in 0..self.configs.len() {
                self.step(&mut s, i, |r, out| r.tick(out));
            }
            // Bounded: a protocol that keeps sending for ever fails the check, not the run.
            for _ in 0..10_000 {
                let Some(p) = s.network.pop_first() else {
                    break;
                };
                self.deliver(&mut s, &p);
            }
        }
        s
    }

    fn index(&self, id: NodeId) -> usize {
        self.configs
            .iter()
            .position(|c| c.id == id)
            .expect("node of the model")
    }

    /// Nodes whose proposer may act: those clients propose, read or reconfigure at.
    fn proposers(&self) -> BTreeSet<NodeId> {
        let readers = self.reads.iter().copied();
        let operators = self.reconfigurations.iter().map(|(n, _)| *n);
        self.proposals
            .iter()
            .map(|p| p.node)
            .chain(readers)
            .chain(operators)
            .collect()
    }

    fn begin_read(&self, state: &mut State, i: usize) {
        state.read.insert(i);
        let learned = crate::properties::learned(state)
            .into_values()
            .flatten()
            .filter_map(|e| e.value().copied())
            .collect();
        let node = self.index(self.reads[i]);
        let mut id = None;
        self.step(state, node, |r, out| id = Some(r.read(out)));
        if let Some(id) = id {
            state.history.reads_begun.insert(i, (id, learned));
        }
        // A read answered at once (the broken switch) was answered inside the step, before
        // it was known as begun: look again.
        self.answer_reads(state, node, &[]);
    }

    /// Record the reads of node `index` that `ready` (or an earlier step) made answerable:
    /// what the node had applied is what the read returns.
    fn answer_reads(&self, state: &mut State, index: usize, ready: &[(ReadId, InstanceId)]) {
        let node = self.configs[index].id;
        let applied: BTreeSet<u64> = applied_prefix(&state.nodes[index].replica)
            .into_iter()
            .filter_map(|(_, e)| e.value().copied())
            .collect();
        let pending = state.pending_ready.remove(&node).unwrap_or_default();
        let ids: BTreeSet<ReadId> = ready.iter().map(|(r, _)| *r).chain(pending).collect();
        for id in ids {
            let begun = self
                .reads
                .iter()
                .enumerate()
                .filter(|(_, n)| **n == node)
                .map(|(k, _)| k)
                .find(|k| {
                    state
                        .history
                        .reads_begun
                        .get(k)
                        .is_some_and(|(r, _)| *r == id)
                });
            match begun {
                Some(k) => {
                    state
                        .history
                        .reads_answered
                        .entry(k)
                        .or_insert_with(|| applied.clone());
                }
                None => {
                    state.pending_ready.entry(node).or_default().insert(id);
                }
            }
        }
    }

    /// Start node `index` from `disk`, as the runtime does: build the replica, then make its
    /// boot round durable before it does anything else.
    fn boot(&self, index: usize, disk: &mut Disk) -> Replica<u64> {
        let mut replica = Replica::new(&self.configs[index], disk.clone(), SEED)
            .expect("valid config")
            .with_faults(self.acceptor_faults, self.proposer_faults);
        let mut out = Effects::new();
        replica.start(&mut out);
        for w in &out.writes {
            disk.apply(w);
        }
        replica
    }

    fn make_proposal(&self, state: &mut State, i: usize) {
        let p = self.proposals[i];
        state.proposed.insert(i);
        state.history.proposed.insert(p.value);
        self.step(state, self.index(p.node), |r, out| {
            r.propose(p.instance, p.value, out);
        });
    }

    fn deliver(&self, state: &mut State, p: &Packet) {
        let message = p.msg.clone();
        self.step(state, self.index(p.to), |r, out| {
            r.on_message(p.from, message, out)
                .expect("members send only valid input");
        });
    }

    /// Run one step of node `index` and apply its effects as the runtime would.
    fn step(
        &self,
        state: &mut State,
        index: usize,
        input: impl FnOnce(&mut Replica<u64>, &mut Effects<u64>),
    ) {
        let mut node = (*state.nodes[index]).clone();
        let from = node.replica.id();
        let mut out = Effects::new();
        node.replica
            .observe_time(std::time::Duration::from_millis(state.clock));
        input(&mut node.replica, &mut out);
        // As the runtime does after the last input of a step.
        node.replica.end_step(&mut out);
        // The runtime's own ordering (`Step::plan`): here the save is atomic with the step, so
        // what may overtake it and what waits for it both leave after it.
        let step = Step::plan(std::mem::take(&mut out.messages), &out.writes, true, false);
        // 1. The writes become durable with the step ...
        for w in &out.writes {
            node.disk.apply(w);
        }
        // 2. ... decisions are reported (and installed snapshots) ...
        for (instance, entry) in &out.decided {
            state.history.learned.insert((*instance, entry.clone()));
        }
        for r in &out.restored {
            state
                .history
                .installed
                .insert((r.meta.index, r.state.to_vec()));
        }
        state.nodes[index] = Shared::new(node);
        self.answer_reads(state, index, &out.reads);
        // 3. ... and only then do the messages leave.
        for env in step.early.into_iter().chain(step.late) {
            let msg = env.message;
            match &msg {
                Message::Accepted {
                    ballot,
                    instance,
                    entry,
                } => {
                    // Under the leader strategy the entry is left out: the vote is for what
                    // this acceptor holds at that ballot.
                    let entry = entry.clone().or_else(|| {
                        let node = &state.nodes[index];
                        let accepted = node.replica.acceptor()?.accepted(*instance)?;
                        (accepted.0 == *ballot).then(|| accepted.1.clone())
                    });
                    if let Some(entry) = entry {
                        state
                            .history
                            .votes
                            .insert((*instance, *ballot, entry, from));
                    }
                }
                Message::Accept {
                    ballot,
                    instance,
                    entry,
                } => {
                    state
                        .history
                        .accepts_sent
                        .insert((*instance, *ballot, entry.clone()));
                }
                _ => {}
            }
            state.network.insert(Packet {
                from,
                to: env.to,
                msg,
            });
        }
    }
}

impl Model for PaxosModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let nodes = (0..self.configs.len())
            .map(|i| {
                let mut disk = Disk::default();
                Shared::new(Node {
                    replica: self.boot(i, &mut disk),
                    disk,
                    ticks: 0,
                    restarts: 0,
                })
            })
            .collect();
        let mut state = State {
            nodes,
            network: BTreeSet::new(),
            proposed: BTreeSet::new(),
            read: BTreeSet::new(),
            reconfigured: BTreeSet::new(),
            pending_ready: BTreeMap::new(),
            // Every node booted at 0; the run starts after the boot wait of one lease.
            clock: self.lease.map_or(0, |(units, _)| units),
            crashes: 0,
            compactions: 0,
            history: History::default(),
        };
        if self.propose_at_start {
            for (i, p) in self.proposals.iter().enumerate() {
                if !p.after_restart {
                    self.make_proposal(&mut state, i);
                }
            }
        }
        if self.read_at_start && !self.reads.is_empty() {
            self.begin_read(&mut state, 0);
        }
        if let Some(unaware) = &self.settled_except {
            // Bounded like `heal`: a protocol that keeps sending fails the check, not the run.
            for _ in 0..10_000 {
                let Some(p) = state.network.pop_first() else {
                    break;
                };
                if !unaware.contains(&p.to) {
                    self.deliver(&mut state, &p);
                }
            }
        }
        vec![state]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for (i, p) in self.proposals.iter().enumerate() {
            let restarted = state.nodes[self.index(p.node)].restarts > 0;
            if !state.proposed.contains(&i) && (restarted || !p.after_restart) {
                actions.push(Action::Propose(i));
            }
        }
        for i in 0..self.reads.len() {
            if !state.read.contains(&i) {
                actions.push(Action::Read(i));
            }
        }
        for i in 0..self.reconfigurations.len() {
            if !state.reconfigured.contains(&i) {
                actions.push(Action::Reconfigure(i));
            }
        }
        if let Some((_, until)) = self.lease
            && state.clock < until
        {
            actions.push(Action::Advance);
        }
        // Only proposers act on time: election and catch-up are off in these models.
        // An idle proposer's tick only moves its clock, and every deadline is relative to that
        // clock: skipping it loses no behaviour.
        for n in self.proposers() {
            let node = &state.nodes[self.index(n)];
            // In a duplicating network a leader's tick only re-sends `Accept`s still in flight.
            let useful = match node.replica.proposer().phase() {
                Phase::Idle => false,
                Phase::Leading { .. } => self.network == NetworkMode::Lossy,
                Phase::Preparing { .. } | Phase::Backoff { .. } => true,
            };
            if useful && node.ticks < self.ticks_per_proposer {
                actions.push(Action::Tick(n));
            }
        }
        for &n in &self.catch_up {
            if state.nodes[self.index(n)].ticks < self.ticks_per_proposer {
                actions.push(Action::Tick(n));
            }
        }
        if state.crashes < self.max_crashes {
            actions.extend(self.crashable.iter().map(|&n| Action::Crash(n)));
        }
        if state.compactions < self.max_compactions {
            for &n in &self.compactable {
                let r = &state.nodes[self.index(n)].replica;
                let kept = r.snapshot().map_or(InstanceId(0), |s| s.meta.index);
                if r.applied() > kept {
                    actions.push(Action::Compact(n));
                }
            }
        }
        for p in &state.network {
            actions.push(Action::Deliver(p.clone()));
            if self.network == NetworkMode::Lossy {
                actions.push(Action::Duplicate(p.clone()));
                actions.push(Action::Drop(p.clone()));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Propose(i) => self.make_proposal(&mut state, i),
            Action::Read(i) => self.begin_read(&mut state, i),
            Action::Reconfigure(i) => {
                state.reconfigured.insert(i);
                let (node, change) = &self.reconfigurations[i];
                // A refusal (not the leader, a change in progress) is the operator's to retry:
                // the model asks once, so runs where it was refused just go on without it.
                self.step(&mut state, self.index(*node), |r, out| {
                    let _ = r.reconfigure(change, out);
                });
            }
            Action::Advance => state.clock += 1,
            Action::Tick(n) => {
                let i = self.index(n);
                let mut node = (*state.nodes[i]).clone();
                node.ticks += 1;
                state.nodes[i] = Shared::new(node);
                self.step(&mut state, i, |r, out| r.tick(out));
            }
            Action::Crash(n) => {
                let i = self.index(n);
                state.crashes += 1;
                let mut node = (*state.nodes[i]).clone();
                node.restarts += 1;
                node.replica = self.boot(i, &mut node.disk);
                state.nodes[i] = Shared::new(node);
            }
            Action::Compact(n) => {
                state.compactions += 1;
                let drop_last = self.snapshot_drops_last_entry;
                self.step(&mut state, self.index(n), |r, out| {
                    let mut prefix = applied_prefix(r);
                    if drop_last {
                        prefix.pop();
                    }
                    let state = postcard::to_allocvec(&prefix).expect("encodes");
                    r.compact(r.snapshot_point(), state.into(), out)
                        .expect("applied past the kept snapshot");
                });
            }
            Action::Deliver(p) => {
                if self.network == NetworkMode::Lossy {
                    state.network.remove(&p);
                }
                self.deliver(&mut state, &p);
            }
            Action::Duplicate(p) => self.deliver(&mut state, &p),
            Action::Drop(p) => {
                state.network.remove(&p);
            }
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        crate::properties::all()
    }
}
