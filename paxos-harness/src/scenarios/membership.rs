//! Live membership change (issue 18): nodes join, leave and are replaced while a client keeps
//! writing, and nothing acknowledged is lost. Each scenario drives the changes through
//! [`Cluster::reconfigure`] (which follows "not the leader" to the leader) beside a steady
//! `Load`, then checks that every member of the final configuration holds every
//! acknowledged write at its instance, and that the observer's checkers (which follow the
//! configuration: a quorum is a majority of the acceptors of the ballot's epoch) saw no
//! violation.

use super::common::DECIDE_WITHIN;
use super::{Scenario, n};
use crate::chaos::Break;
use crate::cluster::{BodyFuture, Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::invariants::Val;
use paxos_core::{InstanceId, MemberChange, Membership, NodeError, NodeId, ReconfigError};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

const RUNS: u32 = 3;
/// How long one change may take to be in force.
const CHANGE_WITHIN: Duration = Duration::from_secs(20);
/// A client's timeout for one append before it retries (the same request, so at most once).
const APPEND_TIMEOUT: Duration = Duration::from_millis(500);
/// Writes acknowledged before the first change and after the last one, at least.
const SETTLE_WRITES: usize = 5;

fn scenario(
    name: &'static str,
    about: &'static str,
    spec: fn() -> ClusterSpec,
    body: fn(Cluster) -> BodyFuture,
) -> Scenario {
    Scenario::new("membership", RUNS, name, about, spec, body)
}

/// The membership suite.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "grow-3-to-5",
            "n4 and n5 join as learners, catch up, then vote: 3 acceptors become 5 under load",
            || ClusterSpec::symmetric(3).elected().with_joiners(2),
            |c| Box::pin(grow(c)),
        ),
        scenario(
            "shrink-5-to-3",
            "n4 and n5 leave under load; the three left decide alone and the two stop accepting",
            || ClusterSpec::symmetric(5).elected(),
            |c| Box::pin(shrink(c)),
        ),
        scenario(
            "replace-dead-node",
            "n3 dies; n4 joins as a learner and takes its place in one more change",
            || ClusterSpec::symmetric(3).elected().with_joiners(1),
            |c| Box::pin(replace_dead(c)),
        ),
        scenario(
            "leader-crash-mid-change",
            "the leader crashes right after proposing a change; the next leader finishes or redoes it",
            || ClusterSpec::symmetric(5).elected(),
            |c| Box::pin(leader_crash_mid_change(c)),
        ),
        scenario(
            "join-by-snapshot",
            "n4 joins after the members compacted their logs: it installs a snapshot, catches up the tail under load, and becomes a voter",
            || {
                ClusterSpec::symmetric(3)
                    .elected()
                    .with_kv(10, 5, false)
                    .with_joiners(1)
            },
            |c| Box::pin(join_by_snapshot(c)),
        )
        .catches(Break::LossySnapshots),
        scenario(
            "concurrent-change-refused",
            "a second change while one is in flight is refused with a typed error, not queued",
            || ClusterSpec::symmetric(3).elected().with_joiners(1),
            |c| Box::pin(concurrent_change(c)),
        ),
        scenario(
            "removed-node-restarted",
            "n5, down while it was removed, restarts on its old data: it learns it is out and the cluster carries on",
            || ClusterSpec::symmetric(5).elected(),
            |c| Box::pin(removed_node_restarted(c)),
        ),
        scenario(
            "id-reuse-refused",
            "an id removed earlier is refused when a change names it again",
            || ClusterSpec::symmetric(5).elected(),
            |c| Box::pin(id_reuse(c)),
        ),
    ]
}

fn ids(xs: &[u64]) -> Vec<NodeId> {
    xs.iter().copied().map(n).collect()
}

/// A client writing steadily while changes happen: each value through a member of the
/// configuration in force, retried (as the same request) until acknowledged.
#[derive(Default)]
struct Load {
    acked: RefCell<BTreeMap<InstanceId, Val>>,
    stop: Cell<bool>,
}

impl Load {
    /// Write until told to stop; then return.
    async fn run(&self, c: &Cluster) -> Result<(), Failure> {
        let session = c.node(n(1)).await?.session().await?;
        let mut value: Val = 10_000;
        while !self.stop.get() {
            value += 1;
            let id = session.next_request();
            let mut tries = 0u32;
            let instance = loop {
                let via = self.client_node(c, tries).await;
                match c.append(via, id, value, APPEND_TIMEOUT).await {
                    Ok(instance) => break instance,
                    Err(_) if tries < 200 => tries += 1,
                    Err(e) => {
                        return Err(Failure(format!("write {value} never acknowledged: {e}")));
                    }
                }
                c.sleep(Duration::from_millis(10)).await;
            };
            self.acked.borrow_mut().insert(instance, value);
        }
        Ok(())
    }

    /// A live member to write through, rotating on retries (a removed or crashed one cannot
    /// take writes).
    async fn client_node(&self, c: &Cluster, tries: u32) -> NodeId {
        let live = c.live();
        let mut members = Vec::new();
        for &node in &live {
            if let Ok(m) = c.membership(node).await
                && m.contains(node)
            {
                members.push(node);
            }
        }
        let pool = if members.is_empty() { &live } else { &members };
        pool.get(tries as usize % pool.len().max(1))
            .copied()
            .unwrap_or(n(1))
    }

    fn count(&self) -> usize {
        self.acked.borrow().len()
    }

    /// Wait until `more` further writes are acknowledged.
    async fn after(&self, _c: &Cluster, more: usize) -> Result<(), Failure> {
        let target = self.count() + more;
        crate::wait::eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
            Ok(match self.count() >= target {
                true => crate::wait::Look::Done(()),
                false => crate::wait::Look::Wait(format!(
                    "only {} of {target} writes acknowledged",
                    self.count()
                )),
            })
        })
        .await
    }
}

/// Run `changes` beside a [`Load`]: writes are acknowledged before, during and after them.
/// Then every live member of the configuration in force holds every acknowledged write, and
/// all of them agree on the log.
async fn under_load<F>(c: &Cluster, changes: F) -> Result<Membership, Failure>
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    let load = Load::default();
    let driven = async {
        let done = async {
            load.after(c, SETTLE_WRITES).await?;
            let before = load.count();
            changes.await?;
            load.after(c, SETTLE_WRITES).await?;
            c.say(format!(
                "{} writes acknowledged, {} of them during the changes",
                load.count(),
                load.count().saturating_sub(before + SETTLE_WRITES)
            ));
            Ok::<(), Failure>(())
        }
        .await;
        // The load stops however the changes ended, so a failure is reported, not waited on.
        load.stop.set(true);
        done
    };
    let (wrote, drove) = futures::join!(load.run(c), driven);
    // Whichever failed first says why; a load that fails stops the run too.
    drove?;
    wrote?;
    let acked = load.acked.borrow().clone();
    let some_member = c.live().into_iter().next().unwrap_or(n(1));
    let membership = c.membership(some_member).await?;
    let members: Vec<NodeId> = c
        .live()
        .into_iter()
        .filter(|node| membership.contains(*node))
        .collect();
    // Wait on each member's frontier (cheap to ask), then read its log once: polling whole
    // logs would starve a node catching up under a long run over a fast transport.
    let Some((&last, _)) = acked.last_key_value() else {
        return Ok(membership);
    };
    for &member in &members {
        crate::wait::eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
            let frontier = c.node(member).await?.status().await?.first_undecided;
            Ok(match frontier > last {
                true => crate::wait::Look::Done(()),
                false => crate::wait::Look::Wait(format!(
                    "{member} decided up to {frontier}, not yet {last}"
                )),
            })
        })
        .await?;
        // Below its log start a member holds a snapshot instead of entries: the observer
        // checks that its state digest there is everyone's.
        let log_start = c.node(member).await?.status().await?.log_start;
        let log = c.decisions(member).await?;
        for (&instance, &value) in acked.range(log_start..) {
            let entry = log.get(&instance);
            ensure!(
                entry.and_then(|e| e.value()) == Some(&value),
                "acknowledged write {value} at {instance} is lost on {member}: it holds {entry:?}"
            );
        }
    }
    // With a state machine, every member holds the same state at every instance, snapshots
    // installed by joiners included.
    if let Some(digests) = &c.spec().digests {
        digests.check().map_err(Failure)?;
    }
    Ok(membership)
}

/// The new configuration's acceptors are `acceptors`, and every live node in `nodes` is in
/// its epoch.
async fn settled(
    c: &Cluster,
    m: &Membership,
    acceptors: &[u64],
    nodes: &[u64],
) -> Result<(), Failure> {
    ensure!(
        m.acceptors == ids(acceptors).into_iter().collect(),
        "acceptors are {:?}, expected {acceptors:?}",
        m.acceptors
    );
    let live: Vec<NodeId> = ids(nodes)
        .into_iter()
        .filter(|node| c.live().contains(node))
        .collect();
    c.await_epoch(&live, m.epoch, CHANGE_WITHIN).await
}

async fn grow(c: Cluster) -> Result<(), Failure> {
    let end = under_load(&c, async {
        let learners = MemberChange::new(ids(&[1, 2, 3]), ids(&[4, 5]));
        let m = c.reconfigure(n(1), &learners, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3], &[1, 2, 3, 4, 5]).await?;
        let voters = MemberChange::new(ids(&[1, 2, 3, 4, 5]), []);
        let m = c.reconfigure(n(1), &voters, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5]).await
    })
    .await?;
    ensure!(
        end.epoch == 2,
        "two changes make epoch 2, not {}",
        end.epoch
    );
    Ok(())
}

async fn shrink(c: Cluster) -> Result<(), Failure> {
    let end = under_load(&c, async {
        let three = MemberChange::new(ids(&[1, 2, 3]), []);
        let m = c.reconfigure(n(1), &three, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3], &[1, 2, 3, 4, 5]).await
    })
    .await?;
    for gone in [4, 5] {
        let status = c.node(n(gone)).await?.status().await?;
        ensure!(
            !status.membership.contains(n(gone)),
            "n{gone} still thinks it is a member"
        );
    }
    ensure!(
        end.retired.contains(&n(4)) && end.retired.contains(&n(5)),
        "n4, n5 retired"
    );
    Ok(())
}

async fn replace_dead(c: Cluster) -> Result<(), Failure> {
    under_load(&c, async {
        c.crash(n(3)).await?;
        let learner = MemberChange::new(ids(&[1, 2, 3]), ids(&[4]));
        let m = c.reconfigure(n(1), &learner, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3], &[1, 2, 4]).await?;
        let replaced = MemberChange::new(ids(&[1, 2, 4]), []);
        let m = c.reconfigure(n(1), &replaced, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 4], &[1, 2, 4]).await
    })
    .await?;
    Ok(())
}

async fn leader_crash_mid_change(c: Cluster) -> Result<(), Failure> {
    let four = MemberChange::new(ids(&[1, 2, 3, 4]), []);
    let end = under_load(&c, async {
        let leader = crate::wait::eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
            Ok(match c.leader().await? {
                Some(l) => crate::wait::Look::Done(l),
                None => crate::wait::Look::Wait("no leader".into()),
            })
        })
        .await?;
        // Propose on the leader and crash it before the change is in force.
        let handle = c.node(leader).await?;
        let proposed = handle.reconfigure(four.clone(), Duration::from_millis(1));
        let early = proposed.await;
        ensure!(
            matches!(early, Err(NodeError::TimedOut { .. })),
            "the change was in force within 1 ms: {early:?}"
        );
        c.crash(leader).await?;
        c.say(format!(
            "crashed the leader {leader} with the change in flight"
        ));
        let via = if leader == n(1) { n(2) } else { n(1) };
        // The next leader finds the change decided (it is in force, or already being handed
        // over), or not: then it is proposed again.
        let m = loop {
            match c.try_reconfigure(via, &four, CHANGE_WITHIN).await? {
                Ok(m) => break m,
                Err(ReconfigError::Unchanged(_)) => break c.membership(via).await?,
                Err(ReconfigError::ChangeInProgress(_) | ReconfigError::Superseded) => {
                    c.sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(Failure(format!("change refused: {e}"))),
            }
        };
        let survivors: Vec<u64> = [1, 2, 3, 4, 5]
            .into_iter()
            .filter(|&x| n(x) != leader)
            .collect();
        settled(&c, &m, &[1, 2, 3, 4], &survivors).await?;
        c.restart(leader).await?;
        c.await_epoch(&[leader], m.epoch, CHANGE_WITHIN).await
    })
    .await?;
    ensure!(end.epoch == 1, "one change made, epoch {}", end.epoch);
    Ok(())
}

async fn join_by_snapshot(c: Cluster) -> Result<(), Failure> {
    // Enough writes first that every member snapshotted and compacted below where n4 starts.
    let session = c.node(n(1)).await?.session().await?;
    for v in 0..40 {
        c.append(n(1), session.next_request(), v, DECIDE_WITHIN)
            .await?;
    }
    let restores = || c.spec().digests.as_ref().map_or(0, |d| d.restores());
    let before = restores();
    under_load(&c, async {
        let learner = MemberChange::new(ids(&[1, 2, 3]), ids(&[4]));
        let m = c.reconfigure(n(1), &learner, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3], &[1, 2, 3, 4]).await?;
        let log_start = c.node(n(4)).await?.status().await?.log_start;
        ensure!(
            log_start > InstanceId(0),
            "n4 caught up without a snapshot (its log starts at {log_start})"
        );
        let voter = MemberChange::new(ids(&[1, 2, 3, 4]), []);
        let m = c.reconfigure(n(1), &voter, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3, 4], &[1, 2, 3, 4]).await
    })
    .await?;
    ensure!(restores() > before, "no snapshot was installed");
    Ok(())
}

async fn concurrent_change(c: Cluster) -> Result<(), Failure> {
    under_load(&c, async {
        let first = MemberChange::new(ids(&[1, 2, 3]), ids(&[4]));
        let second = MemberChange::new(ids(&[1, 2]), []);
        // Find the leader by asking with the first change; then race the second against it
        // on the same node.
        let leader = loop {
            match c.leader().await? {
                Some(l) => break l,
                None => c.sleep(Duration::from_millis(10)).await,
            }
        };
        let handle = c.node(leader).await?;
        let (a, b) = futures::join!(
            handle.reconfigure(first.clone(), CHANGE_WITHIN),
            handle.reconfigure(second, CHANGE_WITHIN)
        );
        let refused = matches!(
            b,
            Err(NodeError::Reconfig(ReconfigError::ChangeInProgress(1)))
        );
        ensure!(refused, "the second change was not refused: {b:?}");
        let m = match a {
            Ok(m) => m,
            // Leadership moved at the wrong moment: do the first change through the cluster.
            Err(_) => c.reconfigure(leader, &first, CHANGE_WITHIN).await?,
        };
        settled(&c, &m, &[1, 2, 3], &[1, 2, 3, 4]).await
    })
    .await?;
    Ok(())
}

async fn removed_node_restarted(c: Cluster) -> Result<(), Failure> {
    under_load(&c, async {
        c.crash(n(5)).await?;
        let four = MemberChange::new(ids(&[1, 2, 3, 4]), []);
        let m = c.reconfigure(n(1), &four, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3, 4], &[1, 2, 3, 4]).await?;
        let leader = c.leader().await?;
        c.restart(n(5)).await?;
        // It catches up far enough to see that it is out, and proposes nothing.
        c.await_epoch(&[n(5)], m.epoch, CHANGE_WITHIN).await?;
        let status = c.node(n(5)).await?.status().await?;
        ensure!(
            !status.membership.contains(n(5)),
            "n5 still thinks it is a member"
        );
        ensure!(
            c.leader().await? == leader,
            "the restarted removed node moved the leadership"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

async fn id_reuse(c: Cluster) -> Result<(), Failure> {
    under_load(&c, async {
        let three = MemberChange::new(ids(&[1, 2, 3]), []);
        let m = c.reconfigure(n(1), &three, CHANGE_WITHIN).await?;
        settled(&c, &m, &[1, 2, 3], &[1, 2, 3]).await?;
        let back = MemberChange::new(ids(&[1, 2, 3]), ids(&[4]));
        let answer = c.try_reconfigure(n(1), &back, CHANGE_WITHIN).await?;
        ensure!(
            answer == Err(ReconfigError::IdReused(n(4))),
            "n4 came back: {answer:?}"
        );
        Ok(())
    })
    .await?;
    Ok(())
}
