//! A node's roles composed: acceptor, proposer, learner and (optionally) leader detector.

use crate::acceptor::{Acceptor, AcceptorFaults};
use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::{Config, ConfigError, LeaderMode};
use crate::effects::Effects;
use crate::election::Election;
use crate::learner::Learner;
use crate::message::{Message, Value};
use crate::proposer::{Phase, Proposer, ProposerFaults};
use crate::storage::DurableState;
use crate::validate::{InputError, check_instance, check_message};

/// What became of a client's proposal, as far as this node can tell at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeStatus<V> {
    /// The instance was already decided with this value.
    Decided(V),
    /// The proposal is under way in this instance; its decision will appear in
    /// [`Effects::decided`].
    Proposing(InstanceId),
    /// Leader mode is on and this node is not the leader: ask `leader`, or retry later.
    NotLeader {
        /// The node this one trusts as leader.
        leader: NodeId,
    },
    /// The request itself is invalid (an instance beyond [`InstanceId::MAX`]).
    Rejected(InputError),
}

/// One node's protocol state.
///
/// Still pure: [`Replica`] routes each input to the roles it concerns and wires their outputs
/// together (a chosen value reaches the learner; a decision stops the proposer retrying). The
/// runtime, the in-process pump and the model checker all drive this one type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Replica<V> {
    id: NodeId,
    nodes: std::collections::BTreeSet<NodeId>,
    acceptor: Option<Acceptor<V>>,
    proposer: Proposer<V>,
    learner: Learner<V>,
    election: Option<Election>,
    was_leader: bool,
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
        Replica {
            id: config.id,
            nodes: config.nodes.clone(),
            acceptor: config
                .is_acceptor()
                .then(|| Acceptor::new(config, state.promised, state.accepted)),
            proposer: Proposer::new(config, max_round, seed),
            learner: Learner::new(config, state.decided),
            election: (config.leader_mode == LeaderMode::Elected).then(|| Election::new(config)),
            was_leader: false,
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

    /// A client proposes `value` in `instance`, or in the next instance this node sees free.
    pub fn propose(
        &mut self,
        instance: Option<InstanceId>,
        value: V,
        out: &mut Effects<V>,
    ) -> ProposeStatus<V> {
        if let Some(Err(e)) = instance.map(check_instance) {
            return ProposeStatus::Rejected(e);
        }
        if let Some(v) = instance.and_then(|i| self.learner.decided(i)) {
            return ProposeStatus::Decided(v.clone());
        }
        if let Some(e) = self.election.as_ref().filter(|e| !e.is_leader()) {
            return ProposeStatus::NotLeader { leader: e.leader() };
        }
        let instance = instance.unwrap_or_else(|| {
            self.proposer
                .next_free_instance(self.learner.next_after_decided())
        });
        self.proposer.propose(instance, value, out);
        ProposeStatus::Proposing(instance)
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
                value,
            } => {
                if let Some(a) = &mut self.acceptor {
                    a.on_accept(from, ballot, instance, value, out);
                }
            }
            Message::Promise { ballot, accepted } => {
                self.proposer.on_promise(from, ballot, accepted, out)
            }
            Message::Nack { ballot, promised } => self.proposer.on_nack(ballot, promised),
            Message::Accepted {
                ballot,
                instance,
                value,
            } => {
                if let Some(chosen) = self.proposer.on_accepted(from, ballot, instance) {
                    self.learner.on_chosen_here(ballot, instance, chosen, out);
                }
                if let Some(value) = value {
                    self.learner.on_accepted(from, ballot, instance, value, out);
                }
            }
            Message::Decided { instance, value } => {
                self.learner.on_decided(instance, value, out);
            }
            Message::Chosen { ballot, instances } => {
                // Only `ballot`'s proposer sends this, and it proposed one value per instance at
                // `ballot`: whatever this acceptor accepted there at `ballot` is that value.
                // Instances it did not accept there are left to catch-up.
                for instance in instances {
                    let accepted = self.acceptor.as_ref().and_then(|a| a.accepted(instance));
                    if let Some((b, value)) = accepted
                        && *b == ballot
                    {
                        let value = value.clone();
                        self.learner.on_decided(instance, value, out);
                    }
                }
            }
            Message::CatchUp { first } => self.learner.on_catch_up(from, first, out),
            Message::Heartbeat => {}
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
        if let Some(e) = &mut self.election {
            e.tick(out);
            let leader = e.is_leader();
            if self.was_leader && !leader {
                self.proposer.step_down();
                self.proposer.forget_wanted();
            }
            // A leader holds a ballot at all times, so it recovers what earlier leaders left
            // half-done even before a client asks.
            if leader && matches!(self.proposer.phase(), Phase::Idle) {
                self.proposer.start_phase1(out);
            }
            self.was_leader = leader;
        }
        self.proposer.tick(out);
        self.learner.tick(out);
    }

    fn after_decisions(&mut self, from: usize, out: &mut Effects<V>) {
        let first = self.learner.first_undecided();
        for (instance, _) in &out.decided[from..] {
            self.proposer.on_decided(*instance, first);
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
                Replica::new(&config, DurableState::default(), id.0).expect("valid")
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
        assert_eq!(nodes[0].learner().decided(InstanceId(0)), Some(&5));
        assert!(seen.iter().all(|m| !matches!(
            m,
            Message::Accepted { value: Some(_), .. } | Message::Decided { .. }
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
            assert_eq!(n.learner().decided(InstanceId(0)), Some(&5));
        }
        // With nothing more to send, a tick announces instance 1.
        let mut out = Effects::new();
        nodes[0].tick(&mut out);
        pump(&mut nodes, out, NodeId(1));
        for n in &nodes {
            assert_eq!(n.learner().decided(InstanceId(1)), Some(&6));
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
                    value: 9,
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
        assert_eq!(nodes[1].learner().decided(InstanceId(0)), Some(&9));
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
                    value: 1,
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
