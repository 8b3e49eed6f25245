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

        /// Flip the last byte of the snapshot record: a byte of the snapshot's data.
        async fn damage_snapshot(&self, dir: &TempDir) -> Option<Result<(), FactoryError>> {
            let damage = || -> Result<(), FactoryError> {
                let db = rocksdb::DB::open_default(dir.path())?;
                let mut record = db
                    .get(b"snap/latest")?
                    .ok_or("no snapshot record to damage")?;
                *record.last_mut().ok_or("an empty snapshot record")? ^= 0x01;
                db.put(b"snap/latest", record)?;
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

/// The compaction cases are trusted because each fails on a backend with that one flaw.
mod broken {
    use super::*;
    use paxos_core::{DurableState, InstanceId, Storage, Write};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Copy, Debug)]
    enum Flaw {
        /// Acknowledges a truncation and drops nothing.
        KeepsTruncatedEntries,
        /// Drops the whole range asked for, past what the snapshot covers.
        TruncatesPastTheSnapshot,
        /// Keeps a snapshot's metadata and only its first KiB.
        TearsLargeSnapshots,
    }

    struct Flawed {
        state: Arc<Mutex<DurableState<u64>>>,
        flaw: Flaw,
    }

    #[async_trait]
    impl Storage<u64> for Flawed {
        async fn load(&self) -> Result<DurableState<u64>, StorageError> {
            Ok(self.state.lock().unwrap().clone())
        }

        async fn save(&self, writes: &[Write<u64>]) -> Result<(), StorageError> {
            let mut state = self.state.lock().unwrap();
            for w in writes {
                match (self.flaw, w) {
                    (Flaw::KeepsTruncatedEntries, Write::TruncateBelow(_)) => {}
                    (Flaw::TruncatesPastTheSnapshot, Write::TruncateBelow(i)) => {
                        let below: InstanceId = *i;
                        state.log_start = state.log_start.max(below);
                        state.accepted = state.accepted.split_off(&below);
                        state.decided = state.decided.split_off(&below);
                    }
                    (Flaw::TearsLargeSnapshots, Write::Snapshot(s)) => {
                        let mut torn = s.clone();
                        torn.data.truncate(1024);
                        state.apply(&Write::Snapshot(torn));
                    }
                    _ => state.apply(w),
                }
            }
            Ok(())
        }
    }

    struct FlawedFactory(Flaw);

    #[async_trait]
    impl StorageFactory for FlawedFactory {
        type Storage = Flawed;
        type Guard = Arc<Mutex<DurableState<u64>>>;

        async fn create(&self) -> Result<(Self::Guard, Flawed), FactoryError> {
            let state = Arc::new(Mutex::new(DurableState::default()));
            let store = Flawed {
                state: state.clone(),
                flaw: self.0,
            };
            Ok((state, store))
        }

        async fn reopen(&self, guard: &Self::Guard) -> Option<Result<Flawed, StorageError>> {
            Some(Ok(Flawed {
                state: guard.clone(),
                flaw: self.0,
            }))
        }
    }

    #[tokio::test]
    async fn each_compaction_case_fails_on_the_flaw_it_guards_against() {
        for (flaw, case) in [
            (Flaw::KeepsTruncatedEntries, "truncation_survives_reopen"),
            (
                Flaw::TruncatesPastTheSnapshot,
                "truncation_stops_at_the_snapshot",
            ),
            (Flaw::TearsLargeSnapshots, "large_snapshot_round_trips"),
        ] {
            let failure = conformance::run_all(&FlawedFactory(flaw))
                .await
                .expect_err("a flawed backend must fail the suite");
            let failed: Vec<_> = failure.report.failures().map(|c| c.name).collect();
            assert!(
                failed.contains(&case),
                "{flaw:?} should fail {case}; failed: {failed:?}\n{}",
                failure.report
            );
        }
    }
}
