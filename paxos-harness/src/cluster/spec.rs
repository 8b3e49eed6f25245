//! What a cluster looks like ([`ClusterSpec`]) and what it runs on ([`Env`]).

use super::storage::CustomStorage;
use crate::invariants::Val;
use crate::kv::{Digests, KvStore};
use paxos_core::testing::{AcceptorFaults, ProposerFaults};
use paxos_core::{Config, LeaderMode, LearnerStrategy, NodeId, StateMachine, Storage};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Which storage backend nodes run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// `MemoryStorage`, kept across a node's crash.
    Memory,
    /// `RocksDbStorage` in a temporary directory per node, reopened on restart (needs the
    /// `rocksdb` feature).
    Rocksdb,
}

/// Which network nodes talk over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// turmoil's simulated network, simulated time; deterministic by seed.
    Turmoil,
    /// Real TCP on 127.0.0.1, real time.
    Tcp,
    /// In-process channels (`paxos_core::testing::ChannelNetwork`), real time, no
    /// serialization: the protocol's and runtime's own cost.
    Channel,
}

/// How the nodes' peer links are secured (the TCP and turmoil transports; channels carry no
/// bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkSecurity {
    /// Mutual TLS 1.3 with throwaway per-node certificates ([`crate::credentials`]): what a
    /// deployed cluster runs, so what every suite runs by default.
    Tls,
    /// Plaintext links, authenticated by nothing: only to measure what TLS costs.
    Plain,
}

named!(StorageKind, "storage", Memory => "memory", Rocksdb => "rocksdb");
named!(LinkSecurity, "links", Tls => "tls", Plain => "plain");
named!(TransportKind, "transport", Turmoil => "turmoil", Tcp => "tcp", Channel => "channel");

/// What a run executes on.
#[derive(Clone, Debug)]
pub struct Env {
    /// The run's seed: network faults, latencies, backoff jitter all derive from it.
    pub seed: u64,
    /// Storage backend.
    pub storage: StorageKind,
    /// Network.
    pub transport: TransportKind,
    /// Peer-link security.
    pub links: LinkSecurity,
    /// Record every message in the event log (for `--trace`).
    pub trace: bool,
}

impl Env {
    /// Memory storage on the turmoil network (the defaults), seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Env {
            seed,
            storage: StorageKind::Memory,
            transport: TransportKind::Turmoil,
            links: LinkSecurity::Tls,
            trace: false,
        }
    }

    /// The same with other peer-link security.
    pub fn with_links(mut self, links: LinkSecurity) -> Self {
        self.links = links;
        self
    }

    /// The same on another storage backend.
    pub fn on_storage(mut self, storage: StorageKind) -> Self {
        self.storage = storage;
        self
    }

    /// The same on another network.
    pub fn over(mut self, transport: TransportKind) -> Self {
        self.transport = transport;
        self
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

/// Message latency and scheduling of the turmoil network (ignored by the real-time drivers).
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

/// The shape of a cluster, for log values `V`.
#[derive(Clone, Debug)]
pub struct ClusterSpec<V = Val> {
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
    pub storage: Option<CustomStorage<V>>,
    /// The scenario chose its learner strategy ([`ClusterSpec::learner_strategy`]): a
    /// run-wide `--learners` does not override it.
    pub learners_chosen: bool,
    /// Put the observer and the fault injector between every node and its backends (the
    /// default). Off, the nodes run bare, as in production: what a benchmark measures.
    pub observed: bool,
    /// The TCP transports' frame limit instead of `paxos-net`'s default (16 MiB), to make a
    /// long history outgrow a message.
    pub frame_limit: Option<usize>,
    /// Drive a state machine on every node (a fresh one per incarnation, restored from the
    /// node's storage): see [`ClusterSpec::with_kv`].
    pub state_machine: Option<MachineFactory<V>>,
    /// The digests of the reference key-value state machines, when the spec runs them.
    pub digests: Option<Digests>,
    /// Nodes hosted from the start but outside the cluster's initial configuration: they
    /// run as joining nodes ([`Config::joining`]) until a membership change adds them.
    pub joiners: std::collections::BTreeSet<NodeId>,
}

/// Makes each node's state machine, once per incarnation.
pub struct MachineFactory<V>(
    pub(super) Arc<dyn Fn(NodeId) -> Box<dyn StateMachine<V>> + Send + Sync>,
);

impl<V> MachineFactory<V> {
    /// Make each node's state machine with `factory` (called at every start of the node).
    pub fn new(
        factory: impl Fn(NodeId) -> Box<dyn StateMachine<V>> + Send + Sync + 'static,
    ) -> Self {
        MachineFactory(Arc::new(factory))
    }
}

impl<V> Clone for MachineFactory<V> {
    fn clone(&self) -> Self {
        MachineFactory(self.0.clone())
    }
}

impl<V> std::fmt::Debug for MachineFactory<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MachineFactory(..)")
    }
}

impl ClusterSpec<Val> {
    /// Run the reference key-value state machine ([`crate::kv`]) on every node, reporting to
    /// fresh [`ClusterSpec::digests`], with a snapshot every `every` entries (keeping `keep`
    /// entries below it). `lossy` breaks its snapshots on purpose.
    pub fn with_kv(mut self, every: u64, keep: u64, lossy: bool) -> Self {
        let digests = Digests::default();
        self.state_machine = Some(kv_machines(digests.clone(), lossy));
        self.digests = Some(digests);
        self.config.snapshot_every_entries = every;
        self.config.snapshot_keep_entries = keep;
        self
    }

    /// Break the key-value state machines on purpose (if the spec runs them): their
    /// snapshots leave out a key (tests of the digest check).
    pub fn with_lossy_snapshots(mut self) -> Self {
        if let Some(digests) = &self.digests {
            self.state_machine = Some(kv_machines(digests.clone(), true));
        }
        self
    }
}

fn kv_machines(digests: Digests, lossy: bool) -> MachineFactory<Val> {
    MachineFactory::new(move |id| Box::new(KvStore::new(id, digests.clone(), lossy)))
}

impl<V> ClusterSpec<V> {
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
            observed: true,
            frame_limit: None,
            state_machine: None,
            digests: None,
            joiners: Default::default(),
        }
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

    /// Also host `count` nodes outside the initial configuration, numbered after its nodes,
    /// waiting to be added by a membership change.
    pub fn with_joiners(mut self, count: u64) -> Self {
        let first = self.config.nodes.iter().map(|n| n.0).max().unwrap_or(0) + 1;
        self.joiners = (first..first + count).map(NodeId).collect();
        self
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
        factory: impl Fn(NodeId) -> Arc<dyn Storage<V>> + Send + Sync + 'static,
    ) -> Self {
        self.storage = Some(CustomStorage::new(factory));
        self
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

    /// Run the nodes bare: no observer and no fault injection between a node and its storage
    /// and network (safety is then not checked). For benchmarks.
    pub fn unobserved(mut self) -> Self {
        self.observed = false;
        self
    }

    /// The configuration node `id` runs with: the shared one plus its [`NodeOptions`].
    pub fn config_for(&self, id: NodeId) -> Config {
        let mut config = if self.joiners.contains(&id) {
            self.config.for_joining(id)
        } else {
            self.config.for_node(id)
        };
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

    /// All node ids hosted: the initial configuration's, then the joiners.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.config.nodes.union(&self.joiners).copied().collect()
    }

    /// Ids of the acceptors.
    pub fn acceptors(&self) -> Vec<NodeId> {
        self.config.acceptors.iter().copied().collect()
    }

    /// Ids of the learners.
    pub fn learners(&self) -> Vec<NodeId> {
        self.config.learners.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds parse from the names they print, and an unknown name lists the known ones.
    #[test]
    fn kinds_parse_their_own_names_and_list_them_on_error() {
        for &k in TransportKind::ALL {
            assert_eq!(k.name().parse::<TransportKind>(), Ok(k));
        }
        for &k in StorageKind::ALL {
            assert_eq!(k.to_string().parse::<StorageKind>(), Ok(k));
        }
        let e = "rocks".parse::<StorageKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown storage \"rocks\"; one of: memory, rocksdb"
        );
    }
}
