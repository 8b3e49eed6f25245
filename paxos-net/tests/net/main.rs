//! paxos-net integration tests, one binary: codec properties, TCP, fuzzing a live listener,
//! and (feature `turmoil`) simulated networks with partitions and restarts.

mod codec;
mod fuzz;
#[cfg(feature = "turmoil")]
mod sim;
mod tcp;

use paxos_core::{Entry, InstanceId, Message, ProposalId};

/// A message whose value says who sent it and which one it was: `from * 1_000_000 + seq`.
pub fn tagged(from: u64, seq: u64) -> Message<u64> {
    Message::Decided {
        instance: InstanceId(seq),
        entry: Entry::Value {
            id: ProposalId::default(),
            value: from * 1_000_000 + seq,
        },
    }
}

/// The sender encoded in a [`tagged`] message.
pub fn tag_sender(message: &Message<u64>) -> Option<u64> {
    match message {
        Message::Decided { entry, .. } => entry.value().map(|v| v / 1_000_000),
        _ => None,
    }
}
