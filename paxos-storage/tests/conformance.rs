//! Every backend runs the storage conformance suite from `paxos_core::testing::conformance`,
//! from exactly one test each.

use async_trait::async_trait;
use paxos_core::StorageError;
use paxos_core::testing::conformance::{self, FactoryError, StorageFactory};
use paxos_storage::MemoryStorage;

/// Memory: the guard is a clone sharing the state, so "reopening" finds every write.
struct Memory;

#[async_trait]
impl StorageFactory for Memory {
    type Storage = MemoryStorage<u64>;
    type Guard = MemoryStorage<u64>;

    async fn create(&self) -> Result<(Self::Guard, Self::Storage), FactoryError> {
        let store = MemoryStorage::new();
        Ok((store.clone(), store))
    }

    async fn reopen(&self, guard: &Self::Guard) -> Option<Result<Self::Storage, StorageError>> {
        Some(Ok(guard.clone()))
    }
}

#[tokio::test]
async fn memory_storage_conforms() {
    let report = conformance::run_all(&Memory)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use super::*;
    use paxos_storage::RocksDbStorage;
    use tempfile::TempDir;

    /// RocksDB in a fresh temp dir per case; the `TempDir` is the guard. `inline`: opened with
    /// [`RocksDbStorage::open_inline`] (saves on the caller's thread).
    struct RocksDb {
        inline: bool,
    }

    impl RocksDb {
        fn open(&self, dir: &TempDir) -> Result<RocksDbStorage<u64>, StorageError> {
            if self.inline {
                RocksDbStorage::open_inline(dir.path())
            } else {
                RocksDbStorage::open(dir.path())
            }
        }
    }

    #[async_trait]
    impl StorageFactory for RocksDb {
        type Storage = RocksDbStorage<u64>;
        type Guard = TempDir;

        async fn create(&self) -> Result<(TempDir, Self::Storage), FactoryError> {
            let dir = TempDir::new()?;
            let store = self.open(&dir)?;
            Ok((dir, store))
        }

        async fn reopen(&self, dir: &TempDir) -> Option<Result<Self::Storage, StorageError>> {
            Some(self.open(dir))
        }

        /// Overwrite the promise record (key layout in `paxos_storage::rocks`) with a record of
        /// an unknown record version.
        async fn corrupt(&self, dir: &TempDir) -> Option<Result<(), FactoryError>> {
            let damage = || -> Result<(), FactoryError> {
                let db = rocksdb::DB::open_default(dir.path())?;
                if db.get(b"acc/promised")?.is_none() {
                    return Err("no promise record to damage".into());
                }
                db.put(b"acc/promised", [0xEE, 0x01, 0x02])?;
                Ok(())
            };
            Some(damage())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rocksdb_storage_conforms() {
        for inline in [false, true] {
            let report = conformance::run_all(&RocksDb { inline })
                .await
                .unwrap_or_else(|e| panic!("inline {inline}: {e}"));
            println!("inline {inline}: {report}");
        }
    }
}
