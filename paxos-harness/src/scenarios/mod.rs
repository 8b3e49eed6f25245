//! Every scenario of the seed logs, as named, asserted functions.
//!
//! | suite | source |
//! |---|---|
//! | `go` | `000_48e927d028b9bfb6.txt`: TestBasicPaxos, TestSingleProposer, TestManyProposer, TestManyProposerUnreliable |
//! | `elixir` | `001_57610da62e63f199.txt` via `001-scenarios.md`: E1-E13 plus abort and timeout |
//! | `restart` | crash-restart durability: acknowledged decisions survive, ballots are never reused |
//! | `membership` | live membership change under load: grow, shrink, replace, leader crash mid-change, refusals ([`membership`]) |
//! | `theory` | `002`-`004`: adopt-highest-accepted, divergent acceptors, restarted proposer, duelling proposers, minority/majority down, learner strategies; and the log's regression schedules ([`holes`]) |
//!
//! A scenario body drives a [`Cluster`] and returns `Err` when an expectation fails; the
//! runner then checks the observer's safety invariants on top.

use crate::chaos::Break;
use crate::cluster::{BodyFuture, Cluster, ClusterSpec};

pub mod common;
pub mod elixir;
pub mod go;
pub mod holes;
pub mod membership;
pub mod restart;
pub mod snapshots;
pub mod theory;

/// One named scenario.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Suite it belongs to (`go`, `elixir`, `theory`).
    pub suite: &'static str,
    /// Name within the suite.
    pub name: &'static str,
    /// One line on what it checks, and where it comes from.
    pub about: &'static str,
    /// Seeds run by default (the Elixir log repeats each test; so do we).
    pub runs: u32,
    /// The cluster it needs.
    pub spec: fn() -> ClusterSpec,
    /// What it does and asserts.
    pub body: fn(Cluster) -> BodyFuture,
    /// The bug it exists to catch (`None`: not said; every theory and Elixir scenario says).
    pub catches: Option<Catches>,
}

/// The bug a scenario exists to catch, as a fault switch that makes it fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Catches {
    /// Run with this rule broken on every node, the scenario fails (a test runs each so, on
    /// its first seeds: `paxos-harness run --filter NAME --break SWITCH` shows it).
    Break(Break),
    /// No fault switch changes what it checks; why. (Every run also fails under
    /// `skip-persist`, through the observer's durability rule, whatever the scenario.)
    Nothing(&'static str),
}

impl Scenario {
    /// A scenario of `suite`, run `runs` times by default.
    pub fn new(
        suite: &'static str,
        runs: u32,
        name: &'static str,
        about: &'static str,
        spec: fn() -> ClusterSpec,
        body: fn(Cluster) -> BodyFuture,
    ) -> Scenario {
        Scenario {
            suite,
            name,
            about,
            runs,
            spec,
            body,
            catches: None,
        }
    }

    /// The scenario fails with `b` broken on every node (see [`Catches::Break`]).
    pub fn catches(mut self, b: Break) -> Scenario {
        self.catches = Some(Catches::Break(b));
        self
    }

    /// No fault switch changes what the scenario checks, for the reason `why`.
    pub fn catches_nothing(mut self, why: &'static str) -> Scenario {
        self.catches = Some(Catches::Nothing(why));
        self
    }

    /// `suite/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }
}

/// Node `id`, as the logs name them (`p1`, `n1`).
pub fn n(id: u64) -> paxos_core::NodeId {
    paxos_core::NodeId(id)
}

/// Every scenario, in suite order.
pub fn all() -> Vec<Scenario> {
    let mut v = go::scenarios();
    v.extend(elixir::scenarios());
    v.extend(theory::scenarios());
    v.extend(holes::scenarios());
    v.extend(snapshots::scenarios());
    v.extend(restart::scenarios());
    v.extend(membership::scenarios());
    v
}

/// The suite names, in order.
pub const SUITES: [&str; 5] = ["go", "elixir", "theory", "restart", "membership"];
