//! `paxos-harness soak`: memory and disk over a long run, and a node that missed millions of
//! appends catching up (issue 16's targets).
//!
//! Three (or `--nodes`) nodes in this process, as `bench` runs them (elected leader n1, one
//! client pipelining `--clients` values through a [`paxos_core::Batcher`]), each driving a
//! constant-size state machine (a count and a CRC of every value applied) and snapshotting
//! every `--snapshot-every` log entries. Two phases:
//! 1. `--appends` values (default 10 million, 16 bytes each) with every node up; at each tenth
//!    a line with the throughput of that tenth, the process's resident memory and the storage
//!    directories' size. Bounded memory means the last RSS stays within 1.25x of the first
//!    tenth's, and bounded disk that the peak size of the second half stays within 1.25x of
//!    the first half's.
//! 2. Unless `--catch-up 0`: the last node is killed, `--catch-up` more values (default
//!    5 million) go through the others, the node restarts, and the time until its applied index
//!    equals the leader's is measured (target: 10 s), then its state is compared with the
//!    leader's.

use crate::bench::{drive, warm_up};
use crate::{one_of, usage_error};
use bytes::Bytes;
use paxos_core::{InstanceId, LearnerStrategy, NodeId, PackedBytes, RestoreError, StateMachine};
use paxos_harness::cluster::{
    self, Cluster, ClusterSpec, Env, Failure, MachineFactory, StorageKind, TransportKind,
};
use paxos_harness::wait::{Look, eventually};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Flags of `paxos-harness soak`.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Values appended with every node up.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub appends: u64,
    /// Values appended while the last node is down, before it restarts and must catch up
    /// (0: skip this phase).
    #[arg(long, default_value_t = 5_000_000)]
    pub catch_up: u64,
    /// Storage backend.
    #[arg(long, default_value = "memory",
          value_parser = one_of::<StorageKind>(StorageKind::ALL.iter().map(|k| k.name())))]
    pub storage: StorageKind,
    /// Network: `tcp` (loopback) or `channel` (in-process).
    #[arg(long, default_value = "tcp",
          value_parser = one_of::<TransportKind>(TransportKind::ALL.iter().map(|k| k.name())))]
    pub transport: TransportKind,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..))]
    pub nodes: u64,
    /// Values in flight: submitted and not yet decided.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Bytes per value (at least 8: each starts with a counter).
    #[arg(long, default_value_t = 16)]
    pub value_size: usize,
    /// Each node snapshots every this many applied log entries (instances; one holds a batch
    /// of values, about `--clients` of them).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,
    /// Log entries kept below each snapshot.
    #[arg(long, default_value_t = 1024)]
    pub keep: u64,
    /// Instances a request is remembered for, to deduplicate retries (`Config::session_window_entries`).
    #[arg(long, default_value_t = paxos_core::Config::symmetric(NodeId(1), [NodeId(1)]).session_window_entries)]
    pub session_window: u64,
    /// Instances in flight at most (the pipeline window).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Values per instance at most.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One tenth of the first phase.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Values decided so far.
    pub appends: u64,
    /// Seconds since the start of the phase.
    pub secs: f64,
    /// Values per second over this tenth.
    pub rate: f64,
    /// Resident memory of this process (all nodes), bytes; `None` off Linux.
    pub rss_bytes: Option<u64>,
    /// Total size of the nodes' storage directories, bytes (0 for memory storage).
    pub disk_bytes: u64,
    /// The leader's applied index and log start.
    pub applied: u64,
    /// First instance the leader still keeps.
    pub log_start: u64,
}

/// The catch-up phase.
#[derive(Clone, Debug, Serialize)]
pub struct CatchUp {
    /// The node that was down.
    pub node: u64,
    /// Values appended while it was down.
    pub missed: u64,
    /// Seconds from its restart until its applied index equalled the leader's.
    pub secs: f64,
    /// Its log start afterwards (above where it stopped: it installed a snapshot).
    pub log_start: u64,
    /// Its state equals the leader's.
    pub same_state: bool,
}

/// The `--json` object.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// Storage backend.
    pub storage: String,
    /// Transport.
    pub transport: String,
    /// Nodes.
    pub nodes: u64,
    /// Values in flight.
    pub clients: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Snapshot policy.
    pub snapshot_every: u64,
    /// Entries kept below a snapshot.
    pub keep: u64,
    /// Values decided in the first phase.
    pub appends: u64,
    /// Its seconds.
    pub secs: f64,
    /// Its values per second.
    pub throughput: f64,
    /// One sample per tenth.
    pub samples: Vec<Sample>,
    /// RSS at the end over RSS after the first tenth (target: at most 1.25).
    pub rss_ratio: Option<f64>,
    /// The largest storage size of the last five tenths over the largest of the first five
    /// (RocksDB; target 1.25): on-disk size is a sawtooth (memtable flushes, then compactions
    /// dropping what truncation deleted), so its peaks are what must stay flat.
    pub disk_ratio: Option<f64>,
    /// The catch-up phase, if run.
    pub catch_up: Option<CatchUp>,
}

/// What every node's state machine applied: values and a CRC of them, per node.
type Tallies = Arc<Mutex<BTreeMap<NodeId, (u64, u32)>>>;

/// A state machine of constant size: how many values were applied, and a CRC-32 chained over
/// them. Its snapshot is those 12 bytes.
struct Tally {
    node: NodeId,
    values: u64,
    crc: u32,
    shared: Tallies,
}

impl Tally {
    fn publish(&self) {
        let mut t = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        t.insert(self.node, (self.values, self.crc));
    }
}

impl StateMachine<PackedBytes> for Tally {
    fn apply(&mut self, _: InstanceId, batch: &PackedBytes) -> Bytes {
        for item in batch.items() {
            let mut h = crc32fast::Hasher::new_with_initial(self.crc);
            h.update(&item);
            self.crc = h.finalize();
            self.values += 1;
        }
        self.publish();
        Bytes::new()
    }

    fn snapshot(&self) -> Bytes {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&self.values.to_le_bytes());
        b.extend_from_slice(&self.crc.to_le_bytes());
        b.into()
    }

    fn restore(&mut self, _: InstanceId, state: &[u8]) -> Result<(), RestoreError> {
        let (Some(values), Some(crc)) = (state.get(..8), state.get(8..12)) else {
            return Err(RestoreError(format!("{} bytes, want 12", state.len())));
        };
        let mut v = [0; 8];
        v.copy_from_slice(values);
        let mut c = [0; 4];
        c.copy_from_slice(crc);
        self.values = u64::from_le_bytes(v);
        self.crc = u32::from_le_bytes(c);
        self.publish();
        Ok(())
    }
}

/// Run `paxos-harness soak`.
pub fn main(args: SoakArgs) -> ExitCode {
    if args.transport == TransportKind::Turmoil {
        return usage_error("soak measures real memory and time: use --transport tcp or channel");
    }
    let tallies: Tallies = Arc::default();
    let spec = spec_for(&args, &tallies);
    let env = Env::new(1).on_storage(args.storage).over(args.transport);
    if !args.json {
        println!(
            "soak: {} nodes, {} storage, {}, {} appends of {} B, {} in flight, a snapshot every {} entries ({} kept)",
            args.nodes,
            args.storage,
            args.transport,
            args.appends,
            args.value_size,
            args.clients,
            args.snapshot_every,
            args.keep
        );
    }
    let a = args.clone();
    let run = cluster::run(spec, &env, move |c| Box::pin(soak(c, a, tallies)));
    match run.result {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print_summary(&report);
            }
            let broken = report.catch_up.as_ref().is_some_and(|c| !c.same_state);
            if broken {
                eprintln!("soak: the restarted node's state differs from the leader's");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The soak's cluster: `bench`'s, each node driving a [`Tally`] that reports to `tallies`.
fn spec_for(args: &SoakArgs, tallies: &Tallies) -> ClusterSpec<PackedBytes> {
    let machines = tallies.clone();
    let mut spec = ClusterSpec::<PackedBytes>::symmetric(args.nodes)
        .elected()
        .learner_strategy(LearnerStrategy::Leader)
        .unobserved()
        .tune(|c| {
            c.snapshot_every_entries = args.snapshot_every;
            c.snapshot_keep_entries = args.keep;
            c.session_window_entries = args.session_window;
        });
    spec.state_machine = Some(MachineFactory::new(move |node| {
        Box::new(Tally {
            node,
            values: 0,
            crc: 0,
            shared: machines.clone(),
        })
    }));
    spec.time_limit = Duration::from_secs(24 * 3600);
    spec
}

fn print_summary(r: &SoakReport) {
    println!(
        "soak: {} appends in {:.1} s ({:.0}/s)",
        r.appends, r.secs, r.throughput
    );
    if let Some(x) = r.rss_ratio {
        println!(
            "  resident memory at the end: {x:.2}x its value after the first tenth (target: at most 1.25x)"
        );
    }
    if let Some(x) = r.disk_ratio {
        println!(
            "  storage on disk: its peak over the last five tenths is {x:.2}x the peak over the first five (target: at most 1.25x)"
        );
    }
    if let Some(c) = &r.catch_up {
        println!(
            "  catch-up: n{} missed {} appends; back in step {:.2} s after its restart (target: 10 s), its log starts at i{}, state {}",
            c.node,
            c.missed,
            c.secs,
            c.log_start,
            if c.same_state {
                "equal to the leader's"
            } else {
                "DIFFERENT from the leader's"
            }
        );
    }
}

/// The soak's body: both phases.
async fn soak(
    c: Cluster<PackedBytes>,
    args: SoakArgs,
    tallies: Tallies,
) -> Result<SoakReport, Failure> {
    let started = Instant::now();
    let samples = append(&c, &args, args.appends, true).await?;
    let secs = started.elapsed().as_secs_f64();
    let decided = samples.last().map_or(0, |s| s.appends);
    let rss = |s: Option<&Sample>| s.and_then(|s| s.rss_bytes).filter(|&b| b > 0);
    let rss_ratio = match (rss(samples.first()), rss(samples.last())) {
        (Some(a), Some(b)) => Some(b as f64 / a as f64),
        _ => None,
    };
    let (early, late) = samples.split_at(samples.len() / 2);
    let peak = |s: &[Sample]| s.iter().map(|s| s.disk_bytes).max().filter(|&b| b > 0);
    let disk_ratio = match (peak(early), peak(late)) {
        (Some(a), Some(b)) => Some(b as f64 / a as f64),
        _ => None,
    };
    let catch_up = match args.catch_up {
        0 => None,
        missed => Some(catch_up(&c, &args, missed, &tallies).await?),
    };
    Ok(SoakReport {
        storage: args.storage.to_string(),
        transport: args.transport.to_string(),
        nodes: args.nodes,
        clients: args.clients,
        value_size: args.value_size,
        snapshot_every: args.snapshot_every,
        keep: args.keep,
        appends: decided,
        secs,
        throughput: decided as f64 / secs.max(1e-9),
        samples,
        rss_ratio,
        disk_ratio,
        catch_up,
    })
}

/// Append `n` values through the leader; with `report`, sample (and print) at each tenth.
async fn append(
    c: &Cluster<PackedBytes>,
    args: &SoakArgs,
    n: u64,
    report: bool,
) -> Result<Vec<Sample>, Failure> {
    let batcher = warm_up(c, args.window, args.batch).await?;
    let measuring = AtomicBool::new(true);
    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let in_flight = usize::try_from(args.clients).unwrap_or(usize::MAX);
    let client = drive(
        batcher,
        in_flight,
        args.value_size.max(8),
        &measuring,
        &stop,
        &progress,
    );
    let monitor = async {
        let start = Instant::now();
        let mut samples: Vec<Sample> = Vec::new();
        let mut tenth = 1;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let done = progress.load(Ordering::Relaxed);
            while report && tenth <= 10 && done >= n * tenth / 10 {
                let sample = sample(c, &samples, done, start.elapsed()).await?;
                if !args.json {
                    print_sample(&sample, n);
                }
                samples.push(sample);
                tenth += 1;
            }
            if done >= n {
                stop.store(true, Ordering::Relaxed);
                return Ok::<_, Failure>(samples);
            }
        }
    };
    let (client, samples) = futures::join!(client, monitor);
    client.map_err(Failure)?;
    samples
}

async fn sample(
    c: &Cluster<PackedBytes>,
    before: &[Sample],
    done: u64,
    elapsed: Duration,
) -> Result<Sample, Failure> {
    let secs = elapsed.as_secs_f64();
    let (last_n, last_s) = before.last().map_or((0, 0.0), |s| (s.appends, s.secs));
    let status = c.node(NodeId(1)).await?.status().await?;
    let disk_bytes = c
        .spec()
        .nodes()
        .into_iter()
        .filter_map(|n| c.storage_dir(n))
        .map(dir_size)
        .sum();
    Ok(Sample {
        appends: done,
        secs,
        rate: (done - last_n) as f64 / (secs - last_s).max(1e-9),
        rss_bytes: resident_bytes(),
        disk_bytes,
        applied: status.applied.0,
        log_start: status.log_start.0,
    })
}

fn print_sample(s: &Sample, n: u64) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "  {:>10}/{n} appends  {:>6.1} s  {:>9.0}/s  RSS {}  disk {:.1} MiB  leader applied i{} keeps from i{}",
        s.appends,
        s.secs,
        s.rate,
        s.rss_bytes
            .map_or("?".to_string(), |b| format!("{:.1} MiB", mib(b))),
        mib(s.disk_bytes),
        s.applied,
        s.log_start
    );
}

/// Kill the last node, append `missed` values through the others, restart it and time how
/// long it takes to apply what the leader applied; then compare their states.
async fn catch_up(
    c: &Cluster<PackedBytes>,
    args: &SoakArgs,
    missed: u64,
    tallies: &Tallies,
) -> Result<CatchUp, Failure> {
    let lagging = NodeId(args.nodes);
    let leader = NodeId(1);
    c.crash(lagging).await?;
    if !args.json {
        println!("catch-up: {lagging} killed; {missed} appends through the others");
    }
    append(c, args, missed, false).await?;
    let target = c.node(leader).await?.status().await?.applied;
    let restarted = Instant::now();
    c.restart(lagging).await?;
    eventually(
        Duration::from_secs(600),
        Duration::from_millis(5),
        || async {
            let at = c.node(lagging).await?.status().await?.applied;
            Ok(match at >= target {
                true => Look::Done(()),
                false => Look::Wait(format!(
                    "{lagging} applied only below {at}, the leader below {target}"
                )),
            })
        },
    )
    .await?;
    let secs = restarted.elapsed().as_secs_f64();
    let log_start = c.node(lagging).await?.status().await?.log_start.0;
    // The leader may have applied more since (the batcher's last instances): compare once
    // both are quiet and equal.
    let same_state = eventually(
        Duration::from_secs(10),
        Duration::from_millis(5),
        || async {
            let a = c.node(leader).await?.status().await?.applied;
            let b = c.node(lagging).await?.status().await?.applied;
            let t = tallies.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Ok(match (a == b, t.get(&leader) == t.get(&lagging)) {
                (true, true) => Look::Done(true),
                _ => Look::Wait(format!("{lagging} at {b}, leader at {a}: {t:?}")),
            })
        },
    )
    .await
    .unwrap_or(false);
    Ok(CatchUp {
        node: lagging.0,
        missed,
        secs,
        log_start,
        same_state,
    })
}

/// This process's resident memory (`VmRSS`), on Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes in the files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        soak: SoakArgs,
    }

    /// A small soak over in-process channels: ten samples, the log compacted, and the node
    /// that missed appends back with the leader's state (by snapshot: its log starts above
    /// where it stopped).
    #[test]
    fn a_small_soak_compacts_and_the_lagging_node_catches_up() {
        let args = Cli::parse_from([
            "soak",
            "--appends",
            "20000",
            "--catch-up",
            "20000",
            "--clients",
            "16",
            "--snapshot-every",
            "10",
            "--keep",
            "5",
            "--transport",
            "channel",
        ])
        .soak;
        let tallies = Tallies::default();
        let spec = spec_for(&args, &tallies);
        let env = Env::new(1).over(args.transport);
        let a = args.clone();
        let run = cluster::run(spec, &env, move |c| Box::pin(soak(c, a, tallies)));
        let report = run.result.expect("the soak ran");
        assert_eq!(report.samples.len(), 10);
        assert!(report.appends >= 20000);
        let last = report.samples.last().expect("samples");
        assert!(last.log_start > 0, "the leader compacted its log");
        let catch_up = report.catch_up.expect("the catch-up phase ran");
        assert!(catch_up.same_state, "the restarted node's state differs");
        let stopped_at = last.applied;
        assert!(
            catch_up.log_start > stopped_at,
            "it caught up by snapshot: log starts at {}, it stopped at {stopped_at}",
            catch_up.log_start
        );
    }
}
