//! The one cluster builder every suite uses.
//!
//! A [`ClusterSpec`] says what the cluster looks like (nodes, roles, leader mode, timings); an
//! [`Env`] says what it runs on (storage, transport, seed). [`run`] builds the cluster, runs a
//! scenario body against a [`Cluster`] handle, and returns the run's [`Observer`].
//!
//! Two drivers, one API:
//! - **turmoil** (default): every node is a turmoil host, time is simulated and the run is
//!   reproducible bit for bit from its seed. Crashes and restarts are queued by the scenario and
//!   applied by the driver between `sim.step()` calls (a client cannot borrow the `Sim`).
//! - **tcp**: every node is a tokio task with a real loopback TCP listener (port picked by the
//!   OS); time is real. A crash aborts the task, which closes its sockets for real.
//!
//! Storage is created outside the node, so it outlives a crash: a restarted node reopens it
//! (memory: the same shared state; RocksDB: the same directory, reopened for real).

use crate::faults::{Faults, FaultyTransport};
use crate::invariants::Val;
use crate::observer::{ObservedStorage, Observer};
use paxos_core::{
    AcceptorFaults, Config, InstanceId, LeaderMode, LearnerStrategy, Node, NodeError, NodeHandle,
    NodeId, Outcome, ProposerFaults, Storage,
};
use paxos_net::NetConfig;
use paxos_storage::MemoryStorage;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which storage backend nodes run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    /// `MemoryStorage`, kept across a node's crash.
    Memory,
    /// `RocksDbStorage` in a temporary directory per node, reopened on restart.
    Rocksdb,
}

/// Which network nodes talk over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// turmoil's simulated network, simulated time; deterministic by seed.
    Turmoil,
    /// Real TCP on 127.0.0.1, real time.
    Tcp,
}

impl std::fmt::Display for StorageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageKind::Memory => "memory",
            StorageKind::Rocksdb => "rocksdb",
        })
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Turmoil => "turmoil",
            TransportKind::Tcp => "tcp",
        })
    }
}

/// What a run executes on.
#[derive(Clone, Debug)]
pub struct Env {
    /// The run's seed: network faults, latencies, backoff jitter all derive from it.
    pub seed: u64,
    /// Storage backend.
    pub storage: StorageKind,
    /// Network.
    pub transport: TransportKind,
    /// Record every message in the event log (for `--trace`).
    pub trace: bool,
}

/// A scenario failed: why, in one message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        Failure(format!("node error: {e}"))
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

/// Makes the storage of each node for one run: called once per node when the cluster is
/// built; the returned store is reused when that node restarts, so it must outlive the node
/// as a disk would (see [`ClusterSpec::with_storage`]).
#[derive(Clone)]
pub struct StorageFactory(pub Arc<dyn Fn(NodeId) -> Arc<dyn Storage<Val>> + Send + Sync>);

impl std::fmt::Debug for StorageFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageFactory(..)")
    }
}

/// Per-node differences from the shared [`Config`]: clock skew and test-only protocol faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeOptions {
    /// This node's tick length instead of `config.tick_interval`: a clock running slow or fast.
    pub tick_interval: Option<Duration>,
    /// This node's phase timeout instead of `config.phase_timeout_ticks`.
    pub phase_timeout_ticks: Option<u64>,
    /// This node's leader timeout instead of `config.leader_timeout_ticks`.
    pub leader_timeout_ticks: Option<u64>,
    /// Break this node's acceptor on purpose (tests of the checker only).
    pub acceptor_faults: AcceptorFaults,
    /// Break this node's proposer on purpose (tests of the checker only).
    pub proposer_faults: ProposerFaults,
}

/// Message latency and scheduling of the turmoil network (ignored by the TCP driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimNetwork {
    /// Shortest one-way latency.
    pub min_latency: Duration,
    /// Longest one-way latency; messages on different links overtake each other.
    pub max_latency: Duration,
    /// Run the hosts in a seeded random order each step (turmoil `enable_random_order`).
    pub random_order: bool,
}

impl Default for SimNetwork {
    fn default() -> Self {
        SimNetwork {
            min_latency: Duration::from_micros(200),
            max_latency: Duration::from_millis(3),
            random_order: false,
        }
    }
}

/// The shape of a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Configuration shared by every node (its `id` is replaced per node).
    pub config: Config,
    /// Stop the run after this much (simulated) time.
    pub time_limit: Duration,
    /// Per-node clock skew and protocol faults (nodes not listed use `config` as is).
    pub node_options: BTreeMap<NodeId, NodeOptions>,
    /// The simulated network's latency and scheduling.
    pub network: SimNetwork,
    /// `StorageKind::Memory` only: every `save` waits this long before applying, so a crash
    /// loses the writes not yet durable (`MemoryStorage::with_write_latency`).
    pub write_latency: Duration,
    /// Your own storage instead of [`Env::storage`].
    pub storage: Option<StorageFactory>,
    /// The scenario chose its learner strategy ([`ClusterSpec::learner_strategy`]): a
    /// run-wide `--learners` does not override it.
    pub learners_chosen: bool,
}

impl ClusterSpec {
    /// `n` nodes `n1..=nN`, each proposer, acceptor and learner (the Elixir shape).
    pub fn symmetric(n: u64) -> Self {
        let nodes: Vec<NodeId> = (1..=n).map(NodeId).collect();
        ClusterSpec {
            config: Config::symmetric(nodes[0], nodes),
            time_limit: Duration::from_secs(60),
            node_options: BTreeMap::new(),
            network: SimNetwork::default(),
            write_latency: Duration::ZERO,
            storage: None,
            learners_chosen: false,
        }
    }

    /// Give `node` its own clock skew or protocol faults.
    pub fn with_node(mut self, node: NodeId, options: NodeOptions) -> Self {
        self.node_options.insert(node, options);
        self
    }

    /// Run every node on the storage `factory` makes instead of the [`Env`]'s kind. The factory
    /// is called once per node per run and must return an empty store; a restarted node gets
    /// the same store back, so it must keep acknowledged writes across the node's crash.
    pub fn with_storage(
        mut self,
        factory: impl Fn(NodeId) -> Arc<dyn Storage<Val>> + Send + Sync + 'static,
    ) -> Self {
        self.storage = Some(StorageFactory(Arc::new(factory)));
        self
    }

    /// The configuration node `id` runs with: the shared one plus its [`NodeOptions`].
    pub fn config_for(&self, id: NodeId) -> Config {
        let mut config = self.config.for_node(id);
        if let Some(o) = self.node_options.get(&id) {
            config.tick_interval = o.tick_interval.unwrap_or(config.tick_interval);
            config.phase_timeout_ticks =
                o.phase_timeout_ticks.unwrap_or(config.phase_timeout_ticks);
            config.leader_timeout_ticks = o
                .leader_timeout_ticks
                .unwrap_or(config.leader_timeout_ticks);
        }
        config
    }

    /// Separate roles (the Go shape): proposers `n1..`, then acceptors, then learners.
    pub fn roles(proposers: u64, acceptors: u64, learners: u64) -> Self {
        let all = proposers + acceptors + learners;
        let mut spec = Self::symmetric(all);
        spec.config.acceptors = (proposers + 1..=proposers + acceptors)
            .map(NodeId)
            .collect();
        spec.config.learners = (proposers + acceptors + 1..=all).map(NodeId).collect();
        spec
    }

    /// Only the elected leader runs phase 1.
    pub fn elected(mut self) -> Self {
        self.config.leader_mode = LeaderMode::Elected;
        self
    }

    /// Use `strategy` to spread decisions.
    pub fn learner_strategy(mut self, strategy: LearnerStrategy) -> Self {
        self.config.learner_strategy = strategy;
        self.learners_chosen = true;
        self
    }

    /// Adjust the shared config.
    pub fn tune(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// All node ids.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.config.nodes.iter().copied().collect()
    }

    /// Ids of the nodes with the given role.
    pub fn acceptors(&self) -> Vec<NodeId> {
        self.config.acceptors.iter().copied().collect()
    }

    /// Ids of the learners.
    pub fn learners(&self) -> Vec<NodeId> {
        self.config.learners.iter().copied().collect()
    }
}

/// The port every node listens on in the simulation (hosts have their own names).
const SIM_PORT: u16 = 7000;

fn host_name(id: NodeId) -> String {
    format!("n{}", id.0)
}

/// A node's seed: different per node and per incarnation, fixed by the run's seed.
fn node_seed(seed: u64, id: NodeId, incarnation: u64) -> u64 {
    seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ incarnation.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// A crash or restart the scenario asked for.
#[derive(Debug)]
enum Lifecycle {
    Crash(NodeId),
    Restart(NodeId),
}

/// Per-node storage that outlives the node.
enum NodeStore {
    Memory(MemoryStorage<Val>),
    #[cfg(feature = "rocksdb")]
    Rocks(tempfile::TempDir),
    /// Made by the spec's [`StorageFactory`]; the same store after every restart.
    Custom(Arc<dyn Storage<Val>>),
}

impl NodeStore {
    fn new(spec: &ClusterSpec, kind: StorageKind, id: NodeId) -> Result<Self, Failure> {
        if let Some(factory) = &spec.storage {
            return Ok(NodeStore::Custom((factory.0)(id)));
        }
        match kind {
            StorageKind::Memory if !spec.write_latency.is_zero() => Ok(NodeStore::Memory(
                MemoryStorage::new().with_write_latency(spec.write_latency),
            )),
            StorageKind::Memory => Ok(NodeStore::Memory(MemoryStorage::new())),
            #[cfg(feature = "rocksdb")]
            StorageKind::Rocksdb => tempfile::Builder::new()
                .prefix("paxos-harness-")
                .tempdir()
                .map(NodeStore::Rocks)
                .map_err(|e| Failure(format!("temp dir: {e}"))),
            #[cfg(not(feature = "rocksdb"))]
            StorageKind::Rocksdb => Err(Failure("built without the `rocksdb` feature".into())),
        }
    }

    /// Open (or reopen) the storage for one incarnation of the node.
    fn open(&self) -> Result<Arc<dyn Storage<Val>>, Failure> {
        match self {
            NodeStore::Memory(m) => Ok(Arc::new(m.clone())),
            NodeStore::Custom(s) => Ok(s.clone()),
            #[cfg(feature = "rocksdb")]
            NodeStore::Rocks(dir) => paxos_storage::RocksDbStorage::open(dir.path())
                .map(|s| Arc::new(s) as Arc<dyn Storage<Val>>)
                .map_err(|e| Failure(format!("open rocksdb: {e}"))),
        }
    }
}

/// A TCP-driver node: its listen address and its running task, if up.
type TcpNode = (String, Option<tokio::task::JoinHandle<()>>);

struct Shared {
    spec: ClusterSpec,
    env: Env,
    observer: Observer,
    faults: Faults,
    handles: Mutex<BTreeMap<NodeId, NodeHandle<Val>>>,
    incarnations: Mutex<BTreeMap<NodeId, u64>>,
    down: Mutex<BTreeSet<NodeId>>,
    stores: BTreeMap<NodeId, NodeStore>,
    /// Sim driver: lifecycle requests applied between steps, each acknowledged.
    queued: Mutex<Vec<(Lifecycle, tokio::sync::oneshot::Sender<()>)>>,
    /// Sim driver: the kill switch of each running host incarnation (see `run_sim`).
    kill: Mutex<BTreeMap<NodeId, tokio::sync::oneshot::Sender<()>>>,
    /// TCP driver: listen address and running task of every node.
    tcp: Mutex<BTreeMap<NodeId, TcpNode>>,
    /// Lines the scenario printed with [`Cluster::say`].
    said: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The scenario's handle on a running cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

/// A scenario body: an async function of the cluster.
pub type Body = Box<dyn FnOnce(Cluster) -> Pin<Box<dyn Future<Output = Result<(), Failure>>>>>;

impl Cluster {
    /// The spec the cluster was built from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.shared.spec
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.shared.env.seed
    }

    /// The observer (event log and invariant checker).
    pub fn observer(&self) -> &Observer {
        &self.shared.observer
    }

    /// The fault plan (partitions, loss).
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Nodes that are not crashed.
    pub fn live(&self) -> Vec<NodeId> {
        let down = lock(&self.shared.down);
        self.shared
            .spec
            .nodes()
            .into_iter()
            .filter(|n| !down.contains(n))
            .collect()
    }

    /// The current handle of `node`, waiting (up to 1 s) for it to start.
    pub async fn node(&self, node: NodeId) -> Result<NodeHandle<Val>, Failure> {
        for _ in 0..1000 {
            if let Some(h) = lock(&self.shared.handles).get(&node) {
                return Ok(h.clone());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Err(Failure(format!("{node} did not start")))
    }

    /// `node` proposes `value` in the next free instance; returns the chosen value there.
    pub async fn propose(&self, node: NodeId, value: Val) -> Result<(InstanceId, Val), Failure> {
        self.shared.observer.proposed(node, None, value);
        Ok(self.node(node).await?.propose(value).await?)
    }

    /// `node` proposes `value` in `instance`, waiting at most `timeout`.
    pub async fn propose_at(
        &self,
        node: NodeId,
        instance: InstanceId,
        value: Val,
        timeout: Duration,
    ) -> Result<Outcome<Val>, Failure> {
        self.shared.observer.proposed(node, Some(instance), value);
        Ok(self
            .node(node)
            .await?
            .propose_at(instance, value, timeout)
            .await?)
    }

    /// Every decision `node` knows.
    pub async fn decisions(&self, node: NodeId) -> Result<BTreeMap<InstanceId, Val>, Failure> {
        Ok(self.node(node).await?.decisions().await?)
    }

    /// Wait until every node in `nodes` has decided `instance` (polling every 5 ms, at most
    /// `timeout`), check they agree, and return the value.
    pub async fn await_decided(
        &self,
        nodes: &[NodeId],
        instance: InstanceId,
        timeout: Duration,
    ) -> Result<Val, Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut values = BTreeMap::new();
            for &n in nodes {
                if let Some(v) = self.decisions(n).await?.get(&instance) {
                    values.insert(n, *v);
                }
            }
            if values.len() == nodes.len() {
                let distinct: BTreeSet<Val> = values.values().copied().collect();
                ensure!(
                    distinct.len() == 1,
                    "{instance}: nodes decided different values {values:?}"
                );
                return Ok(*values.values().next().unwrap_or(&0));
            }
            if tokio::time::Instant::now() >= deadline {
                let missing: Vec<NodeId> = nodes
                    .iter()
                    .filter(|n| !values.contains_key(n))
                    .copied()
                    .collect();
                return Err(Failure(format!(
                    "{instance}: {missing:?} did not decide within {timeout:?} (have {values:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The leader trusted by most live nodes (leader mode).
    pub async fn leader(&self) -> Result<Option<NodeId>, Failure> {
        let mut votes: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in self.live() {
            if let Some(l) = self.node(n).await?.status().await?.leader {
                *votes.entry(l).or_default() += 1;
            }
        }
        Ok(votes
            .into_iter()
            .max_by_key(|(n, c)| (*c, std::cmp::Reverse(*n)))
            .map(|(n, _)| n))
    }

    /// Print a line under the scenario's `=== RUN` header (like `t.Log` in Go) and log it.
    pub fn say(&self, line: impl Into<String>) {
        let line = line.into();
        self.shared.observer.note(line.clone());
        lock(&self.shared.said).push(line);
    }

    /// Sleep in run time (simulated under turmoil).
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Crash `node`: its task and sockets are gone; its storage stays.
    pub async fn crash(&self, node: NodeId) -> Result<(), Failure> {
        self.shared.observer.note(format!("crash {node}"));
        lock(&self.shared.handles).remove(&node);
        lock(&self.shared.down).insert(node);
        self.lifecycle(Lifecycle::Crash(node)).await
    }

    /// Restart a crashed `node` from its storage.
    pub async fn restart(&self, node: NodeId) -> Result<(), Failure> {
        self.shared.observer.note(format!("restart {node}"));
        lock(&self.shared.down).remove(&node);
        self.lifecycle(Lifecycle::Restart(node)).await?;
        self.node(node).await.map(|_| ())
    }

    async fn lifecycle(&self, what: Lifecycle) -> Result<(), Failure> {
        match self.shared.env.transport {
            TransportKind::Turmoil => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                lock(&self.shared.queued).push((what, tx));
                rx.await.map_err(|_| Failure("simulation ended".into()))
            }
            TransportKind::Tcp => match what {
                Lifecycle::Crash(n) => {
                    if let Some((_, Some(task))) = lock(&self.shared.tcp)
                        .get_mut(&n)
                        .map(|e| (&e.0, e.1.take()))
                    {
                        task.abort();
                    }
                    Ok(())
                }
                Lifecycle::Restart(n) => tcp_start(&self.shared, n).await,
            },
        }
    }
}

/// Everything a node needs for one incarnation, given its transport.
async fn start_node<T: paxos_core::Transport<Val>>(
    shared: &Arc<Shared>,
    id: NodeId,
    transport: T,
) -> Result<Node<Val, ObservedStorage<Arc<dyn Storage<Val>>>, FaultyTransport<T>>, Failure> {
    let incarnation = {
        let mut inc = lock(&shared.incarnations);
        let e = inc.entry(id).or_default();
        *e += 1;
        *e
    };
    let storage = shared
        .stores
        .get(&id)
        .ok_or_else(|| Failure(format!("no storage for {id}")))?
        .open()?;
    let storage = ObservedStorage::new(storage, id, shared.observer.clone());
    let transport = FaultyTransport::new(
        transport,
        id,
        shared.faults.clone(),
        shared.observer.clone(),
        shared.env.trace,
    );
    let config = shared.spec.config_for(id);
    let options = shared
        .spec
        .node_options
        .get(&id)
        .copied()
        .unwrap_or_default();
    let (node, handle) = Node::new(
        config,
        storage,
        transport,
        node_seed(shared.env.seed, id, incarnation),
    )?;
    let node = node.with_faults(options.acceptor_faults, options.proposer_faults);
    lock(&shared.handles).insert(id, handle);
    Ok(node)
}

fn net_config(shared: &Shared, id: NodeId, peers: BTreeMap<NodeId, String>) -> NetConfig {
    NetConfig::new(id, peers)
        .with_seed(node_seed(shared.env.seed, id, 0))
        .with_cluster_id(0x5041_5853)
}

async fn tcp_start(shared: &Arc<Shared>, id: NodeId) -> Result<(), Failure> {
    let (addrs, listen) = {
        let tcp = lock(&shared.tcp);
        let addrs: BTreeMap<NodeId, String> = tcp
            .iter()
            .filter(|(n, _)| **n != id)
            .map(|(n, (a, _))| (*n, a.clone()))
            .collect();
        (
            addrs,
            tcp.get(&id).map(|(a, _)| a.clone()).unwrap_or_default(),
        )
    };
    // A crashed incarnation's listener closes as its aborted tasks unwind: retry the bind briefly.
    let mut attempt = 0;
    let transport = loop {
        match paxos_net::TcpTransport::<Val>::bind(&listen, net_config(shared, id, addrs.clone()))
            .await
        {
            Ok(t) => break t,
            Err(e) if attempt >= 100 => return Err(Failure(format!("{id} bind {listen}: {e}"))),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let node = start_node(shared, id, transport).await?;
    let task = tokio::task::spawn_local(async move {
        if let Err(e) = node.run().await {
            tracing::warn!(node = %id, error = %e, "node stopped");
        }
    });
    if let Some(entry) = lock(&shared.tcp).get_mut(&id) {
        entry.1 = Some(task);
    }
    Ok(())
}

/// A free loopback port **below** the kernel's ephemeral range (32768 and up on Linux). A
/// node's port must stay free while the node is down, to be bound again on restart; a port
/// from the ephemeral range can meanwhile become the source port of any outgoing connection,
/// which would hold it for as long as that connection lives.
fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    // Start each process somewhere else in the range, so parallel test processes rarely meet.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(port).unwrap_or(u16::MAX);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port below the ephemeral range",
    ))
}

/// What a run left behind.
pub struct RunResult {
    /// The scenario's verdict (invariant violations are checked by the caller).
    pub result: Result<(), Failure>,
    /// The observer: event log, violations, chosen values.
    pub observer: Observer,
    /// Run time (simulated under turmoil).
    pub elapsed: Duration,
    /// Lines the scenario printed with [`Cluster::say`].
    pub said: Vec<String>,
}

/// Build the cluster described by `spec` on `env`, run `body` against it, and report.
pub fn run(spec: ClusterSpec, env: &Env, body: Body) -> RunResult {
    let (result, observer, elapsed, said) = run_inner(spec, env, body);
    RunResult {
        result,
        observer,
        elapsed,
        said,
    }
}

fn run_inner(
    spec: ClusterSpec,
    env: &Env,
    body: Body,
) -> (Result<(), Failure>, Observer, Duration, Vec<String>) {
    let observer = Observer::new(
        spec.config.acceptors.len(),
        env.transport == TransportKind::Turmoil,
    );
    let mut stores = BTreeMap::new();
    for id in spec.nodes() {
        match NodeStore::new(&spec, env.storage, id) {
            Ok(s) => {
                stores.insert(id, s);
            }
            Err(e) => return (Err(e), observer, Duration::ZERO, Vec::new()),
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
        queued: Mutex::new(Vec::new()),
        kill: Mutex::new(BTreeMap::new()),
        tcp: Mutex::new(BTreeMap::new()),
        said: Mutex::new(Vec::new()),
    });
    let (result, elapsed) = match env.transport {
        #[cfg(feature = "turmoil")]
        TransportKind::Turmoil => run_sim(&shared, body),
        #[cfg(not(feature = "turmoil"))]
        TransportKind::Turmoil => (
            Err(Failure("built without the `turmoil` feature".into())),
            Duration::ZERO,
        ),
        TransportKind::Tcp => run_tcp(&shared, body),
    };
    let said = std::mem::take(&mut *lock(&shared.said));
    (result, observer, elapsed, said)
}

#[cfg(feature = "turmoil")]
fn run_sim(shared: &Arc<Shared>, body: Body) -> (Result<(), Failure>, Duration) {
    let network = shared.spec.network;
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(shared.env.seed)
        .simulation_duration(shared.spec.time_limit)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(network.min_latency)
        .max_message_latency(network.max_latency);
    if network.random_order {
        builder.enable_random_order();
    }
    let mut sim = builder.build();
    let nodes = shared.spec.nodes();
    for &id in &nodes {
        let peers: BTreeMap<NodeId, String> = nodes
            .iter()
            .filter(|n| **n != id)
            .map(|n| (*n, format!("{}:{SIM_PORT}", host_name(*n))))
            .collect();
        let shared = shared.clone();
        sim.host(host_name(id), move || {
            let shared = shared.clone();
            let cfg = net_config(&shared, id, peers.clone());
            let (kill, killed) = tokio::sync::oneshot::channel::<()>();
            lock(&shared.kill).insert(id, kill);
            async move {
                let software = async {
                    let transport = paxos_net::TurmoilTransport::<Val>::bind(
                        &format!("0.0.0.0:{SIM_PORT}"),
                        cfg,
                    )
                    .await?;
                    let node = start_node(&shared, id, transport).await?;
                    if let Err(e) = node.run().await {
                        // A stopped node stays down; the scenario decides whether that is a
                        // failure.
                        tracing::warn!(node = %id, error = %e, "node stopped");
                        std::future::pending::<()>().await;
                    }
                    Ok::<(), Box<dyn std::error::Error>>(())
                };
                // A crash: drop the node wherever it is waiting (a pending write is lost).
                tokio::select! {
                    biased;
                    _ = killed => Ok(()),
                    r = software => r,
                }
            }
        });
    }
    let cluster = Cluster {
        shared: shared.clone(),
    };
    let outcome: Arc<Mutex<Option<Result<(), Failure>>>> = Arc::new(Mutex::new(None));
    let slot = outcome.clone();
    sim.client("scenario", async move {
        let r = body(cluster).await;
        *lock(&slot) = Some(r);
        Ok(())
    });
    // A crash is two-phase, for determinism: the host's kill switch makes its software return
    // (dropping the node wherever it waits, in a fixed order), and once it has, turmoil's crash
    // marks the host down. Crashing the runtime directly would drop the node's remaining tasks
    // in tokio's shard order, which follows process-global task ids: the same seed would then
    // run differently depending on what ran before it in the process.
    let mut crashing: Vec<(NodeId, tokio::sync::oneshot::Sender<()>)> = Vec::new();
    loop {
        let queued: Vec<_> = lock(&shared.queued).drain(..).collect();
        for (what, ack) in queued {
            match what {
                Lifecycle::Crash(n) => match lock(&shared.kill).remove(&n) {
                    Some(kill) => {
                        let _ = kill.send(());
                        crashing.push((n, ack));
                    }
                    None => {
                        sim.crash(host_name(n));
                        let _ = ack.send(());
                    }
                },
                Lifecycle::Restart(n) => {
                    sim.bounce(host_name(n));
                    let _ = ack.send(());
                }
            }
        }
        let mut still = Vec::new();
        for (n, ack) in crashing.drain(..) {
            if sim.is_host_running(host_name(n)) {
                still.push((n, ack));
            } else {
                sim.crash(host_name(n));
                let _ = ack.send(());
            }
        }
        crashing = still;
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return (Err(Failure(format!("simulation: {e}"))), sim.elapsed()),
        }
    }
    let result = lock(&outcome)
        .take()
        .unwrap_or_else(|| Err(Failure("scenario did not finish".into())));
    (result, sim.elapsed())
}

fn run_tcp(shared: &Arc<Shared>, body: Body) -> (Result<(), Failure>, Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (Err(Failure(format!("tokio runtime: {e}"))), Duration::ZERO),
    };
    let local = tokio::task::LocalSet::new();
    let limit = shared.spec.time_limit;
    let shared = shared.clone();
    local.block_on(&rt, async move {
        let start = tokio::time::Instant::now();
        // Pick every node's port first, so every node knows every address.
        for id in shared.spec.nodes() {
            match free_port() {
                Ok(port) => {
                    lock(&shared.tcp).insert(id, (format!("127.0.0.1:{port}"), None));
                }
                Err(e) => return (Err(Failure(format!("bind: {e}"))), Duration::ZERO),
            }
        }
        for id in shared.spec.nodes() {
            if let Err(e) = tcp_start(&shared, id).await {
                return (Err(e), start.elapsed());
            }
        }
        let cluster = Cluster {
            shared: shared.clone(),
        };
        let result = match tokio::time::timeout(limit, body(cluster)).await {
            Ok(r) => r,
            Err(_) => Err(Failure(format!(
                "scenario exceeded its time limit of {limit:?}"
            ))),
        };
        for (_, (_, task)) in lock(&shared.tcp).iter_mut() {
            if let Some(t) = task.take() {
                t.abort();
            }
        }
        (result, start.elapsed())
    })
}
