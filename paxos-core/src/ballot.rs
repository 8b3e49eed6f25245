//! Identifiers: nodes, instances (log slots) and ballots.
//!
//! A [`Ballot`] is `(round, node)`, compared round first, then node. Because every proposer owns
//! its node id, two proposers can never produce the same ballot; because a proposer persists the
//! highest round it used or saw before sending a ballot (see [`crate::Proposer`]), it never
//! reuses one after a restart either.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity in the cluster. Unique and stable across restarts.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// One slot of the replicated log: an independent single-decree Paxos instance.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId(pub u64);

impl InstanceId {
    /// The highest instance a node accepts from a peer or a client (2^62; see
    /// [`crate::InputError`]). Anything above is refused, so `next()` of an accepted instance
    /// never overflows.
    pub const MAX: InstanceId = InstanceId(1 << 62);

    /// The instance after this one (saturating: it never wraps to 0).
    pub fn next(self) -> InstanceId {
        InstanceId(self.0.saturating_add(1))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// A proposal number: totally ordered by `epoch`, then `round`, then `node`.
///
/// Field order is comparison order, so the derived `Ord` is the protocol order and agrees with
/// `Eq`. Printed as `round.node`, like the Go log (`4.2` is round 4 of proposer 2), with the
/// epoch in front once the membership has changed (`e1:4.2`).
///
/// The epoch (see [`crate::Membership`]) comes first so that every ballot of a newer
/// configuration is above every ballot of an older one: an acceptor that joined a newer epoch
/// refuses the older epoch's proposers with a `Nack` that names the newer epoch, which is how
/// a straggler learns the configuration changed.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// The configuration this ballot belongs to; 0 until the membership first changes.
    pub epoch: u64,
    /// Monotone counter; the part a proposer raises to get above a competitor.
    pub round: u64,
    /// The proposer that owns this ballot; makes ballots unique across proposers.
    pub node: NodeId,
}

impl Ballot {
    /// The smallest ballot; nothing is promised or accepted at it.
    pub const ZERO: Ballot = Ballot {
        epoch: 0,
        round: 0,
        node: NodeId(0),
    };

    /// The highest round a node accepts from a peer (2^48; see [`crate::InputError`]). A
    /// proposer climbs one round above what it saw, so this leaves room that never wraps.
    pub const MAX_ROUND: u64 = 1 << 48;

    /// A ballot of `node` at `round`, in epoch 0.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot::in_epoch(0, round, node)
    }

    /// A ballot of `node` at `round` in `epoch`.
    pub fn in_epoch(epoch: u64, round: u64, node: NodeId) -> Ballot {
        Ballot { epoch, round, node }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch > 0 {
            write!(f, "e{}:", self.epoch)?;
        }
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

// `Debug` prints what `Display` prints (`n1`, `i3`, `4.2`), so that every place an id or a
// ballot is printed, `{:?}` of a list or a failed assertion included, reads like the seed logs.
macro_rules! debug_as_display {
    ($($ty:ty),+) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )+};
}
debug_as_display!(NodeId, InstanceId, Ballot);

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
        assert_eq!(Ballot::new(4, NodeId(2)).to_string(), "4.2");
    }

    /// Any ballot of a later epoch is above every ballot of an earlier one, whatever the rounds.
    #[test]
    fn a_later_epoch_outranks_any_round() {
        let old = Ballot::new(Ballot::MAX_ROUND, NodeId(9));
        let new = Ballot::in_epoch(1, 1, NodeId(1));
        assert!(old < new);
        assert_eq!(new.to_string(), "e1:1.1");
    }

    /// `{:?}` prints ids and ballots as the logs do, not as structs.
    #[test]
    fn debug_reads_like_the_logs() {
        let b = Ballot::new(4, NodeId(2));
        assert_eq!(
            format!("{:?}", (NodeId(1), InstanceId(3), [b])),
            "(n1, i3, [4.2])"
        );
    }

    /// `+ 1` at the top of the range saturates instead of wrapping to 0 (which would make an
    /// instance go backwards).
    #[test]
    fn successors_never_wrap() {
        assert_eq!(InstanceId(u64::MAX).next(), InstanceId(u64::MAX));
        assert_eq!(InstanceId(7).next(), InstanceId(8));
    }
}
