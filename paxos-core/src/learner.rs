//! The learner: finds out which value is chosen, and spreads decisions.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::{Config, LearnerStrategy};
use crate::effects::{Effects, Write};
use crate::log::Entry;
use crate::message::{Message, Value};
use crate::quorum::Votes;
use std::collections::{BTreeMap, BTreeSet};

/// One node's learner over all instances.
///
/// A value is chosen in an instance once a majority of acceptors accepted it at one ballot
/// (Paxos Made Simple §2.3). The learner counts `Accepted` per `(instance, ballot)`; it also
/// trusts `Decided`, which only a node that knows the value is chosen sends. Under
/// [`LearnerStrategy::Distinguished`] the distinguished learners forward each decision to the
/// other learners. Under [`LearnerStrategy::Leader`] the proposer that saw a quorum announces
/// the instances (not the values) with `Chosen`, batched with its next `Accept`s. Anyone who
/// missed decisions asks with `CatchUp` on a timer.
///
/// Compaction drops the decisions below [`Learner::log_start`] (a snapshot holds their
/// effect); a `CatchUp` from below it cannot be answered with decisions, and the replica sends
/// the snapshot instead. Nothing below the log start is learned again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Learner<V> {
    id: NodeId,
    acceptors: BTreeSet<NodeId>,
    /// Other nodes to ask for missed decisions.
    peers: BTreeSet<NodeId>,
    /// Learners this node forwards decisions to (non-empty only for a distinguished learner).
    forward_to: BTreeSet<NodeId>,
    /// Learners told of what this node's proposer saw chosen (only under the leader strategy).
    announce_to: BTreeSet<NodeId>,
    /// Which of `announce_to` are acceptors (they hold the values; the others need them sent).
    acceptors_among_learners: BTreeSet<NodeId>,
    /// Chosen here at our own ballot and not yet announced, oldest first.
    unannounced: Vec<(Ballot, InstanceId)>,
    /// Votes count only at ballots of this epoch: a quorum is a majority of *its* acceptors.
    epoch: u64,
    decided: BTreeMap<InstanceId, Entry<V>>,
    first_undecided: InstanceId,
    /// Decisions below this were dropped (a snapshot covers them).
    log_start: InstanceId,
    /// `Accepted` votes of undecided instances.
    votes: BTreeMap<InstanceId, BTreeMap<Ballot, (Entry<V>, Votes)>>,
    catch_up_every: u64,
    catch_up_batch: usize,
    catch_up_bytes: usize,
    /// Bytes of decisions learned since the last ask (counted only while catching up): an
    /// answer cut by the byte budget asks for the next at once, as a full batch does.
    caught_bytes: usize,
    /// The frontier at the last catch-up tick: only a node whose frontier stalled asks.
    frontier_at_last_check: Option<InstanceId>,
    /// The highest decision known at the last catch-up tick: a node whose frontier has not
    /// reached it since is lagging (it moves, but a gap below live decisions persists).
    highest_at_last_check: Option<InstanceId>,
    /// Where the last catch-up ask started: once a whole batch from there has arrived the
    /// learner asks for the next one at once, so catching up runs at a batch per round trip,
    /// not per catch-up check (a joiner under load would never catch up otherwise).
    asked_from: Option<InstanceId>,
    /// Decisions received that contradict one this learner holds (each also logged as an
    /// error): anything but 0 means a safety violation somewhere in the cluster.
    conflicts: u64,
    now: u64,
}

impl<V: Value> Learner<V> {
    /// A learner restarted with the decisions it had made durable.
    pub fn new(config: &Config, decided: BTreeMap<InstanceId, Entry<V>>) -> Self {
        let mut learner = Learner {
            acceptors_among_learners: BTreeSet::new(),
            announce_to: BTreeSet::new(),
            unannounced: Vec::new(),
            epoch: 0,
            id: config.id,
            acceptors: BTreeSet::new(),
            peers: BTreeSet::new(),
            forward_to: BTreeSet::new(),
            decided,
            first_undecided: InstanceId(0),
            log_start: InstanceId(0),
            votes: BTreeMap::new(),
            catch_up_every: config.catch_up_ticks,
            catch_up_batch: config.catch_up_batch.max(1),
            catch_up_bytes: config.catch_up_bytes,
            caught_bytes: 0,
            frontier_at_last_check: None,
            highest_at_last_check: None,
            asked_from: None,
            conflicts: 0,
            now: 0,
        };
        learner.reconfigure(config, 0);
        learner.advance_frontier();
        learner
    }

    /// The members and roles of `epoch` (from `config`) are in force: votes count towards a
    /// majority of its acceptors, and only at its ballots (the instances of earlier epochs
    /// are all decided here by the time a node enters a later one).
    pub fn reconfigure(&mut self, config: &Config, epoch: u64) {
        self.forward_to = match &config.learner_strategy {
            LearnerStrategy::Distinguished(set) if set.contains(&config.id) => config
                .learners
                .iter()
                .filter(|l| !set.contains(l))
                .copied()
                .collect(),
            _ => BTreeSet::new(),
        };
        self.announce_to = match &config.learner_strategy {
            LearnerStrategy::Leader => config
                .learners
                .iter()
                .filter(|l| **l != config.id)
                .copied()
                .collect(),
            _ => BTreeSet::new(),
        };
        self.acceptors_among_learners = self
            .announce_to
            .intersection(&config.acceptors)
            .copied()
            .collect();
        self.acceptors = config.acceptors.clone();
        self.peers = config
            .nodes
            .iter()
            .filter(|n| **n != config.id)
            .copied()
            .collect();
        if epoch != self.epoch {
            self.epoch = epoch;
            self.votes.clear();
            self.unannounced.clear();
        }
    }

    /// The entry chosen in `instance`, if this node knows it.
    pub fn decided(&self, instance: InstanceId) -> Option<&Entry<V>> {
        self.decided.get(&instance)
    }

    /// Every decision this node knows.
    pub fn decisions(&self) -> &BTreeMap<InstanceId, Entry<V>> {
        &self.decided
    }

    /// Every instance below this is decided here.
    pub fn first_undecided(&self) -> InstanceId {
        self.first_undecided
    }

    /// Highest instance decided here plus one (the frontier if none is kept above it).
    pub fn next_after_decided(&self) -> InstanceId {
        self.decided
            .keys()
            .next_back()
            .map_or(self.first_undecided, |i| i.next())
            .max(self.first_undecided)
    }

    /// Decisions below this were dropped: a snapshot holds their effect.
    pub fn log_start(&self) -> InstanceId {
        self.log_start
    }

    /// Drop the decisions below `below` (never past the frontier: only what is decided, and
    /// applied, may go); the log start never goes back.
    pub fn compact_below(&mut self, below: InstanceId) {
        self.log_start = self.log_start.max(below.min(self.first_undecided));
        self.decided = self.decided.split_off(&self.log_start);
        self.votes = self.votes.split_off(&self.log_start);
    }

    /// Every instance below `index` is chosen and its effect is in a snapshot this node holds
    /// (installed, or restored at start-up): the frontier moves up to it. Decisions kept above
    /// it still count.
    pub fn skip_to(&mut self, index: InstanceId) {
        if index > self.first_undecided {
            self.first_undecided = index;
            self.votes = self.votes.split_off(&index);
            self.unannounced.retain(|(_, i)| *i >= index);
            self.advance_frontier();
        }
    }

    /// An acceptor accepted `entry` in `instance` at `ballot`. Returns true if this made the
    /// instance decided.
    pub fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        instance: InstanceId,
        entry: Entry<V>,
        out: &mut Effects<V>,
    ) -> bool {
        if instance < self.first_undecided
            || self.decided.contains_key(&instance)
            || !self.acceptors.contains(&from)
            || ballot.epoch != self.epoch
        {
            return false;
        }
        let (_, votes) = self
            .votes
            .entry(instance)
            .or_default()
            .entry(ballot)
            .or_insert_with(|| (entry, Votes::new()));
        votes.add(from);
        if !votes.is_quorum(self.acceptors.len()) {
            return false;
        }
        let value = self
            .votes
            .remove(&instance)
            .and_then(|mut m| m.remove(&ballot))
            .map(|(v, _)| v);
        match value {
            Some(v) => {
                self.learn(instance, v, out);
                true
            }
            None => false,
        }
    }

    /// Someone who knows tells us `entry` is chosen in `instance`. Returns true if it was new.
    pub fn on_decided(
        &mut self,
        instance: InstanceId,
        entry: Entry<V>,
        out: &mut Effects<V>,
    ) -> bool {
        if instance < self.first_undecided && !self.decided.contains_key(&instance) {
            // Covered by a snapshot: decided, its entry no longer kept.
            return false;
        }
        match self.decided.get(&instance) {
            Some(existing) => {
                if *existing != entry {
                    // Two different decisions for one instance: a safety violation somewhere.
                    self.conflicts = self.conflicts.saturating_add(1);
                    tracing::error!(%instance, ?existing, ?entry, "conflicting decision received");
                }
                false
            }
            None => {
                self.learn(instance, entry, out);
                true
            }
        }
    }

    /// This node's proposer saw `entry` chosen in `instance` at its own `ballot` (a quorum of
    /// `Accepted`). Learns it and, under the leader strategy, queues it for
    /// [`Learner::announce`].
    pub fn on_chosen_here(
        &mut self,
        ballot: Ballot,
        instance: InstanceId,
        entry: Entry<V>,
        out: &mut Effects<V>,
    ) {
        if self.on_decided(instance, entry, out) && !self.announce_to.is_empty() {
            self.unannounced.push((ballot, instance));
        }
    }

    /// How many decisions received contradicted one this learner holds (it keeps its own):
    /// anything but 0 means a safety violation somewhere in the cluster.
    pub fn conflicting_decisions(&self) -> u64 {
        self.conflicts
    }

    /// True if decisions wait for [`Learner::announce`].
    pub fn has_unannounced(&self) -> bool {
        !self.unannounced.is_empty()
    }

    /// Tell the other learners what this node's proposer saw chosen since the last call: one
    /// `Chosen` per ballot to each acceptor-learner, `Decided` (with the value) to the others.
    pub fn announce(&mut self, out: &mut Effects<V>) {
        if self.unannounced.is_empty() {
            return;
        }
        let mut by_ballot: BTreeMap<Ballot, Vec<InstanceId>> = BTreeMap::new();
        for (ballot, instance) in self.unannounced.drain(..) {
            by_ballot.entry(ballot).or_default().push(instance);
        }
        for &to in &self.announce_to {
            for (&ballot, instances) in &by_ballot {
                if self.acceptors_among_learners.contains(&to) {
                    out.send(
                        to,
                        Message::Chosen {
                            ballot,
                            instances: instances.clone(),
                        },
                    );
                    continue;
                }
                for &instance in instances {
                    if let Some(entry) = self.decided.get(&instance) {
                        let entry = entry.clone();
                        out.send(to, Message::Decided { instance, entry });
                    }
                }
            }
        }
    }

    /// A peer asks for decisions from `first` on: send the run of decisions that starts at
    /// `first`, at most `catch_up_batch` of them and about `catch_up_bytes` (at least one).
    /// Returns false, sending nothing, if decisions it needs were dropped (it needs the
    /// snapshot).
    ///
    /// Only the unbroken run from `first`: the asker is missing `first` itself, and what
    /// lies above a gap in this log (`first` undecided here too, or a later hole) it cannot
    /// apply before the gap fills; sending it anyway re-sent the whole tail above a gap at
    /// every ask of every stalled peer, a flood that grew with the tail (issue 20: 180 MiB
    /// above one gap took a node past 2 GB). The leader fills the gap; the next ask, from
    /// past it, gets the rest.
    pub fn on_catch_up(&self, from: NodeId, first: InstanceId, out: &mut Effects<V>) -> bool {
        if first < self.log_start {
            return false;
        }
        let mut expected = first;
        let mut bytes: usize = 0;
        for (&instance, entry) in self.decided.range(first..).take(self.catch_up_batch) {
            let size = postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX);
            if instance != expected
                || (bytes > 0 && bytes.saturating_add(size) > self.catch_up_bytes)
            {
                break;
            }
            bytes = bytes.saturating_add(size);
            expected = instance.next();
            out.send(
                from,
                Message::Decided {
                    instance,
                    entry: entry.clone(),
                },
            );
        }
        true
    }

    /// One tick: announce what is still unannounced (the cluster went quiet), and periodically
    /// ask peers for decisions we may have missed. A node whose frontier
    /// moved since the last check is keeping up and does not ask, so a busy cluster pays nothing;
    /// one that stalled (it missed messages, or restarted into an idle cluster) asks everyone,
    /// and so does every node at its first tick. So does one that lags: its frontier moves
    /// (answers arrive) but has not reached a decision it already knew of a check ago: a
    /// joining learner hears live decisions far above its catch-up, and waiting for its
    /// frontier to stall between batches would halve its catch-up rate, slower than a busy
    /// cluster writes. Gaps of reordering fill within a check and cost nothing. With `catch_up` false it asks nobody: a
    /// snapshot is on its way, and every peer that compacted would answer with its first piece
    /// again.
    pub fn tick(&mut self, catch_up: bool, out: &mut Effects<V>) {
        self.now += 1;
        self.announce(out);
        if self.catch_up_every == 0 {
            return;
        }
        // A node that just (re)started asks once at once: it may have lost decision records
        // that were waiting for a save when it crashed (see `crate::effects`).
        let just_started = self.now == 1;
        if !just_started && !self.now.is_multiple_of(self.catch_up_every) {
            return;
        }
        let stalled = self.frontier_at_last_check == Some(self.first_undecided);
        let lagging = self
            .highest_at_last_check
            .is_some_and(|known| known >= self.first_undecided);
        self.frontier_at_last_check = Some(self.first_undecided);
        self.highest_at_last_check = self.decided.last_key_value().map(|(&i, _)| i);
        if (!stalled && !lagging && !just_started) || !catch_up {
            self.asked_from = None;
            return;
        }
        self.ask(out);
    }

    /// Ask every peer for the decisions from the frontier on.
    fn ask(&mut self, out: &mut Effects<V>) {
        self.asked_from = Some(self.first_undecided);
        self.caught_bytes = 0;
        for &peer in &self.peers {
            out.send(
                peer,
                Message::CatchUp {
                    first: self.first_undecided,
                },
            );
        }
    }

    /// A whole batch of what was asked has arrived (`catch_up_batch` decisions, or
    /// `catch_up_bytes` of them): there is likely more, ask for it now. Each ask follows a
    /// batch of progress, so this ends (at the first short answer).
    fn continue_catch_up(&mut self, out: &mut Effects<V>) {
        let Some(from) = self.asked_from else {
            return;
        };
        let batch_end = from.0.saturating_add(self.catch_up_batch as u64);
        let frontier_moved = self.first_undecided > from;
        if self.first_undecided.0 >= batch_end
            || (frontier_moved && self.caught_bytes >= self.catch_up_bytes)
        {
            self.ask(out);
        }
    }

    fn learn(&mut self, instance: InstanceId, entry: Entry<V>, out: &mut Effects<V>) {
        self.votes.remove(&instance);
        for &l in &self.forward_to {
            out.send(
                l,
                Message::Decided {
                    instance,
                    entry: entry.clone(),
                },
            );
        }
        out.write(Write::Decided {
            instance,
            entry: entry.clone(),
        });
        out.decided.push((instance, entry.clone()));
        // Only what an answer to the last ask could hold: live decisions far above a joiner's
        // frontier do not make it ask again. (Nothing below the ask is learned any more: it
        // started at the frontier.)
        let asked = self
            .asked_from
            .is_some_and(|from| instance.0 < from.0.saturating_add(self.catch_up_batch as u64));
        if asked {
            let size = postcard::experimental::serialized_size(&entry).unwrap_or(usize::MAX);
            self.caught_bytes = self.caught_bytes.saturating_add(size);
        }
        self.decided.insert(instance, entry);
        self.advance_frontier();
        self.continue_catch_up(out);
    }

    fn advance_frontier(&mut self) {
        while self.decided.contains_key(&self.first_undecided) {
            self.first_undecided = self.first_undecided.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    /// A client entry holding `v`.
    fn e(v: u64) -> Entry<u64> {
        Entry::Value {
            id: crate::log::ProposalId::default(),
            value: v,
        }
    }

    /// Where the `CatchUp` asks in `out` start.
    fn asks(out: &Effects<u64>) -> Vec<InstanceId> {
        out.messages
            .iter()
            .filter_map(|e| match e.message {
                Message::CatchUp { first } => Some(first),
                _ => None,
            })
            .collect()
    }

    fn config(strategy: LearnerStrategy) -> Config {
        Config::symmetric(NodeId(1), (1..=5).map(NodeId)).with_learner_strategy(strategy)
    }

    /// After a membership change, votes count towards a majority of the new epoch's acceptors
    /// and only at its ballots: two old acceptors' votes at an old ballot are not a quorum of
    /// the new three, though they are two of three.
    #[test]
    fn votes_count_only_at_the_epochs_ballots_and_towards_its_quorum() {
        let mut l: Learner<u64> = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        let mut three = config(LearnerStrategy::AllToAll);
        three.acceptors = [1, 2, 3].map(NodeId).into();
        l.reconfigure(&three, 1);
        let mut out = Effects::new();
        for from in [1, 2] {
            assert!(!l.on_accepted(NodeId(from), b(7, 1), InstanceId(0), e(5), &mut out));
        }
        assert!(
            l.decided(InstanceId(0)).is_none(),
            "epoch-0 votes are not counted"
        );
        let new = Ballot::in_epoch(1, 1, NodeId(1));
        assert!(!l.on_accepted(NodeId(4), new, InstanceId(0), e(6), &mut out));
        assert!(!l.on_accepted(NodeId(1), new, InstanceId(0), e(6), &mut out));
        assert!(l.on_accepted(NodeId(2), new, InstanceId(0), e(6), &mut out));
        assert_eq!(
            l.decided(InstanceId(0)),
            Some(&e(6)),
            "n1 and n2 of {{n1, n2, n3}}"
        );
    }

    /// Compaction drops decisions below the log start, never past the frontier; a catch-up
    /// from below it is refused (the replica sends the snapshot); nothing below the frontier
    /// is learned again; a snapshot's index moves the frontier over kept decisions above it.
    #[test]
    fn a_compacted_learner_serves_only_what_it_kept() {
        let mut l = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        let mut out = Effects::new();
        for i in 0..4 {
            l.on_decided(InstanceId(i), e(i), &mut out);
        }
        l.compact_below(InstanceId(9));
        assert_eq!(l.log_start(), InstanceId(4), "never past the frontier");
        assert!(l.decisions().is_empty());
        assert_eq!(l.next_after_decided(), InstanceId(4));
        let mut out = Effects::new();
        assert!(!l.on_catch_up(NodeId(2), InstanceId(3), &mut out));
        assert!(l.on_catch_up(NodeId(2), InstanceId(4), &mut out));
        assert!(out.messages.is_empty());
        assert!(!l.on_decided(InstanceId(2), e(9), &mut out));
        for from in 1..=3 {
            assert!(!l.on_accepted(NodeId(from), b(5, 1), InstanceId(1), e(9), &mut out));
        }
        assert_eq!(
            out,
            Effects::new(),
            "nothing below the frontier is learned again"
        );
        // A snapshot below i7 with i7 decided already: the frontier passes both.
        l.on_decided(InstanceId(7), e(7), &mut Effects::new());
        l.skip_to(InstanceId(7));
        assert_eq!(l.first_undecided(), InstanceId(8));
        l.skip_to(InstanceId(2));
        assert_eq!(l.first_undecided(), InstanceId(8), "never back");
    }

    /// A stalled learner asks every peer at its first tick and then every `catch_up_ticks`,
    /// unless told a snapshot is on its way.
    #[test]
    fn a_stalled_learner_asks_unless_a_snapshot_is_coming() {
        let asks = |catch_up: bool| {
            let mut l = Learner::<u64>::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
            let mut out = Effects::new();
            for _ in 0..=l.catch_up_every {
                l.tick(catch_up, &mut out);
            }
            out.messages
                .iter()
                .filter(|e| matches!(e.message, Message::CatchUp { .. }))
                .count()
        };
        assert_eq!(
            asks(true),
            2 * 4,
            "at the first tick and once stalled, each of 4 peers"
        );
        assert_eq!(asks(false), 0);
    }

    /// A learner whose frontier moves but stays below a decision it knew of a check ago asks
    /// again (a joiner catching up under load); one that filled its gap does not.
    #[test]
    fn a_lagging_learner_keeps_asking_until_it_reaches_what_it_knew() {
        let asks_at_second_check = |fill: u64| {
            let mut l = Learner::<u64>::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
            let mut out = Effects::new();
            l.tick(true, &mut out); // first tick: asks, as every starting node does
            l.on_decided(InstanceId(0), e(0), &mut out);
            l.on_decided(InstanceId(10), e(10), &mut out); // a live decision far ahead
            for _ in 1..l.catch_up_every {
                l.tick(true, &mut out);
            }
            l.tick(true, &mut out); // first check: records i10 as known
            for i in 1..=fill {
                l.on_decided(InstanceId(i), e(i), &mut out); // a catch-up answer arrives
            }
            out.messages.clear();
            for _ in 0..l.catch_up_every {
                l.tick(true, &mut out);
            }
            out.messages
                .iter()
                .filter(|e| matches!(e.message, Message::CatchUp { .. }))
                .count()
        };
        assert_eq!(
            asks_at_second_check(5),
            4,
            "moved but below i10: asks its 4 peers"
        );
        assert_eq!(asks_at_second_check(9), 0, "reached i10: nothing to ask");
    }

    /// Once a whole batch of an ask has arrived, the learner asks for the next at once
    /// (catching up at a batch per round trip); a short answer ends it.
    #[test]
    fn a_full_catch_up_batch_asks_for_the_next_at_once() {
        let mut c = config(LearnerStrategy::AllToAll);
        c.catch_up_batch = 3;
        let mut l = Learner::<u64>::new(&c, BTreeMap::new());
        let mut out = Effects::new();
        l.tick(true, &mut out); // first tick: asks from i0
        assert_eq!(asks(&out), vec![InstanceId(0); 4]);
        out.messages.clear();
        l.on_decided(InstanceId(0), e(0), &mut out);
        l.on_decided(InstanceId(1), e(1), &mut out);
        assert!(asks(&out).is_empty(), "the batch is not complete");
        l.on_decided(InstanceId(2), e(2), &mut out);
        assert_eq!(asks(&out), vec![InstanceId(3); 4], "next batch from i3");
        out.messages.clear();
        l.on_decided(InstanceId(3), e(3), &mut out);
        l.on_decided(InstanceId(4), e(4), &mut out);
        assert!(asks(&out).is_empty(), "two of three: no ask yet");
        l.on_decided(InstanceId(5), e(5), &mut out);
        assert_eq!(asks(&out), vec![InstanceId(6); 4], "a full batch again");
    }

    /// Issue 20: a catch-up answer is the unbroken run from the asked instance, cut at the
    /// byte budget (at least one decision): nothing above a gap, in particular nothing at
    /// all when the asked instance is undecided here too.
    #[test]
    fn a_catch_up_answer_is_the_run_from_the_asked_instance_within_its_bytes() {
        let size = postcard::experimental::serialized_size(&e(1)).expect("sized");
        let mut c = config(LearnerStrategy::AllToAll);
        c.catch_up_bytes = 2 * size;
        let decided = [0, 1, 2, 3, 5, 6].map(|i| (InstanceId(i), e(i))).into();
        let l = Learner::new(&c, decided);
        let answer = |first: u64| -> Vec<InstanceId> {
            let mut out = Effects::new();
            assert!(l.on_catch_up(NodeId(2), InstanceId(first), &mut out));
            out.messages
                .into_iter()
                .map(|e| match e.message {
                    Message::Decided { instance, .. } => instance,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(answer(0), [0, 1].map(InstanceId), "two entries' worth");
        assert_eq!(
            answer(3),
            [3].map(InstanceId),
            "i4 is a gap: nothing above it"
        );
        assert_eq!(answer(4), vec![], "the asked instance is a gap here too");
        assert_eq!(answer(5), [5, 6].map(InstanceId));
        // A budget smaller than one entry still sends one.
        c.catch_up_bytes = 1;
        let l = Learner::new(&c, [(InstanceId(0), e(0)), (InstanceId(1), e(1))].into());
        let mut out = Effects::new();
        l.on_catch_up(NodeId(2), InstanceId(0), &mut out);
        assert_eq!(out.messages.len(), 1);
    }

    /// An answer cut by the byte budget asks for the next at once, as a full batch does;
    /// live decisions far above the asked range do not count towards it.
    #[test]
    fn a_catch_up_answer_full_in_bytes_asks_for_the_next_at_once() {
        let size = postcard::experimental::serialized_size(&e(1)).expect("sized");
        let mut c = config(LearnerStrategy::AllToAll);
        c.catch_up_batch = 100;
        c.catch_up_bytes = 2 * size;
        let mut l = Learner::<u64>::new(&c, BTreeMap::new());
        let mut out = Effects::new();
        l.tick(true, &mut out); // asks from i0
        out.messages.clear();
        // Live decisions beyond the asked range: no ask.
        l.on_decided(InstanceId(500), e(500), &mut out);
        l.on_decided(InstanceId(501), e(501), &mut out);
        assert!(asks(&out).is_empty(), "{:?}", asks(&out));
        // Two entries' worth in the range, but the frontier has not moved: no answer to the
        // ask came (an answer starts at i0), so no ask.
        l.on_decided(InstanceId(1), e(1), &mut out);
        l.on_decided(InstanceId(3), e(3), &mut out);
        assert!(asks(&out).is_empty(), "{:?}", asks(&out));
        l.on_decided(InstanceId(0), e(0), &mut out);
        assert_eq!(
            asks(&out),
            vec![InstanceId(2); 4],
            "the budget's worth and progress"
        );
        out.messages.clear();
        l.on_decided(InstanceId(2), e(2), &mut out);
        assert!(asks(&out).is_empty(), "counted afresh from the new ask");
    }

    /// A value is chosen once a majority accepted it at one ballot; the decision is persisted
    /// and reported.
    #[test]
    fn learner_learns_at_a_majority_of_one_ballot() {
        let mut l = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        let mut out = Effects::new();
        assert!(!l.on_accepted(NodeId(1), b(1, 1), InstanceId(0), e(9), &mut out));
        assert!(!l.on_accepted(NodeId(2), b(1, 1), InstanceId(0), e(9), &mut out));
        assert!(l.on_accepted(NodeId(3), b(1, 1), InstanceId(0), e(9), &mut out));
        assert_eq!(
            out.writes,
            vec![Write::Decided {
                instance: InstanceId(0),
                entry: e(9)
            }]
        );
        assert_eq!(out.decided, vec![(InstanceId(0), e(9))]);
        assert_eq!(l.first_undecided(), InstanceId(1));
    }

    /// Votes at different ballots do not add up: 2 at 1.1 and 1 at 2.2 is no majority.
    #[test]
    fn learner_does_not_mix_ballots() {
        let mut l = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        let mut out = Effects::new();
        l.on_accepted(NodeId(1), b(1, 1), InstanceId(0), e(9), &mut out);
        l.on_accepted(NodeId(2), b(1, 1), InstanceId(0), e(9), &mut out);
        l.on_accepted(NodeId(3), b(2, 2), InstanceId(0), e(9), &mut out);
        assert_eq!(l.decided(InstanceId(0)), None);
    }

    /// Seed 004: a distinguished learner forwards each decision to the other learners.
    #[test]
    fn distinguished_learner_forwards_decisions() {
        let strategy = LearnerStrategy::Distinguished([NodeId(1)].into());
        let mut l = Learner::new(&config(strategy), BTreeMap::new());
        let mut out = Effects::new();
        l.on_decided(InstanceId(0), e(5), &mut out);
        let to: Vec<NodeId> = out.messages.iter().map(|e| e.to).collect();
        assert_eq!(to, vec![NodeId(2), NodeId(3), NodeId(4), NodeId(5)]);
        // A learner outside the distinguished set only learns: it forwards nothing.
        let strategy = LearnerStrategy::Distinguished([NodeId(2)].into());
        let mut l = Learner::new(&config(strategy), BTreeMap::new());
        let mut out = Effects::new();
        l.on_decided(InstanceId(0), e(5), &mut out);
        assert!(out.messages.is_empty(), "{:?}", out.messages);
    }

    /// A node that missed decisions gets them from a peer that has them.
    #[test]
    fn learner_answers_catch_up_from_the_asked_instance() {
        let decided = [
            (InstanceId(0), e(1)),
            (InstanceId(1), e(2)),
            (InstanceId(2), e(3)),
        ]
        .into();
        let l = Learner::new(&config(LearnerStrategy::AllToAll), decided);
        let mut out = Effects::new();
        l.on_catch_up(NodeId(2), InstanceId(1), &mut out);
        let got: Vec<Message<u64>> = out.messages.into_iter().map(|e| e.message).collect();
        assert_eq!(
            got,
            vec![
                Message::Decided {
                    instance: InstanceId(1),
                    entry: e(2)
                },
                Message::Decided {
                    instance: InstanceId(2),
                    entry: e(3)
                }
            ]
        );
    }

    /// Decisions never change: a conflicting Decided is ignored (and logged).
    #[test]
    fn learner_keeps_its_first_decision() {
        let mut l = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        let mut out = Effects::new();
        l.on_decided(InstanceId(0), e(5), &mut out);
        assert!(!l.on_decided(InstanceId(0), e(6), &mut out));
        assert_eq!(l.decided(InstanceId(0)), Some(&e(5)));
    }

    /// Leader strategy: what the proposer saw chosen is announced once, as one `Chosen` per
    /// ballot to learners that are acceptors and as `Decided` (with the value) to the others.
    /// Under the all-to-all strategy nothing waits for an announcement; under the leader
    /// strategy only a new decision does.
    #[test]
    fn only_new_decisions_wait_for_an_announcement() {
        let mut l = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        l.on_chosen_here(b(1, 1), InstanceId(0), e(10), &mut Effects::new());
        assert!(
            !l.has_unannounced(),
            "all-to-all: the acceptors tell everyone"
        );
        let mut l = Learner::new(&config(LearnerStrategy::Leader), BTreeMap::new());
        l.on_decided(InstanceId(0), e(10), &mut Effects::new());
        l.on_chosen_here(b(1, 1), InstanceId(0), e(10), &mut Effects::new());
        assert!(
            !l.has_unannounced(),
            "known already: nothing new to announce"
        );
    }

    /// A snapshot skips what it covers, announcements included, and keeps what lies above;
    /// one at the frontier covers nothing new.
    #[test]
    fn a_snapshot_keeps_the_announcements_above_it() {
        let mut l = Learner::new(&config(LearnerStrategy::Leader), BTreeMap::new());
        let announced = |l: &mut Learner<u64>| {
            let mut out = Effects::new();
            l.announce(&mut out);
            out.messages
                .iter()
                .filter_map(|m| match &m.message {
                    Message::Chosen { instances, .. } => Some(instances.clone()),
                    _ => None,
                })
                .collect::<BTreeSet<_>>()
        };
        let mut out = Effects::new();
        l.on_chosen_here(b(1, 1), InstanceId(0), e(10), &mut out);
        l.on_chosen_here(b(1, 1), InstanceId(7), e(17), &mut out);
        l.skip_to(InstanceId(1)); // the frontier already: covers nothing
        assert_eq!(
            announced(&mut l),
            BTreeSet::from([vec![InstanceId(0), InstanceId(7)]])
        );
        l.on_chosen_here(b(1, 1), InstanceId(3), e(13), &mut out);
        l.on_chosen_here(b(1, 1), InstanceId(9), e(19), &mut out);
        l.skip_to(InstanceId(5));
        assert_eq!(
            announced(&mut l),
            BTreeSet::from([vec![InstanceId(9)]]),
            "i3 is in the snapshot; i9 lies above it"
        );
    }

    /// A decision that contradicts the one held is refused (the first stays) and counted.
    #[test]
    fn a_conflicting_decision_is_counted_and_the_first_kept() {
        let mut l = Learner::new(&config(LearnerStrategy::AllToAll), BTreeMap::new());
        let mut out = Effects::new();
        l.on_decided(InstanceId(0), e(10), &mut out);
        assert!(!l.on_decided(InstanceId(0), e(10), &mut out), "a repeat");
        assert_eq!(l.conflicting_decisions(), 0);
        assert!(!l.on_decided(InstanceId(0), e(11), &mut out));
        assert_eq!(l.conflicting_decisions(), 1);
        assert_eq!(l.decided(InstanceId(0)), Some(&e(10)));
    }

    #[test]
    fn leader_strategy_announces_chosen_instances_once() {
        let config = Config::symmetric(NodeId(1), (1..=4).map(NodeId))
            .with_acceptors([NodeId(1), NodeId(2), NodeId(3)])
            .with_learner_strategy(LearnerStrategy::Leader);
        let mut l = Learner::new(&config, BTreeMap::new());
        let mut out = Effects::new();
        l.on_chosen_here(b(1, 1), InstanceId(0), e(10), &mut out);
        l.on_chosen_here(b(1, 1), InstanceId(1), e(11), &mut out);
        assert!(out.messages.is_empty(), "announcements wait for announce()");
        assert!(l.has_unannounced());
        l.announce(&mut out);
        let sent: Vec<(NodeId, Message<u64>)> =
            out.messages.drain(..).map(|e| (e.to, e.message)).collect();
        let chosen = Message::Chosen {
            ballot: b(1, 1),
            instances: vec![InstanceId(0), InstanceId(1)],
        };
        assert_eq!(
            sent,
            vec![
                (NodeId(2), chosen.clone()),
                (NodeId(3), chosen),
                (
                    NodeId(4),
                    Message::Decided {
                        instance: InstanceId(0),
                        entry: e(10)
                    }
                ),
                (
                    NodeId(4),
                    Message::Decided {
                        instance: InstanceId(1),
                        entry: e(11)
                    }
                ),
            ]
        );
        l.announce(&mut out);
        assert!(out.messages.is_empty(), "announced twice");
    }
}
