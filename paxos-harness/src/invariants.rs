//! Safety invariants, checked continuously from durable events (the observer's view).
//!
//! | invariant | source |
//! |---|---|
//! | agreement: at most one value chosen / learned per instance | Paxos Made Simple §2.1; every seed log |
//! | validity: only a proposed value is chosen | §2.1; Elixir pass rule "one of 201-210" |
//! | learned ⇒ chosen: a learner learns only what a majority accepted at one ballot | §2.1, §2.3 |
//! | one value per ballot per instance | P2 (a proposer proposes one value per ballot) |
//! | decided values never change, even across restarts | seed 003 Q4; issue 5 |
//! | a promise never goes down | P1a; seed 002 "persist before reply" |
//! | nothing is accepted below the acceptor's own durable promise | P1a |
//! | a node tells a client (or `decisions()`) only a chosen value | §2.3; issue 7 (chaos) |
//!
//! Events are fed from storage writes *after* they are durable, so a learner's `Decided` write
//! comes after the `Accept` writes that made the value chosen — unless a node replied before
//! persisting, which is exactly what the checker must catch.

use paxos_core::{Ballot, Entry, InstanceId, NodeId, Value, majority};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The value type every harness scenario uses.
pub type Val = u64;

/// What the checker can check: a log value it can compare and order.
pub trait Checkable: Value + Ord {}

impl<V: Value + Ord> Checkable for V {}

/// A broken safety property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation<V = Val> {
    /// Two values chosen (or learned) in one instance.
    Agreement {
        /// The instance.
        instance: InstanceId,
        /// The first value.
        first: Entry<V>,
        /// The conflicting value.
        second: Entry<V>,
    },
    /// A value chosen that nobody proposed.
    Validity {
        /// The instance.
        instance: InstanceId,
        /// The value.
        value: Entry<V>,
    },
    /// A node learned a value that no majority had accepted at one ballot.
    LearnedNotChosen {
        /// The learner.
        node: NodeId,
        /// The instance.
        instance: InstanceId,
        /// The value learned.
        value: Entry<V>,
    },
    /// Two values accepted at one ballot in one instance.
    BallotReused {
        /// The instance.
        instance: InstanceId,
        /// The ballot.
        ballot: Ballot,
        /// The values.
        values: (Entry<V>, Entry<V>),
    },
    /// A node's decided value changed (e.g. after a restart).
    DecisionChanged {
        /// The node.
        node: NodeId,
        /// The instance.
        instance: InstanceId,
        /// The old and new value.
        values: (Entry<V>, Entry<V>),
    },
    /// A node's promise went down.
    PromiseDecreased {
        /// The node.
        node: NodeId,
        /// Old and new promise.
        ballots: (Ballot, Ballot),
    },
    /// An acceptor accepted a ballot below a promise it had already made durable.
    AcceptedBelowPromise {
        /// The acceptor.
        node: NodeId,
        /// The instance.
        instance: InstanceId,
        /// The ballot accepted and the promise it broke.
        ballots: (Ballot, Ballot),
    },
    /// A node reported a decision (to a client or through `decisions()`) that is not chosen.
    ReportedNotChosen {
        /// The node.
        node: NodeId,
        /// The instance.
        instance: InstanceId,
        /// The value reported.
        value: Entry<V>,
        /// The value chosen there, if any.
        chosen: Option<Entry<V>>,
    },
    /// An acceptor voted at a ballot of an epoch whose configuration was never chosen (no
    /// reconfiguration entry naming it is chosen): a quorum of it would decide for a
    /// cluster that does not exist.
    UndecidedConfiguration {
        /// The voter.
        node: NodeId,
        /// The instance.
        instance: InstanceId,
        /// The ballot, whose epoch is unknown.
        ballot: Ballot,
    },
}

impl<V: fmt::Debug> fmt::Display for Violation<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement {
                instance,
                first,
                second,
            } => {
                write!(
                    f,
                    "agreement: {instance} has two values, {first} and {second}"
                )
            }
            Violation::Validity { instance, value } => {
                write!(
                    f,
                    "validity: {instance} chose {value}, which nobody proposed"
                )
            }
            Violation::LearnedNotChosen {
                node,
                instance,
                value,
            } => write!(
                f,
                "learned-not-chosen: {node} learned {value} in {instance} before a majority accepted it"
            ),
            Violation::BallotReused {
                instance,
                ballot,
                values,
            } => write!(
                f,
                "ballot-reused: {instance} ballot {ballot} carried {} and {}",
                values.0, values.1
            ),
            Violation::DecisionChanged {
                node,
                instance,
                values,
            } => write!(
                f,
                "decision-changed: {node} had {} in {instance}, now {}",
                values.0, values.1
            ),
            Violation::PromiseDecreased { node, ballots } => {
                write!(
                    f,
                    "promise-decreased: {node} went from {} to {}",
                    ballots.0, ballots.1
                )
            }
            Violation::AcceptedBelowPromise {
                node,
                instance,
                ballots,
            } => write!(
                f,
                "accepted-below-promise: {node} accepted {} in {instance} after promising {}",
                ballots.0, ballots.1
            ),
            Violation::ReportedNotChosen {
                node,
                instance,
                value,
                chosen,
            } => match chosen {
                Some(c) => write!(
                    f,
                    "reported-not-chosen: {node} reported {value} in {instance}, but {c} is chosen"
                ),
                None => write!(
                    f,
                    "reported-not-chosen: {node} reported {value} in {instance}, where nothing is chosen"
                ),
            },
            Violation::UndecidedConfiguration {
                node,
                instance,
                ballot,
            } => write!(
                f,
                "undecided-configuration: {node} voted in {instance} at {ballot}, of an epoch no chosen change made"
            ),
        }
    }
}

/// The stateful checker. Feed it events in the order they became durable.
#[derive(Debug)]
pub struct Checker<V = Val> {
    /// The acceptors of each epoch whose configuration is chosen: epoch 0's from the start,
    /// each later one from the first chosen change naming it (by instance). A value is chosen
    /// by a majority of the acceptors of its ballot's epoch.
    epochs: BTreeMap<u64, (InstanceId, BTreeSet<NodeId>)>,
    proposed: BTreeSet<V>,
    accepts: BTreeMap<(InstanceId, Ballot), (Entry<V>, BTreeSet<NodeId>)>,
    chosen: BTreeMap<InstanceId, Entry<V>>,
    learned: BTreeMap<NodeId, BTreeMap<InstanceId, Entry<V>>>,
    promised: BTreeMap<NodeId, Ballot>,
    violations: Vec<Violation<V>>,
}

impl<V: Checkable> Checker<V> {
    /// A checker for a cluster that starts with `acceptors` (epoch 0); it follows the
    /// membership changes chosen in the log.
    pub fn new(acceptors: impl IntoIterator<Item = NodeId>) -> Self {
        let initial = (InstanceId(0), acceptors.into_iter().collect());
        Checker {
            epochs: BTreeMap::from([(0, initial)]),
            proposed: BTreeSet::new(),
            accepts: BTreeMap::new(),
            chosen: BTreeMap::new(),
            learned: BTreeMap::new(),
            promised: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// A client proposed `value`.
    pub fn on_proposed(&mut self, value: V) {
        self.proposed.insert(value);
    }

    /// `node` durably promised `ballot`.
    pub fn on_promised(&mut self, node: NodeId, ballot: Ballot) {
        let old = self.promised.entry(node).or_insert(Ballot::ZERO);
        if ballot < *old {
            self.violations.push(Violation::PromiseDecreased {
                node,
                ballots: (*old, ballot),
            });
        } else {
            *old = ballot;
        }
    }

    /// `node` durably accepted `value` in `instance` at `ballot`.
    pub fn on_accepted(
        &mut self,
        node: NodeId,
        instance: InstanceId,
        ballot: Ballot,
        value: Entry<V>,
    ) {
        if let Some(&promised) = self.promised.get(&node)
            && ballot < promised
        {
            self.violations.push(Violation::AcceptedBelowPromise {
                node,
                instance,
                ballots: (ballot, promised),
            });
        }
        let (v, voters) = self
            .accepts
            .entry((instance, ballot))
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if *v != value {
            let values = (v.clone(), value);
            self.violations.push(Violation::BallotReused {
                instance,
                ballot,
                values,
            });
            return;
        }
        voters.insert(node);
        let Some((_, acceptors)) = self.epochs.get(&ballot.epoch) else {
            self.violations.push(Violation::UndecidedConfiguration {
                node,
                instance,
                ballot,
            });
            return;
        };
        if voters.intersection(acceptors).count() < majority(acceptors.len()) {
            return;
        }
        match self.chosen.get(&instance) {
            Some(first) if *first != value => self.violations.push(Violation::Agreement {
                instance,
                first: first.clone(),
                second: value,
            }),
            Some(_) => {}
            None => {
                // Validity: a client value must have been proposed (a no-op carries none).
                if let Some(v) = value.value()
                    && !self.proposed.contains(v)
                {
                    self.violations.push(Violation::Validity {
                        instance,
                        value: value.clone(),
                    });
                }
                if let Entry::Reconfigure(next) = &value {
                    self.on_change_chosen(instance, next);
                }
                self.chosen.insert(instance, value);
            }
        }
    }

    /// The change `next` is chosen at `instance`: its epoch's quorums are its acceptors',
    /// unless a change naming the same epoch was chosen below (that one made the epoch).
    fn on_change_chosen(&mut self, instance: InstanceId, next: &paxos_core::Membership) {
        let made = self
            .epochs
            .get(&next.epoch)
            .is_some_and(|(at, _)| *at < instance);
        if !made {
            self.epochs
                .insert(next.epoch, (instance, next.acceptors.clone()));
        }
    }

    /// `node` durably learned `value` in `instance`.
    pub fn on_decided(&mut self, node: NodeId, instance: InstanceId, value: Entry<V>) {
        if self.chosen.get(&instance) != Some(&value) {
            self.violations.push(Violation::LearnedNotChosen {
                node,
                instance,
                value: value.clone(),
            });
        }
        let mine = self.learned.entry(node).or_default();
        match mine.get(&instance) {
            Some(old) if *old != value => self.violations.push(Violation::DecisionChanged {
                node,
                instance,
                values: (old.clone(), value.clone()),
            }),
            Some(_) => {}
            None => {
                mine.insert(instance, value.clone());
            }
        }
        // Agreement across learners.
        let others = self.learned.iter().filter(|(n, _)| **n != node);
        if let Some(other) = others
            .filter_map(|(_, m)| m.get(&instance))
            .find(|v| **v != value)
        {
            let first = other.clone();
            self.violations.push(Violation::Agreement {
                instance,
                first,
                second: value,
            });
        }
    }

    /// `node` told a client (or a `decisions()` caller) that `value` is decided in `instance`.
    /// It may only say so once that value is chosen: the node answers after its `Decided`
    /// write is durable, which comes after a majority's `Accept` writes.
    pub fn on_reported(&mut self, node: NodeId, instance: InstanceId, value: Entry<V>) {
        let chosen = self.chosen.get(&instance).cloned();
        if chosen.as_ref() != Some(&value) {
            self.violations.push(Violation::ReportedNotChosen {
                node,
                instance,
                value,
                chosen,
            });
        }
    }

    /// Violations seen so far.
    pub fn violations(&self) -> &[Violation<V>] {
        &self.violations
    }

    /// Values chosen so far, per instance.
    pub fn chosen(&self) -> &BTreeMap<InstanceId, Entry<V>> {
        &self.chosen
    }

    /// Every `(acceptor, ballot, value)` accepted in `instance`.
    pub fn accepted_in(&self, instance: InstanceId) -> Vec<(NodeId, Ballot, Entry<V>)> {
        let lo = (instance, Ballot::ZERO);
        self.accepts
            .range(lo..)
            .take_while(|((i, _), _)| *i == instance)
            .flat_map(|((_, b), (v, voters))| voters.iter().map(move |n| (*n, *b, v.clone())))
            .collect()
    }

    /// Values proposed so far.
    pub fn proposed(&self) -> &BTreeSet<V> {
        &self.proposed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(r: u64, n: u64) -> Ballot {
        Ballot::new(r, NodeId(n))
    }

    /// A client entry holding `v`.
    fn e(v: Val) -> Entry<Val> {
        Entry::Value {
            id: paxos_core::ProposalId::default(),
            value: v,
        }
    }

    #[test]
    fn checker_catches_two_values_chosen() {
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        c.on_proposed(1);
        c.on_proposed(2);
        for n in 1..=2 {
            c.on_accepted(NodeId(n), InstanceId(0), b(1, 1), e(1));
        }
        for n in 2..=3 {
            c.on_accepted(NodeId(n), InstanceId(0), b(2, 2), e(2));
        }
        assert!(matches!(c.violations()[0], Violation::Agreement { .. }));
    }

    #[test]
    fn checker_catches_learning_before_a_majority_accepted() {
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        c.on_proposed(1);
        c.on_accepted(NodeId(1), InstanceId(0), b(1, 1), e(1));
        c.on_decided(NodeId(1), InstanceId(0), e(1));
        assert!(matches!(
            c.violations()[0],
            Violation::LearnedNotChosen { .. }
        ));
    }

    #[test]
    fn checker_catches_accept_below_promise() {
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        c.on_proposed(1);
        c.on_promised(NodeId(1), b(2, 2));
        c.on_accepted(NodeId(1), InstanceId(0), b(1, 1), e(1));
        assert!(matches!(
            c.violations()[0],
            Violation::AcceptedBelowPromise { .. }
        ));
    }

    #[test]
    fn checker_catches_a_reported_value_that_is_not_chosen() {
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        c.on_proposed(1);
        c.on_reported(NodeId(2), InstanceId(0), e(1));
        assert!(matches!(
            c.violations()[0],
            Violation::ReportedNotChosen { chosen: None, .. }
        ));
    }

    #[test]
    fn checker_accepts_a_clean_run() {
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        c.on_proposed(7);
        c.on_promised(NodeId(1), b(1, 1));
        for n in 1..=3 {
            c.on_accepted(NodeId(n), InstanceId(0), b(1, 1), e(7));
        }
        c.on_decided(NodeId(2), InstanceId(0), e(7));
        assert!(c.violations().is_empty());
        assert_eq!(c.chosen().get(&InstanceId(0)), Some(&e(7)));
    }

    /// The checker follows the configuration: after a change is chosen, a majority of the new
    /// acceptors chooses (though a minority of the old ones), and a vote at an epoch no chosen
    /// change made is caught.
    #[test]
    fn checker_follows_the_configuration_and_catches_an_undecided_one() {
        use paxos_core::{Config, MemberChange, Membership};
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        let initial = Membership::initial(&Config::symmetric(NodeId(1), [1, 2, 3].map(NodeId)));
        let learner = initial
            .next(&MemberChange::new(
                [1, 2, 3].map(NodeId),
                [NodeId(4), NodeId(5)],
            ))
            .expect("valid");
        let next = learner
            .next(&MemberChange::new([3, 4, 5].map(NodeId), []))
            .expect("valid");
        assert_eq!(next.epoch, 2);
        for n in 1..=2 {
            c.on_accepted(
                NodeId(n),
                InstanceId(0),
                b(1, 1),
                Entry::Reconfigure(next.clone()),
            );
        }
        c.on_proposed(7);
        let in_epoch_2 = Ballot::in_epoch(2, 1, NodeId(4));
        for n in [3, 4] {
            c.on_accepted(NodeId(n), InstanceId(9), in_epoch_2, e(7));
        }
        assert_eq!(
            c.chosen().get(&InstanceId(9)),
            Some(&e(7)),
            "n3+n4 are a quorum of {{3,4,5}}"
        );
        assert!(c.violations().is_empty(), "{:?}", c.violations());
        c.on_accepted(
            NodeId(5),
            InstanceId(10),
            Ballot::in_epoch(3, 1, NodeId(5)),
            e(7),
        );
        assert!(matches!(
            c.violations(),
            [Violation::UndecidedConfiguration {
                node: NodeId(5),
                ..
            }]
        ));
    }

    /// A no-op is a valid choice though no client proposed it; a value nobody proposed is not.
    #[test]
    fn noops_are_valid_and_unproposed_values_are_not() {
        let mut c = Checker::<Val>::new([1, 2, 3].map(NodeId));
        for n in 1..=2 {
            c.on_accepted(NodeId(n), InstanceId(0), b(1, 1), Entry::Noop);
            c.on_accepted(NodeId(n), InstanceId(1), b(1, 1), e(9));
        }
        assert_eq!(
            c.violations(),
            [Violation::Validity {
                instance: InstanceId(1),
                value: e(9)
            }]
        );
    }
}
