//! Client sessions: exactly-once application of retried requests (Raft thesis §6.3).
//!
//! A request may be decided twice: a client retries after a timeout while the first copy is
//! still on its way, or a new leader adopts a copy a dead leader left in a minority of
//! acceptors while the client's retry goes elsewhere. Paxos cannot stop the second instance
//! from being chosen, but every replica applies the decided log in instance order and keeps,
//! per request id, the instance that applied it first. The second copy is then recognised and
//! skipped, the same way on every replica, because it is a function of the decided prefix.
//!
//! Remembering every request forever would make memory grow with history, so a request is
//! remembered for [`crate::Config::session_window_entries`] instances after it was applied.
//! When it leaves that window its client's *floor* rises past it: a copy of it, or of any older
//! request of that client not applied yet, decided later is not applied but refused as
//! [`Applied::Expired`] (Raft's session expiry, §6.3, by log position instead of time). Both
//! are functions of the decided prefix, so every replica forgets and refuses alike, provided
//! every node runs with the same window.

use crate::ballot::InstanceId;
use crate::log::{ClientId, Entry, ProposalId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// What applying one decided entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Applied {
    /// A no-op: nothing to apply.
    Noop,
    /// A request applied for the first time.
    First,
    /// A request already applied at this instance: this copy changes nothing.
    DuplicateOf(InstanceId),
    /// A request older than what its session still remembers (it left the window, or a later
    /// request of its client did): not applied, whether or not an earlier copy was. Its
    /// client is answered [`crate::InputError::SessionExpired`].
    Expired,
}

/// The requests applied within the window, by id: the replicated part of a node's state
/// that deduplicates retries. A snapshot carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sessions {
    /// Requests applied within the window: where each was applied first, and its output
    /// (what the state machine returned; recorded by the runtime right after applying it).
    applied: BTreeMap<ProposalId, (InstanceId, Bytes)>,
    /// The same requests in the order applied (so by instance), oldest first: what leaves the
    /// window next. A queue, not a map: first applications only ever come at the back.
    by_instance: VecDeque<(InstanceId, ProposalId)>,
    /// Per client: every request of it below this sequence number is forgotten or expired.
    floors: BTreeMap<ClientId, u64>,
    /// What the entries that were not a first application did ([`Applied::DuplicateOf`],
    /// [`Applied::Expired`]), by instance, so the log reads back with the right flags; kept
    /// as long as the log keeps the entry ([`Sessions::forget_flags_below`]).
    flags: BTreeMap<InstanceId, Applied>,
    /// Instances a request is remembered for after it was applied (0: forever). Configuration,
    /// not state: set from [`crate::Config::session_window_entries`] on every start.
    #[serde(skip)]
    window: u64,
}

impl Sessions {
    /// No request applied yet; requests are remembered forever.
    pub fn new() -> Self {
        Sessions::default()
    }

    /// Remember each request for `window` instances after it was applied (0: forever).
    pub fn with_window(mut self, window: u64) -> Self {
        self.window = window;
        self
    }

    /// Apply the entry decided in `instance`; entries must come in instance order.
    pub fn apply<V>(&mut self, instance: InstanceId, entry: &Entry<V>) -> Applied {
        self.forget_before(instance);
        let Some(id) = entry.id() else {
            return Applied::Noop;
        };
        let applied = match self.applied.get(&id) {
            Some(&(first, _)) => Applied::DuplicateOf(first),
            None if id.seq < self.floors.get(&id.client).copied().unwrap_or(0) => Applied::Expired,
            None => {
                self.applied.insert(id, (instance, Bytes::new()));
                self.by_instance.push_back((instance, id));
                return Applied::First;
            }
        };
        self.flags.insert(instance, applied);
        applied
    }

    /// Forget the requests applied more than `window` instances before `instance`, raising
    /// their clients' floors past them.
    fn forget_before(&mut self, instance: InstanceId) {
        let Some(edge) = instance
            .0
            .checked_sub(self.window)
            .filter(|_| self.window > 0)
        else {
            return;
        };
        while let Some(&(at, id)) = self.by_instance.front() {
            if at.0 >= edge {
                break;
            }
            self.by_instance.pop_front();
            self.applied.remove(&id);
            let floor = self.floors.entry(id.client).or_default();
            *floor = (*floor).max(id.seq.saturating_add(1));
        }
    }

    /// Drop the flags of entries below `start`: the log no longer holds them.
    pub fn forget_flags_below(&mut self, start: InstanceId) {
        self.flags = self.flags.split_off(&start);
    }

    /// Where request `id` was applied, if it is remembered.
    pub fn applied_at(&self, id: ProposalId) -> Option<InstanceId> {
        self.applied.get(&id).map(|(at, _)| *at)
    }

    /// Record what applying request `id` output (if it is remembered).
    pub fn set_output(&mut self, id: ProposalId, output: Bytes) {
        if let Some((_, o)) = self.applied.get_mut(&id) {
            *o = output;
        }
    }

    /// Request `id`'s output, if it is remembered.
    pub fn output(&self, id: ProposalId) -> Option<&Bytes> {
        self.applied.get(&id).map(|(_, o)| o)
    }

    /// What applying `entry`, decided in `instance` and applied already, did (the same answer
    /// [`Sessions::apply`] gave then, for every entry the log still holds).
    pub fn applied_as<V>(&self, instance: InstanceId, entry: &Entry<V>) -> Applied {
        if entry.id().is_none() {
            return Applied::Noop;
        }
        self.flags.get(&instance).copied().unwrap_or(Applied::First)
    }

    /// Requests remembered now (bounded by the window: for tests and monitoring).
    pub fn remembered(&self) -> usize {
        self.applied.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::ClientId;

    fn id(seq: u64) -> ProposalId {
        ProposalId {
            client: ClientId::default(),
            seq,
        }
    }

    /// A request decided twice is applied once, at its first instance; the second copy says
    /// where the first is.
    #[test]
    fn a_request_decided_twice_is_applied_once() {
        let mut s = Sessions::new();
        let a = Entry::Value {
            id: id(1),
            value: 5u64,
        };
        assert_eq!(s.apply(InstanceId(3), &a), Applied::First);
        assert_eq!(s.apply(InstanceId(4), &Entry::<u64>::Noop), Applied::Noop);
        assert_eq!(
            s.apply(InstanceId(9), &a),
            Applied::DuplicateOf(InstanceId(3))
        );
        assert_eq!(s.applied_at(id(1)), Some(InstanceId(3)));
        assert_eq!(s.applied_at(id(2)), None);
        assert_eq!(s.applied_as(InstanceId(3), &a), Applied::First);
        assert_eq!(
            s.applied_as(InstanceId(9), &a),
            Applied::DuplicateOf(InstanceId(3))
        );
    }

    fn value(seq: u64) -> Entry<u64> {
        Entry::Value {
            id: id(seq),
            value: seq,
        }
    }

    /// A request is remembered for the window after it was applied; then a copy of it is
    /// refused as expired, not applied again, and so is an older request of its client that
    /// was never applied. Newer requests go on being applied.
    #[test]
    fn requests_are_forgotten_after_the_window_and_their_copies_expire() {
        let mut s = Sessions::new().with_window(3);
        assert_eq!(s.apply(InstanceId(0), &value(5)), Applied::First);
        assert_eq!(
            s.apply(InstanceId(3), &value(5)),
            Applied::DuplicateOf(InstanceId(0)),
            "still inside the window"
        );
        assert_eq!(s.apply(InstanceId(4), &Entry::<u64>::Noop), Applied::Noop);
        assert_eq!(s.remembered(), 0, "i0 left the window at i3 + 1");
        assert_eq!(s.apply(InstanceId(5), &value(5)), Applied::Expired);
        assert_eq!(s.apply(InstanceId(6), &value(4)), Applied::Expired);
        assert_eq!(s.apply(InstanceId(7), &value(6)), Applied::First);
        assert_eq!(s.remembered(), 1);
        // Read back from the log: every entry with what applying it did.
        assert_eq!(
            s.applied_as(InstanceId(3), &value(5)),
            Applied::DuplicateOf(InstanceId(0))
        );
        assert_eq!(s.applied_as(InstanceId(5), &value(5)), Applied::Expired);
        assert_eq!(s.applied_as(InstanceId(7), &value(6)), Applied::First);
        s.forget_flags_below(InstanceId(6));
        assert_eq!(
            s.applied_as(InstanceId(5), &value(5)),
            Applied::First,
            "its flag went with the log below i6"
        );
        assert_eq!(
            s.applied_as(InstanceId(6), &Entry::<u64>::Noop),
            Applied::Noop
        );
        assert_eq!(s.applied_as(InstanceId(7), &value(6)), Applied::First);
    }

    /// Window 0 remembers every request forever.
    #[test]
    fn window_zero_remembers_forever() {
        let mut s = Sessions::new();
        assert_eq!(s.apply(InstanceId(0), &value(1)), Applied::First);
        for i in 1..1000 {
            s.apply(InstanceId(i), &Entry::<u64>::Noop);
        }
        assert_eq!(
            s.apply(InstanceId(1000), &value(1)),
            Applied::DuplicateOf(InstanceId(0))
        );
    }
}
