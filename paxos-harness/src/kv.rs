//! The reference state machine: a key-value map with compare-and-set, driven by the chaos
//! workload's `u64` values, and the digest log every node's copy reports to.
//!
//! A value encodes one operation: the low 2 bits pick it (`put`, `get`, `cas`, `delete`), the
//! next 4 the key (16 keys, so operations collide), the rest the operand. After every applied
//! entry and every snapshot restored, a node records the CRC-32 of its map's encoding under
//! the instance: [`Digests::check`] then demands that every node that reached an instance
//! holds the same state there, whether it applied its way there or installed a snapshot.

use bytes::Bytes;
use paxos_core::{InstanceId, NodeId, RestoreError, StateMachine};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// State digests per instance per node (shared by every node of a run).
#[derive(Clone, Debug, Default)]
pub struct Digests(Arc<Mutex<DigestLog>>);

#[derive(Debug, Default)]
struct DigestLog {
    /// After applying the entry at an instance: node -> digest.
    applied: BTreeMap<InstanceId, BTreeMap<NodeId, u32>>,
    /// Snapshots restored: (node, index, digest).
    restored: Vec<(NodeId, InstanceId, u32)>,
}

impl Digests {
    fn lock(&self) -> std::sync::MutexGuard<'_, DigestLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Snapshots restored from peers or at start-up, over all nodes.
    pub fn restores(&self) -> usize {
        self.lock().restored.len()
    }

    /// Every node that applied an instance holds the same state after it, and a node that
    /// restored a snapshot below `i` holds the state some node had after its last applied
    /// instance below `i` (or the empty state, if none applied anything below).
    ///
    /// # Errors
    /// The first instance where two states differ, with the nodes and digests.
    pub fn check(&self) -> Result<(), String> {
        let log = self.lock();
        for (instance, by_node) in &log.applied {
            let mut digests = by_node.iter();
            if let Some((first_node, first)) = digests.next()
                && let Some((node, other)) = digests.find(|(_, d)| *d != first)
            {
                return Err(format!(
                    "state differs after {instance}: {first_node} has {first:#010x}, {node} has {other:#010x}"
                ));
            }
        }
        for &(node, index, digest) in &log.restored {
            let before = log
                .applied
                .range(..index)
                .next_back()
                .and_then(|(_, by_node)| by_node.values().next().copied())
                .unwrap_or_else(|| digest_of(&BTreeMap::new()));
            if digest != before {
                return Err(format!(
                    "{node} restored a snapshot below {index} holding {digest:#010x}, the state there is {before:#010x}"
                ));
            }
        }
        Ok(())
    }
}

fn digest_of(map: &BTreeMap<u8, u64>) -> u32 {
    crc32fast::hash(&encode(map))
}

fn encode(map: &BTreeMap<u8, u64>) -> Vec<u8> {
    // A BTreeMap encodes in key order: equal maps, equal bytes.
    postcard::to_allocvec(map).unwrap_or_default()
}

/// One node's copy of the map.
#[derive(Debug)]
pub struct KvStore {
    node: NodeId,
    map: BTreeMap<u8, u64>,
    digests: Digests,
    /// Break it on purpose: snapshots leave out the highest key (to prove [`Digests::check`]
    /// catches a snapshot that is not the state).
    lossy_snapshots: bool,
}

impl KvStore {
    /// An empty map on `node`, reporting to `digests`.
    pub fn new(node: NodeId, digests: Digests, lossy_snapshots: bool) -> Self {
        KvStore {
            node,
            map: BTreeMap::new(),
            digests,
            lossy_snapshots,
        }
    }
}

impl StateMachine<u64> for KvStore {
    /// Outputs what the key holds after the operation (8 bytes little-endian; empty if
    /// nothing).
    fn apply(&mut self, instance: InstanceId, value: &u64) -> Bytes {
        let key = ((value >> 2) & 0xF) as u8;
        let operand = value >> 6;
        match value & 3 {
            0 => {
                self.map.insert(key, operand);
            }
            1 => {} // get: reads change nothing
            2 => {
                // cas: set to the operand if the key holds its low half, or is absent.
                let expected = operand & 0xFFFF;
                if self.map.get(&key).is_none_or(|v| *v & 0xFFFF == expected) {
                    self.map.insert(key, operand);
                }
            }
            _ => {
                self.map.remove(&key);
            }
        }
        let digest = digest_of(&self.map);
        self.digests
            .lock()
            .applied
            .entry(instance)
            .or_default()
            .insert(self.node, digest);
        self.map
            .get(&key)
            .map_or_else(Bytes::new, |v| Bytes::copy_from_slice(&v.to_le_bytes()))
    }

    fn snapshot(&self) -> Bytes {
        let mut map = self.map.clone();
        if self.lossy_snapshots {
            map.pop_last();
        }
        encode(&map).into()
    }

    fn restore(&mut self, below: InstanceId, state: &[u8]) -> Result<(), RestoreError> {
        let (map, rest) = postcard::take_from_bytes::<BTreeMap<u8, u64>>(state)
            .map_err(|e| RestoreError(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RestoreError(format!("{} trailing bytes", rest.len())));
        }
        self.map = map;
        let digest = digest_of(&self.map);
        self.digests
            .lock()
            .restored
            .push((self.node, below, digest));
        Ok(())
    }
}
