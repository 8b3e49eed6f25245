//! Per-node storage that outlives the node, as a disk outlives a process: created once per run,
//! opened again by every incarnation of the node (memory: the same shared state; RocksDB: the
//! same directory, reopened for real).

use super::Failure;
use super::spec::{ClusterSpec, StorageKind};
use paxos_core::{NodeId, Storage, Value};
use paxos_storage::MemoryStorage;
use std::sync::Arc;

/// Your own storage for a cluster: makes each node's store, once per node per run. The store
/// it returns is handed to every incarnation of that node, so it must keep acknowledged writes
/// across the node's crash (see [`ClusterSpec::with_storage`]).
pub struct CustomStorage<V>(Arc<dyn Fn(NodeId) -> Arc<dyn Storage<V>> + Send + Sync>);

impl<V> CustomStorage<V> {
    /// Storage made by `factory`.
    pub fn new(factory: impl Fn(NodeId) -> Arc<dyn Storage<V>> + Send + Sync + 'static) -> Self {
        CustomStorage(Arc::new(factory))
    }
}

impl<V> Clone for CustomStorage<V> {
    fn clone(&self) -> Self {
        CustomStorage(self.0.clone())
    }
}

impl<V> std::fmt::Debug for CustomStorage<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomStorage(..)")
    }
}

/// One node's storage for the whole run.
pub(super) enum NodeStore<V> {
    Memory(MemoryStorage<V>),
    /// `inline` under simulated time: a synced write must take no simulated time, or the same
    /// seed runs differently on a slower disk (see `RocksDbStorage::open_inline`).
    #[cfg(feature = "rocksdb")]
    Rocks {
        dir: tempfile::TempDir,
        inline: bool,
    },
    /// Made by the spec's [`CustomStorage`]; the same store after every restart.
    Custom(Arc<dyn Storage<V>>),
}

impl<V: Value> NodeStore<V> {
    /// `simulated`: the run's time is simulated (turmoil).
    pub(super) fn new(
        spec: &ClusterSpec<V>,
        kind: StorageKind,
        id: NodeId,
        simulated: bool,
    ) -> Result<Self, Failure> {
        if let Some(factory) = &spec.storage {
            return Ok(NodeStore::Custom((factory.0)(id)));
        }
        match kind {
            StorageKind::Memory => Ok(NodeStore::Memory(
                MemoryStorage::new().with_write_latency(spec.write_latency),
            )),
            #[cfg(feature = "rocksdb")]
            StorageKind::Rocksdb => tempfile::Builder::new()
                .prefix("paxos-harness-")
                .tempdir()
                .map(|dir| NodeStore::Rocks {
                    dir,
                    inline: simulated,
                })
                .map_err(|e| Failure(format!("temp dir: {e}"))),
            #[cfg(not(feature = "rocksdb"))]
            StorageKind::Rocksdb => {
                let _ = simulated;
                Err(Failure(
                    "RocksDB storage needs the `rocksdb` feature of paxos-harness".into(),
                ))
            }
        }
    }

    /// The directory the store keeps its files in, if it has one (RocksDB).
    pub(super) fn dir(&self) -> Option<&std::path::Path> {
        match self {
            #[cfg(feature = "rocksdb")]
            NodeStore::Rocks { dir, .. } => Some(dir.path()),
            _ => None,
        }
    }

    /// Open (or reopen) the storage for one incarnation of the node.
    pub(super) fn open(&self) -> Result<Arc<dyn Storage<V>>, Failure> {
        match self {
            NodeStore::Memory(m) => Ok(Arc::new(m.clone())),
            NodeStore::Custom(s) => Ok(s.clone()),
            #[cfg(feature = "rocksdb")]
            NodeStore::Rocks { dir, inline } => if *inline {
                paxos_storage::RocksDbStorage::open_inline(dir.path())
            } else {
                paxos_storage::RocksDbStorage::open(dir.path())
            }
            .map(|s| Arc::new(s) as Arc<dyn Storage<V>>)
            .map_err(|e| Failure(format!("open rocksdb: {e}"))),
        }
    }
}
