//! The harness suites as `cargo test` tests: the same scenario code the binary runs, on a few
//! seeds each to keep CI short. A failure prints the seed and the replay command.

use paxos_harness::cluster::{StorageKind, TransportKind};
use paxos_harness::runner::{self, RunOptions};

fn run(
    suite: &str,
    filter: Option<&str>,
    repeat: u32,
    storage: StorageKind,
    transport: TransportKind,
) {
    let options = RunOptions {
        suites: vec![suite.to_string()],
        filter: filter.map(str::to_string),
        repeat: Some(repeat),
        storage,
        transport,
        quiet: true,
        ..RunOptions::default()
    };
    let summary = runner::run(&options);
    println!("{} passed, {} failed", summary.passed, summary.failed);
    assert!(summary.passed > 0, "no scenario selected");
    assert_eq!(
        summary.failed, 0,
        "failed runs (scenario, seed): {:?}",
        summary.failures
    );
}

#[test]
fn go_suite_passes() {
    run("go", None, 1, StorageKind::Memory, TransportKind::Turmoil);
}

#[test]
fn go_suite_passes_on_other_seeds() {
    let options = RunOptions {
        suites: vec!["go".into()],
        seed: 4242,
        repeat: Some(2),
        quiet: true,
        ..RunOptions::default()
    };
    let summary = runner::run(&options);
    assert_eq!(summary.failed, 0, "{:?}", summary.failures);
}

#[test]
fn elixir_suite_passes() {
    run(
        "elixir",
        None,
        2,
        StorageKind::Memory,
        TransportKind::Turmoil,
    );
}

#[test]
fn theory_suite_passes() {
    run(
        "theory",
        None,
        2,
        StorageKind::Memory,
        TransportKind::Turmoil,
    );
}

#[test]
fn same_seed_gives_the_same_event_log() {
    let scenario = runner::select(&RunOptions {
        filter: Some("elixir/leader_crash_simple_2".into()),
        ..RunOptions::default()
    });
    let options = RunOptions::default();
    let (a, run_a) = runner::run_once(&scenario[0], 7, &options, true);
    let (b, run_b) = runner::run_once(&scenario[0], 7, &options, true);
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(
        run_a.observer.log(),
        run_b.observer.log(),
        "seed 7 ran differently twice"
    );
    assert!(run_a.observer.log().lines().count() > 50);
}

#[test]
fn go_suite_passes_over_tcp() {
    run("go", None, 1, StorageKind::Memory, TransportKind::Tcp);
}

#[cfg(feature = "rocksdb")]
#[test]
fn go_and_restart_pass_on_rocksdb() {
    run("go", None, 1, StorageKind::Rocksdb, TransportKind::Turmoil);
}

/// Every suite again with decisions spread through the leader (`LearnerStrategy::Leader`, what
/// `bench` runs): acceptors answer only the proposer and followers learn from `Chosen`.
#[test]
fn all_suites_pass_with_decisions_via_the_leader() {
    let options = RunOptions {
        suites: vec!["all".into()],
        repeat: Some(2),
        learners: runner::Learners::Leader,
        quiet: true,
        ..RunOptions::default()
    };
    let summary = runner::run(&options);
    assert!(summary.passed > 0, "no scenario selected");
    assert_eq!(summary.failed, 0, "{:?}", summary.failures);
}
