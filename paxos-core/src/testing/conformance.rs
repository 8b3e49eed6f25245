//! The storage conformance suite: behaviours every [`Storage`] backend must have, yours included.
//!
//! Implement [`StorageFactory`] for your backend and call [`run_all`] from one test. The suite
//! creates fresh stores, saves [`Write`]s and compares what [`Storage::load`] returns with a
//! reference model built from [`DurableState::apply`] (the one definition of "apply" the
//! runtime relies on). Unlike openraft's storage suite it also **reopens** stores: for a
//! persistent backend every write case ends by closing the store, opening it again from the
//! same place and comparing the full [`DurableState`], and a corrupted record must give a typed
//! error ([`StorageError::Corrupt`] or [`StorageError::Version`]), never `Ok` or empty state.
//!
//! Each case is one `async fn` named after the behaviour it checks, listed once in [`run_all`].
//! A failing case does not panic: it is recorded in the [`Report`] with a message, and the
//! remaining cases still run. The suite uses `u64` values.
//!
//! | case | checks |
//! |---|---|
//! | `new_store_loads_empty` | a fresh store loads [`DurableState::default`] |
//! | `read_your_writes` | each kind of write is visible to the next `load`, per instance |
//! | `promise_never_goes_down` | a lower promise does not replace a higher one |
//! | `accepted_value_bound_to_its_ballot` | an accepted value is replaced only at a ballot `>=` its own, and is loaded with its ballot |
//! | `highest_round_is_monotone` | the proposer round never goes down |
//! | `decided_values_are_immutable` | the first decided value of an instance stays |
//! | `one_save_is_atomic_and_ordered` | many writes (several instances) in one `save` apply in slice order |
//! | `state_survives_reopen` | reopened stores load exactly the acknowledged state and keep the monotonic rules |
//! | `concurrent_writers_from_many_instances` | 16 tokio tasks saving different instances at once all land |
//! | `corrupt_record_is_typed_error` | a damaged record gives `Corrupt`/`Version`, never `Ok` |
//! | `truncation_survives_reopen` | a snapshot and the truncation below it, in one `save`, are loaded together (also after reopen): no entry below the new log start, and none written there later |
//! | `truncation_stops_at_the_snapshot` | a truncation never drops what no snapshot covers; an older snapshot never replaces a newer one |
//! | `large_snapshot_round_trips` | a 4 MiB snapshot is loaded byte for byte and verifies |
//! | `damaged_snapshot_is_typed_error` | a torn or damaged snapshot gives `Corrupt`, never `Ok` |
//!
//! Cases that need [`StorageFactory::reopen`], [`StorageFactory::corrupt`] or
//! [`StorageFactory::damage_snapshot`] are reported as skipped when the factory returns `None`
//! for them.
//!
//! # Runtime
//! [`run_all`] must be awaited inside a tokio runtime (it spawns tasks with [`tokio::spawn`]).
//! Do not use paused time (`start_paused`): the suite sets no timers, but a backend doing
//! blocking I/O on its own threads may look idle to the clock.
//!
//! # Example
//! A tiny in-memory backend (a `Mutex` around a [`DurableState`]) run through the suite. Its
//! guard is the shared state itself, so "reopening" hands out a new store over the same state:
//! the state outlives the store, as a directory would.
//! ```
//! use async_trait::async_trait;
//! use paxos_core::testing::conformance::{self, FactoryError, StorageFactory};
//! use paxos_core::{DurableState, Storage, StorageError, Write};
//! use std::sync::{Arc, Mutex};
//!
//! struct MyStorage(Arc<Mutex<DurableState<u64>>>);
//!
//! #[async_trait]
//! impl Storage<u64> for MyStorage {
//!     async fn load(&self) -> Result<DurableState<u64>, StorageError> {
//!         Ok(self.0.lock().unwrap().clone())
//!     }
//!     async fn save(&self, writes: &[Write<u64>]) -> Result<(), StorageError> {
//!         let mut state = self.0.lock().unwrap();
//!         writes.iter().for_each(|w| state.apply(w));
//!         Ok(())
//!     }
//! }
//!
//! struct MyFactory;
//!
//! #[async_trait]
//! impl StorageFactory for MyFactory {
//!     type Storage = MyStorage;
//!     type Guard = Arc<Mutex<DurableState<u64>>>;
//!
//!     async fn create(&self) -> Result<(Self::Guard, MyStorage), FactoryError> {
//!         let state = Arc::new(Mutex::new(DurableState::default()));
//!         Ok((state.clone(), MyStorage(state)))
//!     }
//!
//!     async fn reopen(&self, guard: &Self::Guard) -> Option<Result<MyStorage, StorageError>> {
//!         Some(Ok(MyStorage(guard.clone())))
//!     }
//!     // `corrupt` keeps its default (`None`): there are no bytes to damage.
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let report = conformance::run_all(&MyFactory).await.unwrap_or_else(|e| panic!("{e}"));
//! // corrupt_record_is_typed_error and damaged_snapshot_is_typed_error
//! assert_eq!(report.skipped().count(), 2);
//! println!("{report}");
//! # });
//! ```

use crate::ballot::{Ballot, InstanceId, NodeId};
use crate::effects::Write;
use crate::log::{ClientId, Entry, ProposalId};
use crate::snapshot::Snapshot;
use crate::storage::{DurableState, Storage, StorageError};
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

/// Errors a [`StorageFactory`] may return while setting up (creating a temp dir, opening).
pub type FactoryError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the stores the suite tests. Implement it once per backend.
///
/// The guard keeps a store's location alive (a `tempfile::TempDir`, a shared in-memory
/// state...) for one case; it is dropped after the last store of that case. Before calling
/// [`reopen`](Self::reopen) or [`corrupt`](Self::corrupt) the suite **drops** the store it was
/// using, so a backend's `Drop` must release the location (close files, release locks such as
/// RocksDB's `LOCK`) before returning.
#[async_trait]
pub trait StorageFactory: Send + Sync {
    /// The backend under test.
    type Storage: Storage<u64>;
    /// Keeps one store's location alive for a case (e.g. a temp dir); dropped after the store.
    type Guard: Send + Sync;

    /// A fresh, empty store and the guard of its location.
    ///
    /// # Errors
    /// Any setup failure; the case that asked is reported as failed.
    async fn create(&self) -> Result<(Self::Guard, Self::Storage), FactoryError>;

    /// Open the store at `guard`'s location again, as a restarted process would. The previous
    /// store of this guard has been dropped.
    ///
    /// Return `None` if the backend cannot be reopened (nothing persists once the store is
    /// dropped); the suite then skips the durability checks. The default returns `None`.
    async fn reopen(&self, guard: &Self::Guard) -> Option<Result<Self::Storage, StorageError>> {
        let _ = guard;
        None
    }

    /// Damage at least one stored record at `guard`'s location (the previous store has been
    /// dropped), so that the next [`reopen`](Self::reopen), or the first `load` after it, must
    /// fail with [`StorageError::Corrupt`] or [`StorageError::Version`]. When this is called the
    /// store holds a promise, a proposer round, two accepted and one decided record.
    ///
    /// Return `None` if the backend has no bytes to damage; the suite then skips
    /// `corrupt_record_is_typed_error`. The default returns `None`.
    async fn corrupt(&self, guard: &Self::Guard) -> Option<Result<(), FactoryError>> {
        let _ = guard;
        None
    }

    /// Damage the stored snapshot at `guard`'s location (the previous store has been dropped):
    /// change one of its bytes, or cut it short, as a torn write would. The next
    /// [`reopen`](Self::reopen), or the first `load` after it, must then fail with
    /// [`StorageError::Corrupt`]: a backend checks [`Snapshot::verify`] when it reads one.
    ///
    /// Return `None` if the backend has no bytes to damage; the suite then skips
    /// `damaged_snapshot_is_typed_error`. The default returns `None`.
    async fn damage_snapshot(&self, guard: &Self::Guard) -> Option<Result<(), FactoryError>> {
        let _ = guard;
        None
    }
}

/// How one case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseOutcome {
    /// Every check held.
    Passed,
    /// The case did not apply to this backend (the reason says which factory method was `None`).
    Skipped(&'static str),
    /// A check failed or the backend returned an error; the message says which and where.
    Failed(String),
}

/// One case's name and outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseReport {
    /// The behaviour checked, e.g. `promise_never_goes_down`.
    pub name: &'static str,
    /// How it ended.
    pub outcome: CaseOutcome,
}

/// The outcome of every case, in [`run_all`] order. `Display` prints one line per case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every case that ran, in order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// True when no case failed (skipped cases do not count as failures).
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, CaseOutcome::Failed(_)))
    }

    /// The cases that were skipped.
    pub fn skipped(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, CaseOutcome::Skipped(_)))
    }

    fn record(&mut self, name: &'static str, result: Result<Ran, String>) {
        let outcome = match result {
            Ok(Ran::Passed) => CaseOutcome::Passed,
            Ok(Ran::Skipped(why)) => CaseOutcome::Skipped(why),
            Err(msg) => CaseOutcome::Failed(msg),
        };
        self.cases.push(CaseReport { name, outcome });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            match &case.outcome {
                CaseOutcome::Passed => writeln!(f, "ok      {}", case.name)?,
                CaseOutcome::Skipped(why) => writeln!(f, "skipped {} ({why})", case.name)?,
                CaseOutcome::Failed(msg) => writeln!(f, "FAILED  {}: {msg}", case.name)?,
            }
        }
        Ok(())
    }
}

/// At least one case failed; the report holds every case's outcome.
#[derive(thiserror::Error)]
#[error("storage conformance failed:\n{report}")]
pub struct SuiteFailure {
    /// All cases, failed or not.
    pub report: Report,
}

// `unwrap()`/`expect()` print `Debug`: make that the readable per-case listing too.
impl fmt::Debug for SuiteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Run every case against stores made by `factory`.
///
/// Returns the [`Report`] when no case failed, otherwise a [`SuiteFailure`] carrying it. Must be
/// awaited inside a tokio runtime.
///
/// # Errors
/// [`SuiteFailure`] when at least one case failed.
pub async fn run_all<F: StorageFactory>(factory: &F) -> Result<Report, SuiteFailure> {
    let mut report = Report::default();
    report.record(
        "new_store_loads_empty",
        new_store_loads_empty(factory).await,
    );
    report.record("read_your_writes", read_your_writes(factory).await);
    report.record(
        "promise_never_goes_down",
        promise_never_goes_down(factory).await,
    );
    report.record(
        "accepted_value_bound_to_its_ballot",
        accepted_value_bound_to_its_ballot(factory).await,
    );
    report.record(
        "highest_round_is_monotone",
        highest_round_is_monotone(factory).await,
    );
    report.record(
        "decided_values_are_immutable",
        decided_values_are_immutable(factory).await,
    );
    report.record(
        "one_save_is_atomic_and_ordered",
        one_save_is_atomic_and_ordered(factory).await,
    );
    report.record(
        "state_survives_reopen",
        state_survives_reopen(factory).await,
    );
    report.record(
        "concurrent_writers_from_many_instances",
        concurrent_writers_from_many_instances(factory).await,
    );
    report.record(
        "corrupt_record_is_typed_error",
        corrupt_record_is_typed_error(factory).await,
    );
    report.record(
        "truncation_survives_reopen",
        truncation_survives_reopen(factory).await,
    );
    report.record(
        "truncation_stops_at_the_snapshot",
        truncation_stops_at_the_snapshot(factory).await,
    );
    report.record(
        "large_snapshot_round_trips",
        large_snapshot_round_trips(factory).await,
    );
    report.record(
        "damaged_snapshot_is_typed_error",
        damaged_snapshot_is_typed_error(factory).await,
    );
    if report.passed() {
        Ok(report)
    } else {
        Err(SuiteFailure { report })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A case that did not fail.
enum Ran {
    Passed,
    Skipped(&'static str),
}

const NO_REOPEN: &str = "factory cannot reopen";
const NO_CORRUPT: &str = "factory cannot corrupt";
const NO_DAMAGE: &str = "factory cannot damage a snapshot";

fn ballot(round: u64, node: u64) -> Ballot {
    Ballot::new(round, NodeId(node))
}

/// A client entry holding `value` (request number `value` of one client, so two values are
/// two requests).
fn entry(value: u64) -> Entry<u64> {
    Entry::Value {
        id: ProposalId {
            client: ClientId::default(),
            seq: value,
        },
        value,
    }
}

fn accept(instance: u64, b: Ballot, value: u64) -> Write<u64> {
    Write::Accept {
        instance: InstanceId(instance),
        ballot: b,
        entry: entry(value),
    }
}

fn decided(instance: u64, value: u64) -> Write<u64> {
    Write::Decided {
        instance: InstanceId(instance),
        entry: entry(value),
    }
}

/// Fail the case with `msg` unless `cond` holds.
fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// The first difference between two states, printed readably.
fn diff(expected: &DurableState<u64>, actual: &DurableState<u64>) -> Option<String> {
    if expected.promised != actual.promised {
        return Some(format!(
            "promised: expected {}, loaded {}",
            expected.promised, actual.promised
        ));
    }
    if expected.proposer_round != actual.proposer_round {
        return Some(format!(
            "proposer_round: expected {}, loaded {}",
            expected.proposer_round, actual.proposer_round
        ));
    }
    if expected.log_start != actual.log_start {
        return Some(format!(
            "log_start: expected {}, loaded {}",
            expected.log_start, actual.log_start
        ));
    }
    if expected.snapshot != actual.snapshot {
        let show = |s: &Option<Snapshot>| s.as_ref().map(|s| format!("{:?}", s.meta));
        return Some(format!(
            "snapshot: expected {:?}, loaded {:?}{}",
            show(&expected.snapshot),
            show(&actual.snapshot),
            if show(&expected.snapshot) == show(&actual.snapshot) {
                " (the bytes differ)"
            } else {
                ""
            }
        ));
    }
    for (what, e, a) in [
        ("accepted", map_accepted(expected), map_accepted(actual)),
        ("decided", map_decided(expected), map_decided(actual)),
    ] {
        if e != a {
            let missing = e.iter().find(|(k, v)| a.get(*k) != Some(*v));
            let extra = a.iter().find(|(k, _)| !e.contains_key(*k));
            return Some(match (missing, extra) {
                (Some((k, v)), _) => match a.get(k) {
                    Some(got) => format!("{what} {k}: expected {v}, loaded {got}"),
                    None => format!("{what} {k}: expected {v}, missing"),
                },
                (None, Some((k, v))) => format!("{what} {k}: not expected, loaded {v}"),
                (None, None) => format!("{what} differs"),
            });
        }
    }
    None
}

fn map_accepted(s: &DurableState<u64>) -> std::collections::BTreeMap<InstanceId, String> {
    s.accepted
        .iter()
        .map(|(i, (b, v))| (*i, format!("({b}, {v})")))
        .collect()
}

fn map_decided(s: &DurableState<u64>) -> std::collections::BTreeMap<InstanceId, String> {
    s.decided.iter().map(|(i, v)| (*i, v.to_string())).collect()
}

/// One store under test plus the reference model of what it must hold.
///
/// Field order matters: the store is dropped before the guard that keeps its location alive.
struct Fixture<'f, F: StorageFactory> {
    storage: Option<F::Storage>,
    guard: F::Guard,
    factory: &'f F,
    model: DurableState<u64>,
    saves: usize,
}

impl<'f, F: StorageFactory> Fixture<'f, F> {
    async fn new(factory: &'f F) -> Result<Self, String> {
        let (guard, storage) = factory
            .create()
            .await
            .map_err(|e| format!("factory.create failed: {e}"))?;
        Ok(Fixture {
            storage: Some(storage),
            guard,
            factory,
            model: DurableState::default(),
            saves: 0,
        })
    }

    fn storage(&self) -> Result<&F::Storage, String> {
        self.storage
            .as_ref()
            .ok_or_else(|| "no open store (an earlier reopen failed)".to_string())
    }

    /// Save `writes` in one call and apply them to the model.
    async fn save(&mut self, writes: &[Write<u64>]) -> Result<(), String> {
        self.saves += 1;
        let n = self.saves;
        self.storage()?
            .save(writes)
            .await
            .map_err(|e| format!("save #{n} ({} writes) failed: {e}", writes.len()))?;
        for w in writes {
            self.model.apply(w);
        }
        Ok(())
    }

    async fn load(&self, when: &str) -> Result<DurableState<u64>, String> {
        self.storage()?
            .load()
            .await
            .map_err(|e| format!("load {when} failed: {e}"))
    }

    /// Load and compare the whole state with the model.
    async fn expect_model(&self, when: &str) -> Result<DurableState<u64>, String> {
        let loaded = self.load(when).await?;
        match diff(&self.model, &loaded) {
            None => Ok(loaded),
            Some(d) => Err(format!("{when}: {d}")),
        }
    }

    /// Close and reopen the store. `Ok(false)` if the factory cannot reopen.
    async fn reopen(&mut self) -> Result<bool, String> {
        // Close the current store first: the backend may hold a lock on its location.
        drop(self.storage.take());
        match self.factory.reopen(&self.guard).await {
            None => Ok(false),
            Some(Ok(s)) => {
                self.storage = Some(s);
                Ok(true)
            }
            Some(Err(e)) => Err(format!("reopen after save #{} failed: {e}", self.saves)),
        }
    }

    /// The end of every write case: compare, then (if possible) reopen and compare again.
    async fn finish(mut self) -> Result<Ran, String> {
        self.expect_model("at the end of the case").await?;
        if self.reopen().await? {
            self.expect_model("after reopen at the end of the case")
                .await?;
        }
        Ok(Ran::Passed)
    }
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// A store nobody wrote to loads the default state (ballot zero, round 0, no instances).
async fn new_store_loads_empty<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let fx = Fixture::new(f).await?;
    let loaded = fx.load("of a new store").await?;
    ensure(loaded == DurableState::default(), || {
        format!("a new store loaded {loaded:?}, expected the default state")
    })?;
    fx.finish().await
}

/// Every kind of write is visible to the next `load`, for each instance separately; an empty
/// save changes nothing. Instance ids and values span the whole `u64` range (key encodings must
/// keep them apart and in order).
async fn read_your_writes<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    fx.save(&[]).await?;
    fx.expect_model("after an empty save").await?;
    let instances = [0, 1, 255, 256, 1 << 32, u64::MAX - 1, u64::MAX];
    for (k, &i) in instances.iter().enumerate() {
        let k = k as u64;
        let steps = [
            Write::Promise(ballot(k + 1, 2)),
            accept(i, ballot(k + 1, 2), i ^ 0xA5A5),
            Write::ProposerRound(k + 1),
            decided(i, u64::MAX - k),
        ];
        for w in steps {
            fx.save(std::slice::from_ref(&w)).await?;
            fx.expect_model(&format!("after saving {w:?}")).await?;
        }
    }
    let loaded = fx.load("after all writes").await?;
    ensure(loaded.accepted.len() == instances.len(), || {
        format!(
            "expected {} accepted instances, loaded {}",
            instances.len(),
            loaded.accepted.len()
        )
    })?;
    ensure(
        loaded.accepted.get(&InstanceId(u64::MAX))
            == Some(&(ballot(7, 2), entry(u64::MAX ^ 0xA5A5))),
        || {
            format!(
                "instance u64::MAX: loaded {:?}",
                loaded.accepted.get(&InstanceId(u64::MAX))
            )
        },
    )?;
    fx.finish().await
}

/// Paxos Made Simple §2.2 (P1a): an acceptor never goes back on a promise, so a lower ballot
/// (lower round, or same round and lower node) must not replace a higher stored promise.
async fn promise_never_goes_down<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    let steps = [
        (ballot(5, 2), ballot(5, 2)),
        (ballot(3, 9), ballot(5, 2)),
        (ballot(5, 1), ballot(5, 2)),
        (ballot(5, 2), ballot(5, 2)),
        (ballot(5, 3), ballot(5, 3)),
        (Ballot::ZERO, ballot(5, 3)),
        (ballot(u64::MAX, 0), ballot(u64::MAX, 0)),
    ];
    for (promise, expected) in steps {
        fx.save(&[Write::Promise(promise)]).await?;
        let loaded = fx
            .expect_model(&format!("after promising {promise}"))
            .await?;
        ensure(loaded.promised == expected, || {
            format!(
                "after promising {promise}: loaded promise {}, expected {expected}",
                loaded.promised
            )
        })?;
    }
    fx.finish().await
}

/// Paxos Made Simple §2.2 (phase 2b): an accepted value is stored with the ballot it was
/// accepted at, is replaced only by an accept at a ballot at least as high, and is unaffected by
/// later promises or by accepts in other instances.
async fn accepted_value_bound_to_its_ballot<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    let steps: [(Write<u64>, (Ballot, u64)); 6] = [
        (accept(1, ballot(2, 1), 10), (ballot(2, 1), 10)),
        (accept(1, ballot(1, 3), 11), (ballot(2, 1), 10)),
        (accept(2, ballot(9, 9), 99), (ballot(2, 1), 10)),
        (Write::Promise(ballot(8, 8)), (ballot(2, 1), 10)),
        (accept(1, ballot(2, 1), 10), (ballot(2, 1), 10)),
        (accept(1, ballot(3, 1), 12), (ballot(3, 1), 12)),
    ];
    for (w, expected) in steps {
        fx.save(std::slice::from_ref(&w)).await?;
        let loaded = fx.expect_model(&format!("after saving {w:?}")).await?;
        let got = loaded.accepted.get(&InstanceId(1));
        let expected = (expected.0, entry(expected.1));
        ensure(got == Some(&expected), || {
            format!("after saving {w:?}: instance 1 loaded {got:?}, expected {expected:?}")
        })?;
    }
    let loaded = fx.load("at the end").await?;
    ensure(
        loaded.accepted.get(&InstanceId(2)) == Some(&(ballot(9, 9), entry(99))),
        || {
            format!(
                "instance 2 loaded {:?}, expected (9.9, 99)",
                loaded.accepted.get(&InstanceId(2))
            )
        },
    )?;
    fx.finish().await
}

/// A proposer must never reuse a round after a restart, so the stored round only goes up.
async fn highest_round_is_monotone<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    for (round, expected) in [(4, 4), (2, 4), (4, 4), (9, 9), (0, 9), (u64::MAX, u64::MAX)] {
        fx.save(&[Write::ProposerRound(round)]).await?;
        let loaded = fx.expect_model(&format!("after round {round}")).await?;
        ensure(loaded.proposer_round == expected, || {
            format!(
                "after round {round}: loaded {}, expected {expected}",
                loaded.proposer_round
            )
        })?;
    }
    fx.finish().await
}

/// Once a value is decided in an instance it never changes (a learner cannot unlearn), whatever
/// is later decided or accepted there.
async fn decided_values_are_immutable<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    fx.save(&[decided(3, 30)]).await?;
    fx.save(&[decided(3, 31)]).await?;
    fx.save(&[accept(3, ballot(7, 1), 32)]).await?;
    fx.save(&[decided(4, 40), decided(3, 33)]).await?;
    let loaded = fx.expect_model("after re-deciding instance 3").await?;
    ensure(
        loaded.decided.get(&InstanceId(3)) == Some(&entry(30)),
        || {
            format!(
                "instance 3 decided {:?}, expected 30",
                loaded.decided.get(&InstanceId(3))
            )
        },
    )?;
    ensure(
        loaded.decided.get(&InstanceId(4)) == Some(&entry(40)),
        || {
            format!(
                "instance 4 decided {:?}, expected 40",
                loaded.decided.get(&InstanceId(4))
            )
        },
    )?;
    fx.finish().await
}

/// One `save` with many writes over several instances: all of them are applied, in slice order
/// (a later lower promise is ignored, a later higher accept in the same slice wins, the first
/// decided value in the slice stays).
async fn one_save_is_atomic_and_ordered<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    let b3 = ballot(3, 1);
    let mut writes = vec![Write::Promise(b3), Write::ProposerRound(3)];
    writes.extend((0..32).map(|i| accept(i, b3, 100 + i)));
    writes.extend([
        Write::Promise(ballot(2, 1)),
        Write::Promise(ballot(4, 1)),
        accept(2, ballot(4, 1), 2000),
        accept(2, b3, 2001),
        Write::ProposerRound(7),
        Write::ProposerRound(5),
        decided(0, 500),
        decided(0, 501),
        decided(31, 531),
    ]);
    fx.save(&writes).await?;
    let loaded = fx.expect_model("after one save of many writes").await?;
    let checks = [
        (loaded.promised == ballot(4, 1), "promise 4.1"),
        (loaded.proposer_round == 7, "proposer round 7"),
        (loaded.accepted.len() == 32, "32 accepted instances"),
        (
            loaded.accepted.get(&InstanceId(2)) == Some(&(ballot(4, 1), entry(2000))),
            "instance 2 = (4.1, 2000)",
        ),
        (
            loaded.decided.get(&InstanceId(0)) == Some(&entry(500)),
            "instance 0 decided 500",
        ),
        (loaded.decided.len() == 2, "2 decided instances"),
    ];
    for (ok, what) in checks {
        ensure(ok, || {
            format!("after one save of many writes: expected {what}")
        })?;
    }
    // A second big save on top of the first, touching old and new instances.
    let b5 = ballot(5, 2);
    let mut writes: Vec<_> = (16..48).map(|i| accept(i, b5, 5000 + i)).collect();
    writes.push(Write::Promise(b5));
    writes.extend((16..48).map(|i| decided(i, 6000 + i)));
    fx.save(&writes).await?;
    fx.expect_model("after a second save of many writes")
        .await?;
    fx.finish().await
}

/// Storage correctness 4: after a restart `load` returns exactly the acknowledged state, and the
/// monotonic rules keep holding against what was stored before the restart (a backend that
/// caches state must rebuild it from disk).
async fn state_survives_reopen<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    if !fx.reopen().await? {
        return Ok(Ran::Skipped(NO_REOPEN));
    }
    fx.expect_model("after reopening an empty store").await?;
    let rounds: [&[Write<u64>]; 4] = [
        &[Write::Promise(ballot(4, 2)), Write::ProposerRound(4)],
        &[accept(0, ballot(4, 2), 40), accept(9, ballot(4, 2), 49)],
        &[decided(0, 40), Write::Promise(ballot(6, 1))],
        &[accept(9, ballot(6, 1), 69), Write::ProposerRound(6)],
    ];
    for (k, writes) in rounds.iter().enumerate() {
        fx.save(writes).await?;
        ensure(fx.reopen().await?, || {
            "reopen stopped being supported".into()
        })?;
        fx.expect_model(&format!("after reopen following save {}", k + 1))
            .await?;
    }
    // Lower values after the restart must still be ignored.
    fx.save(&[
        Write::Promise(ballot(5, 9)),
        Write::ProposerRound(2),
        accept(9, ballot(5, 9), 59),
        decided(0, 41),
    ])
    .await?;
    let loaded = fx
        .expect_model("after lower writes following a reopen")
        .await?;
    ensure(loaded.promised == ballot(6, 1), || {
        format!(
            "promise went down across a reopen: loaded {}",
            loaded.promised
        )
    })?;
    ensure(
        loaded.accepted.get(&InstanceId(9)) == Some(&(ballot(6, 1), entry(69))),
        || {
            format!(
                "instance 9 loaded {:?}, expected (6.1, 69)",
                loaded.accepted.get(&InstanceId(9))
            )
        },
    )?;
    // Reopening twice without writes in between changes nothing.
    fx.reopen().await?;
    fx.reopen().await?;
    fx.expect_model("after two reopens without writes").await?;
    fx.finish().await
}

/// Many tasks (think: many instances' steps in flight at once) saving concurrently through one
/// shared store: every acknowledged write is present afterwards, shared keys hold the maximum.
async fn concurrent_writers_from_many_instances<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    const TASKS: u64 = 16;
    const SAVES: u64 = 8;
    let mut fx = Fixture::new(f).await?;
    let shared = Arc::new(fx.storage.take().ok_or("no open store")?);
    let script = |t: u64, s: u64| -> Vec<Write<u64>> {
        let instance = t * 1000 + s;
        let b = ballot(s + 1, t);
        vec![
            Write::Promise(b),
            accept(instance, b, instance * 7),
            decided(instance, instance * 7),
            Write::ProposerRound(t * SAVES + s),
        ]
    };
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = shared.clone();
        tasks.push(tokio::spawn(async move {
            for s in 0..SAVES {
                store
                    .save(&script(t, s))
                    .await
                    .map_err(|e| format!("task {t} save {s} failed: {e}"))?;
                tokio::task::yield_now().await;
            }
            Ok::<(), String>(())
        }));
    }
    let mut first_error = None;
    for (t, task) in tasks.into_iter().enumerate() {
        let result = task
            .await
            .map_err(|e| format!("task {t} panicked or was cancelled: {e}"))
            .and_then(|r| r);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    fx.storage = Some(
        Arc::try_unwrap(shared).map_err(|_| "a writer task still holds the store".to_string())?,
    );
    if let Some(e) = first_error {
        return Err(e);
    }
    // Shared keys only move up and instances are disjoint, so any interleaving gives this model.
    for t in 0..TASKS {
        for s in 0..SAVES {
            for w in script(t, s) {
                fx.model.apply(&w);
            }
        }
    }
    let loaded = fx.expect_model("after all concurrent saves").await?;
    let n = (TASKS * SAVES) as usize;
    ensure(
        loaded.accepted.len() == n && loaded.decided.len() == n,
        || {
            format!(
                "expected {n} accepted and decided instances, loaded {} and {}",
                loaded.accepted.len(),
                loaded.decided.len()
            )
        },
    )?;
    fx.finish().await
}

/// Storage correctness 5: a damaged record must surface as `Corrupt` or `Version`, at reopen or
/// at the first load, and never as `Ok` (which would make a node forget a promise).
async fn corrupt_record_is_typed_error<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    fx.save(&[
        Write::Promise(ballot(3, 1)),
        Write::ProposerRound(3),
        accept(0, ballot(3, 1), 30),
        accept(1, ballot(3, 1), 31),
        decided(0, 30),
    ])
    .await?;
    drop(fx.storage.take());
    match f.corrupt(&fx.guard).await {
        None => return Ok(Ran::Skipped(NO_CORRUPT)),
        Some(Err(e)) => return Err(format!("factory.corrupt failed: {e}")),
        Some(Ok(())) => {}
    }
    let typed = |e: &StorageError| {
        matches!(
            e,
            StorageError::Corrupt { .. } | StorageError::Version { .. }
        )
    };
    let reopened = match f.reopen(&fx.guard).await {
        None => return Err("factory can corrupt but not reopen".into()),
        Some(Err(e)) if typed(&e) => return Ok(Ran::Passed),
        Some(Err(e)) => {
            return Err(format!(
                "reopen of a corrupted store gave an untyped error: {e}"
            ));
        }
        Some(Ok(s)) => s,
    };
    match reopened.load().await {
        Err(e) if typed(&e) => Ok(Ran::Passed),
        Err(e) => Err(format!(
            "load of a corrupted store gave an untyped error: {e}"
        )),
        Ok(state) => Err(format!(
            "load of a corrupted store returned Ok: {:?}",
            diff(&fx.model, &state).unwrap_or_else(|| "the full pre-corruption state".into())
        )),
    }
}

fn snapshot(index: u64, data: &[u8]) -> Snapshot {
    Snapshot::new(InstanceId(index), ballot(index, 1), data.to_vec())
}

/// Storage correctness 2 and 4 for compaction: a snapshot and the truncation it allows, saved
/// together, are loaded together; nothing below the new log start comes back, not even an
/// entry written there afterwards (across a reopen too), and everything above stays.
async fn truncation_survives_reopen<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    let b = ballot(2, 1);
    let mut log: Vec<_> = (0..10).map(|i| accept(i, b, 100 + i)).collect();
    log.extend((0..8).map(|i| decided(i, 100 + i)));
    fx.save(&log).await?;
    fx.save(&[
        Write::Snapshot(snapshot(6, b"state of i0-i5")),
        Write::TruncateBelow(InstanceId(6)),
        accept(10, b, 110),
    ])
    .await?;
    let loaded = fx
        .expect_model("after a snapshot and its truncation")
        .await?;
    let lowest = |s: &DurableState<u64>| {
        (
            s.accepted.keys().next().copied(),
            s.decided.keys().next().copied(),
        )
    };
    ensure(
        loaded.log_start == InstanceId(6)
            && lowest(&loaded) == (Some(InstanceId(6)), Some(InstanceId(6)))
            && loaded.accepted.len() == 5,
        || {
            format!(
                "after truncating below i6: log start {}, lowest (accepted, decided) {:?}, {} accepted",
                loaded.log_start,
                lowest(&loaded),
                loaded.accepted.len()
            )
        },
    )?;
    if fx.reopen().await? {
        fx.expect_model("after reopen following the truncation")
            .await?;
    }
    // Entries below the log start are part of the snapshot: writing them again changes nothing.
    fx.save(&[accept(2, ballot(3, 1), 7), decided(3, 7)])
        .await?;
    let loaded = fx.expect_model("after writing below the log start").await?;
    ensure(
        lowest(&loaded) == (Some(InstanceId(6)), Some(InstanceId(6))),
        || {
            format!(
                "entries below the log start came back: lowest (accepted, decided) {:?}",
                lowest(&loaded)
            )
        },
    )?;
    fx.finish().await
}

/// A truncation drops only what the kept snapshot covers (without one, nothing), and a
/// snapshot never goes back to a lower index (an install racing a newer local snapshot).
async fn truncation_stops_at_the_snapshot<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    fx.save(&(0..8).map(|i| decided(i, i)).collect::<Vec<_>>())
        .await?;
    fx.save(&[Write::TruncateBelow(InstanceId(5))]).await?;
    let loaded = fx
        .expect_model("after truncating without a snapshot")
        .await?;
    ensure(
        loaded.decided.len() == 8 && loaded.log_start == InstanceId(0),
        || {
            format!(
                "a truncation without a snapshot dropped entries: {} decided, log start {}",
                loaded.decided.len(),
                loaded.log_start
            )
        },
    )?;
    fx.save(&[
        Write::Snapshot(snapshot(3, b"three")),
        Write::TruncateBelow(InstanceId(5)),
    ])
    .await?;
    let loaded = fx
        .expect_model("after truncating past the snapshot")
        .await?;
    ensure(loaded.log_start == InstanceId(3), || {
        format!(
            "truncating below i5 with a snapshot below i3: log start {}, expected i3",
            loaded.log_start
        )
    })?;
    fx.save(&[Write::Snapshot(snapshot(6, b"six"))]).await?;
    fx.save(&[
        Write::Snapshot(snapshot(4, b"four")),
        Write::TruncateBelow(InstanceId(7)),
    ])
    .await?;
    let loaded = fx.expect_model("after an older snapshot").await?;
    ensure(
        loaded.snapshot_index() == InstanceId(6) && loaded.log_start == InstanceId(6),
        || {
            format!(
                "after snapshots below i6 then i4: kept the one below {}, log start {}",
                loaded.snapshot_index(),
                loaded.log_start
            )
        },
    )?;
    fx.finish().await
}

/// A snapshot of some megabytes is loaded byte for byte (and verifies), also after reopen.
async fn large_snapshot_round_trips<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fx.save(&[Write::Snapshot(snapshot(1 << 20, &data))])
        .await?;
    let loaded = fx.expect_model("after a 4 MiB snapshot").await?;
    let verified = loaded.snapshot.as_ref().map(Snapshot::verify);
    ensure(verified == Some(Ok(())), || {
        format!("the loaded snapshot does not verify: {verified:?}")
    })?;
    fx.finish().await
}

/// Storage correctness 5 for snapshots: a torn or damaged snapshot is `Corrupt`, at reopen or
/// at the first load, never a state machine restored from garbage.
async fn damaged_snapshot_is_typed_error<F: StorageFactory>(f: &F) -> Result<Ran, String> {
    let mut fx = Fixture::new(f).await?;
    fx.save(&[
        decided(0, 1),
        Write::Snapshot(snapshot(1, b"the state of i0")),
        Write::TruncateBelow(InstanceId(1)),
    ])
    .await?;
    drop(fx.storage.take());
    match f.damage_snapshot(&fx.guard).await {
        None => return Ok(Ran::Skipped(NO_DAMAGE)),
        Some(Err(e)) => return Err(format!("factory.damage_snapshot failed: {e}")),
        Some(Ok(())) => {}
    }
    let corrupt = |e: &StorageError| matches!(e, StorageError::Corrupt { .. });
    let reopened = match f.reopen(&fx.guard).await {
        None => return Err("factory can damage a snapshot but not reopen".into()),
        Some(Err(e)) if corrupt(&e) => return Ok(Ran::Passed),
        Some(Err(e)) => {
            return Err(format!(
                "reopen with a damaged snapshot gave another error: {e}"
            ));
        }
        Some(Ok(s)) => s,
    };
    match reopened.load().await {
        Err(e) if corrupt(&e) => Ok(Ran::Passed),
        Err(e) => Err(format!(
            "load of a damaged snapshot gave another error: {e}"
        )),
        Ok(state) => Err(format!(
            "load of a damaged snapshot returned Ok: {:?}",
            state.snapshot.map(|s| s.meta)
        )),
    }
}
