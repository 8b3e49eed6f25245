//! `paxos-harness [run]`, `paxos-harness list`: the seed logs' suites.

use crate::{exit_code, one_of, usage_error};
use clap::builder::PossibleValuesParser;
use paxos_harness::chaos::Break;
use paxos_harness::cluster::{StorageKind, TransportKind};
use paxos_harness::runner::{self, Learners, RunOptions};
use paxos_harness::scenarios::{self, SUITES};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `paxos-harness run` (and of plain `paxos-harness`, with every default).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Suite to run; repeatable.
    #[arg(long = "suite", default_value = "all",
          value_parser = PossibleValuesParser::new(SUITES.iter().copied().chain(["all"])))]
    pub suites: Vec<String>,
    /// Only scenarios whose `suite/name` contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// First seed; run k of a scenario uses seed + k.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs per scenario (default: the scenario's own, e.g. 10 for the Elixir suite).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: Option<u32>,
    /// Storage backend.
    #[arg(long, default_value = "memory",
          value_parser = one_of::<StorageKind>(StorageKind::ALL.iter().map(|k| k.name())))]
    pub storage: StorageKind,
    /// Network.
    #[arg(long, default_value = "turmoil",
          value_parser = one_of::<TransportKind>(TransportKind::ALL.iter().map(|k| k.name())))]
    pub transport: TransportKind,
    /// Write JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a Mermaid sequence diagram of the first failing run (or the last run).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Print only failures, progress and the summary.
    #[arg(long)]
    pub quiet: bool,
    /// How decisions reach the learners, in every scenario that does not choose its own.
    #[arg(long, default_value = "all-to-all",
          value_parser = one_of::<Learners>(Learners::ALL.iter().map(|l| l.name())))]
    pub learners: Learners,
    /// Run the selection on all four combinations memory|rocksdb x turmoil|tcp and print a table
    /// (ignores --storage and --transport).
    #[arg(long)]
    pub matrix: bool,
    /// TEST ONLY: break a protocol rule on every node, to see the selected scenarios fail.
    #[arg(long = "break", value_parser = one_of::<Break>(Break::ALL.iter().map(|b| b.name())))]
    pub protocol_break: Option<Break>,
}

impl Default for RunArgs {
    fn default() -> Self {
        let o = RunOptions::default();
        RunArgs {
            suites: vec!["all".into()],
            filter: o.filter,
            seed: o.seed,
            repeat: o.repeat,
            storage: o.storage,
            transport: o.transport,
            junit: o.junit,
            trace: o.trace,
            quiet: o.quiet,
            learners: o.learners,
            matrix: false,
            protocol_break: None,
        }
    }
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            suites: self.suites.clone(),
            filter: self.filter.clone(),
            seed: self.seed,
            repeat: self.repeat,
            storage: self.storage,
            transport: self.transport,
            junit: self.junit.clone(),
            trace: self.trace.clone(),
            quiet: self.quiet || self.matrix,
            learners: self.learners,
            protocol_break: self.protocol_break,
        }
    }
}

/// `paxos-harness list`.
pub fn list() -> ExitCode {
    for suite in SUITES {
        println!("{suite}");
        for s in scenarios::all().into_iter().filter(|s| s.suite == suite) {
            println!("  {:<28} x{:<3} {}", s.name, s.runs, s.about);
        }
    }
    ExitCode::SUCCESS
}

/// `paxos-harness run`: the selection, or with `--matrix` the selection on every storage x
/// network, then `N passed, M failed`.
pub fn run(args: &RunArgs) -> ExitCode {
    let options = args.options();
    let combinations: Vec<(StorageKind, TransportKind)> = if args.matrix {
        StorageKind::ALL
            .iter()
            .flat_map(|&s| [(s, TransportKind::Turmoil), (s, TransportKind::Tcp)])
            .collect()
    } else {
        vec![(options.storage, options.transport)]
    };
    let mut rows = Vec::new();
    for (storage, transport) in combinations {
        if args.matrix {
            println!("== storage {storage}, transport {transport}");
        }
        let summary = match runner::run(&RunOptions {
            storage,
            transport,
            ..options.clone()
        }) {
            Ok(summary) => summary,
            Err(e) => return usage_error(&e.0),
        };
        rows.push((storage, transport, summary));
    }
    if args.matrix {
        println!();
        println!("| storage | transport | passed | failed |");
        println!("|---|---|---|---|");
        for (storage, transport, s) in &rows {
            println!("| {storage} | {transport} | {} | {} |", s.passed, s.failed);
        }
    }
    let passed: u32 = rows.iter().map(|r| r.2.passed).sum();
    let failed: u32 = rows.iter().map(|r| r.2.failed).sum();
    println!("{passed} passed, {failed} failed");
    exit_code(u64::from(failed))
}
