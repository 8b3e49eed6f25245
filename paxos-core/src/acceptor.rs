//! The acceptor: the promise and accept rules, and nothing else.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::Config;
use crate::effects::{Effects, Write};
use crate::log::Entry;
use crate::message::{AcceptedEntry, Message, Value};
use crate::read::Grants;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Test-only fault switches that break the acceptor on purpose, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcceptorFaults {
    /// Accept proposals below the promised ballot (breaks P1a).
    pub accept_below_promise: bool,
    /// Reply to `Prepare`/`Accept` without writing the promise/accepted pair (reply before persist).
    pub skip_persist: bool,
    /// Promise another leader's ballot while a lease granted to one runs (breaks lease reads).
    pub ignore_leases: bool,
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
///
/// A promise reports what the acceptor accepted from the prepare's `first` instance on, in
/// pages of at most [`Config::promise_page_entries`] entries and about
/// [`Config::promise_page_bytes`] bytes (at least one entry), so no `Promise` outgrows a frame
/// however long the history: the proposer asks for the next page with a `Prepare` at the same
/// ballot from the page's `more`.
///
/// Compaction ([`Acceptor::compact_below`]) drops the accepted pairs below an instance this
/// node has applied and snapshotted. From then on the acceptor accepts nothing below it, and
/// every promise says where its log starts (`compacted`): a proposer must not fill those
/// instances with no-ops, because this acceptor no longer reports the chosen values there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acceptor<V> {
    id: NodeId,
    promised: Ballot,
    accepted: BTreeMap<InstanceId, (Ballot, Entry<V>)>,
    /// Everything below was dropped (and is chosen): nothing is accepted or reported there.
    log_start: InstanceId,
    /// Where `Accepted` goes besides the proposer (the learner strategy).
    notify: BTreeSet<NodeId>,
    /// Leave the entry out of `Accepted` (the proposer, its only addressee, holds it).
    elide_entry: bool,
    page_entries: usize,
    page_bytes: usize,
    /// Leader leases granted (with [`crate::ReadPolicy::Lease`]).
    grants: Grants,
    /// The latest clock reading ([`Acceptor::observe_time`]): leases are in time, not ticks.
    clock: Duration,
    faults: AcceptorFaults,
}

impl<V: Value> Acceptor<V> {
    /// An acceptor restarted from its durable promise and accepted pairs.
    pub fn new(
        config: &Config,
        promised: Ballot,
        accepted: BTreeMap<InstanceId, (Ballot, Entry<V>)>,
    ) -> Self {
        Acceptor {
            id: config.id,
            promised,
            accepted,
            log_start: InstanceId(0),
            notify: config.accepted_recipients().clone(),
            elide_entry: config.learner_strategy == crate::config::LearnerStrategy::Leader,
            page_entries: config.promise_page_entries.max(1),
            page_bytes: config.promise_page_bytes,
            grants: Grants::new(config.read_policy.lease().map(|(grant, _)| grant)),
            clock: Duration::ZERO,
            faults: AcceptorFaults::default(),
        }
    }

    /// The members and roles of a new epoch are in force (see [`crate::Membership`]): who
    /// hears of what this acceptor accepts. Its promise and accepted pairs stay as they are;
    /// the new epoch's ballots are above every old one.
    pub fn reconfigure(&mut self, config: &Config) {
        self.notify = config.accepted_recipients().clone();
    }

    /// The clock now (monotonic; only leases read it).
    pub fn observe_time(&mut self, clock: Duration) {
        self.clock = self.clock.max(clock);
    }

    /// This node booted now: with leases, it promises no new ballot for one lease (what it
    /// granted before a crash is forgotten, so it is waited out).
    pub fn boot(&mut self) {
        self.grants.boot(self.clock);
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
    pub fn accepted(&self, instance: InstanceId) -> Option<&(Ballot, Entry<V>)> {
        self.accepted.get(&instance)
    }

    /// Every accepted pair below this was dropped.
    pub fn log_start(&self) -> InstanceId {
        self.log_start
    }

    /// Drop the accepted pairs below `below`, which this node has applied (so they are chosen)
    /// and covered with a snapshot; the log start never goes back. The caller records it
    /// durably ([`Write::TruncateBelow`]) in the same save as the snapshot.
    pub fn compact_below(&mut self, below: InstanceId) {
        self.log_start = self.log_start.max(below);
        self.accepted = self.accepted.split_off(&self.log_start);
    }

    /// A leader asks whether `ballot` still stands (a ReadIndex round, see `read.rs`):
    /// `Confirmed` unless this acceptor promised a higher ballot, which it reports with
    /// `Nack` as for any ballot it refuses. The promise does not change: a confirmation is a
    /// fact about it at this moment, and promises only grow. With leases, confirming grants
    /// `ballot` one ([`Acceptor::grant`]).
    pub fn on_confirm(&mut self, from: NodeId, ballot: Ballot, seq: u64, out: &mut Effects<V>) {
        if ballot < self.promised {
            out.send(
                from,
                Message::Nack {
                    ballot,
                    promised: self.promised,
                },
            );
        } else {
            self.grant(ballot);
            out.send(from, Message::Confirmed { ballot, seq });
        }
    }

    /// Grant `ballot` a lease from now (with leases; the leader's own acceptor does it when
    /// its leader sends a round).
    pub fn grant(&mut self, ballot: Ballot) {
        self.grants.grant(ballot, self.clock);
    }

    /// Phase 1b. Promise `ballot` if it is not below the current promise, reporting one page of
    /// what was accepted in instances `>= first`; otherwise `Nack` with the promise. A prepare
    /// at the ballot already promised only asks for a page (nothing new to write).
    ///
    /// Why a prepare *equal* to the promise is answered (seed 002 rejects `<=`, seed 004 takes
    /// only `>`): a ballot names its proposer, which persists each round before it uses it and
    /// never uses one again, across restarts too (rule 1). The same ballot can therefore only
    /// come again from the same proposer in the same life: a duplicate, or a request for the
    /// next page of promises. Answering it promises nothing that was not promised already. It
    /// would be unsafe only with a reused ballot, which the model check shows: with rounds not
    /// persisted (`checker_catches_proposer_reusing_a_ballot_after_restart`) one ballot carries
    /// two values, and the property `one value per ballot` holds in every other model.
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
        if ballot > self.promised
            && !self.faults.ignore_leases
            && self.grants.refuses(ballot, self.clock)
        {
            // A lease granted to another leader runs (or the boot wait): no answer, so the
            // proposer times out and tries again (a Nack would only send it higher).
            tracing::debug!(node = %self.id, %ballot, "prepare refused during a lease");
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            if !self.faults.skip_persist {
                out.write(Write::Promise(ballot));
            }
        }
        let mut accepted = Vec::new();
        let mut bytes: usize = 0;
        let mut more = None;
        for (&instance, (b, entry)) in self.accepted.range(first..) {
            let size = postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX);
            let full =
                accepted.len() >= self.page_entries || bytes.saturating_add(size) > self.page_bytes;
            if full && !accepted.is_empty() {
                more = Some(instance);
                break;
            }
            bytes = bytes.saturating_add(size);
            accepted.push(AcceptedEntry {
                instance,
                ballot: *b,
                entry: entry.clone(),
            });
        }
        out.send(
            from,
            Message::Promise {
                ballot,
                first,
                accepted,
                more,
                compacted: self.log_start,
            },
        );
    }

    /// Phase 2b. Accept `entry` in `instance` unless a higher ballot was promised; tell the
    /// proposer and the learners. Nothing is accepted below the log start: the instance is
    /// chosen already, and accepting another entry there could help choose a second one.
    pub fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        instance: InstanceId,
        entry: Entry<V>,
        out: &mut Effects<V>,
    ) {
        if instance < self.log_start {
            tracing::debug!(node = %self.id, %instance, log_start = %self.log_start, "accept below the compacted log ignored");
            return;
        }
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
            self.accepted.insert(instance, (ballot, entry.clone()));
            if !self.faults.skip_persist {
                out.write(Write::Accept {
                    instance,
                    ballot,
                    entry: entry.clone(),
                });
            }
        }
        let reply = Message::Accepted {
            ballot,
            instance,
            entry: (!self.elide_entry).then_some(entry),
        };
        for &learner in self.notify.iter().filter(|&&l| l != from) {
            out.send(learner, reply.clone());
        }
        out.send(from, reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Envelope;
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

    /// A client entry holding `v` (the id does not matter to the acceptor).
    fn e(v: u64) -> Entry<u64> {
        Entry::Value {
            id: crate::log::ProposalId::default(),
            value: v,
        }
    }

    /// A new epoch's learners hear of what is accepted; a ballot of the new epoch is above the
    /// old promise whatever its round.
    #[test]
    fn a_reconfigured_acceptor_tells_the_new_learners() {
        let mut a = acceptor();
        a.on_prepare(NodeId(2), b(9, 2), InstanceId(0), &mut Effects::new());
        a.reconfigure(&config().with_learners([NodeId(3)]));
        let mut out = Effects::new();
        let new = Ballot::in_epoch(1, 1, NodeId(2));
        a.on_accept(NodeId(2), new, InstanceId(4), e(7), &mut out);
        let to: BTreeSet<NodeId> = out.messages.iter().map(|m| m.to).collect();
        assert_eq!(
            to,
            [2, 3].map(NodeId).into(),
            "the proposer and the new learner"
        );
        assert_eq!(a.promised(), new);
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
                    first: InstanceId(0),
                    accepted: vec![],
                    more: None,
                    compacted: InstanceId(0),
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
        a.on_accept(NodeId(2), b(1, 2), InstanceId(0), e(7), &mut out);
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
        a.on_accept(NodeId(2), b(1, 2), InstanceId(4), e(9), &mut out);
        assert_eq!(
            out.writes,
            vec![
                Write::Promise(b(1, 2)),
                Write::Accept {
                    instance: InstanceId(4),
                    ballot: b(1, 2),
                    entry: e(9)
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
        a.on_accept(NodeId(1), b(1, 1), InstanceId(0), e(5), &mut Effects::new());
        let mut out = Effects::new();
        a.on_prepare(NodeId(2), b(2, 2), InstanceId(0), &mut out);
        assert_eq!(
            out.messages[0].message,
            Message::Promise {
                ballot: b(2, 2),
                first: InstanceId(0),
                accepted: vec![AcceptedEntry {
                    instance: InstanceId(0),
                    ballot: b(1, 1),
                    entry: e(5)
                }],
                more: None,
                compacted: InstanceId(0),
            }
        );
    }

    /// After compaction below i3: nothing is reported or accepted below i3, the promise says
    /// the log starts at i3, everything from i3 on is reported as before, and the log start
    /// never goes back.
    #[test]
    fn a_compacted_acceptor_reports_where_its_log_starts_and_accepts_nothing_below() {
        let mut a = acceptor();
        for i in 0..5 {
            a.on_accept(NodeId(2), b(1, 2), InstanceId(i), e(i), &mut Effects::new());
        }
        a.compact_below(InstanceId(3));
        a.compact_below(InstanceId(1));
        assert_eq!(a.log_start(), InstanceId(3));
        assert_eq!(a.accepted(InstanceId(2)), None);
        let mut out = Effects::new();
        a.on_prepare(NodeId(3), b(2, 3), InstanceId(0), &mut out);
        let reported = |i: u64| AcceptedEntry {
            instance: InstanceId(i),
            ballot: b(1, 2),
            entry: e(i),
        };
        assert_eq!(
            out.messages[0].message,
            Message::Promise {
                ballot: b(2, 3),
                first: InstanceId(0),
                accepted: vec![reported(3), reported(4)],
                more: None,
                compacted: InstanceId(3),
            }
        );
        let mut out = Effects::new();
        a.on_accept(NodeId(3), b(2, 3), InstanceId(2), Entry::Noop, &mut out);
        assert_eq!(
            out,
            Effects::new(),
            "nothing accepted, written or sent below i3"
        );
        a.on_accept(NodeId(3), b(2, 3), InstanceId(3), Entry::Noop, &mut out);
        assert_eq!(a.accepted(InstanceId(3)), Some(&(b(2, 3), Entry::Noop)));
    }

    /// Duplicated messages are harmless: a repeated prepare or accept writes nothing new.
    #[test]
    fn acceptor_is_idempotent_under_duplicates() {
        let mut a = acceptor();
        a.on_accept(NodeId(2), b(1, 2), InstanceId(0), e(3), &mut Effects::new());
        let mut out = Effects::new();
        a.on_accept(NodeId(2), b(1, 2), InstanceId(0), e(3), &mut out);
        a.on_prepare(NodeId(2), b(1, 2), InstanceId(1), &mut out);
        assert!(out.writes.is_empty());
    }

    /// With leases, a rebooted acceptor promises no *new* ballot for one lease (what it granted
    /// before is forgotten), but a prepare at the ballot it had promised (its proposer asking
    /// for the next page) is answered: it promises nothing new.
    #[test]
    fn the_boot_wait_refuses_new_ballots_only() {
        let mut c = config();
        c.read_policy = crate::ReadPolicy::Lease {
            duration: Duration::from_millis(100),
            max_drift: Duration::ZERO,
        };
        let mut a: Acceptor<u64> = Acceptor::new(&c, b(1, 2), BTreeMap::new());
        a.boot();
        let mut out = Effects::new();
        a.on_prepare(NodeId(3), b(2, 3), InstanceId(0), &mut out);
        assert!(out.messages.is_empty(), "a new ballot waits out the lease");
        a.on_prepare(NodeId(2), b(1, 2), InstanceId(0), &mut out);
        assert!(
            matches!(
                out.messages[..],
                [Envelope {
                    to: NodeId(2),
                    message: Message::Promise { .. }
                }]
            ),
            "the promised ballot is answered: {:?}",
            out.messages
        );
        assert!(out.writes.is_empty(), "and nothing is written");
    }

    /// A promise over a long history comes in pages from `first` on, each within the budget,
    /// and a prepare at the promised ballot from a page's `more` gets the next page (with no
    /// new write): together the pages are exactly the history from `first`.
    #[test]
    fn a_long_history_is_promised_in_bounded_pages() {
        let mut c = config();
        c.promise_page_entries = 3;
        let mut a = Acceptor::new(&c, Ballot::ZERO, BTreeMap::new());
        for i in 0..8 {
            a.on_accept(NodeId(2), b(1, 2), InstanceId(i), e(i), &mut Effects::new());
        }
        let mut pages = Vec::new();
        let mut first = Some(InstanceId(1));
        while let Some(from) = first {
            let mut out = Effects::new();
            a.on_prepare(NodeId(3), b(2, 3), from, &mut out);
            let Message::Promise { accepted, more, .. } = out.messages.remove(0).message else {
                panic!("a promise");
            };
            assert!(accepted.len() <= 3, "page of {}", accepted.len());
            assert_eq!(
                out.writes.len(),
                usize::from(pages.is_empty()),
                "only the first page writes"
            );
            pages.extend(accepted.into_iter().map(|x| x.instance.0));
            first = more;
        }
        assert_eq!(pages, (1..8).collect::<Vec<_>>());
    }

    /// A page takes entries up to exactly its byte budget: two entries of `S` bytes fill a
    /// budget of `2S`, and the third starts the next page.
    #[test]
    fn a_page_fills_its_byte_budget_exactly() {
        let size = postcard::experimental::serialized_size(&e(1)).expect("sized");
        let mut c = config();
        c.promise_page_bytes = 2 * size;
        let mut a = Acceptor::new(&c, Ballot::ZERO, BTreeMap::new());
        for i in 0..3 {
            a.on_accept(NodeId(2), b(1, 2), InstanceId(i), e(i), &mut Effects::new());
        }
        let mut out = Effects::new();
        a.on_prepare(NodeId(3), b(2, 3), InstanceId(0), &mut out);
        let Message::Promise { accepted, more, .. } = out.messages.remove(0).message else {
            panic!("a promise");
        };
        assert_eq!(accepted.len(), 2, "two entries fit the budget exactly");
        assert_eq!(more, Some(InstanceId(2)));
    }

    /// The byte budget bounds a page too, but a page always carries at least one entry, so
    /// even an entry larger than the budget is reported.
    #[test]
    fn a_page_carries_at_least_one_entry_whatever_its_size() {
        let mut c = config();
        c.promise_page_bytes = 1;
        let mut a = Acceptor::new(&c, Ballot::ZERO, BTreeMap::new());
        for i in 0..2 {
            a.on_accept(
                NodeId(2),
                b(1, 2),
                InstanceId(i),
                e(1000 + i),
                &mut Effects::new(),
            );
        }
        let mut out = Effects::new();
        a.on_prepare(NodeId(3), b(2, 3), InstanceId(0), &mut out);
        assert!(matches!(
            &out.messages[0].message,
            Message::Promise { accepted, more: Some(InstanceId(1)), .. } if accepted.len() == 1
        ));
    }
}
