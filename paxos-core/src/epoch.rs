//! Membership change: configurations ([`Membership`], one per epoch) and the hand-off from one
//! epoch to the next, in one continuous log.
//!
//! The shape is Stoppable Paxos / Vertical Paxos with the window of "Paxos Made Moderately
//! Complex": every epoch is plain static Multi-Paxos over its own acceptors, so every rule of
//! the other modules holds inside it unchanged. Only the hand-off is new:
//!
//! 1. A change is an [`Entry::Reconfigure`] decided in the log like any value. The first one
//!    decided in epoch `e` (at instance `k`) ends the epoch and names epoch `e + 1`. Any later
//!    reconfiguration entry of epoch `e` changes nothing (one change at a time).
//! 2. No proposer of epoch `e` ever proposes more than `window` instances above the prefix it
//!    knows decided ([`Membership::window`], the proposer's pipeline bound). So when the entry at
//!    `k` is decided, no epoch-`e` proposal can exist at or above `k + window`: epoch `e + 1`
//!    starts exactly there. Instances `k + 1 .. k + window` are still
//!    epoch `e`'s: its leader fills them (clients' values first, then no-ops), so a client
//!    write in flight during a change is decided and acknowledged as any other.
//! 3. A node enters epoch `e + 1` once it has applied every instance below its start: the new
//!    epoch starts from exactly the decided prefix, and nothing of epoch `e` can be chosen
//!    above it. Its ballots carry `e + 1` ([`crate::Ballot::epoch`]), above every ballot of
//!    epoch `e`, so its acceptors refuse epoch-`e` stragglers with a `Nack` that names the new
//!    epoch, and a new epoch's phase 1 never sees an old epoch's votes (there are none above
//!    the start).
//!
//! Without the window (the next epoch starting right after `k`) an old leader's pipelined value
//! at `k + 1` can be chosen by the old acceptors while the new ones choose another.
//!
//! The replica proposes changes ([`crate::Replica::reconfigure`]) and enters epochs; the
//! runtime answers the caller of [`crate::NodeHandle::reconfigure`] once the new epoch is in
//! force here and hands the new peers to the transport ([`crate::Transport::set_peers`]).
//!
//! New acceptors first join as learners (they catch up by snapshot and log tail), and only a
//! later change makes them acceptors: [`Membership::next`] refuses an acceptor that is not a
//! learner of the current epoch. Node ids are never reused: every id a change removes is
//! retired for good.

use crate::ballot::{InstanceId, NodeId};
use crate::config::Config;
use crate::log::Entry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One epoch's configuration: who is in the cluster and what each member does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Membership {
    /// The epoch; 0 is the configuration the cluster started with.
    pub epoch: u64,
    /// Every member (any of them may propose).
    pub nodes: BTreeSet<NodeId>,
    /// The acceptors; a majority of them is a quorum in this epoch.
    pub acceptors: BTreeSet<NodeId>,
    /// The learners; every decision reaches all of them. A node joining the cluster is a
    /// learner before it is an acceptor.
    pub learners: BTreeSet<NodeId>,
    /// A proposer never proposes more than this many instances above the prefix it knows
    /// decided ([`Config::max_instances_ahead`] of epoch 0); the next epoch starts this many
    /// instances after the entry that ends this one.
    pub window: u64,
    /// Ids removed by earlier changes: never members again.
    pub retired: BTreeSet<NodeId>,
    /// Where members listen, as the transport names them (`"host:port"`), for the members a
    /// change named an address for. Opaque to the protocol: the runtime hands them to the
    /// transport ([`crate::Transport::set_peers`]), which knows the others from its own
    /// configuration. The one place a live cluster learns where a new node is.
    pub addresses: BTreeMap<NodeId, String>,
}

/// The roles a change asks for (the next epoch's number, window and retired ids follow from
/// the current one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberChange {
    /// The acceptors of the next epoch.
    pub acceptors: BTreeSet<NodeId>,
    /// Its learners besides the acceptors (nodes catching up to become acceptors, or
    /// observers).
    pub learners: BTreeSet<NodeId>,
    /// Where members listen ([`Membership::addresses`]): needed for a node the peers'
    /// transports do not know yet; an address given again replaces the old one.
    pub addresses: BTreeMap<NodeId, String>,
}

impl MemberChange {
    /// Acceptors that are also the learners, plus non-voting `learners`.
    pub fn new(
        acceptors: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        MemberChange {
            acceptors: acceptors.into_iter().collect(),
            learners: learners.into_iter().collect(),
            addresses: BTreeMap::new(),
        }
    }

    /// The change also says where `node` listens.
    pub fn with_address(mut self, node: NodeId, address: impl Into<String>) -> Self {
        self.addresses.insert(node, address.into());
        self
    }
}

/// Longest address a change may name, in bytes (a host name and a port fit many times over).
pub const MAX_ADDRESS_LEN: usize = 255;

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconfigError {
    /// The change names no acceptor.
    #[error("a configuration needs at least one acceptor")]
    NoAcceptors,
    /// An id a change removed earlier: reusing it would let the old node's state (its votes,
    /// its promises) count as the new node's.
    #[error("{0} was removed from the cluster earlier; node ids are never reused")]
    IdReused(NodeId),
    /// A new acceptor that is not a learner of the current epoch: it must first join as a
    /// learner and catch up, or the new epoch could wait on a quorum that holds nothing.
    #[error("{0} must join as a learner (and catch up) before it becomes an acceptor")]
    NotALearnerYet(NodeId),
    /// Another change is in flight or decided and not yet in effect.
    #[error("a membership change is already in progress (towards epoch {0})")]
    ChangeInProgress(u64),
    /// The change asks for the configuration already in force.
    #[error("the cluster already has this configuration (epoch {0})")]
    Unchanged(u64),
    /// This node does not propose (it is not the leader): ask the leader.
    #[error("not the leader; ask {0:?}")]
    NotLeader(Option<NodeId>),
    /// Another change was decided first (or the request's instance got another entry): the
    /// cluster moved on without this one. Look at the configuration now and decide again.
    #[error("another entry was decided where this change was proposed; it did not happen")]
    Superseded,
    /// The cluster's learner strategy names its learners by id
    /// ([`crate::LearnerStrategy::Distinguished`]), which a change could leave dangling.
    #[error("membership changes need the all-to-all or the leader learner strategy")]
    DistinguishedLearners,
    /// No epoch is left (the epoch counter is at its bound).
    #[error("no epoch is left above {0}")]
    Exhausted(u64),
    /// An address for a node the change does not make a member, or one that is empty or
    /// longer than [`MAX_ADDRESS_LEN`].
    #[error(
        "bad address for {0}: it must name a member of the new configuration, non-empty and at most {MAX_ADDRESS_LEN} bytes"
    )]
    BadAddress(NodeId),
}

impl Membership {
    /// Epoch 0: the configuration a cluster starts with.
    pub fn initial(config: &Config) -> Self {
        Membership {
            epoch: 0,
            nodes: config.nodes.clone(),
            acceptors: config.acceptors.clone(),
            learners: config.learners.clone(),
            window: config.max_instances_ahead.max(1),
            retired: BTreeSet::new(),
            addresses: BTreeMap::new(),
        }
    }

    /// The configuration `change` asks for, as the epoch after this one: acceptors are
    /// learners too; the ids this removes are retired.
    ///
    /// # Errors
    /// No acceptor, a retired id, an acceptor that is not a learner now, or nothing changes.
    pub fn next(&self, change: &MemberChange) -> Result<Membership, ReconfigError> {
        if change.acceptors.is_empty() {
            return Err(ReconfigError::NoAcceptors);
        }
        let learners: BTreeSet<NodeId> =
            change.acceptors.union(&change.learners).copied().collect();
        if let Some(&id) = learners.iter().find(|id| self.retired.contains(id)) {
            return Err(ReconfigError::IdReused(id));
        }
        if let Some(&id) = change
            .acceptors
            .iter()
            .find(|id| !self.acceptors.contains(id) && !self.learners.contains(id))
        {
            return Err(ReconfigError::NotALearnerYet(id));
        }
        if let Some((&id, _)) = change.addresses.iter().find(|(id, address)| {
            !learners.contains(id) || address.is_empty() || address.len() > MAX_ADDRESS_LEN
        }) {
            return Err(ReconfigError::BadAddress(id));
        }
        if change.acceptors == self.acceptors && learners == self.learners {
            return Err(ReconfigError::Unchanged(self.epoch));
        }
        let epoch = self
            .epoch
            .checked_add(1)
            .filter(|e| *e <= crate::Ballot::MAX_ROUND)
            .ok_or(ReconfigError::Exhausted(self.epoch))?;
        let mut retired = self.retired.clone();
        retired.extend(self.nodes.difference(&learners));
        let mut addresses = self.addresses.clone();
        addresses.retain(|id, _| learners.contains(id));
        addresses.extend(change.addresses.clone());
        Ok(Membership {
            epoch,
            nodes: learners.clone(),
            acceptors: change.acceptors.clone(),
            learners,
            window: self.window,
            retired,
            addresses,
        })
    }

    /// `base` with this epoch's members and roles: what each role of the epoch is built from.
    pub fn apply_to(&self, base: &Config) -> Config {
        Config {
            nodes: self.nodes.clone(),
            acceptors: self.acceptors.clone(),
            learners: self.learners.clone(),
            max_instances_ahead: self.window,
            ..base.clone()
        }
    }

    /// True if `node` is a member.
    pub fn contains(&self, node: NodeId) -> bool {
        self.nodes.contains(&node)
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}: acceptors {:?}", self.epoch, self.acceptors)?;
        let others: Vec<_> = self.learners.difference(&self.acceptors).collect();
        if !others.is_empty() {
            write!(f, ", learners {others:?}")?;
        }
        Ok(())
    }
}

/// Rules 1 and 2 of the module doc, for the applied log ([`Epochs`]) and the proposer alike:
/// if `entry`, decided at `instance`, is a change that ends `epoch` (which started at
/// `start` and proposes within `window`), where the next epoch starts and what it is. A change
/// below the start, or naming an epoch other than the next, ends nothing.
pub(crate) fn ends_epoch<V>(
    entry: &Entry<V>,
    instance: InstanceId,
    (epoch, start, window): (u64, InstanceId, u64),
) -> Option<(InstanceId, &Membership)> {
    let Entry::Reconfigure(next) = entry else {
        return None;
    };
    if instance < start || Some(next.epoch) != epoch.checked_add(1) {
        return None;
    }
    Some((InstanceId(instance.0.saturating_add(window)), next))
}

/// A node's view of the epochs: the one in force here, where it started, and the next one
/// once a change is decided. Follows the applied log, so every node that applied the same
/// prefix holds the same view.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Epochs {
    /// The configuration in force.
    current: Membership,
    /// The first instance of the current epoch.
    start: InstanceId,
    /// The next configuration and the instance it starts at, once decided.
    next: Option<(InstanceId, Membership)>,
    /// The previous epoch's members: they may still ask for the decided prefix (a straggler
    /// learns the change that way, a removed node that it is out).
    previous: BTreeSet<NodeId>,
}

impl Epochs {
    /// A cluster's start: epoch 0 from instance 0.
    pub fn initial(config: &Config) -> Self {
        Epochs {
            current: Membership::initial(config),
            start: InstanceId(0),
            next: None,
            previous: BTreeSet::new(),
        }
    }

    /// The configuration in force here.
    pub fn current(&self) -> &Membership {
        &self.current
    }

    /// The first instance of the current epoch.
    pub fn start(&self) -> InstanceId {
        self.start
    }

    /// The next configuration and where it starts, once a change is decided.
    pub fn next(&self) -> Option<&(InstanceId, Membership)> {
        self.next.as_ref()
    }

    /// True if `node` may talk to this node: a member now, or of the previous epoch.
    pub fn knows(&self, node: NodeId) -> bool {
        self.current.contains(node) || self.previous.contains(&node)
    }

    /// Every node this one talks to ([`crate::Transport::set_peers`]): the members now and of
    /// the previous epoch (stragglers catch up from it), with the address a change named for
    /// each; `me` left out.
    pub fn peers(&self, me: NodeId) -> crate::transport::Peers {
        self.current
            .nodes
            .iter()
            .chain(&self.previous)
            .filter(|&&id| id != me)
            .map(|&id| (id, self.current.addresses.get(&id).cloned()))
            .collect()
    }

    /// `entry` was applied at `instance`: if it is the first change of the current epoch, the
    /// next epoch is decided. Returns true if it was.
    pub fn on_applied<V>(&mut self, instance: InstanceId, entry: &Entry<V>) -> bool {
        self.on_applied_within(instance, entry, self.current.window)
    }

    /// [`Epochs::on_applied`] with the next epoch starting `window` instances after the
    /// change: only a test's broken hand-off passes anything but the epoch's own window.
    pub(crate) fn on_applied_within<V>(
        &mut self,
        instance: InstanceId,
        entry: &Entry<V>,
        window: u64,
    ) -> bool {
        if self.next.is_some() {
            return false;
        }
        let current = (self.current.epoch, self.start, window);
        let Some((start, next)) = ends_epoch(entry, instance, current) else {
            return false;
        };
        self.next = Some((start, next.clone()));
        true
    }

    /// Every instance below `applied` is applied here: enter the next epoch if it starts at or
    /// below it, and return it.
    pub fn enter_due(&mut self, applied: InstanceId) -> Option<&Membership> {
        match &self.next {
            Some((start, _)) if *start <= applied => {
                let (start, next) = self.next.take()?;
                self.previous = std::mem::replace(&mut self.current, next).nodes;
                self.start = start;
                Some(&self.current)
            }
            _ => None,
        }
    }

    /// A snapshot's view replaces this one if it is further on (installing a snapshot skips
    /// the entries that changed it).
    pub fn adopt(&mut self, other: Epochs) -> bool {
        let further =
            (other.current.epoch, other.next.is_some()) > (self.current.epoch, self.next.is_some());
        if further {
            *self = other;
        }
        further
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(xs: &[u64]) -> BTreeSet<NodeId> {
        xs.iter().copied().map(NodeId).collect()
    }

    fn three() -> Membership {
        let config = Config::symmetric(NodeId(1), [1, 2, 3].map(NodeId));
        Membership::initial(&config)
    }

    #[test]
    fn a_change_makes_the_next_epoch_and_retires_who_it_removes() {
        let with_learner = three()
            .next(&MemberChange::new([1, 2, 3].map(NodeId), [NodeId(4)]))
            .expect("a learner joins");
        assert_eq!(with_learner.epoch, 1);
        assert_eq!(with_learner.nodes, ids(&[1, 2, 3, 4]));
        assert_eq!(with_learner.acceptors, ids(&[1, 2, 3]));
        let replaced = with_learner
            .next(&MemberChange::new([2, 3, 4].map(NodeId), []))
            .expect("the learner becomes an acceptor, n1 leaves");
        assert_eq!((replaced.epoch, replaced.retired.clone()), (2, ids(&[1])));
        assert_eq!(
            replaced.next(&MemberChange::new([1, 2, 3].map(NodeId), [])),
            Err(ReconfigError::IdReused(NodeId(1)))
        );
        assert_eq!(replaced.to_string(), "epoch 2: acceptors {n2, n3, n4}");
    }

    #[test]
    fn refused_changes_are_typed() {
        let m = three();
        assert_eq!(
            m.next(&MemberChange::new([1, 2, 9].map(NodeId), [])),
            Err(ReconfigError::NotALearnerYet(NodeId(9)))
        );
        assert_eq!(
            m.next(&MemberChange::new([], [NodeId(1)])),
            Err(ReconfigError::NoAcceptors)
        );
        assert_eq!(
            m.next(&MemberChange::new([1, 2, 3].map(NodeId), [])),
            Err(ReconfigError::Unchanged(0))
        );
    }

    #[test]
    fn the_next_epoch_starts_a_window_after_the_change_and_only_the_first_change_counts() {
        let config = Config::symmetric(NodeId(1), [1, 2, 3].map(NodeId));
        let mut epochs = Epochs::initial(&config);
        let window = epochs.current().window;
        let next = three()
            .next(&MemberChange::new([1, 2].map(NodeId), []))
            .expect("valid");
        let other = three()
            .next(&MemberChange::new([2, 3].map(NodeId), []))
            .expect("valid");
        assert!(!epochs.on_applied(InstanceId(4), &Entry::<u64>::Noop));
        assert!(epochs.on_applied(InstanceId(5), &Entry::<u64>::Reconfigure(next.clone())));
        assert!(
            !epochs.on_applied(InstanceId(6), &Entry::<u64>::Reconfigure(other)),
            "a second change of the same epoch changes nothing"
        );
        let start = InstanceId(5 + window);
        assert_eq!(epochs.next(), Some(&(start, next.clone())));
        assert_eq!(epochs.enter_due(InstanceId(start.0 - 1)), None);
        assert!(epochs.knows(NodeId(3)));
        assert_eq!(epochs.enter_due(start), Some(&next));
        assert_eq!(epochs.start(), start);
        assert!(epochs.knows(NodeId(3)), "n3 may still catch up");
        assert!(!epochs.current().contains(NodeId(3)));
        assert!(
            !epochs.on_applied(start, &Entry::<u64>::Reconfigure(next)),
            "a change naming an epoch that is not the next is void"
        );
        let last = (u64::MAX, InstanceId(0), 1);
        assert_eq!(
            ends_epoch(&Entry::<u64>::Reconfigure(three()), InstanceId(1), last),
            None,
            "no epoch follows the last one (and nothing overflows)"
        );
    }
}
