//! Network faults injected between a node and its transport: partitions (symmetric or
//! one-way), seeded message loss, and on the receiving side seeded duplication and extra delay
//! (which reorders messages, even on one link). Crashes and restarts are the cluster's business
//! ([`crate::cluster::Cluster::crash`]).
//!
//! Every decision to drop, copy or hold back comes from one seeded RNG, so a run is
//! reproducible by its seed.

use crate::invariants::{Checkable, Val};
use crate::observer::Observer;
use async_trait::async_trait;
use paxos_core::{Message, NodeId, Transport, TransportError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Sleep until `at`, or forever if there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug)]
struct State {
    /// Directed links `(from, to)` that deliver nothing.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Directed links on which messages of one kind (`Message::kind`) are lost.
    cut_kind: BTreeSet<(NodeId, NodeId, &'static str)>,
    /// How many messages each `cut_kind` entry has lost so far (kept across heals).
    lost_kind: BTreeMap<(NodeId, NodeId, &'static str), u64>,
    /// Messages let through, per link and kind (what a test of traffic counts).
    sent_kind: BTreeMap<(NodeId, NodeId, &'static str), u64>,
    /// How many messages `loss` has lost so far.
    lost_at_random: u64,
    /// Probability that a message on a link is lost.
    loss: BTreeMap<(NodeId, NodeId), f64>,
    /// Probability that a message on a link is delivered twice (the copy later).
    duplicate: BTreeMap<(NodeId, NodeId), f64>,
    /// Probability that a message on a link is held back, and for at most how long.
    delay: BTreeMap<(NodeId, NodeId), (f64, Duration)>,
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
                lost_kind: BTreeMap::new(),
                sent_kind: BTreeMap::new(),
                lost_at_random: 0,
                loss: BTreeMap::new(),
                duplicate: BTreeMap::new(),
                delay: BTreeMap::new(),
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

    /// How many messages of `kind` [`Faults::drop_kind`] has lost on `from -> to` so far. A
    /// scenario that needs a message lost (not merely late) waits for this before it heals: a
    /// loaded machine may send it only after the heal.
    pub fn lost(&self, from: NodeId, to: NodeId, kind: &'static str) -> u64 {
        self.lock()
            .lost_kind
            .get(&(from, to, kind))
            .copied()
            .unwrap_or(0)
    }

    /// How many messages of `kind` went out on `from -> to` so far (not lost by a fault).
    pub fn sent(&self, from: NodeId, to: NodeId, kind: &'static str) -> u64 {
        self.lock()
            .sent_kind
            .get(&(from, to, kind))
            .copied()
            .unwrap_or(0)
    }

    /// How many messages [`Faults::set_loss`] has lost so far, on every link.
    pub fn lost_at_random(&self) -> u64 {
        self.lock().lost_at_random
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

    /// Deliver each message on `from -> to` a second time with probability `rate`; the copy
    /// arrives up to 20 ms after the original.
    pub fn set_duplicate(&self, from: NodeId, to: NodeId, rate: f64) {
        self.lock().duplicate.insert((from, to), rate);
    }

    /// Hold each message on `from -> to` back with probability `rate`, for a random time up to
    /// `max`: later messages overtake it.
    pub fn set_delay(&self, from: NodeId, to: NodeId, rate: f64, max: Duration) {
        self.lock().delay.insert((from, to), (rate, max));
    }

    /// Remove every partition, loss, duplication and delay.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.cut.clear();
        s.cut_kind.clear();
        s.loss.clear();
        s.duplicate.clear();
        s.delay.clear();
    }

    /// Is `from -> to` cut right now?
    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.lock().cut.contains(&(from, to))
    }

    /// On receipt of a message `from -> to`: hold it back for how long (`None`: deliver now),
    /// and deliver a copy after how long (`None`: no copy).
    fn on_receive(&self, from: NodeId, to: NodeId) -> (Option<Duration>, Option<Duration>) {
        let mut s = self.lock();
        let s = &mut *s;
        let hold = match s.delay.get(&(from, to)).copied() {
            Some((rate, max)) if rate > 0.0 && s.rng.gen_bool(rate.min(1.0)) => {
                Some(random_upto(&mut s.rng, max))
            }
            _ => None,
        };
        let copy = match s.duplicate.get(&(from, to)).copied() {
            Some(rate) if rate > 0.0 && s.rng.gen_bool(rate.min(1.0)) => {
                Some(random_upto(&mut s.rng, DUPLICATE_LAG))
            }
            _ => None,
        };
        (hold, copy)
    }

    /// Should a message `from -> to` be dropped now?
    fn drops(&self, from: NodeId, to: NodeId, kind: &'static str) -> bool {
        let mut s = self.lock();
        if s.cut.contains(&(from, to)) {
            return true;
        }
        if s.cut_kind.contains(&(from, to, kind)) {
            *s.lost_kind.entry((from, to, kind)).or_insert(0) += 1;
            return true;
        }
        let lost = match s.loss.get(&(from, to)).copied() {
            Some(rate) if rate > 0.0 => s.rng.gen_bool(rate.min(1.0)),
            _ => false,
        };
        s.lost_at_random += u64::from(lost);
        if !lost {
            *s.sent_kind.entry((from, to, kind)).or_insert(0) += 1;
        }
        lost
    }
}

/// The latest a duplicate arrives after the original.
const DUPLICATE_LAG: Duration = Duration::from_millis(20);

/// A uniformly random duration in `[0, max]`, at microsecond resolution.
fn random_upto(rng: &mut StdRng, max: Duration) -> Duration {
    let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rng.gen_range(0..=micros))
}

/// A message held back by a delay or duplication fault, and when it is due.
type Held<V> = (tokio::time::Instant, NodeId, Message<V>);

/// A [`Transport`] wrapper that applies [`Faults`] and reports messages to the [`Observer`].
pub struct FaultyTransport<T, V = Val> {
    inner: T,
    me: NodeId,
    faults: Faults,
    observer: Observer<V>,
    trace: bool,
    /// Received messages held back (delayed originals, late duplicates), in arrival order.
    held: Vec<Held<V>>,
}

impl<T, V> FaultyTransport<T, V> {
    /// Wrap `inner`, the transport of `me`. With `trace`, every message goes into the event log.
    pub fn new(inner: T, me: NodeId, faults: Faults, observer: Observer<V>, trace: bool) -> Self {
        FaultyTransport {
            inner,
            me,
            faults,
            observer,
            trace,
            held: Vec::new(),
        }
    }
}

#[async_trait]
impl<V: Checkable, T: Transport<V>> Transport<V> for FaultyTransport<T, V> {
    async fn send(&self, to: NodeId, message: Message<V>) -> Result<(), TransportError> {
        let dropped = self.faults.drops(self.me, to, message.kind());
        if let Message::Promise { accepted, .. } = &message {
            self.observer.promise_sent(to, accepted.len());
        }
        let quiet = matches!(message, Message::Heartbeat | Message::CatchUp { .. });
        if self.trace && !quiet {
            self.observer
                .message(self.me, to, message.to_string(), dropped);
        }
        if dropped {
            return Ok(()); // lost in the network: the sender cannot tell
        }
        self.inner.send(to, message).await
    }

    /// The inner mailbox; held (delayed) messages are still "in the network", not delivered.
    fn backlog(&self) -> usize {
        self.inner.backlog()
    }

    async fn set_peers(&mut self, peers: &paxos_core::Peers) -> Result<(), TransportError> {
        self.inner.set_peers(peers).await
    }

    /// Cancel-safe if the inner `recv` is: a message taken from the inner transport is either
    /// returned or stored in `held` before the next await.
    async fn recv(&mut self) -> Result<(NodeId, Message<V>), TransportError> {
        loop {
            // 1. A held message that is due goes first (the earliest-due one).
            let now = tokio::time::Instant::now();
            let due = (0..self.held.len())
                .filter(|&i| self.held[i].0 <= now)
                .min_by_key(|&i| self.held[i].0);
            if let Some(i) = due {
                let (_, from, message) = self.held.remove(i);
                if !self.faults.is_cut(from, self.me) {
                    return Ok((from, message));
                }
                continue;
            }
            // 2. Otherwise wait for the network or for the next held message.
            let next = self.held.iter().map(|h| h.0).min();
            let (from, message) = tokio::select! {
                biased;
                received = self.inner.recv() => received?,
                _ = sleep_until(next) => continue,
            };
            // Messages already in flight when a link was cut are lost too.
            if self.faults.is_cut(from, self.me) {
                continue;
            }
            let (hold, copy) = self.faults.on_receive(from, self.me);
            let now = tokio::time::Instant::now();
            if let Some(lag) = copy {
                self.held.push((now + lag, from, message.clone()));
            }
            match hold {
                Some(d) => self.held.push((now + d, from, message)),
                None => return Ok((from, message)),
            }
        }
    }
}
