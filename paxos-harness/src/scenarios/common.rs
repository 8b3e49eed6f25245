//! Client behaviours and end-of-run checks shared by the suites.

use crate::cluster::{Cluster, Failure};
use crate::ensure;
use crate::invariants::Val;
use paxos_core::{InstanceId, NodeId, Outcome};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a scenario waits for decisions before it fails.
pub const DECIDE_WITHIN: Duration = Duration::from_secs(20);
/// The timeout a client passes to `propose_at`.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// The scenario's own RNG (client choices, crash timing), fixed by the run's seed.
pub fn rng(c: &Cluster) -> StdRng {
    StdRng::seed_from_u64(c.seed() ^ 0x00C1_1E47)
}

/// `k` distinct values from 201..=210, as in the Elixir log.
pub fn elixir_values(rng: &mut StdRng, k: usize) -> Vec<Val> {
    let mut all: Vec<Val> = (201..=210).collect();
    all.shuffle(rng);
    all.truncate(k);
    all
}

/// A pause of 1..=max ms.
pub fn jitter(rng: &mut StdRng, max_ms: u64) -> Duration {
    Duration::from_millis(rng.gen_range(1..=max_ms.max(1)))
}

/// Propose until a decision comes back, as the Elixir clients re-propose until they see the
/// decision. `Aborted` means "not the leader": the client asks its node whom it trusts as leader
/// and proposes there next (what the `Aborted` docs tell callers to do). `TimedOut` is retried
/// after a short pause. Returns `None` if the client's own node was crashed under it.
pub async fn propose_until_decided(
    c: &Cluster,
    node: NodeId,
    instance: InstanceId,
    value: Val,
) -> Result<Option<Val>, Failure> {
    let deadline = tokio::time::Instant::now() + DECIDE_WITHIN;
    let mut target = node;
    while tokio::time::Instant::now() < deadline {
        if !c.live().contains(&node) {
            return Ok(None);
        }
        if !c.live().contains(&target) {
            target = node;
        }
        match c.propose_at(target, instance, value, PROPOSE_TIMEOUT).await {
            Ok(Outcome::Decided(v)) => return Ok(Some(v)),
            Ok(Outcome::Aborted) => {
                let leader = c.node(node).await?.status().await?.leader;
                target = leader.filter(|l| c.live().contains(l)).unwrap_or(node);
                c.sleep(Duration::from_millis(5)).await;
            }
            Ok(Outcome::TimedOut) => c.sleep(Duration::from_millis(20)).await,
            Err(_) if !c.live().contains(&node) || target != node => {
                target = node;
                if !c.live().contains(&node) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Failure(format!(
        "{node} got no decision for {instance} within {DECIDE_WITHIN:?}"
    )))
}

/// The Elixir pass rule: every survivor decides every instance, all decide the same value,
/// and it is a proposed value. Returns the decided value per instance.
pub async fn all_survivors_agree(
    c: &Cluster,
    instances: &[InstanceId],
) -> Result<BTreeMap<InstanceId, Val>, Failure> {
    let survivors = c.live();
    let proposed = c.observer().proposed_values();
    let mut out = BTreeMap::new();
    for &i in instances {
        let v = c.await_decided(&survivors, i, DECIDE_WITHIN).await?;
        ensure!(
            proposed.contains(&v),
            "{i} decided {v}, which was never proposed ({proposed:?})"
        );
        out.insert(i, v);
    }
    let line: Vec<String> = out.values().map(|v| format!("val: {v}")).collect();
    c.say(format!(
        "survivors {survivors:?} decided [{}]",
        line.join(", ")
    ));
    mailboxes_drain(c, &survivors).await?;
    Ok(out)
}

/// How long a survivor's mailbox may take to drain at the end of a run.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(1);

/// No survivor has messages left over once the run ends (the Elixir log's
/// `{:message_queue_len, 0}`): each one's backlog, mailbox plus client queue, reaches zero. A
/// node that cannot keep up, or leaves messages unhandled, fails here.
pub async fn mailboxes_drain(c: &Cluster, nodes: &[NodeId]) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + DRAIN_WITHIN;
    for &node in nodes {
        loop {
            let backlog = c.node(node).await?.status().await?.backlog;
            if backlog == 0 {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{node} still has {backlog} unhandled messages after {DRAIN_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    c.say(format!(
        "mailboxes of {nodes:?} empty ({{:message_queue_len, 0}})"
    ));
    Ok(())
}

/// Wait until the observer sees `instance` chosen (a majority accepted one value), polling
/// every millisecond; used to crash a leader right after its phase 2 quorum.
pub async fn until_chosen(c: &Cluster, instance: InstanceId) -> Result<Val, Failure> {
    let deadline = tokio::time::Instant::now() + DECIDE_WITHIN;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = c.observer().chosen().get(&instance) {
            return Ok(*v);
        }
        c.sleep(Duration::from_millis(1)).await;
    }
    Err(Failure(format!("{instance} was never chosen")))
}
