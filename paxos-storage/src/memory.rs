//! [`MemoryStorage`]: the whole durable state in memory, shared by clones.
//!
//! Cloning is cheap and every clone sees the same state, so a test can hand one clone to a node,
//! "crash" the node, and restart it from another clone: the restarted node finds every write the
//! first one acknowledged (the memory outlives the node, as a disk would).
//!
//! [`MemoryStorage::with_write_latency`] (feature `rocksdb`, which brings tokio) makes every
//! `save` wait before it applies anything, like a disk's fsync: a node crashed during the wait
//! loses the pending writes, exactly the writes it had not been told were durable.

use async_trait::async_trait;
use paxos_core::{DurableState, Storage, StorageError, Value, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// In-memory [`Storage`]. `save` is atomic (one lock) and "durable" for as long as any clone
/// lives.
#[derive(Debug)]
pub struct MemoryStorage<V> {
    state: Arc<Mutex<DurableState<V>>>,
    /// How long `save` waits before applying (zero: applies at once).
    write_latency: Duration,
}

impl<V> Clone for MemoryStorage<V> {
    fn clone(&self) -> Self {
        MemoryStorage {
            state: self.state.clone(),
            write_latency: self.write_latency,
        }
    }
}

impl<V> Default for MemoryStorage<V> {
    fn default() -> Self {
        MemoryStorage {
            state: Arc::new(Mutex::new(DurableState::default())),
            write_latency: Duration::ZERO,
        }
    }
}

impl<V: Value> MemoryStorage<V> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// This store (sharing its state with every clone) with a simulated write latency: each
    /// `save` first sleeps `latency` with `tokio::time::sleep` (virtual time under turmoil or a
    /// paused clock), *then* applies its writes atomically. If the caller is dropped during the
    /// sleep — a crashed node — none of that call's writes are applied: a crash loses exactly
    /// the writes not yet reported durable, as with a real disk. The latency is per handle, so
    /// clones made before this call keep theirs.
    pub fn with_write_latency(mut self, latency: Duration) -> Self {
        self.write_latency = latency;
        self
    }

    /// The write latency set by `with_write_latency` (zero by default).
    pub fn write_latency(&self) -> Duration {
        self.write_latency
    }

    /// A copy of the current state (for tests and invariant checkers).
    pub fn state(&self) -> DurableState<V> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DurableState<V>> {
        // A panic while holding the lock cannot leave a half-applied save: apply is infallible.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl<V: Value> Storage<V> for MemoryStorage<V> {
    async fn load(&self) -> Result<DurableState<V>, StorageError> {
        Ok(self.state())
    }

    async fn save(&self, writes: &[Write<V>]) -> Result<(), StorageError> {
        // Wait first, apply after: a crash during the wait drops the whole call (nothing partial).
        if !self.write_latency.is_zero() {
            tokio::time::sleep(self.write_latency).await;
        }
        let mut state = self.lock();
        for w in writes {
            state.apply(w);
        }
        Ok(())
    }
}
