//! Client sessions: exactly-once application of retried requests (Raft thesis §6.3).
//!
//! A request may be decided twice: a client retries after a timeout while the first copy is
//! still on its way, or a new leader adopts a copy a dead leader left in a minority of
//! acceptors while the client's retry goes elsewhere. Paxos cannot stop the second instance
//! from being chosen, but every replica applies the decided log in instance order and keeps,
//! per request id, the instance that applied it first. The second copy is then recognised and
//! skipped, the same way on every replica, because it is a function of the decided prefix.

use crate::ballot::InstanceId;
use crate::log::{Entry, ProposalId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What applying one decided entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Applied {
    /// A no-op: nothing to apply.
    Noop,
    /// A request applied for the first time.
    First,
    /// A request already applied at this instance: this copy changes nothing.
    DuplicateOf(InstanceId),
}

/// The requests applied so far, by id. Part of the replicated state: every replica that
/// applied the same prefix holds the same sessions, and a snapshot carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sessions {
    applied: BTreeMap<ProposalId, InstanceId>,
}

impl Sessions {
    /// No request applied yet.
    pub fn new() -> Self {
        Sessions::default()
    }

    /// Apply the entry decided in `instance`; entries must come in instance order.
    pub fn apply<V>(&mut self, instance: InstanceId, entry: &Entry<V>) -> Applied {
        let Some(id) = entry.id() else {
            return Applied::Noop;
        };
        match self.applied.get(&id) {
            Some(&first) => Applied::DuplicateOf(first),
            None => {
                self.applied.insert(id, instance);
                Applied::First
            }
        }
    }

    /// Where request `id` was applied, if it was.
    pub fn applied_at(&self, id: ProposalId) -> Option<InstanceId> {
        self.applied.get(&id).copied()
    }

    /// What applying `entry`, decided in `instance` and applied already, did (the same answer
    /// [`Sessions::apply`] gave then).
    pub fn applied_as<V>(&self, instance: InstanceId, entry: &Entry<V>) -> Applied {
        match entry.id().and_then(|id| self.applied_at(id)) {
            None => Applied::Noop,
            Some(first) if first == instance => Applied::First,
            Some(first) => Applied::DuplicateOf(first),
        }
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
}
