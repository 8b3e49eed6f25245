//! `paxos-harness chaos`: random fault schedules over seeded turmoil runs, checked from outside
//! the nodes by the [`Observer`] and its invariant checker.
//!
//! One seed is one run, reproducible bit for bit:
//! 1. [`Schedule::draw`] draws the cluster (3, 5 or 7 nodes, elected or leaderless, clock skew,
//!    network and disk latency), the workload and a fault timeline from the seed.
//! 2. [`run_seed`] builds the cluster with the one cluster builder ([`cluster::run`]) and runs
//!    the workload: concurrent clients while the nemesis crashes and restarts nodes (the leader
//!    too), partitions links (symmetric, one-way, split, isolated leader) and loses, duplicates
//!    and delays messages; memory storage gets a write latency so a crash loses the writes not
//!    yet durable.
//! 3. The [`crate::invariants::Checker`] checks safety after every durable write; after the
//!    faults stop, the liveness phase requires every node to decide every touched instance
//!    within [`LIVENESS_BOUND`] of simulated time.
//!
//! A failing seed prints its schedule, the violated invariant, the replay command and writes a
//! Mermaid trace (the seed re-run with every message recorded).
//!
//! ## Your own storage in your CI
//! ```no_run
//! use paxos_harness::chaos::{ChaosOptions, run_window};
//! use std::sync::Arc;
//!
//! let options = ChaosOptions::default().with_storage(|_node| {
//!     // One fresh, empty store per node per seed; it must survive the node's crash.
//!     Arc::new(paxos_storage::MemoryStorage::<u64>::new()) as Arc<dyn paxos_core::Storage<u64>>
//! });
//! let summary = run_window(1, 200, &options, |_| {});
//! assert_eq!(summary.failed, 0, "failing seeds: {:?}", summary.failures);
//! ```

mod nemesis;
pub mod schedule;
mod workload;

pub use schedule::{Action, Schedule, Target};
pub use workload::LIVENESS_BOUND;

use crate::cluster::{self, ClusterSpec, CustomStorage, Env, Failure, NodeOptions, StorageKind};
use crate::invariants::{Val, Violation};
use crate::observer::Observer;
use paxos_core::{NodeId, Storage};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A protocol rule to break on every node, to prove the checker catches it. Test-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// Acceptors accept below their promise (breaks P1a).
    AcceptBelowPromise,
    /// Acceptors reply before persisting their promise / accepted pair.
    SkipPersist,
    /// Proposers ignore values reported in promises (breaks the "adopt the highest" rule).
    IgnorePromisedValues,
    /// Proposers do not persist their round before using it.
    SkipRoundPersist,
    /// New leaders leave holes (no no-op where nothing was accepted): liveness breaks.
    SkipNoopFill,
    /// Nodes acknowledge an append at its decision, before every instance below it is decided.
    AckBeforePrefix,
    /// Restarted proposers prepare from instance 0 instead of their recovered frontier.
    PrepareFromZero,
    /// The reference state machines' snapshots leave out a key (where a run drives them:
    /// every chaos run, unless `--no-snapshots`).
    LossySnapshots,
}

impl Break {
    /// The per-node options that break the rule.
    pub fn node_options(self) -> NodeOptions {
        let mut o = NodeOptions::default();
        match self {
            Break::AcceptBelowPromise => o.acceptor_faults.accept_below_promise = true,
            Break::SkipPersist => o.acceptor_faults.skip_persist = true,
            Break::IgnorePromisedValues => o.proposer_faults.ignore_promised_values = true,
            Break::SkipRoundPersist => o.proposer_faults.skip_round_persist = true,
            Break::SkipNoopFill => o.proposer_faults.skip_noop_fill = true,
            Break::AckBeforePrefix => o.proposer_faults.ack_before_prefix = true,
            Break::PrepareFromZero => o.proposer_faults.prepare_from_zero = true,
            // Not a node fault: see `ClusterSpec::with_lossy_snapshots`.
            Break::LossySnapshots => {}
        }
        o
    }
}

named!(Break, "protocol break",
    AcceptBelowPromise => "accept-below-promise",
    SkipPersist => "skip-persist",
    IgnorePromisedValues => "ignore-promised-values",
    SkipRoundPersist => "skip-round-persist",
    SkipNoopFill => "skip-noop-fill",
    AckBeforePrefix => "ack-before-prefix",
    PrepareFromZero => "prepare-from-zero",
    LossySnapshots => "lossy-snapshots");

/// What every seed of a chaos window runs on.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// Cluster size; `None` draws 3, 5 or 7 from each seed.
    pub nodes: Option<u64>,
    /// Storage backend (ignored when `custom_storage` is set).
    pub storage: StorageKind,
    /// Your own storage, made per node per seed.
    pub custom_storage: Option<CustomStorage<Val>>,
    /// Break a protocol rule on every node (tests of the checker only).
    pub protocol_break: Option<Break>,
    /// Record every message in the event log (a failing seed is re-run with it anyway).
    pub trace: bool,
    /// Write `chaos-SEED.mmd` for each failing seed here (`None`: no trace files).
    pub trace_dir: Option<PathBuf>,
    /// Print each failure (schedule, violation, replay command) to stdout.
    pub print_failures: bool,
    /// Also print one line per passing seed.
    pub verbose: bool,
    /// Run the reference key-value state machine on every node, with the seed's small
    /// snapshot thresholds, so logs are compacted and lagging nodes install snapshots (the
    /// default). Off, every node keeps its whole log.
    pub snapshots: bool,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            nodes: None,
            storage: StorageKind::Memory,
            custom_storage: None,
            protocol_break: None,
            trace: false,
            trace_dir: None,
            print_failures: true,
            verbose: false,
            snapshots: true,
        }
    }
}

impl ChaosOptions {
    /// Run every node on the storage `factory` makes: called once per node per seed, it must
    /// return an empty store that keeps acknowledged writes across the node's crash (the same
    /// store is handed to the restarted node).
    pub fn with_storage(
        mut self,
        factory: impl Fn(NodeId) -> Arc<dyn Storage<Val>> + Send + Sync + 'static,
    ) -> Self {
        self.custom_storage = Some(CustomStorage::new(factory));
        self
    }

    /// The command that replays `seed` with these options.
    pub fn replay_command(&self, seed: u64) -> String {
        let mut cmd = format!("paxos-harness chaos --seeds 1 --start {seed}");
        if let Some(n) = self.nodes {
            cmd.push_str(&format!(" --nodes {n}"));
        }
        match &self.custom_storage {
            Some(_) => cmd.push_str(" (with your storage factory)"),
            None => cmd.push_str(&format!(" --storage {}", self.storage)),
        }
        if let Some(b) = self.protocol_break {
            cmd.push_str(&format!(" --break {b}"));
        }
        if !self.snapshots {
            cmd.push_str(" --no-snapshots");
        }
        cmd
    }
}

/// The cluster a schedule runs on.
pub fn spec_for(schedule: &Schedule, options: &ChaosOptions) -> ClusterSpec {
    let mut spec = ClusterSpec::symmetric(schedule.nodes).tune(|c| {
        c.leader_mode = schedule.leader_mode;
        c.learner_strategy = schedule.learners.clone();
        // Room for clock skew: a slow leader's heartbeats must still beat a fast follower's
        // timeout once the network is healed.
        c.leader_timeout_ticks = 60;
        if schedule.window > 0 {
            c.max_instances_ahead = schedule.window;
        }
    });
    spec.time_limit = schedule.faults_end + LIVENESS_BOUND + Duration::from_secs(10);
    spec.network = schedule.network;
    spec.write_latency = schedule.write_latency;
    spec.storage = options.custom_storage.clone();
    if options.snapshots {
        let lossy = options.protocol_break == Some(Break::LossySnapshots);
        spec = spec.with_kv(schedule.snapshot_every, schedule.snapshot_keep, lossy);
    }
    for node in spec.nodes() {
        let mut o = schedule.skew.get(&node).copied().unwrap_or_default();
        if let Some(b) = options.protocol_break {
            let broken = b.node_options();
            o.acceptor_faults = broken.acceptor_faults;
            o.proposer_faults = broken.proposer_faults;
        }
        if o != NodeOptions::default() {
            spec.node_options.insert(node, o);
        }
    }
    spec
}

/// One seed's run.
pub struct SeedRun {
    /// The schedule it played.
    pub schedule: Schedule,
    /// `Err` if an invariant broke or liveness failed; the message says which.
    pub verdict: Result<(), Failure>,
    /// Safety violations the observer saw.
    pub violations: Vec<Violation>,
    /// The observer: full event log ([`Observer::log`]) and Mermaid trace.
    pub observer: Observer,
    /// Simulated time the run took.
    pub elapsed: Duration,
    /// Snapshots the nodes' state machines restored (installed from a peer, or at restart).
    pub restores: usize,
}

/// Run one seed: draw its schedule and play it.
pub fn run_seed(seed: u64, options: &ChaosOptions) -> SeedRun {
    run_schedule(Schedule::draw(seed, options.nodes), options)
}

/// Play `schedule` (e.g. a drawn one, edited to isolate a failure); its `seed` seeds the
/// simulation.
pub fn run_schedule(schedule: Schedule, options: &ChaosOptions) -> SeedRun {
    let spec = spec_for(&schedule, options);
    let digests = spec.digests.clone();
    let env = Env {
        seed: schedule.seed,
        storage: options.storage,
        transport: cluster::TransportKind::Turmoil,
        links: cluster::LinkSecurity::Tls,
        trace: options.trace,
    };
    let run = cluster::run(spec, &env, workload::body(schedule.clone()));
    let violations = run.observer.violations();
    let verdict = if let Some(first) = violations.first() {
        Err(Failure(format!("invariant violated: {first}")))
    } else {
        run.result
    };
    SeedRun {
        schedule,
        verdict,
        violations,
        observer: run.observer,
        elapsed: run.elapsed,
        restores: digests.map_or(0, |d| d.restores()),
    }
}

/// Totals of a window of seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChaosSummary {
    /// Seeds run so far.
    pub done: u64,
    /// Seeds that failed.
    pub failed: u64,
    /// The failing seeds.
    pub failures: Vec<u64>,
    /// Snapshots restored over all seeds (installed from a peer, or at restart).
    pub restores: u64,
    /// Seeds in which no node restored a snapshot.
    pub without_restore: u64,
}

/// Run seeds `start..start + seeds`, printing each failure (if `options.print_failures`) and
/// writing its trace; `progress` is called after every seed.
pub fn run_window(
    start: u64,
    seeds: u64,
    options: &ChaosOptions,
    mut progress: impl FnMut(&ChaosSummary),
) -> ChaosSummary {
    let mut summary = ChaosSummary::default();
    for seed in start..start.saturating_add(seeds) {
        let run = run_seed(seed, options);
        summary.done += 1;
        summary.restores += run.restores as u64;
        summary.without_restore += u64::from(run.restores == 0);
        if let Err(e) = &run.verdict {
            summary.failed += 1;
            summary.failures.push(seed);
            if options.print_failures {
                report_failure(seed, &run, e, options);
            }
        } else if options.verbose {
            println!(
                "--- PASS: chaos seed {seed} ({} nodes, {:?}, {} faults, {} snapshots restored, {:.3}s simulated)",
                run.schedule.nodes,
                run.schedule.leader_mode,
                run.schedule.faults.len(),
                run.restores,
                run.elapsed.as_secs_f64()
            );
        }
        progress(&summary);
    }
    summary
}

fn report_failure(seed: u64, run: &SeedRun, e: &Failure, options: &ChaosOptions) {
    println!(
        "--- FAIL: chaos seed {seed} ({:.3}s simulated)",
        run.elapsed.as_secs_f64()
    );
    println!("    {e}");
    for v in run.violations.iter().skip(1).take(5) {
        println!("    also: {v}");
    }
    println!("    schedule:");
    for line in run.schedule.to_string().lines() {
        println!("      {line}");
    }
    println!("    replay: {}", options.replay_command(seed));
    let Some(dir) = &options.trace_dir else {
        return;
    };
    // Re-run with every message recorded: same seed, same run.
    let traced = run_seed(
        seed,
        &ChaosOptions {
            trace: true,
            ..options.clone()
        },
    );
    let same = traced.verdict.as_ref().err().map(|f| &f.0) == Some(&e.0);
    if !same {
        println!("    warning: the traced re-run ended differently (nondeterminism?)");
    }
    let nodes: Vec<NodeId> = (1..=run.schedule.nodes).map(NodeId).collect();
    let path = dir.join(format!("chaos-{seed}.mmd"));
    match std::fs::write(&path, traced.observer.mermaid(&nodes)) {
        Ok(()) => println!("    trace: {}", path.display()),
        Err(err) => println!("    trace not written to {}: {err}", path.display()),
    }
}
