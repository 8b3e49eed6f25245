//! What one step of a state machine asks the runtime to do.
//!
//! The rule that makes Paxos survive crashes lives in how the runtime consumes this type:
//! **every write in [`Effects::writes`] is made durable, in one atomic [`crate::Storage::save`],
//! before any message in [`Effects::messages`] leaves the node and before any decision in
//! [`Effects::decided`] is reported to a client.** State machines therefore never need a second
//! "send after persist" list: everything they emit waits for the writes of the same step.

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::message::{Envelope, Message};

/// One durable change. A [`crate::Storage`] applies a slice of them atomically, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Write<V> {
    /// The acceptor promised `ballot` (for all instances).
    Promise(Ballot),
    /// The acceptor accepted `value` in `instance` at `ballot`.
    Accept {
        /// The instance.
        instance: InstanceId,
        /// The ballot accepted.
        ballot: Ballot,
        /// The value accepted.
        value: V,
    },
    /// The proposer used or saw `round`; it must never use a round `<=` this after a restart.
    ProposerRound(u64),
    /// The learner learned that `value` is chosen in `instance`.
    Decided {
        /// The instance.
        instance: InstanceId,
        /// The chosen value.
        value: V,
    },
}

/// The output of one or more state-machine steps. Steps append to it, so a runtime can fold
/// many inputs into one storage write (group commit).
#[derive(Clone, Debug, PartialEq)]
pub struct Effects<V> {
    /// Durable writes, applied atomically and in order before anything else here happens.
    pub writes: Vec<Write<V>>,
    /// Messages to send once `writes` are durable.
    pub messages: Vec<Envelope<V>>,
    /// Decisions to report to clients once `writes` are durable.
    pub decided: Vec<(InstanceId, V)>,
}

impl<V> Default for Effects<V> {
    fn default() -> Self {
        Effects {
            writes: Vec::new(),
            messages: Vec::new(),
            decided: Vec::new(),
        }
    }
}

impl<V> Effects<V> {
    /// No effects.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the step asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.messages.is_empty() && self.decided.is_empty()
    }

    /// Queue `message` for `to`.
    pub fn send(&mut self, to: NodeId, message: Message<V>) {
        self.messages.push(Envelope { to, message });
    }

    /// Queue a durable write.
    pub fn write(&mut self, write: Write<V>) {
        self.writes.push(write);
    }

    /// Empty all three lists, keeping their allocations.
    pub fn clear(&mut self) {
        self.writes.clear();
        self.messages.clear();
        self.decided.clear();
    }
}
