//! Snapshot transfer: the latest snapshot, piece by piece, to a node that needs instances its
//! peers compacted.
//!
//! The receiver drives it, stop-and-wait: a peer that cannot answer a `CatchUp` with
//! decisions (they are compacted) sends the first piece of its snapshot; the receiver asks
//! for each next piece with `SnapshotRead` once it holds the previous one. So at most one
//! piece per transfer is in flight, and the receiver's buffer never holds more than the
//! snapshot's declared size, which must be within [`crate::Config::max_snapshot_bytes`]
//! (openraft #507, OmniPaxos `LogSync`: a whole snapshot in one message does not scale).
//!
//! A lost piece or request is asked for again after a phase timeout of silence; after
//! [`GIVE_UP_AFTER`] silent timeouts the transfer is dropped, and the next catch-up starts one
//! with whoever answers. A piece of a *newer* snapshot (a higher index) restarts the transfer
//! on it; pieces of another snapshot, or not at the next offset, are ignored. Only a complete
//! snapshot whose bytes match its checksum is handed over for install.

use crate::ballot::{InstanceId, NodeId};
use crate::effects::Effects;
use crate::message::Message;
use crate::snapshot::{Snapshot, SnapshotMeta};
use bytes::Bytes;

/// Silent phase timeouts after which a transfer is dropped.
pub(crate) const GIVE_UP_AFTER: u32 = 4;

/// A snapshot being received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Incoming {
    /// Who serves it (pieces are asked of them).
    from: NodeId,
    meta: SnapshotMeta,
    /// The bytes so far, in order.
    data: Vec<u8>,
    /// Ticks since the last piece arrived (or the last request went out).
    quiet: u64,
    /// Requests sent again after a silence, since the last piece.
    retries: u32,
}

/// What became of one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Not for the transfer in progress (or for nothing this node needs).
    Ignored,
    /// Taken; the next one was asked for.
    Taken,
    /// The last piece: the whole snapshot, its checksum verified.
    Complete(Snapshot),
}

/// The receiving side of snapshot transfers: at most one at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Receiver {
    incoming: Option<Incoming>,
    max_bytes: u64,
    timeout: u64,
}

impl Receiver {
    /// Snapshots up to `max_bytes`; a silence of `timeout` ticks means a loss.
    pub(crate) fn new(max_bytes: u64, timeout: u64) -> Self {
        Receiver {
            incoming: None,
            max_bytes,
            timeout: timeout.max(1),
        }
    }

    /// The snapshot being received, if any.
    pub(crate) fn receiving(&self) -> Option<SnapshotMeta> {
        self.incoming.as_ref().map(|i| i.meta)
    }

    /// A piece from `from` of the snapshot `meta`, starting at byte `offset` (already checked
    /// to lie within `meta.size`), on a node that has applied every instance below `applied`.
    pub(crate) fn on_chunk<V>(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        applied: InstanceId,
        out: &mut Effects<V>,
    ) -> Piece {
        if meta.index <= applied {
            return Piece::Ignored;
        }
        if meta.size > self.max_bytes {
            tracing::warn!(%from, %meta, limit = self.max_bytes, "snapshot larger than max_snapshot_bytes refused");
            return Piece::Ignored;
        }
        let newer = self
            .incoming
            .as_ref()
            .is_none_or(|i| meta.index > i.meta.index);
        if newer {
            if offset != 0 {
                return Piece::Ignored;
            }
            tracing::info!(%from, %meta, "receiving a snapshot");
            self.incoming = Some(Incoming {
                from,
                meta,
                data: Vec::new(),
                quiet: 0,
                retries: 0,
            });
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return Piece::Ignored;
        };
        if incoming.meta != meta || offset != incoming.data.len() as u64 {
            return Piece::Ignored;
        }
        incoming.data.extend_from_slice(&data);
        incoming.quiet = 0;
        incoming.retries = 0;
        incoming.from = from;
        if (incoming.data.len() as u64) < meta.size {
            out.send(
                from,
                Message::SnapshotRead {
                    index: meta.index,
                    offset: incoming.data.len() as u64,
                },
            );
            return Piece::Taken;
        }
        let Some(done) = self.incoming.take() else {
            return Piece::Ignored;
        };
        let snapshot = Snapshot {
            meta,
            data: Bytes::from(done.data),
        };
        match snapshot.verify() {
            Ok(()) => Piece::Complete(snapshot),
            Err(e) => {
                tracing::warn!(%from, error = %e, "received snapshot is damaged; dropped");
                Piece::Ignored
            }
        }
    }

    /// One tick: after a silence, ask again for the piece awaited; give up after
    /// [`GIVE_UP_AFTER`] silences. A transfer no longer needed (`applied` reached its index
    /// by other means) is dropped.
    pub(crate) fn tick<V>(&mut self, applied: InstanceId, out: &mut Effects<V>) {
        let Some(incoming) = self.incoming.as_mut() else {
            return;
        };
        if incoming.meta.index <= applied {
            self.incoming = None;
            return;
        }
        incoming.quiet += 1;
        if incoming.quiet < self.timeout {
            return;
        }
        incoming.quiet = 0;
        incoming.retries += 1;
        if incoming.retries > GIVE_UP_AFTER {
            tracing::info!(from = %incoming.from, meta = %incoming.meta, "snapshot transfer given up");
            self.incoming = None;
            return;
        }
        out.send(
            incoming.from,
            Message::SnapshotRead {
                index: incoming.meta.index,
                offset: incoming.data.len() as u64,
            },
        );
    }
}

/// The piece of `snapshot` that starts at `offset`, at most `max` bytes (at least one byte
/// while any remain), as a message. An offset at or past the end gives an empty piece at the
/// end (the receiver ignores it).
pub(crate) fn piece<V>(snapshot: &Snapshot, offset: u64, max: usize) -> Message<V> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(snapshot.data.len());
    let end = start.saturating_add(max.max(1)).min(snapshot.data.len());
    Message::SnapshotChunk {
        meta: snapshot.meta,
        offset: start as u64,
        data: snapshot.data.slice(start..end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::Ballot;
    use crate::message::Envelope;

    fn snapshot(index: u64, len: usize) -> Snapshot {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + index as usize) as u8).collect();
        Snapshot::new(InstanceId(index), Ballot::new(1, NodeId(2)), data)
    }

    /// Feed `message` (a piece) to `r`.
    fn feed(r: &mut Receiver, from: u64, message: Message<u64>, out: &mut Effects<u64>) -> Piece {
        let Message::SnapshotChunk { meta, offset, data } = message else {
            panic!("a piece");
        };
        r.on_chunk(NodeId(from), meta, offset, data, InstanceId(0), out)
    }

    fn reads(out: &Effects<u64>) -> Vec<(u64, u64)> {
        out.messages
            .iter()
            .filter_map(|Envelope { to, message }| match message {
                Message::SnapshotRead { offset, .. } => Some((to.0, *offset)),
                _ => None,
            })
            .collect()
    }

    /// Piece by piece, each asked for once the previous one is held, into the whole snapshot.
    #[test]
    fn a_snapshot_arrives_in_pieces_asked_for_one_at_a_time() {
        let s = snapshot(9, 10);
        let mut r = Receiver::new(100, 5);
        let mut out = Effects::new();
        assert_eq!(feed(&mut r, 2, piece(&s, 0, 4), &mut out), Piece::Taken);
        assert_eq!(feed(&mut r, 2, piece(&s, 4, 4), &mut out), Piece::Taken);
        assert_eq!(reads(&out), vec![(2, 4), (2, 8)]);
        assert_eq!(r.receiving(), Some(s.meta));
        assert_eq!(
            feed(&mut r, 2, piece(&s, 8, 4), &mut out),
            Piece::Complete(s.clone())
        );
        assert_eq!(r.receiving(), None);
    }

    /// Out-of-order, duplicate and foreign pieces are ignored; a piece of a newer snapshot
    /// restarts the transfer on it; one of an older snapshot, or one the node has applied
    /// past, or one above the size limit, changes nothing.
    #[test]
    fn only_the_next_piece_of_the_newest_snapshot_counts() {
        let old = snapshot(5, 6);
        let new = snapshot(8, 6);
        let mut r = Receiver::new(100, 5);
        let mut out = Effects::new();
        assert_eq!(feed(&mut r, 2, piece(&old, 2, 2), &mut out), Piece::Ignored);
        assert_eq!(feed(&mut r, 2, piece(&old, 0, 2), &mut out), Piece::Taken);
        assert_eq!(feed(&mut r, 2, piece(&old, 0, 2), &mut out), Piece::Ignored);
        assert_eq!(feed(&mut r, 3, piece(&old, 4, 2), &mut out), Piece::Ignored);
        assert_eq!(feed(&mut r, 3, piece(&new, 0, 3), &mut out), Piece::Taken);
        assert_eq!(r.receiving(), Some(new.meta));
        assert_eq!(feed(&mut r, 2, piece(&old, 2, 2), &mut out), Piece::Ignored);
        assert_eq!(
            feed(&mut r, 3, piece(&new, 3, 3), &mut out),
            Piece::Complete(new.clone())
        );
        let Message::SnapshotChunk { meta, data, .. } = piece::<u64>(&new, 0, 6) else {
            unreachable!()
        };
        let mut out = Effects::<u64>::new();
        assert_eq!(
            r.on_chunk(NodeId(2), meta, 0, data.clone(), InstanceId(8), &mut out),
            Piece::Ignored,
            "applied past it"
        );
        let mut small = Receiver::new(5, 5);
        assert_eq!(
            small.on_chunk(NodeId(2), meta, 0, data.clone(), InstanceId(0), &mut out),
            Piece::Ignored,
            "above the size limit"
        );
        assert_eq!(out, Effects::new());
        let mut exact = Receiver::new(6, 5);
        assert_eq!(
            exact.on_chunk(NodeId(2), meta, 0, data, InstanceId(0), &mut out),
            Piece::Complete(new),
            "at the size limit"
        );
    }

    /// Bytes that do not match the checksum are never handed over.
    #[test]
    fn a_damaged_snapshot_is_dropped() {
        let mut s = snapshot(3, 4);
        s.data = Bytes::from_static(b"evil");
        let mut r = Receiver::new(100, 5);
        assert_eq!(
            feed(&mut r, 2, piece(&s, 0, 8), &mut Effects::new()),
            Piece::Ignored
        );
        assert_eq!(r.receiving(), None);
    }

    /// A silence of a timeout asks again for the piece awaited; after GIVE_UP_AFTER silences
    /// the transfer is dropped; one overtaken by the node's progress is dropped at once.
    #[test]
    fn a_lost_piece_is_asked_for_again_then_given_up() {
        let s = snapshot(9, 10);
        let mut r = Receiver::new(100, 3);
        feed(&mut r, 2, piece(&s, 0, 4), &mut Effects::new());
        let mut out = Effects::new();
        for _ in 0..3 * GIVE_UP_AFTER {
            r.tick(InstanceId(0), &mut out);
        }
        assert_eq!(reads(&out), vec![(2, 4); GIVE_UP_AFTER as usize]);
        assert_eq!(r.receiving(), Some(s.meta));
        let mut out = Effects::new();
        for _ in 0..3 {
            r.tick(InstanceId(0), &mut out);
        }
        assert_eq!(reads(&out), vec![]);
        assert_eq!(r.receiving(), None, "given up");
        feed(&mut r, 2, piece(&s, 0, 4), &mut Effects::new());
        r.tick(InstanceId(9), &mut Effects::<u64>::new());
        assert_eq!(r.receiving(), None, "no longer needed");
    }

    /// Pieces are at most `max` bytes, at least one, and an offset past the end is an empty
    /// piece at the end.
    #[test]
    fn pieces_are_bounded_and_never_overrun() {
        let s = snapshot(1, 5);
        let len = |m: Message<u64>| match m {
            Message::SnapshotChunk { offset, data, .. } => (offset, data.len()),
            _ => unreachable!(),
        };
        assert_eq!(len(piece(&s, 0, 2)), (0, 2));
        assert_eq!(len(piece(&s, 4, 2)), (4, 1));
        assert_eq!(len(piece(&s, 0, 0)), (0, 1));
        assert_eq!(len(piece(&s, 99, 2)), (5, 0));
        assert_eq!(len(piece(&s, u64::MAX, 2)), (5, 0));
    }
}
