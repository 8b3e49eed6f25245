//! The one versioned on-disk encoding of a [`DurableState`]: keys, records and the format marker.
//!
//! A [`DurableState`] is stored as one key/value record per field (and per instance), so a
//! step's writes touch only the few keys they change. The layout is documented in
//! [`crate::rocks`]; this module is its only implementation. Decoding never panics and never
//! turns bad bytes into a default value: every failure is a [`StorageError::Corrupt`] naming the
//! key, or a [`StorageError::Version`] for a store written by another format.

use paxos_core::{Ballot, DurableState, Entry, InstanceId, Snapshot, StorageError, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// The store format this build reads and writes, kept under [`Key::Format`].
pub(crate) const FORMAT_VERSION: u32 = 4;

/// The older formats this build upgrades (format 3 only added keys to format 2; format 4
/// ballots carry an epoch, so every record holding a ballot is rewritten: see
/// [`decode_legacy_into`]).
pub(crate) const UPGRADES_FROM: [u32; 2] = [2, 3];

/// A ballot as formats 2 and 3 stored it: no epoch (so epoch 0).
#[derive(serde::Deserialize)]
struct LegacyBallot {
    round: u64,
    node: paxos_core::NodeId,
}

impl From<LegacyBallot> for Ballot {
    fn from(b: LegacyBallot) -> Self {
        Ballot::new(b.round, b.node)
    }
}

/// A snapshot as formats 2 and 3 stored it (its metadata's ballot without an epoch).
#[derive(serde::Deserialize)]
struct LegacySnapshot {
    index: InstanceId,
    ballot: LegacyBallot,
    size: u64,
    checksum: u32,
    /// Postcard writes `Bytes` and `Vec<u8>` alike (a length, then the bytes).
    data: Vec<u8>,
}

/// The first byte of every record value: the version of the record encoding that follows.
const RECORD_VERSION: u8 = 1;

const FORMAT_KEY: &[u8] = b"meta/format";
const PROMISED_KEY: &[u8] = b"acc/promised";
const ROUND_KEY: &[u8] = b"prop/round";
const ACCEPTED_PREFIX: &[u8] = b"acc/accepted/";
const DECIDED_PREFIX: &[u8] = b"decided/";
const LOG_START_KEY: &[u8] = b"log/start";
const SNAPSHOT_KEY: &[u8] = b"snap/latest";

/// One key of the layout. Ordered (for sets of touched keys), printed readably.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    /// `meta/format`: the format version, `u32` big-endian.
    Format,
    /// `acc/promised`: the acceptor's promise.
    Promised,
    /// `prop/round`: the proposer's highest round.
    ProposerRound,
    /// `acc/accepted/<instance>`: the accepted `(ballot, value)` of an instance.
    Accepted(InstanceId),
    /// `decided/<instance>`: the decided value of an instance.
    Decided(InstanceId),
    /// `log/start`: the log was dropped below this instance.
    LogStart,
    /// `snap/latest`: the snapshot kept, metadata and bytes.
    Snapshot,
}

impl Key {
    /// The key's bytes. Instances are big-endian so keys sort in instance order.
    pub(crate) fn encode(self) -> Vec<u8> {
        match self {
            Key::Format => FORMAT_KEY.to_vec(),
            Key::Promised => PROMISED_KEY.to_vec(),
            Key::ProposerRound => ROUND_KEY.to_vec(),
            Key::Accepted(i) => [ACCEPTED_PREFIX, &i.0.to_be_bytes()].concat(),
            Key::Decided(i) => [DECIDED_PREFIX, &i.0.to_be_bytes()].concat(),
            Key::LogStart => LOG_START_KEY.to_vec(),
            Key::Snapshot => SNAPSHOT_KEY.to_vec(),
        }
    }

    /// The key `bytes` encode, or `None` for bytes outside the layout.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Key> {
        let instance = |rest: &[u8]| -> Option<InstanceId> {
            Some(InstanceId(u64::from_be_bytes(rest.try_into().ok()?)))
        };
        match bytes {
            FORMAT_KEY => Some(Key::Format),
            PROMISED_KEY => Some(Key::Promised),
            ROUND_KEY => Some(Key::ProposerRound),
            LOG_START_KEY => Some(Key::LogStart),
            SNAPSHOT_KEY => Some(Key::Snapshot),
            _ => {
                if let Some(rest) = bytes.strip_prefix(ACCEPTED_PREFIX) {
                    instance(rest).map(Key::Accepted)
                } else if let Some(rest) = bytes.strip_prefix(DECIDED_PREFIX) {
                    instance(rest).map(Key::Decided)
                } else {
                    None
                }
            }
        }
    }

    /// What the key holds, in [`StorageError::Backend`]'s `subject` words.
    pub(crate) fn subject(self) -> String {
        match self {
            Key::Format => "format version".to_string(),
            Key::Promised => "promise".to_string(),
            Key::ProposerRound => "proposer round".to_string(),
            Key::Accepted(i) => format!("accepted {i}"),
            Key::Decided(i) => format!("decided {i}"),
            Key::LogStart => "log start".to_string(),
            Key::Snapshot => "snapshot".to_string(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Format | Key::Promised | Key::ProposerRound | Key::LogStart | Key::Snapshot => {
                f.write_str(&String::from_utf8_lossy(&self.encode()))
            }
            Key::Accepted(i) => write!(f, "acc/accepted/{}", i.0),
            Key::Decided(i) => write!(f, "decided/{}", i.0),
        }
    }
}

/// A raw key printed readably: its layout name if it has one, else escaped bytes.
pub(crate) fn display_raw_key(bytes: &[u8]) -> String {
    match Key::decode(bytes) {
        Some(key) => key.to_string(),
        None => bytes.escape_ascii().to_string(),
    }
}

fn corrupt(key: impl fmt::Display, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The value stored under [`Key::Format`].
pub(crate) fn encode_format() -> [u8; 4] {
    FORMAT_VERSION.to_be_bytes()
}

/// The version a stored format marker names.
///
/// # Errors
/// [`StorageError::Corrupt`] if it is not a 4-byte big-endian `u32`.
pub(crate) fn format_of(bytes: &[u8]) -> Result<u32, StorageError> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| {
            corrupt(
                Key::Format,
                format!("expected a 4-byte version, found {} bytes", bytes.len()),
            )
        })
}

/// Check the stored format marker.
///
/// # Errors
/// [`StorageError::Version`] for another version, [`StorageError::Corrupt`] if it is not a
/// 4-byte big-endian `u32`.
pub(crate) fn check_format(bytes: &[u8]) -> Result<(), StorageError> {
    let found = format_of(bytes)?;
    if found == FORMAT_VERSION {
        Ok(())
    } else {
        Err(StorageError::Version {
            found,
            expected: FORMAT_VERSION,
        })
    }
}

/// `[RECORD_VERSION] ++ postcard(value)`.
///
/// # Errors
/// The value's `Serialize` implementation failed.
fn encode_record<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_extend(value, vec![RECORD_VERSION])
}

/// The inverse of [`encode_record`]; every byte must be consumed.
fn decode_record<T: DeserializeOwned>(key: Key, bytes: &[u8]) -> Result<T, StorageError> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| corrupt(key, "empty record"))?;
    if *version != RECORD_VERSION {
        return Err(corrupt(
            key,
            format!("unknown record version {version} (this build reads {RECORD_VERSION})"),
        ));
    }
    let (value, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|e| corrupt(key, format!("undecodable record: {e}")))?;
    if !rest.is_empty() {
        return Err(corrupt(
            key,
            format!("{} trailing bytes after the record", rest.len()),
        ));
    }
    Ok(value)
}

/// The record `state` holds under `key`, or `None` if the key has no value in `state`
/// (an instance never accepted / decided; the format marker is not a record).
///
/// # Errors
/// The value's `Serialize` implementation failed.
pub(crate) fn encode_field<V: Value>(
    state: &DurableState<V>,
    key: Key,
) -> Result<Option<Vec<u8>>, postcard::Error> {
    match key {
        Key::Format => Ok(None),
        Key::Promised => encode_record(&state.promised).map(Some),
        Key::ProposerRound => encode_record(&state.proposer_round).map(Some),
        Key::Accepted(i) => state.accepted.get(&i).map(encode_record).transpose(),
        Key::Decided(i) => state.decided.get(&i).map(encode_record).transpose(),
        Key::LogStart => encode_record(&state.log_start).map(Some),
        Key::Snapshot => state.snapshot.as_ref().map(encode_record).transpose(),
    }
}

/// Decode one stored `(key, value)` pair into `state`. The format marker must have been checked
/// with [`check_format`] already and is skipped here.
///
/// # Errors
/// [`StorageError::Corrupt`] for a key outside the layout or an undecodable value.
pub(crate) fn decode_into<V: Value>(
    state: &mut DurableState<V>,
    key: &[u8],
    value: &[u8],
) -> Result<(), StorageError> {
    let key = Key::decode(key)
        .ok_or_else(|| corrupt(display_raw_key(key), "key is not part of the layout"))?;
    match key {
        Key::Format => {}
        Key::Promised => state.promised = decode_record::<Ballot>(key, value)?,
        Key::ProposerRound => state.proposer_round = decode_record::<u64>(key, value)?,
        Key::Accepted(i) => {
            let pair = decode_record::<(Ballot, Entry<V>)>(key, value)?;
            state.accepted.insert(i, pair);
        }
        Key::Decided(i) => {
            let v = decode_record::<Entry<V>>(key, value)?;
            state.decided.insert(i, v);
        }
        Key::LogStart => state.log_start = decode_record::<InstanceId>(key, value)?,
        Key::Snapshot => {
            let snapshot = decode_record::<Snapshot>(key, value)?;
            snapshot.verify().map_err(|e| corrupt(key, e.to_string()))?;
            state.snapshot = Some(snapshot);
        }
    }
    Ok(())
}

/// [`decode_into`] for a store of format 2 or 3, whose ballots have no epoch: each is read as
/// a ballot of epoch 0. The caller rewrites the records in the current format.
///
/// # Errors
/// As [`decode_into`].
pub(crate) fn decode_legacy_into<V: Value>(
    state: &mut DurableState<V>,
    key: &[u8],
    value: &[u8],
) -> Result<(), StorageError> {
    match Key::decode(key) {
        Some(key @ Key::Promised) => {
            state.promised = decode_record::<LegacyBallot>(key, value)?.into();
        }
        Some(key @ Key::Accepted(i)) => {
            let (ballot, entry) = decode_record::<(LegacyBallot, Entry<V>)>(key, value)?;
            state.accepted.insert(i, (ballot.into(), entry));
        }
        Some(key @ Key::Snapshot) => {
            let old = decode_record::<LegacySnapshot>(key, value)?;
            let snapshot = Snapshot {
                meta: paxos_core::SnapshotMeta {
                    index: old.index,
                    ballot: old.ballot.into(),
                    size: old.size,
                    checksum: old.checksum,
                },
                data: old.data.into(),
            };
            snapshot.verify().map_err(|e| corrupt(key, e.to_string()))?;
            state.snapshot = Some(snapshot);
        }
        _ => decode_into(state, key, value)?,
    }
    Ok(())
}

/// Checks across records, once every record is decoded: the log is never dropped past the
/// snapshot kept, and nothing below the log start survives.
///
/// # Errors
/// [`StorageError::Corrupt`] naming the log-start key.
pub(crate) fn check_whole<V>(state: &DurableState<V>) -> Result<(), StorageError> {
    if state.log_start > state.snapshot_index() {
        return Err(corrupt(
            Key::LogStart,
            format!(
                "the log starts at {} but the snapshot kept covers only below {}",
                state.log_start,
                state.snapshot_index()
            ),
        ));
    }
    let below = |first: Option<&InstanceId>| first.is_some_and(|i| *i < state.log_start);
    if below(state.accepted.keys().next()) || below(state.decided.keys().next()) {
        return Err(corrupt(
            Key::LogStart,
            format!("entries below the log start {} remain", state.log_start),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::NodeId;

    fn state() -> DurableState<String> {
        DurableState {
            promised: Ballot::new(7, NodeId(3)),
            proposer_round: 9,
            accepted: [(
                InstanceId(u64::MAX),
                (
                    Ballot::new(2, NodeId(1)),
                    Entry::Value {
                        id: paxos_core::ProposalId::default(),
                        value: "a".into(),
                    },
                ),
            )]
            .into(),
            decided: [(InstanceId(3), Entry::Noop)].into(),
            snapshot: Some(Snapshot::new(
                InstanceId(3),
                Ballot::new(7, NodeId(3)),
                b"i0-i2".to_vec(),
            )),
            log_start: InstanceId(2),
        }
    }

    fn keys() -> [Key; 6] {
        [
            Key::Promised,
            Key::ProposerRound,
            Key::Accepted(InstanceId(u64::MAX)),
            Key::Decided(InstanceId(3)),
            Key::LogStart,
            Key::Snapshot,
        ]
    }

    #[test]
    fn every_field_round_trips() {
        let s = state();
        let mut back = DurableState::default();
        for key in keys() {
            let bytes = encode_field(&s, key).unwrap().unwrap();
            decode_into(&mut back, &key.encode(), &bytes).unwrap();
        }
        assert_eq!(back, s);
        assert!(check_whole(&back).is_ok());
    }

    /// A snapshot record whose bytes do not match its metadata is corrupt, and so is a log
    /// start past the snapshot or an entry left below it.
    #[test]
    fn damaged_snapshots_and_inconsistent_log_starts_are_corrupt() {
        let s = state();
        let mut bytes = encode_field(&s, Key::Snapshot).unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        let mut into = DurableState::<String>::default();
        match decode_into(&mut into, &Key::Snapshot.encode(), &bytes) {
            Err(StorageError::Corrupt { key, reason }) => {
                assert_eq!(key, "snap/latest");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("a damaged snapshot decoded as {other:?}"),
        }
        let past = DurableState::<String> {
            log_start: InstanceId(4),
            ..s.clone()
        };
        let left_below = DurableState::<String> {
            decided: [(InstanceId(1), Entry::Noop)].into(),
            ..s
        };
        for bad in [past, left_below] {
            assert!(matches!(
                check_whole(&bad),
                Err(StorageError::Corrupt { key, .. }) if key == "log/start"
            ));
        }
    }

    #[test]
    fn keys_round_trip_and_sort_by_instance() {
        for key in keys().into_iter().chain([Key::Format]) {
            assert_eq!(Key::decode(&key.encode()), Some(key));
        }
        assert!(Key::Accepted(InstanceId(255)).encode() < Key::Accepted(InstanceId(256)).encode());
        assert_eq!(Key::Accepted(InstanceId(4)).to_string(), "acc/accepted/4");
        assert_eq!(Key::decode(b"acc/accepted/123"), None);
        assert_eq!(display_raw_key(b"x\xff"), "x\\xff");
    }

    #[test]
    fn bad_records_are_corrupt_and_name_their_key() {
        let s = state();
        let good = encode_field(&s, Key::Accepted(InstanceId(5)))
            .unwrap()
            .is_none();
        assert!(good, "instance 5 has no record");
        let key = Key::Accepted(InstanceId(u64::MAX)).encode();
        let bytes = encode_field(&s, Key::Accepted(InstanceId(u64::MAX)))
            .unwrap()
            .unwrap();
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        let mut trailing = bytes.clone();
        trailing.push(0);
        let truncated = &bytes[..bytes.len() - 1];
        let bad_records: [&[u8]; 5] = [&[], &wrong_version, &trailing, truncated, &[1, 0xff]];
        for bad in bad_records {
            let mut into = DurableState::<String>::default();
            match decode_into(&mut into, &key, bad) {
                Err(StorageError::Corrupt { key, .. }) => {
                    assert_eq!(key, format!("acc/accepted/{}", u64::MAX))
                }
                other => panic!("{bad:?} decoded as {other:?}"),
            }
        }
        let mut into = DurableState::<String>::default();
        assert!(matches!(
            decode_into(&mut into, b"nope", &bytes),
            Err(StorageError::Corrupt { key, .. }) if key == "nope"
        ));
    }

    #[test]
    fn format_marker_is_checked() {
        assert!(check_format(&encode_format()).is_ok());
        assert!(matches!(
            check_format(&1u32.to_be_bytes()),
            Err(StorageError::Version {
                found: 1,
                expected: FORMAT_VERSION
            })
        ));
        assert!(matches!(
            check_format(b"v1"),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
