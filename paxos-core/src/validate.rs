//! Input from peers and clients that no correct node sends: rejected, typed, before any rule runs.
//!
//! The protocol's arithmetic adds one to rounds and instances (a ballot above a `Nack`, the
//! instance after the highest decided). Input at the top of the `u64` range would make that
//! arithmetic overflow, so it is refused at the door: a round above [`Ballot::MAX_ROUND`] or an
//! instance above [`InstanceId::MAX`] is an [`InputError`], which the runtime logs and drops.
//! Both bounds are far beyond anything a live cluster reaches (2^48 rounds is a new leader every
//! millisecond for 8,900 years; 2^62 instances is a million decisions a second for 146,000
//! years), so refusing them loses nothing, while the room above them means `+ 1` on an accepted
//! value can never wrap.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::log::ProposalId;
use crate::message::Message;

/// Why a message or a request was refused before the protocol looked at it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A ballot's round is above [`Ballot::MAX_ROUND`].
    #[error(
        "round {round} is above the highest round allowed ({})",
        Ballot::MAX_ROUND
    )]
    RoundOutOfRange {
        /// The round received.
        round: u64,
    },
    /// A ballot's epoch is above [`Ballot::MAX_ROUND`]: a promise of it would shut out every
    /// real epoch for good.
    #[error(
        "epoch {epoch} is above the highest epoch allowed ({})",
        Ballot::MAX_ROUND
    )]
    EpochOutOfRange {
        /// The epoch received.
        epoch: u64,
    },
    /// An instance is above [`InstanceId::MAX`].
    #[error("instance {} is above the highest instance allowed ({})", .instance.0, InstanceId::MAX.0)]
    InstanceOutOfRange {
        /// The instance received.
        instance: InstanceId,
    },
    /// The sender is not a member of the cluster.
    #[error("{0} is not a member of the cluster")]
    NotAMember(NodeId),
    /// A client pinned a proposal more than `limit` instances above the decided prefix (the
    /// leader would have to fill every instance below it with a no-op).
    #[error("instance {} is more than {limit} instances above the decided prefix", .instance.0)]
    TooFarAhead {
        /// The instance asked for.
        instance: InstanceId,
        /// [`crate::Config::max_instances_ahead`].
        limit: u64,
    },
    /// A paged promise whose next page does not start above this one: asking for it again
    /// would loop for ever, and counting the promise complete would miss what it still holds.
    #[error("promise page from {} says more follows from {}", .first.0, .more.0)]
    PageDoesNotAdvance {
        /// Where the page starts.
        first: InstanceId,
        /// Where it says the next one starts.
        more: InstanceId,
    },
    /// A client pinned a proposal to an instance whose entry was compacted into a snapshot:
    /// it is decided, and what was decided there is no longer kept.
    #[error("instance {} is compacted (the log starts at {})", .instance.0, .log_start.0)]
    Compacted {
        /// The instance asked for.
        instance: InstanceId,
        /// Where the kept log starts.
        log_start: InstanceId,
    },
    /// The request is older than what its session still remembers
    /// ([`crate::Config::session_window_entries`]): it was not applied by this copy, and
    /// whether an earlier copy was is no longer known.
    #[error("request {id} expired: its session no longer remembers it")]
    SessionExpired {
        /// The request.
        id: ProposalId,
    },
    /// A message that speaks for a ballot of another node than its sender: only a ballot's
    /// own proposer asks for promises and accepts under it, confirms reads with it, or says
    /// what was chosen at it.
    #[error("{from} sent a message for {ballot}, a ballot of another node")]
    NotTheSendersBallot {
        /// The (authenticated) sender.
        from: NodeId,
        /// The ballot it named.
        ballot: Ballot,
    },
    /// A snapshot piece that reaches past the end its snapshot's metadata names.
    #[error("snapshot piece at byte {offset} of {len} bytes overruns the snapshot's {size} bytes")]
    ChunkOutOfBounds {
        /// Where the piece starts.
        offset: u64,
        /// Its length.
        len: u64,
        /// The snapshot's size.
        size: u64,
    },
}

/// Refuse `ballot` if its round or its epoch is out of range.
pub(crate) fn check_ballot(ballot: Ballot) -> Result<(), InputError> {
    if ballot.round > Ballot::MAX_ROUND {
        return Err(InputError::RoundOutOfRange {
            round: ballot.round,
        });
    }
    if ballot.epoch > Ballot::MAX_ROUND {
        return Err(InputError::EpochOutOfRange {
            epoch: ballot.epoch,
        });
    }
    Ok(())
}

/// Refuse `instance` if it is out of range.
pub(crate) fn check_instance(instance: InstanceId) -> Result<(), InputError> {
    if instance > InstanceId::MAX {
        return Err(InputError::InstanceOutOfRange { instance });
    }
    Ok(())
}

/// Refuse `message` if any ballot or instance in it is out of range.
pub(crate) fn check_message<V>(message: &Message<V>) -> Result<(), InputError> {
    match message {
        Message::Prepare { ballot, first } => {
            check_ballot(*ballot)?;
            check_instance(*first)
        }
        Message::Promise {
            ballot,
            first,
            accepted,
            more,
            compacted,
        } => {
            check_ballot(*ballot)?;
            check_instance(*first)?;
            check_instance(*compacted)?;
            if let Some(more) = *more {
                check_instance(more)?;
                if more <= *first {
                    return Err(InputError::PageDoesNotAdvance {
                        first: *first,
                        more,
                    });
                }
            }
            accepted.iter().try_for_each(|e| {
                check_ballot(e.ballot)?;
                check_instance(e.instance)
            })
        }
        Message::Accept {
            ballot, instance, ..
        }
        | Message::Accepted {
            ballot, instance, ..
        } => {
            check_ballot(*ballot)?;
            check_instance(*instance)
        }
        Message::Nack { ballot, promised } => {
            check_ballot(*ballot)?;
            check_ballot(*promised)
        }
        Message::Decided { instance, .. } => check_instance(*instance),
        Message::Chosen { ballot, instances } => {
            check_ballot(*ballot)?;
            instances.iter().try_for_each(|i| check_instance(*i))
        }
        Message::CatchUp { first } => check_instance(*first),
        Message::Forward { at, .. } => at.map_or(Ok(()), check_instance),
        Message::Heartbeat => Ok(()),
        Message::SnapshotChunk { meta, offset, data } => {
            check_ballot(meta.ballot)?;
            check_instance(meta.index)?;
            let len = data.len() as u64;
            match offset.checked_add(len) {
                Some(end) if end <= meta.size => Ok(()),
                _ => Err(InputError::ChunkOutOfBounds {
                    offset: *offset,
                    len,
                    size: meta.size,
                }),
            }
        }
        Message::SnapshotRead { index, .. } => check_instance(*index),
        Message::Confirm { ballot, .. } | Message::Confirmed { ballot, .. } => {
            check_ballot(*ballot)
        }
        Message::ReadIndex { .. } => Ok(()),
        Message::ReadAt { index, .. } => check_instance(*index),
    }
}

/// Refuse `message` from `from` if it speaks for another node's ballot. The transport
/// authenticates the sender; this ties the ballot to it, so that no node (nor anyone holding
/// one node's credentials) can spend another's ballots: promises extracted, values accepted or
/// reads confirmed in its name, or a value announced as chosen at its ballot.
pub(crate) fn check_sender<V>(from: NodeId, message: &Message<V>) -> Result<(), InputError> {
    let ballot = match message {
        Message::Prepare { ballot, .. }
        | Message::Accept { ballot, .. }
        | Message::Confirm { ballot, .. }
        | Message::Chosen { ballot, .. } => *ballot,
        _ => return Ok(()),
    };
    if ballot.node != from {
        return Err(InputError::NotTheSendersBallot { from, ballot });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Entry, ProposalId};
    use crate::message::AcceptedEntry;

    const TOP: Ballot = Ballot {
        epoch: 0,
        round: u64::MAX,
        node: NodeId(1),
    };
    const OK: Ballot = Ballot {
        epoch: 0,
        round: Ballot::MAX_ROUND,
        node: NodeId(1),
    };

    fn chunk_meta(index: InstanceId, ballot: Ballot, size: u64) -> crate::SnapshotMeta {
        crate::SnapshotMeta {
            index,
            ballot,
            size,
            checksum: 0,
        }
    }

    /// A promise page from `first` that says the next page starts at `more`.
    fn promise_page(first: u64, more: u64) -> Message<u64> {
        Message::Promise {
            ballot: OK,
            first: InstanceId(first),
            accepted: vec![],
            more: Some(InstanceId(more)),
            compacted: InstanceId(0),
        }
    }

    /// A ballot of an epoch past the bound is refused like one of a round past it; the bound
    /// itself is valid.
    #[test]
    fn out_of_range_epochs_are_refused() {
        let far = Ballot::in_epoch(Ballot::MAX_ROUND + 1, 1, NodeId(1));
        let edge = Ballot::in_epoch(Ballot::MAX_ROUND, 1, NodeId(1));
        assert_eq!(
            check_message(&Message::<u64>::Prepare {
                ballot: far,
                first: InstanceId(0)
            }),
            Err(InputError::EpochOutOfRange {
                epoch: Ballot::MAX_ROUND + 1
            })
        );
        assert_eq!(check_ballot(edge), Ok(()));
    }

    /// Every field that carries a round or an instance is checked, and the bounds themselves
    /// are still valid.
    #[test]
    fn out_of_range_rounds_and_instances_are_refused_wherever_they_appear() {
        let top = InstanceId(u64::MAX);
        let round = Err(InputError::RoundOutOfRange { round: u64::MAX });
        let instance = Err(InputError::InstanceOutOfRange { instance: top });
        let cases: Vec<(Message<u64>, Result<(), InputError>)> = vec![
            (
                Message::Nack {
                    ballot: OK,
                    promised: TOP,
                },
                round.clone(),
            ),
            (
                Message::Nack {
                    ballot: TOP,
                    promised: OK,
                },
                round.clone(),
            ),
            (
                Message::Prepare {
                    ballot: OK,
                    first: top,
                },
                instance.clone(),
            ),
            (
                Message::Promise {
                    ballot: OK,
                    first: InstanceId(0),
                    accepted: vec![AcceptedEntry {
                        instance: top,
                        ballot: OK,
                        entry: Entry::Noop,
                    }],
                    more: None,
                    compacted: InstanceId(0),
                },
                instance.clone(),
            ),
            (
                Message::Promise {
                    ballot: OK,
                    first: InstanceId(0),
                    accepted: vec![],
                    more: None,
                    compacted: top,
                },
                instance.clone(),
            ),
            (
                Message::Promise {
                    ballot: OK,
                    first: InstanceId(0),
                    accepted: vec![AcceptedEntry {
                        instance: InstanceId::MAX,
                        ballot: TOP,
                        entry: Entry::Noop,
                    }],
                    more: None,
                    compacted: InstanceId(0),
                },
                round.clone(),
            ),
            (
                Message::Accept {
                    ballot: TOP,
                    instance: InstanceId(0),
                    entry: Entry::Noop,
                },
                round.clone(),
            ),
            (
                Message::Accepted {
                    ballot: OK,
                    instance: top,
                    entry: None,
                },
                instance.clone(),
            ),
            (
                Message::Decided {
                    instance: top,
                    entry: Entry::Noop,
                },
                instance.clone(),
            ),
            (
                Message::Forward {
                    id: ProposalId::default(),
                    value: 1,
                    at: Some(top),
                },
                instance.clone(),
            ),
            (
                Message::Chosen {
                    ballot: OK,
                    instances: vec![InstanceId(1), top],
                },
                instance.clone(),
            ),
            (Message::CatchUp { first: top }, instance.clone()),
            (
                Message::SnapshotRead {
                    index: top,
                    offset: 0,
                },
                instance.clone(),
            ),
            (
                Message::SnapshotChunk {
                    meta: chunk_meta(top, OK, 4),
                    offset: 0,
                    data: bytes::Bytes::new(),
                },
                instance.clone(),
            ),
            (
                Message::SnapshotChunk {
                    meta: chunk_meta(InstanceId(1), TOP, 4),
                    offset: 0,
                    data: bytes::Bytes::new(),
                },
                round.clone(),
            ),
            (
                Message::SnapshotChunk {
                    meta: chunk_meta(InstanceId(1), OK, 4),
                    offset: 2,
                    data: bytes::Bytes::from_static(b"abc"),
                },
                Err(InputError::ChunkOutOfBounds {
                    offset: 2,
                    len: 3,
                    size: 4,
                }),
            ),
            (
                Message::SnapshotChunk {
                    meta: chunk_meta(InstanceId(1), OK, 4),
                    offset: u64::MAX,
                    data: bytes::Bytes::from_static(b"a"),
                },
                Err(InputError::ChunkOutOfBounds {
                    offset: u64::MAX,
                    len: 1,
                    size: 4,
                }),
            ),
            (
                Message::SnapshotChunk {
                    meta: chunk_meta(InstanceId(1), OK, 4),
                    offset: 1,
                    data: bytes::Bytes::from_static(b"abc"),
                },
                Ok(()),
            ),
            (
                Message::Decided {
                    instance: InstanceId::MAX,
                    entry: Entry::Noop,
                },
                Ok(()),
            ),
            (
                Message::Prepare {
                    ballot: OK,
                    first: InstanceId::MAX,
                },
                Ok(()),
            ),
            (Message::Heartbeat, Ok(())),
            (
                promise_page(5, 5),
                Err(InputError::PageDoesNotAdvance {
                    first: InstanceId(5),
                    more: InstanceId(5),
                }),
            ),
            (
                promise_page(5, 4),
                Err(InputError::PageDoesNotAdvance {
                    first: InstanceId(5),
                    more: InstanceId(4),
                }),
            ),
            (promise_page(5, 6), Ok(())),
        ];
        for (message, expected) in cases {
            assert_eq!(check_message(&message), expected, "{message:?}");
        }
    }

    /// Only a ballot's proposer sends what speaks for it (Prepare, Accept, Confirm, Chosen);
    /// answers carry the asker's ballot (Promise, Nack, Confirmed), and `Accepted` goes to
    /// every learner with the proposer's, so those may name anyone.
    #[test]
    fn a_ballot_is_spoken_for_only_by_its_node() {
        let (n1, n2) = (NodeId(1), NodeId(2));
        let b1 = Ballot::new(3, n1);
        let speaks: Vec<Message<u64>> = vec![
            Message::Prepare {
                ballot: b1,
                first: InstanceId(0),
            },
            Message::Accept {
                ballot: b1,
                instance: InstanceId(0),
                entry: Entry::Noop,
            },
            Message::Confirm { ballot: b1, seq: 1 },
            Message::Chosen {
                ballot: b1,
                instances: vec![InstanceId(0)],
            },
        ];
        for m in &speaks {
            assert_eq!(check_sender(n1, m), Ok(()), "{m:?}");
            assert_eq!(
                check_sender(n2, m),
                Err(InputError::NotTheSendersBallot {
                    from: n2,
                    ballot: b1
                }),
                "{m:?}"
            );
        }
        let answers: Vec<Message<u64>> = vec![
            Message::Promise {
                ballot: b1,
                first: InstanceId(0),
                accepted: vec![],
                more: None,
                compacted: InstanceId(0),
            },
            Message::Nack {
                ballot: b1,
                promised: b1,
            },
            Message::Confirmed { ballot: b1, seq: 1 },
            Message::Accepted {
                ballot: b1,
                instance: InstanceId(0),
                entry: None,
            },
        ];
        for m in &answers {
            assert_eq!(check_sender(n2, m), Ok(()), "{m:?}");
        }
    }
}
