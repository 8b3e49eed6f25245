//! Linearizable reads that skip the log: ReadIndex (Raft thesis §6.4; openraft's
//! `ensure_linearizable`, raft-rs `ReadOnlyOption::Safe`), in Paxos terms.
//!
//! A read of a node's client gets a **read index** from the leader and is answered once the
//! node has applied every instance below it. The leader's read index is its *frontier*: the
//! instance above every instance it knows decided, adopted in phase 1, or proposed at its
//! ballot `b`. It gives one only after a quorum of acceptors confirmed, after the read
//! arrived, that none of them promised a ballot above `b`. Why that is enough:
//! - a write acknowledged before the read began was chosen before that confirmation, at some
//!   ballot `c`;
//! - `c > b` is impossible: a quorum accepted at `c` (so promised at least `c`) before the
//!   confirmation, and one of them is in the confirming quorum, whose promises are all at most
//!   `b` afterwards (promises never go down);
//! - `c < b`: it was chosen before the leader's phase 1 quorum promised `b` (they refuse
//!   accepts below `b` afterwards), so one of them reported it and the leader adopted and
//!   re-proposed it, below its frontier;
//! - `c = b`: the leader proposed it, below its frontier.
//!
//! So every such write sits below the read index, and applying up to it shows it. A new
//! leader that has not finished phase 1 gives no index; one that has, waits with its reads
//! until what it re-proposed is decided: this is the rule Raft states as "a leader serves
//! reads only once an entry of its own term is committed" (etcd #7331, fixed in #7332),
//! which the frontier makes exact: the commit index Raft would use may be stale, the
//! frontier never is. The model checker (tests/model) breaks it on purpose (the read index
//! taken from the decided prefix instead) and finds the stale read.
//!
//! Confirmations are batched: one round of `Confirm` per batch of reads, whatever the batch
//! size (reads that arrive while a round is out wait for the next one, because that round was
//! sent before they arrived).
//!
//! ## Leases ([`crate::ReadPolicy::Lease`])
//! A lease saves the round trip: an acceptor that confirms ballot `b` at (its) time `t` also
//! *grants* `b` a lease ([`Grants`]): until `t + duration` it promises no other leader's
//! ballot (a `Prepare` from another node is left unanswered; its proposer times out and
//! tries again). The leader holds the lease from the time it *sent* that round, `s <= t`,
//! until `s + duration - max_drift` on its own clock. While it holds it, no quorum can
//! promise another leader (each quorum meets the granting one), so nothing is chosen at a
//! higher ballot, and the frontier covers every write acknowledged so far: a read is given
//! the frontier at once. The leader renews the lease with a round whenever half of it is
//! gone. The lease ends early when the leader's ballot changes (it saw a higher one). An
//! acceptor that restarts forgot what it granted: it promises no higher ballot for one lease
//! after it boots. Time here is a clock reading the runtime hands in (`tokio::time`, so
//! turmoil drives it), never ticks: a tick counter stops while a process is paused, a clock
//! does not.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::effects::Effects;
use crate::message::{Message, Value};
use crate::quorum::Votes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A linearizable read of one node's clients ([`crate::Replica::read`]); numbered per node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct ReadId(pub u64);

impl std::fmt::Display for ReadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Who asked the leader for a read index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Asker {
    /// A read of the leader's own clients.
    Local(ReadId),
    /// A read of a peer's clients (`Message::ReadIndex`): answered with `Message::ReadAt`.
    Peer(NodeId, ReadId),
}

/// One round of confirmations in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Round {
    seq: u64,
    ballot: Ballot,
    /// The frontier when the round was sent: the read index of its askers.
    index: InstanceId,
    acks: Votes,
    askers: Vec<Asker>,
    /// Tick at which the round is sent again (a `Confirm` or its answer may be lost).
    deadline: u64,
    /// The clock when the round was sent (before it left: the lease counts from here).
    sent: Duration,
}

/// Most askers a leader holds (waiting and in its round) before it refuses peers' asks.
pub(crate) const MAX_ASKERS: usize = 4096;

/// The leader's side of ReadIndex: askers waiting for a round, and the round in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ReadIndex {
    id: NodeId,
    acceptors: BTreeSet<NodeId>,
    timeout: u64,
    /// Askers that arrived after the round in flight was sent.
    waiting: Vec<Asker>,
    round: Option<Round>,
    next_seq: u64,
    /// With leases: how long the leader holds one after sending the round that earned it
    /// (`duration - max_drift`).
    lease: Option<Duration>,
    /// The lease held: for which ballot, until when.
    held: Option<(Ballot, Duration)>,
}

impl ReadIndex {
    /// A leader side that resends a round after `timeout` ticks, holding leases of `lease`
    /// (see the module doc) if any.
    pub(crate) fn new(
        id: NodeId,
        acceptors: BTreeSet<NodeId>,
        timeout: u64,
        lease: Option<Duration>,
    ) -> Self {
        ReadIndex {
            id,
            acceptors,
            timeout,
            waiting: Vec::new(),
            round: None,
            next_seq: 0,
            lease,
            held: None,
        }
    }

    /// The leader side for `config`'s node, acceptors, phase timeout and read policy.
    pub(crate) fn for_config(config: &crate::Config) -> Self {
        ReadIndex::new(
            config.id,
            config.acceptors.clone(),
            config.phase_timeout_ticks,
            config.read_policy.lease().map(|(_, held)| held),
        )
    }

    /// True while this leader holds a lease at `ballot` at time `clock`.
    pub(crate) fn holds_lease(&self, ballot: Ballot, clock: Duration) -> bool {
        self.held
            .is_some_and(|(b, until)| b == ballot && clock < until)
    }

    /// A read index is wanted. A peer's ask is refused (false) when it is already waiting, or
    /// when [`MAX_ASKERS`] askers are held: peers' asks come from the network, so they must
    /// not grow the leader's memory without bound (a refused peer asks again on its timer).
    /// The node's own reads are never refused: its runtime bounds them.
    pub(crate) fn ask(&mut self, asker: Asker) -> bool {
        if let Asker::Peer(from, _) = asker
            && (self.asking() >= MAX_ASKERS || self.waiting.contains(&asker))
        {
            tracing::debug!(%from, "read-index ask refused: waiting already, or too many");
            return false;
        }
        self.waiting.push(asker);
        true
    }

    /// Start a round if askers wait (or a lease needs renewing) and none is out, now that the
    /// proposer leads at `ballot` with this `frontier` (`None` if it does not lead), at tick
    /// `now` and time `clock`. `self_ok`: this node's own acceptor has promised nothing above
    /// `ballot` (it counts without a message). Returns the askers confirmed at once (by a
    /// lease held, or a quorum of one), and whether a round was sent (the caller's own
    /// acceptor grants it its lease).
    pub(crate) fn poll<V: Value>(
        &mut self,
        leading: Option<(Ballot, InstanceId)>,
        self_ok: bool,
        now: u64,
        clock: Duration,
        out: &mut Effects<V>,
    ) -> (Vec<(Asker, InstanceId)>, bool) {
        let Some((ballot, frontier)) = leading else {
            return (Vec::new(), false);
        };
        // A lease held answers at once: nothing can have been chosen above the frontier.
        let mut confirmed = Vec::new();
        if self.holds_lease(ballot, clock) {
            confirmed = self.waiting.drain(..).map(|a| (a, frontier)).collect();
        }
        if let Some(r) = &self.round {
            // A round whose ballot changed means nothing now; one lost in the network is
            // asked again. Either way its askers go first into a new round (whose
            // confirmations come later than the old one's would have, so they serve).
            if r.ballot == ballot && now < r.deadline {
                return (confirmed, false);
            }
            let askers = self.round.take().map(|r| r.askers).unwrap_or_default();
            self.waiting.splice(0..0, askers);
        }
        let renew = self.lease.is_some_and(|lease| match self.held {
            Some((b, until)) if b == ballot => until.saturating_sub(clock) < lease / 2,
            _ => true,
        });
        if self.waiting.is_empty() && !renew {
            return (confirmed, false);
        }
        self.next_seq += 1;
        let mut acks = Votes::new();
        if self_ok && self.acceptors.contains(&self.id) {
            acks.add(self.id);
        }
        let round = Round {
            seq: self.next_seq,
            ballot,
            index: frontier,
            acks,
            askers: std::mem::take(&mut self.waiting),
            deadline: now + self.timeout,
            sent: clock,
        };
        for &a in &self.acceptors {
            if a != self.id {
                out.send(
                    a,
                    Message::Confirm {
                        ballot,
                        seq: round.seq,
                    },
                );
            }
        }
        self.round = Some(round);
        confirmed.extend(self.finish_if_quorum());
        (confirmed, true)
    }

    /// `from` confirmed round `seq` at `ballot`. Returns the askers confirmed, with their
    /// read index, if that made a quorum.
    pub(crate) fn on_confirmed(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        seq: u64,
    ) -> Vec<(Asker, InstanceId)> {
        match &mut self.round {
            Some(r) if r.seq == seq && r.ballot == ballot && self.acceptors.contains(&from) => {
                r.acks.add(from);
                self.finish_if_quorum()
            }
            _ => Vec::new(),
        }
    }

    fn finish_if_quorum(&mut self) -> Vec<(Asker, InstanceId)> {
        if !self
            .round
            .as_ref()
            .is_some_and(|r| r.acks.is_quorum(self.acceptors.len()))
        {
            return Vec::new();
        }
        let Some(r) = self.round.take() else {
            return Vec::new();
        };
        if let Some(lease) = self.lease {
            self.held = Some((r.ballot, r.sent.saturating_add(lease)));
        }
        r.askers.into_iter().map(|a| (a, r.index)).collect()
    }

    /// This node stopped leading: every asker is given up (a peer's asks again on its own
    /// timer; the node's own reads go to the new leader).
    pub(crate) fn give_up(&mut self) -> Vec<Asker> {
        self.held = None;
        let mut askers = self.round.take().map(|r| r.askers).unwrap_or_default();
        askers.append(&mut self.waiting);
        askers
    }

    /// Askers waiting or in a round.
    pub(crate) fn asking(&self) -> usize {
        self.waiting.len() + self.round.as_ref().map_or(0, |r| r.askers.len())
    }
}

/// An acceptor's side of leader leases: the lease it granted, and the wait after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Grants {
    /// How long a grant lasts (`None`: no leases, nothing is ever refused).
    lease: Option<Duration>,
    /// The lease granted: to which ballot, until when.
    granted: Option<(Ballot, Duration)>,
    /// No higher ballot is promised before this (one lease after boot: what was granted
    /// before a crash is forgotten, so it is waited out).
    quiet_until: Duration,
}

impl Grants {
    /// Grants of `lease` (none without leases).
    pub(crate) fn new(lease: Option<Duration>) -> Self {
        Grants {
            lease,
            ..Grants::default()
        }
    }

    /// The node booted at `clock`: promise nothing new for one lease.
    pub(crate) fn boot(&mut self, clock: Duration) {
        if let Some(lease) = self.lease {
            self.quiet_until = clock.saturating_add(lease);
        }
    }

    /// This acceptor confirmed `ballot` at `clock`: it is granted a lease.
    pub(crate) fn grant(&mut self, ballot: Ballot, clock: Duration) {
        if let Some(lease) = self.lease {
            self.granted = Some((ballot, clock.saturating_add(lease)));
        }
    }

    /// True if a promise of `ballot` (above the current one) must wait at `clock`: during the
    /// boot wait, or while a lease granted to another node's ballot runs. The lease holder
    /// itself may move to a higher ballot (its lease ends with the old one).
    pub(crate) fn refuses(&self, ballot: Ballot, clock: Duration) -> bool {
        self.lease.is_some()
            && (clock < self.quiet_until
                || self
                    .granted
                    .is_some_and(|(b, until)| b.node != ballot.node && clock < until))
    }
}

/// Where one of this node's reads is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Asked {
    /// The node asked for its read index (this one, if it leads).
    to: NodeId,
    /// Tick it was asked at.
    at: u64,
}

/// The reads of this node's clients: waiting for a read index, then for the applied index
/// to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OwnReads {
    next: u64,
    asked: BTreeMap<ReadId, Asked>,
    /// Reads with their index, waiting to apply up to it.
    indexed: BTreeSet<(InstanceId, ReadId)>,
}

impl OwnReads {
    /// A new read id.
    pub(crate) fn mint(&mut self) -> ReadId {
        self.next += 1;
        ReadId(self.next)
    }

    /// Read `id` asked `to` for its index at tick `at`.
    pub(crate) fn asked(&mut self, id: ReadId, to: NodeId, at: u64) {
        self.asked.insert(id, Asked { to, at });
    }

    /// Read `id`'s index is `index` (the first answer counts; any answer came from a leader
    /// asked after the read began).
    pub(crate) fn indexed(&mut self, id: ReadId, index: InstanceId) {
        if self.asked.remove(&id).is_some() {
            self.indexed.insert((index, id));
        }
    }

    /// Reads whose leader was not `leader` or has not answered since `stale_at`: ask again.
    pub(crate) fn stale(&self, leader: Option<NodeId>, me: NodeId, stale_at: u64) -> Vec<ReadId> {
        self.asked
            .iter()
            .filter(|(_, a)| a.to != me && (Some(a.to) != leader || a.at <= stale_at))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The caller gave up.
    pub(crate) fn cancel(&mut self, id: ReadId) {
        self.asked.remove(&id);
        self.indexed.retain(|(_, r)| *r != id);
    }

    /// Reads ready now that every instance below `applied` is applied, with their index.
    pub(crate) fn ready(&mut self, applied: InstanceId) -> Vec<(ReadId, InstanceId)> {
        let later = self.indexed.split_off(&(applied.next(), ReadId(0)));
        std::mem::replace(&mut self.indexed, later)
            .into_iter()
            .map(|(i, r)| (r, i))
            .collect()
    }

    /// Reads not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.asked.len() + self.indexed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`ReadIndex::poll`] at clock 0 (no leases here): the askers confirmed.
    fn poll(
        r: &mut ReadIndex,
        leading: Option<(Ballot, InstanceId)>,
        self_ok: bool,
        now: u64,
        out: &mut Effects<u64>,
    ) -> Vec<(Asker, InstanceId)> {
        r.poll(leading, self_ok, now, Duration::ZERO, out).0
    }

    fn three() -> ReadIndex {
        ReadIndex::new(NodeId(1), [1, 2, 3].map(NodeId).into(), 10, None)
    }

    fn confirms(out: &Effects<u64>) -> Vec<(NodeId, u64)> {
        out.messages
            .iter()
            .filter_map(|e| match e.message {
                Message::Confirm { seq, .. } => Some((e.to, seq)),
                _ => None,
            })
            .collect()
    }

    /// Read ids name themselves in logs as `r7`, apart from instances and ballots.
    #[test]
    fn a_read_id_shows_as_r_and_its_number() {
        assert_eq!(ReadId(7).to_string(), "r7");
    }

    /// Peers' asks are bounded: a repeat of one waiting is dropped, and past [`MAX_ASKERS`]
    /// peers are refused while the node's own reads still queue.
    #[test]
    fn peers_cannot_grow_the_askers_without_bound() {
        let mut r = three();
        assert!(r.ask(Asker::Peer(NodeId(2), ReadId(0))));
        assert!(!r.ask(Asker::Peer(NodeId(2), ReadId(0))), "a repeat");
        assert!(r.ask(Asker::Peer(NodeId(3), ReadId(0))), "another peer's");
        for i in 1..MAX_ASKERS as u64 - 1 {
            assert!(r.ask(Asker::Peer(NodeId(2), ReadId(i))));
        }
        assert_eq!(r.asking(), MAX_ASKERS);
        assert!(!r.ask(Asker::Peer(NodeId(3), ReadId(1))), "full");
        assert!(r.ask(Asker::Local(ReadId(1))), "the node's own read");
        assert_eq!(r.asking(), MAX_ASKERS + 1);
    }

    /// One round per batch: askers that arrive while a round is out wait for the next, and a
    /// quorum (the leader's own acceptor and one more) confirms them at the round's frontier.
    #[test]
    fn a_round_confirms_the_askers_it_was_sent_for_at_its_frontier() {
        let mut r = three();
        let b = Ballot::new(1, NodeId(1));
        let mut out = Effects::new();
        assert!(poll(&mut r, Some((b, InstanceId(4))), true, 0, &mut out).is_empty());
        assert!(confirms(&out).is_empty(), "no asker, no round");
        r.ask(Asker::Local(ReadId(1)));
        r.ask(Asker::Peer(NodeId(2), ReadId(7)));
        assert!(poll(&mut r, Some((b, InstanceId(4))), true, 0, &mut out).is_empty());
        assert_eq!(confirms(&out), vec![(NodeId(2), 1), (NodeId(3), 1)]);
        r.ask(Asker::Local(ReadId(2)));
        let mut later = Effects::new();
        assert!(poll(&mut r, Some((b, InstanceId(5))), true, 1, &mut later).is_empty());
        assert!(confirms(&later).is_empty(), "one round out at a time");
        assert!(
            r.on_confirmed(NodeId(2), b, 0).is_empty(),
            "another round's"
        );
        assert!(
            r.on_confirmed(NodeId(2), Ballot::new(2, NodeId(1)), 1)
                .is_empty(),
            "another ballot's"
        );
        assert_eq!(
            r.on_confirmed(NodeId(3), b, 1),
            vec![
                (Asker::Local(ReadId(1)), InstanceId(4)),
                (Asker::Peer(NodeId(2), ReadId(7)), InstanceId(4))
            ]
        );
        assert!(r.on_confirmed(NodeId(2), b, 1).is_empty(), "answered once");
        // The late asker gets the next round, at the frontier of its time.
        let mut next = Effects::new();
        poll(&mut r, Some((b, InstanceId(6))), true, 2, &mut next);
        assert_eq!(confirms(&next).len(), 2);
        assert_eq!(
            r.on_confirmed(NodeId(2), b, 2),
            vec![(Asker::Local(ReadId(2)), InstanceId(6))]
        );
    }

    /// Without its own acceptor's word (it promised higher), the leader needs two others.
    #[test]
    fn the_leaders_own_acceptor_counts_only_if_it_promised_nothing_higher() {
        let mut r = three();
        let b = Ballot::new(1, NodeId(1));
        r.ask(Asker::Local(ReadId(1)));
        poll(
            &mut r,
            Some((b, InstanceId(0))),
            false,
            0,
            &mut Effects::<u64>::new(),
        );
        assert!(r.on_confirmed(NodeId(2), b, 1).is_empty());
        assert_eq!(r.on_confirmed(NodeId(3), b, 1).len(), 1);
        // A single acceptor confirms itself at once.
        let mut one = ReadIndex::new(NodeId(1), [NodeId(1)].into(), 10, None);
        one.ask(Asker::Local(ReadId(1)));
        assert_eq!(
            poll(
                &mut one,
                Some((b, InstanceId(3))),
                true,
                0,
                &mut Effects::<u64>::new()
            ),
            vec![(Asker::Local(ReadId(1)), InstanceId(3))]
        );
    }

    /// A round that times out, or whose ballot changed, is sent again as a new round (the
    /// old one's late confirmations count for nothing); no ballot, no round.
    #[test]
    fn lost_and_outdated_rounds_are_sent_again() {
        let mut r = three();
        let b = Ballot::new(1, NodeId(1));
        r.ask(Asker::Local(ReadId(1)));
        poll(
            &mut r,
            Some((b, InstanceId(0))),
            true,
            0,
            &mut Effects::<u64>::new(),
        );
        let mut out = Effects::new();
        poll(&mut r, Some((b, InstanceId(0))), true, 9, &mut out);
        assert!(confirms(&out).is_empty(), "not yet timed out");
        poll(&mut r, Some((b, InstanceId(0))), true, 10, &mut out);
        assert_eq!(confirms(&out), vec![(NodeId(2), 2), (NodeId(3), 2)]);
        assert!(r.on_confirmed(NodeId(2), b, 1).is_empty(), "the old round");
        let b2 = Ballot::new(2, NodeId(1));
        let mut out = Effects::new();
        assert!(poll(&mut r, None, true, 11, &mut out).is_empty() && out.messages.is_empty());
        poll(&mut r, Some((b2, InstanceId(1))), true, 11, &mut out);
        assert_eq!(confirms(&out), vec![(NodeId(2), 3), (NodeId(3), 3)]);
        assert!(r.on_confirmed(NodeId(2), b, 3).is_empty(), "the old ballot");
        assert_eq!(
            r.on_confirmed(NodeId(2), b2, 3),
            vec![(Asker::Local(ReadId(1)), InstanceId(1))]
        );
        assert_eq!(r.asking(), 0);
        r.ask(Asker::Local(ReadId(2)));
        poll(
            &mut r,
            Some((b2, InstanceId(1))),
            true,
            12,
            &mut Effects::<u64>::new(),
        );
        r.ask(Asker::Peer(NodeId(3), ReadId(1)));
        assert_eq!(r.give_up().len(), 2);
        assert_eq!(r.asking(), 0);
    }
    /// A read is ready once the applied index reaches its read index (an index `i` means
    /// "every instance below `i` applied"), not before; a cancelled read never is.
    #[test]
    fn own_reads_are_ready_once_applied_up_to_their_index() {
        let mut reads = OwnReads::default();
        let (a, b, c) = (reads.mint(), reads.mint(), reads.mint());
        assert!(a < b && b < c);
        for id in [a, b, c] {
            reads.asked(id, NodeId(2), 0);
        }
        reads.indexed(a, InstanceId(3));
        reads.indexed(b, InstanceId(5));
        reads.indexed(a, InstanceId(9)); // a second answer changes nothing
        reads.cancel(c);
        reads.indexed(c, InstanceId(0));
        assert_eq!(reads.ready(InstanceId(2)), vec![]);
        assert_eq!(reads.ready(InstanceId(3)), vec![(a, InstanceId(3))]);
        assert_eq!(reads.len(), 1);
        assert_eq!(reads.ready(InstanceId(9)), vec![(b, InstanceId(5))]);
        assert_eq!(reads.len(), 0);
    }

    /// Reads asked of a leader that changed, or that stayed silent too long, are asked again;
    /// the node's own (it leads) are not its business.
    #[test]
    fn stale_reads_are_those_of_another_leader_or_too_old() {
        let mut reads = OwnReads::default();
        let (a, b, c) = (reads.mint(), reads.mint(), reads.mint());
        reads.asked(a, NodeId(2), 5);
        reads.asked(b, NodeId(3), 9);
        reads.asked(c, NodeId(1), 0);
        assert_eq!(reads.stale(Some(NodeId(2)), NodeId(1), 4), vec![b]);
        assert_eq!(reads.stale(Some(NodeId(2)), NodeId(1), 5), vec![a, b]);
        assert_eq!(reads.stale(Some(NodeId(3)), NodeId(1), 8), vec![a]);
    }
    /// A lease earned by a round answers askers at once, with no message, until half of it
    /// is gone (then a round renews it) and only at the ballot that earned it; it runs from
    /// the round's sending time.
    #[test]
    fn a_lease_answers_at_once_and_is_renewed_before_it_runs_out() {
        let ms = Duration::from_millis;
        let mut r = ReadIndex::new(NodeId(1), [1, 2, 3].map(NodeId).into(), 10, Some(ms(100)));
        let b = Ballot::new(1, NodeId(1));
        let lead = Some((b, InstanceId(4)));
        // No lease yet: even with no asker, a round goes out to earn one.
        let mut out = Effects::<u64>::new();
        let (now, sent) = r.poll(lead, true, 0, ms(10), &mut out);
        assert!(now.is_empty() && sent);
        assert_eq!(confirms(&out).len(), 2);
        r.ask(Asker::Local(ReadId(1)));
        assert_eq!(
            r.on_confirmed(NodeId(2), b, 1),
            vec![],
            "the asker came after the round"
        );
        assert!(r.holds_lease(b, ms(109)) && !r.holds_lease(b, ms(110)));
        assert!(
            !r.holds_lease(Ballot::new(2, NodeId(1)), ms(20)),
            "another ballot"
        );
        let mut out = Effects::<u64>::new();
        let (now, sent) = r.poll(lead, true, 1, ms(20), &mut out);
        assert_eq!(now, vec![(Asker::Local(ReadId(1)), InstanceId(4))]);
        assert!(
            !sent && out.messages.is_empty(),
            "no round while the lease is fresh"
        );
        // Past half of it: renewed, while reads are still answered from the old one.
        r.ask(Asker::Peer(NodeId(3), ReadId(9)));
        let mut out = Effects::<u64>::new();
        let (now, sent) = r.poll(lead, true, 2, ms(61), &mut out);
        assert_eq!(now.len(), 1);
        assert!(sent && confirms(&out).len() == 2);
        // Expired with the renewal unanswered: askers wait for the round.
        r.ask(Asker::Local(ReadId(2)));
        let mut out = Effects::<u64>::new();
        let (now, _) = r.poll(lead, true, 3, ms(110), &mut out);
        assert!(now.is_empty());
        assert!(
            r.on_confirmed(NodeId(3), b, 2).is_empty(),
            "it came after the renewal was sent"
        );
        assert!(
            r.holds_lease(b, ms(160)),
            "the renewal counts from its own sending"
        );
        let (now, _) = r.poll(lead, true, 4, ms(111), &mut Effects::<u64>::new());
        assert_eq!(now, vec![(Asker::Local(ReadId(2)), InstanceId(4))]);
        r.give_up();
        assert!(!r.holds_lease(b, ms(62)), "stepping down ends it");
    }

    /// A grantor refuses other nodes' ballots during its grant and every ballot during the
    /// boot wait; the lease holder may move up; without leases nothing is refused.
    #[test]
    fn grants_refuse_other_leaders_until_they_run_out() {
        let ms = Duration::from_millis;
        let (b1, b2, b3) = (
            Ballot::new(1, NodeId(1)),
            Ballot::new(2, NodeId(2)),
            Ballot::new(3, NodeId(1)),
        );
        let mut g = Grants::new(Some(ms(100)));
        g.boot(ms(5));
        assert!(
            g.refuses(b1, ms(104)) && !g.refuses(b1, ms(105)),
            "boot wait"
        );
        g.grant(b1, ms(200));
        assert!(g.refuses(b2, ms(299)) && !g.refuses(b2, ms(300)));
        assert!(!g.refuses(b3, ms(250)), "the holder's own higher ballot");
        let mut none = Grants::new(None);
        none.boot(ms(5));
        none.grant(b1, ms(5));
        assert!(!none.refuses(b2, ms(6)));
    }
}
