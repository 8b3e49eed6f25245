//! The Elixir coursework log (`001_57610da62e63f199.txt`), condensed in `001-scenarios.md`
//! into 13 kinds E1-E13; plus the `{:abort}` and `{:timeout}` answers of its `propose` API.
//!
//! Every scenario runs an elected-leader cluster (`p1 is leader`: the lowest live id leads),
//! proposes values from 201-210 in instance 1 (and 2), crashes what the log crashes, and ends
//! with the log's pass rule: every survivor decides, all decide the same value, and it is one
//! of the proposed values. Clients that get `Aborted` (not the leader) retry, as the log's
//! spares re-propose until they see the decision.

use super::common::{AVAILABILITY, CALLERS, FOLLOWERS_DOWN, ONE_PROPOSER};
use super::common::{
    DECIDE_WITHIN, PROPOSE_TIMEOUT, all_survivors_agree, elixir_values, jitter, p,
    propose_until_decided, rng, silence_accepted, until_chosen, value_in,
};
use super::{Scenario, n};
use crate::chaos::Break;
use crate::cluster::{BodyFuture, Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::invariants::Val;
use crate::wait::{Look, eventually};
use paxos_core::{InstanceId, LearnerStrategy, NodeId, Outcome};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const I1: InstanceId = InstanceId(1);
const I2: InstanceId = InstanceId(2);
/// The log repeats each test; so do we.
const RUNS: u32 = 10;

fn elected(nodes: u64) -> ClusterSpec {
    ClusterSpec::symmetric(nodes).elected()
}

fn scenario(
    name: &'static str,
    about: &'static str,
    spec: fn() -> ClusterSpec,
    body: fn(Cluster) -> BodyFuture,
) -> Scenario {
    Scenario::new("elixir", RUNS, name, about, spec, body)
}

/// The Elixir suite.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "simple",
            "E1: 3 nodes, one proposer, instance 1",
            || elected(3),
            |c| Box::pin(simple(c)),
        )
        .catches_nothing(ONE_PROPOSER),
        scenario(
            "simple-5",
            "E4: 5 nodes, one proposer",
            || elected(5),
            |c| Box::pin(simple(c)),
        )
        .catches_nothing(ONE_PROPOSER),
        scenario(
            "simple_2",
            "E2: 3 nodes, two proposers on instance 1",
            || elected(3),
            |c| Box::pin(simple_2(c)),
        )
        .catches_nothing(ONE_PROPOSER),
        scenario(
            "simple_3",
            "E3: 3 nodes, instances 1 and 2 at once",
            || elected(3),
            |c| Box::pin(simple_3(c)),
        )
        .catches_nothing(ONE_PROPOSER),
        scenario(
            "many_1",
            "E5: 5 nodes all propose on instance 2",
            || elected(5),
            |c| Box::pin(many_1(c)),
        )
        .catches_nothing(ONE_PROPOSER),
        scenario(
            "many_2",
            "E6: 5 nodes propose 10 times each, 1-10 ms apart",
            || elected(5),
            |c| Box::pin(many_2(c)),
        )
        .catches_nothing(ONE_PROPOSER),
        scenario(
            "non_leader_crash",
            "E7: 3 nodes, one crashed first (drawn per run, p1 too), 2 survive",
            || elected(3),
            |c| Box::pin(non_leader_crash(c)),
        )
        .catches_nothing(FOLLOWERS_DOWN),
        scenario(
            "minority_non_leader_crash",
            "E8: 5 nodes, two crashed first (drawn per run), 3 survive",
            || elected(5),
            |c| Box::pin(minority_non_leader_crash(c)),
        )
        .catches_nothing(FOLLOWERS_DOWN),
        scenario(
            "leader_crash_simple",
            "E9: 5 nodes, leader killed before decision, second proposer retries, 4 survive",
            || elected(5),
            |c| Box::pin(leader_crash(c, 5, &[1], &[], &[2])),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_simple_2",
            "E10: 7 nodes, leader and 2 followers killed, 4 survive",
            || elected(7),
            |c| Box::pin(leader_crash(c, 7, &[1], &[6, 7], &[2])),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_complex",
            "E11: 11 nodes, 2 leaders and 3 followers die, 6 survive",
            || elected(11),
            |c| Box::pin(leader_crash(c, 11, &[1, 2], &[9, 10, 11], &[3])),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_complex_2",
            "E12: as E11 with suspend/resume pauses; 6 spares re-propose until decided",
            || elected(11),
            |c| Box::pin(leader_crash_complex_2(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "kill_before_decision",
            "E13: 5 nodes, leader dies after its phase-2 quorum; p2, proposing from the start, leads next and decides that value",
            || elected(5).learner_strategy(LearnerStrategy::Distinguished([n(1)].into())),
            |c| Box::pin(kill_before_decision(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "follower_proposes",
            "a proposal on a follower is forwarded to the leader and decided",
            || elected(3),
            |c| Box::pin(follower_proposes(c)),
        )
        .catches_nothing(CALLERS),
        scenario(
            "abort",
            "{:abort}: the node holding a proposal loses its leadership before the decision",
            || elected(3),
            |c| Box::pin(abort(c)),
        )
        .catches_nothing(CALLERS),
        scenario(
            "timeout",
            "majority down: {:timeout}, then decided once it returns",
            || elected(5),
            |c| Box::pin(timeout(c)),
        )
        .catches_nothing(AVAILABILITY),
    ]
}

/// E1, E4: one node proposes; everyone decides exactly that value. As in the log, the
/// proposer is any live node, a follower in most runs (12 of 19 E1 runs, 8 of 10 E4 runs):
/// its proposal is passed to the leader.
async fn simple(c: Cluster) -> Result<(), Failure> {
    let mut r = rng(&c);
    let v = elixir_values(&mut r, 1)[0];
    let live = c.live();
    let proposer = live[r.gen_range(0..live.len())];
    c.say(format!("{} - Propose 1 with action nil", p(proposer)));
    let got = propose_until_decided(&c, proposer, I1, v).await?;
    ensure!(
        got == Some(v),
        "{} proposed {v} and got {got:?}",
        p(proposer)
    );
    let decided = all_survivors_agree(&c, &[I1]).await?;
    ensure!(
        decided[&I1] == v,
        "decided {}, proposed only {v}",
        decided[&I1]
    );
    Ok(())
}

/// E2: two proposers on different nodes, same instance.
async fn simple_2(c: Cluster) -> Result<(), Failure> {
    let mut r = rng(&c);
    let vs = elixir_values(&mut r, 2);
    let (a, b) = futures::join!(
        propose_until_decided(&c, n(1), I1, vs[0]),
        propose_until_decided(&c, n(2), I1, vs[1])
    );
    let (a, b) = (a?, b?);
    ensure!(
        a == b,
        "the two proposers saw different decisions: {a:?} and {b:?}"
    );
    all_survivors_agree(&c, &[I1]).await.map(|_| ())
}

/// E3: instances 1 and 2 at once, one proposer each: each decided with its own value.
async fn simple_3(c: Cluster) -> Result<(), Failure> {
    let vs = elixir_values(&mut rng(&c), 2);
    let (a, b) = futures::join!(
        propose_until_decided(&c, n(1), I1, vs[0]),
        propose_until_decided(&c, n(2), I2, vs[1])
    );
    let (a, b) = (a?, b?);
    let decided = all_survivors_agree(&c, &[I1, I2]).await?;
    ensure!(
        decided[&I1] == vs[0] && decided[&I2] == vs[1],
        "instances decided {decided:?}, proposed {vs:?}"
    );
    ensure!(
        a == Some(vs[0]) && b == Some(vs[1]),
        "clients saw {a:?} and {b:?}"
    );
    Ok(())
}

/// E5: all five propose on instance 2 (not the first instance) at once.
async fn many_1(c: Cluster) -> Result<(), Failure> {
    let vs = elixir_values(&mut rng(&c), 5);
    let clients = (1..=5).map(|i| propose_until_decided(&c, n(i), I2, vs[i as usize - 1]));
    let got: Result<Vec<_>, _> = futures::future::join_all(clients)
        .await
        .into_iter()
        .collect();
    let got = got?;
    ensure!(
        got.windows(2).all(|w| w[0] == w[1]),
        "clients saw different decisions: {got:?}"
    );
    all_survivors_agree(&c, &[I2]).await.map(|_| ())
}

/// E6: all five propose 10 times each on instance 1, 1-10 ms apart; every answer after the
/// decision is the decided value. As in the log (45 of 50 proposals a run answered
/// `{:decision, v}`), most proposals come after their node learned the decision: each of those
/// must be answered with it at once, and they must be most of the 50.
async fn many_2(c: Cluster) -> Result<(), Failure> {
    let mut r = rng(&c);
    let mut plans = Vec::new();
    for i in 1..=5u64 {
        let plan: Vec<(Duration, u64)> = (0..10)
            .map(|_| (jitter(&mut r, 10), elixir_values(&mut r, 1)[0]))
            .collect();
        plans.push((n(i), plan));
    }
    let clients = plans.into_iter().map(|(node, plan)| {
        let c = c.clone();
        async move {
            let mut answers = Vec::new();
            let mut after_learning = Vec::new();
            for (pause, v) in plan {
                c.sleep(pause).await;
                let known = c.decisions(node).await?.get(&I1).cloned();
                let answer = c.propose_at(node, I1, v, PROPOSE_TIMEOUT).await?;
                if let Some(known) = known {
                    ensure!(
                        answer == Outcome::Decided(known.clone()),
                        "{node} had decided {known:?} and answered {answer:?}"
                    );
                    after_learning.push(value_in(I1, &known)?);
                }
                match answer {
                    Outcome::Decided(d) => answers.push(value_in(I1, &d)?),
                    Outcome::Aborted | Outcome::TimedOut => {}
                }
            }
            Ok::<_, Failure>((answers, after_learning))
        }
    });
    let (mut answers, mut at_once) = (Vec::new(), 0);
    for r in futures::future::join_all(clients).await {
        let (a, known) = r?;
        answers.extend(a);
        at_once += known.len();
    }
    let decided = all_survivors_agree(&c, &[I1]).await?;
    ensure!(
        answers.iter().all(|a| *a == decided[&I1]),
        "answers {answers:?} differ from the decision {decided:?}"
    );
    c.say(format!(
        "{at_once} of 50 proposals came after their node learned the decision, each answered with it"
    ));
    ensure!(
        at_once >= 40,
        "only {at_once} of 50 proposals came after the decision (the log: 45)"
    );
    Ok(())
}

/// E7: one of the 3 nodes, drawn per run (p1, the first leader, in a third of them; the log
/// has p1 down in 8 of 20 runs), is crashed first; the other two decide.
async fn non_leader_crash(c: Cluster) -> Result<(), Failure> {
    crash_some(&c, 1).await?;
    simple(c).await
}

/// E8: two of the 5 nodes, drawn per run (the largest minority), crashed first.
async fn minority_non_leader_crash(c: Cluster) -> Result<(), Failure> {
    crash_some(&c, 2).await?;
    simple(c).await
}

/// Crash `count` nodes drawn from the run's seed, any of them (the leader too).
async fn crash_some(c: &Cluster, count: usize) -> Result<(), Failure> {
    let mut nodes = c.spec().nodes();
    // A stream of its own, so the proposer and values `simple` draws stay as they were.
    let mut r = rand::rngs::StdRng::seed_from_u64(c.seed() ^ 0xC8A5_4ED0);
    nodes.shuffle(&mut r);
    let mut down: Vec<NodeId> = nodes.into_iter().take(count).collect();
    down.sort();
    c.say(format!(
        "crash {}",
        down.iter().map(|&d| p(d)).collect::<Vec<_>>().join(", ")
    ));
    for node in down {
        c.crash(node).await?;
    }
    Ok(())
}

/// E9-E11: `leaders` propose and are killed one after another, `followers` are killed too,
/// `spares` keep proposing until they see a decision. All `nodes - killed` survivors must
/// agree. The first leader dies in one of two ways, drawn per run: shortly after proposing
/// (0-3 ms, before any Accept of its got far: most of the log's runs), or, as in log runs 28
/// and 60, once a majority accepted its value and before anyone learned it; the next leader
/// then finds the value in its promises and must decide exactly it.
async fn leader_crash(
    c: Cluster,
    nodes: u64,
    leaders: &[u64],
    followers: &[u64],
    spares: &[u64],
) -> Result<(), Failure> {
    let mut r = rng(&c);
    let vs = elixir_values(&mut r, leaders.len() + spares.len());
    let after_a_majority = r.gen_bool(0.5);
    if after_a_majority {
        c.say(format!(
            "p{} - Leader dies once a majority accepted, before the decision",
            leaders[0]
        ));
        silence_accepted(&c);
    }
    let chosen_first = std::cell::Cell::new(None);
    let killer = {
        let c = c.clone();
        let leaders = leaders.to_vec();
        let followers = followers.to_vec();
        let mut r = rng(&c);
        let vs = vs.clone();
        let chosen_first = &chosen_first;
        async move {
            for (k, &l) in leaders.iter().enumerate() {
                // Propose through the (current) leader, then kill it.
                let c2 = c.clone();
                let v = vs[k];
                let propose = async move {
                    let _ = c2.propose_at(n(l), I1, v, PROPOSE_TIMEOUT).await;
                };
                let kill = async {
                    if k == 0 && after_a_majority {
                        chosen_first.set(Some(until_chosen(&c, I1).await?));
                        c.crash(n(l)).await?;
                        c.faults().heal();
                        return Ok(());
                    }
                    c.sleep(jitter(&mut r, 3)).await;
                    c.crash(n(l)).await
                };
                let ((), killed) = futures::join!(propose, kill);
                killed?;
            }
            for &f in &followers {
                c.crash(n(f)).await?;
            }
            Ok::<(), Failure>(())
        }
    };
    let spare_clients = spares.iter().enumerate().map(|(k, &s)| {
        let c = c.clone();
        let v = vs[leaders.len() + k];
        async move { propose_until_decided(&c, n(s), I1, v).await }
    });
    let (killed, spares_got) = futures::join!(killer, futures::future::join_all(spare_clients));
    killed?;
    for got in spares_got {
        ensure!(got?.is_some(), "a spare was crashed");
    }
    let survivors = c.live();
    ensure!(
        survivors.len() as u64 == nodes - (leaders.len() + followers.len()) as u64,
        "expected {} survivors, have {survivors:?}",
        nodes - (leaders.len() + followers.len()) as u64
    );
    let decided = all_survivors_agree(&c, &[I1]).await?;
    if let Some(chosen) = chosen_first.get() {
        ensure!(
            decided[&I1] == chosen,
            "survivors decided {}, but {chosen} was chosen before the leader died",
            decided[&I1]
        );
    }
    Ok(())
}

/// E12: as E11, while spares are also suspended and resumed (cut off from everyone for a few
/// ms, like a paused BEAM process); the six spares each keep re-proposing.
async fn leader_crash_complex_2(c: Cluster) -> Result<(), Failure> {
    let mut r = rng(&c);
    let spares: Vec<u64> = (3..=8).collect();
    let all: Vec<NodeId> = c.spec().nodes();
    let pauses = {
        let c = c.clone();
        let plan: Vec<(u64, Duration, Duration)> = (0..4)
            .map(|k| {
                (
                    spares[k % spares.len()],
                    jitter(&mut r, 30),
                    jitter(&mut r, 60),
                )
            })
            .collect();
        let all = all.clone();
        async move {
            for (node, before, pause) in plan {
                c.sleep(before).await;
                c.say(format!("suspend p{node} for {pause:?}"));
                c.faults().isolate(n(node), all.iter().copied());
                c.sleep(pause).await;
                for &o in &all {
                    c.faults().repair(n(node), o);
                }
            }
            Ok::<(), Failure>(())
        }
    };
    let (crashes, paused) = futures::join!(
        leader_crash(c.clone(), 11, &[1, 2], &[9, 10, 11], &[3, 4, 5, 6, 7, 8]),
        pauses
    );
    paused?;
    crashes
}

/// E13: the leader's phase 2 reaches a majority, then it dies before anyone learns the
/// decision (only it is the distinguished learner, and the Accepted replies to it are lost).
/// As in the log, p2 proposes concurrently from the start (its request goes to p1 first) and
/// becomes the next leader: its phase 1 finds the value in the promises and must decide
/// exactly it.
async fn kill_before_decision(c: Cluster) -> Result<(), Failure> {
    let vs = elixir_values(&mut rng(&c), 2);
    for o in 2..=5 {
        c.faults().drop_kind(n(o), n(1), "accepted");
    }
    c.say("p1 - Leader has action to die before decision".to_string());
    let leader = c.clone();
    let first = vs[0];
    let proposal = async move {
        let _ = leader.propose_at(n(1), I1, first, PROPOSE_TIMEOUT).await;
    };
    let kill = async {
        let chosen = until_chosen(&c, I1).await?;
        c.crash(n(1)).await?;
        c.faults().heal();
        Ok::<Val, Failure>(chosen)
    };
    let second = propose_until_decided(&c, n(2), I1, vs[1]);
    let ((), chosen, got) = futures::join!(proposal, kill, second);
    let chosen = chosen?;
    ensure!(
        chosen == vs[0],
        "chosen {chosen}, the leader proposed {}",
        vs[0]
    );
    let got = got?;
    ensure!(
        got == Some(vs[0]),
        "p2 decided {got:?}, but {} was chosen",
        vs[0]
    );
    // The others may still trust p1 for a leader timeout after p2 took over.
    eventually(DECIDE_WITHIN, Duration::from_millis(1), || async {
        Ok(match c.leader().await? {
            Some(l) if l == n(2) => Look::Done(()),
            other => Look::Wait(format!("the next leader is {other:?}, expected p2")),
        })
    })
    .await?;
    let decided = all_survivors_agree(&c, &[I1]).await?;
    ensure!(decided[&I1] == vs[0], "survivors decided {decided:?}");
    Ok(())
}

/// A proposal made on a follower is passed to the leader and decided (the only proposer is
/// a follower in 12 of the log's 19 E1 runs): the follower answers with the decision.
async fn follower_proposes(c: Cluster) -> Result<(), Failure> {
    let v = elixir_values(&mut rng(&c), 1)[0];
    let leader = c.leader().await?.unwrap_or(n(1));
    ensure!(leader == n(1), "leader is {leader}, expected p1");
    c.say(format!(
        "p3 - Propose 1 with action nil ({v}, forwarded to p1)"
    ));
    let got = c.propose_at(n(3), I1, v, PROPOSE_TIMEOUT).await?;
    ensure!(
        matches!(&got, Outcome::Decided(e) if e.value() == Some(&v)),
        "the follower answered {got:?}, expected the decision {v}"
    );
    let decided = all_survivors_agree(&c, &[I1]).await?;
    ensure!(
        decided[&I1] == v,
        "survivors decided {decided:?}, proposed {v}"
    );
    Ok(())
}

/// `{:abort}`, as the coursework means it: the node that holds a proposal loses its
/// leadership before the instance is decided. p3, cut off from everyone, trusts itself as
/// leader and takes a proposal it cannot get a quorum for; when the network heals it hears p1,
/// steps down and answers `{:abort}`. Asked again, it forwards to p1 and gets the decision.
async fn abort(c: Cluster) -> Result<(), Failure> {
    let v = elixir_values(&mut rng(&c), 1)[0];
    let all = c.spec().nodes();
    c.faults().isolate(n(3), all.iter().copied());
    let leader_timeout = c.spec().config.leader_timeout_ticks * 2;
    c.sleep(c.spec().config.tick_interval * u32::try_from(leader_timeout).unwrap_or(u32::MAX))
        .await;
    let alone = c.node(n(3)).await?.status().await?.leader;
    ensure!(
        alone == Some(n(3)),
        "cut off, p3 trusts {alone:?}, expected itself"
    );
    let proposal = c.propose_at(n(3), I1, v, Duration::from_secs(2));
    // The heal comes in two halves: first p3 hears the others again (and steps down on p1's
    // heartbeat) while its own messages are still lost, then the rest. Healed at once, p3's
    // Prepare at its higher ballot could win a quorum before it heard p1 (seen over TCP, where
    // the order is the machine's), and its value be decided: a correct run, but not this one.
    let heal = async {
        c.sleep(Duration::from_millis(100)).await;
        c.faults().heal();
        for &o in &all {
            if o != n(3) {
                c.faults().partition_oneway(n(3), o);
            }
        }
        let stepped_down = eventually(Duration::from_secs(2), Duration::from_millis(1), || async {
            Ok(match c.node(n(3)).await?.status().await?.leader {
                Some(l) if l != n(3) => Look::Done(()),
                other => Look::Wait(format!("p3 still trusts {other:?}")),
            })
        })
        .await;
        c.faults().heal();
        stepped_down
    };
    let (got, stepped_down) = futures::join!(proposal, heal);
    stepped_down?;
    let got = got?;
    ensure!(
        got == Outcome::Aborted,
        "p3 lost its leadership and answered {got:?}, expected Aborted"
    );
    c.say("p3 - {:abort}".to_string());
    let got = propose_until_decided(&c, n(3), I1, v).await?;
    ensure!(got.is_some(), "no decision after the abort");
    all_survivors_agree(&c, &[I1]).await.map(|_| ())
}

/// `{:timeout}`: with a majority down nothing can be decided; after they return it is.
async fn timeout(c: Cluster) -> Result<(), Failure> {
    let v = elixir_values(&mut rng(&c), 1)[0];
    for i in 3..=5 {
        c.crash(n(i)).await?;
    }
    let got = c
        .propose_at(n(1), I1, v, Duration::from_millis(300))
        .await?;
    ensure!(
        got == Outcome::TimedOut,
        "with a majority down got {got:?}, expected TimedOut"
    );
    for i in 3..=5 {
        c.restart(n(i)).await?;
    }
    let got = propose_until_decided(&c, n(1), I1, v).await?;
    ensure!(
        got == Some(v),
        "after recovery decided {got:?}, expected {v}"
    );
    all_survivors_agree(&c, &[I1]).await.map(|_| ())
}
