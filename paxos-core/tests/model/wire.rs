//! The model's network and disk: the paxos-core types themselves (they are `Eq + Hash + Ord`
//! for ordered values), and [`Shared`], which lets unchanged nodes be shared between states.

use paxos_core::{DurableState, Message, NodeId};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A message of the model (values are `u64`).
pub type Msg = Message<u64>;

/// A message in flight.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Packet {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Msg,
}

/// Compact, trace-friendly: `n1->n2 accept i0 1.1 =7`.
impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} {}", self.from, self.to, self.msg)
    }
}

/// A node's durable state, as the runtime's storage holds it.
pub type Disk = DurableState<u64>;

/// A value shared by every state that did not change it, hashed once. Most steps change one
/// node, so the others are neither cloned nor re-hashed; this is what makes the checks fast
/// enough for debug builds.
#[derive(Clone)]
pub struct Shared<T> {
    hash: u64,
    value: Arc<T>,
}

impl<T: Hash> Shared<T> {
    pub fn new(value: T) -> Self {
        // `DefaultHasher::new()` has fixed keys: the same value always gets the same hash.
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        Shared {
            hash: h.finish(),
            value: Arc::new(value),
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
            || (self.hash == other.hash && self.value == other.value)
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}
