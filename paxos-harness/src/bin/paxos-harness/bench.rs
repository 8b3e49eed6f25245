//! `paxos-harness bench`: throughput and latency of a real in-process cluster, side by side with
//! this machine's limits (loopback round trip, synced write and synced batch rates).
//!
//! Three (or `--nodes`) nodes run in one process on one tokio thread, as the OmniPaxos anchor
//! does, talking over real loopback TCP (or in-process channels), built by the one cluster
//! builder with the observer and fault injection left out. Node 1 is the elected leader. One
//! client keeps `--clients` values submitted and not yet decided through a
//! [`Batcher::pipeline`] on it (as the anchor's client keeps its appends in flight), topping
//! up whenever a range of them is decided. Latency is measured per value, from submission to
//! its decision reaching the client, with an HDR histogram.
//!
//! `--op write` and `--op read` measure single operations instead, as a service's clients
//! issue them: `--clients` tasks each loop on one `NodeHandle` call at the leader (an
//! `append` per value, or a linearizable `query` under `--read-policy index|lease`), so
//! reads and writes are compared at the same concurrency, on the same cluster.

use crate::{duration, one_of, usage_error};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use paxos_core::{
    Batch, BatchConfig, Batcher, InstanceId, LearnerStrategy, NodeId, PackedBytes, ReadPolicy,
    RestoreError, StateMachine, Storage, Write,
};
use paxos_harness::cluster::{
    self, Cluster, ClusterSpec, Env, Failure, LinkSecurity, MachineFactory, StorageKind,
    TransportKind,
};
use paxos_harness::wait::{Look, eventually};
use serde::Serialize;
use std::collections::VecDeque;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Flags of `paxos-harness bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Storage backend.
    #[arg(long, default_value = "memory",
          value_parser = one_of::<StorageKind>(StorageKind::ALL.iter().map(|k| k.name())))]
    pub storage: StorageKind,
    /// Network: `tcp` (loopback, the wire codec) or `channel` (in-process, no serialization);
    /// `turmoil` is refused, since simulated time says nothing about speed.
    #[arg(long, default_value = "tcp",
          value_parser = one_of::<TransportKind>(TransportKind::ALL.iter().map(|k| k.name())))]
    pub transport: TransportKind,
    /// Peer links (`--transport tcp`): `tls` (mutual TLS 1.3, as deployed) or `plain`
    /// (unauthenticated, to see what TLS costs).
    #[arg(long, default_value = "tls",
          value_parser = one_of::<LinkSecurity>(LinkSecurity::ALL.iter().map(|k| k.name())))]
    pub links: LinkSecurity,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub nodes: u64,
    /// Values in flight: submitted and not yet decided.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Bytes per value (at least 8: each starts with a counter).
    #[arg(long, default_value_t = 16)]
    pub value_size: usize,
    /// Measured duration, after a 0.5 s warm-up (`3s`, `500ms`).
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub duration: Duration,
    /// Print one JSON object per run instead of text.
    #[arg(long)]
    pub json: bool,
    /// Skip measuring the machine's limits.
    #[arg(long)]
    pub no_limits: bool,
    /// Instances in flight at most (the pipeline window).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Values per instance at most (1 = no batching).
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// What each client does: `pipeline` (values batched and pipelined onto the leader),
    /// `write` (one `append` per value, waiting for each) or `read` (one linearizable
    /// `query` at a time).
    #[arg(long, value_enum, default_value = "pipeline")]
    pub op: BenchOp,
    /// How reads are answered (`--op read`; the same for every node).
    #[arg(long, value_enum, default_value = "index")]
    pub read_policy: ReadPolicyKind,
}

/// `--op`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchOp {
    /// Values batched and pipelined (the throughput bench).
    Pipeline,
    /// One append per value per client, waiting for each.
    Write,
    /// One linearizable read per client at a time.
    Read,
}

/// `--read-policy`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPolicyKind {
    /// ReadIndex: a quorum round per batch of reads.
    Index,
    /// Leader lease (300 ms, 30 ms drift bound).
    Lease,
}

/// One run's result (the `--json` object).
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// What was measured: `pipeline`, `write`, `read index` or `read lease`.
    pub op: String,
    /// Storage backend.
    pub storage: String,
    /// Transport.
    pub transport: String,
    /// Peer-link security (`tls` or `plain`; channels carry no bytes).
    pub links: String,
    /// Nodes.
    pub nodes: u64,
    /// Values in flight.
    pub clients: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// Values decided per second.
    pub throughput: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Loopback TCP round trip (median, microseconds), if measured.
    pub loopback_rtt_us: Option<f64>,
    /// Synced single writes per second in the storage directory, if measured (RocksDB).
    pub synced_writes_per_s: Option<f64>,
    /// Synced 64-write batches per second, if measured (RocksDB).
    pub synced_batches_per_s: Option<f64>,
    /// Median latency of one synced write while every node's store syncs at once (`--nodes`
    /// writers on the one disk), microseconds, if measured (RocksDB).
    pub concurrent_synced_write_p50_us: Option<f64>,
}

/// Run `paxos-harness bench`: measure the machine's limits, then the cluster.
pub fn main(args: BenchArgs) -> ExitCode {
    if args.transport == TransportKind::Turmoil {
        return usage_error(
            "bench measures real time: use --transport tcp or channel (turmoil time is simulated)",
        );
    }
    let limits = if args.no_limits {
        None
    } else {
        match measure_limits(&args) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("bench: measuring the machine: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let read_policy = match args.read_policy {
        ReadPolicyKind::Index => ReadPolicy::ReadIndex,
        ReadPolicyKind::Lease => ReadPolicy::Lease {
            duration: Duration::from_millis(300),
            max_drift: Duration::from_millis(30),
        },
    };
    let mut spec = ClusterSpec::<PackedBytes>::symmetric(args.nodes)
        .elected()
        .learner_strategy(LearnerStrategy::Leader)
        .tune(|c| c.read_policy = read_policy)
        .unobserved();
    if args.op != BenchOp::Pipeline {
        spec.state_machine = Some(MachineFactory::new(|_| Box::new(Counter::default())));
    }
    spec.time_limit = args.duration + Duration::from_secs(120);
    let env = Env::new(1)
        .on_storage(args.storage)
        .over(args.transport)
        .with_links(args.links);
    let measured = args.clone();
    let run = cluster::run(spec, &env, move |c| match measured.op {
        BenchOp::Pipeline => Box::pin(measure(c, measured)),
        _ => Box::pin(measure_ops(c, measured)),
    });
    match run.result {
        Ok((decided, elapsed, h)) => {
            let r = BenchResult {
                op: match args.op {
                    BenchOp::Pipeline => "pipeline".into(),
                    BenchOp::Write => "write".into(),
                    BenchOp::Read => format!("read {:?}", args.read_policy).to_lowercase(),
                },
                storage: args.storage.to_string(),
                transport: args.transport.to_string(),
                links: args.links.to_string(),
                nodes: args.nodes,
                clients: args.clients,
                value_size: args.value_size,
                duration_s: elapsed,
                throughput: decided as f64 / elapsed,
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                loopback_rtt_us: limits.as_ref().map(|l| l.rtt_us),
                synced_writes_per_s: limits.as_ref().and_then(|l| l.synced_writes),
                synced_batches_per_s: limits.as_ref().and_then(|l| l.synced_batches),
                concurrent_synced_write_p50_us: limits
                    .as_ref()
                    .and_then(|l| l.concurrent_write_p50_us),
            };
            if args.json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                print_result(&r);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_result(r: &BenchResult) {
    println!(
        "{} storage {} transport {} links {} nodes {} in-flight {} value {} B: {:.0} ops/s, p50 {} us, p99 {} us, p99.9 {} us",
        r.op,
        r.storage,
        r.transport,
        r.links,
        r.nodes,
        r.clients,
        r.value_size,
        r.throughput,
        r.p50_us,
        r.p99_us,
        r.p999_us
    );
    if let Some(rtt) = r.loopback_rtt_us {
        println!(
            "  machine: loopback round trip {rtt:.1} us -> p50 = {:.1} round trips",
            r.p50_us as f64 / rtt
        );
    }
    if let (Some(c), Some(rtt)) = (r.concurrent_synced_write_p50_us, r.loopback_rtt_us) {
        println!(
            "  machine: one synced write takes {c:.0} us (p50) while {} stores sync at once -> p50 = {:.2}x (that + 2 round trips)",
            r.nodes,
            r.p50_us as f64 / (c + 2.0 * rtt)
        );
    }
    if let (Some(w), Some(b)) = (r.synced_writes_per_s, r.synced_batches_per_s) {
        println!(
            "  machine: {w:.0} synced writes/s, {b:.0} synced 64-write batches/s ({:.0} entries/s); throughput = {:.2}x the batch-entry limit",
            b * 64.0,
            r.throughput / (b * 64.0)
        );
    }
}

/// The body of the bench run: warm up, then keep `--clients` values in flight for
/// `--duration` while printing progress. Returns the values decided while measuring, the
/// measured seconds and their latencies.
async fn measure(
    c: Cluster<PackedBytes>,
    args: BenchArgs,
) -> Result<(u64, f64, Histogram<u64>), Failure> {
    let batcher = warm_up(&c, args.window, args.batch).await?;
    let measuring = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let client = drive(
        batcher,
        usize::try_from(args.clients).unwrap_or(usize::MAX),
        args.value_size.max(8),
        &measuring,
        &stop,
        &progress,
    );
    let clock = measure_window(&args, "decided", &measuring, &progress);
    let clock = async {
        let elapsed = clock.await;
        stop.store(true, Ordering::Relaxed);
        elapsed
    };
    let (decided, elapsed) = futures::join!(client, clock);
    let (decided, h) = decided.map_err(Failure)?;
    Ok((decided, elapsed, h))
}

/// The measuring window both bench bodies share: half a second of settling, then `measuring`
/// on for `--duration` with a progress line a second (the count in `progress`, named `what`).
/// Returns the measured seconds, `measuring` off again.
async fn measure_window(
    args: &BenchArgs,
    what: &str,
    measuring: &AtomicBool,
    progress: &AtomicU64,
) -> f64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let total = args.duration.max(Duration::from_millis(100));
    let mut last = 0;
    while start.elapsed() < total {
        let step = Duration::from_secs(1).min(total.saturating_sub(start.elapsed()));
        tokio::time::sleep(step).await;
        let now = progress.load(Ordering::Relaxed);
        if !args.json {
            eprintln!(
                "  ... {:.1}s: {now} {what} ({:.0}/s)",
                start.elapsed().as_secs_f64(),
                (now - last) as f64 / step.as_secs_f64().max(1e-9)
            );
        }
        last = now;
    }
    measuring.store(false, Ordering::Relaxed);
    start.elapsed().as_secs_f64()
}

/// A state machine that counts what it applied and answers every query with the count: what
/// `--op read` reads.
#[derive(Default)]
struct Counter(u64);

impl StateMachine<PackedBytes> for Counter {
    fn apply(&mut self, _: InstanceId, batch: &PackedBytes) -> Bytes {
        self.0 += batch.items().count() as u64;
        Bytes::new()
    }
    fn snapshot(&self) -> Bytes {
        Bytes::copy_from_slice(&self.0.to_le_bytes())
    }
    fn restore(&mut self, _: InstanceId, state: &[u8]) -> Result<(), RestoreError> {
        let bytes = state
            .try_into()
            .map_err(|_| RestoreError(format!("{} bytes, not 8", state.len())))?;
        self.0 = u64::from_le_bytes(bytes);
        Ok(())
    }
    fn query(&self, _: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&self.0.to_le_bytes())
    }
}

/// `--op write` / `--op read`: `--clients` tasks each loop on one call at the leader for
/// `--duration` (after the warm-up), each call timed.
async fn measure_ops(
    c: Cluster<PackedBytes>,
    args: BenchArgs,
) -> Result<(u64, f64, Histogram<u64>), Failure> {
    // The warm-up decides a first value (the leader holds its ballot); its batcher is unused.
    drop(warm_up(&c, args.window, args.batch).await?);
    let leader = c.node(NodeId(1)).await?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let size = args.value_size.max(8);
    let timeout = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for client in 0..args.clients {
        let (leader, measuring, stop, progress) = (
            leader.clone(),
            measuring.clone(),
            stop.clone(),
            progress.clone(),
        );
        let op = args.op;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
            let mut next = client << 40;
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match op {
                    BenchOp::Read => {
                        leader
                            .query(Bytes::new(), timeout)
                            .await
                            .map_err(|e| format!("read: {e}"))?;
                    }
                    _ => {
                        let value = make_values(&mut next, 1, size);
                        leader
                            .append(PackedBytes::pack(&value), timeout)
                            .await
                            .map_err(|e| format!("write: {e}"))?;
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    let us = t.elapsed().as_micros() as u64;
                    let _ = hist.record(us.max(1));
                    done += 1;
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, String>((done, hist))
        }));
    }
    let elapsed = measure_window(&args, "ops", &measuring, &progress).await;
    stop.store(true, Ordering::Relaxed);
    let mut total_done = 0;
    let mut hist = Histogram::<u64>::new(3).map_err(|e| Failure(e.to_string()))?;
    for t in tasks {
        let (done, h) = t
            .await
            .map_err(|e| Failure(format!("client task: {e}")))?
            .map_err(Failure)?;
        total_done += done;
        hist.add(h).map_err(|e| Failure(e.to_string()))?;
    }
    Ok((total_done, elapsed, hist))
}

/// Wait until the leader (node 1) decides a first value (the cluster is up and the leader
/// holds its ballot), then put a [`Batcher`] on it: at most `window` instances in flight,
/// `batch` values each.
pub(crate) async fn warm_up(
    c: &Cluster<PackedBytes>,
    window: usize,
    batch: usize,
) -> Result<Batcher<Bytes>, Failure> {
    let leader = c.node(NodeId(1)).await?;
    eventually(Duration::from_secs(100), Duration::ZERO, || {
        let leader = leader.clone();
        async move {
            let warm_up = PackedBytes::pack(&[Bytes::from_static(b"warm-up")]);
            let attempt = tokio::time::timeout(Duration::from_millis(500), leader.propose(warm_up));
            Ok(match attempt.await {
                Ok(Ok(_)) => Look::Done(()),
                other => Look::Wait(format!(
                    "the cluster did not decide a first value ({other:?})"
                )),
            })
        }
    })
    .await?;
    Ok(Batcher::spawn(
        leader,
        BatchConfig {
            window,
            max_values: batch.max(1),
            max_bytes: 1 << 20,
            weigh: Bytes::len,
            timeout: Duration::from_secs(60),
        },
    ))
}

/// The client: keeps `in_flight` values proposed and not yet decided, through one
/// [`Batcher::pipeline`], topping up as soon as a range of them is decided. Latency is per
/// value, from its submission to the decision of its batch. Returns the values decided while
/// `measuring` was on (also published in `progress`), and their latencies.
pub(crate) async fn drive(
    batcher: Batcher<Bytes>,
    in_flight: usize,
    value_size: usize,
    measuring: &AtomicBool,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> Result<(u64, Histogram<u64>), String> {
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let (mut submitter, mut commits) = batcher.pipeline();
    // Submission time of each chunk of tickets, oldest first.
    let mut sent: VecDeque<(Range<u64>, Instant)> = VecDeque::new();
    let mut decided = 0u64;
    let mut next_value = 0u64;
    let mut top_up = in_flight;
    while !stop.load(Ordering::Relaxed) {
        if top_up > 0 {
            let values = make_values(&mut next_value, top_up, value_size);
            let tickets = submitter
                .submit_many(values)
                .await
                .map_err(|e| format!("submit: {e}"))?;
            sent.push_back((tickets, Instant::now()));
        }
        let commit = match commits.next().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(format!("propose: {e}")),
            None => return Err("batcher stopped".into()),
        };
        top_up = usize::try_from(commit.tickets.end - commit.tickets.start).unwrap_or(0);
        let now = Instant::now();
        let counting = measuring.load(Ordering::Relaxed);
        // Commits arrive in proposal order, so ranges retire chunks front to back.
        let mut from = commit.tickets.start;
        while from < commit.tickets.end {
            let Some((chunk, at)) = sent.front_mut() else {
                break;
            };
            let upto = chunk.end.min(commit.tickets.end);
            let n = upto.saturating_sub(from.max(chunk.start));
            if counting && n > 0 {
                let us = now.duration_since(*at).as_micros() as u64;
                let _ = hist.record_n(us.max(1), n);
                decided += n;
            }
            from = upto;
            chunk.start = upto;
            if chunk.start >= chunk.end {
                sent.pop_front();
            }
        }
        progress.store(decided, Ordering::Relaxed);
    }
    Ok((decided, hist))
}

/// `n` values of `size` bytes, each starting with a distinct counter, sliced from one buffer
/// (one allocation per call, not per value).
fn make_values(next: &mut u64, n: usize, size: usize) -> Vec<Bytes> {
    let mut buf = BytesMut::with_capacity(n * size);
    for _ in 0..n {
        buf.extend_from_slice(&next.to_le_bytes());
        buf.resize(buf.len() + size - 8, 0);
        *next += 1;
    }
    let buf = buf.freeze();
    (0..n)
        .map(|i| buf.slice(i * size..(i + 1) * size))
        .collect()
}

/// RocksDB storage in `dir`, for the machine-limit probes.
fn rocksdb_in(dir: &std::path::Path) -> Result<Arc<dyn Storage<Bytes>>, String> {
    #[cfg(feature = "rocksdb")]
    {
        paxos_storage::RocksDbStorage::open(dir)
            .map(|s| Arc::new(s) as Arc<dyn Storage<Bytes>>)
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "rocksdb"))]
    {
        Err(format!(
            "{}: RocksDB needs the `rocksdb` feature",
            dir.display()
        ))
    }
}

struct Limits {
    rtt_us: f64,
    synced_writes: Option<f64>,
    synced_batches: Option<f64>,
    concurrent_write_p50_us: Option<f64>,
}

/// Median latency of a synced single write while `writers` stores (one per node, all on this
/// disk) sync at the same time, as the nodes of a one-machine cluster do.
async fn concurrent_synced_write_p50(writers: u64, dir: &std::path::Path) -> Result<f64, String> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let path = dir.join(format!("limits-concurrent-{w}"));
        let storage = rocksdb_in(&path)?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(300);
            for i in 0..300u64 {
                let t = Instant::now();
                storage
                    .save(&[Write::ProposerRound(i + 1)])
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(t.elapsed().as_secs_f64() * 1e6);
            }
            drop(storage);
            let _ = std::fs::remove_dir_all(&path);
            Ok::<_, String>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    all.sort_by(f64::total_cmp);
    Ok(all.get(all.len() / 2).copied().unwrap_or(0.0))
}

/// This machine's limits, measured in the same run before the cluster starts: loopback TCP
/// round trip (median of 2000 16-byte ping-pongs) and, for RocksDB, synced single-write and
/// 64-write-batch rates.
fn measure_limits(args: &BenchArgs) -> Result<Limits, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("paxos-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    rt.block_on(probe_machine(args, dir.path()))
}

async fn probe_machine(args: &BenchArgs, dir: &std::path::Path) -> Result<Limits, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 16];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut rtts = Vec::with_capacity(2000);
    let mut buf = [7u8; 16];
    for _ in 0..2000 {
        let t = Instant::now();
        s.write_all(&buf).await.map_err(|e| e.to_string())?;
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    echo.abort();
    rtts.sort_by(f64::total_cmp);
    let rtt_us = rtts[rtts.len() / 2];
    let (mut synced_writes, mut synced_batches, mut concurrent_write_p50_us) = (None, None, None);
    if args.storage == StorageKind::Rocksdb {
        let path = dir.join("limits");
        let storage = rocksdb_in(&path)?;
        let rate = |n: u32, secs: f64| f64::from(n) / secs;
        let t = Instant::now();
        for i in 0..500u64 {
            storage
                .save(&[Write::ProposerRound(i + 1)])
                .await
                .map_err(|e| e.to_string())?;
        }
        synced_writes = Some(rate(500, t.elapsed().as_secs_f64()));
        let t = Instant::now();
        for b in 0..300u64 {
            let writes: Vec<Write<Bytes>> = (0..64)
                .map(|i| Write::Decided {
                    instance: paxos_core::InstanceId(b * 64 + i),
                    entry: paxos_core::Entry::Value {
                        id: paxos_core::ProposalId::default(),
                        value: Bytes::from_static(b"0123456789abcdef"),
                    },
                })
                .collect();
            storage.save(&writes).await.map_err(|e| e.to_string())?;
        }
        synced_batches = Some(rate(300, t.elapsed().as_secs_f64()));
        drop(storage);
        let _ = std::fs::remove_dir_all(&path);
        concurrent_write_p50_us = Some(concurrent_synced_write_p50(args.nodes, dir).await?);
    }
    Ok(Limits {
        rtt_us,
        synced_writes,
        synced_batches,
        concurrent_write_p50_us,
    })
}
