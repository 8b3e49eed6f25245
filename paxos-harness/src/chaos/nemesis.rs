//! The nemesis: plays a [`Schedule`]'s fault timeline against a running [`Cluster`].
//!
//! Crashes go through [`Cluster::crash`] / [`Cluster::restart`] (applied by the turmoil driver
//! between steps), network faults through the cluster's [`crate::faults::Faults`]. At the end
//! of the timeline it heals the network and restarts every crashed node, so the liveness phase
//! starts from a whole cluster.

use super::schedule::{Action, Schedule, Target, max_down};
use crate::cluster::{Cluster, Failure};
use paxos_core::{LeaderMode, MemberChange, NodeId};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// How long the nemesis waits for a change to be in force before it plays on.
const RECONFIGURE_WAIT: Duration = Duration::from_millis(100);

/// The node that leads now: the leader most live nodes trust (elected mode), or the live node
/// whose proposer holds the highest ballot (leaderless). `None` if nobody answers.
pub(super) async fn current_leader(c: &Cluster) -> Option<NodeId> {
    if c.spec().config.leader_mode == LeaderMode::Elected {
        let leader = c.leader().await.ok().flatten()?;
        return c.live().contains(&leader).then_some(leader);
    }
    let mut best = None;
    for n in c.live() {
        let Ok(handle) = c.node(n).await else {
            continue;
        };
        if let Ok(status) = handle.status().await
            && best.is_none_or(|(b, _)| status.ballot > b)
        {
            best = Some((status.ballot, n));
        }
    }
    best.map(|(_, n)| n)
}

/// Play `schedule`'s faults from `start` until `faults_end`, then heal and restart everyone.
/// Stops early (returning `Ok`) once the observer has seen a violation.
///
/// # Errors
/// A crash or restart the cluster could not carry out.
pub(super) async fn run(c: &Cluster, schedule: &Schedule, start: Instant) -> Result<(), Failure> {
    let all = c.spec().nodes();
    let limit = max_down(schedule.nodes);
    // Pending restarts: (when, node), earliest first.
    let mut restarts: BTreeSet<(Duration, NodeId)> = BTreeSet::new();
    let mut faults = schedule.faults.iter().peekable();
    loop {
        let next_fault = faults.peek().map(|(at, _)| *at);
        let next_restart = restarts.first().map(|(at, _)| *at);
        let next = match (next_fault, next_restart) {
            (Some(f), Some(r)) => f.min(r),
            (Some(f), None) => f,
            (None, Some(r)) => r,
            (None, None) => break,
        };
        if next >= schedule.faults_end {
            break;
        }
        tokio::time::sleep_until(start + next).await;
        if !c.observer().violations().is_empty() {
            return Ok(());
        }
        if next_restart == Some(next) {
            if let Some((_, node)) = restarts.pop_first() {
                c.restart(node).await?;
            }
            continue;
        }
        let Some((at, action)) = faults.next() else {
            break;
        };
        apply(c, action, *at, limit, &mut restarts, &all).await?;
    }
    tokio::time::sleep_until(start + schedule.faults_end).await;
    c.say("nemesis: heal the network and restart every crashed node");
    c.faults().heal();
    for node in all {
        if !c.live().contains(&node) {
            c.restart(node).await?;
        }
    }
    Ok(())
}

async fn apply(
    c: &Cluster,
    action: &Action,
    at: Duration,
    limit: usize,
    restarts: &mut BTreeSet<(Duration, NodeId)>,
    all: &[NodeId],
) -> Result<(), Failure> {
    let faults = c.faults();
    match action {
        Action::Bounce { target, down_for } => {
            let node = match target {
                Target::Node(n) => Some(*n),
                Target::Leader => current_leader(c).await,
            };
            let live = c.live();
            match node {
                Some(n) if live.contains(&n) && all.len() - live.len() < limit => {
                    c.say(format!("nemesis: {action} (hits {n})"));
                    c.crash(n).await?;
                    restarts.insert((at + *down_for, n));
                }
                _ => c.say(format!(
                    "nemesis: {action}: skipped (target down or too many down)"
                )),
            }
        }
        Action::Reconfigure(acceptors) => reconfigure(c, action, acceptors, all).await,
        Action::IsolateLeader => match current_leader(c).await {
            Some(leader) => {
                c.say(format!("nemesis: isolate the leader {leader}"));
                faults.isolate(leader, all.iter().copied());
            }
            None => c.say("nemesis: isolate the leader: no leader, skipped"),
        },
        other => {
            c.say(format!("nemesis: {other}"));
            match other {
                Action::Partition(a, b) => faults.partition(*a, *b),
                Action::PartitionOneway(a, b) => faults.partition_oneway(*a, *b),
                Action::Split(group) => {
                    for &a in group {
                        for &b in all.iter().filter(|b| !group.contains(b)) {
                            faults.partition(a, b);
                        }
                    }
                }
                Action::Loss(rate) => each_link(all, |a, b| faults.set_loss(a, b, *rate)),
                Action::Duplicate(rate) => {
                    each_link(all, |a, b| faults.set_duplicate(a, b, *rate));
                }
                Action::Delay(rate, max) => {
                    each_link(all, |a, b| faults.set_delay(a, b, *rate, *max));
                }
                Action::DropKind(a, b, kind) => faults.drop_kind(*a, *b, kind),
                Action::Heal => faults.heal(),
                Action::Bounce { .. } | Action::IsolateLeader | Action::Reconfigure(_) => {}
            }
        }
    }
    Ok(())
}

/// Ask the leader (or, leaderless, any live node) for the change, waiting a little for it to
/// be in force; a refusal (another change in flight, not the leader, the same configuration)
/// or a timeout is part of the run, not a failure: the change may still happen later.
async fn reconfigure(c: &Cluster, action: &Action, acceptors: &[NodeId], all: &[NodeId]) {
    let Some(via) = current_leader(c)
        .await
        .or_else(|| c.live().first().copied())
    else {
        c.say(format!("nemesis: {action}: nobody up, skipped"));
        return;
    };
    let learners = all.iter().copied().filter(|n| !acceptors.contains(n));
    let change = MemberChange::new(acceptors.iter().copied(), learners);
    let outcome = match c.node(via).await {
        Ok(handle) => match handle.reconfigure(change, RECONFIGURE_WAIT).await {
            Ok(m) => format!("in force: {m}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    c.say(format!("nemesis: {action} via {via}: {outcome}"));
}

fn each_link(all: &[NodeId], mut f: impl FnMut(NodeId, NodeId)) {
    for &a in all {
        for &b in all.iter().filter(|b| **b != a) {
            f(a, b);
        }
    }
}
