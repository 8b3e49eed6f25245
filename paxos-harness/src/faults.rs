//! Network faults injected between a node and its transport: partitions (symmetric or
//! one-way) and seeded message loss. Crashes and restarts are the cluster's business
//! ([`crate::cluster::Cluster::crash`]).
//!
//! Every decision to drop comes from one seeded RNG, so a run is reproducible by its seed.

use crate::invariants::Val;
use crate::observer::Observer;
use async_trait::async_trait;
use paxos_core::{Message, NodeId, Transport, TransportError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct State {
    /// Directed links `(from, to)` that deliver nothing.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Directed links on which messages of one kind (`Message::kind`) are lost.
    cut_kind: BTreeSet<(NodeId, NodeId, &'static str)>,
    /// Probability that a message on a link is lost.
    loss: BTreeMap<(NodeId, NodeId), f64>,
    rng: StdRng,
}

/// The fault plan of a run, shared by every node's [`FaultyTransport`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    /// No faults yet; loss decisions drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Faults {
            state: Arc::new(Mutex::new(State {
                cut: BTreeSet::new(),
                cut_kind: BTreeSet::new(),
                loss: BTreeMap::new(),
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cut both directions between `a` and `b`.
    pub fn partition(&self, a: NodeId, b: NodeId) {
        let mut s = self.lock();
        s.cut.insert((a, b));
        s.cut.insert((b, a));
    }

    /// Cut only `from -> to`.
    pub fn partition_oneway(&self, from: NodeId, to: NodeId) {
        self.lock().cut.insert((from, to));
    }

    /// Cut `node` off from every node in `others`.
    pub fn isolate(&self, node: NodeId, others: impl IntoIterator<Item = NodeId>) {
        for o in others {
            if o != node {
                self.partition(node, o);
            }
        }
    }

    /// Lose every message of `kind` (`"accept"`, `"accepted"`, ...) on `from -> to`.
    pub fn drop_kind(&self, from: NodeId, to: NodeId, kind: &'static str) {
        self.lock().cut_kind.insert((from, to, kind));
    }

    /// Restore both directions between `a` and `b`.
    pub fn repair(&self, a: NodeId, b: NodeId) {
        let mut s = self.lock();
        s.cut.remove(&(a, b));
        s.cut.remove(&(b, a));
    }

    /// Lose each message on `from -> to` with probability `rate`.
    pub fn set_loss(&self, from: NodeId, to: NodeId, rate: f64) {
        self.lock().loss.insert((from, to), rate);
    }

    /// Remove every partition and every loss rate.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.cut.clear();
        s.cut_kind.clear();
        s.loss.clear();
    }

    /// Should a message `from -> to` be dropped now?
    fn drops(&self, from: NodeId, to: NodeId, kind: &'static str) -> bool {
        let mut s = self.lock();
        if s.cut.contains(&(from, to)) || s.cut_kind.contains(&(from, to, kind)) {
            return true;
        }
        match s.loss.get(&(from, to)).copied() {
            Some(rate) if rate > 0.0 => s.rng.gen_bool(rate.min(1.0)),
            _ => false,
        }
    }
}

/// A [`Transport`] wrapper that applies [`Faults`] and reports messages to the [`Observer`].
pub struct FaultyTransport<T> {
    inner: T,
    me: NodeId,
    faults: Faults,
    observer: Observer,
    trace: bool,
}

impl<T> FaultyTransport<T> {
    /// Wrap `inner`, the transport of `me`. With `trace`, every message goes into the event log.
    pub fn new(inner: T, me: NodeId, faults: Faults, observer: Observer, trace: bool) -> Self {
        FaultyTransport {
            inner,
            me,
            faults,
            observer,
            trace,
        }
    }
}

/// A one-line description of a message for logs and diagrams.
pub fn describe(m: &Message<Val>) -> String {
    match m {
        Message::Prepare { ballot, first } => format!("prepare {ballot} from {first}"),
        Message::Promise { ballot, accepted } => {
            format!("promise {ballot} ({} accepted)", accepted.len())
        }
        Message::Accept {
            ballot,
            instance,
            value,
        } => format!("accept {instance} {ballot} ={value}"),
        Message::Accepted {
            ballot,
            instance,
            value,
        } => format!("accepted {instance} {ballot} ={value}"),
        Message::Nack { ballot, promised } => format!("nack {ballot} < {promised}"),
        Message::Decided { instance, value } => format!("decided {instance} ={value}"),
        Message::Heartbeat => "heartbeat".into(),
        Message::CatchUp { first } => format!("catch-up from {first}"),
    }
}

#[async_trait]
impl<T: Transport<Val>> Transport<Val> for FaultyTransport<T> {
    async fn send(&self, to: NodeId, message: Message<Val>) -> Result<(), TransportError> {
        let dropped = self.faults.drops(self.me, to, message.kind());
        let quiet = matches!(message, Message::Heartbeat | Message::CatchUp { .. });
        if self.trace && !quiet {
            self.observer
                .message(self.me, to, describe(&message), dropped);
        }
        if dropped {
            return Ok(()); // lost in the network: the sender cannot tell
        }
        self.inner.send(to, message).await
    }

    async fn recv(&mut self) -> Result<(NodeId, Message<Val>), TransportError> {
        loop {
            let (from, message) = self.inner.recv().await?;
            // Messages already in flight when a link was cut are lost too.
            if !self.faults.lock().cut.contains(&(from, self.me)) {
                return Ok((from, message));
            }
        }
    }
}
