//! The protocol's messages: what one node sends another.
//!
//! Paper names (Paxos Made Simple): `Prepare` = 1a, `Promise` = 1b, `Accept` = 2a,
//! `Accepted` = 2b. `Nack` tells a proposer which higher ballot beat it, so it can jump straight
//! above it. `Decided` spreads a chosen value; `Heartbeat` feeds the leader detector;
//! `CatchUp` lets a node that missed decisions ask for them; `SnapshotChunk` and
//! `SnapshotRead` move a snapshot, piece by piece, to a node that needs compacted instances.
//! `Confirm`/`Confirmed` let a leader check that its ballot still stands (ReadIndex), and
//! `ReadIndex`/`ReadAt` carry a follower's read to the leader and its read index back.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::log::{Entry, ProposalId};
use crate::read::ReadId;
use crate::snapshot::SnapshotMeta;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Anything a node can put on the wire as a value: cheap to clone, comparable, serializable.
///
/// Blanket-implemented; you never implement it by hand.
pub trait Value:
    Clone
    + std::fmt::Debug
    + PartialEq
    + Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<T> Value for T where
    T: Clone
        + std::fmt::Debug
        + PartialEq
        + Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// An entry an acceptor has accepted in one instance, reported in a [`Message::Promise`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AcceptedEntry<V> {
    /// The instance.
    pub instance: InstanceId,
    /// The ballot the entry was accepted at.
    pub ballot: Ballot,
    /// The accepted entry.
    pub entry: Entry<V>,
}

/// A protocol message. `V` is the application's value type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Message<V> {
    /// Phase 1a: "promise me `ballot` for every instance from `first` on". At a ballot the
    /// acceptor already promised, it asks for the page of accepted entries from `first`.
    Prepare {
        /// The proposer's ballot.
        ballot: Ballot,
        /// Lowest instance the proposer does not know to be decided (or the next page).
        first: InstanceId,
    },
    /// Phase 1b: the acceptor promised `ballot` and reports one page of what it accepted from
    /// `first` on.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The `first` of the prepare this answers: where the page starts.
        first: InstanceId,
        /// The entries this acceptor accepted in instances `>= first`, in instance order, up
        /// to the page budget.
        accepted: Vec<AcceptedEntry<V>>,
        /// `None` if the page holds everything from `first` on; otherwise the instance where
        /// the next page starts (ask with `Prepare` at the same ballot).
        more: Option<InstanceId>,
        /// The acceptor dropped its log below this instance (a snapshot covers it): every
        /// instance below is chosen, and what it accepted there is no longer reported. The
        /// proposer must not propose below it (a no-op there could be chosen over the value
        /// a quorum chose, by acceptors that did not compact yet). 0 if nothing was dropped.
        compacted: InstanceId,
    },
    /// Phase 2a: "accept `entry` in `instance` at `ballot`".
    Accept {
        /// The proposer's ballot.
        ballot: Ballot,
        /// The instance.
        instance: InstanceId,
        /// The entry proposed.
        entry: Entry<V>,
    },
    /// Phase 2b: the acceptor accepted `entry` in `instance` at `ballot`.
    /// Sent to the proposer and to the learners of the cluster's learner strategy.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The instance.
        instance: InstanceId,
        /// The entry accepted, which learners need to learn without the proposer; `None` under
        /// [`crate::LearnerStrategy::Leader`], where only the proposer, who holds it, is told.
        entry: Option<Entry<V>>,
    },
    /// The acceptor refused `ballot` because it promised the higher `promised`.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The ballot the acceptor has promised; the proposer must go above it.
        promised: Ballot,
    },
    /// `entry` is chosen in `instance`. Sent only by a node that knows it is chosen.
    Decided {
        /// The instance.
        instance: InstanceId,
        /// The chosen entry.
        entry: Entry<V>,
    },
    /// "Each of `instances` is chosen with the value I proposed in it at `ballot`", from the
    /// proposer of `ballot`, which counted a quorum of `Accepted` for each. A learner that
    /// accepted `(ballot, v)` in such an instance learns `v` (only one value is ever proposed
    /// per instance at one ballot); one that did not catches up. Sent under
    /// [`crate::LearnerStrategy::Leader`] instead of `Decided`, to carry no values.
    Chosen {
        /// The proposer's ballot.
        ballot: Ballot,
        /// The instances chosen at that ballot.
        instances: Vec<InstanceId>,
    },
    /// Leader-detector heartbeat: "I am alive".
    Heartbeat,
    /// "I know every decision below `first`; send me what you know from there on."
    CatchUp {
        /// Lowest instance the sender has not decided.
        first: InstanceId,
    },
    /// From a node that is not the leader to the one it trusts as leader: "put this client
    /// request in the log" (in instance `at`, if the client named one). The sender learns the
    /// outcome from the decisions, and sends it again to whoever leads if it does not come.
    Forward {
        /// The request.
        id: ProposalId,
        /// Its value.
        value: V,
        /// The instance the client asked for (`propose_at`), or `None` for the next free one.
        at: Option<InstanceId>,
    },
    /// A piece of the sender's latest snapshot, for a node that needs instances the sender
    /// compacted: the answer to a `CatchUp` from below the sender's log start (offset 0), or
    /// to a `SnapshotRead`. Pieces are at most [`crate::Config::snapshot_chunk_bytes`] long.
    SnapshotChunk {
        /// The snapshot the piece belongs to.
        meta: SnapshotMeta,
        /// Where the piece starts in the snapshot's bytes.
        offset: u64,
        /// The piece.
        data: Bytes,
    },
    /// "Send me the piece of your snapshot below `index` that starts at `offset`": the next
    /// piece of a transfer, or the same one again after a loss.
    SnapshotRead {
        /// The snapshot's index.
        index: InstanceId,
        /// Where the piece starts.
        offset: u64,
    },
    /// From a leader to the acceptors: "have you promised anything above `ballot`?" (one
    /// round of ReadIndex confirmations, see `read.rs`).
    Confirm {
        /// The leader's ballot.
        ballot: Ballot,
        /// The round.
        seq: u64,
    },
    /// "No ballot above `ballot` promised here" (the answer to `Confirm`; a higher promise
    /// is answered with `Nack` instead).
    Confirmed {
        /// The ballot confirmed.
        ballot: Ballot,
        /// The round.
        seq: u64,
    },
    /// From a node to the leader it trusts: "give me a read index for my read `id`".
    ReadIndex {
        /// The sender's read.
        id: ReadId,
    },
    /// The leader's answer to `ReadIndex`: read `id` may be answered once the sender has
    /// applied every instance below `index`.
    ReadAt {
        /// The read.
        id: ReadId,
        /// Its read index.
        index: InstanceId,
    },
}

impl<V> Message<V> {
    /// A short name for logs and traces (`prepare 1.2`, `accept i3 1.2`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Nack { .. } => "nack",
            Message::Decided { .. } => "decided",
            Message::Chosen { .. } => "chosen",
            Message::Heartbeat => "heartbeat",
            Message::CatchUp { .. } => "catch-up",
            Message::Forward { .. } => "forward",
            Message::SnapshotChunk { .. } => "snapshot-chunk",
            Message::SnapshotRead { .. } => "snapshot-read",
            Message::Confirm { .. } => "confirm",
            Message::Confirmed { .. } => "confirmed",
            Message::ReadIndex { .. } => "read-index",
            Message::ReadAt { .. } => "read-at",
        }
    }
}

/// One line per message for logs and traces, ballots as `round.node`: `prepare 4.2 from i3`,
/// `accept i3 4.2 =201`, `nack 1.1 < 4.2`. Values print with their `Debug` form.
impl<V: std::fmt::Debug> std::fmt::Display for Message<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Prepare { ballot, first } => write!(f, "prepare {ballot} from {first}"),
            Message::Promise {
                ballot,
                first,
                accepted,
                more,
                compacted,
            } => {
                write!(
                    f,
                    "promise {ballot} from {first} ({} accepted",
                    accepted.len()
                )?;
                if *compacted > InstanceId(0) {
                    write!(f, ", compacted below {compacted}")?;
                }
                match more {
                    Some(next) => write!(f, ", more from {next})"),
                    None => f.write_str(")"),
                }
            }
            Message::Accept {
                ballot,
                instance,
                entry,
            } => write!(f, "accept {instance} {ballot} ={entry}"),
            Message::Accepted {
                ballot,
                instance,
                entry: Some(entry),
            } => write!(f, "accepted {instance} {ballot} ={entry}"),
            Message::Accepted {
                ballot,
                instance,
                entry: None,
            } => write!(f, "accepted {instance} {ballot}"),
            Message::Nack { ballot, promised } => write!(f, "nack {ballot} < {promised}"),
            Message::Decided { instance, entry } => write!(f, "decided {instance} ={entry}"),
            Message::Chosen { ballot, instances } => {
                write!(f, "chosen {ballot}")?;
                for i in instances {
                    write!(f, " {i}")?;
                }
                Ok(())
            }
            Message::Heartbeat => f.write_str("heartbeat"),
            Message::CatchUp { first } => write!(f, "catch-up from {first}"),
            Message::Forward { id, value, at } => match at {
                Some(at) => write!(f, "forward {id} ={value:?} to {at}"),
                None => write!(f, "forward {id} ={value:?}"),
            },
            Message::SnapshotChunk { meta, offset, data } => write!(
                f,
                "{meta}: bytes {offset}..{}",
                offset.saturating_add(data.len() as u64)
            ),
            Message::SnapshotRead { index, offset } => {
                write!(f, "read snapshot below {index} from byte {offset}")
            }
            Message::Confirm { ballot, seq } => write!(f, "confirm {ballot} round {seq}"),
            Message::Confirmed { ballot, seq } => write!(f, "confirmed {ballot} round {seq}"),
            Message::ReadIndex { id } => write!(f, "read index for {id}"),
            Message::ReadAt { id, index } => write!(f, "read {id} at {index}"),
        }
    }
}

/// A message with its addressee, as produced by a state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Envelope<V> {
    /// Who should receive it.
    pub to: NodeId,
    /// What to send.
    pub message: Message<V>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ballots print as `round.node` and instances as `iN` in every message line.
    #[test]
    fn messages_print_ballots_as_round_dot_node() {
        let b = Ballot::new(4, NodeId(2));
        let lines = [
            Message::<u64>::Prepare {
                ballot: b,
                first: InstanceId(3),
            }
            .to_string(),
            Message::Accept {
                ballot: b,
                instance: InstanceId(3),
                entry: Entry::Value {
                    id: ProposalId::default(),
                    value: 201u64,
                },
            }
            .to_string(),
            Message::<u64>::Nack {
                ballot: Ballot::new(1, NodeId(1)),
                promised: b,
            }
            .to_string(),
            Message::<u64>::Chosen {
                ballot: b,
                instances: vec![InstanceId(1), InstanceId(2)],
            }
            .to_string(),
        ];
        assert_eq!(
            lines,
            [
                "prepare 4.2 from i3",
                "accept i3 4.2 =201",
                "nack 1.1 < 4.2",
                "chosen 4.2 i1 i2"
            ]
        );
    }
}
