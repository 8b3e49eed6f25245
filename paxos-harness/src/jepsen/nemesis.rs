//! The jepsen nemesis: a seeded [`Schedule`] of faults against real node processes, and
//! [`play`], which applies it against the clock.
//!
//! The schedule is data, drawn from its seed before the run starts (same seed, same
//! schedule), so a run's log can print it and a failing run can be replayed. Its shape:
//! a quiet window, a fault window, the fault undone, a quiet window, ... Each fault is one of
//! - **kill**: SIGKILL a minority of the nodes, restart them when the window ends;
//! - **pause**: SIGSTOP a minority of the nodes, SIGCONT them when the window ends;
//! - **partition**: isolate one node, split the nodes into a minority and a majority, or a
//!   *bridge* (two halves that both see one middle node); healed when the window ends;
//! - **membership**: demote one node from acceptor to learner (a live membership change,
//!   through the leader), promote it back when the window ends: two epochs begin while the
//!   clients run.
//!
//! Fault windows never overlap, and each hits at most a minority, so a majority can make
//! progress during every fault and the whole cluster between them. Everything is undone
//! before the last quiet period, so the run ends on a healthy cluster.
//!
//! [`play`] applies a schedule to any [`FaultTarget`]; [`Live`] is the real one (node
//! processes and the link proxy).

use super::procs::{ProcError, Procs};
use super::proxy::{LinkProxy, ProxyError};
use crate::client::protocol::Roles;
use crate::client::reconfigure::{ReconfigureError, reconfigure};
use async_trait::async_trait;
use paxos_core::{NodeId, majority};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// One fault, or the undoing of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the node's process.
    Kill(NodeId),
    /// Start the killed node's process again.
    Restart(NodeId),
    /// SIGSTOP the node's process.
    Pause(NodeId),
    /// SIGCONT the paused node's process.
    Resume(NodeId),
    /// Cut every link between nodes that share no side (see [`LinkProxy::partition`]).
    Partition(Vec<BTreeSet<NodeId>>),
    /// Heal every link.
    Heal,
    /// Change the membership so that the node is a learner, every other node an acceptor.
    Demote(NodeId),
    /// Change it back: every node an acceptor.
    Promote(NodeId),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(n) => write!(f, "kill {n}"),
            Fault::Restart(n) => write!(f, "restart {n}"),
            Fault::Pause(n) => write!(f, "pause {n}"),
            Fault::Resume(n) => write!(f, "resume {n}"),
            Fault::Partition(sides) => {
                let sides: Vec<String> = sides
                    .iter()
                    .map(|side| {
                        let names: Vec<String> = side.iter().map(ToString::to_string).collect();
                        format!("{{{}}}", names.join(","))
                    })
                    .collect();
                write!(f, "partition {}", sides.join(" | "))
            }
            Fault::Heal => f.write_str("heal"),
            Fault::Demote(n) => write!(f, "demote {n} to a learner"),
            Fault::Promote(n) => write!(f, "promote {n} back to an acceptor"),
        }
    }
}

/// One fault at its offset from the start of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When, since the start of the run.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

impl fmt::Display for Step {
    /// `12.5s kill n3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}s {}", self.at.as_secs_f64(), self.fault)
    }
}

/// How many faults of each kind (undoings not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Node kills.
    pub kills: u64,
    /// Node pauses.
    pub pauses: u64,
    /// Partitions.
    pub partitions: u64,
    /// Nodes demoted (and promoted back: two membership changes each).
    pub demotions: u64,
}

impl FaultCounts {
    fn count(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill(_) => self.kills += 1,
            Fault::Pause(_) => self.pauses += 1,
            Fault::Partition(_) => self.partitions += 1,
            Fault::Demote(_) => self.demotions += 1,
            Fault::Restart(_) | Fault::Resume(_) | Fault::Heal | Fault::Promote(_) => {}
        }
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} kills, {} pauses, {} partitions, {} demotions",
            self.kills, self.pauses, self.partitions, self.demotions
        )
    }
}

/// Which faults a schedule may draw, and its rhythm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NemesisOptions {
    /// Kill (and restart) nodes.
    pub kill: bool,
    /// Pause (and resume) nodes.
    pub pause: bool,
    /// Partition (and heal) the network.
    pub partition: bool,
    /// Demote a node to a learner (and promote it back).
    pub membership: bool,
    /// A quiet window lasts between these two (inclusive); one comes first.
    pub quiet: (Duration, Duration),
    /// A fault lasts between these two before it is undone.
    pub fault: (Duration, Duration),
    /// At least this long at the end with everything healthy.
    pub final_quiet: Duration,
}

impl Default for NemesisOptions {
    fn default() -> Self {
        NemesisOptions {
            kill: true,
            pause: true,
            partition: true,
            membership: true,
            quiet: (Duration::from_secs(2), Duration::from_secs(6)),
            fault: (Duration::from_secs(1), Duration::from_secs(5)),
            final_quiet: Duration::from_secs(5),
        }
    }
}

/// The kinds of fault window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Kill,
    Pause,
    Partition,
    Membership,
}

/// A run's faults, drawn from its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The nodes it targets.
    pub nodes: BTreeSet<NodeId>,
    /// The run's length.
    pub duration: Duration,
    /// The faults and their undoings, in time order.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Draw the faults of a run of `duration` over `nodes` from `seed`. Kinds the options
    /// disable, or that these nodes cannot take (kills and pauses need a minority of at least
    /// one node, partitions a majority to leave connected, and a demotion two acceptors left:
    /// all need 3 nodes or more),
    /// are never drawn; with none left, or no room for a window, the schedule is empty.
    pub fn draw(
        seed: u64,
        nodes: &BTreeSet<NodeId>,
        duration: Duration,
        options: &NemesisOptions,
    ) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4A3E_5E45_0FFA_1700);
        let ids: Vec<NodeId> = nodes.iter().copied().collect();
        let minority = max_faulty(ids.len());
        let kinds: Vec<Kind> = [
            (options.kill && minority > 0, Kind::Kill),
            (options.pause && minority > 0, Kind::Pause),
            (options.partition && ids.len() >= 3, Kind::Partition),
            (options.membership && ids.len() >= 3, Kind::Membership),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect();
        let mut steps = Vec::new();
        let end = duration.saturating_sub(options.final_quiet);
        let mut at = draw_between(&mut rng, options.quiet);
        while !kinds.is_empty() {
            let lasts = draw_between(&mut rng, options.fault);
            let undo_at = at + lasts;
            if undo_at > end {
                break;
            }
            let (faults, undos) = match kinds[rng.gen_range(0..kinds.len())] {
                Kind::Kill => {
                    let hit = some_nodes(&mut rng, &ids, minority);
                    (
                        hit.iter().copied().map(Fault::Kill).collect(),
                        hit.iter().copied().map(Fault::Restart).collect(),
                    )
                }
                Kind::Pause => {
                    let hit = some_nodes(&mut rng, &ids, minority);
                    (
                        hit.iter().copied().map(Fault::Pause).collect(),
                        hit.iter().copied().map(Fault::Resume).collect(),
                    )
                }
                Kind::Partition => (vec![draw_partition(&mut rng, &ids)], vec![Fault::Heal]),
                Kind::Membership => {
                    let node = ids[rng.gen_range(0..ids.len())];
                    (vec![Fault::Demote(node)], vec![Fault::Promote(node)])
                }
            };
            steps.extend(faults.into_iter().map(|fault| Step { at, fault }));
            steps.extend(undos.into_iter().map(|fault| Step { at: undo_at, fault }));
            at = undo_at + draw_between(&mut rng, options.quiet);
        }
        Schedule {
            seed,
            nodes: nodes.clone(),
            duration,
            steps,
        }
    }

    /// How many faults of each kind it holds.
    pub fn counts(&self) -> FaultCounts {
        let mut counts = FaultCounts::default();
        for step in &self.steps {
            counts.count(&step.fault);
        }
        counts
    }
}

impl fmt::Display for Schedule {
    /// One step per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nemesis seed {} over {} nodes for {:.1}s: {}",
            self.seed,
            self.nodes.len(),
            self.duration.as_secs_f64(),
            self.counts()
        )?;
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}

/// How many of `nodes` may be down or paused at once: a minority, so the rest is a majority.
pub fn max_faulty(nodes: usize) -> usize {
    nodes - majority(nodes).min(nodes)
}

fn draw_between(rng: &mut StdRng, (low, high): (Duration, Duration)) -> Duration {
    if high <= low {
        return low;
    }
    rng.gen_range(low..=high)
}

/// Between 1 and `most` distinct nodes, in id order.
fn some_nodes(rng: &mut StdRng, ids: &[NodeId], most: usize) -> Vec<NodeId> {
    let count = rng.gen_range(1..=most.max(1));
    let mut hit: Vec<NodeId> = ids.choose_multiple(rng, count).copied().collect();
    hit.sort();
    hit
}

/// Isolate one node, split off the largest minority, or a bridge; for 3 nodes or more, each
/// leaves a majority connected.
fn draw_partition(rng: &mut StdRng, ids: &[NodeId]) -> Fault {
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(rng);
    let sides = match rng.gen_range(0..3) {
        // Isolate one node.
        0 => vec![
            BTreeSet::from([shuffled[0]]),
            shuffled[1..].iter().copied().collect(),
        ],
        // The largest minority against the rest.
        1 => {
            let small = max_faulty(ids.len()).max(1);
            vec![
                shuffled[..small].iter().copied().collect(),
                shuffled[small..].iter().copied().collect(),
            ]
        }
        // A bridge: the middle node is in both halves.
        _ => {
            let middle = shuffled[0];
            let rest = &shuffled[1..];
            let half = rest.len() / 2;
            let mut left: BTreeSet<NodeId> = rest[..half].iter().copied().collect();
            let mut right: BTreeSet<NodeId> = rest[half..].iter().copied().collect();
            left.insert(middle);
            right.insert(middle);
            vec![left, right]
        }
    };
    Fault::Partition(sides)
}

/// Where [`play`] applies faults: the node processes and the network, or a test's stand-in.
#[async_trait]
pub trait FaultTarget: Send {
    /// Apply one fault now.
    ///
    /// # Errors
    /// The fault could not be applied; [`play`] logs it and goes on.
    async fn apply(&mut self, fault: &Fault) -> Result<(), FaultError>;
}

/// A fault [`Live`] could not apply.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// On a node process.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// On the network.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A membership change.
    #[error("membership change: {0}")]
    Reconfigure(#[from] ReconfigureError),
}

/// How long a demotion or promotion may take (a leader to find, the change to decide, the
/// window to fill) before it is reported failed.
const RECONFIGURE_WITHIN: Duration = Duration::from_secs(10);

/// The real target: node processes and the link proxy between them.
pub struct Live<'a> {
    /// The node processes.
    pub procs: &'a mut Procs,
    /// The links between them.
    pub links: &'a LinkProxy,
    /// The nodes' client addresses (where membership changes are asked).
    pub clients: &'a [String],
}

impl Live<'_> {
    /// Every node of the run an acceptor except `learner`.
    async fn reconfigure(&self, learner: Option<NodeId>) -> Result<(), ReconfigureError> {
        let all = self.procs.nodes().map(|n| n.0);
        let roles = Roles {
            acceptors: all.filter(|n| Some(NodeId(*n)) != learner).collect(),
            learners: learner.map(|n| n.0).into_iter().collect(),
            addresses: Default::default(),
        };
        reconfigure(self.clients, &roles, RECONFIGURE_WITHIN, None).await?;
        Ok(())
    }
}

#[async_trait]
impl FaultTarget for Live<'_> {
    async fn apply(&mut self, fault: &Fault) -> Result<(), FaultError> {
        match fault {
            Fault::Kill(n) => self.procs.kill(*n).await?,
            Fault::Restart(n) => self.procs.restart(*n)?,
            Fault::Pause(n) => self.procs.pause(*n)?,
            Fault::Resume(n) => self.procs.resume(*n)?,
            Fault::Partition(sides) => self.links.partition(sides)?,
            Fault::Heal => self.links.heal_all(),
            Fault::Demote(n) => self.reconfigure(Some(*n)).await?,
            Fault::Promote(_) => self.reconfigure(None).await?,
        }
        Ok(())
    }
}

/// What [`play`] did.
#[derive(Debug, Default)]
pub struct NemesisReport {
    /// The faults applied (undoings not counted; failed ones neither).
    pub applied: FaultCounts,
    /// Steps that failed, and why (e.g. killing a node that had died by itself).
    pub failed: Vec<(Step, String)>,
}

/// Apply `schedule`'s steps to `target`, each at `start + step.at` (at once if that is past),
/// logging each with `tracing`. A step that fails is logged and recorded, and the schedule
/// goes on: its later steps undo the faults, and stopping halfway would leave them in place.
///
/// Dropping the future stops the schedule where it is; then make the cluster whole with
/// [`Procs::recover_all`] and [`LinkProxy::heal_all`].
pub async fn play(
    schedule: &Schedule,
    start: Instant,
    target: &mut dyn FaultTarget,
) -> NemesisReport {
    let mut report = NemesisReport::default();
    for step in &schedule.steps {
        tokio::time::sleep_until(start + step.at).await;
        match target.apply(&step.fault).await {
            Ok(()) => {
                tracing::info!(late = ?start.elapsed().saturating_sub(step.at), "nemesis: {step}");
                report.applied.count(&step.fault);
            }
            Err(e) => {
                tracing::warn!(error = %e, "nemesis: {step} failed");
                report.failed.push((step.clone(), e.to_string()));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jepsen::procs::ProcSpec;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn ids(n: u64) -> BTreeSet<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    fn minute() -> Duration {
        Duration::from_secs(60)
    }

    /// Walk the schedule, tracking who is down, paused and partitioned; check that every
    /// step is legal (no kill of a dead node, no restart of a live one...), that a minority
    /// at most is faulty at any time, that every partition leaves a majority connected, and
    /// that everything is undone before the final quiet period.
    fn check(schedule: &Schedule, options: &NemesisOptions) {
        let n = schedule.nodes.len();
        let mut down = BTreeSet::new();
        let mut paused = BTreeSet::new();
        let mut partitioned = false;
        let mut demoted = None;
        let mut last = Duration::ZERO;
        for step in &schedule.steps {
            assert!(step.at >= last, "out of order at {step}");
            last = step.at;
            match &step.fault {
                Fault::Kill(x) => assert!(down.insert(*x), "{step}: already down"),
                Fault::Restart(x) => assert!(down.remove(x), "{step}: not down"),
                Fault::Pause(x) => assert!(paused.insert(*x), "{step}: already paused"),
                Fault::Resume(x) => assert!(paused.remove(x), "{step}: not paused"),
                Fault::Partition(sides) => {
                    assert!(!partitioned, "{step}: already partitioned");
                    partitioned = true;
                    assert!(
                        sides.iter().any(|s| s.len() >= majority(n)),
                        "{step}: no majority side"
                    );
                    let placed: BTreeSet<NodeId> = sides.iter().flatten().copied().collect();
                    assert_eq!(placed, schedule.nodes, "{step}: every node in a side");
                }
                Fault::Heal => {
                    assert!(partitioned, "{step}: nothing to heal");
                    partitioned = false;
                }
                Fault::Demote(x) => {
                    assert!(demoted.replace(*x).is_none(), "{step}: one at a time");
                    assert!(n >= 3, "{step}: two acceptors must be left");
                }
                Fault::Promote(x) => assert_eq!(demoted.take(), Some(*x), "{step}"),
            }
            let faulty = down.union(&paused).count();
            assert!(faulty <= max_faulty(n), "{step}: {faulty} of {n} faulty");
            // One fault window at a time.
            let kinds = [
                !down.is_empty(),
                !paused.is_empty(),
                partitioned,
                demoted.is_some(),
            ];
            assert!(kinds.iter().filter(|k| **k).count() <= 1, "{step}: overlap");
        }
        assert!(down.is_empty() && paused.is_empty() && !partitioned && demoted.is_none());
        assert!(last + options.final_quiet <= schedule.duration, "{last:?}");
    }

    #[test]
    fn a_seed_names_one_schedule() {
        let o = NemesisOptions::default();
        let a = Schedule::draw(7, &ids(5), minute(), &o);
        assert_eq!(a, Schedule::draw(7, &ids(5), minute(), &o));
        assert_ne!(a.steps, Schedule::draw(8, &ids(5), minute(), &o).steps);
        assert!(a.steps.len() >= 8, "{a}");
    }

    #[test]
    fn every_schedule_is_legal_and_ends_healthy() {
        let o = NemesisOptions::default();
        let mut total = FaultCounts::default();
        for n in 1..=7 {
            for seed in 0..200 {
                let s = Schedule::draw(seed, &ids(n), minute(), &o);
                check(&s, &o);
                let c = s.counts();
                total.kills += c.kills;
                total.pauses += c.pauses;
                total.partitions += c.partitions;
                total.demotions += c.demotions;
            }
        }
        assert!(
            total.kills > 0 && total.pauses > 0 && total.partitions > 0 && total.demotions > 0,
            "{total}"
        );
    }

    #[test]
    fn small_clusters_take_only_what_they_can() {
        let o = NemesisOptions::default();
        for seed in 0..50 {
            assert!(Schedule::draw(seed, &ids(1), minute(), &o).steps.is_empty());
            // Two nodes have no minority to fault and no majority to leave connected.
            assert!(Schedule::draw(seed, &ids(2), minute(), &o).steps.is_empty());
            assert!(!Schedule::draw(seed, &ids(3), minute(), &o).steps.is_empty());
        }
    }

    #[test]
    fn options_choose_the_kinds() {
        let only = |kill, pause, partition| NemesisOptions {
            kill,
            pause,
            partition,
            membership: false,
            ..NemesisOptions::default()
        };
        for seed in 0..50 {
            let c = Schedule::draw(seed, &ids(5), minute(), &only(false, true, false)).counts();
            assert!(c.pauses > 0 && c.kills == 0 && c.partitions == 0, "{c}");
            let c = Schedule::draw(seed, &ids(5), minute(), &only(true, false, true)).counts();
            assert!(c.pauses == 0 && c.kills + c.partitions > 0, "{c}");
            let c = Schedule::draw(seed, &ids(5), minute(), &NemesisOptions::default()).counts();
            assert!(c.kills + c.pauses + c.partitions + c.demotions > 0, "{c}");
            let demotions = NemesisOptions {
                membership: true,
                ..only(false, false, false)
            };
            let c = Schedule::draw(seed, &ids(5), minute(), &demotions).counts();
            assert!(
                c.demotions > 0 && c.kills + c.pauses + c.partitions == 0,
                "{c}"
            );
            let none = only(false, false, false);
            assert!(
                Schedule::draw(seed, &ids(5), minute(), &none)
                    .steps
                    .is_empty()
            );
        }
    }

    #[test]
    fn partitions_take_every_shape() {
        let o = NemesisOptions {
            kill: false,
            pause: false,
            membership: false,
            ..NemesisOptions::default()
        };
        let mut shapes = BTreeSet::new();
        for seed in 0..50 {
            for step in Schedule::draw(seed, &ids(5), minute(), &o).steps {
                if let Fault::Partition(sides) = step.fault {
                    let mut sizes: Vec<usize> = sides.iter().map(BTreeSet::len).collect();
                    sizes.sort();
                    shapes.insert(sizes);
                }
            }
        }
        // Isolated node, minority | majority, bridge.
        assert_eq!(shapes, BTreeSet::from([vec![1, 4], vec![2, 3], vec![3, 3]]));
    }

    #[test]
    fn too_short_a_run_gets_no_faults() {
        let o = NemesisOptions::default();
        let s = Schedule::draw(1, &ids(5), Duration::from_secs(6), &o);
        assert!(s.steps.is_empty(), "{s}");
    }

    #[test]
    fn faults_print_for_the_log() {
        let step = |ms, fault| Step {
            at: Duration::from_millis(ms),
            fault,
        };
        assert_eq!(
            step(12_500, Fault::Kill(NodeId(3))).to_string(),
            "12.5s kill n3"
        );
        let halves = Fault::Partition(vec![
            [1, 2].map(NodeId).into(),
            [3, 4, 5].map(NodeId).into(),
        ]);
        assert_eq!(
            step(14_000, halves).to_string(),
            "14.0s partition {n1,n2} | {n3,n4,n5}"
        );
        assert_eq!(step(0, Fault::Heal).to_string(), "0.0s heal");
        assert_eq!(
            step(1_000, Fault::Demote(NodeId(2))).to_string(),
            "1.0s demote n2 to a learner"
        );
        let s = Schedule::draw(3, &ids(5), minute(), &NemesisOptions::default());
        assert_eq!(s.to_string().lines().count(), s.steps.len() + 1);
    }

    /// Records what it is asked to apply, and when; fails on request.
    struct Recorder {
        start: Instant,
        applied: Vec<(Duration, Fault)>,
        fail: Option<Fault>,
    }

    #[async_trait]
    impl FaultTarget for Recorder {
        async fn apply(&mut self, fault: &Fault) -> Result<(), FaultError> {
            self.applied.push((self.start.elapsed(), fault.clone()));
            if self.fail.as_ref() == Some(fault) {
                return Err(ProcError::UnknownNode(NodeId(0)).into());
            }
            Ok(())
        }
    }

    fn handmade(steps: &[(u64, Fault)]) -> Schedule {
        Schedule {
            seed: 0,
            nodes: ids(3),
            duration: Duration::from_secs(1),
            steps: steps
                .iter()
                .map(|(ms, fault)| Step {
                    at: Duration::from_millis(*ms),
                    fault: fault.clone(),
                })
                .collect(),
        }
    }

    /// Each step is applied in order, not before its time; a failing step is reported and
    /// the schedule goes on.
    #[tokio::test(flavor = "current_thread")]
    async fn play_applies_steps_on_time_and_goes_on_after_a_failure() {
        let s = handmade(&[
            (0, Fault::Kill(NodeId(1))),
            (40, Fault::Restart(NodeId(1))),
            (80, Fault::Pause(NodeId(2))),
            (120, Fault::Resume(NodeId(2))),
        ]);
        let start = Instant::now();
        let mut target = Recorder {
            start,
            applied: Vec::new(),
            fail: Some(Fault::Pause(NodeId(2))),
        };
        let report = play(&s, start, &mut target).await;
        let faults: Vec<Fault> = target.applied.iter().map(|(_, f)| f.clone()).collect();
        let expected: Vec<Fault> = s.steps.iter().map(|st| st.fault.clone()).collect();
        assert_eq!(faults, expected);
        for ((when, _), step) in target.applied.iter().zip(&s.steps) {
            assert!(*when >= step.at, "{step} applied at {when:?}");
        }
        assert_eq!(
            report.applied,
            FaultCounts {
                kills: 1,
                pauses: 0,
                partitions: 0,
                demotions: 0
            }
        );
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0.fault, Fault::Pause(NodeId(2)));
    }

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// Whether a fresh connection `from -> to` through the proxy echoes within a moment.
    async fn link_works(links: &LinkProxy, from: u64, to: u64) -> bool {
        let Some(addr) = links.addr(NodeId(from), NodeId(to)) else {
            return false;
        };
        let Ok(mut conn) = TcpStream::connect(addr).await else {
            return false;
        };
        if conn.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_millis(200), conn.read_exact(&mut buf));
        matches!(read.await, Ok(Ok(_)))
    }

    /// The live target: `sleep` children stand in for nodes, echo servers for their
    /// listeners. One schedule applies faults, a second undoes them.
    #[tokio::test(flavor = "current_thread")]
    async fn play_drives_processes_and_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut procs = Procs::new();
        let mut real = BTreeMap::new();
        for i in 1..=3 {
            let spec = ProcSpec::new(
                format!("n{i}"),
                "sleep",
                ["30"],
                dir.path().join(format!("n{i}.log")),
            );
            procs.start(NodeId(i), spec).expect("start");
            real.insert(NodeId(i), echo_server().await);
        }
        let links = LinkProxy::start(&real).await.expect("proxy");
        let first_pid = procs.get(NodeId(1)).and_then(|p| p.pid());

        let faults = handmade(&[
            (0, Fault::Kill(NodeId(1))),
            (0, Fault::Pause(NodeId(2))),
            (
                10,
                Fault::Partition(vec![
                    BTreeSet::from([NodeId(3)]),
                    BTreeSet::from([NodeId(1), NodeId(2)]),
                ]),
            ),
        ]);
        let mut live = Live {
            procs: &mut procs,
            links: &links,
            clients: &[],
        };
        let report = play(&faults, Instant::now(), &mut live).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.applied, faults.counts());
        let n1 = procs.get_mut(NodeId(1)).expect("n1");
        assert!(!n1.is_running());
        assert!(procs.get(NodeId(2)).is_some_and(|p| p.is_paused()));
        assert_eq!(links.cut_links().len(), 2);
        assert!(!link_works(&links, 3, 1).await);
        assert!(link_works(&links, 1, 2).await);

        let undo = handmade(&[
            (0, Fault::Restart(NodeId(1))),
            (0, Fault::Resume(NodeId(2))),
            (10, Fault::Heal),
            // Restarting a running node is an error, reported; the schedule goes on.
            (20, Fault::Restart(NodeId(1))),
        ]);
        let mut live = Live {
            procs: &mut procs,
            links: &links,
            clients: &[],
        };
        let report = play(&undo, Instant::now(), &mut live).await;
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert_eq!(report.applied, FaultCounts::default());
        let n1 = procs.get_mut(NodeId(1)).expect("n1");
        assert!(n1.is_running());
        assert_ne!(n1.pid(), first_pid);
        assert!(procs.get(NodeId(2)).is_some_and(|p| !p.is_paused()));
        assert!(links.cut_links().is_empty());
        assert!(link_works(&links, 3, 1).await);
    }
}
