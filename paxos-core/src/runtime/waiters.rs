//! Who waits for what, and how one step's [`Effects`] answers them: proposals by instance,
//! requests by id (answered from the applied log, in log order), readers of the log by
//! cursor, deadlines by time. No I/O: the node loop hands it effects and clock readings.

use super::error::NodeError;
use crate::ballot::InstanceId;
use crate::effects::Effects;
use crate::log::{Decision, Entry, ProposalId};
use crate::session::Applied;
use crate::validate::InputError;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where a Go/Elixir-style proposal's answer goes.
pub(crate) type ProposeReply<V> = oneshot::Sender<Result<(InstanceId, Entry<V>), NodeError>>;
/// Where an append's answer goes.
pub(crate) type AppendReply = oneshot::Sender<Result<InstanceId, NodeError>>;

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
    Append(AppendReply),
    /// A Go-style proposal forwarded to the leader: answered with where it was applied.
    Proposal(ProposeReply<V>),
}

/// A reader of the applied log ([`crate::NodeHandle::subscribe`]).
#[derive(Debug)]
struct Subscriber<V> {
    next: InstanceId,
    sink: mpsc::Sender<Decision<V>>,
}

/// Everyone waiting on one node.
#[derive(Debug)]
pub(crate) struct Waiters<V> {
    by_instance: BTreeMap<InstanceId, Vec<ForInstance<V>>>,
    by_request: BTreeMap<ProposalId, ForRequest<V>>,
    deadlines: BTreeSet<(Instant, ProposalId)>,
    subscribers: Vec<Subscriber<V>>,
}

impl<V> Default for Waiters<V> {
    fn default() -> Self {
        Waiters {
            by_instance: BTreeMap::new(),
            by_request: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            subscribers: Vec::new(),
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
        if let Some(ForRequest::Append(old)) = self.by_request.insert(id, ForRequest::Append(reply))
        {
            // The same request asked twice on one node: the first caller hears it is retried.
            let _ = old.send(Err(NodeError::TimedOut { maybe_chosen: true }));
        }
        self.deadlines.insert((deadline, id));
    }

    /// A reader of the log from `from` on.
    pub(crate) fn subscribe(&mut self, from: InstanceId, sink: mpsc::Sender<Decision<V>>) {
        self.subscribers.push(Subscriber { next: from, sink });
    }

    /// Answer everyone `effects` (one step's, once durable) has news for. `ack_on_decide` is
    /// the `ack_before_prefix` fault switch: requests are answered at their decision, before
    /// the instances below them are decided.
    pub(crate) fn answer(&mut self, effects: &Effects<V>, ack_on_decide: bool) {
        if ack_on_decide {
            for (instance, entry) in &effects.decided {
                if let Some(id) = entry.id()
                    && let Some(ForRequest::Append(reply)) = self.by_request.remove(&id)
                {
                    let _ = reply.send(Ok(*instance));
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
                Applied::DuplicateOf(first) => *first,
                _ => *instance,
            };
            (first, entry)
        });
        // Requests a snapshot showed applied are answered as any applied one.
        for (first, entry) in restored.map(|(at, e)| (*at, e)).chain(applied) {
            let Some(id) = entry.id() else { continue };
            match self.by_request.remove(&id) {
                Some(ForRequest::Append(reply)) => {
                    let _ = reply.send(Ok(first));
                }
                Some(ForRequest::Proposal(reply)) => {
                    let _ = reply.send(Ok((first, entry.clone())));
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
            if let Some(ForRequest::Append(reply)) = self.by_request.remove(&id) {
                let _ = reply.send(Err(NodeError::TimedOut { maybe_chosen: true }));
                expired.push(id);
            }
        }
        expired
    }

    /// Feed every reader the applied slots it has not seen, as far as its buffer takes them,
    /// reading them with `read(from, at_most)`; a reader that went away is dropped.
    pub(crate) fn feed(&mut self, read: impl Fn(InstanceId, usize) -> Vec<Decision<V>>) {
        self.subscribers.retain_mut(|s| {
            if s.sink.is_closed() {
                return false;
            }
            for d in read(s.next, s.sink.capacity()) {
                let next = d.instance.next();
                if s.sink.try_send(d).is_err() {
                    break;
                }
                s.next = next;
            }
            true
        });
    }
}
