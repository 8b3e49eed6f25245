//! [`MemoryStorage`]: the whole durable state in memory, shared by clones.
//!
//! Cloning is cheap and every clone sees the same state, so a test can hand one clone to a node,
//! "crash" the node, and restart it from another clone: the restarted node finds every write the
//! first one acknowledged (the memory outlives the node, as a disk would).

use async_trait::async_trait;
use paxos_core::{DurableState, Storage, StorageError, Value, Write};
use std::sync::{Arc, Mutex};

/// In-memory [`Storage`]. `save` is atomic (one lock) and "durable" for as long as any clone
/// lives.
#[derive(Debug)]
pub struct MemoryStorage<V> {
    state: Arc<Mutex<DurableState<V>>>,
}

impl<V> Clone for MemoryStorage<V> {
    fn clone(&self) -> Self {
        MemoryStorage {
            state: self.state.clone(),
        }
    }
}

impl<V> Default for MemoryStorage<V> {
    fn default() -> Self {
        MemoryStorage {
            state: Arc::new(Mutex::new(DurableState::default())),
        }
    }
}

impl<V: Value> MemoryStorage<V> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the current state (for tests and invariant checkers).
    pub fn snapshot(&self) -> DurableState<V> {
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
        Ok(self.snapshot())
    }

    async fn save(&self, writes: &[Write<V>]) -> Result<(), StorageError> {
        let mut state = self.lock();
        for w in writes {
            state.apply(w);
        }
        Ok(())
    }
}
