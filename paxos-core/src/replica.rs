//! A node's roles composed: acceptor, proposer, learner and (optionally) leader detector,
//! plus the node's clients: their requests, routed to the leader, and the applied log.

use crate::acceptor::{Acceptor, AcceptorFaults};
use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::{Config, ConfigError, LeaderMode};
use crate::effects::Effects;
use crate::election::Election;
use crate::learner::Learner;
use crate::log::{ClientId, Decision, Entry, ProposalId};
use crate::message::{Message, Value};
use crate::proposer::{Phase, Proposer, ProposerFaults};
use crate::session::Sessions;
use crate::storage::DurableState;
use crate::validate::{InputError, check_instance, check_message};
use std::collections::{BTreeMap, BTreeSet};

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
    nodes: BTreeSet<NodeId>,
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
    now: u64,
}

impl<V: Value> Replica<V> {
    /// Rebuild a node from its durable state; `seed` feeds its backoff jitter.
    ///
    /// # Errors
    /// An invalid `config`.
    pub fn new(config: &Config, state: DurableState<V>, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::assemble(config, state, seed))
    }

    /// [`Replica::new`] for a `config` already validated (the runtime checks it when the node
    /// is built, before anything runs).
    pub(crate) fn assemble(config: &Config, state: DurableState<V>, seed: u64) -> Self {
        // Rule: never reuse a ballot. Start above every round used (persisted) or seen (promised).
        let max_round = state.proposer_round.max(state.promised.round);
        let learner = Learner::new(config, state.decided);
        // The proposer starts at what the learner recovered, not at instance 0, so a restarted
        // leader's phase 1 asks only for what it does not know.
        let frontier = learner.first_undecided();
        let decided_above = learner
            .decisions()
            .range(frontier..)
            .map(|(i, _)| *i)
            .collect();
        let proposer = Proposer::new(config, max_round, seed, frontier, decided_above);
        // The sessions are a function of the decided prefix: replay it.
        let mut sessions = Sessions::new();
        for (&instance, entry) in learner.decisions().range(..frontier) {
            sessions.apply(instance, entry);
        }
        Replica {
            id: config.id,
            nodes: config.nodes.clone(),
            acceptor: config
                .is_acceptor()
                .then(|| Acceptor::new(config, state.promised, state.accepted)),
            proposer,
            learner,
            election: (config.leader_mode == LeaderMode::Elected).then(|| Election::new(config)),
            was_leader: false,
            boot: None,
            sessions_minted: 0,
            next_seq: 0,
            own: BTreeMap::new(),
            sessions,
            applied: frontier,
            max_ahead: config.max_instances_ahead,
            forward_every: config.phase_timeout_ticks.saturating_mul(2).max(1),
            now: 0,
        }
    }

    /// Break this node on purpose, to prove a checker catches it (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn with_faults(self, acceptor: AcceptorFaults, proposer: ProposerFaults) -> Self {
        self.break_on_purpose((acceptor, proposer))
    }

    /// [`Replica::with_faults`] for the runtime, which holds the switches in every build (they
    /// can be turned on only where `testing` exports them).
    pub(crate) fn break_on_purpose(mut self, faults: (AcceptorFaults, ProposerFaults)) -> Self {
        self.acceptor = self.acceptor.map(|a| a.with_faults(faults.0));
        self.proposer = self.proposer.with_faults(faults.1);
        self
    }

    /// Begin this boot: reserve a round as the boot's number, so every request id minted
    /// from now on is new forever ([`ClientId`]). Its write must be durable before anything
    /// of this boot leaves the node; the runtime saves it before it serves.
    pub fn start(&mut self, out: &mut Effects<V>) {
        if self.boot.is_none() {
            self.boot = self.proposer.reserve_round(out);
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

    /// True if requests go to this node's own proposer (leaderless, or the leader).
    fn proposes_here(&self) -> bool {
        self.election.as_ref().is_none_or(Election::is_leader)
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
        match at {
            Some(at) if self.learner.decided(at).is_some() => {}
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
        if !self.nodes.contains(&from) {
            return Err(InputError::NotAMember(from));
        }
        check_message(&message)?;
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
            } => self
                .proposer
                .on_promise(from, ballot, first, accepted, more, out),
            Message::Nack { ballot, promised } => self.proposer.on_nack(ballot, promised),
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
            Message::CatchUp { first } => self.learner.on_catch_up(from, first, out),
            Message::Heartbeat => {}
            Message::Forward { id, value, at } => self.on_forward(id, value, at, out),
        }
        self.after_decisions(decided_before, out);
        Ok(())
    }

    /// Call at the end of a runtime step (after its last input, before its writes are saved):
    /// if the step sends `Accept`s to peers, the decisions this node has yet to announce
    /// (leader strategy) go with them, in the same flush, instead of on the next tick.
    pub fn end_step(&mut self, out: &mut Effects<V>) {
        if self.learner.has_unannounced()
            && out
                .messages
                .iter()
                .any(|e| e.to != self.id && matches!(e.message, Message::Accept { .. }))
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
        self.learner.tick(out);
        self.after_decisions(decided_before, out);
    }

    /// This node stopped leading: its proposer gives everything up. Its own clients' requests
    /// for any instance go to the new leader; the ones pinned to an instance (Elixir's
    /// `propose_at`) end as the coursework's `{:abort}`.
    fn step_down(&mut self, out: &mut Effects<V>) {
        let leader = self.leader();
        tracing::info!(node = %self.id, ballot = %self.proposer.ballot(), ?leader, "no longer the leader");
        let in_flight = self.proposer.step_down();
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

    /// New decisions reach the proposer; then the decided prefix is applied in order.
    fn after_decisions(&mut self, from: usize, out: &mut Effects<V>) {
        let first = self.learner.first_undecided();
        let decided: Vec<(InstanceId, Entry<V>)> = out.decided[from..].to_vec();
        for (instance, entry) in &decided {
            self.proposer.on_decided(*instance, entry, first, out);
            // A client's request pinned to this instance is answered by its decision.
            self.own.retain(|_, o| o.at != Some(*instance));
        }
        while self.applied < first {
            let instance = self.applied;
            let Some(entry) = self.learner.decided(instance).cloned() else {
                break;
            };
            let applied = self.sessions.apply(instance, &entry);
            if let Some(id) = entry.id() {
                self.own.remove(&id);
            }
            out.applied.push((instance, entry, applied));
            self.applied = instance.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LearnerStrategy;
    use crate::message::Envelope;
    use std::collections::VecDeque;

    fn cluster() -> Vec<Replica<u64>> {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        ids.iter()
            .map(|&id| {
                let config =
                    Config::symmetric(id, ids).with_learner_strategy(LearnerStrategy::Leader);
                let mut r = Replica::new(&config, DurableState::default(), id.0).expect("valid");
                r.start(&mut Effects::new());
                r
            })
            .collect()
    }

    /// Deliver every message (FIFO) until the cluster is quiet; returns the messages seen.
    fn pump(nodes: &mut [Replica<u64>], mut out: Effects<u64>, from: NodeId) -> Vec<Message<u64>> {
        let mut queue: VecDeque<(NodeId, Envelope<u64>)> =
            out.messages.drain(..).map(|e| (from, e)).collect();
        let mut seen = Vec::new();
        while let Some((from, env)) = queue.pop_front() {
            seen.push(env.message.clone());
            let node = &mut nodes[(env.to.0 - 1) as usize];
            let mut out = Effects::new();
            node.on_message(from, env.message, &mut out)
                .expect("valid input");
            node.end_step(&mut out);
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

    /// Input no correct member sends is refused before any rule runs and changes nothing: a
    /// `Nack` naming round `u64::MAX` (a proposer would climb above it and wrap), a `Decided`
    /// at instance `u64::MAX` (the frontier would wrap), a message from a stranger, and a
    /// client asking for an instance beyond the bound.
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
        assert_eq!(
            nodes[0].propose(Some(InstanceId(u64::MAX)), 5, &mut out),
            ProposeStatus::Rejected(InputError::InstanceOutOfRange {
                instance: InstanceId(u64::MAX)
            })
        );
        assert_eq!(out, Effects::new());
        assert_eq!(nodes[0], before);
    }
}
