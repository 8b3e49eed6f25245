//! Chaos testing (issue 7): a window of seeds passes (with snapshots and compaction, issue
//! 16), the checker catches a broken protocol within a few hundred seeds, and one seed replays
//! bit for bit.
//!
//! `PAXOS_CHAOS_SEEDS` widens the passing window (default 100 in a debug build); CI runs a
//! wider window in release with `paxos-harness chaos --seeds N`.

use paxos_core::Storage;
use paxos_harness::chaos::{self, Break, ChaosOptions};
use paxos_harness::invariants::Violation;
use std::sync::Arc;

fn window() -> u64 {
    std::env::var("PAXOS_CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
}

/// The first failing seed in `1..=limit` with `options`, and its run.
fn first_failure(options: &ChaosOptions, limit: u64) -> Option<(u64, chaos::SeedRun)> {
    (1..=limit)
        .map(|seed| (seed, chaos::run_seed(seed, options)))
        .find(|(_, run)| run.verdict.is_err())
}

fn broken(b: Break) -> ChaosOptions {
    ChaosOptions {
        protocol_break: Some(b),
        print_failures: false,
        ..ChaosOptions::default()
    }
}

#[test]
fn a_window_of_seeds_passes() {
    let seeds = window();
    let summary = chaos::run_window(1, seeds, &ChaosOptions::default(), |_| {});
    assert_eq!(summary.done, seeds);
    assert_eq!(
        summary.failed, 0,
        "failing seeds {:?}; replay with `paxos-harness chaos --seeds 1 --start SEED`",
        summary.failures
    );
    // Snapshots and compaction are on: nodes restore snapshots (installed from peers or at
    // restart) several times a seed on average.
    assert!(
        summary.restores > 2 * seeds,
        "only {} snapshots restored in {seeds} seeds",
        summary.restores
    );
}

/// Seeds in which a slow node installed two snapshots in one step: before the fix only the
/// second was restored, the entries between them applied on a stale state, and the state
/// digests differed ("state differs after i38").
#[test]
fn seeds_that_install_two_snapshots_in_one_step_pass() {
    for seed in [124, 142, 179] {
        let run = chaos::run_seed(seed, &ChaosOptions::default());
        assert!(
            run.verdict.is_ok(),
            "seed {seed}: {:?}; replay with `paxos-harness chaos --seeds 1 --start {seed}`",
            run.verdict
        );
    }
}

/// A state machine whose snapshots are not its state (one key left out): the nodes that
/// install them hold another state than their peers at the same instance.
#[test]
fn chaos_catches_snapshots_that_are_not_the_state() {
    let (seed, run) = first_failure(&broken(Break::LossySnapshots), 100)
        .expect("no failure found in 100 seeds with --break lossy-snapshots");
    let verdict = run.verdict.err().map(|f| f.0).unwrap_or_default();
    assert!(verdict.starts_with("state:"), "seed {seed}: {verdict}");
}

#[test]
fn chaos_catches_acceptors_that_accept_below_their_promise() {
    let (seed, run) = first_failure(&broken(Break::AcceptBelowPromise), 300)
        .expect("no violation found in 300 seeds with --break accept-below-promise");
    assert!(
        run.violations
            .iter()
            .any(|v| matches!(v, Violation::AcceptedBelowPromise { .. })),
        "seed {seed}: {:?}",
        run.verdict
    );
}

#[test]
fn chaos_catches_acceptors_that_reply_before_persisting() {
    let (seed, run) = first_failure(&broken(Break::SkipPersist), 300)
        .expect("no violation found in 300 seeds with --break skip-persist");
    assert!(
        run.violations
            .iter()
            .any(|v| matches!(v, Violation::LearnedNotChosen { .. })),
        "seed {seed}: {:?}",
        run.verdict
    );
}

#[test]
fn chaos_finds_two_values_chosen_when_proposers_ignore_promised_values() {
    let options = broken(Break::IgnorePromisedValues);
    let found = (1..=300).find(|&seed| {
        chaos::run_seed(seed, &options)
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Agreement { .. }))
    });
    assert!(
        found.is_some(),
        "no agreement violation in 300 seeds with --break ignore-promised-values"
    );
}

/// Without no-op fill a new leader leaves holes, and once the faults stop the log cannot be
/// applied past them: the liveness phase says which append never got its answer.
#[test]
fn chaos_finds_the_holes_a_leader_leaves_without_noop_fill() {
    let (seed, run) = first_failure(&broken(Break::SkipNoopFill), 300)
        .expect("no failure found in 300 seeds with --break skip-noop-fill");
    let verdict = run.verdict.err().map(|f| f.0).unwrap_or_default();
    assert!(verdict.starts_with("liveness:"), "seed {seed}: {verdict}");
}

/// Acknowledging an append at its decision, before the instances below it are decided,
/// answers clients out of log order: caught at the acknowledgement.
#[test]
fn chaos_finds_acknowledgements_out_of_log_order() {
    let (seed, run) = first_failure(&broken(Break::AckBeforePrefix), 300)
        .expect("no failure found in 300 seeds with --break ack-before-prefix");
    let verdict = run.verdict.err().map(|f| f.0).unwrap_or_default();
    assert!(
        verdict.contains("out of log order"),
        "seed {seed}: {verdict}"
    );
}

#[test]
fn one_seed_replays_bit_for_bit() {
    let options = ChaosOptions {
        trace: true,
        ..ChaosOptions::default()
    };
    // Other runs in between: nothing process-global (task ids, allocations) may leak in.
    for seed in [7, 1234, 31] {
        let first = chaos::run_seed(seed, &options);
        let _ = chaos::run_seed(seed + 1, &options);
        let second = chaos::run_seed(seed, &options);
        let log = first.observer.log();
        assert!(
            log.lines().count() > 100,
            "seed {seed}: suspiciously short log"
        );
        assert_eq!(first.schedule, second.schedule);
        assert!(
            log == second.observer.log(),
            "seed {seed}: event logs differ"
        );
        assert_eq!(first.elapsed, second.elapsed);
    }
}

#[test]
fn a_failing_seed_replays_to_the_same_violation() {
    let options = broken(Break::AcceptBelowPromise);
    let (seed, run) = first_failure(&options, 300).expect("a failing seed");
    let again = chaos::run_seed(seed, &options);
    assert_eq!(run.violations, again.violations);
    assert!(run.observer.log() == again.observer.log());
}

#[test]
fn your_own_storage_runs_under_chaos() {
    let options = ChaosOptions::default().with_storage(|_node| {
        Arc::new(paxos_storage::MemoryStorage::<u64>::new()) as Arc<dyn Storage<u64>>
    });
    let summary = chaos::run_window(500, 5, &options, |_| {});
    assert_eq!(summary.failed, 0, "failing seeds {:?}", summary.failures);
}
