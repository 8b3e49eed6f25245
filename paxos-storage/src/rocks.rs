//! [`RocksDbStorage`]: durable state in a RocksDB directory, synced group commit (feature
//! `rocksdb`).
//!
//! # Key layout (format version 3)
//! One record per field and per instance, in the default column family:
//!
//! | key (bytes) | value |
//! |---|---|
//! | `meta/format` | the format version, `u32` big-endian (`3`) |
//! | `acc/promised` | record of the promised [`Ballot`](paxos_core::Ballot) |
//! | `prop/round` | record of the proposer round (`u64`) |
//! | `acc/accepted/` ++ instance as `u64` big-endian | record of `(Ballot, Entry<V>)` |
//! | `decided/` ++ instance as `u64` big-endian | record of [`Entry<V>`](paxos_core::Entry) |
//! | `log/start` | record of the instance the log was dropped below ([`InstanceId`](paxos_core::InstanceId)) |
//! | `snap/latest` | record of the [`Snapshot`](paxos_core::Snapshot) kept: metadata and bytes |
//!
//! Format 2 (issue 15) stores log entries (a no-op, or a value with the id of the request that
//! proposed it) where format 1 stored bare values; a format-1 store is refused as
//! [`StorageError::Version`], never misread. Format 3 (issue 16) adds the last two keys only.
//! Format 4 (issue 18) gives every ballot an epoch: a format-2 or -3 store is upgraded on open,
//! its ballots read as epoch 0 and the records holding them rewritten.
//!
//! A [`Write::TruncateBelow`] deletes the two instance ranges below the new log start with
//! RocksDB range deletions, in the same synced batch as the rest of the save (typically the
//! [`Write::Snapshot`] that allows it): a crash leaves the old log or the snapshot with the
//! shorter log, never a mix. A snapshot read back is checked against its checksum; a torn or
//! damaged one is [`StorageError::Corrupt`].
//!
//! A *record* is one record-version byte (`1`) followed by the value's
//! [postcard](https://docs.rs/postcard) encoding; every byte must be consumed when decoding.
//! A new store gets `meta/format` on creation. Opening a store with another format version gives
//! [`StorageError::Version`]; a missing marker in a non-empty store, a key outside this layout or
//! an undecodable record gives [`StorageError::Corrupt`] naming the key. Nothing read from disk
//! can panic or be mistaken for an empty state. The encoding lives in `record.rs`.
//!
//! # Writes and group commit
//! One thread per store (`paxos-rocksdb`) owns the database and a copy of the [`DurableState`].
//! [`Storage::save`] sends its writes to that thread over a channel and awaits an ack, so it
//! never blocks the async runtime. The thread takes every request queued at that moment, applies
//! them in arrival order to the copy with [`DurableState::apply`] (so promises and rounds never go
//! down, accepted pairs are only replaced at a ballot `>=` theirs, decided values never change),
//! puts every changed key into **one `WriteBatch` written with `sync = true`**, and only then
//! acks each request. Concurrent saves therefore share one fsync (group commit); each save is
//! still all-or-nothing and ordered, because the group is. A save that changes nothing is acked
//! without writing: its state is already durable.
//!
//! If a write fails, every save of that group gets [`StorageError::Backend`] with
//! [`StorageOp::Write`], and the store refuses further saves ([`StorageError::Unavailable`]): what
//! reached the disk is unknown, and the node stops anyway (see [`Storage`]'s correctness rule 6).
//! [`Storage::load`] reads and decodes the whole store from disk again.
//!
//! # Inline writes, for simulation
//! [`RocksDbStorage::open_inline`] runs every save on the calling thread instead, one synced
//! batch per save, blocking the caller for the fsync. Under simulated time (turmoil, a paused
//! tokio clock) that is what keeps a seed's run the same: a save that waits on another thread
//! leaves the simulation idle, and it steps its clock on for as long as the real fsync takes, so
//! a slower disk would run a different schedule. Inline, a write takes no simulated time.

use crate::record::{self, Key};
use async_trait::async_trait;
use paxos_core::{DurableState, Storage, StorageError, StorageOp, Value, Write};
use rocksdb::{DB, DBCompressionType, IteratorMode, Options, WriteBatch, WriteOptions};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use tokio::sync::oneshot;

/// At most this many saves share one synced batch (bounds the latency of the first one).
const MAX_GROUP: usize = 1024;

/// A [`Storage`] in a RocksDB directory. Every acknowledged [`save`](Storage::save) is one synced
/// `WriteBatch` (shared with concurrent saves); see the [module docs](self) for the key layout.
///
/// Dropping it waits for the writer thread to finish its current batch and closes the database,
/// releasing the directory's lock: the same directory can be opened again right after.
pub struct RocksDbStorage<V> {
    engine: Engine<V>,
    path: PathBuf,
}

/// Where a store's writes run.
enum Engine<V> {
    /// The `paxos-rocksdb` thread: saves never block the runtime and share fsyncs.
    Thread {
        /// `None` only while dropping (closing the channel stops the writer thread).
        requests: Option<mpsc::Sender<Request<V>>>,
        writer: Option<JoinHandle<()>>,
    },
    /// The caller's thread, one save at a time (see [`RocksDbStorage::open_inline`]).
    Inline(Box<Mutex<Writer<V>>>),
}

impl<V> fmt::Debug for RocksDbStorage<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<V: Value> RocksDbStorage<V> {
    /// Open the store in directory `path`, creating the directory and an empty store if missing
    /// (the parent directory must exist).
    ///
    /// Reads and decodes the whole store before returning, so a damaged store is reported here.
    /// This blocks the calling thread for the open (milliseconds for a small store); in a
    /// latency-sensitive async context call it from `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// - [`StorageError::Backend`] with [`StorageOp::Open`]: RocksDB could not open the directory
    ///   (missing permissions, already opened by another store or process...).
    /// - [`StorageError::Version`]: the directory holds another format version.
    /// - [`StorageError::Corrupt`]: a record or key cannot be decoded.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path.as_ref(), synced(), false)
    }

    /// Open like [`open`](Self::open), but run every save on the thread that awaits it: one
    /// synced batch per save, the caller blocked for the fsync (see the
    /// [module docs](self#inline-writes-for-simulation)). For deterministic simulation, where
    /// a write must take no simulated time; a server wants [`open`](Self::open).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_inline(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path.as_ref(), synced(), true)
    }

    fn open_with(
        path: &Path,
        write_options: WriteOptions,
        inline: bool,
    ) -> Result<Self, StorageError> {
        let subject = || path.display().to_string();
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(DBCompressionType::None);
        options.set_keep_log_file_num(4);
        // Disk and memory follow the kept log, not the history: small memtables flush often,
        // so the write-ahead log is recycled early and compactions soon drop what the range
        // deletes of a truncation cover (RocksDB's 64 MiB default holds ~4 million entries
        // per memtable, and its WAL as long).
        options.set_write_buffer_size(WRITE_BUFFER_BYTES);
        options.set_max_total_wal_size(4 * WRITE_BUFFER_BYTES as u64);
        let db = DB::open(&options, path).map_err(|e| backend(StorageOp::Open, subject(), e))?;
        let state = initialize(&db, path)?;
        let writer = Writer {
            db,
            state,
            write_options,
            failed: None,
        };
        if inline {
            return Ok(RocksDbStorage {
                engine: Engine::Inline(Box::new(Mutex::new(writer))),
                path: path.to_path_buf(),
            });
        }
        let (requests, inbox) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("paxos-rocksdb".into())
            .spawn(move || writer.run(inbox))
            .map_err(|e| {
                backend(
                    StorageOp::Open,
                    format!("writer thread for {}", subject()),
                    e,
                )
            })?;
        Ok(RocksDbStorage {
            engine: Engine::Thread {
                requests: Some(requests),
                writer: Some(handle),
            },
            path: path.to_path_buf(),
        })
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hand `request` to the engine; its ack comes on the request's channel.
    fn send(&self, request: Request<V>) -> Result<(), StorageError> {
        match &self.engine {
            Engine::Thread { requests, .. } => requests
                .as_ref()
                .ok_or_else(stopped)?
                .send(request)
                .map_err(|_| stopped()),
            Engine::Inline(writer) => {
                // A panic can only have come from RocksDB itself; the copy is updated only
                // after a durable write, so what the lock guards is still consistent.
                let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                match request {
                    Request::Save { writes, ack } => writer.commit(&mut vec![(writes, ack)]),
                    Request::Load { ack } => {
                        let _ = ack.send(read_state(&writer.db));
                    }
                }
                Ok(())
            }
        }
    }
}

impl<V> Drop for RocksDbStorage<V> {
    fn drop(&mut self) {
        if let Engine::Thread { requests, writer } = &mut self.engine {
            // Closing the channel ends the writer loop; joining it closes the database.
            drop(requests.take());
            if let Some(writer) = writer.take() {
                // The writer has no panicking paths; if it did panic, there is nothing to add.
                let _ = writer.join();
            }
        }
    }
}

#[async_trait]
impl<V: Value> Storage<V> for RocksDbStorage<V> {
    async fn load(&self) -> Result<DurableState<V>, StorageError> {
        let (ack, done) = oneshot::channel();
        self.send(Request::Load { ack })?;
        done.await.map_err(|_| stopped())?
    }

    async fn save(&self, writes: &[Write<V>]) -> Result<(), StorageError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.send(Request::Save {
            writes: writes.to_vec(),
            ack,
        })?;
        done.await.map_err(|_| stopped())?
    }
}

type Ack<T> = oneshot::Sender<Result<T, StorageError>>;

/// Every write of a store is synced before it is acknowledged.
/// Size of one memtable (see `open_with`).
const WRITE_BUFFER_BYTES: usize = 8 << 20;

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

enum Request<V> {
    Save { writes: Vec<Write<V>>, ack: Ack<()> },
    Load { ack: Ack<DurableState<V>> },
}

fn backend(
    op: StorageOp,
    subject: String,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StorageError {
    StorageError::Backend {
        op,
        subject,
        source: Box::new(source),
    }
}

fn stopped() -> StorageError {
    StorageError::Unavailable("the RocksDB writer thread has stopped".into())
}

/// Check the format marker (writing it into a brand-new store) and decode the whole store.
fn initialize<V: Value>(db: &DB, path: &Path) -> Result<DurableState<V>, StorageError> {
    let format_key = Key::Format.encode();
    let marker = db
        .get(&format_key)
        .map_err(|e| backend(StorageOp::Read, Key::Format.subject(), e))?;
    let upgrade = match &marker {
        Some(bytes) => {
            Some(record::format_of(bytes)?).filter(|f| record::UPGRADES_FROM.contains(f))
        }
        None => None,
    };
    if let Some(from) = upgrade {
        // Formats 2 and 3 stored ballots without an epoch: read them as epoch 0 and rewrite
        // every record holding one, with the new marker, in one synced batch (a crash leaves
        // the old store or the new one).
        let mut state = DurableState::<V>::default();
        for item in db.iterator(IteratorMode::Start) {
            let (key, value) = item.map_err(|e| backend(StorageOp::Read, "iteration".into(), e))?;
            record::decode_legacy_into(&mut state, &key, &value)?;
        }
        let mut batch = WriteBatch::default();
        let keys = [Key::Promised, Key::Snapshot]
            .into_iter()
            .chain(state.accepted.keys().map(|i| Key::Accepted(*i)));
        for key in keys {
            let encoded = record::encode_field(&state, key)
                .map_err(|e| backend(StorageOp::Open, key.subject(), e))?;
            if let Some(bytes) = encoded {
                batch.put(key.encode(), bytes);
            }
        }
        batch.put(&format_key, record::encode_format());
        db.write_opt(batch, &synced())
            .map_err(|e| backend(StorageOp::Open, Key::Format.subject(), e))?;
        tracing::info!(path = %path.display(), from, to = record::FORMAT_VERSION, "upgraded the store format");
    }
    if marker.is_none() {
        let empty = match db.iterator(IteratorMode::Start).next() {
            None => true,
            Some(Ok(_)) => false,
            Some(Err(e)) => return Err(backend(StorageOp::Read, path.display().to_string(), e)),
        };
        if !empty {
            return Err(StorageError::Corrupt {
                key: Key::Format.to_string(),
                reason: "missing from a non-empty store".into(),
            });
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put(&format_key, record::encode_format());
        db.write_opt(batch, &options)
            .map_err(|e| backend(StorageOp::Open, Key::Format.subject(), e))?;
    }
    read_state(db)
}

/// Decode the whole store from disk.
fn read_state<V: Value>(db: &DB) -> Result<DurableState<V>, StorageError> {
    match db.get(Key::Format.encode()) {
        Ok(Some(marker)) => record::check_format(&marker)?,
        Ok(None) => {
            return Err(StorageError::Corrupt {
                key: Key::Format.to_string(),
                reason: "missing".into(),
            });
        }
        Err(e) => return Err(backend(StorageOp::Read, Key::Format.subject(), e)),
    }
    let mut state = DurableState::default();
    for item in db.iterator(IteratorMode::Start) {
        let (key, value) = item.map_err(|e| backend(StorageOp::Read, "iteration".into(), e))?;
        record::decode_into(&mut state, &key, &value)?;
    }
    record::check_whole(&state)?;
    Ok(state)
}

/// The thread that owns the database.
struct Writer<V> {
    db: DB,
    /// What the disk holds: updated only after a batch was written and synced.
    state: DurableState<V>,
    write_options: WriteOptions,
    /// Set when a write failed; later saves are refused with this reason.
    failed: Option<String>,
}

/// Why a group could not be written. Cloneable: every save of the group gets its own error.
#[derive(Clone)]
enum GroupError {
    Encode(String, postcard::Error),
    Write(String, rocksdb::Error),
}

impl GroupError {
    fn to_storage_error(&self) -> StorageError {
        match self.clone() {
            GroupError::Encode(subject, e) => backend(StorageOp::Write, subject, e),
            GroupError::Write(subject, e) => backend(StorageOp::Write, subject, e),
        }
    }
}

impl<V: Value> Writer<V> {
    fn run(mut self, inbox: mpsc::Receiver<Request<V>>) {
        let mut group: Vec<(Vec<Write<V>>, Ack<()>)> = Vec::new();
        // Block for the first request, then take whatever else is already queued: requests that
        // arrived during the previous fsync share the next one.
        while let Ok(first) = inbox.recv() {
            let mut next = Some(first);
            while let Some(request) = next {
                match request {
                    Request::Save { writes, ack } => group.push((writes, ack)),
                    Request::Load { ack } => {
                        // Saves queued before the load are written (and acked) first.
                        self.commit(&mut group);
                        let _ = ack.send(read_state(&self.db));
                    }
                }
                if group.len() >= MAX_GROUP {
                    self.commit(&mut group);
                }
                next = inbox.try_recv().ok();
            }
            self.commit(&mut group);
        }
    }

    /// Write every save of `group` in one synced batch, then ack each (a dropped receiver only
    /// means its caller stopped waiting).
    fn commit(&mut self, group: &mut Vec<(Vec<Write<V>>, Ack<()>)>) {
        if group.is_empty() {
            return;
        }
        if let Some(reason) = &self.failed {
            for (_, ack) in group.drain(..) {
                let _ = ack.send(Err(StorageError::Unavailable(format!(
                    "an earlier write failed: {reason}"
                ))));
            }
            return;
        }
        match self.write_group(group.iter().flat_map(|(w, _)| w)) {
            Ok(()) => {
                for (_, ack) in group.drain(..) {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) => {
                // After a failed database write the disk state is unknown: refuse later saves.
                // An encoding failure wrote nothing, so the store stays usable.
                if let GroupError::Write(..) = e {
                    self.failed = Some(e.to_storage_error().to_string());
                }
                for (_, ack) in group.drain(..) {
                    let _ = ack.send(Err(e.to_storage_error()));
                }
            }
        }
    }

    /// Apply `writes` (in order) and make the keys they change durable in one synced batch.
    fn write_group<'w>(
        &mut self,
        writes: impl Iterator<Item = &'w Write<V>>,
    ) -> Result<(), GroupError> {
        // 1. A scratch state holding the current values of every touched key, updated with the
        //    shared definition of "apply".
        let mut scratch = DurableState {
            promised: self.state.promised,
            proposer_round: self.state.proposer_round,
            // Cheap: the snapshot's bytes are shared.
            snapshot: self.state.snapshot.clone(),
            log_start: self.state.log_start,
            ..DurableState::default()
        };
        let mut touched = BTreeSet::new();
        for w in writes {
            let key = match w {
                Write::Promise(_) => Key::Promised,
                Write::ProposerRound(_) => Key::ProposerRound,
                Write::Accept { instance, .. } => {
                    if let Some(pair) = self.state.accepted.get(instance) {
                        scratch
                            .accepted
                            .entry(*instance)
                            .or_insert_with(|| pair.clone());
                    }
                    Key::Accepted(*instance)
                }
                Write::Decided { instance, .. } => {
                    if let Some(v) = self.state.decided.get(instance) {
                        scratch
                            .decided
                            .entry(*instance)
                            .or_insert_with(|| v.clone());
                    }
                    Key::Decided(*instance)
                }
                Write::Snapshot(_) => Key::Snapshot,
                Write::TruncateBelow(_) => Key::LogStart,
            };
            touched.insert(key);
            scratch.apply(w);
        }
        // 2. Only keys whose value changed go to disk.
        touched.retain(|&key| self.changed(&scratch, key));
        if touched.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for &key in &touched {
            let encoded = record::encode_field(&scratch, key)
                .map_err(|e| GroupError::Encode(key.subject(), e))?;
            if let Some(bytes) = encoded {
                batch.put(key.encode(), bytes);
            }
        }
        // A truncation deletes whole ranges, after the puts: whatever this group wrote below
        // the new start goes too (apply dropped it from the scratch state already).
        let (old_start, new_start) = (self.state.log_start, scratch.log_start);
        if new_start > old_start {
            for key in [Key::Accepted, Key::Decided] {
                batch.delete_range(key(old_start).encode(), key(new_start).encode());
            }
        }
        // 3. One synced write for the whole group.
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(|e| GroupError::Write(describe(&touched), e))?;
        // 4. Durable: the copy may now reflect it.
        for key in touched {
            match key {
                Key::Format => {}
                Key::Promised => self.state.promised = scratch.promised,
                Key::ProposerRound => self.state.proposer_round = scratch.proposer_round,
                Key::Accepted(i) => {
                    if let Some(pair) = scratch.accepted.remove(&i) {
                        self.state.accepted.insert(i, pair);
                    }
                }
                Key::Decided(i) => {
                    if let Some(v) = scratch.decided.remove(&i) {
                        self.state.decided.insert(i, v);
                    }
                }
                Key::Snapshot => self.state.snapshot = scratch.snapshot.clone(),
                Key::LogStart => {}
            }
        }
        if new_start > old_start {
            self.state.log_start = new_start;
            self.state.accepted = self.state.accepted.split_off(&new_start);
            self.state.decided = self.state.decided.split_off(&new_start);
        }
        Ok(())
    }

    /// Whether `scratch` holds a different value than the durable copy under `key`.
    fn changed(&self, scratch: &DurableState<V>, key: Key) -> bool {
        match key {
            Key::Format => false,
            Key::Promised => scratch.promised != self.state.promised,
            Key::ProposerRound => scratch.proposer_round != self.state.proposer_round,
            Key::Accepted(i) => scratch.accepted.get(&i) != self.state.accepted.get(&i),
            Key::Decided(i) => scratch.decided.get(&i) != self.state.decided.get(&i),
            Key::LogStart => scratch.log_start != self.state.log_start,
            Key::Snapshot => {
                scratch.snapshot.as_ref().map(|s| s.meta)
                    != self.state.snapshot.as_ref().map(|s| s.meta)
            }
        }
    }
}

/// `promise, accepted i4, decided i4 (+5 more keys)`: the subject of a failed group write.
fn describe(keys: &BTreeSet<Key>) -> String {
    const SHOWN: usize = 3;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .map(|k| k.subject())
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(" (+{} more keys)", keys.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::{Ballot, InstanceId, NodeId};
    use std::sync::Arc;
    use std::time::Instant;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn raw_put(dir: &Path, key: &[u8], value: &[u8]) {
        let db = DB::open_default(dir).unwrap();
        db.put(key, value).unwrap();
    }

    fn open_err(dir: &Path) -> StorageError {
        RocksDbStorage::<u64>::open(dir).unwrap_err()
    }

    #[test]
    fn another_format_version_is_a_version_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(RocksDbStorage::<u64>::open(dir.path()).unwrap());
        raw_put(dir.path(), b"meta/format", &7u32.to_be_bytes());
        assert!(matches!(
            open_err(dir.path()),
            StorageError::Version {
                found: 7,
                expected: 4
            }
        ));
        raw_put(dir.path(), b"meta/format", &1u32.to_be_bytes());
        assert!(matches!(
            open_err(dir.path()),
            StorageError::Version { found: 1, .. }
        ));
    }

    /// A format-2 or -3 store (ballots without an epoch) opens with its state, every ballot
    /// read as epoch 0, and is rewritten as format 4: reopened, it reads the same.
    #[test]
    fn format_2_and_3_stores_are_upgraded_in_place() {
        for old in record::UPGRADES_FROM {
            let dir = tempfile::tempdir().unwrap();
            let store = RocksDbStorage::<u64>::open(dir.path()).unwrap();
            let decided = Write::Decided {
                instance: paxos_core::InstanceId(4),
                entry: paxos_core::Entry::Noop,
            };
            rt().block_on(store.save(std::slice::from_ref(&decided)))
                .unwrap();
            drop(store);
            // Records as formats 2 and 3 wrote them: record version 1, then postcard of
            // (round, node) for a ballot, of (ballot, entry) for an accepted pair.
            raw_put(dir.path(), b"acc/promised", &[1, 7, 3]);
            raw_put(
                dir.path(),
                b"acc/accepted/\0\0\0\0\0\0\0\x05",
                &[1, 2, 1, 0],
            );
            let snapshot = paxos_core::Snapshot::new(
                paxos_core::InstanceId(3),
                paxos_core::Ballot::new(6, paxos_core::NodeId(2)),
                b"i0-i2".to_vec(),
            );
            let meta = snapshot.meta;
            let legacy = (
                meta.index,
                (6u64, paxos_core::NodeId(2)),
                meta.size,
                meta.checksum,
            );
            let legacy = postcard::to_extend(&(legacy, b"i0-i2".to_vec()), vec![1]).unwrap();
            raw_put(dir.path(), b"snap/latest", &legacy);
            raw_put(dir.path(), b"meta/format", &old.to_be_bytes());
            let mut expected = DurableState {
                snapshot: Some(snapshot),
                promised: paxos_core::Ballot::new(7, paxos_core::NodeId(3)),
                ..DurableState::default()
            };
            expected.apply(&decided);
            expected.accepted.insert(
                paxos_core::InstanceId(5),
                (
                    paxos_core::Ballot::new(2, paxos_core::NodeId(1)),
                    paxos_core::Entry::Noop,
                ),
            );
            for _ in 0..2 {
                let store = RocksDbStorage::<u64>::open(dir.path()).unwrap();
                assert_eq!(rt().block_on(store.load()).unwrap(), expected, "from {old}");
            }
            let db = DB::open_default(dir.path()).unwrap();
            assert_eq!(
                db.get(b"meta/format").unwrap().as_deref(),
                Some(&4u32.to_be_bytes()[..])
            );
        }
    }

    #[test]
    fn bad_bytes_are_corrupt_errors_naming_the_key() {
        let cases: [(&[u8], &[u8], &str); 4] = [
            (b"acc/promised", b"\x01", "acc/promised"),
            (b"decided/\0\0\0\0\0\0\0\x05", b"", "decided/5"),
            (
                b"acc/accepted/\0\0\0\0\0\0\0\x01",
                b"\x02\x00",
                "acc/accepted/1",
            ),
            (b"zz", b"\x01\x00", "zz"),
        ];
        for (key, value, name) in cases {
            let dir = tempfile::tempdir().unwrap();
            drop(RocksDbStorage::<u64>::open(dir.path()).unwrap());
            raw_put(dir.path(), key, value);
            match open_err(dir.path()) {
                StorageError::Corrupt { key, .. } => assert_eq!(key, name),
                other => panic!("{name}: {other}"),
            }
        }
    }

    #[test]
    fn a_store_without_format_marker_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        raw_put(dir.path(), b"acc/promised", b"\x01\x00\x00");
        assert!(matches!(
            open_err(dir.path()),
            StorageError::Corrupt { key, .. } if key == "meta/format"
        ));
    }

    #[test]
    fn a_directory_already_open_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RocksDbStorage::<u64>::open(dir.path()).unwrap();
        assert!(matches!(
            open_err(dir.path()),
            StorageError::Backend {
                op: StorageOp::Open,
                ..
            }
        ));
    }

    /// RocksDB rejects a synced write without WAL: a real write failure from the database.
    #[test]
    fn a_failing_write_is_a_backend_write_error_and_stops_the_store() {
        for inline in [false, true] {
            a_failing_write_stops_the_store(inline);
        }
    }

    fn a_failing_write_stops_the_store(inline: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut options = synced();
        options.disable_wal(true);
        let store = RocksDbStorage::<u64>::open_with(dir.path(), options, inline).unwrap();
        rt().block_on(async {
            let err = store
                .save(&[Write::Promise(Ballot::new(1, NodeId(1)))])
                .await
                .unwrap_err();
            match &err {
                StorageError::Backend {
                    op: StorageOp::Write,
                    subject,
                    ..
                } => assert_eq!(subject, "promise"),
                other => panic!("{other}"),
            }
            let again = store.save(&[Write::ProposerRound(3)]).await.unwrap_err();
            assert!(matches!(again, StorageError::Unavailable(_)), "{again}");
            // Nothing reached the store.
            assert_eq!(store.load().await.unwrap(), DurableState::default());
        });
    }

    #[test]
    fn unchanged_writes_are_acked_and_state_matches_apply() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksDbStorage::<String>::open(dir.path()).unwrap();
        let b = Ballot::new(2, NodeId(1));
        let writes = [
            Write::Promise(b),
            Write::Accept {
                instance: InstanceId(1),
                ballot: b,
                entry: paxos_core::Entry::Value {
                    id: paxos_core::ProposalId::default(),
                    value: "x".to_string(),
                },
            },
        ];
        rt().block_on(async {
            store.save(&writes).await.unwrap();
            store.save(&writes).await.unwrap();
            let mut expected = DurableState::default();
            writes.iter().for_each(|w| expected.apply(w));
            assert_eq!(store.load().await.unwrap(), expected);
        });
    }

    /// Rates of synced saves on this machine (not a pass/fail check). Run with
    /// `cargo test -p paxos-storage --features rocksdb --lib -- --ignored --nocapture measure`.
    #[test]
    #[ignore]
    fn measure_synced_write_rates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RocksDbStorage::<u64>::open(dir.path()).unwrap());
        let save = |i: u64| {
            vec![Write::Accept {
                instance: InstanceId(i),
                ballot: Ballot::new(1, NodeId(1)),
                entry: paxos_core::Entry::Value {
                    id: paxos_core::ProposalId::default(),
                    value: i,
                },
            }]
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            const SINGLE: u64 = 500;
            let start = Instant::now();
            for i in 0..SINGLE {
                store.save(&save(i)).await.unwrap();
            }
            let single = SINGLE as f64 / start.elapsed().as_secs_f64();
            const SAVERS: u64 = 64;
            const EACH: u64 = 100;
            let start = Instant::now();
            let mut tasks = Vec::new();
            for t in 0..SAVERS {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for k in 0..EACH {
                        store.save(&save(1_000_000 + t * EACH + k)).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let group = (SAVERS * EACH) as f64 / start.elapsed().as_secs_f64();
            println!(
                "synced saves/s in {}: one at a time {single:.0}, {SAVERS} concurrent savers {group:.0}",
                dir.path().display()
            );
        });
    }
}
