//! [`Schedule`]: everything random about one chaos run, drawn from its seed before it starts.
//!
//! The cluster's shape (size, leader mode, clock skew, network latency, disk latency), the
//! workload's size, and a timeline of faults (with, in one run in three, membership changes
//! that demote an acceptor to a learner and promote it back, so the observer's checker
//! follows epochs while faults play). Nothing is drawn while the run executes except
//! inside the simulation (turmoil's seeded RNG, the fault RNG, the workload's RNG), so a seed
//! names one run, and printing its schedule says what happened to it.

use crate::cluster::{NodeOptions, SimNetwork};
use paxos_core::{LeaderMode, LearnerStrategy, NodeId, majority};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Whom a crash hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Node(NodeId),
    /// Whichever node leads when the fault fires (in leaderless mode: the live node with the
    /// highest ballot).
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Leader => f.write_str("the leader"),
        }
    }
}

/// One fault of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Crash the target (its unsynced writes are lost) and restart it `down_for` later.
    Bounce {
        /// Who.
        target: Target,
        /// How long it stays down.
        down_for: Duration,
    },
    /// Cut both directions between two nodes.
    Partition(NodeId, NodeId),
    /// Cut only `from -> to`.
    PartitionOneway(NodeId, NodeId),
    /// Cut these nodes off from all the others (both directions).
    Split(Vec<NodeId>),
    /// Cut the current leader off from everyone.
    IsolateLeader,
    /// Lose messages on every link with this probability.
    Loss(f64),
    /// Deliver messages on every link twice with this probability.
    Duplicate(f64),
    /// Hold messages on every link back with this probability, up to this long (reordering).
    Delay(f64, Duration),
    /// Lose every message of one kind (`"accept"`, `"promise"`, ...) on `from -> to`.
    DropKind(NodeId, NodeId, &'static str),
    /// Remove every network fault.
    Heal,
    /// Ask the leader for a membership change: these acceptors, every other node a learner
    /// (drawn apart from the other faults, last among a seed's draws).
    Reconfigure(Vec<NodeId>),
}

/// Message kinds a [`Action::DropKind`] may pick (as `paxos_core::Message::kind` names them).
const KINDS: [&str; 7] = [
    "prepare", "promise", "accept", "accepted", "decided", "nack", "chosen",
];

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Bounce { target, down_for } => {
                write!(
                    f,
                    "crash {target}, restart after {}ms",
                    down_for.as_millis()
                )
            }
            Action::Partition(a, b) => write!(f, "partition {a} <-> {b}"),
            Action::PartitionOneway(a, b) => write!(f, "partition {a} -> {b} (one-way)"),
            Action::Split(group) => {
                let names: Vec<String> = group.iter().map(ToString::to_string).collect();
                write!(f, "split off {{{}}}", names.join(", "))
            }
            Action::IsolateLeader => f.write_str("isolate the leader"),
            Action::Loss(p) => write!(f, "lose {:.0}% of messages", p * 100.0),
            Action::Duplicate(p) => write!(f, "duplicate {:.0}% of messages", p * 100.0),
            Action::Delay(p, max) => write!(
                f,
                "delay {:.0}% of messages by up to {}ms",
                p * 100.0,
                max.as_millis()
            ),
            Action::DropKind(a, b, kind) => write!(f, "lose every {kind} on {a} -> {b}"),
            Action::Heal => f.write_str("heal the network"),
            Action::Reconfigure(acceptors) => {
                let names: Vec<String> = acceptors.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "reconfigure: acceptors {{{}}}, the rest learners",
                    names.join(", ")
                )
            }
        }
    }
}

/// Everything random about one chaos run.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The seed it was drawn from (also the simulation's seed).
    pub seed: u64,
    /// Cluster size.
    pub nodes: u64,
    /// Elected leader or leaderless.
    pub leader_mode: LeaderMode,
    /// How decisions reach the learners: all-to-all or through the ballot's proposer.
    pub learners: LearnerStrategy,
    /// The workload proposes in instances `0..instances`.
    pub instances: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Network latency range and host scheduling.
    pub network: SimNetwork,
    /// Memory storage: how long a write takes to become durable.
    pub write_latency: Duration,
    /// Clock skew: nodes whose tick or timeouts differ from the shared config.
    pub skew: BTreeMap<NodeId, NodeOptions>,
    /// Faults, at times since the start of the run.
    pub faults: Vec<(Duration, Action)>,
    /// When the faults stop: the network heals, crashed nodes restart, clients stop.
    pub faults_end: Duration,
    /// Every node takes a snapshot of its key-value state machine every this many applied
    /// entries and compacts its log below it...
    pub snapshot_every: u64,
    /// ...keeping this many entries below the snapshot for cheap catch-up.
    pub snapshot_keep: u64,
    /// With membership changes in the timeline: the window (`max_instances_ahead`), which is
    /// also how far after a change the next epoch starts. 0: the default, and no changes.
    pub window: u64,
}

/// How many nodes may be down at once: a majority (so a quorum is lost for a while), never all.
pub fn max_down(nodes: u64) -> usize {
    let nodes = usize::try_from(nodes).unwrap_or(usize::MAX);
    majority(nodes).min(nodes.saturating_sub(1))
}

impl Schedule {
    /// Draw the schedule of `seed`; `nodes` fixes the cluster size (else drawn: 3, 5 or 7).
    pub fn draw(seed: u64, nodes: Option<u64>) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xC4A0_5C4E_D01E);
        let nodes = nodes.unwrap_or_else(|| match rng.gen_range(0..20) {
            0..=9 => 3,
            10..=16 => 5,
            _ => 7,
        });
        let ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
        let leader_mode = if rng.gen_bool(0.5) {
            LeaderMode::Elected
        } else {
            LeaderMode::Leaderless
        };
        let min_latency = Duration::from_micros(rng.gen_range(100..=1000));
        let network = SimNetwork {
            min_latency,
            max_latency: min_latency + Duration::from_micros(rng.gen_range(500..=8000)),
            random_order: rng.gen_bool(0.5),
        };
        let write_latency = if rng.gen_bool(0.2) {
            Duration::ZERO
        } else {
            Duration::from_micros(rng.gen_range(100..=3000))
        };
        let mut skew = BTreeMap::new();
        for &id in &ids {
            if rng.gen_bool(0.4) {
                skew.insert(
                    id,
                    NodeOptions {
                        tick_interval: Some(Duration::from_micros(rng.gen_range(700..=1500))),
                        phase_timeout_ticks: Some(rng.gen_range(30..=100)),
                        leader_timeout_ticks: Some(rng.gen_range(50..=90)),
                        ..NodeOptions::default()
                    },
                );
            }
        }
        let faults_end = Duration::from_millis(rng.gen_range(600..=2000));
        let mut faults = Vec::new();
        let mut at = Duration::from_millis(rng.gen_range(10..=100));
        while at < faults_end {
            let action = draw_action(&mut rng, &ids);
            faults.push((at, action));
            at += Duration::from_millis(rng.gen_range(20..=250));
        }
        let instances = rng.gen_range(10..=30);
        let clients = rng.gen_range(2..=5);
        // Drawn last so that adding it kept every other draw of a seed as it was.
        let learners = if rng.gen_bool(0.5) {
            LearnerStrategy::Leader
        } else {
            LearnerStrategy::AllToAll
        };
        // Small enough that every run takes several snapshots and lagging nodes install them.
        let snapshot_every = rng.gen_range(4..=24);
        let snapshot_keep = rng.gen_range(0..=8);
        // Membership changes, drawn after everything else for the same reason: one in three
        // runs demotes an acceptor to a learner and promotes it back (every node stays a
        // member, so every check of the run still covers every node), while faults play.
        let mut window = 0;
        if rng.gen_bool(1.0 / 3.0) {
            window = rng.gen_range(4..=64);
            let mut at = Duration::ZERO;
            for k in 0..rng.gen_range(1..=4u32) {
                at += Duration::from_millis(rng.gen_range(50..=400));
                let acceptors: Vec<NodeId> = match k % 2 {
                    0 => {
                        let out = ids[rng.gen_range(0..ids.len())];
                        ids.iter().copied().filter(|&n| n != out).collect()
                    }
                    _ => ids.clone(),
                };
                if at < faults_end {
                    let i = faults.partition_point(|(t, _)| *t <= at);
                    faults.insert(i, (at, Action::Reconfigure(acceptors)));
                }
            }
        }
        Schedule {
            seed,
            nodes,
            leader_mode,
            learners,
            instances,
            clients,
            network,
            write_latency,
            skew,
            faults,
            faults_end,
            snapshot_every,
            snapshot_keep,
            window,
        }
    }
}

fn draw_action(rng: &mut StdRng, ids: &[NodeId]) -> Action {
    let pick = |rng: &mut StdRng| ids[rng.gen_range(0..ids.len())];
    let two = |rng: &mut StdRng| {
        let a = pick(rng);
        let mut b = pick(rng);
        while b == a {
            b = pick(rng);
        }
        (a, b)
    };
    match rng.gen_range(0..100) {
        0..=29 => Action::Bounce {
            target: if rng.gen_bool(0.4) {
                Target::Leader
            } else {
                Target::Node(pick(rng))
            },
            down_for: Duration::from_millis(rng.gen_range(5..=500)),
        },
        30..=39 => {
            let (a, b) = two(rng);
            Action::Partition(a, b)
        }
        40..=49 => {
            let (a, b) = two(rng);
            Action::PartitionOneway(a, b)
        }
        50..=56 => {
            let size = rng.gen_range(1..=ids.len() / 2);
            let mut group: Vec<NodeId> = ids.to_vec();
            while group.len() > size {
                group.remove(rng.gen_range(0..group.len()));
            }
            Action::Split(group)
        }
        57..=64 => Action::IsolateLeader,
        65..=72 => Action::Loss(rng.gen_range(0.05..0.4)),
        73..=79 => Action::Duplicate(rng.gen_range(0.05..0.3)),
        80..=86 => Action::Delay(
            rng.gen_range(0.1..0.5),
            Duration::from_millis(rng.gen_range(5..=60)),
        ),
        87..=92 => {
            let (a, b) = two(rng);
            Action::DropKind(a, b, KINDS[rng.gen_range(0..KINDS.len())])
        }
        _ => Action::Heal,
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.leader_mode {
            LeaderMode::Elected => "elected leader",
            LeaderMode::Leaderless => "leaderless",
        };
        let learners = match self.learners {
            LearnerStrategy::Leader => "decisions via the leader",
            _ => "decisions all-to-all",
        };
        writeln!(
            f,
            "{} nodes, {mode}, {learners}, {} clients over instances 0..{}",
            self.nodes, self.clients, self.instances
        )?;
        writeln!(
            f,
            "network latency {}-{}us{}, write latency {}us",
            self.network.min_latency.as_micros(),
            self.network.max_latency.as_micros(),
            if self.network.random_order {
                ", hosts in random order"
            } else {
                ""
            },
            self.write_latency.as_micros()
        )?;
        writeln!(
            f,
            "key-value state machines, a snapshot every {} entries, {} entries kept below it",
            self.snapshot_every, self.snapshot_keep
        )?;
        if self.window > 0 {
            writeln!(
                f,
                "membership changes below; a window of {} instances (the hand-off distance)",
                self.window
            )?;
        }
        for (node, o) in &self.skew {
            writeln!(
                f,
                "clock skew {node}: tick {}us, phase timeout {} ticks, leader timeout {} ticks",
                o.tick_interval.unwrap_or_default().as_micros(),
                o.phase_timeout_ticks.unwrap_or_default(),
                o.leader_timeout_ticks.unwrap_or_default()
            )?;
        }
        for (at, action) in &self.faults {
            writeln!(f, "{:>6}ms {action}", at.as_millis())?;
        }
        write!(
            f,
            "{:>6}ms heal, restart every crashed node, then liveness",
            self.faults_end.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_schedule() {
        assert_eq!(Schedule::draw(42, None), Schedule::draw(42, None));
        assert_ne!(Schedule::draw(42, None), Schedule::draw(43, None));
    }

    /// About one seed in three changes the membership, within the fault timeline, with a
    /// window of its own; the timeline stays in time order.
    #[test]
    fn some_seeds_change_the_membership_in_time_order() {
        let schedules: Vec<Schedule> = (1..=60).map(|seed| Schedule::draw(seed, None)).collect();
        let changing = schedules
            .iter()
            .filter(|s| {
                s.faults
                    .iter()
                    .any(|(_, a)| matches!(a, Action::Reconfigure(_)))
            })
            .count();
        assert!(
            (10..=35).contains(&changing),
            "{changing} of 60 seeds change"
        );
        for s in &schedules {
            assert!(
                s.faults.windows(2).all(|w| w[0].0 <= w[1].0),
                "seed {}",
                s.seed
            );
            let changes = s
                .faults
                .iter()
                .any(|(_, a)| matches!(a, Action::Reconfigure(_)));
            assert!(
                !changes || s.window > 0,
                "seed {}: changes need a window",
                s.seed
            );
        }
    }

    #[test]
    fn a_majority_may_be_down_but_never_everyone() {
        assert_eq!(max_down(3), 2);
        assert_eq!(max_down(5), 3);
        assert_eq!(max_down(7), 4);
        assert_eq!(max_down(1), 0);
    }
}
