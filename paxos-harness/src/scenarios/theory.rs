//! The classic pitfalls of seeds 002-004, each built on purpose and asserted.

use super::common::{AVAILABILITY, SPREADING};
use super::common::{
    DECIDE_WITHIN, all_survivors_agree, propose_until_decided, silence_accepted, until_chosen,
    value_in,
};
use super::{Scenario, n};
use crate::chaos::Break;
use crate::cluster::{BodyFuture, Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::invariants::Val;
use crate::wait::{Look, eventually};
use paxos_core::{InstanceId, LearnerStrategy, NodeId, Outcome};
use std::collections::BTreeSet;
use std::time::Duration;

const I0: InstanceId = InstanceId(0);
const RUNS: u32 = 10;

/// A scenario of the theory suite (also the log's regressions in `holes` and `snapshots`).
pub(super) fn scenario(
    name: &'static str,
    about: &'static str,
    spec: fn() -> ClusterSpec,
    body: fn(Cluster) -> BodyFuture,
) -> Scenario {
    Scenario::new("theory", RUNS, name, about, spec, body)
}

/// The theory suite.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "adopt-highest-accepted",
            "003 Q1: X chosen on a majority, its proposer dies before anyone learns; the next proposal must choose X",
            || ClusterSpec::roles(2, 3, 1),
            |c| Box::pin(adopt_highest_accepted(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "adopt-minority-accepted",
            "003 Q1: X accepted by one acceptor only; a later proposer whose quorum includes it must propose X",
            || ClusterSpec::roles(2, 3, 1),
            |c| Box::pin(adopt_minority_accepted(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "adopt-from-a-proposer-acceptor",
            "003 Q1 as written: S1 and S2 propose and accept, S3 accepts; X accepted by S1 and S3 is chosen, S1 dies; S2's Prepare to S2 and S3 must bring X back",
            || ClusterSpec::symmetric(3),
            |c| Box::pin(adopt_from_a_proposer_acceptor(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "proposer-and-minority-crash",
            "002 Q11: the proposer and 2 of 5 acceptors crash together after X reached 3; the new proposer's quorum of survivors holds X once and must choose it",
            || ClusterSpec::roles(2, 5, 1),
            |c| Box::pin(proposer_and_minority_crash(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "divergent-acceptors",
            "003 Q3: X chosen on a majority at a higher ballot, a stale Y on one acceptor at a lower one; the next quorum sees both and must decide X",
            || ClusterSpec::roles(3, 5, 1),
            |c| Box::pin(divergent_acceptors(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "restarted-proposer",
            "003 Q4: a proposer restarts with the same id and a new value; its persisted round keeps one value chosen",
            || ClusterSpec::roles(1, 3, 1),
            |c| Box::pin(restarted_proposer(c)),
        )
        .catches(Break::SkipRoundPersist),
        scenario(
            "restarted-proposer-minority",
            "003 Q4: v1 reaches one acceptor of three, its proposer restarts with the same id and v2 for a quorum that never saw v1: its ballot must be new, or one ballot carries two values",
            // The restarted proposer hears its peers' Promises only once they have redialled
            // it (some 50 ms after its crash, a TLS handshake included): a longer phase lets
            // them count instead of moving on to a fresh round, which would hide a reused
            // ballot from the check.
            || ClusterSpec::roles(1, 3, 1).tune(|c| c.phase_timeout_ticks = 200),
            |c| Box::pin(restarted_proposer_minority(c)),
        )
        .catches(Break::SkipRoundPersist),
        scenario(
            "duelling-proposers",
            "003 Q3: 3 leaderless proposers race on 5 instances; randomized backoff bounds the livelock",
            || ClusterSpec::symmetric(3),
            |c| Box::pin(duelling_proposers(c)),
        )
        .catches(Break::AcceptBelowPromise),
        scenario(
            "minority-down",
            "002: with 2 of 5 acceptors down a value is still chosen",
            || ClusterSpec::symmetric(5),
            |c| Box::pin(minority_down(c)),
        )
        .catches_nothing(AVAILABILITY),
        scenario(
            "majority-down",
            "002: with 3 of 5 down a proposal times out cleanly, and is decided once they return",
            || ClusterSpec::symmetric(5),
            |c| Box::pin(majority_down(c)),
        )
        .catches_nothing(AVAILABILITY),
        scenario(
            "learners-all-to-all",
            "004: every acceptor tells every learner",
            || learners_spec(LearnerStrategy::AllToAll),
            |c| Box::pin(learners_learn_everything(c)),
        )
        .catches_nothing(SPREADING),
        scenario(
            "learners-distinguished",
            "004: one distinguished learner tells the others",
            || learners_spec(LearnerStrategy::Distinguished([n(5)].into())),
            |c| Box::pin(learners_learn_everything(c)),
        )
        .catches_nothing(SPREADING),
        scenario(
            "learners-distinguished-set",
            "004: a set of distinguished learners tells the others",
            || learners_spec(LearnerStrategy::Distinguished([n(5), n(6)].into())),
            |c| Box::pin(learners_learn_everything(c)),
        )
        .catches_nothing(SPREADING),
        scenario(
            "distinguished-learner-fails",
            "004: one of two distinguished learners crashes after the first decision; the other still tells the rest every later one",
            || learners_spec(LearnerStrategy::Distinguished([n(5), n(6)].into())),
            |c| Box::pin(distinguished_learner_fails(c, n(5))),
        )
        .catches_nothing(SPREADING),
        scenario(
            "only-distinguished-learner-fails",
            "004: the only distinguished learner crashes; the other learners catch up from their peers and still learn every decision",
            || {
                learners_spec(LearnerStrategy::Distinguished([n(5)].into()))
                    .tune(|cfg| cfg.catch_up_ticks = 20)
            },
            |c| Box::pin(distinguished_learner_fails(c, n(5))),
        )
        .catches_nothing(SPREADING),
    ]
}

/// The first of three values is learned by every learner; then the learner `fails` crashes,
/// and the two later values must still reach every other learner.
async fn distinguished_learner_fails(c: Cluster, fails: NodeId) -> Result<(), Failure> {
    let others: Vec<NodeId> = c
        .spec()
        .learners()
        .into_iter()
        .filter(|l| *l != fails)
        .collect();
    for (k, v) in [11, 22, 33].into_iter().enumerate() {
        if k == 1 {
            c.crash(fails).await?;
            c.say(format!("the distinguished learner {fails} crashed"));
        }
        let (instance, got) = c.propose(n(1), v).await?;
        let got = value_in(instance, &got)?;
        ensure!(
            instance == InstanceId(k as u64) && got == v,
            "proposal {v} gave {got} in {instance}"
        );
        let learners: Vec<NodeId> = match k {
            0 => c.spec().learners(),
            _ => others.clone(),
        };
        let learned = value_in(
            instance,
            &c.await_decided(&learners, instance, DECIDE_WITHIN).await?,
        )?;
        ensure!(
            learned == v,
            "learners learned {learned} in {instance}, expected {v}"
        );
    }
    Ok(())
}

/// Start `node`'s proposal of `value` in the background of `until`; the proposal itself may
/// never answer (its node is crashed by `until`).
async fn propose_while<F: std::future::Future<Output = Result<(), Failure>>>(
    c: &Cluster,
    node: NodeId,
    value: Val,
    until: F,
) -> Result<(), Failure> {
    let proposal = async {
        let _ = c.propose_at(node, I0, value, DECIDE_WITHIN).await;
    };
    let ((), r) = futures::join!(proposal, until);
    r
}

/// Wait until `acceptor` has durably accepted `value` in `I0`.
async fn until_accepted_by(c: &Cluster, acceptor: NodeId, value: Val) -> Result<(), Failure> {
    eventually(DECIDE_WITHIN, Duration::from_millis(1), || async {
        let accepted = c.observer().accepted_in(I0);
        Ok(
            match accepted
                .iter()
                .any(|(a, _, v)| *a == acceptor && v.value() == Some(&value))
            {
                true => Look::Done(()),
                false => Look::Wait(format!("{acceptor} never accepted {value}")),
            },
        )
    })
    .await
}

/// Proposers n1, n2; acceptors n3-n5; learner n6.
async fn adopt_highest_accepted(c: Cluster) -> Result<(), Failure> {
    // X reaches n3 and n4 only: a bare majority.
    chosen_then_next_proposer(&c, &[5], &[1], n(2), n(6)).await
}

/// Nobody learns; n1's Accepts of X are lost to the acceptors in `lost`; once X is chosen
/// the nodes `crash` die together, and then `next` proposes Y: it must decide X, and so must
/// `learner`. The shape of 003 Q1 and 002 Q11.
async fn chosen_then_next_proposer(
    c: &Cluster,
    lost: &[u64],
    crash: &[u64],
    next: NodeId,
    learner: NodeId,
) -> Result<(), Failure> {
    let (x, y) = (1001, 2002);
    silence_accepted(c);
    for &acc in lost {
        c.faults().drop_kind(n(1), n(acc), "accept");
    }
    propose_while(c, n(1), x, async {
        let chosen = until_chosen(c, I0).await?;
        ensure!(chosen == x, "chosen {chosen}");
        for &node in crash {
            c.crash(n(node)).await?;
        }
        Ok(())
    })
    .await?;
    c.faults().heal();
    c.say(format!(
        "crashed {crash:?} after X={x} was chosen; {next} proposes Y={y}"
    ));
    let got = propose_until_decided(c, next, I0, y).await?;
    ensure!(
        got == Some(x),
        "{next} decided {got:?}; X={x} was already chosen"
    );
    let learned = value_in(I0, &c.await_decided(&[learner], I0, DECIDE_WITHIN).await?)?;
    ensure!(learned == x, "{learner} learned {learned}, expected {x}");
    Ok(())
}

async fn adopt_minority_accepted(c: Cluster) -> Result<(), Failure> {
    let (x, y) = (1001, 2002);
    silence_accepted(&c);
    c.faults().drop_kind(n(1), n(4), "accept");
    c.faults().drop_kind(n(1), n(5), "accept"); // X reaches n3 only: a minority
    propose_while(&c, n(1), x, async {
        until_accepted_by(&c, n(3), x).await?;
        c.crash(n(1)).await
    })
    .await?;
    c.faults().heal();
    c.faults().partition(n(2), n(5)); // n2's quorum is {n3, n4}: it must see X on n3
    let got = propose_until_decided(&c, n(2), I0, y).await?;
    ensure!(
        got == Some(x),
        "n2 decided {got:?}; its quorum reported X={x} and it must adopt it"
    );
    c.faults().heal();
    let learned = value_in(I0, &c.await_decided(&[n(6)], I0, DECIDE_WITHIN).await?)?;
    ensure!(learned == x, "learner learned {learned}, expected {x}");
    Ok(())
}

/// Proposers n1-n3; acceptors n4-n8; learner n9. 003 Q3 as written: n1's Y reaches n4 only
/// (at n1's ballot), then n2, whose quorum leaves n4 out, gets X chosen by n5-n7 at its higher
/// ballot; both die before anyone learns. n3's quorum {n4, n5, n8} reports Y at the lower
/// ballot and X at the higher one: it must propose X (the highest-ballot rule), and a
/// proposer that took Y, or its own Z, would choose a second value.
async fn divergent_acceptors(c: Cluster) -> Result<(), Failure> {
    let (x, y, z) = (1001, 2002, 3003);
    silence_accepted(&c);
    for acc in 5..=8 {
        c.faults().drop_kind(n(1), n(acc), "accept");
    }
    propose_while(&c, n(1), y, async {
        until_accepted_by(&c, n(4), y).await?;
        c.crash(n(1)).await
    })
    .await?;
    c.faults().partition(n(2), n(4)); // n2's phase 1 must not see Y
    c.faults().drop_kind(n(2), n(8), "accept"); // X on n5-n7: a bare majority
    propose_while(&c, n(2), x, async {
        let chosen = until_chosen(&c, I0).await?;
        ensure!(chosen == x, "chosen {chosen}");
        c.crash(n(2)).await
    })
    .await?;
    let held: BTreeSet<Val> = c
        .observer()
        .accepted_in(I0)
        .into_iter()
        .filter_map(|(_, _, e)| e.value().copied())
        .collect();
    ensure!(
        held == BTreeSet::from([x, y]),
        "acceptors should hold X={x} and Y={y}, hold {held:?}"
    );
    c.say(format!(
        "X={x} chosen by n5-n7, stale Y={y} on n4; n3 proposes Z={z} to n4, n5, n8"
    ));
    c.faults().heal();
    c.faults().partition(n(3), n(6));
    c.faults().partition(n(3), n(7));
    let got = propose_until_decided(&c, n(3), I0, z).await?;
    ensure!(
        got == Some(x),
        "n3 decided {got:?}; its quorum reported X={x} at the highest ballot"
    );
    c.faults().heal();
    let learned = value_in(I0, &c.await_decided(&[n(9)], I0, DECIDE_WITHIN).await?)?;
    ensure!(learned == x, "learner learned {learned}, expected {x}");
    Ok(())
}

/// Proposer n1; acceptors n2-n4; learner n5.
async fn restarted_proposer(c: Cluster) -> Result<(), Failure> {
    let (x, y) = (1001, 2002);
    silence_accepted(&c);
    propose_while(&c, n(1), x, async {
        until_chosen(&c, I0).await?;
        c.crash(n(1)).await
    })
    .await?;
    let before: Vec<_> = c
        .observer()
        .accepted_in(I0)
        .into_iter()
        .map(|(_, b, _)| b)
        .collect();
    c.restart(n(1)).await?;
    c.faults().heal();
    c.say(format!(
        "n1 restarted with the same id and proposes Y={y}; ballots used before: {before:?}"
    ));
    let got = propose_until_decided(&c, n(1), I0, y).await?;
    ensure!(
        got == Some(x),
        "the restarted proposer decided {got:?}; X={x} was chosen before its crash"
    );
    let ballot = c.node(n(1)).await?.status().await?.ballot;
    ensure!(
        before.iter().all(|b| *b < ballot),
        "restarted proposer reused a ballot: {ballot} vs {before:?}"
    );
    let learned = value_in(I0, &c.await_decided(&[n(5)], I0, DECIDE_WITHIN).await?)?;
    ensure!(learned == x, "learner learned {learned}");
    Ok(())
}

/// S1-S3 all accept, S1 and S2 propose (003 Q1 as written): S1's Accept(X) reaches S1 itself
/// and S3 only, X is chosen, S1 dies before anyone learns. S2's phase 1 reaches S2 and S3; S3
/// reports X, and S2 must propose X, not its own Y.
async fn adopt_from_a_proposer_acceptor(c: Cluster) -> Result<(), Failure> {
    chosen_then_next_proposer(&c, &[2], &[1], n(2), n(3)).await
}

/// Proposers n1, n2; acceptors n3-n7; learner n8 (002 Q11). X reaches n3-n5 (chosen), then n1
/// and n4, n5 crash at once: of what survives only n3 holds X, and n2's quorum {n3, n6, n7}
/// must still choose it.
async fn proposer_and_minority_crash(c: Cluster) -> Result<(), Failure> {
    chosen_then_next_proposer(&c, &[6, 7], &[1, 4, 5], n(2), n(8)).await
}

/// Proposer n1; acceptors n2-n4; learner n5 (003 Q4). v1 reaches n2 only; n1 crashes and
/// restarts with the same id, cut off from n2, and proposes v2 to n3 and n4. Its ballot must
/// be above the one v1 carries (the round was persisted before use), so that a later quorum
/// with n2 in it sees v1 and v2 at two ballots, never at one.
async fn restarted_proposer_minority(c: Cluster) -> Result<(), Failure> {
    let (v1, v2) = (1001, 2002);
    silence_accepted(&c);
    for acc in [3, 4] {
        c.faults().drop_kind(n(1), n(acc), "accept");
    }
    propose_while(&c, n(1), v1, async {
        until_accepted_by(&c, n(2), v1).await?;
        c.crash(n(1)).await
    })
    .await?;
    let used: Vec<_> = c
        .observer()
        .accepted_in(I0)
        .into_iter()
        .map(|(_, b, _)| b)
        .collect();
    c.faults().heal();
    c.faults().partition(n(1), n(2));
    c.restart(n(1)).await?;
    c.say(format!(
        "n1 restarted with the same id, cut off from n2 (which holds v1={v1} at {used:?}); it proposes v2={v2}"
    ));
    let got = propose_until_decided(&c, n(1), I0, v2).await?;
    ensure!(
        got == Some(v2),
        "n1 decided {got:?}; its quorum never saw v1"
    );
    let ballot = c.node(n(1)).await?.status().await?.ballot;
    ensure!(
        used.iter().all(|b| *b < ballot),
        "the restarted proposer reused a ballot: {ballot} vs {used:?}"
    );
    c.faults().heal();
    let learned = value_in(I0, &c.await_decided(&[n(5)], I0, DECIDE_WITHIN).await?)?;
    ensure!(learned == v2, "learner learned {learned}, expected {v2}");
    Ok(())
}

async fn duelling_proposers(c: Cluster) -> Result<(), Failure> {
    let nodes = c.spec().nodes();
    for k in 0..5u64 {
        let instance = InstanceId(k);
        let start = tokio::time::Instant::now();
        let clients = nodes.iter().map(|&p| {
            let c = c.clone();
            async move {
                c.propose_at(p, instance, 100 * (k + 1) + p.0, Duration::from_secs(2))
                    .await
            }
        });
        let mut got = BTreeSet::new();
        for r in futures::future::join_all(clients).await {
            match r? {
                Outcome::Decided(v) => {
                    got.insert(value_in(instance, &v)?);
                }
                other => {
                    return Err(Failure(format!(
                        "{instance}: a duelling proposer got {other:?} (livelock?)"
                    )));
                }
            }
        }
        ensure!(got.len() == 1, "{instance}: proposers saw {got:?}");
        c.say(format!(
            "{instance} decided {got:?} after {:?}",
            start.elapsed()
        ));
    }
    all_survivors_agree(&c, &(0..5).map(InstanceId).collect::<Vec<_>>())
        .await
        .map(|_| ())
}

async fn minority_down(c: Cluster) -> Result<(), Failure> {
    c.crash(n(4)).await?;
    c.crash(n(5)).await?;
    let got = propose_until_decided(&c, n(1), I0, 7).await?;
    ensure!(got == Some(7), "decided {got:?}");
    let decided = all_survivors_agree(&c, &[I0]).await?;
    ensure!(decided[&I0] == 7, "survivors decided {decided:?}");
    Ok(())
}

async fn majority_down(c: Cluster) -> Result<(), Failure> {
    for i in 3..=5 {
        c.crash(n(i)).await?;
    }
    let got = c
        .propose_at(n(1), I0, 7, Duration::from_millis(300))
        .await?;
    ensure!(got == Outcome::TimedOut, "with a majority down got {got:?}");
    for i in 3..=5 {
        c.restart(n(i)).await?;
    }
    let got = propose_until_decided(&c, n(1), I0, 7).await?;
    ensure!(got == Some(7), "after recovery decided {got:?}");
    let decided = all_survivors_agree(&c, &[I0]).await?;
    ensure!(decided[&I0] == 7, "decided {decided:?}");
    Ok(())
}

/// Proposer n1; acceptors n2-n4; learners n5-n7. Catch-up is off, so only the strategy can
/// deliver the decisions.
fn learners_spec(strategy: LearnerStrategy) -> ClusterSpec {
    ClusterSpec::roles(1, 3, 3)
        .learner_strategy(strategy)
        .tune(|cfg| cfg.catch_up_ticks = 0)
}

async fn learners_learn_everything(c: Cluster) -> Result<(), Failure> {
    let learners = c.spec().learners();
    for (k, v) in [11, 22, 33].into_iter().enumerate() {
        let (instance, got) = c.propose(n(1), v).await?;
        let got = value_in(instance, &got)?;
        ensure!(
            instance == InstanceId(k as u64) && got == v,
            "proposal {v} gave {got} in {instance}"
        );
        let learned = value_in(
            instance,
            &c.await_decided(&learners, instance, DECIDE_WITHIN).await?,
        )?;
        ensure!(
            learned == v,
            "learners learned {learned} in {instance}, expected {v}"
        );
    }
    Ok(())
}
