//! Running a model: one place that builds the checker, times it and prints what it found.

use crate::cluster::{Action, PaxosModel, State};
use crate::properties;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::{Checker, Chooser, HasDiscoveries, Model, Path};
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// True when `PAXOS_MODEL_DEEP=1`: the checks run with larger bounds (minutes, not seconds).
pub fn deep() -> bool {
    std::env::var("PAXOS_MODEL_DEEP").is_ok_and(|v| v == "1")
}

/// What a finished check found.
pub struct Report {
    pub model: PaxosModel,
    discoveries: Discoveries,
}

impl Report {
    /// Panic unless every `always` held and every `sometimes` (but those in `unwitnessed`) was
    /// witnessed.
    pub fn assert_properties(&self, unwitnessed: &[&str]) {
        for p in self.model.properties() {
            let found = self.discoveries.get(p.name);
            if p.expectation.discovery_is_failure() {
                if let Some(path) = found {
                    print_trace(&self.model, p.name, path);
                    panic!("property {:?} violated (trace above)", p.name);
                }
            } else if !unwitnessed.contains(&p.name) {
                assert!(found.is_some(), "no run witnesses {:?}", p.name);
            }
        }
    }

    /// The counterexample of `property`, shrunk and printed; panics if there is none.
    pub fn counterexample(&self, property: &'static str) -> Vec<Action> {
        let path = self
            .discoveries
            .get(property)
            .unwrap_or_else(|| panic!("expected a counterexample for {property:?}, found none"));
        let actions = shrink(&self.model, property, path.clone().into_actions());
        let path = Path::from_actions(&self.model, self.model.init_states()[0].clone(), &actions)
            .expect("a shrunk trace replays");
        print_trace(&self.model, property, &path);
        actions
    }
}

/// Drop every step of a counterexample that is not needed to violate `property`, one at a time
/// (random runs wander). The result still replays from the initial state and still violates.
fn shrink(model: &PaxosModel, property: &'static str, mut actions: Vec<Action>) -> Vec<Action> {
    let holds = model.property(property).condition;
    let violates = |actions: &[Action]| {
        let mut state = model.init_states().remove(0);
        for a in actions {
            let mut enabled = Vec::new();
            model.actions(&state, &mut enabled);
            if !enabled.contains(a) {
                return false;
            }
            state = model.next_state(&state, a.clone()).unwrap_or(state);
        }
        !holds(model, &state)
    };
    let mut i = actions.len();
    while i > 0 {
        i -= 1;
        let mut shorter = actions.clone();
        shorter.remove(i);
        if violates(&shorter) {
            actions = shorter;
            i = i.min(actions.len());
        }
    }
    actions
}

/// How to search.
#[derive(Clone, Copy, Debug)]
pub enum Search {
    /// Every state within `max_depth` steps, breadth first (shortest counterexamples).
    Bfs { max_depth: usize },
    /// Seeded random runs of up to `max_depth` steps, until `states` states were generated or
    /// the property looked for is violated. For deep bugs that BFS would reach too slowly.
    /// Each step is drawn among the actions that change the state ([`Progress`]).
    Random {
        seed: u64,
        max_depth: usize,
        states: usize,
    },
}

/// Explore `model` (`PAXOS_MODEL_DEPTH=n` overrides the depth bound) and print the statistics.
/// With `stop_at` the search ends at the first violation of that property (bug-catching
/// checks).
pub fn check(
    name: &str,
    model: PaxosModel,
    search: Search,
    stop_at: Option<&'static str>,
) -> Report {
    let depth_override = std::env::var("PAXOS_MODEL_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok());
    let start = Instant::now();
    let mut builder = model.clone().checker();
    if let Some(p) = stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([p])));
    }
    let (max_depth, stats) = match search {
        Search::Bfs { max_depth } => {
            let max_depth = depth_override.unwrap_or(max_depth);
            let c = builder.target_max_depth(max_depth).spawn_bfs().join();
            (max_depth, stats(&c))
        }
        Search::Random {
            seed,
            max_depth,
            states,
        } => {
            let max_depth = depth_override.unwrap_or(max_depth);
            let c = builder
                .target_max_depth(max_depth)
                .target_state_count(states)
                .spawn_simulation(seed, Progress(model.clone()))
                .join();
            (max_depth, stats(&c))
        }
    };
    let (unique_states, generated, depth, discoveries) = stats;
    println!(
        "[model] {name}: {unique_states} unique states ({generated} generated), \
         depth {depth}/{max_depth}, {:.1}s",
        start.elapsed().as_secs_f64(),
    );
    Report { model, discoveries }
}

/// Chooses uniformly among the actions that change the state. In a duplicating network most
/// deliveries are repeats that change nothing, and stateright ends a random run at the first
/// repeated state, so a uniform choice would end most runs after a few steps.
#[derive(Clone)]
pub struct Progress(PaxosModel);

impl Chooser<PaxosModel> for Progress {
    type State = StdRng;

    fn new_state(&self, seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn choose_initial_state(&self, _: &mut StdRng, _: &[State]) -> usize {
        0
    }

    fn choose_action(&self, rng: &mut StdRng, current: &State, actions: &[Action]) -> usize {
        let useful: Vec<usize> = (0..actions.len())
            .filter(|&i| {
                self.0
                    .next_state(current, actions[i].clone())
                    .is_some_and(|next| next != *current)
            })
            .collect();
        let mut pick = |n: usize| rng.gen_range(0..n);
        match useful.len() {
            0 => pick(actions.len()),
            n => useful[pick(n)],
        }
    }
}

type Discoveries = HashMap<&'static str, Path<State, Action>>;

fn stats(c: &impl Checker<PaxosModel>) -> (usize, usize, usize, Discoveries) {
    (
        c.unique_state_count(),
        c.state_count(),
        c.max_depth(),
        c.discoveries(),
    )
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
