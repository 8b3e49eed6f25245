//! The acceptor: the promise and accept rules, and nothing else.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::Config;
use crate::effects::{Effects, Write};
use crate::message::{AcceptedEntry, Message, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Test-only fault switches that break the acceptor on purpose, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcceptorFaults {
    /// Accept proposals below the promised ballot (breaks P1a).
    pub accept_below_promise: bool,
    /// Reply to `Prepare`/`Accept` without writing the promise/accepted pair (reply before persist).
    pub skip_persist: bool,
}

/// One node's acceptor over all instances.
///
/// Paxos Made Simple §2.2:
/// - P1a: an acceptor accepts a proposal numbered `b` unless it has promised a number `> b`.
/// - Phase 1b: on `Prepare(b)` with `b` not below its promise, it promises `b` and reports the
///   highest-numbered proposal it accepted (here: per instance, since one promise covers all).
///
/// Both the promise and the accepted pair go into [`Effects::writes`]; the runtime makes them
/// durable before the reply leaves (seed 002: "acceptors persist before replying").
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acceptor<V> {
    id: NodeId,
    promised: Ballot,
    accepted: BTreeMap<InstanceId, (Ballot, V)>,
    /// Where `Accepted` goes besides the proposer (the learner strategy).
    notify: BTreeSet<NodeId>,
    /// Leave the value out of `Accepted` (the proposer, its only addressee, holds it).
    elide_value: bool,
    faults: AcceptorFaults,
}

impl<V: Value> Acceptor<V> {
    /// An acceptor restarted from its durable promise and accepted pairs.
    pub fn new(
        config: &Config,
        promised: Ballot,
        accepted: BTreeMap<InstanceId, (Ballot, V)>,
    ) -> Self {
        Acceptor {
            id: config.id,
            promised,
            accepted,
            notify: config.accepted_recipients().clone(),
            elide_value: config.learner_strategy == crate::config::LearnerStrategy::Leader,
            faults: AcceptorFaults::default(),
        }
    }

    /// Break the acceptor on purpose (tests of the checkers only).
    pub(crate) fn with_faults(mut self, faults: AcceptorFaults) -> Self {
        self.faults = faults;
        self
    }

    /// The promised ballot.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The accepted pair of `instance`, if any.
    pub fn accepted(&self, instance: InstanceId) -> Option<&(Ballot, V)> {
        self.accepted.get(&instance)
    }

    /// Phase 1b. Promise `ballot` if it is not below the current promise, reporting every value
    /// accepted in instances `>= first`; otherwise `Nack` with the promise.
    pub fn on_prepare(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        first: InstanceId,
        out: &mut Effects<V>,
    ) {
        if ballot < self.promised {
            out.send(
                from,
                Message::Nack {
                    ballot,
                    promised: self.promised,
                },
            );
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            if !self.faults.skip_persist {
                out.write(Write::Promise(ballot));
            }
        }
        let accepted = self
            .accepted
            .range(first..)
            .map(|(&instance, (b, v))| AcceptedEntry {
                instance,
                ballot: *b,
                value: v.clone(),
            })
            .collect();
        out.send(from, Message::Promise { ballot, accepted });
    }

    /// Phase 2b. Accept `value` in `instance` unless a higher ballot was promised; tell the
    /// proposer and the learners.
    pub fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        instance: InstanceId,
        value: V,
        out: &mut Effects<V>,
    ) {
        if ballot < self.promised && !self.faults.accept_below_promise {
            out.send(
                from,
                Message::Nack {
                    ballot,
                    promised: self.promised,
                },
            );
            return;
        }
        if ballot > self.promised {
            // Accepting b implies promising b: a later Prepare below b must be refused.
            self.promised = ballot;
            if !self.faults.skip_persist {
                out.write(Write::Promise(ballot));
            }
        }
        let already = matches!(self.accepted.get(&instance), Some((b, _)) if *b == ballot);
        if !already {
            self.accepted.insert(instance, (ballot, value.clone()));
            if !self.faults.skip_persist {
                out.write(Write::Accept {
                    instance,
                    ballot,
                    value: value.clone(),
                });
            }
        }
        let reply = Message::Accepted {
            ballot,
            instance,
            value: (!self.elide_value).then_some(value),
        };
        for &learner in self.notify.iter().filter(|&&l| l != from) {
            out.send(learner, reply.clone());
        }
        out.send(from, reply);
    }

    /// The node id this acceptor runs on.
    pub fn id(&self) -> NodeId {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn config() -> Config {
        Config::symmetric(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]).with_learners([NodeId(1)])
    }

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn acceptor() -> Acceptor<u64> {
        Acceptor::new(&config(), Ballot::ZERO, BTreeMap::new())
    }

    /// Phase 1b: the promise is written, and the reply waits for that write (same Effects).
    #[test]
    fn acceptor_persists_promise_with_its_reply() {
        let mut a = acceptor();
        let mut out = Effects::new();
        a.on_prepare(NodeId(2), b(1, 2), InstanceId(0), &mut out);
        assert_eq!(out.writes, vec![Write::Promise(b(1, 2))]);
        assert_eq!(
            out.messages,
            vec![crate::Envelope {
                to: NodeId(2),
                message: Message::Promise {
                    ballot: b(1, 2),
                    accepted: vec![]
                }
            }]
        );
    }

    /// P1a: no promise to a ballot below the current one; the Nack carries the promise.
    #[test]
    fn acceptor_nacks_prepare_below_promise() {
        let mut a = acceptor();
        a.on_prepare(NodeId(3), b(2, 3), InstanceId(0), &mut Effects::new());
        let mut out = Effects::new();
        a.on_prepare(NodeId(2), b(1, 2), InstanceId(0), &mut out);
        assert!(out.writes.is_empty());
        assert_eq!(
            out.messages[0].message,
            Message::Nack {
                ballot: b(1, 2),
                promised: b(2, 3)
            }
        );
        assert_eq!(a.promised(), b(2, 3));
    }

    /// P1a: no accept below the promise.
    #[test]
    fn acceptor_refuses_accept_below_promise() {
        let mut a = acceptor();
        a.on_prepare(NodeId(3), b(2, 3), InstanceId(0), &mut Effects::new());
        let mut out = Effects::new();
        a.on_accept(NodeId(2), b(1, 2), InstanceId(0), 7, &mut out);
        assert!(out.writes.is_empty());
        assert!(a.accepted(InstanceId(0)).is_none());
        assert_eq!(
            out.messages[0].message,
            Message::Nack {
                ballot: b(1, 2),
                promised: b(2, 3)
            }
        );
    }

    /// Phase 2b: the accepted pair is written and reported to the proposer and the learners.
    #[test]
    fn acceptor_persists_accepted_pair_and_notifies_learners() {
        let mut a = acceptor();
        let mut out = Effects::new();
        a.on_accept(NodeId(2), b(1, 2), InstanceId(4), 9, &mut out);
        assert_eq!(
            out.writes,
            vec![
                Write::Promise(b(1, 2)),
                Write::Accept {
                    instance: InstanceId(4),
                    ballot: b(1, 2),
                    value: 9
                }
            ]
        );
        let to: Vec<NodeId> = out.messages.iter().map(|e| e.to).collect();
        assert_eq!(to, vec![NodeId(1), NodeId(2)]);
    }

    /// Phase 1b reports the accepted value so the next proposer can adopt it (seed 003 Q1).
    #[test]
    fn acceptor_reports_accepted_values_in_promise() {
        let mut a = acceptor();
        a.on_accept(NodeId(1), b(1, 1), InstanceId(0), 5, &mut Effects::new());
        let mut out = Effects::new();
        a.on_prepare(NodeId(2), b(2, 2), InstanceId(0), &mut out);
        assert_eq!(
            out.messages[0].message,
            Message::Promise {
                ballot: b(2, 2),
                accepted: vec![AcceptedEntry {
                    instance: InstanceId(0),
                    ballot: b(1, 1),
                    value: 5
                }]
            }
        );
    }

    /// Duplicated messages are harmless: a repeated prepare or accept writes nothing new.
    #[test]
    fn acceptor_is_idempotent_under_duplicates() {
        let mut a = acceptor();
        a.on_accept(NodeId(2), b(1, 2), InstanceId(0), 3, &mut Effects::new());
        let mut out = Effects::new();
        a.on_accept(NodeId(2), b(1, 2), InstanceId(0), 3, &mut out);
        a.on_prepare(NodeId(2), b(1, 2), InstanceId(1), &mut out);
        assert!(out.writes.is_empty());
    }
}
