//! Client behaviours and end-of-run checks shared by the suites.

use crate::cluster::{Cluster, Failure};
use crate::ensure;
use crate::invariants::Val;
use crate::wait::{Look, eventually};
use paxos_core::{Entry, InstanceId, NodeId, Outcome};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

// Why no fault switch fails a scenario ([`super::Catches::Nothing`]), for the kinds of
// scenario that share the reason.

/// Every proposal goes through one elected leader, and nothing fails.
pub const ONE_PROPOSER: &str = "every proposal goes through one elected leader and nothing fails: \
     no earlier vote to adopt, no competing ballot, no hole, so no switch changes the outcome";
/// Nodes are down from the start.
pub const FOLLOWERS_DOWN: &str = "a minority is down before anything is proposed: the \
     survivors' quorum holds nothing to adopt, so no switch changes the outcome";
/// What is checked is the answers callers get.
pub const CALLERS: &str = "what it checks is the answers callers get (forwarding, retries, \
     timeouts, aborts), which no switch of the protocol's rules changes";
/// Availability with nodes down.
pub const AVAILABILITY: &str = "availability with nodes down: whether a value can be chosen, \
     which no switch of the safety rules changes";
/// How decisions spread to learners.
pub const SPREADING: &str = "how decisions spread to the learners: no switch breaks it (a \
     failing distinguished learner is a fault, not a switch)";

/// How long a scenario waits for decisions before it fails.
pub const DECIDE_WITHIN: Duration = Duration::from_secs(20);
/// The timeout a client passes to `propose_at`.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Heal every fault after `after`: run it beside a request that must see the heal happen.
pub async fn healed_after(c: &Cluster, after: Duration) {
    c.sleep(after).await;
    c.faults().heal();
}

/// Wait until at least one message of `kind` from `from` to each of `to` has been lost by
/// [`crate::faults::Faults::drop_kind`]. A scenario that needs a message lost (not merely
/// late) waits for this before it heals: a loaded machine may send it only after the heal.
pub async fn until_lost(
    c: &Cluster,
    from: NodeId,
    to: &[NodeId],
    kind: &'static str,
) -> Result<(), Failure> {
    eventually(DECIDE_WITHIN, Duration::from_millis(1), || async {
        let lost: Vec<u64> = to.iter().map(|&o| c.faults().lost(from, o, kind)).collect();
        Ok(match lost.iter().all(|&l| l > 0) {
            true => Look::Done(()),
            false => Look::Wait(format!("{from}'s {kind} to {to:?} lost: {lost:?}")),
        })
    })
    .await
}

/// Cut every `Accepted` from the acceptors to everyone: nobody learns a decision (the observer
/// still sees what the acceptors accepted, and so what is chosen).
pub fn silence_accepted(c: &Cluster) {
    for a in c.spec().acceptors() {
        for o in c.spec().nodes() {
            c.faults().drop_kind(a, o, "accepted");
        }
    }
}

/// The client value in `entry`, decided in `instance`; a no-op there fails the scenario (the
/// scenarios pin client values to instances, so only a hole below them may hold a no-op).
pub fn value_in(instance: InstanceId, entry: &Entry<Val>) -> Result<Val, Failure> {
    entry
        .value()
        .copied()
        .ok_or_else(|| Failure(format!("{instance} was decided with a no-op")))
}

/// The scenario's own RNG (client choices, crash timing), fixed by the run's seed.
pub fn rng(c: &Cluster) -> StdRng {
    rng_stream(c, 0x00C1_1E47)
}

/// Another stream fixed by the run's seed, named by `salt`: for choices added to a scenario
/// whose [`rng`] draws must stay as they were.
pub fn rng_stream(c: &Cluster, salt: u64) -> StdRng {
    StdRng::seed_from_u64(c.seed() ^ salt)
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

/// Propose until a decision comes back: the Elixir `propose` blocks until the decision (no node
/// of the log proposes twice before it learned it), ours may answer `Aborted` or `TimedOut`
/// first, so the client asks again. `Aborted` means "not the leader": the client asks its node
/// whom it trusts as leader and proposes there next (what the `Aborted` docs tell callers to
/// do). `TimedOut` is retried after a short pause. Returns `None` if the client's own node was
/// crashed under it.
pub async fn propose_until_decided(
    c: &Cluster,
    node: NodeId,
    instance: InstanceId,
    value: Val,
) -> Result<Option<Val>, Failure> {
    let target = std::cell::Cell::new(node);
    let missing = || format!("{node} got no decision for {instance}");
    eventually(DECIDE_WITHIN, Duration::from_millis(5), || async {
        let live = c.live();
        if !live.contains(&node) {
            return Ok(Look::Done(None));
        }
        if !live.contains(&target.get()) {
            target.set(node);
        }
        match c
            .propose_at(target.get(), instance, value, PROPOSE_TIMEOUT)
            .await
        {
            Ok(Outcome::Decided(entry)) => {
                return Ok(Look::Done(Some(value_in(instance, &entry)?)));
            }
            Ok(Outcome::Aborted) => {
                let leader = c.node(node).await?.status().await?.leader;
                target.set(leader.filter(|l| c.live().contains(l)).unwrap_or(node));
            }
            Ok(Outcome::TimedOut) => c.sleep(Duration::from_millis(15)).await,
            // The node (or the leader it named) crashed under us: start again from our own.
            Err(_) if !c.live().contains(&node) || target.get() != node => target.set(node),
            Err(e) => return Err(e),
        }
        Ok(Look::Wait(missing()))
    })
    .await
}

/// A node as the Elixir log names it: `p1`.
pub fn p(node: NodeId) -> String {
    format!("p{}", node.0)
}

/// The Elixir pass rule: every survivor decides every instance, all decide the same value,
/// and it is a proposed value. Returns the decided value per instance.
///
/// Prints what the Elixir log prints at the end of a run: whom each survivor trusts as leader
/// (`p2 - p1 is leader`), each survivor's decision (`p2: decided {:val, 201}`), each one's
/// empty mailbox (`p2: {:message_queue_len, 0}`), and the list of the survivors' decisions
/// (`[val: 201, val: 201, val: 201]`), one list per instance.
pub async fn all_survivors_agree(
    c: &Cluster,
    instances: &[InstanceId],
) -> Result<BTreeMap<InstanceId, Val>, Failure> {
    let survivors = c.live();
    let proposed = c.observer().proposed_values();
    let mut out = BTreeMap::new();
    for &i in instances {
        let v = value_in(i, &c.await_decided(&survivors, i, DECIDE_WITHIN).await?)?;
        ensure!(
            proposed.contains(&v),
            "{i} decided {v}, which was never proposed ({proposed:?})"
        );
        out.insert(i, v);
    }
    for &node in &survivors {
        if let Some(leader) = c.node(node).await?.status().await?.leader {
            c.say(format!("{} - {} is leader", p(node), p(leader)));
        }
    }
    for v in out.values() {
        for &node in &survivors {
            c.say(format!("{}: decided {{:val, {v}}}", p(node)));
        }
    }
    mailboxes_drain(c, &survivors).await?;
    for v in out.values() {
        let list = vec![format!("val: {v}"); survivors.len()];
        c.say(format!("[{}]", list.join(", ")));
    }
    Ok(out)
}

/// How long a survivor's mailbox may take to drain at the end of a run.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(1);

/// No survivor has messages left over once the run ends (the Elixir log's
/// `{:message_queue_len, 0}`): each one's backlog, mailbox plus client queue, reaches zero. A
/// node that cannot keep up, or leaves messages unhandled, fails here.
pub async fn mailboxes_drain(c: &Cluster, nodes: &[NodeId]) -> Result<(), Failure> {
    for &node in nodes {
        eventually(DRAIN_WITHIN, Duration::from_millis(1), || async {
            Ok(match c.node(node).await?.status().await?.backlog {
                0 => Look::Done(()),
                backlog => Look::Wait(format!("{node} still has {backlog} unhandled messages")),
            })
        })
        .await?;
        c.say(format!("{}: {{:message_queue_len, 0}}", p(node)));
    }
    Ok(())
}

/// Wait until the observer sees `instance` chosen (a majority accepted one value), looking
/// every millisecond; used to crash a leader right after its phase 2 quorum.
pub async fn until_chosen(c: &Cluster, instance: InstanceId) -> Result<Val, Failure> {
    eventually(DECIDE_WITHIN, Duration::from_millis(1), || async {
        Ok(match c.observer().chosen().get(&instance) {
            Some(entry) => Look::Done(value_in(instance, entry)?),
            None => Look::Wait(format!("{instance} was never chosen")),
        })
    })
    .await
}

/// Await `body`, then raise `done`: a task run beside it (watching, pausing nodes) stops once
/// it sees the flag, so whatever it does falls while `body` is under way.
pub async fn until_done<T>(done: &Cell<bool>, body: impl Future<Output = T>) -> T {
    let out = body.await;
    done.set(true);
    out
}

/// Run `body` while looking, every millisecond, at whom each live node trusts as leader:
/// returns its result and every leader trusted meanwhile (the Elixir log's `p2 - p1 is leader`
/// lines). A leader trusted for less than a millisecond may go unseen.
pub async fn watching_leaders<T>(
    c: &Cluster,
    body: impl Future<Output = Result<T, Failure>>,
) -> Result<(T, BTreeSet<NodeId>), Failure> {
    let done = Cell::new(false);
    let watch = async {
        let mut seen = BTreeSet::new();
        while !done.get() {
            for node in c.spec().nodes() {
                // Looked up at once if live (a crash comes only at an await), never waited for.
                if !c.live().contains(&node) {
                    continue;
                }
                match c.node(node).await?.status().await {
                    Ok(status) => seen.extend(status.leader),
                    // Crashed while it was asked: it trusts nobody any more.
                    Err(_) if !c.live().contains(&node) => {}
                    Err(e) => return Err(Failure(format!("{node}'s status: {e}"))),
                }
            }
            c.sleep(Duration::from_millis(1)).await;
        }
        Ok(seen)
    };
    let (out, seen) = futures::join!(until_done(&done, body), watch);
    Ok((out?, seen?))
}
