//! The harness suites as `cargo test` tests: the same scenario code the binary runs, on a few
//! seeds each to keep CI short. A failure prints the seed and the replay command.

use paxos_harness::cluster::{StorageKind, TransportKind};
use paxos_harness::runner::{self, Learners, RunOptions};
use paxos_harness::scenarios::{self, Catches};

/// `suite` (or every suite, for `"all"`), `repeat` runs per scenario, on these backends.
fn options(suite: &str, repeat: u32, storage: StorageKind, transport: TransportKind) -> RunOptions {
    RunOptions {
        suites: vec![suite.to_string()],
        repeat: Some(repeat),
        storage,
        transport,
        quiet: true,
        ..RunOptions::default()
    }
}

/// Run the selection and require that something ran and nothing failed.
fn passes(options: &RunOptions) {
    let summary = runner::run(options).expect("a valid selection");
    println!("{} passed, {} failed", summary.passed, summary.failed);
    assert!(summary.passed > 0, "no scenario ran");
    assert_eq!(
        summary.failed, 0,
        "failed runs (scenario, seed): {:?}",
        summary.failures
    );
}

const MEMORY: StorageKind = StorageKind::Memory;
const TURMOIL: TransportKind = TransportKind::Turmoil;

#[test]
fn go_suite_passes() {
    passes(&options("go", 1, MEMORY, TURMOIL));
}

#[test]
fn go_suite_passes_on_other_seeds() {
    passes(&RunOptions {
        seed: 4242,
        ..options("go", 2, MEMORY, TURMOIL)
    });
}

#[test]
fn elixir_suite_passes() {
    passes(&options("elixir", 2, MEMORY, TURMOIL));
}

#[test]
fn theory_suite_passes() {
    passes(&options("theory", 2, MEMORY, TURMOIL));
}

#[test]
fn restart_suite_passes() {
    passes(&options("restart", 2, MEMORY, TURMOIL));
}

/// Membership changes under a steady write load: every acknowledged write survives each
/// change on every member of the configuration in force.
#[test]
fn membership_suite_passes() {
    passes(&options("membership", 3, MEMORY, TURMOIL));
}

/// The same over real sockets and channels, where peers are dialled and dropped for real.
#[test]
fn membership_suite_passes_over_tcp_and_channels() {
    passes(&options("membership", 1, MEMORY, TransportKind::Tcp));
    passes(&options("membership", 1, MEMORY, TransportKind::Channel));
}

/// Two runs of one seed give the same event log, simulated times included.
fn runs_the_same_twice(storage: StorageKind) {
    let options = RunOptions {
        filter: Some("elixir/leader_crash_simple_2".into()),
        storage,
        ..RunOptions::default()
    };
    let scenario = runner::select(&options).expect("the scenario exists");
    let (a, run_a) = runner::run_once(&scenario[0], 7, &options, true);
    let (b, run_b) = runner::run_once(&scenario[0], 7, &options, true);
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let (log_a, log_b) = (run_a.observer.log(), run_b.observer.log());
    if let Some((a, b)) = log_a.lines().zip(log_b.lines()).find(|(a, b)| a != b) {
        panic!("seed 7 ran differently twice on {storage:?}: first at\n{a}\n{b}");
    }
    assert_eq!(log_a, log_b, "seed 7 ran differently twice on {storage:?}");
    assert!(log_a.lines().count() > 50);
}

#[test]
fn same_seed_gives_the_same_event_log() {
    runs_the_same_twice(MEMORY);
}

/// A real disk under simulated time: a synced write must not let the simulation run on for
/// however long the fsync took (it used to, and the theory suite failed on a slow disk).
#[cfg(feature = "rocksdb")]
#[test]
fn same_seed_gives_the_same_event_log_on_rocksdb() {
    runs_the_same_twice(StorageKind::Rocksdb);
}

#[test]
fn go_suite_passes_over_tcp() {
    passes(&options("go", 1, MEMORY, TransportKind::Tcp));
}

#[test]
fn go_suite_passes_over_channels() {
    passes(&options("go", 1, MEMORY, TransportKind::Channel));
}

/// Every suite on every other storage x transport (memory x turmoil runs above): the whole
/// matrix `run --matrix` runs, one seed a scenario (the restart suite on RocksDB included).
#[cfg(feature = "rocksdb")]
#[test]
fn every_suite_passes_on_every_storage_and_transport() {
    use StorageKind::Rocksdb;
    use TransportKind::Tcp;
    for (storage, transport) in [(MEMORY, Tcp), (Rocksdb, TURMOIL), (Rocksdb, Tcp)] {
        println!("storage {storage}, transport {transport}");
        passes(&options("all", 1, storage, transport));
    }
}

/// The theory suite (holes, a restarted leader's long history, callers answered) also over
/// channels.
#[test]
fn theory_suite_passes_over_channels() {
    passes(&options("theory", 1, MEMORY, TransportKind::Channel));
}

/// Every suite again with decisions spread through the leader (`LearnerStrategy::Leader`, what
/// `bench` runs): acceptors answer only the proposer and followers learn from `Chosen`.
#[test]
fn all_suites_pass_with_decisions_via_the_leader() {
    passes(&RunOptions {
        learners: Learners::Leader,
        ..options("all", 2, MEMORY, TURMOIL)
    });
}

/// Every theory and Elixir scenario says which bug it exists to catch, or why no fault switch
/// can fail it.
#[test]
fn every_theory_and_elixir_scenario_names_the_bug_it_catches() {
    let silent: Vec<String> = scenarios::all()
        .iter()
        .filter(|s| ["theory", "elixir"].contains(&s.suite))
        .filter(|s| match s.catches {
            Some(Catches::Nothing(why)) => why.is_empty(),
            Some(Catches::Break(_)) => false,
            None => true,
        })
        .map(|s| s.full_name())
        .collect();
    assert!(silent.is_empty(), "say what these catch: {silent:?}");
}

/// Each scenario that names a fault switch fails with it on, within its first four seeds (a
/// scenario that draws its schedule per run meets the bug in some runs only, as E9-E11 do).
#[test]
fn every_scenario_fails_on_the_break_it_guards_against() {
    let mut checked = 0;
    for s in scenarios::all() {
        let Some(Catches::Break(b)) = s.catches else {
            continue;
        };
        let options = RunOptions {
            protocol_break: Some(b),
            ..options(s.suite, 1, MEMORY, TURMOIL)
        };
        let failed = (1..=4).any(|seed| runner::run_once(&s, seed, &options, false).0.is_err());
        assert!(
            failed,
            "{} passed with --break {b} on seeds 1-4: {}",
            s.full_name(),
            runner::replay_command(&s, 1, &options)
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} scenarios name a switch");
}

/// A selection that runs nothing is an error that says what exists, never `0 passed`: a typo
/// in a CI command must not stay green.
#[test]
fn a_selection_of_nothing_is_an_error_naming_what_exists() {
    let unknown_suite = runner::run(&options("nope", 1, MEMORY, TURMOIL)).unwrap_err();
    assert!(
        unknown_suite.0.contains("no suite \"nope\"") && unknown_suite.0.contains("elixir"),
        "{unknown_suite}"
    );
    let no_match = runner::run(&RunOptions {
        filter: Some("no-such-scenario".into()),
        ..options("go", 1, MEMORY, TURMOIL)
    })
    .unwrap_err();
    assert!(
        no_match.0.contains("matches no scenario") && no_match.0.contains("go/basic"),
        "{no_match}"
    );
}
