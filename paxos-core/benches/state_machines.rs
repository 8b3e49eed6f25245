//! Micro-benchmarks of the pure (sans-IO) state machines.
//!
//! The state machines do no I/O: each call takes one input and appends to an [`Effects`]. What
//! is measured here is therefore the protocol's own CPU cost per message or per decided value,
//! with no storage, serialization or network. It is the ceiling a runtime could reach on one
//! core; a real node is slower by its fsyncs, codecs and syscalls.
//!
//! - `acceptor/accept`: one [`Acceptor`] handling phase 2a (`on_accept`) for consecutive
//!   instances at one fixed, already-promised ballot: the steady state of Multi-Paxos on an
//!   acceptor (one `Accept` write, one `Accepted` to the proposer and to each learner).
//!   Throughput: `Accept` messages handled.
//! - `acceptor/prepare`: phase 1a (`on_prepare`) with ever-higher ballots and nothing accepted,
//!   so every call promises (one `Promise` write, one `Promise` reply with an empty report).
//!   Throughput: `Prepare` messages handled.
//! - `learner/accepted_quorum`: a [`Learner`] of a 3-acceptor cluster receiving `Accepted` from
//!   nodes 1 and 2 for each instance, so each instance is decided on the second vote (vote
//!   counting, the decision's write and its report). Throughput: values decided (2 messages
//!   each).
//! - `replica/round_3_nodes`: three [`Replica`]s wired by an in-bench FIFO message pump. Phase 1
//!   is done once in setup; each iteration is one full Multi-Paxos round: node 1 proposes one
//!   value, and the pump delivers every message (3 `Accept` + 9 `Accepted` under all-to-all
//!   learning) until the network is quiet and all three nodes have decided. The writes are
//!   dropped, as if storage were free. Throughput: values decided cluster-wide.
//!
//! The acceptor's accepted map and the learner's decided log grow with every instance and are
//! never compacted here, so a benchmark that ran millions of instances against one state
//! machine would measure an ever larger map (and use gigabytes). The instance-driven benches
//! therefore run in chunks of [`CHUNK`] instances, each on fresh state built (and dropped)
//! outside the timed region; every chunk's result is checked, also untimed.

use paxos_core::{
    Acceptor, Ballot, Config, DurableState, Effects, Entry, Envelope, InstanceId, Learner, NodeId,
    ProposalId, ProposeStatus, Replica,
};
use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Instances per chunk of fresh state (see the module docs).
const CHUNK: u64 = 10_000;

/// Multi-Paxos rounds per freshly built cluster.
const ROUNDS_PER_CLUSTER: u64 = 1_000;

/// The entry of request `v` of one client, holding `v`.
fn entry(v: u64) -> Entry<u64> {
    Entry::Value {
        id: ProposalId {
            client: paxos_core::ClientId::default(),
            seq: v,
        },
        value: v,
    }
}

fn nodes() -> impl Iterator<Item = NodeId> + Clone {
    (1..=3).map(NodeId)
}

fn config(id: NodeId) -> Config {
    Config::symmetric(id, nodes())
}

/// Run `iters` steps in chunks of at most `chunk`, each on a state from `setup`; only the steps
/// are timed. `check` sees each chunk's final state and step count, untimed.
fn chunked<S>(
    iters: u64,
    chunk: u64,
    mut setup: impl FnMut() -> S,
    mut step: impl FnMut(&mut S, u64),
    mut check: impl FnMut(&S, u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = chunk.min(iters - done);
        let mut state = setup();
        let start = Instant::now();
        for i in 0..n {
            step(&mut state, i);
        }
        total += start.elapsed();
        check(&state, n);
        drop(black_box(state));
        done += n;
    }
    total
}

fn acceptor(c: &mut Criterion) {
    let mut group = c.benchmark_group("acceptor");
    group.throughput(Throughput::Elements(1));

    let proposer = NodeId(2);
    let ballot = Ballot::new(1, proposer);
    group.bench_function("accept", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                CHUNK,
                || {
                    let mut a =
                        Acceptor::<u64>::new(&config(NodeId(1)), Ballot::ZERO, BTreeMap::new());
                    let mut out = Effects::new();
                    // Promise first, so every timed accept is at the promised ballot.
                    a.on_prepare(proposer, ballot, InstanceId(0), &mut out);
                    out.clear();
                    (a, out)
                },
                |(a, out), i| {
                    out.clear();
                    a.on_accept(
                        black_box(proposer),
                        black_box(ballot),
                        InstanceId(i),
                        black_box(entry(i)),
                        out,
                    );
                    black_box(&*out);
                },
                |(a, _), n| {
                    assert_eq!(a.accepted(InstanceId(n - 1)), Some(&(ballot, entry(n - 1))))
                },
            )
        });
    });

    group.bench_function("prepare", |b| {
        let mut a = Acceptor::<u64>::new(&config(NodeId(1)), Ballot::ZERO, BTreeMap::new());
        let mut out = Effects::new();
        let mut round = 0;
        b.iter(|| {
            round += 1;
            out.clear();
            a.on_prepare(
                black_box(proposer),
                Ballot::new(round, proposer),
                black_box(InstanceId(0)),
                &mut out,
            );
            black_box(&out);
        });
        assert_eq!(a.promised(), Ballot::new(round, proposer));
    });

    group.finish();
}

fn learner(c: &mut Criterion) {
    let mut group = c.benchmark_group("learner");
    group.throughput(Throughput::Elements(1));

    let ballot = Ballot::new(1, NodeId(1));
    group.bench_function("accepted_quorum", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                CHUNK,
                || {
                    (
                        Learner::<u64>::new(&config(NodeId(3)), BTreeMap::new()),
                        Effects::new(),
                    )
                },
                |(l, out), i| {
                    out.clear();
                    let instance = InstanceId(i);
                    black_box(l.on_accepted(black_box(NodeId(1)), ballot, instance, entry(i), out));
                    black_box(l.on_accepted(black_box(NodeId(2)), ballot, instance, entry(i), out));
                    black_box(&*out);
                },
                |(l, _), n| assert_eq!(l.first_undecided(), InstanceId(n)),
            )
        });
    });

    group.finish();
}

/// Three replicas and the messages in flight between them.
struct Cluster {
    replicas: Vec<Replica<u64>>,
    wire: VecDeque<(NodeId, Envelope<u64>)>,
    out: Effects<u64>,
}

impl Cluster {
    /// A fresh cluster where node 1 has already run phase 1 (and decided instance 0).
    fn led_by_node_1() -> Cluster {
        let replicas = nodes()
            .map(|id| {
                Replica::new(&config(id), DurableState::default(), id.0).expect("valid config")
            })
            .collect();
        let mut cluster = Cluster {
            replicas,
            wire: VecDeque::new(),
            out: Effects::new(),
        };
        assert_eq!(cluster.propose(0), ProposeStatus::Proposing(InstanceId(0)));
        cluster.assert_decided_below(InstanceId(1));
        cluster
    }

    /// Node 1 proposes `value`; deliver every message, FIFO, until the network is quiet.
    fn propose(&mut self, value: u64) -> ProposeStatus<u64> {
        self.out.clear();
        let status = self.replicas[0].propose(None, value, &mut self.out);
        self.send_out(NodeId(1));
        while let Some((from, envelope)) = self.wire.pop_front() {
            let to = envelope.to;
            self.out.clear();
            self.replicas[to.0 as usize - 1]
                .on_message(from, envelope.message, &mut self.out)
                .expect("members send only valid input");
            // A runtime would make `out.writes` durable here; the bench drops them.
            self.send_out(to);
        }
        status
    }

    fn send_out(&mut self, from: NodeId) {
        self.wire
            .extend(self.out.messages.drain(..).map(|envelope| (from, envelope)));
    }

    fn assert_decided_below(&self, first_undecided: InstanceId) {
        for replica in &self.replicas {
            assert_eq!(replica.learner().first_undecided(), first_undecided);
        }
    }
}

fn replica(c: &mut Criterion) {
    let mut group = c.benchmark_group("replica");
    group.throughput(Throughput::Elements(1));

    group.bench_function("round_3_nodes", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                ROUNDS_PER_CLUSTER,
                Cluster::led_by_node_1,
                |cluster, i| {
                    black_box(cluster.propose(black_box(i + 1)));
                },
                |cluster, n| cluster.assert_decided_below(InstanceId(n + 1)),
            )
        });
    });

    group.finish();
}

criterion_group!(benches, acceptor, learner, replica);
criterion_main!(benches);
