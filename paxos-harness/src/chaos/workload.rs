//! The chaos workload: concurrent clients while the nemesis plays, then the liveness phase.
//!
//! 1. **Faults.** `clients` clients, each with a session, until the faults stop. Every
//!    operation is one of two kinds, drawn from the seed:
//!    - *pinned*: a unique value proposed in a random instance of `0..instances` (Elixir's
//!      `propose_at`) on a random live node (mostly the leader), with a short timeout;
//!    - *append*: a unique value appended as one request of the client's session, through a
//!      random live node (a follower forwards it), retried under the same id on another node
//!      after a timeout. Each append is recorded in the run's [`History`]: when it was
//!      invoked, and when and where it was acknowledged.
//!
//!    Every decision a node reports to a client is checked against the chosen value, and an
//!    acknowledged append must be applied at the acknowledging node (every instance below it
//!    decided): acknowledgements come in log order.
//! 2. **Liveness.** Once the network is healed and every node restarted, every instance the
//!    clients touched is driven to a decision and every append still in flight to an
//!    acknowledgement; every node must decide every instance up to the highest one any node
//!    decided (no hole), all within [`LIVENESS_BOUND`] of simulated time (openraft's
//!    heal-then-converge; stateright's "eventually"). A miss fails the seed with
//!    `liveness: ...`.
//! 3. **History.** The appends must be linearizable, each acknowledged one in every node's log
//!    at its instance (from the node's log start: below it lies its snapshot), and no request
//!    applied twice ([`History::check`]).
//! 4. **State.** Every node runs the reference key-value state machine ([`crate::kv`]) and
//!    snapshots and compacts every few entries (unless `--no-snapshots`): every node held the
//!    same state at every instance it reached, by applying or by installing a snapshot.

use super::nemesis::{self, current_leader};
use super::schedule::Schedule;
use crate::cluster::{Body, Cluster, Failure};
use crate::history::{History, NodeLog};
use crate::invariants::Val;
use crate::wait::{Look, eventually};
use paxos_core::{ClientId, Entry, InstanceId, LeaderMode, NodeId, Outcome, ProposalId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// After the faults stop, every touched instance must be decided everywhere within this much
/// simulated time.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);

/// How long one attempt of an append waits before it is retried elsewhere.
const APPEND_ATTEMPT: Duration = Duration::from_millis(300);

/// State the clients share (the body runs on one simulated thread, hence `RefCell`).
struct Shared<'a> {
    cluster: &'a Cluster,
    schedule: &'a Schedule,
    rng: RefCell<StdRng>,
    touched: RefCell<BTreeSet<InstanceId>>,
    history: RefCell<History<Val>>,
}

/// An append a client has not had acknowledged yet.
#[derive(Clone, Copy, Debug)]
struct Pending {
    id: ProposalId,
    value: Val,
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

    /// One attempt of `append` through `node`: true once acknowledged (and then recorded,
    /// and checked: every instance below it is chosen already, as it must be once the
    /// acknowledging node has decided them all).
    async fn append_once(
        &self,
        client: u64,
        node: NodeId,
        append: Pending,
        timeout: Duration,
    ) -> Result<bool, Failure> {
        let Ok(instance) = self
            .cluster
            .append(node, append.id, append.value, timeout)
            .await
        else {
            return Ok(false);
        };
        self.history
            .borrow_mut()
            .returned(client, Some(instance), Instant::now());
        let entry = Entry::Value {
            id: append.id,
            value: append.value,
        };
        self.cluster.observer().reported(node, instance, entry);
        if let Some(hole) = self.cluster.observer().unchosen_below(instance) {
            return Err(Failure(format!(
                "{node} acknowledged {} at {instance} while nothing was chosen in {hole}: out of log order",
                append.id
            )));
        }
        Ok(true)
    }

    /// A session for client `k`, from whichever live node answers.
    async fn session(&self) -> Option<ClientId> {
        let node = self.random_live()?;
        let handle = self.cluster.node(node).await.ok()?;
        handle.session().await.ok().map(|s| s.client())
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
        history: RefCell::new(History::default()),
    };
    let clients = (0..schedule.clients).map(|k| client(&shared, k, start));
    let (nemesis, pending) = futures::join!(
        nemesis::run(c, schedule, start),
        futures::future::join_all(clients)
    );
    nemesis?;
    let pending: Vec<(u64, Pending)> = pending
        .into_iter()
        .enumerate()
        .filter_map(|(k, p)| p.transpose().map(|p| p.map(|p| (k as u64, p))))
        .collect::<Result<_, _>>()?;
    if shared.violated() {
        return Ok(()); // the verdict reports the violation
    }
    liveness(&shared, &pending).await?;
    check_history(&shared).await
}

/// Client `k` until the faults stop; returns the append it still has in flight, if any.
async fn client(s: &Shared<'_>, k: u64, start: Instant) -> Result<Option<Pending>, Failure> {
    let end = start + s.schedule.faults_end;
    let mut n = 0;
    let mut session: Option<ClientId> = None;
    let mut pending: Option<Pending> = None;
    while Instant::now() < end && !s.violated() {
        let Some(node) = s.target(0.7).await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        // An append in flight is retried (same id) before anything else.
        let append = pending.is_some() || s.rng.borrow_mut().gen_bool(0.5);
        if append {
            if session.is_none() {
                session = s.session().await;
            }
            let Some(client) = session else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let op = match pending {
                Some(op) => op,
                None => {
                    n += 1;
                    let op = Pending {
                        id: ProposalId { client, seq: n },
                        value: (k + 1) * 1_000_000 + n,
                    };
                    s.history
                        .borrow_mut()
                        .invoke(k, op.id, op.value, Instant::now())?;
                    op
                }
            };
            pending = (!s.append_once(k, node, op, APPEND_ATTEMPT).await?).then_some(op);
        } else {
            let instance = InstanceId(s.rng.borrow_mut().gen_range(0..s.schedule.instances));
            let value = (k + 1) * 1_000_000 + 500_000 + n;
            n += 1;
            s.touched.borrow_mut().insert(instance);
            let timeout = s.sleep_ms(30, 300);
            s.propose(node, instance, value, timeout).await;
        }
        tokio::time::sleep(s.sleep_ms(0, 20)).await;
    }
    Ok(pending)
}

async fn liveness(s: &Shared<'_>, pending: &[(u64, Pending)]) -> Result<(), Failure> {
    let c = s.cluster;
    let deadline = Instant::now() + LIVENESS_BOUND;
    let touched: Vec<InstanceId> = s.touched.borrow().iter().copied().collect();
    c.say(format!(
        "liveness: drive {} touched instances to a decision on every node, {} appends to an answer",
        touched.len(),
        pending.len()
    ));
    let drives = touched.iter().map(|&i| drive(s, i, deadline));
    let answers = pending
        .iter()
        .map(|&(k, op)| acknowledge(s, k, op, deadline));
    let (drives, answers) = futures::join!(
        futures::future::join_all(drives),
        futures::future::join_all(answers)
    );
    for done in drives.into_iter().chain(answers) {
        done.map_err(|e| Failure(format!("liveness: {} after the faults stopped", e.0)))?;
    }
    let all = c.spec().nodes();
    // Every touched instance is decided somewhere now, so at or below the top: no hole means
    // every node decided it (and may have compacted it into its snapshot since).
    no_holes(c, &all, deadline).await?;
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

/// Every node decides every instance up to the highest one any node decided, by `deadline`.
async fn no_holes(c: &Cluster, all: &[NodeId], deadline: Instant) -> Result<(), Failure> {
    let mut top = None;
    for &node in all {
        top = top.max(c.decisions(node).await?.keys().next_back().copied());
        // A node that compacted its whole log holds no decision, but decided below this.
        let status = c.node(node).await?.status().await?;
        top = top.max(status.first_undecided.0.checked_sub(1).map(InstanceId));
    }
    let Some(top) = top else { return Ok(()) };
    for &node in all {
        let within = deadline.saturating_duration_since(Instant::now());
        eventually(within, Duration::from_millis(5), || async {
            let status = c.node(node).await?.status().await?;
            Ok(match status.first_undecided > top {
                true => Look::Done(()),
                false => Look::Wait(format!(
                    "liveness: {node} has a hole at {} below {top}, decided elsewhere",
                    status.first_undecided
                )),
            })
        })
        .await?;
    }
    Ok(())
}

/// Retry append `op` of client `k` until it is acknowledged, by `deadline`.
async fn acknowledge(
    s: &Shared<'_>,
    k: u64,
    op: Pending,
    deadline: Instant,
) -> Result<(), Failure> {
    let within = deadline.saturating_duration_since(Instant::now());
    eventually(within, Duration::from_millis(5), || async {
        if let Some(node) = s.target(0.9).await
            && s.append_once(k, node, op, APPEND_ATTEMPT).await?
        {
            return Ok(Look::Done(()));
        }
        Ok(Look::Wait(format!("{} was never acknowledged", op.id)))
    })
    .await
}

/// The history of the appends against every node's applied log.
async fn check_history(s: &Shared<'_>) -> Result<(), Failure> {
    let c = s.cluster;
    let mut logs = Vec::new();
    for node in c.spec().nodes() {
        let handle = c.node(node).await?;
        let (log, _) = handle.read(InstanceId(0), usize::MAX).await?;
        // The cluster still runs (a leaderless node may yet decide its last proposals and
        // compact), so the start is read after the log: it only grows, so whatever lies above
        // it was in the log read (chaos seed 8751: a start read first was one compaction old).
        let start = handle.status().await?.log_start;
        logs.push((start, log));
    }
    let history = s.history.borrow();
    let (acked, open) = history.counts();
    c.say(format!(
        "history: {acked} appends acknowledged, {open} indeterminate; checking linearizability"
    ));
    let logs = logs.iter().map(|(start, log)| NodeLog {
        start: *start,
        decisions: log,
    });
    if let Some(anomaly) = history.check(logs) {
        return Err(Failure(format!("history: {anomaly}")));
    }
    check_states(c)
}

/// Where the nodes run state machines: every node held the same state at every instance it
/// reached, by applying or by installing a snapshot.
fn check_states(c: &Cluster) -> Result<(), Failure> {
    let Some(digests) = &c.spec().digests else {
        return Ok(());
    };
    digests
        .check()
        .map_err(|e| Failure(format!("state: {e}")))?;
    c.say(format!(
        "state: equal on every node at every instance; {} snapshots restored",
        digests.restores()
    ));
    Ok(())
}

/// Re-propose in `instance` until some node reports a decision, until `deadline`.
async fn drive(s: &Shared<'_>, instance: InstanceId, deadline: Instant) -> Result<(), Failure> {
    let within = deadline.saturating_duration_since(Instant::now());
    eventually(within, Duration::from_millis(5), || async {
        let Some(node) = s.target(0.9).await else {
            return Ok(Look::Wait(format!("no node up to propose in {instance}")));
        };
        let status = s.cluster.node(node).await?.status().await?;
        // Refused as compacted: decided there long ago, and in its snapshot now.
        if status.log_start > instance {
            return Ok(Look::Done(()));
        }
        // A pin more than a window above the node's decided prefix is refused (a client's
        // pin there was, and never reached the protocol): fill the log up to it first, as a
        // user of `propose_at` would, proposing in the lowest instance the node lacks.
        let window = s.cluster.spec().config.max_instances_ahead;
        let at = match instance.0 > status.first_undecided.0.saturating_add(window) {
            true => status.first_undecided,
            false => instance,
        };
        let value = 9_000_000_000 + at.0;
        if s.propose(node, at, value, Duration::from_millis(200))
            .await
            .is_some()
            && at == instance
        {
            return Ok(Look::Done(()));
        }
        Ok(Look::Wait(format!("no proposal in {instance} was decided")))
    })
    .await
}
