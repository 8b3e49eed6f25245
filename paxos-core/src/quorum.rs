//! Majority arithmetic: a set of distinct voters reaching a quorum.

use crate::ballot::NodeId;
use std::collections::BTreeSet;

/// The size of a quorum of `n` acceptors: a strict majority, `n / 2 + 1`. Any two quorums
/// share an acceptor, which is what makes one value chosen per instance (Paxos Made Simple
/// §2.2). The one definition every part of the workspace uses.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Distinct voters counted towards a majority of `size` acceptors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Votes {
    voters: BTreeSet<NodeId>,
}

impl Votes {
    /// No votes yet.
    pub fn new() -> Self {
        Votes::default()
    }

    /// Count `voter` once; returns true if this vote was new.
    pub fn add(&mut self, voter: NodeId) -> bool {
        self.voters.insert(voter)
    }

    /// True if `voter` has voted.
    pub fn contains(&self, voter: NodeId) -> bool {
        self.voters.contains(&voter)
    }

    /// Number of distinct voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// True if nobody voted.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// True once the votes form a majority of `acceptors` acceptors.
    pub fn is_quorum(&self, acceptors: usize) -> bool {
        self.voters.len() >= majority(acceptors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_is_more_than_half() {
        assert_eq!(
            [1, 2, 3, 4, 5, 7].map(majority),
            [1, 2, 2, 3, 3, 4],
            "n / 2 + 1 for n = 1, 2, 3, 4, 5, 7"
        );
        let mut votes = Votes::new();
        assert!(votes.is_empty());
        assert_eq!(votes.len(), 0);
        assert!(
            votes.add(NodeId(1)) && !votes.add(NodeId(1)),
            "a voter counts once"
        );
        assert!(!votes.is_empty() && votes.len() == 1);
        assert!(votes.contains(NodeId(1)) && !votes.contains(NodeId(2)));
        assert!(!votes.is_quorum(3));
        votes.add(NodeId(2));
        assert!(votes.is_quorum(3) && !votes.is_quorum(4));
    }
}
