//! Running a model: one place that builds the checker, times it and prints what it found.

use crate::cluster::{Action, PaxosModel, State};
use crate::properties;
use stateright::{Checker, HasDiscoveries, Model, Path};
use std::collections::BTreeSet;
use std::time::Instant;

/// True when `PAXOS_MODEL_DEEP=1`: the checks run with larger bounds (minutes, not seconds).
pub fn deep() -> bool {
    std::env::var("PAXOS_MODEL_DEEP").is_ok_and(|v| v == "1")
}

/// What a finished check found.
pub struct Report {
    pub model: PaxosModel,
    pub unique_states: usize,
    discoveries: std::collections::HashMap<&'static str, Path<State, Action>>,
}

impl Report {
    /// Panic unless every `always` held and every `sometimes` was witnessed.
    pub fn assert_properties(&self) {
        for p in self.model.properties() {
            let found = self.discoveries.get(p.name);
            if p.expectation.discovery_is_failure() {
                if let Some(path) = found {
                    print_trace(&self.model, p.name, path);
                    panic!("property {:?} violated (trace above)", p.name);
                }
            } else {
                assert!(found.is_some(), "no run witnesses {:?}", p.name);
            }
        }
    }

    /// The counterexample of `property`, printed; panics if there is none.
    pub fn counterexample(&self, property: &'static str) -> &Path<State, Action> {
        let path = self
            .discoveries
            .get(property)
            .unwrap_or_else(|| panic!("expected a counterexample for {property:?}, found none"));
        print_trace(&self.model, property, path);
        path
    }
}

/// Explore `model` breadth-first up to `max_depth` steps (`PAXOS_MODEL_DEPTH=n` overrides it)
/// and print the statistics. With `stop_at` the search ends at the first violation of that
/// property (bug-catching checks).
pub fn check(
    name: &str,
    model: PaxosModel,
    max_depth: usize,
    stop_at: Option<&'static str>,
) -> Report {
    let max_depth = std::env::var("PAXOS_MODEL_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(max_depth);
    let start = Instant::now();
    let mut builder = model.clone().checker().target_max_depth(max_depth);
    if let Some(p) = stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([p])));
    }
    let checker = if std::env::var("DFS").is_ok() {
        let c = builder.spawn_dfs().join();
        (c.unique_state_count(), c.state_count(), c.max_depth(), c.discoveries())
    } else {
        let c = builder.spawn_bfs().join();
        (c.unique_state_count(), c.state_count(), c.max_depth(), c.discoveries())
    };
    let checker = Stats(checker);
    let report = Report {
        model,
        unique_states: checker.0.0,
        discoveries: checker.0.3.clone(),
    };
    println!(
        "[model] {name}: {} unique states ({} generated), depth {}/{max_depth}, {:.1}s",
        report.unique_states,
        checker.0.1,
        checker.0.2,
        start.elapsed().as_secs_f64(),
    );
    report
}

/// Print a discovery step by step, with client proposals spelled out.
pub fn print_trace(model: &PaxosModel, property: &str, path: &Path<State, Action>) {
    println!("[model] trace for {property:?}:");
    let steps = path.clone().into_vec();
    for (n, (_, action)) in steps.iter().enumerate() {
        let Some(action) = action else { continue };
        match action {
            Action::Propose(i) => {
                let p = model.proposals[*i];
                let at = p
                    .instance
                    .map_or("next free".to_string(), |i| i.to_string());
                println!(
                    "  {:>2}. client asks {} to propose {} in {at}",
                    n + 1,
                    p.node,
                    p.value
                );
            }
            a => println!("  {:>2}. {a:?}", n + 1),
        }
    }
    if let Some((last, _)) = steps.last() {
        println!(
            "  => learned {:?}, chosen {:?}",
            properties::learned(last),
            properties::chosen(model, last)
        );
    }
}

struct Stats(
    (
        usize,
        usize,
        usize,
        std::collections::HashMap<&'static str, Path<State, Action>>,
    ),
);
