//! Snapshots and compaction (issue 16), as named scenarios of the theory suite, on whatever
//! storage and network the run uses. Every node runs the reference key-value state machine
//! ([`crate::kv`]); after each scenario every node must hold the same state at every instance
//! it reached, by applying or by installing a snapshot.
//!
//! | scenario | the schedule | what must happen |
//! |---|---|---|
//! | `snapshot-catch-up` | a node is down and cut off while 60 appends go through, snapshots every 10 entries (5 kept) | its peers compacted what it missed, so it installs a snapshot, in pieces, and is back in step: its applied index reaches the leader's and its log starts above i0 |

use super::Scenario;
use super::common::DECIDE_WITHIN;
use super::n;
use super::theory::scenario;
use crate::cluster::{Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::wait::{Look, eventually};
use paxos_core::{InstanceId, NodeId};
use std::time::Duration;

/// The snapshot scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![scenario(
        "snapshot-catch-up",
        "issue 16: a node down for 60 appends (snapshots every 10) catches up by snapshot, in pieces, and holds the same state as its peers",
        || {
            ClusterSpec::symmetric(3)
                .elected()
                .with_kv(10, 5, false)
                .tune(|c| c.snapshot_chunk_bytes = 64)
        },
        |c| Box::pin(snapshot_catch_up(c)),
    )]
}

/// An operation of the reference state machine for step `k`: puts, reads and compare-and-sets
/// over 16 keys.
fn op(k: u64) -> u64 {
    (k << 6) | ((k % 16) << 2) | (k % 3)
}

/// Every node's state equals its peers' at every instance it reached.
fn same_state(c: &Cluster) -> Result<(), Failure> {
    let digests = c
        .spec()
        .digests
        .as_ref()
        .ok_or(Failure("no state machines".into()))?;
    digests.check().map_err(Failure)
}

/// `node`'s applied index.
async fn applied(c: &Cluster, node: NodeId) -> Result<InstanceId, Failure> {
    Ok(c.node(node).await?.status().await?.applied)
}

async fn snapshot_catch_up(c: Cluster) -> Result<(), Failure> {
    // Down, and cut off: what its peers send it meanwhile is lost (a transport would
    // otherwise replay its queue when it is back).
    c.crash(n(3)).await?;
    c.faults().isolate(n(3), c.spec().nodes());
    let session = c.node(n(1)).await?.session().await?;
    for k in 0..60 {
        c.append(n(1), session.next_request(), op(k), DECIDE_WITHIN)
            .await?;
    }
    let restores_before = c.spec().digests.as_ref().map_or(0, |d| d.restores());
    c.restart(n(3)).await?;
    c.faults().heal();
    let target = applied(&c, n(1)).await?;
    c.say(format!("n3 restarted; n1 applied below {target}"));
    eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
        let at = applied(&c, n(3)).await?;
        Ok(match at >= target {
            true => Look::Done(()),
            false => Look::Wait(format!("n3 applied only below {at}, n1 below {target}")),
        })
    })
    .await?;
    let restores = c.spec().digests.as_ref().map_or(0, |d| d.restores());
    ensure!(
        restores > restores_before,
        "n3 caught up without installing a snapshot"
    );
    let (log, _) = c.node(n(3)).await?.read(InstanceId(0), usize::MAX).await?;
    let first = log.first().map(|d| d.instance);
    ensure!(
        first != Some(InstanceId(0)),
        "n3's log still starts at i0: it replayed the log, no snapshot"
    );
    c.say(format!(
        "n3 installed a snapshot; it keeps {} entries of the log",
        log.len()
    ));
    // In step: the next append is applied on every node, with the same state.
    let later = c
        .append(n(3), session.next_request(), op(60), DECIDE_WITHIN)
        .await?;
    for node in [n(1), n(2), n(3)] {
        eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
            Ok(match applied(&c, node).await? > later {
                true => Look::Done(()),
                false => Look::Wait(format!("{node} did not apply {later}")),
            })
        })
        .await?;
    }
    same_state(&c)?;
    c.say("every node holds the same state at every instance".to_string());
    Ok(())
}
