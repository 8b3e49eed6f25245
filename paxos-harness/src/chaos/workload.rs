//! The chaos workload: concurrent clients while the nemesis plays, then the liveness phase.
//!
//! 1. **Faults.** `clients` clients each propose unique values in random instances of
//!    `0..instances` on random live nodes (in elected mode mostly on the leader, sometimes on a
//!    follower, which answers `Aborted`), with short timeouts, until the faults stop. Every
//!    decision a node reports to a client is checked against the chosen value.
//! 2. **Liveness.** Once the network is healed and every node restarted, every instance the
//!    clients touched is driven to a decision (a client re-proposes until one is reported) and
//!    must be decided by *every* node within [`LIVENESS_BOUND`] of simulated time
//!    (openraft's heal-then-converge; stateright's "eventually"). A miss fails the seed with
//!    `liveness: ...`. Finally every node's `decisions()` is checked against the chosen values.

use super::nemesis::{self, current_leader};
use super::schedule::Schedule;
use crate::cluster::{Body, Cluster, Failure};
use crate::invariants::Val;
use crate::wait::{Look, eventually};
use paxos_core::{Entry, InstanceId, LeaderMode, NodeId, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// After the faults stop, every touched instance must be decided everywhere within this much
/// simulated time.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);

/// State the clients share (the body runs on one simulated thread, hence `RefCell`).
struct Shared<'a> {
    cluster: &'a Cluster,
    schedule: &'a Schedule,
    rng: RefCell<StdRng>,
    touched: RefCell<BTreeSet<InstanceId>>,
}

impl Shared<'_> {
    fn violated(&self) -> bool {
        !self.cluster.observer().violations().is_empty()
    }

    fn random_live(&self) -> Option<NodeId> {
        let live = self.cluster.live();
        if live.is_empty() {
            return None;
        }
        let i = self.rng.borrow_mut().gen_range(0..live.len());
        Some(live[i])
    }

    /// Where a client sends its next proposal.
    async fn target(&self, prefer_leader: f64) -> Option<NodeId> {
        let elected = self.schedule.leader_mode == LeaderMode::Elected;
        // Draw first: the `RefCell` borrow must not live across the await below.
        let to_leader = elected && self.rng.borrow_mut().gen_bool(prefer_leader);
        if to_leader && let Some(l) = current_leader(self.cluster).await {
            return Some(l);
        }
        self.random_live()
    }

    /// Propose `value` in `instance` on `node`; record what the node reports.
    async fn propose(
        &self,
        node: NodeId,
        instance: InstanceId,
        value: Val,
        timeout: Duration,
    ) -> Option<Entry<Val>> {
        match self
            .cluster
            .propose_at(node, instance, value, timeout)
            .await
        {
            Ok(Outcome::Decided(entry)) => {
                self.cluster
                    .observer()
                    .reported(node, instance, entry.clone());
                Some(entry)
            }
            // Aborted (not the leader), timed out, or the node crashed under us: try again.
            _ => None,
        }
    }

    fn sleep_ms(&self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.borrow_mut().gen_range(lo..=hi))
    }
}

/// The scenario body of one chaos run.
pub(super) fn body(schedule: Schedule) -> Body {
    Box::new(move |c| Box::pin(async move { run(&c, &schedule).await }))
}

async fn run(c: &Cluster, schedule: &Schedule) -> Result<(), Failure> {
    let start = Instant::now();
    let shared = Shared {
        cluster: c,
        schedule,
        rng: RefCell::new(StdRng::seed_from_u64(schedule.seed ^ 0x00C1_1E47)),
        touched: RefCell::new(BTreeSet::new()),
    };
    let clients = (0..schedule.clients).map(|k| client(&shared, k, start));
    let (nemesis, ()) = futures::join!(nemesis::run(c, schedule, start), async {
        futures::future::join_all(clients).await;
    });
    nemesis?;
    if shared.violated() {
        return Ok(()); // the verdict reports the violation
    }
    liveness(&shared).await
}

async fn client(s: &Shared<'_>, k: u64, start: Instant) {
    let end = start + s.schedule.faults_end;
    let mut n = 0;
    while Instant::now() < end && !s.violated() {
        let instance = InstanceId(s.rng.borrow_mut().gen_range(0..s.schedule.instances));
        let Some(node) = s.target(0.7).await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let value = (k + 1) * 1_000_000 + n;
        n += 1;
        s.touched.borrow_mut().insert(instance);
        let timeout = s.sleep_ms(30, 300);
        s.propose(node, instance, value, timeout).await;
        tokio::time::sleep(s.sleep_ms(0, 20)).await;
    }
}

async fn liveness(s: &Shared<'_>) -> Result<(), Failure> {
    let c = s.cluster;
    let deadline = Instant::now() + LIVENESS_BOUND;
    let touched: Vec<InstanceId> = s.touched.borrow().iter().copied().collect();
    c.say(format!(
        "liveness: drive {} touched instances to a decision on every node",
        touched.len()
    ));
    let drives = touched.iter().map(|&i| drive(s, i, deadline));
    for decided in futures::future::join_all(drives).await {
        decided.map_err(|e| Failure(format!("liveness: {} after the faults stopped", e.0)))?;
    }
    let all = c.spec().nodes();
    for &instance in &touched {
        let left = deadline.saturating_duration_since(Instant::now());
        c.await_decided(&all, instance, left)
            .await
            .map_err(|e| Failure(format!("liveness: {}", e.0)))?;
    }
    for node in all {
        let decisions = c.decisions(node).await?;
        for instance in &touched {
            if let Some(entry) = decisions.get(instance) {
                c.observer().reported(node, *instance, entry.clone());
            }
        }
    }
    Ok(())
}

/// Re-propose in `instance` until some node reports a decision, until `deadline`.
async fn drive(s: &Shared<'_>, instance: InstanceId, deadline: Instant) -> Result<(), Failure> {
    let value = 9_000_000_000 + instance.0;
    let within = deadline.saturating_duration_since(Instant::now());
    eventually(within, Duration::from_millis(5), || async {
        if let Some(node) = s.target(0.9).await
            && s.propose(node, instance, value, Duration::from_millis(200))
                .await
                .is_some()
        {
            return Ok(Look::Done(()));
        }
        Ok(Look::Wait(format!("no proposal in {instance} was decided")))
    })
    .await
}
