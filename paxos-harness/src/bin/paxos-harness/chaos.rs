//! `paxos-harness chaos`: a window of seeded fault schedules ([`paxos_harness::chaos`]).

use crate::{exit_code, one_of, usage_error};
use paxos_harness::chaos::{Break, ChaosOptions, run_window};
use paxos_harness::cluster::StorageKind;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `paxos-harness chaos`.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub start: u64,
    /// Cluster size (default: drawn from each seed among 3, 5, 7).
    #[arg(long, value_parser = one_of::<u64>(["3", "5", "7"]))]
    pub nodes: Option<u64>,
    /// Storage backend.
    #[arg(long, default_value = "memory",
          value_parser = one_of::<StorageKind>(StorageKind::ALL.iter().map(|k| k.name())))]
    pub storage: StorageKind,
    /// TEST ONLY: break a protocol rule on every node, to check that chaos catches it.
    #[arg(long = "break", value_parser = one_of::<Break>(Break::ALL.iter().map(|b| b.name())))]
    pub protocol_break: Option<Break>,
    /// Where to write `chaos-SEED.mmd` traces of failing seeds.
    #[arg(long, default_value = ".")]
    pub trace_dir: PathBuf,
    /// Print one line per passing seed too.
    #[arg(long)]
    pub verbose: bool,
    /// Run without state machines and snapshots: every node keeps its whole log (by default
    /// each seed snapshots every few entries and compacts).
    #[arg(long)]
    pub no_snapshots: bool,
    /// Print a progress line every this many seeds (0: never).
    #[arg(long, default_value_t = 100)]
    pub progress: u64,
}

/// Run `paxos-harness chaos`.
///
/// Seeds per second are wall-clock: measured with `tokio::time::Instant` (outside any
/// simulation, so it reads the real clock) only between seeds, never inside a run.
pub fn main(args: ChaosArgs) -> ExitCode {
    if args.start.checked_add(args.seeds).is_none() {
        return usage_error("--start + --seeds is beyond the last seed (u64::MAX)");
    }
    let options = ChaosOptions {
        nodes: args.nodes,
        storage: args.storage,
        protocol_break: args.protocol_break,
        trace_dir: Some(args.trace_dir),
        verbose: args.verbose,
        snapshots: !args.no_snapshots,
        ..ChaosOptions::default()
    };
    let started = tokio::time::Instant::now();
    let every = args.progress;
    let summary = run_window(args.start, args.seeds, &options, |s| {
        if every > 0 && s.done.is_multiple_of(every) && s.done < args.seeds {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            println!(
                "... {}/{} seeds, {} failed, {:.1} seeds/s",
                s.done,
                args.seeds,
                s.failed,
                s.done as f64 / secs
            );
        }
    });
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "chaos: {} seeds from {} ({:.1} seeds/s)",
        summary.done,
        args.start,
        summary.done as f64 / secs
    );
    if !args.no_snapshots {
        println!(
            "snapshots: {} restored (installed from a peer or at restart), none in {} seeds",
            summary.restores, summary.without_restore
        );
    }
    if summary.failed > 0 {
        println!("failing seeds: {:?}", summary.failures);
    }
    // The last line is the plain `N passed, M failed` summary, like `run`.
    println!(
        "{} passed, {} failed",
        summary.done - summary.failed,
        summary.failed
    );
    exit_code(summary.failed)
}
