//! The [`Storage`] trait: where a node keeps what it must not forget.
//!
//! A node's durable state is small and fixed in shape ([`DurableState`]): the acceptor's promise,
//! its accepted `(ballot, value)` per instance, the proposer's highest round, the decided log,
//! and the latest [`Snapshot`] with the point below which the log was dropped.
//! A backend implements two calls: [`Storage::load`] at start-up and [`Storage::save`] for the
//! writes of one runtime step.

use crate::ballot::{Ballot, InstanceId};
use crate::effects::Write;
use crate::log::Entry;
use crate::message::Value;
use crate::snapshot::Snapshot;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;

/// Everything a node persists, as returned by [`Storage::load`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DurableState<V> {
    /// The acceptor's promised ballot (one promise covers every instance).
    pub promised: Ballot,
    /// The acceptor's accepted `(ballot, entry)` per instance.
    pub accepted: BTreeMap<InstanceId, (Ballot, Entry<V>)>,
    /// The highest round this node's proposer used or saw.
    pub proposer_round: u64,
    /// Entries this node learned as chosen.
    pub decided: BTreeMap<InstanceId, Entry<V>>,
    /// The latest snapshot kept ([`Write::Snapshot`]).
    pub snapshot: Option<Snapshot>,
    /// The log was dropped below this instance ([`Write::TruncateBelow`]): `accepted` and
    /// `decided` hold nothing below it, and never will again. Never above the snapshot's index.
    pub log_start: InstanceId,
}

impl<V> Default for DurableState<V> {
    fn default() -> Self {
        DurableState {
            promised: Ballot::ZERO,
            accepted: BTreeMap::new(),
            proposer_round: 0,
            decided: BTreeMap::new(),
            snapshot: None,
            log_start: InstanceId(0),
        }
    }
}

impl<V: Clone> DurableState<V> {
    /// Apply one write with the protocol's monotonicity built in: promises and rounds never go
    /// down, an accepted pair is only replaced by one at a ballot at least as high, a decided
    /// value is never changed, the snapshot kept is only replaced by one of a higher index, and
    /// the log is only dropped below the snapshot kept (a truncation past it stops there) and
    /// never grows back (an entry written below [`DurableState::log_start`] is ignored).
    /// Backends that keep a `DurableState` in memory call this so every backend shares one
    /// definition of "apply".
    pub fn apply(&mut self, write: &Write<V>) {
        match write {
            Write::Promise(b) => self.promised = self.promised.max(*b),
            Write::Accept { instance, .. } | Write::Decided { instance, .. }
                if *instance < self.log_start => {}
            Write::Accept {
                instance,
                ballot,
                entry,
            } => {
                let replace = self
                    .accepted
                    .get(instance)
                    .is_none_or(|(old, _)| ballot >= old);
                if replace {
                    self.accepted.insert(*instance, (*ballot, entry.clone()));
                }
            }
            Write::ProposerRound(r) => self.proposer_round = self.proposer_round.max(*r),
            Write::Decided { instance, entry } => {
                self.decided
                    .entry(*instance)
                    .or_insert_with(|| entry.clone());
            }
            Write::Snapshot(snapshot) => {
                let newer = self
                    .snapshot
                    .as_ref()
                    .is_none_or(|kept| kept.meta.index < snapshot.meta.index);
                if newer {
                    self.snapshot = Some(snapshot.clone());
                }
            }
            Write::TruncateBelow(instance) => {
                let below = (*instance).min(self.snapshot_index());
                if below > self.log_start {
                    self.log_start = below;
                    self.accepted = self.accepted.split_off(&below);
                    self.decided = self.decided.split_off(&below);
                }
            }
        }
    }
}

impl<V> DurableState<V> {
    /// The index of the snapshot kept (instance 0 without one): the log may be dropped below it.
    pub fn snapshot_index(&self) -> InstanceId {
        self.snapshot
            .as_ref()
            .map_or(InstanceId(0), |s| s.meta.index)
    }
}

/// What a storage operation was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Opening or creating the store.
    Open,
    /// Reading state back ([`Storage::load`]).
    Read,
    /// Writing ([`Storage::save`]).
    Write,
}

impl fmt::Display for StorageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageOp::Open => "open",
            StorageOp::Read => "read",
            StorageOp::Write => "write",
        })
    }
}

/// Errors of a [`Storage`] backend. A node that gets one from `save` stops (see the trait docs).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend failed (I/O, the database, a lock).
    #[error("storage {op} failed ({subject}): {source}")]
    Backend {
        /// What was being done.
        op: StorageOp,
        /// What it was done to: `promise`, `accepted i4`, `proposer round`, a path...
        subject: String,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record could not be decoded. Never treated as "empty".
    #[error("corrupt record at key {key}: {reason}")]
    Corrupt {
        /// The record's key, printed readably.
        key: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// The store was written by an incompatible format version.
    #[error("incompatible storage format version {found} (this build reads {expected})")]
    Version {
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        expected: u32,
    },
    /// The store was closed, or a failure was injected for a test.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Durable storage for one node.
///
/// # Correctness
/// A backend must guarantee, for the node runtime to be safe:
/// 1. `save` returning `Ok` means durable: the writes survive `kill -9` and power loss
///    (RocksDB: a synced write).
/// 2. One `save` is all-or-nothing: after a crash either every write of the call is visible or none.
/// 3. Calls are applied in call order; writes inside a call in slice order, with the semantics of
///    [`DurableState::apply`].
/// 4. After a restart, `load` returns exactly the state of all acknowledged `save`s: after a
///    truncation, no entry below [`DurableState::log_start`], and the snapshot kept.
/// 5. Bytes that cannot be decoded, or a format of another version, give
///    [`StorageError::Corrupt`] / [`StorageError::Version`], never a default value. A snapshot
///    whose bytes do not match its metadata ([`Snapshot::verify`]: torn or damaged) is
///    [`StorageError::Corrupt`] too.
/// 6. On `Err` from `save` the runtime stops the node: nothing that depended on the write has
///    been sent, so stopping is always safe.
#[async_trait]
pub trait Storage<V: Value>: Send + Sync + 'static {
    /// Read the whole durable state (empty state for a new store).
    ///
    /// # Errors
    /// Backend failures, corrupt records, unknown versions.
    async fn load(&self) -> Result<DurableState<V>, StorageError>;

    /// Make `writes` durable, atomically and in order.
    ///
    /// # Errors
    /// Backend failures; after an error the node must not send anything that depended on it.
    async fn save(&self, writes: &[Write<V>]) -> Result<(), StorageError>;
}

#[async_trait]
impl<V: Value, S: Storage<V> + ?Sized> Storage<V> for std::sync::Arc<S> {
    async fn load(&self) -> Result<DurableState<V>, StorageError> {
        (**self).load().await
    }
    async fn save(&self, writes: &[Write<V>]) -> Result<(), StorageError> {
        (**self).save(writes).await
    }
}
