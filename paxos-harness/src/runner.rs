//! Runs scenarios and reports like `go test -v`.
//!
//! ```text
//! === RUN   go/basic (seed 1)
//! --- PASS: go/basic (0.012s simulated)
//! ...
//! 4 passed, 0 failed
//! ```
//! A failure prints why, the violated invariants, and the exact command that replays it. The
//! Go suite ends with the Go log's own total line (`ok  \tpaxos\t0.412s`).

use crate::cluster::{self, Env, Failure, LinkSecurity, StorageKind, TransportKind};
use crate::junit::{JunitCase, JunitReport};
use crate::scenarios::{self, Scenario};
use paxos_core::LearnerStrategy;
use std::path::PathBuf;
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Suites to run (empty: all).
    pub suites: Vec<String>,
    /// Only scenarios whose `suite/name` contains this.
    pub filter: Option<String>,
    /// First seed; run `k` of a scenario uses `seed + k`.
    pub seed: u64,
    /// Runs per scenario (`None`: each scenario's default).
    pub repeat: Option<u32>,
    /// Storage backend.
    pub storage: StorageKind,
    /// Network.
    pub transport: TransportKind,
    /// Write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Write a Mermaid diagram of the first failing run (or of the last run) here.
    pub trace: Option<PathBuf>,
    /// Print nothing but failures and the summary.
    pub quiet: bool,
    /// Learner strategy for every scenario that does not choose its own.
    pub learners: Learners,
    /// TEST ONLY: break a protocol rule on every node, to show a scenario catches it.
    pub protocol_break: Option<crate::chaos::Break>,
}

/// `--learners`: how decisions reach the learners in scenarios that do not choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Learners {
    /// Every acceptor tells every learner (the library's default).
    #[default]
    AllToAll,
    /// Acceptors answer only the proposer, which announces decisions
    /// ([`LearnerStrategy::Leader`]; what `bench` runs).
    Leader,
}

named!(Learners, "learner strategy", AllToAll => "all-to-all", Leader => "leader");

impl Learners {
    fn strategy(self) -> LearnerStrategy {
        match self {
            Learners::AllToAll => LearnerStrategy::AllToAll,
            Learners::Leader => LearnerStrategy::Leader,
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            suites: Vec::new(),
            filter: None,
            seed: 1,
            repeat: None,
            storage: StorageKind::Memory,
            transport: TransportKind::Turmoil,
            junit: None,
            trace: None,
            quiet: false,
            learners: Learners::AllToAll,
            protocol_break: None,
        }
    }
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs that passed.
    pub passed: u32,
    /// Runs that failed.
    pub failed: u32,
    /// Names and seeds of the failed runs.
    pub failures: Vec<(String, u64)>,
}

/// The scenarios `options` select, in suite order.
///
/// # Errors
/// A suite name that does not exist, or a selection with no scenario in it: a typo in a CI
/// command must fail, not run nothing and pass. The message says what exists.
pub fn select(options: &RunOptions) -> Result<Vec<Scenario>, Failure> {
    if let Some(unknown) = options
        .suites
        .iter()
        .find(|x| *x != "all" && !scenarios::SUITES.contains(&x.as_str()))
    {
        return Err(Failure(format!(
            "no suite {unknown:?}; the suites are {}, or all",
            scenarios::SUITES.join(", ")
        )));
    }
    let in_suites: Vec<Scenario> = scenarios::all()
        .into_iter()
        .filter(|s| {
            options.suites.is_empty() || options.suites.iter().any(|x| x == s.suite || x == "all")
        })
        .collect();
    let chosen: Vec<Scenario> = in_suites
        .iter()
        .filter(|s| {
            options
                .filter
                .as_deref()
                .is_none_or(|f| s.full_name().contains(f))
        })
        .copied()
        .collect();
    if chosen.is_empty() {
        let names: Vec<String> = in_suites.iter().map(Scenario::full_name).collect();
        return Err(Failure(format!(
            "--filter {:?} matches no scenario; the scenarios are: {}",
            options.filter.as_deref().unwrap_or_default(),
            names.join(", ")
        )));
    }
    Ok(chosen)
}

/// The command that replays one run.
pub fn replay_command(s: &Scenario, seed: u64, options: &RunOptions) -> String {
    let mut cmd = format!(
        "cargo run -p paxos-harness -- run --suite {} --filter {} --seed {seed} --repeat 1 --storage {} --transport {} --learners {}",
        s.suite,
        s.full_name(),
        options.storage,
        options.transport,
        options.learners
    );
    if let Some(b) = options.protocol_break {
        cmd.push_str(&format!(" --break {b}"));
    }
    cmd
}

/// Run one scenario once with `seed`: the body's verdict, then the invariants.
pub fn run_once(
    s: &Scenario,
    seed: u64,
    options: &RunOptions,
    trace: bool,
) -> (Result<(), Failure>, cluster::RunResult) {
    let env = Env {
        seed,
        storage: options.storage,
        transport: options.transport,
        links: LinkSecurity::Tls,
        trace,
    };
    let mut spec = (s.spec)();
    if options.protocol_break == Some(crate::chaos::Break::LossySnapshots) {
        spec = spec.with_lossy_snapshots();
    }
    if let Some(b) = options.protocol_break {
        for node in spec.nodes() {
            let broken = b.node_options();
            let o = spec.node_options.entry(node).or_default();
            o.acceptor_faults = broken.acceptor_faults;
            o.proposer_faults = broken.proposer_faults;
        }
    }
    if !spec.learners_chosen {
        spec.config.learner_strategy = options.learners.strategy();
    }
    if options.transport == TransportKind::Tcp {
        // Real time: a looser limit, since nothing is simulated.
        spec.time_limit = spec.time_limit.min(Duration::from_secs(60));
    }
    let run = cluster::run(spec, &env, s.body);
    let violations = run.observer.violations();
    let verdict = match (&run.result, violations.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Err(e), true) => Err(Failure(e.0.clone())),
        (r, false) => {
            let mut msg = String::new();
            if let Err(e) = r {
                msg.push_str(&format!("{e}; "));
            }
            let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
            msg.push_str(&format!("invariant violated: {}", list.join("; ")));
            Err(Failure(msg))
        }
    };
    (verdict, run)
}

/// Run everything `options` select, printing as it goes.
///
/// # Errors
/// The selection is empty or names an unknown suite ([`select`]).
pub fn run(options: &RunOptions) -> Result<Summary, Failure> {
    let mut summary = Summary::default();
    let mut junit = JunitReport::default();
    let mut trace_written = false;
    let scenarios = select(options)?;
    // The Go suite's total, printed as the Go log ends (`ok  \tpaxos\t10.934s`).
    let mut go = GoTotal::default();
    let last_go = scenarios.iter().rposition(|s| s.suite == "go");
    let total: u32 = scenarios
        .iter()
        .map(|s| options.repeat.unwrap_or(s.runs))
        .sum();
    let mut done = 0u32;
    for (index, s) in scenarios.iter().enumerate() {
        let runs = options.repeat.unwrap_or(s.runs);
        for k in 0..runs {
            let seed = options.seed.wrapping_add(u64::from(k));
            if !options.quiet {
                println!("=== RUN   {} (seed {seed})", s.full_name());
            }
            let (verdict, run) = run_once(s, seed, options, options.trace.is_some());
            let secs = run.elapsed.as_secs_f64();
            let clock = if options.transport == TransportKind::Turmoil {
                "simulated"
            } else {
                "real"
            };
            if !options.quiet {
                for line in &run.said {
                    println!("    {line}");
                }
            }
            done += 1;
            if s.suite == "go" {
                go.add(secs, verdict.is_ok());
            }
            match &verdict {
                Ok(()) => {
                    summary.passed += 1;
                    if !options.quiet {
                        println!("--- PASS: {} ({secs:.3}s {clock})", s.full_name());
                    }
                }
                Err(e) => {
                    summary.failed += 1;
                    summary.failures.push((s.full_name(), seed));
                    println!("--- FAIL: {} ({secs:.3}s {clock})", s.full_name());
                    println!("    {e}");
                    println!("    seed: {seed}");
                    println!("    replay: {}", replay_command(s, seed, options));
                }
            }
            if let Some(path) = &options.trace
                && !trace_written
                && (verdict.is_err() || done == total)
            {
                let diagram = run.observer.mermaid(&(s.spec)().nodes());
                match std::fs::write(path, diagram) {
                    Ok(()) => println!("    trace: {}", path.display()),
                    Err(e) => println!("    trace not written to {}: {e}", path.display()),
                }
                trace_written = verdict.is_err();
            }
            junit.cases.push(JunitCase {
                suite: s.suite.to_string(),
                name: format!("{} seed {seed}", s.name),
                seconds: secs,
                failure: verdict
                    .err()
                    .map(|e| format!("{e}\nreplay: {}", replay_command(s, seed, options))),
            });
            if options.quiet && total >= 100 && done.is_multiple_of(100) {
                println!("... {done}/{total} runs, {} failed", summary.failed);
            }
        }
        if Some(index) == last_go && !options.quiet {
            println!("{}", go.line());
        }
    }
    if let Some(path) = &options.junit
        && let Err(e) = std::fs::write(path, junit.to_xml())
    {
        println!("junit report not written to {}: {e}", path.display());
    }
    Ok(summary)
}

/// Seconds and verdicts of the Go suite's runs.
#[derive(Default)]
struct GoTotal {
    seconds: f64,
    failed: bool,
}

impl GoTotal {
    fn add(&mut self, seconds: f64, passed: bool) {
        self.seconds += seconds;
        self.failed |= !passed;
    }

    /// `go test`'s last line: `ok  \tpaxos\t0.412s`, or `FAIL\tpaxos\t0.412s`.
    fn line(&self) -> String {
        let verdict = if self.failed { "FAIL" } else { "ok  " };
        format!("{verdict}\tpaxos\t{:.3}s", self.seconds)
    }
}
