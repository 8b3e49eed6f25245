//! Identifiers: nodes, instances (log slots) and ballots.
//!
//! A [`Ballot`] is `(round, node)`, compared round first, then node. Because every proposer owns
//! its node id, two proposers can never produce the same ballot; because a proposer persists the
//! highest round it used or saw before sending a ballot (see [`crate::Proposer`]), it never
//! reuses one after a restart either.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity in the cluster. Unique and stable across restarts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// One slot of the replicated log: an independent single-decree Paxos instance.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct InstanceId(pub u64);

impl InstanceId {
    /// The instance after this one.
    pub fn next(self) -> InstanceId {
        InstanceId(self.0 + 1)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// A proposal number: totally ordered by `round`, then `node`.
///
/// Field order is comparison order, so the derived `Ord` is the protocol order and agrees with
/// `Eq`. Printed as `round.node`, like the Go log (`4.2` is round 4 of proposer 2).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Monotone counter; the part a proposer raises to get above a competitor.
    pub round: u64,
    /// The proposer that owns this ballot; makes ballots unique across proposers.
    pub node: NodeId,
}

impl Ballot {
    /// The smallest ballot; nothing is promised or accepted at it.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };

    /// A ballot of `node` at `round`.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }

    /// The smallest ballot owned by `node` that is strictly above `self`.
    pub fn next_above(self, node: NodeId) -> Ballot {
        Ballot {
            round: self.round + 1,
            node,
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_node() {
        let a = Ballot::new(1, NodeId(3));
        let b = Ballot::new(2, NodeId(1));
        let c = Ballot::new(2, NodeId(2));
        assert!(a < b && b < c);
        assert!(Ballot::ZERO < a);
        assert_eq!(b.next_above(NodeId(7)), Ballot::new(3, NodeId(7)));
        assert_eq!(Ballot::new(4, NodeId(2)).to_string(), "4.2");
    }
}
