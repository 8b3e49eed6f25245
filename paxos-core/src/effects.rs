//! What one step of a state machine asks the runtime to do.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::epoch::{Membership, ReconfigError};
use crate::log::{Entry, ProposalId};
use crate::message::{Envelope, Message};
use crate::read::ReadId;
use crate::session::Applied;
use crate::snapshot::{Snapshot, SnapshotMeta};
use bytes::Bytes;

/// One durable change. A [`crate::Storage`] applies a slice of them atomically, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Write<V> {
    /// The acceptor promised `ballot` (for all instances).
    Promise(Ballot),
    /// The acceptor accepted `entry` in `instance` at `ballot`.
    Accept {
        /// The instance.
        instance: InstanceId,
        /// The ballot accepted.
        ballot: Ballot,
        /// The entry accepted.
        entry: Entry<V>,
    },
    /// The proposer used or saw `round`; it must never use a round `<=` this after a restart.
    ProposerRound(u64),
    /// The learner learned that `entry` is chosen in `instance`.
    Decided {
        /// The instance.
        instance: InstanceId,
        /// The chosen entry.
        entry: Entry<V>,
    },
    /// Keep this snapshot (unless one of a higher index is kept already).
    Snapshot(Snapshot),
    /// Drop every accepted and decided entry below this instance, but never past the index of
    /// the snapshot kept. Put it in the same `save` as (or a later one than) the
    /// [`Write::Snapshot`] that covers it: one atomic step, so a crash leaves the old log or the
    /// new snapshot, never a log with a prefix gone and nothing in its place.
    TruncateBelow(InstanceId),
}

/// One line per write for logs and traces: `promise 4.2`, `accept i3 4.2 =201`, `round 4`,
/// `decided i3 =201`.
impl<V: std::fmt::Debug> std::fmt::Display for Write<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Write::Promise(b) => write!(f, "promise {b}"),
            Write::Accept {
                instance,
                ballot,
                entry,
            } => write!(f, "accept {instance} {ballot} ={entry}"),
            Write::ProposerRound(r) => write!(f, "round {r}"),
            Write::Decided { instance, entry } => write!(f, "decided {instance} ={entry}"),
            Write::Snapshot(s) => write!(f, "{}", s.meta),
            Write::TruncateBelow(i) => write!(f, "truncate below {i}"),
        }
    }
}

impl<V> Write<V> {
    /// True for a learner's record of a decision: a copy of a fact a quorum of acceptors has
    /// already made durable, which no message or reply has to wait for.
    pub fn is_decision(&self) -> bool {
        matches!(self, Write::Decided { .. })
    }
}

/// May `message` leave while `writes` (the unsaved writes of its step) are still being saved?
/// Only an `Accept`, and only when no proposer round is among the writes (see [`Effects`]).
pub(crate) fn may_leave_before_save<V>(message: &Message<V>, writes: &[Write<V>]) -> bool {
    matches!(message, Message::Accept { .. })
        && !writes.iter().any(|w| matches!(w, Write::ProposerRound(_)))
}

/// The output of one or more state-machine steps. Steps append to it, so a runtime can fold
/// many inputs into one storage write (group commit).
///
/// The rule that makes Paxos survive crashes lives in how the runtime consumes this type:
/// **every write in [`Effects::writes`] is made durable, in one atomic [`crate::Storage::save`],
/// before any message in [`Effects::messages`] leaves the node and before any decision in
/// [`Effects::decided`] is reported to a client.** State machines therefore never need a second
/// "send after persist" list: everything they emit waits for the writes of the same step.
///
/// Two exceptions, both because what leaves reveals nothing the pending writes record
/// ([`Write::is_decision`]; the runtime's `may_leave_before_save`):
/// - An `Accept` may leave while the step's writes are being saved, unless one of them is a
///   proposer round: its ballot was made durable when phase 1 started, and its value is
///   nobody's durable state yet. This lets a leader's own accept write overlap with its
///   followers' (as deployed Multi-Paxos does).
/// - A `Decided` write records a fact that a quorum of acceptors already made durable. A step
///   whose only writes are decisions may send and answer at once and let them ride along with
///   a later save; a crash before then loses only this node's copy, which catch-up restores.
#[derive(Clone, Debug, PartialEq)]
pub struct Effects<V> {
    /// Durable writes, applied atomically and in order before anything else here happens.
    pub writes: Vec<Write<V>>,
    /// Messages to send once `writes` are durable.
    pub messages: Vec<Envelope<V>>,
    /// Decisions learned, in the order learned, to report (once `writes` are durable) to
    /// whoever waits for an instance.
    pub decided: Vec<(InstanceId, Entry<V>)>,
    /// The decided prefix grew: entries applied in instance order, each with what applying
    /// it did (a request's first application, or a duplicate of an earlier one). What waits
    /// for a request (`append`) or reads the log in order is answered from here.
    pub applied: Vec<(InstanceId, Entry<V>, Applied)>,
    /// Requests this node's clients pinned to an instance (`propose_at`) that it gave up on
    /// because it lost leadership: answer them `Aborted`. The flag says whether Accepts for
    /// it were out (a later leader may still choose it).
    pub abandoned: Vec<(ProposalId, bool)>,
    /// Snapshots from peers installed, in the order installed (a step that folds several
    /// inputs may install more than one): the state machine restores each after applying
    /// `applied[..Restored::after]` and before the rest, so a later one overwrites what the
    /// entries applied between them did.
    pub restored: Vec<Restored<V>>,
    /// Reads of this node's clients ([`crate::Replica::read`]) that may be answered now, with
    /// their read index: every instance below it is applied (after this step's `applied`).
    pub reads: Vec<(ReadId, InstanceId)>,
    /// Epochs this node entered (see [`crate::Membership`]), in order: the transport adds the
    /// new members and drops the ones gone.
    pub epochs: Vec<Membership>,
    /// The end of this node's own membership change ([`crate::Replica::reconfigure`]): the
    /// epoch it made, entered here, or why it did not happen.
    pub reconfigured: Vec<Result<Membership, ReconfigError>>,
}

/// A snapshot installed in one step ([`Effects::restored`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored<V> {
    /// What it covers: everything below `meta.index` is applied now.
    pub meta: SnapshotMeta,
    /// The state machine's bytes in it.
    pub state: Bytes,
    /// Requests of this node's clients it shows applied: where, and their entry. Answer them.
    pub requests: Vec<(InstanceId, Entry<V>)>,
    /// How many entries of [`Effects::applied`] come before it.
    pub after: usize,
}

impl<V> Default for Effects<V> {
    fn default() -> Self {
        Effects {
            writes: Vec::new(),
            messages: Vec::new(),
            decided: Vec::new(),
            applied: Vec::new(),
            abandoned: Vec::new(),
            restored: Vec::new(),
            reads: Vec::new(),
            epochs: Vec::new(),
            reconfigured: Vec::new(),
        }
    }
}

impl<V> Effects<V> {
    /// No effects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `message` for `to`.
    pub fn send(&mut self, to: NodeId, message: Message<V>) {
        self.messages.push(Envelope { to, message });
    }

    /// Queue a durable write.
    pub fn write(&mut self, write: Write<V>) {
        self.writes.push(write);
    }

    /// Empty every list, keeping their allocations.
    pub fn clear(&mut self) {
        self.writes.clear();
        self.messages.clear();
        self.decided.clear();
        self.applied.clear();
        self.abandoned.clear();
        self.restored.clear();
        self.reads.clear();
        self.epochs.clear();
        self.reconfigured.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only an `Accept` may overtake the save, and not when the step persists a round (its
    /// ballot may be new); nothing an acceptor says ever overtakes it.
    #[test]
    fn only_accepts_leave_before_the_save_and_never_with_a_new_round() {
        let b = Ballot::new(1, NodeId(1));
        let i = InstanceId(0);
        let accept = Message::Accept {
            ballot: b,
            instance: i,
            entry: Entry::<u64>::Noop,
        };
        let accepted = Message::Accepted {
            ballot: b,
            instance: i,
            entry: Some(Entry::<u64>::Noop),
        };
        let own_accept = [Write::Accept {
            instance: i,
            ballot: b,
            entry: Entry::<u64>::Noop,
        }];
        assert!(may_leave_before_save(&accept, &own_accept));
        assert!(!may_leave_before_save(&accepted, &own_accept));
        let promise: Message<u64> = Message::Promise {
            ballot: b,
            first: i,
            accepted: vec![],
            more: None,
            compacted: InstanceId(0),
        };
        assert!(!may_leave_before_save(&promise, &[Write::Promise(b)]));
        let with_round = [Write::ProposerRound(1), own_accept[0].clone()];
        assert!(!may_leave_before_save(&accept, &with_round));
        assert!(
            Write::Decided {
                instance: i,
                entry: Entry::<u64>::Noop
            }
            .is_decision()
        );
        assert!(!Write::<u64>::Promise(b).is_decision());
    }

    #[test]
    fn writes_print_ballots_as_round_dot_node() {
        let b = Ballot::new(4, NodeId(2));
        let lines = [
            Write::<u64>::Promise(b).to_string(),
            Write::Accept {
                instance: InstanceId(3),
                ballot: b,
                entry: Entry::Value {
                    id: ProposalId::default(),
                    value: 201u64,
                },
            }
            .to_string(),
            Write::<u64>::ProposerRound(4).to_string(),
            Write::<u64>::Decided {
                instance: InstanceId(3),
                entry: Entry::Noop,
            }
            .to_string(),
        ];
        assert_eq!(
            lines,
            [
                "promise 4.2",
                "accept i3 4.2 =201",
                "round 4",
                "decided i3 =noop"
            ]
        );
    }
}
