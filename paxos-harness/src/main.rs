//! `paxos-harness`: run the Paxos suites against any storage and transport.

use clap::{Parser, Subcommand};
use paxos_harness::cluster::{StorageKind, TransportKind};
use paxos_harness::runner::{self, Learners, RunOptions};
use paxos_harness::scenarios;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "paxos-harness",
    version,
    about = "Run the Paxos test suites, seeded and repeatable."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run suites (all of them by default) and print `N passed, M failed` last.
    Run(RunArgs),
    /// List suites and scenarios.
    List,
    /// Run one Paxos node on RocksDB + TCP until Ctrl-C.
    Node(paxos_harness::node::NodeArgs),
    /// Propose a value to a running node and print the chosen value and instance.
    Propose(paxos_harness::node::ProposeArgs),
    /// Random fault schedules over seeded simulations, checked by the invariant observer.
    Chaos(paxos_harness::chaos::ChaosArgs),
    /// Throughput and latency of a real in-process cluster.
    Bench(paxos_harness::bench::BenchArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Suite to run (go, elixir, theory, all); repeatable.
    #[arg(long = "suite", default_value = "all")]
    suites: Vec<String>,
    /// Only scenarios whose `suite/name` contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// First seed; run k of a scenario uses seed + k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs per scenario (default: the scenario's own, e.g. 10 for the Elixir suite).
    #[arg(long)]
    repeat: Option<u32>,
    /// Storage backend.
    #[arg(long, value_enum, default_value_t = StorageKind::Memory)]
    storage: StorageKind,
    /// Network.
    #[arg(long, value_enum, default_value_t = TransportKind::Turmoil)]
    transport: TransportKind,
    /// Write JUnit XML to this file.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write a Mermaid sequence diagram of the first failing run (or the last run).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print only failures, progress and the summary.
    #[arg(long)]
    quiet: bool,
    /// How decisions reach the learners, in every scenario that does not choose its own.
    #[arg(long, value_enum, default_value_t = Learners::AllToAll)]
    learners: Learners,
    /// Run the selection on all four combinations memory|rocksdb x turmoil|tcp and print a table
    /// (ignores --storage and --transport).
    #[arg(long)]
    matrix: bool,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => run(RunOptions::default()),
        Some(Command::Node(a)) => Ok(paxos_harness::node::node_main(a)),
        Some(Command::Propose(a)) => Ok(paxos_harness::node::propose_main(a)),
        Some(Command::Chaos(a)) => Ok(paxos_harness::chaos::chaos_main(a)),
        Some(Command::Bench(a)) => Ok(paxos_harness::bench::bench_main(a)),
        Some(Command::List) => {
            for suite in scenarios::SUITES {
                println!("{suite}");
                for s in scenarios::all().into_iter().filter(|s| s.suite == suite) {
                    println!("  {:<28} x{:<3} {}", s.name, s.runs, s.about);
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Run(a)) => {
            let matrix_mode = a.matrix;
            let options = RunOptions {
                suites: a.suites,
                filter: a.filter,
                seed: a.seed,
                repeat: a.repeat,
                storage: a.storage,
                transport: a.transport,
                junit: a.junit,
                trace: a.trace,
                quiet: a.quiet || matrix_mode,
                learners: a.learners,
            };
            if matrix_mode {
                matrix(options)
            } else {
                run(options)
            }
        }
    }
}

/// Every suite on every storage x transport combination, then a table.
fn matrix(options: RunOptions) -> anyhow::Result<std::process::ExitCode> {
    let mut rows = Vec::new();
    for storage in [StorageKind::Memory, StorageKind::Rocksdb] {
        for transport in [TransportKind::Turmoil, TransportKind::Tcp] {
            println!("== storage {storage}, transport {transport}");
            let summary = runner::run(&RunOptions {
                storage,
                transport,
                ..options.clone()
            });
            rows.push((storage, transport, summary));
        }
    }
    println!();
    println!("| storage | transport | passed | failed |");
    println!("|---|---|---|---|");
    let (mut passed, mut failed) = (0, 0);
    for (storage, transport, s) in &rows {
        println!("| {storage} | {transport} | {} | {} |", s.passed, s.failed);
        passed += s.passed;
        failed += s.failed;
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn run(options: RunOptions) -> anyhow::Result<std::process::ExitCode> {
    let summary = runner::run(&options);
    println!("{} passed, {} failed", summary.passed, summary.failed);
    Ok(if summary.failed > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
