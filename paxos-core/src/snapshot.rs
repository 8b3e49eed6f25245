//! Snapshots: the applied state of a log prefix, so the prefix itself can be dropped.
//!
//! A [`Snapshot`] holds the state of every instance below [`SnapshotMeta::index`] as opaque
//! bytes, with the metadata a receiver needs to trust them: where the log resumes, the size and
//! a CRC-32 checksum of the bytes. Storage keeps the latest one ([`crate::Write::Snapshot`]) and
//! may then drop the entries it covers ([`crate::Write::TruncateBelow`]); a node whose next
//! needed instance was dropped everywhere is sent the snapshot instead.
//!
//! The checksum is checked wherever bytes arrive from outside the process (a backend reading
//! its disk, a node receiving a transfer): a torn or damaged snapshot is a typed error
//! ([`SnapshotError`]), never a state machine restored from garbage.

use crate::ballot::{Ballot, InstanceId};
use crate::epoch::Epochs;
use crate::session::Sessions;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a snapshot covers and how to check its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The snapshot holds the applied state of every instance below this one: the log resumes
    /// here.
    pub index: InstanceId,
    /// The promise of the node that took it, when it took it. A node that installs the
    /// snapshot never proposes at or below it.
    pub ballot: Ballot,
    /// The length of the bytes.
    pub size: u64,
    /// CRC-32 (IEEE) of the bytes.
    pub checksum: u32,
}

/// A snapshot: its metadata and its bytes (cheap to clone: the bytes are shared).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The state, encoded by whoever took it.
    pub data: Bytes,
}

/// Bytes that do not match their snapshot's metadata.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Fewer or more bytes than the metadata says (a torn write or transfer).
    #[error("snapshot at {index} has {found} bytes, its metadata says {expected}")]
    Size {
        /// The snapshot's index.
        index: InstanceId,
        /// Bytes present.
        found: u64,
        /// Bytes the metadata names.
        expected: u64,
    },
    /// The bytes are intact but are not a snapshot this build reads (written by another
    /// version, or by a buggy peer).
    #[error("snapshot at {index} cannot be decoded: {reason}")]
    Undecodable {
        /// The snapshot's index.
        index: InstanceId,
        /// Why.
        reason: String,
    },
    /// The bytes do not hash to the metadata's checksum (damaged).
    #[error("snapshot at {index} has checksum {found:#010x}, its metadata says {expected:#010x}")]
    Checksum {
        /// The snapshot's index.
        index: InstanceId,
        /// The bytes' checksum.
        found: u32,
        /// The checksum the metadata names.
        expected: u32,
    },
}

impl Snapshot {
    /// The snapshot of everything below `index`, taken under `ballot`, holding `data`.
    pub fn new(index: InstanceId, ballot: Ballot, data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Snapshot {
            meta: SnapshotMeta {
                index,
                ballot,
                size: data.len() as u64,
                checksum: crc32fast::hash(&data),
            },
            data,
        }
    }

    /// Check the bytes against the metadata.
    ///
    /// # Errors
    /// [`SnapshotError::Size`] or [`SnapshotError::Checksum`].
    pub fn verify(&self) -> Result<(), SnapshotError> {
        let found = self.data.len() as u64;
        if found != self.meta.size {
            return Err(SnapshotError::Size {
                index: self.meta.index,
                found,
                expected: self.meta.size,
            });
        }
        let checksum = crc32fast::hash(&self.data);
        if checksum != self.meta.checksum {
            return Err(SnapshotError::Checksum {
                index: self.meta.index,
                found: checksum,
                expected: self.meta.checksum,
            });
        }
        Ok(())
    }
}

/// What a node's snapshot holds: the sessions (the replicated dedupe state, so exactly-once
/// survives compaction) and the state machine's own bytes, postcard-encoded together.
/// Payload version 3 (the first byte): sessions with a window and the epochs (the membership
/// is part of the replicated state). Version 2, without the epochs, is read as a cluster that
/// never changed its membership; version 1, sessions without a window and no version byte, is
/// refused as undecodable.
#[derive(Serialize)]
struct PayloadRef<'a> {
    version: u8,
    sessions: &'a Sessions,
    state: &'a Bytes,
    epochs: &'a Epochs,
}

#[derive(Deserialize)]
struct Payload {
    version: u8,
    sessions: Sessions,
    state: Bytes,
}

/// See [`PayloadRef`].
const PAYLOAD_VERSION: u8 = 3;

/// The bytes of a node's snapshot: `sessions`, the state machine's `state` and the `epochs`.
pub(crate) fn encode_payload(sessions: &Sessions, state: &Bytes, epochs: &Epochs) -> Bytes {
    // Encoding plain data into a Vec cannot fail (postcard fails only on writer errors and
    // unsupported types, neither of which occurs here); an empty payload is refused on decode.
    postcard::to_allocvec(&PayloadRef {
        version: PAYLOAD_VERSION,
        sessions,
        state,
        epochs,
    })
    .map(Bytes::from)
    .unwrap_or_default()
}

/// What a snapshot's payload holds: the sessions, the state machine's bytes and the epochs
/// (`None` from a payload of version 2: no change was ever made).
pub(crate) type DecodedPayload = (Sessions, Bytes, Option<Epochs>);

/// The sessions, state machine bytes and epochs of `snapshot` (already verified).
///
/// # Errors
/// [`SnapshotError::Undecodable`].
pub(crate) fn decode_payload(snapshot: &Snapshot) -> Result<DecodedPayload, SnapshotError> {
    let undecodable = |reason: String| SnapshotError::Undecodable {
        index: snapshot.meta.index,
        reason,
    };
    let (payload, rest) = postcard::take_from_bytes::<Payload>(&snapshot.data)
        .map_err(|e| undecodable(e.to_string()))?;
    let (epochs, rest) = match payload.version {
        PAYLOAD_VERSION => {
            let (epochs, rest) = postcard::take_from_bytes::<Epochs>(rest)
                .map_err(|e| undecodable(e.to_string()))?;
            (Some(epochs), rest)
        }
        2 => (None, rest),
        other => {
            return Err(undecodable(format!(
                "payload version {other}, this build reads {PAYLOAD_VERSION} and 2"
            )));
        }
    };
    if !rest.is_empty() {
        return Err(undecodable(format!("{} trailing bytes", rest.len())));
    }
    Ok((payload.sessions, payload.state, epochs))
}

/// `snapshot below i7 (12 bytes)`.
impl fmt::Display for SnapshotMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snapshot below {} ({} bytes)", self.index, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::NodeId;

    /// Sessions and state come back as encoded; bytes that are not a payload are a typed error.
    #[test]
    fn payloads_round_trip_and_garbage_is_undecodable() {
        let mut sessions = Sessions::new();
        let entry = crate::log::Entry::Value {
            id: crate::log::ProposalId::default(),
            value: 1u64,
        };
        sessions.apply(InstanceId(4), &entry);
        let state = Bytes::from_static(b"kv");
        let config = crate::Config::symmetric(NodeId(1), [1, 2, 3].map(NodeId));
        let epochs = Epochs::initial(&config);
        let encoded = encode_payload(&sessions, &state, &epochs);
        let s = Snapshot::new(InstanceId(5), Ballot::ZERO, encoded.clone());
        assert_eq!(
            decode_payload(&s),
            Ok((sessions.clone(), state.clone(), Some(epochs)))
        );
        // Version 2: the same without the epochs.
        let v2 = postcard::to_allocvec(&(2u8, &sessions, &state)).expect("encodes");
        let s = Snapshot::new(InstanceId(5), Ballot::ZERO, v2);
        assert_eq!(
            decode_payload(&s),
            Ok((sessions.clone(), state.clone(), None))
        );
        let mut longer = encoded.to_vec();
        longer.push(0);
        let mut other_version = encoded.to_vec();
        other_version[0] = 1;
        for bad in [
            Bytes::new(),
            Bytes::from(longer),
            Bytes::from(other_version),
        ] {
            let s = Snapshot::new(InstanceId(5), Ballot::ZERO, bad);
            assert!(matches!(
                decode_payload(&s),
                Err(SnapshotError::Undecodable {
                    index: InstanceId(5),
                    ..
                })
            ));
        }
    }

    /// Torn (short) and damaged bytes are told apart, and an intact snapshot passes.
    #[test]
    fn verify_catches_torn_and_damaged_bytes() {
        let s = Snapshot::new(InstanceId(7), Ballot::new(2, NodeId(1)), b"state".to_vec());
        assert_eq!(s.meta.size, 5);
        assert_eq!(s.verify(), Ok(()));
        assert_eq!(s.meta.to_string(), "snapshot below i7 (5 bytes)");
        let torn = Snapshot {
            data: s.data.slice(..4),
            ..s.clone()
        };
        assert_eq!(
            torn.verify(),
            Err(SnapshotError::Size {
                index: InstanceId(7),
                found: 4,
                expected: 5
            })
        );
        let damaged = Snapshot {
            data: Bytes::from_static(b"stave"),
            ..s.clone()
        };
        assert!(matches!(
            damaged.verify(),
            Err(SnapshotError::Checksum { expected, .. }) if expected == s.meta.checksum
        ));
    }
}
