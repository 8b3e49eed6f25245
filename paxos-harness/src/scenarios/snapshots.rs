//! Snapshots and compaction (issue 16), as named scenarios of the theory suite, on whatever
//! storage and network the run uses. Every node runs the reference key-value state machine
//! ([`crate::kv`]) and snapshots every 10 entries (keeping 5 below); after each scenario every
//! node must hold the same state at every instance it reached, by applying or by installing a
//! snapshot, and the next append must be applied everywhere.
//!
//! | scenario | the schedule | what must happen |
//! |---|---|---|
//! | `snapshot-catch-up` | n3 is down and cut off while 60 appends go through | its peers compacted what it missed, so it installs a snapshot, in pieces, and is back in step: its applied index reaches the leader's and its log starts above i0 |
//! | `snapshot-receiver-crash` | as above; n3 crashes again while a snapshot is coming to it in 16-byte pieces | the half-received snapshot is gone (pieces are held in memory, the install is one atomic save); restarted, n3 installs one and is back in step |
//! | `snapshot-sender-crash` | as above, but only n1 can reach n3; n1 crashes while it sends the snapshot, and n2 is let through | n3 gives up on n1's pieces, gets the snapshot from n2 and is back in step; so is n1 after its restart |
//! | `compact-while-partitioned` | n3 keeps running but is cut off from both peers while 60 appends go through (the leader compacts meanwhile) | healed, n3 installs a snapshot and is back in step |

use super::Scenario;
use super::common::DECIDE_WITHIN;
use super::n;
use super::theory::scenario;
use crate::chaos::Break;
use crate::cluster::{Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::wait::{Look, eventually};
use paxos_core::{InstanceId, NodeId, NodeStatus};
use std::time::Duration;

/// The snapshot scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "snapshot-catch-up",
            "issue 16: a node down for 60 appends (snapshots every 10) catches up by snapshot, in pieces, and holds the same state as its peers",
            || spec(64),
            |c| Box::pin(snapshot_catch_up(c)),
        )
        .catches(Break::LossySnapshots),
        scenario(
            "snapshot-receiver-crash",
            "issue 16: a node crashes while a snapshot is coming to it; restarted, it installs one (never half of one) and is back in step",
            || spec(16),
            |c| Box::pin(receiver_crash(c)),
        )
        .catches(Break::LossySnapshots),
        scenario(
            "snapshot-sender-crash",
            "issue 16: the only peer that can reach a lagging node crashes while sending it a snapshot; the node gets one from the other peer",
            || spec(16),
            |c| Box::pin(sender_crash(c)),
        )
        .catches(Break::LossySnapshots),
        scenario(
            "compact-while-partitioned",
            "issue 16: the leader compacts while a running follower is cut off; healed, the follower installs a snapshot and is back in step",
            || spec(64),
            |c| Box::pin(compact_while_partitioned(c)),
        )
        .catches(Break::LossySnapshots),
    ]
}

/// Three nodes running the key-value state machine, snapshots every 10 entries (5 kept),
/// sent in pieces of `chunk` bytes.
fn spec(chunk: usize) -> ClusterSpec {
    ClusterSpec::symmetric(3)
        .elected()
        .with_kv(10, 5, false)
        .tune(|c| c.snapshot_chunk_bytes = chunk)
}

/// How many appends go through while a node is away: six snapshots' worth.
const MISSED: u64 = 60;

/// An operation of the reference state machine for step `k`: puts, reads and compare-and-sets
/// over 16 keys.
fn op(k: u64) -> u64 {
    (k << 6) | ((k % 16) << 2) | (k % 3)
}

async fn status(c: &Cluster, node: NodeId) -> Result<NodeStatus, Failure> {
    Ok(c.node(node).await?.status().await?)
}

/// Snapshots restored so far, over all nodes.
fn restores(c: &Cluster) -> usize {
    c.spec().digests.as_ref().map_or(0, |d| d.restores())
}

/// `MISSED` appends through `via`, in one session.
async fn appends(c: &Cluster, via: NodeId) -> Result<(), Failure> {
    let session = c.node(via).await?.session().await?;
    for k in 0..MISSED {
        c.append(via, session.next_request(), op(k), DECIDE_WITHIN)
            .await?;
    }
    Ok(())
}

/// Take n3 down and cut it off while `MISSED` appends go through n1: what its peers send it
/// meanwhile is lost (a transport would otherwise replay its queue when it is back).
async fn n3_misses_appends(c: &Cluster) -> Result<(), Failure> {
    c.crash(n(3)).await?;
    c.faults().isolate(n(3), c.spec().nodes());
    appends(c, n(1)).await
}

/// Wait until `node` is receiving a snapshot from a peer. Every message to it is held back
/// up to 20 ms first, so that the transfer (one piece in flight at a time) lasts long enough
/// to be caught in the middle on a real network too.
async fn until_receiving(c: &Cluster, node: NodeId) -> Result<(), Failure> {
    for peer in c.spec().nodes().into_iter().filter(|&p| p != node) {
        c.faults()
            .set_delay(peer, node, 1.0, Duration::from_millis(20));
    }
    eventually(DECIDE_WITHIN, Duration::from_millis(1), || async {
        Ok(match status(c, node).await?.receiving_snapshot {
            Some(meta) => {
                c.say(format!(
                    "{node} is receiving the snapshot below {}",
                    meta.index
                ));
                Look::Done(())
            }
            None => Look::Wait(format!("{node} never started receiving a snapshot")),
        })
    })
    .await
}

/// `node` reaches `leader`'s applied index, having installed a snapshot since `restores_before`
/// (its log no longer starts at i0).
async fn back_in_step(
    c: &Cluster,
    node: NodeId,
    leader: NodeId,
    restores_before: usize,
) -> Result<(), Failure> {
    let target = status(c, leader).await?.applied;
    eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
        let at = status(c, node).await?.applied;
        Ok(match at >= target {
            true => Look::Done(()),
            false => Look::Wait(format!(
                "{node} applied only below {at}, {leader} below {target}"
            )),
        })
    })
    .await?;
    ensure!(
        restores(c) > restores_before,
        "{node} caught up without installing a snapshot"
    );
    let log_start = status(c, node).await?.log_start;
    ensure!(
        log_start > InstanceId(0),
        "{node}'s log still starts at i0: it replayed the log, no snapshot"
    );
    c.say(format!(
        "{node} installed a snapshot and applied up to {leader}'s {target}; its log starts at {log_start}"
    ));
    Ok(())
}

/// In step: one more append through `via` is applied on every node, and every node held the
/// same state at every instance it reached.
async fn all_in_step(c: &Cluster, via: NodeId) -> Result<(), Failure> {
    let session = c.node(via).await?.session().await?;
    let later = c
        .append(via, session.next_request(), op(MISSED), DECIDE_WITHIN)
        .await?;
    for node in c.spec().nodes() {
        eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
            Ok(match status(c, node).await?.applied > later {
                true => Look::Done(()),
                false => Look::Wait(format!("{node} did not apply {later}")),
            })
        })
        .await?;
    }
    let digests = c
        .spec()
        .digests
        .as_ref()
        .ok_or(Failure("no state machines".into()))?;
    digests.check().map_err(Failure)?;
    c.say("every node holds the same state at every instance".to_string());
    Ok(())
}

async fn snapshot_catch_up(c: Cluster) -> Result<(), Failure> {
    n3_misses_appends(&c).await?;
    let before = restores(&c);
    c.restart(n(3)).await?;
    c.faults().heal();
    back_in_step(&c, n(3), n(1), before).await?;
    all_in_step(&c, n(3)).await
}

async fn receiver_crash(c: Cluster) -> Result<(), Failure> {
    n3_misses_appends(&c).await?;
    c.restart(n(3)).await?;
    c.faults().heal();
    until_receiving(&c, n(3)).await?;
    c.crash(n(3)).await?;
    c.faults().heal();
    c.say("n3 crashed in the middle of the transfer".to_string());
    let before = restores(&c);
    c.restart(n(3)).await?;
    back_in_step(&c, n(3), n(1), before).await?;
    all_in_step(&c, n(3)).await
}

async fn sender_crash(c: Cluster) -> Result<(), Failure> {
    n3_misses_appends(&c).await?;
    let before = restores(&c);
    c.restart(n(3)).await?;
    c.faults().heal();
    c.faults().partition(n(2), n(3));
    until_receiving(&c, n(3)).await?;
    c.crash(n(1)).await?;
    c.faults().heal();
    c.say("n1 crashed in the middle of the transfer; n2 <-> n3 healed".to_string());
    back_in_step(&c, n(3), n(2), before).await?;
    c.restart(n(1)).await?;
    all_in_step(&c, n(2)).await
}

async fn compact_while_partitioned(c: Cluster) -> Result<(), Failure> {
    c.faults().isolate(n(3), c.spec().nodes());
    appends(&c, n(1)).await?;
    let compacted = status(&c, n(1)).await?.log_start;
    let behind = status(&c, n(3)).await?.applied;
    ensure!(
        compacted > behind,
        "n1 kept its log from {compacted}, n3 applied below {behind}: nothing to install"
    );
    let before = restores(&c);
    c.faults().heal();
    back_in_step(&c, n(3), n(1), before).await?;
    all_in_step(&c, n(1)).await
}
