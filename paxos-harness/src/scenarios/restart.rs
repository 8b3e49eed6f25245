//! Crash-restart durability (issue: RocksDB storage): nodes crash and restart from their own
//! storage mid-run. Decisions already acknowledged are never lost or changed, and a restarted
//! proposer never reuses a ballot (seed 003 Q4). With `--storage rocksdb` the real files are
//! reopened.

use super::common::{DECIDE_WITHIN, propose_until_decided};
use super::{Scenario, n};
use crate::cluster::{BodyFuture, Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::invariants::Val;
use paxos_core::InstanceId;
use std::collections::BTreeMap;

const RUNS: u32 = 5;
/// Values proposed per scenario.
const VALUES: u64 = 12;

fn scenario(
    name: &'static str,
    about: &'static str,
    spec: fn() -> ClusterSpec,
    body: fn(Cluster) -> BodyFuture,
) -> Scenario {
    Scenario::new("restart", RUNS, name, about, spec, body)
}

/// The restart suite.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "follower-bounce",
            "followers crash and restart between proposals; every acknowledged decision survives",
            || ClusterSpec::symmetric(5).elected(),
            |c| Box::pin(bounce(c, &[4, 5, 3])),
        ),
        scenario(
            "leader-bounce",
            "the leader crashes and restarts mid-run; clients move to the next leader",
            || ClusterSpec::symmetric(5).elected(),
            |c| Box::pin(bounce(c, &[1, 2])),
        ),
        scenario(
            "whole-cluster-restart",
            "every node crashes, then all restart: the decided log is intact and the log goes on",
            || ClusterSpec::symmetric(3).elected(),
            |c| Box::pin(whole_cluster(c)),
        ),
    ]
}

/// Propose on whichever node leads, retrying until decided; returns (instance, value).
async fn commit(c: &Cluster, instance: InstanceId, value: Val) -> Result<Val, Failure> {
    loop {
        let leader = c.leader().await?.unwrap_or(n(1));
        if let Some(v) = propose_until_decided(c, leader, instance, value).await? {
            return Ok(v);
        }
    }
}

/// Every live node must hold every acknowledged decision, unchanged. A node that was down (or
/// cut off while it reconnected) learns what it missed through catch-up, so each decision gets
/// the usual bound to arrive before the values are compared.
async fn acknowledged_survive(
    c: &Cluster,
    acked: &BTreeMap<InstanceId, Val>,
) -> Result<(), Failure> {
    for &instance in acked.keys() {
        c.await_decided(&c.live(), instance, DECIDE_WITHIN).await?;
    }
    for node in c.live() {
        let have = c.decisions(node).await?;
        for (i, v) in acked {
            ensure!(
                have.get(i).and_then(|e| e.value()) == Some(v),
                "{node} lost or changed acknowledged {i}={v} (has {:?})",
                have.get(i)
            );
        }
    }
    Ok(())
}

/// Values go into consecutive instances (the log has no holes: a value pinned far ahead would
/// have every instance below it filled with a no-op).
async fn bounce(c: Cluster, victims: &[u64]) -> Result<(), Failure> {
    let mut acked = BTreeMap::new();
    let mut victims = victims.iter().copied().cycle().take(victims.len());
    let mut next = (0u64..).map(InstanceId);
    for k in 0..VALUES {
        let instance = next.next().unwrap_or_default();
        let v = commit(&c, instance, 500 + k).await?;
        ensure!(v == 500 + k, "{instance} decided {v}, expected {}", 500 + k);
        acked.insert(instance, v);
        if k % 4 == 1
            && let Some(victim) = victims.next()
        {
            c.crash(n(victim)).await?;
            let while_down = next.next().unwrap_or_default();
            let more = commit(&c, while_down, 900 + k).await?;
            acked.insert(while_down, more);
            c.restart(n(victim)).await?;
            acknowledged_survive(&c, &acked).await?;
            c.say(format!(
                "n{victim} restarted and holds all {} acknowledged decisions",
                acked.len()
            ));
        }
    }
    acknowledged_survive(&c, &acked).await
}

async fn whole_cluster(c: Cluster) -> Result<(), Failure> {
    let mut acked = BTreeMap::new();
    for k in 0..4 {
        acked.insert(InstanceId(k), commit(&c, InstanceId(k), 700 + k).await?);
    }
    let nodes = c.spec().nodes();
    for &node in &nodes {
        c.crash(node).await?;
    }
    for &node in &nodes {
        c.restart(node).await?;
    }
    acknowledged_survive(&c, &acked).await?;
    for k in 4..8 {
        acked.insert(InstanceId(k), commit(&c, InstanceId(k), 700 + k).await?);
    }
    acknowledged_survive(&c, &acked).await
}
