//! Hashable, ordered mirrors of the paxos-core types that live in the model state.
//!
//! `Message<V>` and `DurableState<V>` derive only `PartialEq`, but a model state must be
//! `Eq + Hash` (fingerprints) and the network a `BTreeSet` (deterministic action order). [`Msg`]
//! mirrors `Message<u64>` variant for variant, and [`Disk`] wraps `DurableState<u64>`. Both
//! destructure exhaustively, so a new variant or field in paxos-core fails to compile here
//! instead of being silently dropped by the model.

use paxos_core::{AcceptedEntry, Ballot, DurableState, InstanceId, Message, NodeId};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// `Message<u64>`, with `Eq + Hash + Ord`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    Prepare {
        ballot: Ballot,
        first: InstanceId,
    },
    Promise {
        ballot: Ballot,
        /// `(instance, ballot, value)` of each `AcceptedEntry`, in the acceptor's order.
        accepted: Vec<(InstanceId, Ballot, u64)>,
    },
    Accept {
        ballot: Ballot,
        instance: InstanceId,
        value: u64,
    },
    Accepted {
        ballot: Ballot,
        instance: InstanceId,
        value: Option<u64>,
    },
    Nack {
        ballot: Ballot,
        promised: Ballot,
    },
    Decided {
        instance: InstanceId,
        value: u64,
    },
    Chosen {
        ballot: Ballot,
        instances: Vec<InstanceId>,
    },
    Heartbeat,
    CatchUp {
        first: InstanceId,
    },
}

impl From<Message<u64>> for Msg {
    fn from(m: Message<u64>) -> Msg {
        match m {
            Message::Prepare { ballot, first } => Msg::Prepare { ballot, first },
            Message::Promise { ballot, accepted } => Msg::Promise {
                ballot,
                accepted: accepted
                    .into_iter()
                    .map(|e| (e.instance, e.ballot, e.value))
                    .collect(),
            },
            Message::Accept {
                ballot,
                instance,
                value,
            } => Msg::Accept {
                ballot,
                instance,
                value,
            },
            Message::Accepted {
                ballot,
                instance,
                value,
            } => Msg::Accepted {
                ballot,
                instance,
                value,
            },
            Message::Nack { ballot, promised } => Msg::Nack { ballot, promised },
            Message::Decided { instance, value } => Msg::Decided { instance, value },
            Message::Chosen { ballot, instances } => Msg::Chosen { ballot, instances },
            Message::Heartbeat => Msg::Heartbeat,
            Message::CatchUp { first } => Msg::CatchUp { first },
        }
    }
}

impl From<&Msg> for Message<u64> {
    fn from(m: &Msg) -> Message<u64> {
        match m.clone() {
            Msg::Prepare { ballot, first } => Message::Prepare { ballot, first },
            Msg::Promise { ballot, accepted } => Message::Promise {
                ballot,
                accepted: accepted
                    .into_iter()
                    .map(|(instance, ballot, value)| AcceptedEntry {
                        instance,
                        ballot,
                        value,
                    })
                    .collect(),
            },
            Msg::Accept {
                ballot,
                instance,
                value,
            } => Message::Accept {
                ballot,
                instance,
                value,
            },
            Msg::Accepted {
                ballot,
                instance,
                value,
            } => Message::Accepted {
                ballot,
                instance,
                value,
            },
            Msg::Nack { ballot, promised } => Message::Nack { ballot, promised },
            Msg::Decided { instance, value } => Message::Decided { instance, value },
            Msg::Chosen { ballot, instances } => Message::Chosen { ballot, instances },
            Msg::Heartbeat => Message::Heartbeat,
            Msg::CatchUp { first } => Message::CatchUp { first },
        }
    }
}

/// Compact, trace-friendly: `accept i0 1.1=7`.
impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Prepare { ballot, first } => write!(f, "prepare {ballot} from {first}"),
            Msg::Promise { ballot, accepted } => {
                write!(f, "promise {ballot} [")?;
                for (n, (i, b, v)) in accepted.iter().enumerate() {
                    let sep = if n == 0 { "" } else { ", " };
                    write!(f, "{sep}{i} {b}={v}")?;
                }
                write!(f, "]")
            }
            Msg::Accept {
                ballot,
                instance,
                value,
            } => write!(f, "accept {instance} {ballot}={value}"),
            Msg::Accepted {
                ballot,
                instance,
                value,
            } => match value {
                Some(value) => write!(f, "accepted {instance} {ballot}={value}"),
                None => write!(f, "accepted {instance} {ballot}"),
            },
            Msg::Nack { ballot, promised } => write!(f, "nack {ballot} (promised {promised})"),
            Msg::Decided { instance, value } => write!(f, "decided {instance}={value}"),
            Msg::Chosen { ballot, instances } => write!(f, "chosen {ballot} {instances:?}"),
            Msg::Heartbeat => write!(f, "heartbeat"),
            Msg::CatchUp { first } => write!(f, "catch-up from {first}"),
        }
    }
}

/// A message in flight.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Packet {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Msg,
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} {:?}", self.from, self.to, self.msg)
    }
}

/// A node's durable state, as the runtime's storage holds it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Disk(pub DurableState<u64>);

// Every field of `DurableState<u64>` is `Eq`, so its derived `PartialEq` is an equivalence.
impl Eq for Disk {}

impl Hash for Disk {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let DurableState {
            promised,
            accepted,
            proposer_round,
            decided,
        } = &self.0;
        promised.hash(state);
        accepted.hash(state);
        proposer_round.hash(state);
        decided.hash(state);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_round_trips_every_variant() {
        let b = Ballot::new(2, NodeId(1));
        let i = InstanceId(3);
        let all = vec![
            Message::Prepare {
                ballot: b,
                first: i,
            },
            Message::Promise {
                ballot: b,
                accepted: vec![AcceptedEntry {
                    instance: i,
                    ballot: b,
                    value: 9,
                }],
            },
            Message::Accept {
                ballot: b,
                instance: i,
                value: 1,
            },
            Message::Accepted {
                ballot: b,
                instance: i,
                value: Some(1),
            },
            Message::Accepted {
                ballot: b,
                instance: i,
                value: None,
            },
            Message::Chosen {
                ballot: b,
                instances: vec![i],
            },
            Message::Nack {
                ballot: b,
                promised: b,
            },
            Message::Decided {
                instance: i,
                value: 1,
            },
            Message::Heartbeat,
            Message::CatchUp { first: i },
        ];
        for m in all {
            let back: Message<u64> = (&Msg::from(m.clone())).into();
            assert_eq!(back, m);
        }
    }
}
