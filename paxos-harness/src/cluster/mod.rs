//! The one cluster builder: every suite, chaos, the benchmark and the tests build their
//! clusters here.
//!
//! A [`ClusterSpec`] says what the cluster looks like (nodes, roles, leader mode, timings); an
//! [`Env`] says what it runs on (storage, transport, seed). [`run`] builds the cluster, runs a
//! body against a [`Cluster`] handle, and returns the body's result with the run's
//! [`Observer`].
//!
//! Three networks, one API:
//! - **turmoil** (default, `cluster/sim.rs`): every node is a turmoil host, time is simulated and the
//!   run is reproducible bit for bit from its seed. Crashes and restarts are queued by the body
//!   and applied by the driver between `sim.step()` calls (a client cannot borrow the `Sim`).
//! - **tcp** and **channel** (`cluster/realtime.rs`): every node is a tokio task on one thread, over
//!   real loopback TCP (ports below the ephemeral range, see [`crate::ports`]) or in-process
//!   channels; time is real. A crash aborts the task and waits until it has released its
//!   storage and sockets.
//!
//! Storage is created outside the node (`cluster/storage.rs`), so it outlives a crash.
//!
//! ```
//! use paxos_harness::cluster::{self, ClusterSpec, Env};
//! use paxos_core::NodeId;
//!
//! // Three nodes on the simulated network; n1 proposes 7 and every node learns it.
//! let spec = ClusterSpec::symmetric(3);
//! let run = cluster::run(spec, &Env::new(1), |c| {
//!     Box::pin(async move {
//!         let (instance, entry) = c.propose(NodeId(1), 7).await?;
//!         c.await_decided(&c.live(), instance, std::time::Duration::from_secs(5))
//!             .await?;
//!         Ok(entry.value().copied())
//!     })
//! });
//! assert_eq!(run.result.unwrap(), Some(7));
//! assert!(run.observer.violations().is_empty());
//! ```

mod handle;
mod realtime;
#[cfg(feature = "turmoil")]
mod sim;
mod spec;
mod storage;

pub use handle::Cluster;
pub use spec::{
    ClusterSpec, Env, LinkSecurity, MachineFactory, NodeOptions, SimNetwork, StorageKind,
    TransportKind,
};
pub use storage::CustomStorage;

use crate::faults::{Faults, FaultyTransport};
use crate::invariants::{Checkable, Val};
use crate::observer::{ObservedStorage, Observer};
use paxos_core::{ConfigError, Fatal, Node, NodeError, NodeHandle, NodeId, Storage, Transport};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use storage::NodeStore;

/// A scenario failed: why, in one message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        Failure(format!("node error: {e}"))
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure(format!("invalid configuration: {e}"))
    }
}

/// Fail the scenario with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::cluster::Failure(format!($($arg)+)));
        }
    };
}

/// A body's future: what it returns, or why it failed.
pub type BodyFuture<R = ()> = Pin<Box<dyn Future<Output = Result<R, Failure>>>>;

/// A scenario body: an async function of the cluster.
pub type Body<V = Val, R = ()> = Box<dyn FnOnce(Cluster<V>) -> BodyFuture<R>>;

/// One incarnation of a node, ready to run: its loop, to await inline or spawn.
type NodeRun = Pin<Box<dyn Future<Output = Result<(), Fatal>> + Send>>;

/// What a run left behind.
pub struct RunResult<V = Val, R = ()> {
    /// The body's result (invariant violations are checked by the caller).
    pub result: Result<R, Failure>,
    /// The observer: event log, violations, chosen values.
    pub observer: Observer<V>,
    /// Run time (simulated under turmoil).
    pub elapsed: Duration,
    /// Lines the body printed with [`Cluster::say`].
    pub said: Vec<String>,
}

/// Build the cluster described by `spec` on `env`, run `body` against it, and report.
pub fn run<V: Checkable, R: 'static>(
    spec: ClusterSpec<V>,
    env: &Env,
    body: impl FnOnce(Cluster<V>) -> BodyFuture<R> + 'static,
) -> RunResult<V, R> {
    let observer = Observer::new(
        spec.config.acceptors.iter().copied(),
        env.transport == TransportKind::Turmoil,
    );
    let finish = |result, elapsed, said| RunResult {
        result,
        observer: observer.clone(),
        elapsed,
        said,
    };
    let mut stores = BTreeMap::new();
    for id in spec.nodes() {
        let simulated = env.transport == TransportKind::Turmoil;
        match NodeStore::new(&spec, env.storage, id, simulated) {
            Ok(s) => {
                stores.insert(id, s);
            }
            Err(e) => return finish(Err(e), Duration::ZERO, Vec::new()),
        }
    }
    let shared = Arc::new(Shared {
        faults: Faults::new(env.seed ^ 0xFA17),
        spec,
        env: env.clone(),
        observer: observer.clone(),
        handles: Mutex::new(BTreeMap::new()),
        incarnations: Mutex::new(BTreeMap::new()),
        down: Mutex::new(BTreeSet::new()),
        stores,
        said: Mutex::new(Vec::new()),
        driver: Driver::new(env.transport),
    });
    let cluster = Cluster {
        shared: shared.clone(),
    };
    let (result, elapsed) = match env.transport {
        #[cfg(feature = "turmoil")]
        TransportKind::Turmoil => sim::run(&shared, body(cluster)),
        #[cfg(not(feature = "turmoil"))]
        TransportKind::Turmoil => (
            Err(Failure(
                "the turmoil network needs the `turmoil` feature of paxos-harness".into(),
            )),
            Duration::ZERO,
        ),
        TransportKind::Tcp | TransportKind::Channel => realtime::run(&shared, body(cluster)),
    };
    let said = std::mem::take(&mut *lock(&shared.said));
    finish(result, elapsed, said)
}

/// Everything the handle and the drivers share.
struct Shared<V> {
    spec: ClusterSpec<V>,
    env: Env,
    observer: Observer<V>,
    faults: Faults,
    handles: Mutex<BTreeMap<NodeId, NodeHandle<V>>>,
    incarnations: Mutex<BTreeMap<NodeId, u64>>,
    down: Mutex<BTreeSet<NodeId>>,
    stores: BTreeMap<NodeId, NodeStore<V>>,
    /// Lines the body printed with [`Cluster::say`].
    said: Mutex<Vec<String>>,
    /// The driver's own state.
    driver: Driver<V>,
}

/// The state of the driver that runs the nodes.
enum Driver<V> {
    #[cfg(feature = "turmoil")]
    Sim(sim::State),
    Realtime(realtime::State<V>),
}

impl<V: Checkable> Driver<V> {
    fn new(transport: TransportKind) -> Self {
        match transport {
            #[cfg(feature = "turmoil")]
            TransportKind::Turmoil => Driver::Sim(sim::State::default()),
            _ => Driver::Realtime(realtime::State::new(transport)),
        }
    }
}

/// A crash or restart the body asked for.
#[derive(Clone, Copy, Debug)]
enum Lifecycle {
    Crash(NodeId),
    Restart(NodeId),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A node's seed: different per node and per incarnation, fixed by the run's seed.
fn node_seed(seed: u64, id: NodeId, incarnation: u64) -> u64 {
    seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ incarnation.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// The network settings of node `id` (peers, seed, cluster id, frame limit, TLS credentials
/// unless the run asks for plaintext links) for either TCP transport.
fn net_config<V>(
    spec: &ClusterSpec<V>,
    env: &Env,
    id: NodeId,
    peers: BTreeMap<NodeId, String>,
) -> Result<paxos_net::NetConfig, Failure> {
    let mut config = paxos_net::NetConfig::new(id, peers)
        .with_seed(node_seed(env.seed, id, 0))
        .with_cluster_id(crate::credentials::CLUSTER_ID);
    if let Some(limit) = spec.frame_limit {
        config = config.with_max_frame_len(limit);
    }
    Ok(match env.links {
        LinkSecurity::Tls => config.with_tls(crate::credentials::throwaway(id)?),
        LinkSecurity::Plain => config,
    })
}

impl<V: Checkable> Shared<V> {
    /// Build the next incarnation of node `id` over `transport`: reopen its storage, wrap the
    /// backends in the observer and the fault injector (unless the spec runs nodes bare),
    /// register its handle. The returned loop is awaited inline (turmoil) or spawned.
    /// `node` driving a fresh state machine, if the spec runs one.
    fn with_machine<S: Storage<V>, T: Transport<V>>(
        &self,
        id: NodeId,
        node: Node<V, S, T>,
    ) -> Node<V, S, T> {
        match &self.spec.state_machine {
            Some(factory) => node.with_state_machine((factory.0)(id)),
            None => node,
        }
    }

    fn incarnate<T: Transport<V>>(&self, id: NodeId, transport: T) -> Result<NodeRun, Failure> {
        let incarnation = {
            let mut inc = lock(&self.incarnations);
            let e = inc.entry(id).or_default();
            *e += 1;
            *e
        };
        let storage = self
            .stores
            .get(&id)
            .ok_or_else(|| Failure(format!("no storage for {id}")))?
            .open()?;
        let config = self.spec.config_for(id);
        let options = self.spec.node_options.get(&id).copied().unwrap_or_default();
        let seed = node_seed(self.env.seed, id, incarnation);
        let (run, handle): (NodeRun, _) = if self.spec.observed {
            let storage = ObservedStorage::new(storage, id, self.observer.clone());
            let transport = FaultyTransport::new(
                transport,
                id,
                self.faults.clone(),
                self.observer.clone(),
                self.env.trace,
            );
            let (node, handle) = Node::new(config, storage, transport, seed)?;
            let node = node.with_faults(options.acceptor_faults, options.proposer_faults);
            (Box::pin(self.with_machine(id, node).run()), handle)
        } else {
            let (node, handle) = Node::new(config, storage, transport, seed)?;
            (Box::pin(self.with_machine(id, node).run()), handle)
        };
        lock(&self.handles).insert(id, handle);
        Ok(run)
    }
}
