//! The observer: sees every durable write and every message of a run, from outside the nodes.
//!
//! Nodes never talk to it; it sits in two wrappers the cluster builder puts around each node's
//! backends: [`ObservedStorage`] (reports writes once `save` returned `Ok`, i.e. once durable)
//! and [`crate::faults::FaultyTransport`] (reports messages, and drops them on faults). The
//! observer feeds the [`Checker`] and keeps an event log for traces.

use crate::invariants::{Checkable, Checker, Val, Violation};
use async_trait::async_trait;
use paxos_core::{Ballot, DurableState, Entry, InstanceId, NodeId, Storage, StorageError, Write};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One line of a run's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Simulated (or real, for TCP) time since the run started.
    pub at: Duration,
    /// What happened.
    pub what: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A message was sent (and not dropped by a fault).
    Sent {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Short description (`prepare 1.2`).
        what: String,
    },
    /// A message was dropped by an injected fault.
    Dropped {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Short description.
        what: String,
    },
    /// A durable write.
    Durable {
        /// The node.
        node: NodeId,
        /// The write, printed.
        what: String,
    },
    /// A client or fault action of the scenario.
    Note(String),
}

#[derive(Debug)]
struct State<V> {
    checker: Checker<V>,
    events: Vec<Event>,
    clock: Clock,
    /// Accepted entries carried by the promises each node received (what its phase 1 cost).
    promised_entries: BTreeMap<NodeId, usize>,
}

/// Shared, cloneable observer of one run.
#[derive(Debug)]
pub struct Observer<V = Val> {
    state: Arc<Mutex<State<V>>>,
}

impl<V> Clone for Observer<V> {
    fn clone(&self) -> Self {
        Observer {
            state: self.state.clone(),
        }
    }
}

/// Where run time comes from: the simulation's clock, or tokio's for real-time runs.
#[derive(Debug)]
enum Clock {
    #[cfg(feature = "turmoil")]
    Sim,
    Tokio(Option<tokio::time::Instant>),
}

impl<V: Checkable> Observer<V> {
    /// An observer for a cluster that starts with `acceptors` (it follows the membership
    /// changes chosen); `simulated` picks the clock.
    pub fn new(acceptors: impl IntoIterator<Item = NodeId>, simulated: bool) -> Self {
        #[cfg(feature = "turmoil")]
        let clock = if simulated {
            Clock::Sim
        } else {
            Clock::Tokio(None)
        };
        #[cfg(not(feature = "turmoil"))]
        let clock = {
            let _ = simulated;
            Clock::Tokio(None)
        };
        Observer {
            state: Arc::new(Mutex::new(State {
                checker: Checker::new(acceptors),
                events: Vec::new(),
                clock,
                promised_entries: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<V>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(state: &mut State<V>, what: EventKind) {
        let at = match &mut state.clock {
            #[cfg(feature = "turmoil")]
            Clock::Sim => turmoil::sim_elapsed().unwrap_or_default(),
            Clock::Tokio(start) => {
                let now = tokio::time::Instant::now();
                now - *start.get_or_insert(now)
            }
        };
        state.events.push(Event { at, what });
    }

    /// Record a client proposal of `value` (validity needs to know what was proposed).
    pub fn proposed(&self, node: NodeId, instance: Option<InstanceId>, value: V) {
        let mut s = self.lock();
        let at = instance.map_or_else(|| "next".to_string(), |i| i.to_string());
        let note = format!("client proposes {value:?} at {node} in {at}");
        s.checker.on_proposed(value);
        Self::push(&mut s, EventKind::Note(note));
    }

    /// Record that `node` told a client (or a `decisions()` caller) that `value` is decided in
    /// `instance`, and check it is the chosen value.
    pub fn reported(&self, node: NodeId, instance: InstanceId, value: Entry<V>) {
        self.lock().checker.on_reported(node, instance, value);
    }

    /// Record a scenario action.
    pub fn note(&self, text: impl Into<String>) {
        Self::push(&mut self.lock(), EventKind::Note(text.into()));
    }

    /// Record that a promise reporting `entries` accepted entries was sent to `to`.
    pub fn promise_sent(&self, to: NodeId, entries: usize) {
        *self.lock().promised_entries.entry(to).or_default() += entries;
    }

    /// How many accepted entries the promises sent to `node` have carried so far.
    pub fn promised_entries(&self, node: NodeId) -> usize {
        self.lock()
            .promised_entries
            .get(&node)
            .copied()
            .unwrap_or(0)
    }

    /// Record a message sent or dropped.
    pub fn message(&self, from: NodeId, to: NodeId, what: String, dropped: bool) {
        let kind = if dropped {
            EventKind::Dropped { from, to, what }
        } else {
            EventKind::Sent { from, to, what }
        };
        Self::push(&mut self.lock(), kind);
    }

    /// Record writes of `node` that just became durable, and check them.
    pub fn durable(&self, node: NodeId, writes: &[Write<V>]) {
        let mut s = self.lock();
        for w in writes {
            match w {
                Write::Promise(b) => s.checker.on_promised(node, *b),
                Write::Accept {
                    instance,
                    ballot,
                    entry,
                } => s
                    .checker
                    .on_accepted(node, *instance, *ballot, entry.clone()),
                Write::Decided { instance, entry } => {
                    s.checker.on_decided(node, *instance, entry.clone());
                }
                // A snapshot holds no protocol fact of its own: what it covers was decided, and
                // its install is checked against the decided prefix where it is applied.
                Write::ProposerRound(_) | Write::Snapshot(_) | Write::TruncateBelow(_) => {}
            }
            Self::push(
                &mut s,
                EventKind::Durable {
                    node,
                    what: w.to_string(),
                },
            );
        }
    }

    /// Violations found so far.
    pub fn violations(&self) -> Vec<Violation<V>> {
        self.lock().checker.violations().to_vec()
    }

    /// Values chosen so far.
    pub fn chosen(&self) -> BTreeMap<InstanceId, Entry<V>> {
        self.lock().checker.chosen().clone()
    }

    /// The lowest instance below `instance` that nothing is chosen in yet, if any.
    pub fn unchosen_below(&self, instance: InstanceId) -> Option<InstanceId> {
        let s = self.lock();
        let chosen = s.checker.chosen();
        (0..instance.0)
            .map(InstanceId)
            .find(|i| !chosen.contains_key(i))
    }

    /// Every `(acceptor, ballot, value)` durably accepted in `instance` so far.
    pub fn accepted_in(&self, instance: InstanceId) -> Vec<(NodeId, Ballot, Entry<V>)> {
        self.lock().checker.accepted_in(instance)
    }

    /// Values proposed so far.
    pub fn proposed_values(&self) -> BTreeSet<V> {
        self.lock().checker.proposed().clone()
    }

    /// The full event log, one line an event (used to compare two runs of one seed).
    pub fn log(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        for e in &s.events {
            let _ = writeln!(out, "{:>10.3}ms {:?}", e.at.as_secs_f64() * 1e3, e.what);
        }
        out
    }

    /// The run as a Mermaid sequence diagram (messages, drops, durable writes, notes).
    pub fn mermaid(&self, nodes: &[NodeId]) -> String {
        let s = self.lock();
        let mut out = String::from("sequenceDiagram\n");
        for n in nodes {
            let _ = writeln!(out, "    participant {n}");
        }
        for e in &s.events {
            let ms = e.at.as_secs_f64() * 1e3;
            let _ = match &e.what {
                EventKind::Sent { from, to, what } => {
                    writeln!(out, "    {from}->>{to}: {what} @{ms:.0}ms")
                }
                EventKind::Dropped { from, to, what } => {
                    writeln!(out, "    {from}-x{to}: {what} (dropped) @{ms:.0}ms")
                }
                EventKind::Durable { node, what } => writeln!(out, "    Note over {node}: {what}"),
                EventKind::Note(text) => match nodes.first() {
                    Some(first) => writeln!(out, "    Note over {first}: {text} @{ms:.0}ms"),
                    None => Ok(()),
                },
            };
        }
        out
    }
}

/// A [`Storage`] that reports every durable write to the [`Observer`].
#[derive(Debug)]
pub struct ObservedStorage<S, V = Val> {
    inner: S,
    node: NodeId,
    observer: Observer<V>,
}

impl<S, V> ObservedStorage<S, V> {
    /// Wrap `inner`, the storage of `node`.
    pub fn new(inner: S, node: NodeId, observer: Observer<V>) -> Self {
        ObservedStorage {
            inner,
            node,
            observer,
        }
    }
}

#[async_trait]
impl<V: Checkable, S: Storage<V>> Storage<V> for ObservedStorage<S, V> {
    async fn load(&self) -> Result<DurableState<V>, StorageError> {
        self.inner.load().await
    }

    async fn save(&self, writes: &[Write<V>]) -> Result<(), StorageError> {
        self.inner.save(writes).await?;
        self.observer.durable(self.node, writes);
        Ok(())
    }
}
