//! Who waits for what, and how one step's [`Effects`] answers them: proposals by instance,
//! requests by id (answered from the applied log, in log order), readers of the log by
//! cursor, deadlines by time. No I/O: the node loop hands it effects and clock readings.

use super::error::NodeError;
use super::handle::Reply;
use crate::ballot::InstanceId;
use crate::effects::Effects;
use crate::epoch::Membership;
use crate::log::{Decision, Entry, ProposalId};
use crate::read::ReadId;
use crate::session::Applied;
use crate::validate::InputError;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where a Go/Elixir-style proposal's answer goes.
pub(crate) type ProposeReply<V> = oneshot::Sender<Result<(InstanceId, Entry<V>), NodeError>>;
/// Where an append's answer goes.
pub(crate) type AppendReply = oneshot::Sender<Result<Reply, NodeError>>;
/// Where a membership change's answer goes: the epoch it made, once in force here.
pub(crate) type ReconfigReply = oneshot::Sender<Result<Membership, NodeError>>;

/// A caller waiting for one instance's decision.
#[derive(Debug)]
enum ForInstance<V> {
    /// A proposal pinned there (`propose`, `propose_at`), by its request id.
    Proposal(ProposalId, ProposeReply<V>),
    /// `wait_decided`.
    Decision(oneshot::Sender<Result<Entry<V>, NodeError>>),
}

/// A caller waiting for one request to be applied.
#[derive(Debug)]
enum ForRequest<V> {
    /// An append, and its deadline (its entry in [`Waiters::deadlines`]).
    Append(AppendReply, Instant),
    /// A Go-style proposal forwarded to the leader: answered with where it was applied.
    Proposal(ProposeReply<V>),
}

/// Where a linearizable read's answer goes: the applied index it was answered at, and the
/// state machine's answer to its query (empty without one).
pub(crate) type ReadReply = oneshot::Sender<Result<(InstanceId, Bytes), NodeError>>;

/// A caller of [`crate::NodeHandle::query`] or [`crate::NodeHandle::read_barrier`].
#[derive(Debug)]
struct ForRead {
    query: Option<Bytes>,
    deadline: Instant,
    reply: ReadReply,
}

/// A reader of the applied log ([`crate::NodeHandle::subscribe`]).
#[derive(Debug)]
struct Subscriber<V> {
    next: InstanceId,
    sink: mpsc::Sender<Result<Decision<V>, NodeError>>,
}

/// Everyone waiting on one node.
#[derive(Debug)]
pub(crate) struct Waiters<V> {
    by_instance: BTreeMap<InstanceId, Vec<ForInstance<V>>>,
    by_request: BTreeMap<ProposalId, ForRequest<V>>,
    deadlines: BTreeSet<(Instant, ProposalId)>,
    reads: BTreeMap<ReadId, ForRead>,
    read_deadlines: BTreeSet<(Instant, ReadId)>,
    subscribers: Vec<Subscriber<V>>,
    /// The caller of the membership change in progress here (the replica runs one at a time).
    reconfig: Option<ReconfigReply>,
}

impl<V> Default for Waiters<V> {
    fn default() -> Self {
        Waiters {
            by_instance: BTreeMap::new(),
            by_request: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            reads: BTreeMap::new(),
            read_deadlines: BTreeSet::new(),
            subscribers: Vec::new(),
            reconfig: None,
        }
    }
}

impl<V: Clone> Waiters<V> {
    /// A proposal waits for `instance`'s decision.
    pub(crate) fn proposal_at(
        &mut self,
        instance: InstanceId,
        id: ProposalId,
        reply: ProposeReply<V>,
    ) {
        let list = self.by_instance.entry(instance).or_default();
        list.retain(|w| !matches!(w, ForInstance::Proposal(_, r) if r.is_closed()));
        list.push(ForInstance::Proposal(id, reply));
    }

    /// A caller waits for the membership change this node just proposed.
    pub(crate) fn reconfigure(&mut self, reply: ReconfigReply) {
        self.reconfig = Some(reply);
    }

    /// The change's caller hears how it ended ([`Effects::reconfigured`]).
    pub(crate) fn answer_reconfig(&mut self, effects: &Effects<V>) {
        if let Some(end) = effects.reconfigured.last()
            && let Some(reply) = self.reconfig.take()
        {
            let _ = reply.send(end.clone().map_err(NodeError::Reconfig));
        }
    }

    /// A caller waits for `instance`'s decision.
    pub(crate) fn decision(
        &mut self,
        instance: InstanceId,
        reply: oneshot::Sender<Result<Entry<V>, NodeError>>,
    ) {
        self.by_instance
            .entry(instance)
            .or_default()
            .push(ForInstance::Decision(reply));
    }

    /// A forwarded Go-style proposal waits for request `id` to be applied.
    pub(crate) fn proposal_applied(&mut self, id: ProposalId, reply: ProposeReply<V>) {
        self.by_request.insert(id, ForRequest::Proposal(reply));
    }

    /// An append waits for request `id` to be applied, until `deadline`.
    pub(crate) fn append(&mut self, id: ProposalId, deadline: Instant, reply: AppendReply) {
        if let Some(ForRequest::Append(old, _)) = self.take_request(id) {
            // The same request asked twice on one node: the first caller hears it is retried.
            let _ = old.send(Err(NodeError::TimedOut { maybe_chosen: true }));
        }
        self.by_request
            .insert(id, ForRequest::Append(reply, deadline));
        self.deadlines.insert((deadline, id));
    }

    /// Stop waiting for request `id`: its caller is answered now. An append's deadline goes
    /// with it (else every answered append would be remembered until its deadline).
    fn take_request(&mut self, id: ProposalId) -> Option<ForRequest<V>> {
        let w = self.by_request.remove(&id)?;
        if let ForRequest::Append(_, deadline) = &w {
            self.deadlines.remove(&(*deadline, id));
        }
        Some(w)
    }

    /// Read `id` waits until it is ready ([`Effects::reads`]) or `deadline`; then `query` (if
    /// any) is asked of the state machine.
    pub(crate) fn read(
        &mut self,
        id: ReadId,
        query: Option<Bytes>,
        deadline: Instant,
        reply: ReadReply,
    ) {
        self.read_deadlines.insert((deadline, id));
        self.reads.insert(
            id,
            ForRead {
                query,
                deadline,
                reply,
            },
        );
    }

    /// Answer the reads `effects` made ready, at `applied`, asking `query` for each answer.
    pub(crate) fn answer_reads(
        &mut self,
        effects: &Effects<V>,
        applied: InstanceId,
        query: impl Fn(&[u8]) -> Bytes,
    ) {
        for (id, _) in &effects.reads {
            if let Some(r) = self.reads.remove(id) {
                self.read_deadlines.remove(&(r.deadline, *id));
                let output = r.query.as_deref().map(&query).unwrap_or_default();
                let _ = r.reply.send(Ok((applied, output)));
            }
        }
    }

    /// Reads whose deadline passed by `now`, answered `TimedOut` and removed: the caller tells
    /// the replica to stop pursuing them.
    pub(crate) fn expire_reads(&mut self, now: Instant) -> Vec<ReadId> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.read_deadlines.first() {
            if deadline > now {
                break;
            }
            self.read_deadlines.pop_first();
            if let Some(r) = self.reads.remove(&id) {
                let _ = r.reply.send(Err(NodeError::TimedOut {
                    maybe_chosen: false,
                }));
                expired.push(id);
            }
        }
        expired
    }

    /// Deadlines waiting (for tests: answered appends leave none behind).
    #[cfg(test)]
    fn deadlines_waiting(&self) -> usize {
        self.deadlines.len()
    }

    /// A reader of the log from `from` on.
    pub(crate) fn subscribe(
        &mut self,
        from: InstanceId,
        sink: mpsc::Sender<Result<Decision<V>, NodeError>>,
    ) {
        self.subscribers.push(Subscriber { next: from, sink });
    }

    /// Answer everyone `effects` (one step's, once durable) has news for. `ack_on_decide` is
    /// the `ack_before_prefix` fault switch: requests are answered at their decision, before
    /// the instances below them are decided.
    /// `outputs` are the applied requests' outputs (none without a state machine).
    pub(crate) fn answer(
        &mut self,
        effects: &Effects<V>,
        ack_on_decide: bool,
        outputs: &BTreeMap<ProposalId, Bytes>,
    ) {
        if ack_on_decide {
            for (instance, entry) in &effects.decided {
                if let Some(id) = entry.id()
                    && let Some(ForRequest::Append(reply, _)) = self.take_request(id)
                {
                    let _ = reply.send(Ok(Reply {
                        instance: *instance,
                        output: Bytes::new(),
                    }));
                }
            }
        }
        for (instance, entry) in &effects.decided {
            for w in self.by_instance.remove(instance).unwrap_or_default() {
                match w {
                    ForInstance::Proposal(_, reply) => {
                        let _ = reply.send(Ok((*instance, entry.clone())));
                    }
                    ForInstance::Decision(reply) => {
                        let _ = reply.send(Ok(entry.clone()));
                    }
                }
            }
        }
        // A snapshot installed over instances someone waits on: decided, entries not kept.
        for r in &effects.restored {
            let above = self.by_instance.split_off(&r.meta.index);
            for (instance, list) in std::mem::replace(&mut self.by_instance, above) {
                for w in list {
                    let compacted = NodeError::Rejected(InputError::Compacted {
                        instance,
                        log_start: r.meta.index,
                    });
                    match w {
                        ForInstance::Decision(reply) => {
                            let _ = reply.send(Err(compacted));
                        }
                        ForInstance::Proposal(_, reply) => {
                            let _ = reply.send(Err(compacted));
                        }
                    }
                }
            }
        }
        let restored = effects.restored.iter().flat_map(|r| &r.requests);
        let applied = effects.applied.iter().map(|(instance, entry, applied)| {
            let first = match applied {
                Applied::DuplicateOf(first) => Some(*first),
                Applied::Expired => None,
                _ => Some(*instance),
            };
            (first, entry)
        });
        // Requests a snapshot showed applied are answered as any applied one.
        for (first, entry) in restored.map(|(at, e)| (Some(*at), e)).chain(applied) {
            let Some(id) = entry.id() else { continue };
            let expired = || NodeError::Rejected(InputError::SessionExpired { id });
            match self.take_request(id) {
                Some(ForRequest::Append(reply, _)) => {
                    let output = outputs.get(&id).cloned().unwrap_or_default();
                    let answer = first.map(|instance| Reply { instance, output });
                    let _ = reply.send(answer.ok_or_else(expired));
                }
                Some(ForRequest::Proposal(reply)) => {
                    let _ = reply.send(first.map(|at| (at, entry.clone())).ok_or_else(expired));
                }
                None => {}
            }
        }
        for &(id, maybe_chosen) in &effects.abandoned {
            for list in self.by_instance.values_mut() {
                let waiting = std::mem::take(list);
                for w in waiting {
                    match w {
                        ForInstance::Proposal(pid, reply) if pid == id => {
                            let _ = reply.send(Err(NodeError::Aborted { maybe_chosen }));
                        }
                        other => list.push(other),
                    }
                }
            }
            self.by_instance.retain(|_, list| !list.is_empty());
        }
    }

    /// Requests whose deadline passed by `now`, removed: the caller answers them (and tells
    /// the replica to stop pursuing them).
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<ProposalId> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(ForRequest::Append(reply, _)) = self.by_request.remove(&id) {
                let _ = reply.send(Err(NodeError::TimedOut { maybe_chosen: true }));
                expired.push(id);
            }
        }
        expired
    }

    /// Feed every reader the applied slots it has not seen, as far as its buffer takes them,
    /// reading them with `read(from, at_most)`; a reader that went away is dropped, and one
    /// whose next slot is below `log_start` (compacted) is told so and dropped.
    pub(crate) fn feed(
        &mut self,
        log_start: InstanceId,
        read: impl Fn(InstanceId, usize) -> Vec<Decision<V>>,
    ) {
        self.subscribers.retain_mut(|s| {
            if s.sink.is_closed() {
                return false;
            }
            if s.next < log_start {
                let compacted = NodeError::Rejected(InputError::Compacted {
                    instance: s.next,
                    log_start,
                });
                // A full buffer: tell it at the next step.
                return s.sink.try_send(Err(compacted)).is_err();
            }
            for d in read(s.next, s.sink.capacity()) {
                let next = d.instance.next();
                if s.sink.try_send(Ok(d)).is_err() {
                    break;
                }
                s.next = next;
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::ClientId;

    /// An append whose request was decided but refused as expired hears why; one applied, or
    /// a duplicate of one applied, hears where.
    #[test]
    fn appends_hear_where_they_were_applied_or_that_they_expired() {
        let mut waiters = Waiters::<u64>::default();
        let id = |seq| ProposalId {
            client: ClientId::default(),
            seq,
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let mut replies = Vec::new();
        for seq in 1..=3 {
            let (tx, rx) = oneshot::channel();
            waiters.append(id(seq), deadline, tx);
            replies.push(rx);
        }
        let mut out = Effects::new();
        let entry = |seq| Entry::Value {
            id: id(seq),
            value: seq,
        };
        out.applied = vec![
            (InstanceId(4), entry(1), Applied::Expired),
            (InstanceId(5), entry(2), Applied::First),
            (InstanceId(6), entry(3), Applied::DuplicateOf(InstanceId(2))),
        ];
        waiters.answer(&out, false, &BTreeMap::new());
        let got: Vec<_> = replies
            .into_iter()
            .map(|mut rx| rx.try_recv().expect("answered"))
            .collect();
        assert!(matches!(
            got[0],
            Err(NodeError::Rejected(InputError::SessionExpired { id: i })) if i == id(1)
        ));
        assert_eq!(
            got[1].as_ref().ok().map(|r| r.instance),
            Some(InstanceId(5))
        );
        assert_eq!(
            got[2].as_ref().ok().map(|r| r.instance),
            Some(InstanceId(2))
        );
        assert_eq!(
            waiters.deadlines_waiting(),
            0,
            "answered appends keep no deadline (memory would grow with throughput x timeout)"
        );
    }

    /// An append asked again on the same node replaces the first: the first caller hears
    /// it timed out, and only the second deadline counts.
    #[test]
    fn an_append_asked_again_keeps_only_its_new_deadline() {
        let mut waiters = Waiters::<u64>::default();
        let id = ProposalId::default();
        let now = Instant::now();
        let (first, mut first_rx) = oneshot::channel();
        waiters.append(id, now + std::time::Duration::from_millis(10), first);
        let (second, mut second_rx) = oneshot::channel();
        waiters.append(id, now + std::time::Duration::from_secs(10), second);
        assert!(matches!(
            first_rx.try_recv(),
            Ok(Err(NodeError::TimedOut { .. }))
        ));
        assert_eq!(waiters.deadlines_waiting(), 1);
        assert!(
            waiters
                .expire(now + std::time::Duration::from_secs(1))
                .is_empty(),
            "the first deadline must not expire the second caller"
        );
        assert!(second_rx.try_recv().is_err(), "still waiting");
    }

    fn entry(seq: u64) -> Entry<u64> {
        Entry::Value {
            id: request(seq),
            value: seq,
        }
    }

    fn request(seq: u64) -> ProposalId {
        ProposalId {
            client: ClientId::default(),
            seq,
        }
    }

    fn decided(instance: u64, e: Entry<u64>) -> Effects<u64> {
        let mut out = Effects::new();
        out.decided = vec![(InstanceId(instance), e)];
        out
    }

    /// Callers waiting on an instance hear its decision: `wait_decided`, and every live
    /// proposal pinned there (one whose caller left is dropped, not the others).
    #[test]
    fn waiters_on_an_instance_hear_its_decision() {
        let mut waiters = Waiters::<u64>::default();
        let (tx, mut decision) = oneshot::channel();
        waiters.decision(InstanceId(5), tx);
        let (tx, mut first) = oneshot::channel();
        waiters.proposal_at(InstanceId(5), request(1), tx);
        let (tx, gone) = oneshot::channel();
        waiters.proposal_at(InstanceId(5), request(2), tx);
        drop(gone);
        let (tx, mut second) = oneshot::channel();
        waiters.proposal_at(InstanceId(5), request(3), tx);
        waiters.answer(&decided(5, entry(1)), false, &BTreeMap::new());
        assert_eq!(decision.try_recv().expect("answered").ok(), Some(entry(1)));
        for rx in [&mut first, &mut second] {
            let got = rx.try_recv().expect("answered").ok();
            assert_eq!(got, Some((InstanceId(5), entry(1))));
        }
    }

    /// A Go-style proposal forwarded to the leader hears where its request was applied.
    #[test]
    fn a_forwarded_proposal_hears_where_it_was_applied() {
        let mut waiters = Waiters::<u64>::default();
        let (tx, mut rx) = oneshot::channel();
        waiters.proposal_applied(request(4), tx);
        let mut out = Effects::new();
        out.applied = vec![(InstanceId(7), entry(4), Applied::First)];
        waiters.answer(&out, false, &BTreeMap::new());
        let got = rx.try_recv().expect("answered").ok();
        assert_eq!(got, Some((InstanceId(7), entry(4))));
    }

    /// An abandoned proposal (its node lost the lead) hears `Aborted`; another pinned to the
    /// same instance keeps waiting and hears the decision later.
    #[test]
    fn only_the_abandoned_proposal_is_aborted() {
        let mut waiters = Waiters::<u64>::default();
        let (tx, mut dropped) = oneshot::channel();
        waiters.proposal_at(InstanceId(5), request(1), tx);
        let (tx, mut kept) = oneshot::channel();
        waiters.proposal_at(InstanceId(5), request(2), tx);
        let mut out = Effects::new();
        out.abandoned = vec![(request(1), true)];
        waiters.answer(&out, false, &BTreeMap::new());
        assert!(matches!(
            dropped.try_recv(),
            Ok(Err(NodeError::Aborted { maybe_chosen: true }))
        ));
        assert!(kept.try_recv().is_err(), "still waiting");
        waiters.answer(&decided(5, entry(2)), false, &BTreeMap::new());
        let got = kept.try_recv().expect("answered").ok();
        assert_eq!(got, Some((InstanceId(5), entry(2))));
    }

    /// An append whose deadline is reached times out and is handed back to stop pursuing it;
    /// one whose deadline is still ahead keeps waiting.
    #[test]
    fn appends_expire_at_their_deadline() {
        let mut waiters = Waiters::<u64>::default();
        let now = Instant::now();
        let (tx, mut due) = oneshot::channel();
        waiters.append(request(1), now, tx);
        let (tx, mut later) = oneshot::channel();
        waiters.append(request(2), now + std::time::Duration::from_millis(1), tx);
        assert_eq!(waiters.expire(now), vec![request(1)]);
        assert!(matches!(
            due.try_recv(),
            Ok(Err(NodeError::TimedOut { maybe_chosen: true }))
        ));
        assert!(later.try_recv().is_err(), "not yet");
    }
}
