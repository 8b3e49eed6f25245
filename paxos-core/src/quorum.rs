//! Majority arithmetic: a set of distinct voters reaching a quorum.

use crate::ballot::NodeId;
use std::collections::BTreeSet;

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
        self.voters.len() > acceptors / 2
    }
}
