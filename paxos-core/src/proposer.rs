//! The proposer: phase 1 and phase 2, adopting the highest accepted value, filling holes,
//! climbing over `Nack`s.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::config::Config;
use crate::effects::{Effects, Write};
use crate::log::{Entry, ProposalId};
use crate::message::{AcceptedEntry, Message, Value};
use crate::quorum::Votes;
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Test-only fault switches that break the proposer on purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProposerFaults {
    /// Ignore entries reported in promises and propose its own (breaks rule 3).
    pub ignore_promised_values: bool,
    /// Do not persist the round before sending a ballot (breaks rule 1).
    pub skip_round_persist: bool,
    /// Leave holes: no no-op for an instance nothing was accepted in (breaks rule 4's
    /// liveness: a state machine applying in order stops at the hole).
    pub skip_noop_fill: bool,
    /// Forget the recovered frontier: a restarted proposer prepares from instance 0, so every
    /// acceptor reports its whole history.
    pub prepare_from_zero: bool,
    /// The node answers an append as soon as its instance is decided, not once every instance
    /// below it is (acknowledgements out of log order). Read by the runtime.
    pub ack_before_prefix: bool,
    /// Ignore where promises say an acceptor's log was compacted: fill below it as if nothing
    /// had been accepted there (breaks agreement once acceptors compact).
    pub ignore_compaction: bool,
    /// The read index is the decided prefix instead of the frontier: a new leader serves
    /// reads before what it recovered in phase 1 is decided (etcd #7331's stale ReadIndex).
    pub read_index_from_decided: bool,
    /// Reads are answered from this node's state at once, with no read index (a stale read
    /// on any node that lags). Read by the replica.
    pub read_without_barrier: bool,
    /// The next epoch starts right after the change that ends this one, not a window later,
    /// while this epoch's proposers still pipeline a window ahead: the old acceptors can
    /// choose a value where the new ones choose another. Read by the replica.
    pub epoch_without_window: bool,
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
        /// Acceptors whose promise is complete (every page received).
        promises: Votes,
        /// Acceptors that promised and still owe pages: where the next page starts.
        pages: BTreeMap<NodeId, InstanceId>,
        /// Highest accepted `(ballot, entry)` reported per instance.
        adopted: BTreeMap<InstanceId, (Ballot, Entry<V>)>,
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
    entry: Entry<V>,
    acks: Votes,
    deadline: u64,
    /// A request this proposer holds (queued or pinned here), not one it only adopted: if the
    /// ballot is lost, it goes back to the queue.
    ours: bool,
}

/// What a proposer gives up when its node enters the next epoch ([`Proposer::hand_over`]):
/// the requests queued and the entries pinned to an instance, to propose in the next one.
pub type HandOver<V> = (Vec<(ProposalId, V)>, BTreeMap<InstanceId, Entry<V>>);

/// One node's proposer.
///
/// One proposer serves every instance of its node (Multi-Paxos): once phase 1 succeeds at ballot
/// `b` for all instances from `first` on, it runs only phase 2 for new entries until a `Nack`
/// shows a higher ballot. The rules, in order:
/// 1. Before a ballot is sent, its round is written ([`Write::ProposerRound`]); the runtime makes
///    that durable first, so a restarted proposer starts above every round it ever used.
/// 2. A ballot's round is one above the highest round this proposer used *or saw* (in a `Nack`).
/// 3. When a quorum has promised (every page of each promise received), every instance some
///    promise reported as accepted gets the entry of the **highest** accepted ballot (P2c;
///    seed 003 Q1).
/// 4. No holes: every other undecided instance between `first` and the highest instance any
///    promise reported or this node knows decided gets a [`Entry::Noop`]; while leading, the
///    same holds below every instance it proposes into, and below every decision it learns.
///    New requests go to fresh instances above all of that, so a request acknowledged before
///    another was made sits below it in the log.
/// 5. A `Nack` means someone is above us: give up the ballot and retry after a random backoff
///    (seed 003 Q3: without it, duelling proposers can livelock). Our requests in flight go
///    back to the queue.
/// 6. A phase without a quorum within the timeout is re-sent (phase 2) or retried higher (phase 1).
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
    /// Entries clients pinned to an instance (`propose_at`), until it is decided.
    pinned: BTreeMap<InstanceId, Entry<V>>,
    /// Requests waiting for an instance, oldest first.
    queue: VecDeque<(ProposalId, V)>,
    /// Phase 2 at `ballot`.
    in_flight: BTreeMap<InstanceId, InFlight<V>>,
    /// Every request queued, pinned or in flight here, and its instance once it has one.
    requests: BTreeMap<ProposalId, Option<InstanceId>>,
    /// Every instance below this is known decided.
    first_undecided: InstanceId,
    /// Instances known decided above `first_undecided`.
    decided_above: BTreeSet<InstanceId>,
    /// An acceptor compacted its log below this: every instance below is chosen, even where
    /// this node does not know the entry yet (it gets the snapshot), so nothing is proposed
    /// there. A no-op there could be chosen over the value a quorum chose: the compacted
    /// acceptor no longer reports that value, and the others of that quorum may not be asked.
    chosen_below: InstanceId,
    /// Above every instance this proposer knows used: where the next queued request goes.
    fresh: InstanceId,
    /// Leaderless mode: an idle proposer that sees a hole below a decision for long enough
    /// starts phase 1 to fill it (in leader mode the leader always holds a ballot).
    fills_idle_holes: bool,
    /// Ticks the frontier has had a hole above it (a decision it cannot reach).
    hole_ticks: u64,
    /// The epoch of this proposer's ballots (see [`crate::Membership`]).
    epoch: u64,
    /// The first instance of that epoch: a change decided below it belongs to an earlier one.
    epoch_start: InstanceId,
    /// Where the next epoch starts, once a change is decided: nothing is proposed at or above.
    epoch_end: Option<InstanceId>,
    /// At most this many instances above `first_undecided` are proposed in
    /// ([`Config::max_instances_ahead`]): what lets the next epoch start a known distance after
    /// the change that ends this one.
    window: u64,
    faults: ProposerFaults,
}

impl<V: Value> Proposer<V> {
    /// A proposer that has used or seen rounds up to `max_round` (from storage), drawing backoff
    /// jitter from `seed`, on a node that knows every instance below `first_undecided` decided
    /// and `decided_above` decided above it (from its learner's durable decisions): it starts
    /// preparing there, not at instance 0.
    pub fn new(
        config: &Config,
        max_round: u64,
        seed: u64,
        first_undecided: InstanceId,
        decided_above: BTreeSet<InstanceId>,
    ) -> Self {
        let fresh = decided_above
            .last()
            .map_or(first_undecided, |i| i.next())
            .max(first_undecided);
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
            pinned: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: BTreeMap::new(),
            requests: BTreeMap::new(),
            first_undecided,
            decided_above,
            chosen_below: InstanceId(0),
            fresh,
            fills_idle_holes: config.leader_mode == crate::config::LeaderMode::Leaderless,
            hole_ticks: 0,
            epoch: 0,
            epoch_start: InstanceId(0),
            epoch_end: None,
            window: config.max_instances_ahead.max(1),
            faults: ProposerFaults::default(),
        }
    }

    /// This proposer works in `epoch`, which starts at `start` (it proposes nothing below).
    pub fn in_epoch(mut self, epoch: u64, start: InstanceId) -> Self {
        self.epoch = epoch;
        self.epoch_start = start;
        self.first_undecided = self.first_undecided.max(start);
        self.decided_above = self.decided_above.split_off(&self.first_undecided);
        self.fresh = self.fresh.max(start);
        self
    }

    /// The next epoch starts at `end` (a change was decided): nothing is proposed at or above
    /// it in this one, and a leader fills what is left below it.
    pub fn end_epoch_at(&mut self, end: InstanceId, out: &mut Effects<V>) {
        if self.epoch_end.is_some_and(|known| known <= end) {
            return;
        }
        self.epoch_end = Some(end);
        self.fill_epoch_tail(out);
    }

    /// Give up this epoch (the node enters the next): the requests waiting here, to be
    /// proposed in the next one. What is in flight is below the next epoch's start, so it is
    /// decided already.
    pub fn hand_over(&mut self) -> HandOver<V> {
        let queued = self.queue.drain(..).collect();
        let pinned = std::mem::take(&mut self.pinned);
        self.step_down();
        (queued, pinned)
    }

    /// Proposals go below this: within the window above the known decided prefix, and below
    /// the next epoch's start once it is known. (The decided prefix, not the compacted one: a
    /// node that skipped a change by installing a snapshot learns its end from the snapshot.)
    fn limit(&self) -> InstanceId {
        let window = InstanceId(self.first_undecided.0.saturating_add(self.window));
        self.epoch_end.map_or(window, |end| end.min(window))
    }

    /// While leading in an epoch whose end is known: every free instance left below the end
    /// gets a no-op (within the window), so the next epoch can start.
    fn fill_epoch_tail(&mut self, out: &mut Effects<V>) {
        if self.epoch_end.is_some() && matches!(self.phase, Phase::Leading { .. }) {
            self.drain_queue(out);
            let limit = self.limit();
            self.fill_holes(limit, out);
        }
    }

    /// Just above every instance known decided: the lowest instance no phase 1 can have left
    /// out (one that no acceptor of the quorum accepted anything in is free).
    fn above_decided(&self) -> InstanceId {
        self.decided_above
            .last()
            .map_or(self.first_undecided, |i| i.next())
            .max(self.first_undecided)
            .max(self.chosen_below)
    }

    /// The lowest instance this proposer may propose in: below it everything is known chosen.
    fn lowest_open(&self) -> InstanceId {
        self.first_undecided.max(self.chosen_below)
    }

    /// Break the proposer on purpose (tests of the checkers only).
    pub(crate) fn with_faults(mut self, faults: ProposerFaults) -> Self {
        self.faults = faults;
        if faults.prepare_from_zero {
            self.first_undecided = InstanceId(0);
            self.decided_above.clear();
            self.fresh = InstanceId(0);
        }
        self
    }

    /// While leading (phase 1 done at the current ballot): the ballot and the read index, the
    /// instance above every instance this proposer knows decided, adopted or proposed (see
    /// `read.rs` for why every value chosen so far sits below it). `None` otherwise.
    pub(crate) fn read_frontier(&self) -> Option<(Ballot, InstanceId)> {
        match self.phase {
            Phase::Leading { .. } if self.faults.read_index_from_decided => {
                Some((self.ballot, self.first_undecided))
            }
            Phase::Leading { .. } => Some((self.ballot, self.fresh)),
            _ => None,
        }
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

    /// True if requests wait for phase 1 (pinned or queued).
    fn has_work(&self) -> bool {
        !self.pinned.is_empty() || !self.queue.is_empty()
    }

    /// Reserve the next round without proposing (a node's boot number, see
    /// [`crate::ClientId`]): written like a ballot's round, so it is never used again.
    /// `None` if no round is left.
    pub fn reserve_round(&mut self, out: &mut Effects<V>) -> Option<u64> {
        let round = self.max_round.checked_add(1)?;
        self.max_round = round;
        if !self.faults.skip_round_persist {
            out.write(Write::ProposerRound(round));
        }
        Some(round)
    }

    /// The lowest instance at or above `floor` this proposer is not using and knows undecided:
    /// at or above `fresh` (above every instance known decided or in flight) and not pinned.
    pub fn next_free_instance(&self, floor: InstanceId) -> InstanceId {
        let mut next = floor.max(self.fresh);
        while self.pinned.contains_key(&next) {
            next = next.next();
        }
        next
    }

    fn is_decided(&self, instance: InstanceId) -> bool {
        instance < self.lowest_open() || self.decided_above.contains(&instance)
    }

    /// Every instance below `below` is chosen (an acceptor or this node's own snapshot covers
    /// it): nothing is proposed there again. A request of ours in flight there may or may not
    /// have been chosen, so it goes back to the queue (the sessions apply it once either way);
    /// one pinned there is answered by whatever was chosen, as for any decision.
    pub fn on_compacted(&mut self, below: InstanceId, out: &mut Effects<V>) {
        if below <= self.chosen_below {
            return;
        }
        self.chosen_below = below;
        // A snapshot covers a decided prefix: the window counts from it. (Left at the old
        // frontier, a node that caught up by installing one could not propose past it: a
        // leader so placed would wait forever for decisions only it could make.)
        self.first_undecided = self.first_undecided.max(below);
        let kept = self.pinned.split_off(&below);
        let pinned: BTreeSet<ProposalId> = std::mem::replace(&mut self.pinned, kept)
            .into_values()
            .filter_map(|entry| entry.id())
            .collect();
        for id in &pinned {
            self.requests.remove(id);
        }
        let kept = self.in_flight.split_off(&below);
        let dropped = std::mem::replace(&mut self.in_flight, kept);
        for (_, flight) in dropped.into_iter().rev() {
            if let (true, Entry::Value { id, value }) = (flight.ours, flight.entry)
                && !pinned.contains(&id)
            {
                self.requests.insert(id, None);
                self.queue.push_front((id, value));
            }
        }
        self.decided_above = self.decided_above.split_off(&below);
        self.fresh = self.fresh.max(below);
        if matches!(self.phase, Phase::Leading { .. }) {
            self.drain_queue(out);
        }
    }

    /// A client pinned `entry` to `instance` (Elixir's `propose_at`): the instance ends up
    /// decided with *some* entry; the caller learns which from the learner.
    pub fn propose_at(&mut self, instance: InstanceId, entry: Entry<V>, out: &mut Effects<V>) {
        if self.is_decided(instance) || self.pinned.contains_key(&instance) {
            return;
        }
        if let Some(id) = entry.id() {
            if self.requests.contains_key(&id) {
                return;
            }
            self.requests.insert(id, Some(instance));
        }
        self.pinned.insert(instance, entry);
        match self.phase {
            Phase::Idle => self.start_phase1(out),
            Phase::Leading { first }
                if instance >= first && !self.in_flight.contains_key(&instance) =>
            {
                self.propose_up_to(instance, out);
            }
            _ => {} // picked up when phase 1 completes or the backoff ends
        }
    }

    /// A client request for the next free instance (`append`). A request already held here
    /// is not taken twice.
    pub fn append(&mut self, id: ProposalId, value: V, out: &mut Effects<V>) {
        if self.requests.contains_key(&id) {
            return;
        }
        self.requests.insert(id, None);
        self.queue.push_back((id, value));
        match self.phase {
            Phase::Idle => self.start_phase1(out),
            Phase::Leading { .. } => self.drain_queue(out),
            _ => {}
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
        self.ballot = Ballot::in_epoch(self.epoch, self.max_round, self.id);
        if !self.faults.skip_round_persist {
            out.write(Write::ProposerRound(self.max_round));
        }
        self.requeue_in_flight();
        // What was in flight at the lost ballot is not known used: the new phase 1 finds
        // whatever a quorum accepted, and every other instance is free again (no holes).
        self.fresh = self.above_decided();
        let first = self.lowest_open();
        self.phase = Phase::Preparing {
            first,
            promises: Votes::new(),
            pages: BTreeMap::new(),
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

    /// Give up the ballot and every request (another node leads now; the replica re-routes
    /// its own clients' requests). Returns the requests that were in flight: their entries may
    /// still be chosen.
    pub fn step_down(&mut self) -> BTreeSet<ProposalId> {
        let in_flight = self
            .in_flight
            .values()
            .filter_map(|f| f.entry.id())
            .collect();
        self.in_flight.clear();
        self.pinned.clear();
        self.queue.clear();
        self.requests.clear();
        self.phase = Phase::Idle;
        in_flight
    }

    /// Phase 1b arrived: one page of `from`'s promise of `ballot`, from instance `first`.
    #[allow(clippy::too_many_arguments)] // the fields of one `Message::Promise`
    pub fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        first: InstanceId,
        accepted: Vec<AcceptedEntry<V>>,
        more: Option<InstanceId>,
        compacted: InstanceId,
        out: &mut Effects<V>,
    ) {
        if !self.acceptors.contains(&from) {
            return;
        }
        // A fact about the log, whatever the ballot: never propose below a compacted prefix.
        if !self.faults.ignore_compaction {
            self.on_compacted(compacted, out);
        }
        if ballot != self.ballot {
            return;
        }
        let Phase::Preparing {
            first: start,
            promises,
            pages,
            adopted,
            ..
        } = &mut self.phase
        else {
            return;
        };
        let start = *start;
        // Only the page asked for next counts (a duplicate or stale page changes nothing).
        let expected = pages.get(&from).copied().unwrap_or(start);
        if promises.contains(from) || first != expected {
            return;
        }
        // Rule 3: per instance, keep the entry of the highest accepted ballot.
        for e in accepted.into_iter().filter(|e| e.instance >= start) {
            match adopted.get(&e.instance) {
                Some((b, _)) if *b >= e.ballot => {}
                _ => {
                    adopted.insert(e.instance, (e.ballot, e.entry));
                }
            }
        }
        // `next > first`: a page that does not advance is refused on arrival (validate.rs).
        if let Some(next) = more {
            pages.insert(from, next);
            out.send(
                from,
                Message::Prepare {
                    ballot,
                    first: next,
                },
            );
            return;
        }
        pages.remove(&from);
        promises.add(from);
        if !promises.is_quorum(self.acceptors.len()) {
            return;
        }
        let adopted = std::mem::take(adopted);
        self.lead(start, adopted, out);
    }

    /// Phase 1 succeeded: rules 3 and 4 over `[first, top]`, then the pinned and queued
    /// requests above.
    fn lead(
        &mut self,
        first: InstanceId,
        adopted: BTreeMap<InstanceId, (Ballot, Entry<V>)>,
        out: &mut Effects<V>,
    ) {
        // Below a prefix some acceptor compacted, everything is chosen: nothing to propose.
        let first = first.max(self.chosen_below);
        self.phase = Phase::Leading { first };
        let top = adopted
            .keys()
            .next_back()
            .copied()
            .max(self.decided_above.last().copied());
        if let Some(top) = top.filter(|top| *top >= first) {
            let mut instance = first;
            while instance <= top {
                if !self.is_decided(instance) {
                    let reported = adopted.get(&instance).map(|(_, e)| e.clone());
                    let entry = match reported {
                        Some(e) if !self.faults.ignore_promised_values => Some(e),
                        _ => self.pinned.get(&instance).cloned().or_else(|| {
                            (!self.faults.skip_noop_fill || reported.is_some())
                                .then_some(Entry::Noop)
                        }),
                    };
                    if let Some(entry) = entry {
                        self.send_accept(instance, entry, out);
                    }
                }
                instance = instance.next();
            }
            self.fresh = self.fresh.max(top.next());
        }
        self.fresh = self.fresh.max(first);
        let pinned: Vec<InstanceId> = self
            .pinned
            .keys()
            .filter(|i| **i >= first && !self.in_flight.contains_key(i))
            .copied()
            .collect();
        for instance in pinned {
            self.propose_up_to(instance, out);
        }
        self.drain_queue(out);
        self.fill_epoch_tail(out);
    }

    /// While leading: propose the entry pinned at `instance`, and a no-op in every free
    /// instance from `fresh` up to it, so no hole is left below it (rule 4).
    fn propose_up_to(&mut self, instance: InstanceId, out: &mut Effects<V>) {
        if instance >= self.limit() {
            // Proposed once the decided prefix comes within the window. Everything below the
            // window's edge must be decided before that anyway: propose it now (queued
            // requests first, then no-ops), or a pin at the edge with nothing else proposed
            // waits for ever (chaos seed 9561: a pin a window above the prefix was accepted
            // and held, and no instance below it was ever proposed).
            self.drain_queue(out);
            self.fill_holes(self.limit(), out);
            return;
        }
        self.fill_holes(instance, out);
        if let Some(entry) = self.pinned.get(&instance).cloned() {
            self.send_accept(instance, entry, out);
        }
        self.fresh = self.fresh.max(instance.next());
    }

    /// While leading: a no-op (or the pinned entry) in every instance in `[fresh, below)`.
    /// Below `fresh` every instance is decided or in flight already; at and above it, none is
    /// (`fresh` only grows past what is decided or proposed).
    fn fill_holes(&mut self, below: InstanceId, out: &mut Effects<V>) {
        let mut hole = self.fresh;
        while hole < below {
            match self.pinned.get(&hole).cloned() {
                Some(entry) => self.send_accept(hole, entry, out),
                None if !self.faults.skip_noop_fill => self.send_accept(hole, Entry::Noop, out),
                None => {}
            }
            hole = hole.next();
        }
        self.fresh = self.fresh.max(below);
    }

    /// While leading: every queued request into a fresh instance, in order.
    fn drain_queue(&mut self, out: &mut Effects<V>) {
        while let Some((id, value)) = self.queue.pop_front() {
            // Already in flight elsewhere (adopted from a promise, or pinned): not twice.
            if matches!(self.requests.get(&id), Some(Some(_))) {
                continue;
            }
            let instance = self.next_free_instance(self.fresh);
            if instance >= self.limit() {
                self.queue.push_front((id, value));
                return; // waits for the decided prefix to advance (or for the next epoch)
            }
            self.fresh = instance.next();
            self.send_accept(instance, Entry::Value { id, value }, out);
        }
    }

    /// Our requests in flight at a lost ballot go back to the queue, in instance order; the
    /// next phase 1 may find them accepted (and adopt them) or give them fresh instances.
    fn requeue_in_flight(&mut self) {
        let flights = std::mem::take(&mut self.in_flight);
        for (instance, flight) in flights.into_iter().rev() {
            if !flight.ours {
                continue;
            }
            // A request pinned to this instance stays pinned (and is proposed there again);
            // any other goes back to the queue, even if another request is pinned there now.
            let pinned_here = self.pinned.get(&instance).and_then(Entry::id);
            match flight.entry {
                Entry::Value { id, value } if pinned_here != Some(id) => {
                    self.requests.insert(id, None);
                    self.queue.push_front((id, value));
                }
                _ => {}
            }
        }
    }

    /// An acceptor refused `ballot` because it promised `promised`.
    pub fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        self.max_round = self.max_round.max(promised.round);
        let holding = matches!(self.phase, Phase::Preparing { .. } | Phase::Leading { .. });
        if ballot != self.ballot || promised <= ballot || !holding {
            return;
        }
        self.requeue_in_flight();
        let wait = self.rng.in_range(self.backoff.0, self.backoff.1);
        self.phase = Phase::Backoff {
            until: self.now + wait,
        };
    }

    /// Phase 2b arrived. Returns the entry once a quorum accepted it (the instance is chosen).
    pub fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        instance: InstanceId,
    ) -> Option<Entry<V>> {
        if ballot != self.ballot || !self.acceptors.contains(&from) {
            return None;
        }
        let flight = self.in_flight.get_mut(&instance)?;
        flight.acks.add(from);
        if flight.acks.is_quorum(self.acceptors.len()) {
            return self.in_flight.remove(&instance).map(|f| f.entry);
        }
        None
    }

    /// `instance` is decided with `entry` (learned by this node); `first_undecided` is the
    /// learner's frontier. A request of ours that was in flight there and lost goes back to
    /// the queue; while leading, a decision above `fresh` means holes below it to fill.
    pub fn on_decided(
        &mut self,
        instance: InstanceId,
        entry: &Entry<V>,
        first_undecided: InstanceId,
        out: &mut Effects<V>,
    ) {
        // A request pinned here is answered by this decision, whatever it is: it never moves
        // to another instance (the caller asked for this one).
        let pinned = self.pinned.remove(&instance).and_then(|e| e.id());
        if let Some(id) = pinned {
            self.requests.remove(&id);
        }
        if let Some(flight) = self.in_flight.remove(&instance)
            && flight.ours
            && flight.entry.id() != entry.id()
            && flight.entry.id() != pinned
            && let Entry::Value { id, value } = flight.entry
        {
            self.requests.insert(id, None);
            self.queue.push_front((id, value));
        }
        if let Some(id) = entry.id()
            && self.requests.remove(&id).is_some()
        {
            self.queue.retain(|(queued, _)| *queued != id);
        }
        if instance >= self.first_undecided {
            self.decided_above.insert(instance);
        }
        // The first change decided in this epoch ends it a window later (see `epoch.rs`);
        // a change decided lower, learned later, moves the end down.
        let epoch = (self.epoch, self.epoch_start, self.window);
        if let Some((end, _)) = crate::epoch::ends_epoch(entry, instance, epoch) {
            self.epoch_end = Some(self.epoch_end.map_or(end, |known| known.min(end)));
        }
        if first_undecided > self.first_undecided {
            self.first_undecided = first_undecided;
            self.decided_above = self.decided_above.split_off(&first_undecided);
            self.pinned = self.pinned.split_off(&first_undecided);
            self.in_flight = self.in_flight.split_off(&first_undecided);
        }
        if matches!(self.phase, Phase::Leading { .. }) {
            self.fill_holes(instance, out);
            self.fresh = self.fresh.max(instance.next());
            // Pinned requests the window held back may go now.
            let waiting: Vec<InstanceId> = self
                .pinned
                .keys()
                .filter(|i| !self.in_flight.contains_key(i))
                .copied()
                .collect();
            for instance in waiting {
                self.propose_up_to(instance, out);
            }
            self.drain_queue(out);
            self.fill_epoch_tail(out);
        } else {
            self.fresh = self.fresh.max(instance.next());
        }
    }

    /// One tick of time: retry what timed out, end a backoff, and (leaderless) start filling a
    /// hole that outlived two phase timeouts.
    pub fn tick(&mut self, out: &mut Effects<V>) {
        self.now += 1;
        // An epoch whose end is known but not reached is a hole too: the next epoch waits
        // for every instance below its start.
        let tail_open = self.epoch_end.is_some_and(|end| self.first_undecided < end);
        self.hole_ticks = match self.decided_above.is_empty() && !tail_open {
            true => 0,
            false => self.hole_ticks + 1,
        };
        if self.fills_idle_holes
            && self.phase == Phase::Idle
            && self.hole_ticks >= 2 * self.phase_timeout
        {
            self.hole_ticks = 0;
            self.start_phase1(out);
            return;
        }
        match self.phase {
            Phase::Backoff { until } if self.now >= until => {
                if self.has_work() {
                    self.start_phase1(out);
                } else {
                    self.phase = Phase::Idle;
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
                                entry: flight.entry.clone(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn send_accept(&mut self, instance: InstanceId, entry: Entry<V>, out: &mut Effects<V>) {
        // One entry per instance and ballot: every caller picks an instance with nothing in
        // flight (the tests and the model run with this check on).
        debug_assert!(
            !self.in_flight.contains_key(&instance),
            "{instance} is in flight at {} already",
            self.ballot
        );
        for &a in &self.acceptors {
            out.send(
                a,
                Message::Accept {
                    ballot: self.ballot,
                    instance,
                    entry: entry.clone(),
                },
            );
        }
        let ours = match entry.id() {
            Some(id) => match self.requests.get_mut(&id) {
                Some(at) => {
                    *at = Some(instance);
                    true
                }
                None => false,
            },
            None => false,
        };
        self.in_flight.insert(
            instance,
            InFlight {
                entry,
                acks: Votes::new(),
                deadline: self.now + self.phase_timeout,
                ours,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::ClientId;
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

    /// Request `seq` of one client.
    fn id(seq: u64) -> ProposalId {
        ProposalId {
            client: ClientId::default(),
            seq,
        }
    }

    /// The entry of request `v` holding `v`.
    fn e(v: u64) -> Entry<u64> {
        Entry::Value {
            id: id(v),
            value: v,
        }
    }

    /// A fresh proposer that has used rounds up to `max_round`.
    fn proposer(max_round: u64) -> Proposer<u64> {
        Proposer::new(&config(), max_round, 1, InstanceId(0), BTreeSet::new())
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

    fn accepts(ballot: Ballot, instance: u64, entry: Entry<u64>) -> Vec<Envelope<u64>> {
        (1..=3)
            .map(|n| Envelope {
                to: NodeId(n),
                message: Message::Accept {
                    ballot,
                    instance: InstanceId(instance),
                    entry: entry.clone(),
                },
            })
            .collect()
    }

    fn reported(instance: u64, ballot: Ballot, entry: Entry<u64>) -> AcceptedEntry<u64> {
        AcceptedEntry {
            instance: InstanceId(instance),
            ballot,
            entry,
        }
    }

    /// `(instance, entry)` of every Accept in `out`, once per instance, in order.
    fn accepted(out: &Effects<u64>) -> Vec<(u64, Entry<u64>)> {
        let mut seen: BTreeMap<u64, Entry<u64>> = BTreeMap::new();
        for env in &out.messages {
            if let Message::Accept {
                instance, entry, ..
            } = &env.message
            {
                seen.insert(instance.0, entry.clone());
            }
        }
        seen.into_iter().collect()
    }

    /// One complete promise (a single page) from `from`.
    fn promise(
        p: &mut Proposer<u64>,
        from: u64,
        entries: Vec<AcceptedEntry<u64>>,
        out: &mut Effects<u64>,
    ) {
        let first = match p.phase() {
            Phase::Preparing { first, .. } => *first,
            _ => InstanceId(0),
        };
        p.on_promise(
            NodeId(from),
            p.ballot(),
            first,
            entries,
            None,
            InstanceId(0),
            out,
        );
    }

    /// Phase 1 done on a quorum that reported nothing.
    fn leading(p: &mut Proposer<u64>) {
        promise(p, 1, vec![], &mut Effects::new());
        promise(p, 2, vec![], &mut Effects::new());
        assert!(matches!(p.phase(), Phase::Leading { .. }));
    }

    /// Rule 1: the round is written in the same step as the Prepare, so the runtime makes it
    /// durable before the Prepare leaves.
    #[test]
    fn proposer_persists_round_before_prepare() {
        let mut p = proposer(0);
        let mut out = Effects::new();
        p.propose_at(InstanceId(0), e(100), &mut out);
        assert_eq!(out.writes, vec![Write::ProposerRound(1)]);
        assert_eq!(out.messages, prepares(b(1, 1), 0));
    }

    /// Rule 1 after a restart (seed 003 Q4): the first ballot is above the persisted round.
    #[test]
    fn restarted_proposer_never_reuses_a_ballot() {
        let mut p = proposer(5);
        let mut out = Effects::new();
        p.propose_at(InstanceId(0), e(100), &mut out);
        assert_eq!(p.ballot(), b(6, 1));
        assert_eq!(out.writes, vec![Write::ProposerRound(6)]);
    }

    /// A reserved round (a node's boot number) is written and never used as a ballot.
    #[test]
    fn a_reserved_round_is_written_and_skipped() {
        let mut p = proposer(5);
        let mut out = Effects::new();
        assert_eq!(p.reserve_round(&mut out), Some(6));
        assert_eq!(out.writes, vec![Write::ProposerRound(6)]);
        p.start_phase1(&mut Effects::new());
        assert_eq!(p.ballot(), b(7, 1));
        assert_eq!(proposer(u64::MAX).reserve_round(&mut Effects::new()), None);
    }

    /// A restarted proposer prepares from the frontier its learner recovered, not from 0: its
    /// acceptors then report only what it does not know.
    #[test]
    fn restarted_proposer_prepares_from_its_recovered_frontier() {
        let mut p = Proposer::<u64>::new(&config(), 3, 1, InstanceId(40), [InstanceId(42)].into());
        let mut out = Effects::new();
        p.start_phase1(&mut out);
        assert_eq!(out.messages, prepares(b(4, 1), 40));
        assert_eq!(p.next_free_instance(InstanceId(0)), InstanceId(43));
    }

    /// A stored round at the very top leaves no fresh ballot: rather than wrap to round 0 (a
    /// ballot below everything, reused) or repeat `u64::MAX`, the proposer does not propose.
    #[test]
    fn proposer_with_no_round_left_stays_idle() {
        let mut p = proposer(u64::MAX);
        let mut out = Effects::new();
        p.propose_at(InstanceId(0), e(100), &mut out);
        assert_eq!(out, Effects::new());
        assert_eq!(p.phase(), &Phase::Idle);
        assert_eq!(p.max_round(), u64::MAX);
    }

    /// With nothing accepted reported, the client's entry is proposed.
    #[test]
    fn proposer_proposes_its_own_value_when_nothing_was_accepted() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        let mut out = Effects::new();
        promise(&mut p, 1, vec![], &mut out);
        assert!(out.messages.is_empty(), "one promise is not a quorum");
        promise(&mut p, 2, vec![], &mut out);
        assert_eq!(out.messages, accepts(b(1, 1), 0, e(100)));
    }

    /// Rule 3 (P2c), seed 003 Q1: a value accepted by a minority before its proposer crashed
    /// must be adopted by the next proposer, instead of its own.
    #[test]
    fn proposer_adopts_value_accepted_by_a_minority() {
        let mut p = proposer(1);
        p.propose_at(InstanceId(0), e(200), &mut Effects::new());
        let ballot = p.ballot();
        let mut out = Effects::new();
        promise(&mut p, 3, vec![reported(0, b(1, 3), e(77))], &mut out);
        promise(&mut p, 2, vec![], &mut out);
        assert_eq!(out.messages, accepts(ballot, 0, e(77)));
    }

    /// Rule 3: of several accepted values, the one with the highest ballot wins.
    #[test]
    fn proposer_adopts_value_of_the_highest_accepted_ballot() {
        let mut p = proposer(5);
        p.propose_at(InstanceId(0), e(200), &mut Effects::new());
        let ballot = p.ballot();
        let mut out = Effects::new();
        promise(&mut p, 2, vec![reported(0, b(4, 2), e(42))], &mut out);
        promise(&mut p, 3, vec![reported(0, b(2, 3), e(23))], &mut out);
        assert_eq!(out.messages, accepts(ballot, 0, e(42)));
        // The same, the lower ballot's report first.
        let mut p = proposer(5);
        p.propose_at(InstanceId(0), e(200), &mut Effects::new());
        let mut out = Effects::new();
        promise(&mut p, 3, vec![reported(0, b(2, 3), e(23))], &mut out);
        promise(&mut p, 2, vec![reported(0, b(4, 2), e(42))], &mut out);
        assert_eq!(out.messages, accepts(ballot, 0, e(42)));
    }

    /// Rule 4: after phase 1 every undecided instance up to the highest one reported gets the
    /// adopted entry or a no-op, and new requests go above all of it, in order.
    #[test]
    fn a_new_leader_fills_every_hole_and_appends_above() {
        let mut p = proposer(1);
        p.append(id(7), 7, &mut Effects::new());
        p.append(id(8), 8, &mut Effects::new());
        let mut out = Effects::new();
        promise(&mut p, 2, vec![reported(2, b(1, 2), e(22))], &mut out);
        promise(&mut p, 3, vec![reported(4, b(1, 3), e(44))], &mut out);
        assert_eq!(
            accepted(&out),
            vec![
                (0, Entry::Noop),
                (1, Entry::Noop),
                (2, e(22)),
                (3, Entry::Noop),
                (4, e(44)),
                (5, e(7)),
                (6, e(8))
            ]
        );
    }

    /// Rule 4, broken on purpose: with `skip_noop_fill` the holes stay (what the switch is for).
    #[test]
    fn without_noop_fill_the_holes_stay() {
        let mut p = proposer(1).with_faults(ProposerFaults {
            skip_noop_fill: true,
            ..ProposerFaults::default()
        });
        p.start_phase1(&mut Effects::new());
        let mut out = Effects::new();
        promise(&mut p, 2, vec![reported(2, b(1, 2), e(22))], &mut out);
        promise(&mut p, 3, vec![], &mut out);
        assert_eq!(accepted(&out), vec![(2, e(22))]);
    }

    /// Rule 4 while leading: an entry pinned far ahead brings no-ops below it; a decision
    /// learned above the frontier does too.
    #[test]
    fn a_leader_leaves_no_hole_below_what_it_proposes_or_learns() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        let mut out = Effects::new();
        p.propose_at(InstanceId(3), e(3), &mut out);
        assert_eq!(
            accepted(&out),
            vec![
                (0, Entry::Noop),
                (1, Entry::Noop),
                (2, Entry::Noop),
                (3, e(3))
            ]
        );
        let mut out = Effects::new();
        p.on_decided(InstanceId(6), &e(60), InstanceId(0), &mut out);
        assert_eq!(accepted(&out), vec![(4, Entry::Noop), (5, Entry::Noop)]);
        assert_eq!(p.next_free_instance(InstanceId(0)), InstanceId(7));
    }

    /// A long promise comes in pages: each page asks for the next one at the same ballot, and
    /// only a complete promise counts towards the quorum.
    #[test]
    fn only_complete_paged_promises_count() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        let ballot = p.ballot();
        let mut out = Effects::new();
        let page = vec![reported(0, b(1, 2), e(5))];
        p.on_promise(
            NodeId(2),
            ballot,
            InstanceId(0),
            page,
            Some(InstanceId(1)),
            InstanceId(0),
            &mut out,
        );
        assert_eq!(
            out.messages,
            vec![Envelope {
                to: NodeId(2),
                message: Message::Prepare {
                    ballot,
                    first: InstanceId(1)
                }
            }]
        );
        promise(&mut p, 3, vec![], &mut Effects::new());
        assert!(
            matches!(p.phase(), Phase::Preparing { .. }),
            "n2's promise is not complete"
        );
        // A stale page (not the one asked for) changes nothing.
        p.on_promise(
            NodeId(2),
            ballot,
            InstanceId(0),
            vec![],
            None,
            InstanceId(0),
            &mut Effects::new(),
        );
        assert!(matches!(p.phase(), Phase::Preparing { .. }));
        let mut out = Effects::new();
        let last = vec![reported(1, b(1, 2), e(6))];
        p.on_promise(
            NodeId(2),
            ballot,
            InstanceId(1),
            last,
            None,
            InstanceId(0),
            &mut out,
        );
        assert_eq!(accepted(&out), vec![(0, e(5)), (1, e(6))]);
    }

    /// A request is taken once, however often it arrives (a follower forwards it again).
    #[test]
    fn a_request_is_taken_once() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        let mut out = Effects::new();
        p.append(id(1), 1, &mut out);
        p.append(id(1), 1, &mut out);
        assert_eq!(accepted(&out), vec![(0, e(1))]);
    }

    /// Rule 5: a lost ballot sends our requests back to the queue; the next phase 1 finds
    /// what a quorum accepted, and every other instance is free again: no hole where the lost
    /// requests were.
    #[test]
    fn a_lost_ballot_requeues_our_requests_without_leaving_holes() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        p.append(id(1), 1, &mut Effects::new());
        p.append(id(2), 2, &mut Effects::new());
        p.on_nack(b(1, 1), b(3, 2));
        let mut out = Effects::new();
        for _ in 0..3 {
            p.tick(&mut out);
        }
        assert_eq!(p.ballot(), b(4, 1));
        let mut out = Effects::new();
        promise(&mut p, 2, vec![], &mut out);
        promise(&mut p, 3, vec![], &mut out);
        assert_eq!(accepted(&out), vec![(0, e(1)), (1, e(2))]);
    }

    /// A request in flight where a client then pinned another one is not lost with the ballot:
    /// it goes back to the queue, while the pinned one stays pinned (a chaos seed found this).
    #[test]
    fn a_lost_ballot_requeues_a_request_an_instance_was_pinned_over() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        p.append(id(1), 1, &mut Effects::new());
        p.propose_at(InstanceId(0), e(9), &mut Effects::new());
        p.on_nack(b(1, 1), b(3, 2));
        let mut out = Effects::new();
        for _ in 0..3 {
            p.tick(&mut out);
        }
        let mut out = Effects::new();
        promise(&mut p, 2, vec![], &mut out);
        promise(&mut p, 3, vec![], &mut out);
        assert_eq!(accepted(&out), vec![(0, e(9)), (1, e(1))]);
    }

    /// A request of ours that lost its instance to another entry goes to a fresh one.
    #[test]
    fn a_request_that_lost_its_instance_is_proposed_again() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        p.append(id(1), 1, &mut Effects::new());
        let mut out = Effects::new();
        p.on_decided(InstanceId(0), &e(99), InstanceId(1), &mut out);
        assert_eq!(accepted(&out), vec![(1, e(1))]);
    }

    /// A request pinned to an instance that another entry won is answered there, not proposed
    /// again elsewhere (the Go log's many-proposers runs: 130 lost i0 and must not fill i2).
    #[test]
    fn a_pinned_request_that_lost_its_instance_goes_nowhere_else() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(130), &mut Effects::new());
        leading(&mut p);
        let mut out = Effects::new();
        p.on_decided(InstanceId(0), &e(110), InstanceId(1), &mut out);
        p.append(id(7), 7, &mut out);
        assert_eq!(accepted(&out), vec![(1, e(7))]);
    }

    /// Rules 2 and 5: a Nack carries the higher ballot; after the backoff the proposer jumps
    /// straight above it (the Go log's 4.2 climbing).
    #[test]
    fn proposer_jumps_above_the_ballot_in_a_nack() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        p.on_nack(b(1, 1), b(4, 2));
        assert!(matches!(p.phase(), Phase::Backoff { .. }));
        let mut out = Effects::new();
        for _ in 0..3 {
            p.tick(&mut out);
        }
        assert_eq!(out.writes, vec![Write::ProposerRound(5)]);
        assert_eq!(out.messages, prepares(b(5, 1), 0));
    }

    /// Rule 6: phase 1 without a quorum is retried with a higher ballot.
    #[test]
    fn proposer_retries_phase1_higher_after_timeout() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        let mut out = Effects::new();
        for _ in 0..10 {
            p.tick(&mut out);
        }
        assert_eq!(p.ballot(), b(2, 1));
        assert_eq!(out.messages, prepares(b(2, 1), 0));
    }

    /// Rule 6: phase 2 without a quorum re-sends the Accept to acceptors that did not answer.
    #[test]
    fn proposer_resends_accept_to_silent_acceptors() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        leading(&mut p);
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
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        leading(&mut p);
        assert_eq!(p.on_accepted(NodeId(3), b(1, 1), InstanceId(0)), None);
        assert_eq!(
            p.on_accepted(NodeId(3), b(1, 1), InstanceId(0)),
            None,
            "duplicates count once"
        );
        assert_eq!(
            p.on_accepted(NodeId(2), b(1, 1), InstanceId(0)),
            Some(e(100))
        );
    }

    /// Multi-Paxos: once phase 1 succeeded, the next instance goes straight to phase 2.
    #[test]
    fn leader_skips_phase1_for_later_instances() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        leading(&mut p);
        let mut out = Effects::new();
        p.propose_at(InstanceId(1), e(101), &mut out);
        assert!(out.writes.is_empty());
        assert_eq!(out.messages, accepts(b(1, 1), 1, e(101)));
    }

    /// The window: no more than `max_instances_ahead` instances above the known decided prefix
    /// are proposed in; the rest wait in the queue until decisions move the prefix.
    #[test]
    fn proposals_stay_within_the_window_above_the_decided_prefix() {
        let mut c = config();
        c.max_instances_ahead = 2;
        let mut p = Proposer::new(&c, 0, 1, InstanceId(0), BTreeSet::new());
        p.append(id(1), 1, &mut Effects::new());
        leading(&mut p);
        let mut out = Effects::new();
        p.append(id(2), 2, &mut out);
        p.append(id(3), 3, &mut out);
        assert_eq!(
            accepted(&out),
            vec![(1, e(2))],
            "instances 0 and 1 only; request 3 waits"
        );
        let mut out = Effects::new();
        p.on_decided(InstanceId(0), &e(1), InstanceId(1), &mut out);
        assert_eq!(
            accepted(&out),
            vec![(2, e(3))],
            "the prefix moved: one more"
        );
    }

    /// A pin at the window's edge waits for the prefix to come within the window, and the
    /// leader proposes what lies below it meanwhile (queued requests, then no-ops), so the
    /// prefix does come (chaos seed 9561 waited for ever).
    #[test]
    fn a_pin_at_the_windows_edge_fills_the_window_below_it() {
        let mut c = config();
        c.max_instances_ahead = 3;
        let mut p = Proposer::new(&c, 0, 1, InstanceId(0), BTreeSet::new());
        p.append(id(1), 1, &mut Effects::new());
        leading(&mut p); // request 1 is in flight at i0
        let mut out = Effects::new();
        p.append(id(2), 2, &mut out);
        p.propose_at(InstanceId(3), e(9), &mut out);
        assert_eq!(
            accepted(&out),
            vec![(1, e(2)), (2, Entry::Noop)],
            "request 2, then a no-op up to the window's edge; the pin waits"
        );
        let mut out = Effects::new();
        p.on_decided(InstanceId(0), &e(1), InstanceId(1), &mut out);
        assert_eq!(
            accepted(&out),
            vec![(3, e(9))],
            "the prefix moved: the pin goes"
        );
    }

    /// A snapshot installed far above the decided prefix moves the window with it: a leader
    /// that caught up that way proposes above the snapshot instead of waiting for decisions
    /// below its window that nobody else would make (chaos seed 237 with a 14-instance window).
    #[test]
    fn a_snapshot_moves_the_window() {
        let mut c = config();
        c.max_instances_ahead = 2;
        let mut p = Proposer::new(&c, 0, 1, InstanceId(0), BTreeSet::new());
        p.append(id(1), 1, &mut Effects::new());
        leading(&mut p); // request 1 is in flight at i0
        let mut out = Effects::new();
        p.on_compacted(InstanceId(10), &mut out);
        assert_eq!(
            accepted(&out),
            vec![(10, e(1))],
            "re-proposed above the snapshot, within the window"
        );
    }

    /// A decided change ends the epoch a window later: the leader fills what is left below
    /// the end (queued requests first, then no-ops, as the window allows) and proposes nothing
    /// at or above it; a
    /// change decided below the epoch's start, or naming another epoch, ends nothing.
    #[test]
    fn a_decided_change_ends_the_epoch_a_window_later() {
        let mut c = config();
        c.max_instances_ahead = 3;
        let m = crate::epoch::Membership::initial(&c);
        let next = m
            .next(&crate::epoch::MemberChange::new([1, 2].map(NodeId), []))
            .expect("valid");
        let mut p =
            Proposer::new(&c, 0, 1, InstanceId(0), BTreeSet::new()).in_epoch(0, InstanceId(0));
        p.append(id(1), 1, &mut Effects::new());
        leading(&mut p);
        assert_eq!(p.ballot().epoch, 0);
        let mut out = Effects::new();
        let mut skipped = next.clone();
        skipped.epoch = 5;
        p.on_decided(
            InstanceId(1),
            &Entry::Reconfigure(skipped),
            InstanceId(0),
            &mut out,
        );
        assert_eq!(p.epoch_end, None, "a change to another epoch is void");
        p.on_decided(
            InstanceId(1),
            &Entry::Reconfigure(next),
            InstanceId(0),
            &mut out,
        );
        assert_eq!(p.epoch_end, Some(InstanceId(4)));
        p.append(id(2), 2, &mut out);
        p.on_decided(InstanceId(0), &e(1), InstanceId(2), &mut out);
        assert_eq!(
            accepted(&out),
            vec![(2, Entry::Noop), (3, e(2))],
            "the free instance within the window got a no-op when the change was decided; \
             request 2 the one the prefix opened, the last below the next epoch's start"
        );
        let mut out = Effects::new();
        p.append(id(3), 3, &mut out);
        assert!(accepted(&out).is_empty(), "nothing at or above the end");
        let (queued, _) = p.hand_over();
        assert_eq!(queued, vec![(id(3), 3)], "handed to the next epoch");
        let mut q = Proposer::<u64>::new(&c, p.max_round(), 1, InstanceId(4), BTreeSet::new())
            .in_epoch(1, InstanceId(4));
        let mut out = Effects::new();
        q.append(id(3), 3, &mut out);
        assert_eq!(
            q.ballot(),
            Ballot::in_epoch(1, p.max_round() + 1, NodeId(1)),
            "the next epoch's ballot, still above every round used"
        );
        assert!(matches!(q.phase(), Phase::Preparing { first, .. } if *first == InstanceId(4)));
    }

    /// Promises for an old ballot are ignored.
    #[test]
    fn proposer_ignores_promises_for_other_ballots() {
        let mut p = proposer(3);
        p.propose_at(InstanceId(0), e(100), &mut Effects::new());
        let mut out = Effects::new();
        for from in 1..=2 {
            p.on_promise(
                NodeId(from),
                b(1, 1),
                InstanceId(0),
                vec![],
                None,
                InstanceId(0),
                &mut out,
            );
        }
        assert!(out.messages.is_empty());
    }

    /// Leaderless: a hole below a decision that outlives two phase timeouts starts phase 1
    /// on an idle proposer (nobody else may have a reason to fill it).
    #[test]
    fn an_idle_leaderless_proposer_fills_a_lasting_hole() {
        let mut p = proposer(0);
        p.on_decided(InstanceId(2), &e(2), InstanceId(0), &mut Effects::new());
        let mut out = Effects::new();
        for _ in 0..19 {
            p.tick(&mut out);
        }
        assert!(out.messages.is_empty(), "not before two phase timeouts");
        p.tick(&mut out);
        assert_eq!(out.messages, prepares(b(1, 1), 0));
    }

    /// An instance known decided (below the frontier or above it) is never proposed into.
    #[test]
    fn a_decided_instance_is_not_proposed_again() {
        let mut p = proposer(0);
        let mut out = Effects::new();
        p.on_decided(InstanceId(0), &e(1), InstanceId(1), &mut out);
        p.on_decided(InstanceId(2), &e(2), InstanceId(1), &mut out);
        p.propose_at(InstanceId(0), e(5), &mut out);
        p.propose_at(InstanceId(2), e(6), &mut out);
        assert_eq!(out.messages, vec![]);
    }

    /// Go style: the proposer picks each value's instance; values proposed before phase 1 ends
    /// get distinct instances, above the decided ones.
    #[test]
    fn values_proposed_before_phase1_get_distinct_free_instances() {
        let mut p = proposer(0);
        let mut out = Effects::new();
        p.on_decided(InstanceId(1), &e(1), InstanceId(0), &mut out);
        let first = p.next_free_instance(InstanceId(0));
        p.propose_at(first, e(5), &mut out);
        let second = p.next_free_instance(InstanceId(0));
        assert_eq!((first, second), (InstanceId(2), InstanceId(3)));
    }

    /// A step-down names the requests whose Accepts were out (they may still be chosen), not
    /// the ones that only waited.
    #[test]
    fn step_down_names_the_requests_that_may_still_be_chosen() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        p.propose_at(InstanceId(0), e(1), &mut Effects::new());
        p.on_nack(b(1, 1), b(3, 2));
        p.append(id(2), 2, &mut Effects::new());
        assert_eq!(p.step_down(), BTreeSet::new());
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        p.append(id(3), 3, &mut Effects::new());
        assert_eq!(p.step_down(), BTreeSet::from([id(3)]));
        assert_eq!(p.phase(), &Phase::Idle);
    }

    /// A lost ballot leaves a pinned request pinned: it is proposed at its instance again, and
    /// nowhere else.
    #[test]
    fn a_lost_ballot_keeps_a_pinned_request_at_its_instance() {
        let mut p = proposer(0);
        p.start_phase1(&mut Effects::new());
        leading(&mut p);
        p.propose_at(InstanceId(0), e(9), &mut Effects::new());
        p.on_nack(b(1, 1), b(3, 2));
        for _ in 0..3 {
            p.tick(&mut Effects::new());
        }
        let mut out = Effects::new();
        promise(&mut p, 2, vec![], &mut out);
        promise(&mut p, 3, vec![], &mut out);
        assert_eq!(accepted(&out), vec![(0, e(9))]);
    }

    /// A Nack changes nothing unless it answers the ballot held now and shows a higher one.
    #[test]
    fn stale_nacks_change_nothing() {
        let mut p = proposer(0);
        p.on_nack(b(1, 1), b(2, 2));
        assert_eq!(p.phase(), &Phase::Idle, "idle: nothing to give up");
        p.start_phase1(&mut Effects::new());
        let ballot = p.ballot();
        p.on_nack(b(1, 1), b(9, 2));
        assert!(
            matches!(p.phase(), Phase::Preparing { .. }),
            "an old ballot's Nack"
        );
        p.on_nack(ballot, ballot);
        assert!(
            matches!(p.phase(), Phase::Preparing { .. }),
            "no higher ballot"
        );
        p.on_nack(ballot, b(9, 2));
        assert!(matches!(p.phase(), Phase::Backoff { .. }));
        // Nothing to propose: the backoff ends in idleness, not in another phase 1.
        let mut out = Effects::new();
        for _ in 0..3 {
            p.tick(&mut out);
        }
        assert_eq!((p.phase(), out.messages), (&Phase::Idle, vec![]));
    }

    /// Rule 5: the retry waits exactly the drawn backoff (3 ticks here), from the Nack on.
    #[test]
    fn a_backoff_lasts_the_drawn_wait() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(1), &mut Effects::new());
        for _ in 0..5 {
            p.tick(&mut Effects::new());
        }
        p.on_nack(p.ballot(), b(4, 2));
        let mut out = Effects::new();
        p.tick(&mut out);
        p.tick(&mut out);
        assert_eq!(out.messages, vec![], "still backing off");
        p.tick(&mut out);
        assert_eq!(out.messages, prepares(b(5, 1), 0));
    }

    /// Accepted counts only from an acceptor, at the ballot held now.
    #[test]
    fn a_compacted_prefix_is_never_proposed_in() {
        let mut p = proposer(0);
        p.append(id(7), 7, &mut Effects::new());
        let ballot = p.ballot();
        let mut out = Effects::new();
        // n2 compacted below i3; what it reported below is gone, and n3 reports i1 (as if it
        // accepted there once): phase 1 must not propose it, nor a no-op, below i3.
        p.on_promise(
            NodeId(2),
            ballot,
            InstanceId(0),
            vec![],
            None,
            InstanceId(3),
            &mut out,
        );
        promise(&mut p, 3, vec![reported(1, b(0, 3), e(9))], &mut out);
        assert_eq!(
            p.phase(),
            &Phase::Leading {
                first: InstanceId(3)
            }
        );
        assert_eq!(accepted(&out), vec![(3, e(7))]);
        assert!(p.is_decided(InstanceId(2)));
        // Pinning below it does nothing; the next request goes above everything.
        let mut out = Effects::new();
        p.propose_at(InstanceId(1), e(8), &mut out);
        p.append(id(10), 10, &mut out);
        assert_eq!(accepted(&out), vec![(4, e(10))]);
    }

    /// A compaction learned while leading: a request of ours in flight below it may not have
    /// been chosen, so it is proposed again above (the sessions apply it once); one pinned
    /// below is dropped (what was chosen there answers it). An older compaction changes
    /// nothing.
    #[test]
    fn a_compaction_while_leading_requeues_what_was_in_flight_below() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(1), e(1), &mut Effects::new());
        leading(&mut p);
        p.append(id(2), 2, &mut Effects::new());
        let mut out = Effects::new();
        p.on_compacted(InstanceId(3), &mut out);
        assert_eq!(accepted(&out), vec![(3, e(2))]);
        assert!(
            p.pinned.is_empty(),
            "the pinned request below is answered by the log"
        );
        let before = p.clone();
        let mut out = Effects::new();
        p.on_compacted(InstanceId(2), &mut out);
        assert_eq!(out, Effects::new());
        assert_eq!(p, before);
    }

    /// The next phase 1 asks only above a compacted prefix.
    #[test]
    fn phase1_starts_above_a_compacted_prefix() {
        let mut p = proposer(0);
        p.on_compacted(InstanceId(5), &mut Effects::new());
        let mut out = Effects::new();
        p.start_phase1(&mut out);
        assert_eq!(out.messages, prepares(p.ballot(), 5));
        assert_eq!(p.next_free_instance(InstanceId(0)), InstanceId(5));
    }

    #[test]
    fn accepted_from_a_stranger_or_an_old_ballot_does_not_count() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(1), &mut Effects::new());
        leading(&mut p);
        assert_eq!(p.on_accepted(NodeId(9), b(1, 1), InstanceId(0)), None);
        assert_eq!(p.on_accepted(NodeId(2), b(0, 1), InstanceId(0)), None);
        assert_eq!(p.on_accepted(NodeId(3), b(1, 1), InstanceId(0)), None);
        assert_eq!(p.on_accepted(NodeId(2), b(1, 1), InstanceId(0)), Some(e(1)));
    }

    /// A queued request decided elsewhere (forwarded, adopted by another leader) leaves the
    /// queue; the others stay and are proposed.
    #[test]
    fn a_queued_request_decided_elsewhere_is_not_proposed_again() {
        let mut p = proposer(0);
        p.append(id(1), 1, &mut Effects::new());
        p.append(id(2), 2, &mut Effects::new());
        p.on_decided(InstanceId(0), &e(1), InstanceId(1), &mut Effects::new());
        let mut out = Effects::new();
        promise(&mut p, 2, vec![], &mut out);
        promise(&mut p, 3, vec![], &mut out);
        assert_eq!(accepted(&out), vec![(1, e(2))]);
    }

    /// A gap-free decided log leaves an idle proposer idle (no hole to fill), and its next
    /// phase 1 starts at the frontier.
    #[test]
    fn a_proposer_without_holes_stays_idle() {
        let mut p = proposer(0);
        p.on_decided(InstanceId(0), &e(1), InstanceId(1), &mut Effects::new());
        let mut out = Effects::new();
        for _ in 0..50 {
            p.tick(&mut out);
        }
        assert_eq!(out.messages, vec![]);
        p.propose_at(InstanceId(3), e(3), &mut out);
        assert_eq!(out.messages, prepares(b(1, 1), 1));
    }

    /// Rule 6 timing: an Accept goes again to the silent acceptors once per phase timeout
    /// (10 ticks here), not before.
    #[test]
    fn accepts_are_resent_once_per_phase_timeout() {
        let mut p = proposer(0);
        p.propose_at(InstanceId(0), e(1), &mut Effects::new());
        leading(&mut p);
        let resent_at: Vec<usize> = (1..=30)
            .filter(|_| {
                let mut out = Effects::new();
                p.tick(&mut out);
                !out.messages.is_empty()
            })
            .collect();
        assert_eq!(resent_at, vec![10, 20, 30]);
    }
}
