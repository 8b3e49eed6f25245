//! `paxos-harness jepsen`: a Jepsen-style test of real `paxos-harness node` processes.
//!
//! One run (one seed):
//! 1. `--nodes` node processes (this very executable's `node` subcommand, on RocksDB + TCP),
//!    each told its peers' addresses through the [`LinkProxy`] (so the nemesis can cut links);
//!    the client ports are direct. The run waits until every node answers `status` and they
//!    agree on a leader, and one warm-up write (on a key outside the history) went through.
//! 2. `--clients` concurrent clients for `--duration`, each looping over random operations
//!    (seeded from the run's seed): a `put` of a fresh unique value, a `get`, or a `cas` from
//!    the value it saw last on that key to a fresh one, on one of `--keys` keys, through a
//!    random node. Every operation is recorded in the history as an invocation before it is
//!    sent and a completion after (Jepsen's meanings):
//!    - `ok`: the node answered it (a get with the value it read);
//!    - `fail`: it certainly had no effect: a cas answered `ok:false`, or any failed get
//!      (reads have no effect);
//!    - `info`: anything else on a write (a timeout, a lost connection, a node error): it may
//!      take effect at any time, or never. The client then carries on as a **new process**:
//!      a process with an indeterminate operation never invokes again.
//!
//!    Each client keeps one connection per node, with a session each, and gives every write a
//!    new sequence number of that session (the node retries exactly once); a connection that
//!    failed or timed out is closed (a late answer would be read as the next one's) and its
//!    node avoided for a moment. Every operation is bounded on both sides: `--op-timeout` is
//!    the node-side deadline, and the client waits that plus [`CLIENT_GRACE`].
//! 3. Meanwhile the nemesis plays the seed's [`Schedule`] (kills, pauses, partitions, each of
//!    a minority, and membership changes: a node demoted to a learner, then promoted back). At the end everything is healed and restarted, the cluster settles, and a
//!    final linearizable `get` of every key (recorded as an operation of a fresh process)
//!    pins what the acknowledged writes left: a lost acknowledged write makes it (and so the
//!    history) not linearizable.
//! 4. The nodes are killed, the history written to `DIR/history.jsonl` (the schedule to
//!    `DIR/nemesis.txt`) and checked key by key for linearizability.
//!
//! A run passes when the history is linearizable, every final read succeeded, every value
//! read was readable and no node exited by itself. `--break stale-reads` runs nodes that
//! answer `get` from their local state with no read index: that run must fail the check.

use crate::node::{Breakage, ReadPolicyArg};
use crate::{duration, exit_code, shell_quote, usage_error};
use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::ValueEnum;
use paxos_core::{ClientId, NodeId, ProposalId};
use paxos_harness::client::protocol::Op as WireOp;
use paxos_harness::client::{Client, ClientError, KvAnswer};
use paxos_harness::jepsen::checker;
use paxos_harness::jepsen::history::{History, Op, Outcome, Recorder};
use paxos_harness::jepsen::nemesis::{
    self, Fault, FaultError, FaultTarget, Live, NemesisOptions, NemesisReport, Schedule,
};
use paxos_harness::jepsen::procs::{ProcSpec, Procs};
use paxos_harness::jepsen::proxy::LinkProxy;
use paxos_harness::ports::free_port;
use paxos_harness::service::KvCommand;
use paxos_harness::wait::{Look, eventually};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, sleep, sleep_until, timeout};

/// How much longer than `--op-timeout` a client waits for an answer: the node's own deadline
/// answers first (an error line keeps the connection usable); past this the node is silent.
const CLIENT_GRACE: Duration = Duration::from_millis(500);
/// How long every node has to answer and agree on a leader, at the start and after the heal.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long the final read of one key is retried.
const FINAL_READ_WITHIN: Duration = Duration::from_secs(20);
/// A progress line this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The key the warm-up write goes to (not one of the history's keys).
const WARM_UP_KEY: &str = "jepsen-warm-up";
/// Percent of operations that are gets.
const GETS: u32 = 50;
/// Percent of operations that are puts; the rest are cas (a cas with no value to expect yet
/// is a put).
const PUTS: u32 = 30;

/// Flags of `paxos-harness jepsen`.
#[derive(clap::Args, Debug, Clone)]
pub struct JepsenArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub clients: u64,
    /// Keys the clients work on (each checked as its own register).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub keys: u64,
    /// How long the clients run (the nemesis ends its last fault 5 s before).
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub duration: Duration,
    /// Run this one seed (the nemesis schedule and the clients' choices).
    #[arg(long, conflicts_with_all = ["seeds", "start"])]
    pub seed: Option<u64>,
    /// Run this many seeds, each on a fresh cluster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// First seed of `--seeds`.
    #[arg(long, default_value_t = 1)]
    pub start: u64,
    /// Faults: a comma-separated list of `kill`, `pause`, `partition`, `membership` (or
    /// `all`), or `none`.
    #[arg(long, default_value = "all", value_parser = parse_nemeses)]
    pub nemesis: Nemeses,
    /// TEST ONLY: start every node with `--break` this (`stale-reads`: gets answered from
    /// local state with no read index); the run must then fail the check.
    #[arg(long = "break", value_enum)]
    pub break_on_purpose: Option<Breakage>,
    /// How the nodes answer `get`: `index` (ReadIndex) or `lease` (leader leases; the node's
    /// `--read-policy`).
    #[arg(long, value_enum, default_value = "index")]
    pub reads: ReadPolicyArg,
    /// One more argument for every node's command line (repeatable, in order), e.g.
    /// `--node-arg=--tick=2ms`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Where the nodes' data directories, their logs, the schedule and the history go
    /// (`seed-S/` below it for each seed of `--seeds`); kept. Default: a temporary directory,
    /// kept if a run fails, removed otherwise (unless `--keep`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory even when every run passes.
    #[arg(long)]
    pub keep: bool,
    /// Deadline of one operation, on the node (its `timeout_ms`) and in the client (which
    /// waits this plus 500 ms).
    #[arg(long, default_value = "1s", value_parser = op_timeout)]
    pub op_timeout: Duration,
    /// Print each run's summary as one JSON line (and nothing else), then a last line
    /// `{"passed":N,"failed":M}` when running several seeds.
    #[arg(long)]
    pub json: bool,
}

/// Which faults the nemesis may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nemeses {
    /// Kill (SIGKILL) and restart nodes.
    pub kill: bool,
    /// Pause (SIGSTOP) and resume nodes.
    pub pause: bool,
    /// Partition and heal the network.
    pub partition: bool,
    /// Demote a node to a learner and promote it back (live membership changes).
    pub membership: bool,
}

impl fmt::Display for Nemeses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = [
            (self.kill, "kill"),
            (self.pause, "pause"),
            (self.partition, "partition"),
            (self.membership, "membership"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

/// `--nemesis`: `kill,pause,partition,membership`, `all`, `none`, or any comma-separated
/// subset.
fn parse_nemeses(s: &str) -> Result<Nemeses, String> {
    let mut n = Nemeses {
        kill: false,
        pause: false,
        partition: false,
        membership: false,
    };
    if s.trim() == "none" {
        return Ok(n);
    }
    for part in s.split(',').map(str::trim) {
        match part {
            "kill" => n.kill = true,
            "pause" => n.pause = true,
            "partition" => n.partition = true,
            "membership" => n.membership = true,
            "all" => {
                n = Nemeses {
                    kill: true,
                    pause: true,
                    partition: true,
                    membership: true,
                }
            }
            other => {
                return Err(format!(
                    "unknown nemesis {other:?}: expected kill, pause, partition, membership, all or none"
                ));
            }
        }
    }
    Ok(n)
}

/// `--op-timeout`: at least 1 ms, at most 10 minutes.
fn op_timeout(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(600) {
        return Err(format!("{s} is outside 1ms..=10m"));
    }
    Ok(d)
}

/// A duration as `duration` parses it back: `60s`, `1500ms`.
fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// What `--break` passes to the nodes.
fn reads_name(r: ReadPolicyArg) -> &'static str {
    match r {
        ReadPolicyArg::Index => "index",
        ReadPolicyArg::Lease => "lease",
    }
}

fn break_name(b: Breakage) -> String {
    b.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// The command line that runs `seed` again with every flag that shapes a run.
fn replay_command(args: &JepsenArgs, seed: u64) -> String {
    let mut words: Vec<String> = vec![
        "paxos-harness".into(),
        "jepsen".into(),
        "--seed".into(),
        seed.to_string(),
        "--nodes".into(),
        args.nodes.to_string(),
        "--clients".into(),
        args.clients.to_string(),
        "--keys".into(),
        args.keys.to_string(),
        "--duration".into(),
        show_duration(args.duration),
        "--nemesis".into(),
        args.nemesis.to_string(),
        "--op-timeout".into(),
        show_duration(args.op_timeout),
        "--reads".into(),
        reads_name(args.reads).into(),
    ];
    if let Some(b) = args.break_on_purpose {
        words.push("--break".into());
        words.push(break_name(b));
    }
    for a in &args.node_args {
        words.push(format!("--node-arg={a}"));
    }
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the runs' files go.
enum Base {
    /// `--dir`: kept.
    Given(PathBuf),
    /// A temporary directory (`None` once kept or removed).
    Temp(Option<tempfile::TempDir>),
}

impl Base {
    fn root(&self) -> Option<&Path> {
        match self {
            Base::Given(p) => Some(p),
            Base::Temp(t) => t.as_ref().map(tempfile::TempDir::path),
        }
    }

    /// The directory of `seed`'s run; `alone`: the only seed of this invocation.
    fn dir_for(&self, seed: u64, alone: bool) -> PathBuf {
        match (self, self.root()) {
            (Base::Given(p), _) if alone => p.clone(),
            (_, Some(root)) => root.join(format!("seed-{seed}")),
            (_, None) => PathBuf::from(format!("seed-{seed}")),
        }
    }
}

/// Printing, unless `--json`.
#[derive(Clone, Copy)]
struct Out {
    quiet: bool,
}

impl Out {
    fn say(&self, line: impl fmt::Display) {
        if !self.quiet {
            println!("{line}");
        }
    }
}

/// Run `paxos-harness jepsen`.
pub fn main(args: JepsenArgs) -> ExitCode {
    if args.seed.is_none() && args.start.checked_add(args.seeds).is_none() {
        return usage_error("--start + --seeds is beyond the last seed (u64::MAX)");
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start + args.seeds).collect(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paxos-harness jepsen: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut base = match &args.dir {
        Some(d) => Base::Given(d.clone()),
        None => match tempfile::Builder::new().prefix("paxos-jepsen-").tempdir() {
            Ok(t) => Base::Temp(Some(t)),
            Err(e) => {
                eprintln!("paxos-harness jepsen: cannot create a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let out = Out { quiet: args.json };
    let alone = seeds.len() == 1;
    let mut failed: Vec<u64> = Vec::new();
    for &seed in &seeds {
        let dir = base.dir_for(seed, alone);
        let report = run_seed(&runtime, &args, seed, &dir, out);
        if args.json {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        } else {
            print_report(&report, alone);
        }
        if report.passed {
            if matches!(base, Base::Temp(_)) && !alone && !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        } else {
            failed.push(seed);
        }
    }
    if let Base::Temp(t) = &mut base
        && let Some(t) = t.take()
    {
        if failed.is_empty() && !args.keep {
            let path = t.path().to_owned();
            if let Err(e) = t.close() {
                eprintln!(
                    "paxos-harness jepsen: cannot remove {}: {e}",
                    path.display()
                );
            }
        } else {
            let kept = t.keep();
            out.say(format!(
                "kept {} (node logs, data, schedule and history)",
                kept.display()
            ));
        }
    }
    let passed = seeds.len() - failed.len();
    if args.json {
        if !alone {
            println!(
                "{}",
                serde_json::json!({"passed": passed, "failed": failed.len(), "failing_seeds": failed})
            );
        }
    } else {
        if !failed.is_empty() && !alone {
            println!("failing seeds: {failed:?}");
        }
        println!("{passed} passed, {} failed", failed.len());
    }
    exit_code(failed.len() as u64)
}

/// One run's outcome: `--json` prints it as is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Passed: linearizable and no problem.
    pub passed: bool,
    /// The check's answer.
    pub linearizable: bool,
    /// Cluster size.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Keys.
    pub keys: u64,
    /// `--duration`, seconds.
    pub duration_secs: f64,
    /// Operations in the history (the final reads included).
    pub ops: usize,
    /// Completed ok.
    pub ok: usize,
    /// Certainly without effect.
    pub fail: usize,
    /// Indeterminate.
    pub info: usize,
    /// Never completed.
    pub pending: usize,
    /// Kills the nemesis applied.
    pub kills: u64,
    /// Pauses applied.
    pub pauses: u64,
    /// Partitions applied.
    pub partitions: u64,
    /// Demotions applied (each a membership change, and another to promote back).
    pub demotions: u64,
    /// Nemesis steps that failed, and why.
    pub nemesis_failed: Vec<String>,
    /// With lease reads: each node's clock rate (`--clock-rate`), by node id.
    pub clock_rates: BTreeMap<u64, f64>,
    /// What the final read of each key returned (`null`: absent, or never read).
    pub final_reads: BTreeMap<String, Option<u64>>,
    /// Seconds the check took.
    pub check_secs: f64,
    /// Seconds the whole run took (start to verdict).
    pub total_secs: f64,
    /// Why the run failed besides the check (setup errors, crashes, failed final reads...).
    pub problems: Vec<String>,
    /// The check's verdict, as printed.
    pub verdict: String,
    /// The run's directory.
    pub dir: String,
    /// The command that replays this seed.
    pub replay: String,
}

fn print_report(r: &SeedReport, alone: bool) {
    if alone || !r.passed {
        for line in r.verdict.lines() {
            println!("{line}");
        }
        for p in &r.problems {
            println!("problem: {p}");
        }
        for f in &r.nemesis_failed {
            println!("nemesis step failed: {f}");
        }
    }
    println!(
        "seed {}: {} - {} ops: {} ok, {} failed, {} indeterminate, {} pending; nemesis: {} kills, {} pauses, {} partitions, {} demotions; check {:.2} s, run {:.1} s",
        r.seed,
        if r.passed { "PASS" } else { "FAIL" },
        r.ops,
        r.ok,
        r.fail,
        r.info,
        r.pending,
        r.kills,
        r.pauses,
        r.partitions,
        r.demotions,
        r.check_secs,
        r.total_secs
    );
    if !r.passed {
        println!("  files: {}", r.dir);
        println!("  replay: {}", r.replay);
    }
}

/// Run one seed: the cluster, the clients and the nemesis in `runtime`, then the check.
fn run_seed(
    runtime: &tokio::runtime::Runtime,
    args: &JepsenArgs,
    seed: u64,
    dir: &Path,
    out: Out,
) -> SeedReport {
    let started = std::time::Instant::now();
    let mut report = SeedReport {
        seed,
        nodes: args.nodes,
        clients: args.clients,
        keys: args.keys,
        duration_secs: args.duration.as_secs_f64(),
        dir: dir.display().to_string(),
        replay: replay_command(args, seed),
        clock_rates: clock_rates(args, seed)
            .into_iter()
            .map(|(id, rate)| (id.0, rate))
            .collect(),
        ..SeedReport::default()
    };
    out.say(format!(
        "jepsen seed {seed}: {} nodes, {} clients, {} keys, {}, nemesis {}, op timeout {}{}; files in {}",
        args.nodes,
        args.clients,
        args.keys,
        show_duration(args.duration),
        args.nemesis,
        show_duration(args.op_timeout),
        args.break_on_purpose
            .map(|b| format!(", BROKEN ON PURPOSE: {}", break_name(b)))
            .unwrap_or_default(),
        dir.display()
    ));
    if !report.clock_rates.is_empty() {
        let rates: Vec<String> = report
            .clock_rates
            .iter()
            .map(|(id, rate)| format!("n{id} {rate:.3}"))
            .collect();
        out.say(format!("  node clocks run at {}", rates.join(", ")));
    }
    let run = match prepare_dir(dir) {
        Ok(()) => runtime.block_on(run_cluster(args, seed, dir, out)),
        Err(e) => Err(e),
    };
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            report.problems.push(format!("{e:#}"));
            report.total_secs = started.elapsed().as_secs_f64();
            return report;
        }
    };
    report.kills = run.nemesis.applied.kills;
    report.pauses = run.nemesis.applied.pauses;
    report.partitions = run.nemesis.applied.partitions;
    report.demotions = run.nemesis.applied.demotions;
    report.nemesis_failed = run
        .nemesis
        .failed
        .iter()
        .map(|(step, why)| format!("{step}: {why}"))
        .collect();
    report.final_reads = run.final_reads;
    report.problems = run.problems;
    let counts = run.history.counts();
    report.ok = counts.ok;
    report.fail = counts.fail;
    report.info = counts.info;
    report.pending = counts.pending;
    report.ops = counts.ok + counts.fail + counts.info + counts.pending;
    if let Err(e) = write_history(&run.history, &dir.join("history.jsonl")) {
        report.problems.push(format!("{e:#}"));
    }
    out.say(format!(
        "checking {} operations on {} keys...",
        report.ops, args.keys
    ));
    let checking = std::time::Instant::now();
    let verdict = checker::check(&run.history);
    report.check_secs = checking.elapsed().as_secs_f64();
    report.linearizable = verdict.is_linearizable();
    report.verdict = verdict.to_string();
    report.passed = report.linearizable && report.problems.is_empty();
    report.total_secs = started.elapsed().as_secs_f64();
    report
}

/// Create the run's directory; refuse one that holds files (of an earlier run: the nodes
/// would start on its data).
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("read directory {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} is not empty (an earlier run's files?): pick another --dir or remove it",
            dir.display()
        );
    }
    Ok(())
}

fn write_history(history: &History, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    history
        .write_jsonl(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("write {}", path.display()))
}

/// What the cluster part of a run produced.
struct ClusterRun {
    history: History,
    nemesis: NemesisReport,
    final_reads: BTreeMap<String, Option<u64>>,
    problems: Vec<String>,
}

/// One node's addresses.
#[derive(Clone, Debug)]
struct NodeAddrs {
    id: NodeId,
    /// Its client port (direct, not proxied).
    client: String,
}

/// Start the cluster, run the clients and the nemesis, heal, read every key a last time and
/// stop the nodes.
async fn run_cluster(
    args: &JepsenArgs,
    seed: u64,
    dir: &Path,
    out: Out,
) -> anyhow::Result<ClusterRun> {
    let ids: BTreeSet<NodeId> = (1..=args.nodes).map(NodeId).collect();
    let options = NemesisOptions {
        kill: args.nemesis.kill,
        pause: args.nemesis.pause,
        partition: args.nemesis.partition,
        membership: args.nemesis.membership,
        ..NemesisOptions::default()
    };
    let schedule = Schedule::draw(seed, &ids, args.duration, &options);
    std::fs::write(dir.join("nemesis.txt"), schedule.to_string())
        .with_context(|| format!("write {}", dir.join("nemesis.txt").display()))?;
    out.say(
        schedule
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    );

    let booting = Instant::now();
    let (mut procs, links, nodes) = start_nodes(args, seed, dir, &ids).await?;
    let leaderless = args.node_args.iter().any(|a| a == "--leaderless");
    let leader = wait_ready(&nodes, leaderless)
        .await
        .map_err(|e| anyhow::anyhow!("the cluster did not come up: {}", e.0))?;
    warm_up(&nodes, args.op_timeout)
        .await
        .map_err(|e| anyhow::anyhow!("the warm-up write never went through: {}", e.0))?;
    out.say(format!(
        "cluster up in {:.1} s: leader {}",
        booting.elapsed().as_secs_f64(),
        leader.map_or("none (leaderless)".to_owned(), |l| l.to_string())
    ));

    let start = Instant::now();
    let shared = Arc::new(Shared {
        recorder: Recorder::new(),
        start,
        end: start + args.duration,
        nodes: nodes.clone(),
        keys: args.keys,
        op_timeout: args.op_timeout,
        next_process: AtomicU64::new(args.clients),
        ok: AtomicU64::new(0),
        fail: AtomicU64::new(0),
        info: AtomicU64::new(0),
        unreadable: Mutex::new(Vec::new()),
    });
    let faults = Arc::new(Mutex::new(CurrentFaults::default()));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        clients.spawn(client_loop(shared.clone(), c, seed));
    }
    let progress = tokio::spawn(progress(shared.clone(), faults.clone(), out));
    let client_ports: Vec<String> = nodes.iter().map(|n| n.client.clone()).collect();
    let mut tracked = Tracked {
        live: Live {
            procs: &mut procs,
            links: &links,
            clients: &client_ports,
        },
        now: faults.clone(),
        start,
        out,
        crashed: BTreeSet::new(),
        problems: Vec::new(),
    };
    let nemesis = async {
        let report = nemesis::play(&schedule, start, &mut tracked).await;
        sleep_until(start + args.duration).await;
        report
    };
    let clients_done = async {
        while let Some(joined) = clients.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "a client task failed");
            }
        }
    };
    let (nemesis_report, ()) = tokio::join!(nemesis, clients_done);
    progress.abort();
    let mut crashed = std::mem::take(&mut tracked.crashed);
    let mut problems = std::mem::take(&mut tracked.problems);
    drop(tracked);

    // Make the cluster whole: heal, then restart whatever is down (a node down now was not
    // killed by the nemesis, which restarted all its victims: it exited by itself).
    links.heal_all();
    note_crashes(&mut procs, &BTreeSet::new(), &mut crashed, &mut problems);
    for e in procs.recover_all() {
        problems.push(format!("cannot restart a node after the run: {e}"));
    }
    out.say(format!(
        "{:>7.1}s clients done: {}; everything healed",
        start.elapsed().as_secs_f64(),
        shared.counts()
    ));
    if let Err(e) = wait_ready(&nodes, leaderless).await {
        problems.push(format!(
            "the cluster did not recover after the faults: {}",
            e.0
        ));
    }
    let final_reads = final_reads(&shared, &mut problems).await;
    out.say(format!(
        "final reads: {}",
        final_reads
            .iter()
            .map(|(k, v)| format!("{k}={}", v.map_or("nil".to_owned(), |v| v.to_string())))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    note_crashes(&mut procs, &BTreeSet::new(), &mut crashed, &mut problems);
    procs.kill_all().await;
    drop(links);
    problems.extend(
        shared
            .unreadable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..),
    );
    Ok(ClusterRun {
        history: shared.recorder.history(),
        nemesis: nemesis_report,
        final_reads,
        problems,
    })
}

/// Most a node's clock runs fast or slow in a lease run: two clocks then part by at most 6 %
/// of a lease, 18 ms of the node's default 300 ms `--lease`, inside its default 30 ms
/// `--lease-drift` (a `--node-arg` that narrows the bound below 6 % of the lease makes the
/// drift exceed it).
const CLOCK_SKEW: f64 = 0.03;

/// With lease reads, each node's clock rate, drawn from the seed within [`CLOCK_SKEW`]: the
/// leases are tested under drift inside their bound, as the nodes' `--clock-rate` runs them.
/// Empty with ReadIndex reads (they read no clock).
fn clock_rates(args: &JepsenArgs, seed: u64) -> BTreeMap<NodeId, f64> {
    if args.reads != ReadPolicyArg::Lease {
        return BTreeMap::new();
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC10C_C10C_C10C_C10C);
    (1..=args.nodes)
        .map(|id| {
            let rate = 1.0 + rng.gen_range(-CLOCK_SKEW..=CLOCK_SKEW);
            // Three decimals: what the report prints is what the node ran.
            (NodeId(id), (rate * 1000.0).round() / 1000.0)
        })
        .collect()
}

/// Pick ports, start the link proxy and every node process.
async fn start_nodes(
    args: &JepsenArgs,
    seed: u64,
    dir: &Path,
    ids: &BTreeSet<NodeId>,
) -> anyhow::Result<(Procs, LinkProxy, Vec<NodeAddrs>)> {
    let mut real = BTreeMap::new();
    let mut nodes = Vec::new();
    for &id in ids {
        let listen = free_port().context("pick a port")?;
        let client = free_port().context("pick a port")?;
        real.insert(id, SocketAddr::from((Ipv4Addr::LOCALHOST, listen)));
        nodes.push(NodeAddrs {
            id,
            client: format!("127.0.0.1:{client}"),
        });
    }
    let links = LinkProxy::start(&real)
        .await
        .context("start the link proxy")?;
    // The nodes run as deployed: mutual TLS, credentials made for this run.
    let certs = dir.join("certs");
    let ids_list: Vec<NodeId> = ids.iter().copied().collect();
    paxos_harness::credentials::make(&certs, 0, &ids_list)
        .context("make the nodes' TLS credentials")?;
    let exe = std::env::current_exe().context("find this executable")?;
    let rates = clock_rates(args, seed);
    let mut procs = Procs::new();
    for node in &nodes {
        let id = node.id;
        let mut a: Vec<OsString> = vec![
            "node".into(),
            "--id".into(),
            id.0.to_string().into(),
            "--listen".into(),
            real[&id].to_string().into(),
            "--client".into(),
            node.client.clone().into(),
            "--data-dir".into(),
            dir.join(format!("n{}", id.0)).into(),
            "--certs".into(),
            certs.clone().into(),
            "--seed".into(),
            seed.wrapping_mul(1000)
                .wrapping_add(id.0)
                .to_string()
                .into(),
        ];
        let peers: Vec<String> = links
            .peers_of(id)
            .iter()
            .map(|(p, addr)| format!("{}={addr}", p.0))
            .collect();
        if !peers.is_empty() {
            a.push("--peers".into());
            a.push(peers.join(",").into());
        }
        if let Some(b) = args.break_on_purpose {
            a.push("--break".into());
            a.push(break_name(b).into());
        }
        a.push("--read-policy".into());
        a.push(reads_name(args.reads).into());
        if let Some(rate) = rates.get(&id) {
            a.push(format!("--clock-rate={rate}").into());
        }
        a.extend(args.node_args.iter().map(OsString::from));
        let spec = ProcSpec::new(
            format!("n{}", id.0),
            &exe,
            a,
            dir.join(format!("n{}.log", id.0)),
        );
        procs
            .start(id, spec)
            .with_context(|| format!("start node {id}"))?;
    }
    Ok((procs, links, nodes))
}

/// `addr`'s status, or `None`, within a second.
async fn status(addr: &str) -> Option<paxos_harness::client::protocol::Status> {
    let probe = async {
        let mut c = Client::connect(addr).await.ok()?;
        c.status().await.ok()
    };
    timeout(Duration::from_secs(1), probe).await.ok().flatten()
}

/// Wait until every node answers `status` and all name the same leader (none, if
/// `leaderless`).
async fn wait_ready(
    nodes: &[NodeAddrs],
    leaderless: bool,
) -> Result<Option<NodeId>, paxos_harness::cluster::Failure> {
    eventually(READY_WITHIN, Duration::from_millis(100), || async move {
        let mut leaders = BTreeSet::new();
        for n in nodes {
            match status(&n.client).await {
                Some(s) => leaders.insert(s.leader),
                None => return Ok(Look::Wait(format!("{} does not answer status", n.id))),
            };
        }
        let agreed: Vec<Option<u64>> = leaders.into_iter().collect();
        Ok(match agreed.as_slice() {
            [Some(l)] => Look::Done(Some(NodeId(*l))),
            [None] if leaderless => Look::Done(None),
            other => Look::Wait(format!("the nodes name leaders {other:?}")),
        })
    })
    .await
}

/// One write that went through (on a key outside the history), so the run starts on a
/// cluster whose write path works.
async fn warm_up(
    nodes: &[NodeAddrs],
    op_timeout: Duration,
) -> Result<(), paxos_harness::cluster::Failure> {
    let tries = AtomicU64::new(0);
    let tries = &tries;
    eventually(READY_WITHIN, Duration::from_millis(100), || async move {
        let i = tries.fetch_add(1, Ordering::Relaxed) as usize;
        let addr = &nodes[i % nodes.len()].client;
        let put = async {
            let mut c = Client::connect(addr).await?;
            let op = WireOp::Write(KvCommand::Put {
                key: WARM_UP_KEY.into(),
                value: "0".into(),
            });
            c.kv(op, None, Some(op_timeout)).await
        };
        Ok(match timeout(op_timeout + CLIENT_GRACE, put).await {
            Ok(Ok(_)) => Look::Done(()),
            Ok(Err(e)) => Look::Wait(format!("warm-up put through {addr}: {e}")),
            Err(_) => Look::Wait(format!("warm-up put through {addr} timed out")),
        })
    })
    .await
}

/// What every client task shares.
struct Shared {
    recorder: Recorder,
    start: Instant,
    /// No operation is invoked after this.
    end: Instant,
    nodes: Vec<NodeAddrs>,
    keys: u64,
    op_timeout: Duration,
    /// The next fresh process number (0..clients are the clients' first ones).
    next_process: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
    /// Values read that are not a number (which no client writes).
    unreadable: Mutex<Vec<String>>,
}

impl Shared {
    fn counts(&self) -> String {
        let (ok, fail, info) = (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        );
        format!(
            "{} ops ({ok} ok, {fail} failed, {info} indeterminate)",
            ok + fail + info
        )
    }

    fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Ok(_) => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Info => &self.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn fresh_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }
}

/// One client's connection to one node, with its session.
struct Conn {
    client: Client,
    session: ClientId,
    next_seq: u64,
}

/// Connect to `addr` and open a session, within `within`.
async fn connect(addr: &str, within: Duration) -> Option<Conn> {
    let open = async {
        let mut client = Client::connect(addr).await?;
        let session = client.session().await?;
        Ok::<_, ClientError>(Conn {
            client,
            session,
            next_seq: 0,
        })
    };
    timeout(within, open).await.ok()?.ok()
}

/// The history's operation as the node's protocol says it.
fn wire(op: &Op) -> WireOp {
    match op.clone() {
        Op::Put { key, value } => WireOp::Write(KvCommand::Put {
            key,
            value: value.to_string(),
        }),
        Op::Get { key } => WireOp::Get { key },
        Op::Cas { key, from, to } => WireOp::Write(KvCommand::Cas {
            key,
            from: from.to_string(),
            to: to.to_string(),
        }),
        Op::Delete { key } => WireOp::Write(KvCommand::Delete { key }),
    }
}

/// How one operation ended, and whether its connection can carry the next one.
struct Done {
    outcome: Outcome,
    keep: bool,
    /// A value read that is not a number.
    unreadable: Option<String>,
}

/// Send `op` on `conn` and classify the answer (see the module doc).
async fn perform(conn: &mut Conn, op: &Op, op_timeout: Duration) -> Done {
    let is_get = matches!(op, Op::Get { .. });
    let id = (!is_get).then(|| {
        let id = ProposalId {
            client: conn.session,
            seq: conn.next_seq,
        };
        conn.next_seq += 1;
        id
    });
    // Anything short of an answer: a get had no effect, a write may have had one.
    let unknown = if is_get { Outcome::Fail } else { Outcome::Info };
    let answer = timeout(
        op_timeout + CLIENT_GRACE,
        conn.client.kv(wire(op), id, Some(op_timeout)),
    )
    .await;
    let (outcome, keep, unreadable) = match answer {
        Ok(Ok(KvAnswer {
            ok: true, value, ..
        })) if is_get => match value {
            None => (Outcome::Ok(None), true, None),
            Some(text) => match text.parse::<u64>() {
                Ok(v) => (Outcome::Ok(Some(v)), true, None),
                Err(_) => (
                    Outcome::Fail,
                    true,
                    Some(format!("{op:?} read {text:?}, which no client wrote")),
                ),
            },
        },
        Ok(Ok(KvAnswer { ok: true, .. })) => (Outcome::Ok(None), true, None),
        // A cas that did not match was applied as a no-op: certainly no effect.
        Ok(Ok(KvAnswer { ok: false, .. })) if matches!(op, Op::Cas { .. }) => {
            (Outcome::Fail, true, None)
        }
        Ok(Ok(KvAnswer { ok: false, .. })) => (unknown, true, None),
        // The node answered an error line: the connection is still in step.
        Ok(Err(ClientError::Node { .. })) => (unknown, true, None),
        Ok(Err(_)) | Err(_) => (unknown, false, None),
    };
    Done {
        outcome,
        keep,
        unreadable,
    }
}

/// One client: random operations until the end of the run.
async fn client_loop(shared: Arc<Shared>, client: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(
        seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x00C1_1E47,
    );
    let n = shared.nodes.len();
    let mut process = client;
    let mut conns: BTreeMap<usize, Conn> = BTreeMap::new();
    // A node that just failed is left alone until then.
    let mut avoid: BTreeMap<usize, Instant> = BTreeMap::new();
    // The value this client saw last on each key (what its next cas expects).
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut counter: u64 = 0;
    let fresh_base = (client + 1) * 1_000_000_000;
    while Instant::now() < shared.end {
        let now = Instant::now();
        avoid.retain(|_, until| *until > now);
        let mut node = rng.gen_range(0..n);
        if avoid.contains_key(&node)
            && let Some(other) = (0..n)
                .map(|i| (node + i) % n)
                .find(|i| !avoid.contains_key(i))
        {
            node = other;
        }
        let k = rng.gen_range(0..shared.keys);
        let key = format!("k{k}");
        let roll = rng.gen_range(0..100);
        let op = if roll < GETS {
            Op::Get { key }
        } else {
            counter += 1;
            let fresh = fresh_base + counter;
            match seen.get(&k) {
                Some(&from) if roll >= GETS + PUTS => Op::Cas {
                    key,
                    from,
                    to: fresh,
                },
                _ => Op::Put { key, value: fresh },
            }
        };
        let conn = match conns.entry(node) {
            std::collections::btree_map::Entry::Occupied(c) => c.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                match connect(&shared.nodes[node].client, shared.op_timeout).await {
                    Some(c) => slot.insert(c),
                    None => {
                        avoid.insert(node, Instant::now() + 2 * shared.op_timeout);
                        sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        shared
            .recorder
            .invoke(process, op.clone(), shared.start.elapsed());
        let done = perform(conn, &op, shared.op_timeout).await;
        shared
            .recorder
            .complete(process, done.outcome.clone(), shared.start.elapsed());
        shared.count(&done.outcome);
        if let Some(u) = done.unreadable {
            tracing::error!(client, "{u}");
            shared
                .unreadable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(u);
        }
        match (&op, &done.outcome) {
            (Op::Get { .. }, Outcome::Ok(Some(v))) => {
                seen.insert(k, *v);
            }
            (Op::Get { .. }, Outcome::Ok(None)) => {
                seen.remove(&k);
            }
            (Op::Put { value, .. }, Outcome::Ok(_)) => {
                seen.insert(k, *value);
            }
            (Op::Cas { to, .. }, Outcome::Ok(_)) => {
                seen.insert(k, *to);
            }
            _ => {}
        }
        if done.outcome == Outcome::Info {
            process = shared.fresh_process();
        }
        if !done.keep {
            conns.remove(&node);
            avoid.insert(node, Instant::now() + 2 * shared.op_timeout);
        }
    }
}

/// After the heal: a linearizable get of every key, each by a fresh process, retried through
/// the nodes in turn until one answers.
async fn final_reads(shared: &Shared, problems: &mut Vec<String>) -> BTreeMap<String, Option<u64>> {
    let mut reads = BTreeMap::new();
    let n = shared.nodes.len();
    for k in 0..shared.keys {
        let key = format!("k{k}");
        let process = shared.fresh_process();
        let deadline = Instant::now() + FINAL_READ_WITHIN;
        let mut next = usize::try_from(k).unwrap_or(0);
        let mut last = String::from("no node answered");
        loop {
            if Instant::now() >= deadline {
                problems.push(format!(
                    "the final read of {key} never succeeded ({last}; tried for {FINAL_READ_WITHIN:?})"
                ));
                reads.insert(key, None);
                break;
            }
            let addr = &shared.nodes[next % n].client;
            next += 1;
            let Some(mut conn) = connect(addr, shared.op_timeout).await else {
                last = format!("{addr} does not answer");
                sleep(Duration::from_millis(100)).await;
                continue;
            };
            let op = Op::Get { key: key.clone() };
            shared
                .recorder
                .invoke(process, op.clone(), shared.start.elapsed());
            let done = perform(&mut conn, &op, shared.op_timeout).await;
            shared
                .recorder
                .complete(process, done.outcome.clone(), shared.start.elapsed());
            if let Some(u) = done.unreadable {
                problems.push(u);
            }
            if let Outcome::Ok(v) = done.outcome {
                reads.insert(key, v);
                break;
            }
            last = format!("the get through {addr} failed");
            sleep(Duration::from_millis(100)).await;
        }
    }
    reads
}

/// The faults in force now, for the progress lines.
#[derive(Debug, Default)]
struct CurrentFaults {
    killed: BTreeSet<NodeId>,
    paused: BTreeSet<NodeId>,
    partition: Option<String>,
    demoted: Option<NodeId>,
}

impl fmt::Display for CurrentFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |s: &BTreeSet<NodeId>| {
            s.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut parts = Vec::new();
        if !self.killed.is_empty() {
            parts.push(format!("killed {}", names(&self.killed)));
        }
        if !self.paused.is_empty() {
            parts.push(format!("paused {}", names(&self.paused)));
        }
        if let Some(p) = &self.partition {
            parts.push(p.clone());
        }
        if let Some(n) = self.demoted {
            parts.push(format!("{n} a learner"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

impl CurrentFaults {
    fn apply(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill(n) => {
                self.killed.insert(*n);
            }
            Fault::Restart(n) => {
                self.killed.remove(n);
            }
            Fault::Pause(n) => {
                self.paused.insert(*n);
            }
            Fault::Resume(n) => {
                self.paused.remove(n);
            }
            Fault::Partition(_) => self.partition = Some(fault.to_string()),
            Fault::Heal => self.partition = None,
            Fault::Demote(n) => self.demoted = Some(*n),
            Fault::Promote(_) => self.demoted = None,
        }
    }
}

/// The real fault target, which also keeps [`CurrentFaults`] up to date, prints each step
/// and notices nodes that exited by themselves.
struct Tracked<'a> {
    live: Live<'a>,
    now: Arc<Mutex<CurrentFaults>>,
    start: Instant,
    out: Out,
    crashed: BTreeSet<NodeId>,
    problems: Vec<String>,
}

#[async_trait]
impl FaultTarget for Tracked<'_> {
    async fn apply(&mut self, fault: &Fault) -> Result<(), FaultError> {
        let killed = self
            .now
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .killed
            .clone();
        note_crashes(
            self.live.procs,
            &killed,
            &mut self.crashed,
            &mut self.problems,
        );
        let applied = self.live.apply(fault).await;
        let at = self.start.elapsed().as_secs_f64();
        match &applied {
            Ok(()) => {
                self.now
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(fault);
                self.out.say(format!("{at:>7.1}s nemesis: {fault}"));
            }
            Err(e) => self
                .out
                .say(format!("{at:>7.1}s nemesis: {fault} FAILED: {e}")),
        }
        applied
    }
}

/// Record every node that is not running although the nemesis did not kill it (it exited by
/// itself), once each.
fn note_crashes(
    procs: &mut Procs,
    killed: &BTreeSet<NodeId>,
    crashed: &mut BTreeSet<NodeId>,
    problems: &mut Vec<String>,
) {
    let ids: Vec<NodeId> = procs.nodes().collect();
    for id in ids {
        if killed.contains(&id) || crashed.contains(&id) {
            continue;
        }
        let Ok(p) = procs.get_mut(id) else { continue };
        if !p.is_running() {
            crashed.insert(id);
            problems.push(format!(
                "{id} exited by itself ({}); see {}",
                p.exit_status()
                    .map_or("no exit status".to_owned(), |s| s.to_string()),
                p.spec().log.display()
            ));
        }
    }
}

/// A progress line every [`PROGRESS_EVERY`]: operations so far and the faults in force.
async fn progress(shared: Arc<Shared>, faults: Arc<Mutex<CurrentFaults>>, out: Out) {
    let mut next = shared.start + PROGRESS_EVERY;
    loop {
        sleep_until(next).await;
        let now = faults.lock().unwrap_or_else(|p| p.into_inner()).to_string();
        out.say(format!(
            "{:>7.1}s {}; faults: {now}",
            shared.start.elapsed().as_secs_f64(),
            shared.counts()
        ));
        next += PROGRESS_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: JepsenArgs,
    }

    fn parse(line: &[&str]) -> Result<JepsenArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("jepsen").chain(line.iter().copied())).map(|c| c.args)
    }

    /// Lease runs give every node a clock rate from the seed, within the skew the default
    /// lease bound allows, and not all the same; ReadIndex runs leave clocks alone.
    #[test]
    fn lease_runs_drift_the_clocks_within_the_bound() {
        let lease = parse(&["--reads", "lease", "--nodes", "5"]).expect("args");
        let rates = clock_rates(&lease, 7);
        assert_eq!(
            rates.keys().map(|n| n.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(
            rates.values().all(|r| (r - 1.0).abs() <= CLOCK_SKEW + 1e-9),
            "{rates:?}"
        );
        assert!(rates.values().any(|&r| r != rates[&NodeId(1)]), "{rates:?}");
        assert_eq!(rates, clock_rates(&lease, 7), "the seed decides them");
        assert_ne!(rates, clock_rates(&lease, 8));
        let index = parse(&["--reads", "index"]).expect("args");
        assert!(clock_rates(&index, 7).is_empty());
    }

    #[test]
    fn nemeses_parse_and_print() {
        let all = parse_nemeses("kill,pause,partition,membership").expect("all");
        assert_eq!(parse_nemeses("all"), Ok(all));
        assert_eq!(all.to_string(), "kill,pause,partition,membership");
        let none = parse_nemeses("none").expect("none");
        assert!(!none.kill && !none.pause && !none.partition && !none.membership);
        assert_eq!(none.to_string(), "none");
        assert_eq!(
            parse_nemeses("partition, kill").map(|n| n.to_string()),
            Ok("kill,partition".to_owned())
        );
        assert!(parse_nemeses("kill,flood").is_err());
    }

    #[test]
    fn the_replay_command_parses_back_to_the_same_run() {
        let args = parse(&[
            "--seeds",
            "4",
            "--start",
            "9",
            "--nodes",
            "3",
            "--duration",
            "1500ms",
            "--nemesis",
            "pause",
            "--break",
            "stale-reads",
            "--node-arg",
            "--tick",
            "--node-arg=2ms",
            "--op-timeout",
            "2s",
        ])
        .expect("valid");
        assert_eq!(args.node_args, ["--tick", "2ms"]);
        let replay = replay_command(&args, 11);
        assert_eq!(
            replay,
            "paxos-harness jepsen --seed 11 --nodes 3 --clients 10 --keys 3 --duration 1500ms \
             --nemesis pause --op-timeout 2s --reads index --break stale-reads --node-arg=--tick --node-arg=2ms"
        );
        let words: Vec<&str> = replay.split(' ').skip(2).collect();
        let again = parse(&words).expect("the replay command parses");
        assert_eq!(again.seed, Some(11));
        assert_eq!(again.duration, args.duration);
        assert_eq!(again.nemesis, args.nemesis);
        assert_eq!(again.op_timeout, args.op_timeout);
        assert_eq!(again.break_on_purpose, args.break_on_purpose);
        assert_eq!(again.node_args, args.node_args);
        assert!(parse(&["--seed", "1", "--seeds", "2"]).is_err());
        assert!(parse(&["--op-timeout", "0s"]).is_err());
    }

    #[test]
    fn current_faults_follow_the_steps() {
        let mut now = CurrentFaults::default();
        assert_eq!(now.to_string(), "none");
        now.apply(&Fault::Kill(NodeId(3)));
        now.apply(&Fault::Pause(NodeId(2)));
        assert_eq!(now.to_string(), "killed n3; paused n2");
        now.apply(&Fault::Restart(NodeId(3)));
        now.apply(&Fault::Resume(NodeId(2)));
        now.apply(&Fault::Partition(vec![
            BTreeSet::from([NodeId(1)]),
            BTreeSet::from([NodeId(2), NodeId(3)]),
        ]));
        assert_eq!(now.to_string(), "partition {n1} | {n2,n3}");
        now.apply(&Fault::Heal);
        assert_eq!(now.to_string(), "none");
    }

    #[test]
    fn ops_go_on_the_wire_as_decimal_strings() {
        assert_eq!(
            wire(&Op::Cas {
                key: "k1".into(),
                from: 7,
                to: 2_000_000_001
            }),
            WireOp::Write(KvCommand::Cas {
                key: "k1".into(),
                from: "7".into(),
                to: "2000000001".into()
            })
        );
    }
}
