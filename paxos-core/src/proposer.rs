//! The proposer: phase 1 and phase 2, adopting the highest accepted value, climbing over `Nack`s.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::Config;
use crate::effects::{Effects, Write};
use crate::message::{AcceptedEntry, Message, Value};
use crate::quorum::Votes;
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};

/// Test-only fault switches that break the proposer on purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProposerFaults {
    /// Ignore values reported in promises and propose the client's value (breaks rule 3).
    pub ignore_promised_values: bool,
    /// Do not persist the round before sending a ballot (breaks rule 1).
    pub skip_round_persist: bool,
}

/// Where the proposer is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase<V> {
    /// Holds no ballot; starts phase 1 when there is work.
    Idle,
    /// Phase 1 at the current ballot, for instances `>= first`.
    Preparing {
        /// Lowest instance covered.
        first: InstanceId,
        /// Acceptors that promised.
        promises: Votes,
        /// Highest accepted `(ballot, value)` reported per instance.
        adopted: BTreeMap<InstanceId, (Ballot, V)>,
        /// Tick at which phase 1 is retried with a higher ballot.
        deadline: u64,
    },
    /// Phase 1 done at the current ballot for instances `>= first`: phase 2 only.
    Leading {
        /// Lowest instance covered.
        first: InstanceId,
    },
    /// Beaten by a higher ballot; waits until the tick `until`, then retries.
    Backoff {
        /// Tick to retry at.
        until: u64,
    },
}

/// A phase-2 instance in flight at the current ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct InFlight<V> {
    value: V,
    acks: Votes,
    deadline: u64,
}

/// One node's proposer.
///
/// One proposer serves every instance of its node (Multi-Paxos): once phase 1 succeeds at ballot
/// `b` for all instances from `first` on, it runs only phase 2 for new values until a `Nack`
/// shows a higher ballot. The rules, in order:
/// 1. Before a ballot is sent, its round is written ([`Write::ProposerRound`]); the runtime makes
///    that durable first, so a restarted proposer starts above every round it ever used.
/// 2. A ballot's round is one above the highest round this proposer used *or saw* (in a `Nack`).
/// 3. When a quorum has promised, every instance some promise reported as accepted gets the value
///    of the **highest** accepted ballot (P2c; seed 003 Q1). Only free instances get client values.
/// 4. A `Nack` means someone is above us: forget the ballot and retry after a random backoff
///    (seed 003 Q3: without it, duelling proposers can livelock).
/// 5. A phase without a quorum within the timeout is re-sent (phase 2) or retried higher (phase 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proposer<V> {
    id: NodeId,
    acceptors: BTreeSet<NodeId>,
    phase_timeout: u64,
    backoff: (u64, u64),
    rng: SplitMix64,
    now: u64,
    /// Highest round used or seen. Persisted before any ballot above the stored one is sent.
    max_round: u64,
    ballot: Ballot,
    phase: Phase<V>,
    /// Values clients asked for, by instance, until the instance is decided.
    wanted: BTreeMap<InstanceId, V>,
    /// Phase 2 at `ballot`.
    in_flight: BTreeMap<InstanceId, InFlight<V>>,
    /// Every instance below this is known decided.
    first_undecided: InstanceId,
    faults: ProposerFaults,
}

impl<V: Value> Proposer<V> {
    /// A proposer that has used or seen rounds up to `max_round` (from storage), drawing backoff
    /// jitter from `seed`.
    pub fn new(config: &Config, max_round: u64, seed: u64) -> Self {
        Proposer {
            id: config.id,
            acceptors: config.acceptors.clone(),
            phase_timeout: config.phase_timeout_ticks,
            backoff: config.backoff_ticks,
            rng: SplitMix64::new(seed),
            now: 0,
            max_round,
            ballot: Ballot::ZERO,
            phase: Phase::Idle,
            wanted: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            first_undecided: InstanceId(0),
            faults: ProposerFaults::default(),
        }
    }

    /// Break the proposer on purpose (tests of the checkers only).
    pub(crate) fn with_faults(mut self, faults: ProposerFaults) -> Self {
        self.faults = faults;
        self
    }

    /// The current (or last) ballot.
    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// The highest round used or seen.
    pub fn max_round(&self) -> u64 {
        self.max_round
    }

    /// The current phase.
    pub fn phase(&self) -> &Phase<V> {
        &self.phase
    }

    /// True while the proposer has client values or phase-2 instances outstanding.
    pub fn is_busy(&self) -> bool {
        !self.wanted.is_empty() || !self.in_flight.is_empty()
    }

    /// The lowest instance this proposer is not using, at or above `floor`.
    pub fn next_free_instance(&self, floor: InstanceId) -> InstanceId {
        let mut next = floor.max(self.first_undecided);
        for i in self.wanted.keys().chain(self.in_flight.keys()) {
            if *i >= next {
                next = i.next();
            }
        }
        next
    }

    /// A client wants `value` in `instance`. The instance ends up decided with *some* value;
    /// the caller learns which from the learner.
    pub fn propose(&mut self, instance: InstanceId, value: V, out: &mut Effects<V>) {
        if instance < self.first_undecided || self.wanted.contains_key(&instance) {
            return;
        }
        self.wanted.insert(instance, value.clone());
        match self.phase {
            Phase::Idle => self.start_phase1(out),
            Phase::Leading { first }
                if instance >= first && !self.in_flight.contains_key(&instance) =>
            {
                self.send_accept(instance, value, out);
            }
            _ => {} // picked up when phase 1 completes or the backoff ends
        }
    }

    /// Start (or restart) phase 1 with a fresh ballot above everything used or seen.
    ///
    /// Peers' rounds are capped at [`Ballot::MAX_ROUND`] on arrival, so `max_round + 1` only
    /// overflows if storage itself returned a round of `u64::MAX`; then no fresh ballot
    /// exists, and the proposer stays idle rather than reuse one.
    pub fn start_phase1(&mut self, out: &mut Effects<V>) {
        let Some(round) = self.max_round.checked_add(1) else {
            tracing::error!(node = %self.id, "no round left above the stored one; not proposing");
            self.phase = Phase::Idle;
            return;
        };
        self.max_round = round;
        self.ballot = Ballot::new(self.max_round, self.id);
        if !self.faults.skip_round_persist {
            out.write(Write::ProposerRound(self.max_round));
        }
        self.in_flight.clear();
        let first = self.first_undecided;
        self.phase = Phase::Preparing {
            first,
            promises: Votes::new(),
            adopted: BTreeMap::new(),
            deadline: self.now + self.phase_timeout,
        };
        for &a in &self.acceptors {
            out.send(
                a,
                Message::Prepare {
                    ballot: self.ballot,
                    first,
                },
            );
        }
    }

    /// Give up the ballot (another node leads now). Client values stay wanted.
    pub fn step_down(&mut self) {
        self.in_flight.clear();
        self.phase = Phase::Idle;
    }

    /// Forget every client value (they are answered elsewhere, e.g. `Aborted`).
    pub fn forget_wanted(&mut self) {
        self.wanted.clear();
    }

    /// Phase 1b arrived.
    pub fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        accepted: Vec<AcceptedEntry<V>>,
        out: &mut Effects<V>,
    ) {
        if ballot != self.ballot || !self.acceptors.contains(&from) {
            return;
        }
        let Phase::Preparing {
            first,
            promises,
            adopted,
            ..
        } = &mut self.phase
        else {
            return;
        };
        let first = *first;
        if !promises.add(from) {
            return;
        }
        // Rule 3: per instance, keep the value of the highest accepted ballot.
        for e in accepted.into_iter().filter(|e| e.instance >= first) {
            match adopted.get(&e.instance) {
                Some((b, _)) if *b >= e.ballot => {}
                _ => {
                    adopted.insert(e.instance, (e.ballot, e.value));
                }
            }
        }
        if !promises.is_quorum(self.acceptors.len()) {
            return;
        }
        let adopted = std::mem::take(adopted);
        self.phase = Phase::Leading { first };
        if !self.faults.ignore_promised_values {
            for (instance, (_, value)) in adopted {
                if instance >= self.first_undecided {
                    self.send_accept(instance, value, out);
                }
            }
        }
        let wanted: Vec<(InstanceId, V)> = self
            .wanted
            .range(first..)
            .filter(|(i, _)| !self.in_flight.contains_key(i))
            .map(|(i, v)| (*i, v.clone()))
            .collect();
        for (instance, value) in wanted {
            self.send_accept(instance, value, out);
        }
    }

    /// An acceptor refused `ballot` because it promised `promised`.
    pub fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        self.max_round = self.max_round.max(promised.round);
        let holding = matches!(self.phase, Phase::Preparing { .. } | Phase::Leading { .. });
        if ballot != self.ballot || promised <= ballot || !holding {
            return;
        }
        self.in_flight.clear();
        let wait = self.rng.in_range(self.backoff.0, self.backoff.1);
        self.phase = Phase::Backoff {
            until: self.now + wait,
        };
    }

    /// Phase 2b arrived. Returns the value once a quorum accepted it (the instance is chosen).
    pub fn on_accepted(&mut self, from: NodeId, ballot: Ballot, instance: InstanceId) -> Option<V> {
        if ballot != self.ballot || !self.acceptors.contains(&from) {
            return None;
        }
        let flight = self.in_flight.get_mut(&instance)?;
        flight.acks.add(from);
        if flight.acks.is_quorum(self.acceptors.len()) {
            return self.in_flight.remove(&instance).map(|f| f.value);
        }
        None
    }

    /// `instance` is decided (learned by this node); `first_undecided` is the learner's frontier.
    pub fn on_decided(&mut self, instance: InstanceId, first_undecided: InstanceId) {
        self.wanted.remove(&instance);
        self.in_flight.remove(&instance);
        if first_undecided > self.first_undecided {
            self.first_undecided = first_undecided;
            self.wanted = self.wanted.split_off(&first_undecided);
            self.in_flight = self.in_flight.split_off(&first_undecided);
        }
    }

    /// One tick of time: retry what timed out, end a backoff.
    pub fn tick(&mut self, out: &mut Effects<V>) {
        self.now += 1;
        match self.phase {
            Phase::Backoff { until } if self.now >= until => {
                if self.wanted.is_empty() {
                    self.phase = Phase::Idle;
                } else {
                    self.start_phase1(out);
                }
            }
            Phase::Preparing { deadline, .. } if self.now >= deadline => self.start_phase1(out),
            Phase::Leading { .. } => {
                let now = self.now;
                let timeout = self.phase_timeout;
                for (&instance, flight) in
                    self.in_flight.iter_mut().filter(|(_, f)| now >= f.deadline)
                {
                    flight.deadline = now + timeout;
                    for &a in self.acceptors.iter().filter(|a| !flight.acks.contains(**a)) {
                        out.send(
                            a,
                            Message::Accept {
                                ballot: self.ballot,
                                instance,
                                value: flight.value.clone(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn send_accept(&mut self, instance: InstanceId, value: V, out: &mut Effects<V>) {
        for &a in &self.acceptors {
            out.send(
                a,
                Message::Accept {
                    ballot: self.ballot,
                    instance,
                    value: value.clone(),
                },
            );
        }
        self.in_flight.insert(
            instance,
            InFlight {
                value,
                acks: Votes::new(),
                deadline: self.now + self.phase_timeout,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Envelope;
    use pretty_assertions::assert_eq;

    fn config() -> Config {
        let mut c = Config::symmetric(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        c.phase_timeout_ticks = 10;
        c.backoff_ticks = (3, 3);
        c
    }

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn prepares(ballot: Ballot, first: u64) -> Vec<Envelope<u64>> {
        (1..=3)
            .map(|n| Envelope {
                to: NodeId(n),
                message: Message::Prepare {
                    ballot,
                    first: InstanceId(first),
                },
            })
            .collect()
    }

    fn accepts(ballot: Ballot, instance: u64, value: u64) -> Vec<Envelope<u64>> {
        (1..=3)
            .map(|n| Envelope {
                to: NodeId(n),
                message: Message::Accept {
                    ballot,
                    instance: InstanceId(instance),
                    value,
                },
            })
            .collect()
    }

    fn entry(instance: u64, ballot: Ballot, value: u64) -> AcceptedEntry<u64> {
        AcceptedEntry {
            instance: InstanceId(instance),
            ballot,
            value,
        }
    }

    /// Rule 1: the round is written in the same step as the Prepare, so the runtime makes it
    /// durable before the Prepare leaves.
    #[test]
    fn proposer_persists_round_before_prepare() {
        let mut p = Proposer::new(&config(), 0, 1);
        let mut out = Effects::new();
        p.propose(InstanceId(0), 100, &mut out);
        assert_eq!(out.writes, vec![Write::ProposerRound(1)]);
        assert_eq!(out.messages, prepares(b(1, 1), 0));
    }

    /// Rule 1 after a restart (seed 003 Q4): the first ballot is above the persisted round.
    #[test]
    fn restarted_proposer_never_reuses_a_ballot() {
        let mut p = Proposer::new(&config(), 5, 1);
        let mut out = Effects::new();
        p.propose(InstanceId(0), 100, &mut out);
        assert_eq!(p.ballot(), b(6, 1));
        assert_eq!(out.writes, vec![Write::ProposerRound(6)]);
    }

    /// A stored round at the very top leaves no fresh ballot: rather than wrap to round 0 (a
    /// ballot below everything, reused) or repeat `u64::MAX`, the proposer does not propose.
    #[test]
    fn proposer_with_no_round_left_stays_idle() {
        let mut p = Proposer::new(&config(), u64::MAX, 1);
        let mut out = Effects::new();
        p.propose(InstanceId(0), 100, &mut out);
        assert_eq!(out, Effects::new());
        assert_eq!(p.phase(), &Phase::Idle);
        assert_eq!(p.max_round(), u64::MAX);
    }

    /// With no accepted value reported, the client's value is proposed.
    #[test]
    fn proposer_proposes_its_own_value_when_nothing_was_accepted() {
        let mut p = Proposer::new(&config(), 0, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        let mut out = Effects::new();
        p.on_promise(NodeId(1), b(1, 1), vec![], &mut out);
        assert!(out.messages.is_empty(), "one promise is not a quorum");
        p.on_promise(NodeId(2), b(1, 1), vec![], &mut out);
        assert_eq!(out.messages, accepts(b(1, 1), 0, 100));
    }

    /// Rule 3 (P2c), seed 003 Q1: a value accepted by a minority before its proposer crashed
    /// must be adopted by the next proposer, instead of its own.
    #[test]
    fn proposer_adopts_value_accepted_by_a_minority() {
        let mut p = Proposer::new(&config(), 1, 1);
        p.propose(InstanceId(0), 200, &mut Effects::new());
        let ballot = p.ballot();
        let mut out = Effects::new();
        p.on_promise(NodeId(3), ballot, vec![entry(0, b(1, 3), 77)], &mut out);
        p.on_promise(NodeId(2), ballot, vec![], &mut out);
        assert_eq!(out.messages, accepts(ballot, 0, 77));
    }

    /// Rule 3: of several accepted values, the one with the highest ballot wins.
    #[test]
    fn proposer_adopts_value_of_the_highest_accepted_ballot() {
        let mut p = Proposer::new(&config(), 5, 1);
        p.propose(InstanceId(0), 200, &mut Effects::new());
        let ballot = p.ballot();
        let mut out = Effects::new();
        p.on_promise(NodeId(2), ballot, vec![entry(0, b(4, 2), 42)], &mut out);
        p.on_promise(NodeId(3), ballot, vec![entry(0, b(2, 3), 23)], &mut out);
        assert_eq!(out.messages, accepts(ballot, 0, 42));
    }

    /// Rules 2 and 4: a Nack carries the higher ballot; after the backoff the proposer jumps
    /// straight above it (the Go log's 4.2 climbing).
    #[test]
    fn proposer_jumps_above_the_ballot_in_a_nack() {
        let mut p = Proposer::new(&config(), 0, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        p.on_nack(b(1, 1), b(4, 2));
        assert!(matches!(p.phase(), Phase::Backoff { .. }));
        let mut out = Effects::new();
        for _ in 0..3 {
            p.tick(&mut out);
        }
        assert_eq!(out.writes, vec![Write::ProposerRound(5)]);
        assert_eq!(out.messages, prepares(b(5, 1), 0));
    }

    /// Rule 5: phase 1 without a quorum is retried with a higher ballot.
    #[test]
    fn proposer_retries_phase1_higher_after_timeout() {
        let mut p = Proposer::new(&config(), 0, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        let mut out = Effects::new();
        for _ in 0..10 {
            p.tick(&mut out);
        }
        assert_eq!(p.ballot(), b(2, 1));
        assert_eq!(out.messages, prepares(b(2, 1), 0));
    }

    /// Rule 5: phase 2 without a quorum re-sends the Accept to acceptors that did not answer.
    #[test]
    fn proposer_resends_accept_to_silent_acceptors() {
        let mut p = Proposer::new(&config(), 0, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        p.on_promise(NodeId(1), b(1, 1), vec![], &mut Effects::new());
        p.on_promise(NodeId(2), b(1, 1), vec![], &mut Effects::new());
        assert_eq!(p.on_accepted(NodeId(1), b(1, 1), InstanceId(0)), None);
        let mut out = Effects::new();
        for _ in 0..10 {
            p.tick(&mut out);
        }
        let to: Vec<NodeId> = out.messages.iter().map(|e| e.to).collect();
        assert_eq!(to, vec![NodeId(2), NodeId(3)]);
    }

    /// A majority of Accepted at the proposer's ballot means chosen; a minority does not.
    #[test]
    fn proposer_sees_value_chosen_at_a_majority() {
        let mut p = Proposer::new(&config(), 0, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        p.on_promise(NodeId(1), b(1, 1), vec![], &mut Effects::new());
        p.on_promise(NodeId(2), b(1, 1), vec![], &mut Effects::new());
        assert_eq!(p.on_accepted(NodeId(3), b(1, 1), InstanceId(0)), None);
        assert_eq!(
            p.on_accepted(NodeId(3), b(1, 1), InstanceId(0)),
            None,
            "duplicates count once"
        );
        assert_eq!(p.on_accepted(NodeId(2), b(1, 1), InstanceId(0)), Some(100));
    }

    /// Multi-Paxos: once phase 1 succeeded, the next instance goes straight to phase 2.
    #[test]
    fn leader_skips_phase1_for_later_instances() {
        let mut p = Proposer::new(&config(), 0, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        p.on_promise(NodeId(1), b(1, 1), vec![], &mut Effects::new());
        p.on_promise(NodeId(2), b(1, 1), vec![], &mut Effects::new());
        let mut out = Effects::new();
        p.propose(InstanceId(1), 101, &mut out);
        assert!(out.writes.is_empty());
        assert_eq!(out.messages, accepts(b(1, 1), 1, 101));
    }

    /// Promises for an old ballot are ignored.
    #[test]
    fn proposer_ignores_promises_for_other_ballots() {
        let mut p = Proposer::new(&config(), 3, 1);
        p.propose(InstanceId(0), 100, &mut Effects::new());
        let mut out = Effects::new();
        p.on_promise(NodeId(1), b(1, 1), vec![], &mut out);
        p.on_promise(NodeId(2), b(1, 1), vec![], &mut out);
        assert!(out.messages.is_empty());
    }
}
