//! What the replicated log holds: [`Entry`]s, each either a client's value with the
//! [`ProposalId`] that names it, or a no-op that fills a hole.
//!
//! Every client value carries its id, so "is this my value?" is a question about ids, never
//! about equality (two clients may propose equal values), and a retried value is recognised
//! when it is applied a second time (see [`crate::Sessions`]).

use crate::ballot::{InstanceId, NodeId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A client of the log: a session minted by one node in one boot (see
/// [`crate::NodeHandle::session`]). Unique forever: a node's boot number is a proposer round
/// it reserved durably at start-up, and rounds are never reused.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ClientId {
    /// The node that minted it.
    pub node: NodeId,
    /// That node's boot: the round it reserved when it started.
    pub boot: u64,
    /// The session's number within that boot (0 is the node's own).
    pub session: u64,
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}#{}", self.node, self.boot, self.session)
    }
}

/// One client request: its client and its sequence number there. Retrying a request means
/// sending the same id again, which the log then applies at most once.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ProposalId {
    /// Who asked.
    pub client: ClientId,
    /// The client's request number (each request its own).
    pub seq: u64,
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.client, self.seq)
    }
}

/// One slot's content.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entry<V> {
    /// Nothing: a new leader filled a hole it found below later instances, so that the log has
    /// no gaps (Paxos Made Live §4.x; every Multi-Paxos state machine does this). Never shown
    /// to a client as its value.
    Noop,
    /// A client's value, with the id of the request that proposed it.
    Value {
        /// The request.
        id: ProposalId,
        /// The value.
        value: V,
    },
    /// A membership change: the first one decided in an epoch ends it and names the next
    /// (see [`crate::Membership`]). Never shown to a client as its value.
    Reconfigure(crate::epoch::Membership),
}

impl<V> Entry<V> {
    /// The client value, if this is one.
    pub fn value(&self) -> Option<&V> {
        match self {
            Entry::Noop | Entry::Reconfigure(_) => None,
            Entry::Value { value, .. } => Some(value),
        }
    }

    /// The request that proposed it, if a client did.
    pub fn id(&self) -> Option<ProposalId> {
        match self {
            Entry::Noop | Entry::Reconfigure(_) => None,
            Entry::Value { id, .. } => Some(*id),
        }
    }
}

/// One applied slot of the log, as readers see it ([`crate::NodeHandle::subscribe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<V> {
    /// The slot.
    pub instance: InstanceId,
    /// What was decided there.
    pub entry: Entry<V>,
    /// What applying it did: a state machine applies [`crate::Applied::First`] entries only
    /// (a no-op carries nothing; a duplicate was applied at its first instance).
    pub applied: crate::session::Applied,
}

/// `noop`, the value's `Debug` form, or the change.
impl<V: fmt::Debug> fmt::Display for Entry<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Noop => f.write_str("noop"),
            Entry::Value { value, .. } => write!(f, "{value:?}"),
            Entry::Reconfigure(next) => write!(f, "reconfigure to {next}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_print_their_value_and_ids_their_origin() {
        let id = ProposalId {
            client: ClientId {
                node: NodeId(2),
                boot: 7,
                session: 3,
            },
            seq: 11,
        };
        let e = Entry::Value { id, value: 201u64 };
        assert_eq!(e.to_string(), "201");
        assert_eq!(e.value(), Some(&201));
        assert_eq!(e.id(), Some(id));
        assert_eq!(Entry::<u64>::Noop.to_string(), "noop");
        assert_eq!(Entry::<u64>::Noop.id(), None);
        assert_eq!(id.to_string(), "n2.7#3/11");
    }
}
