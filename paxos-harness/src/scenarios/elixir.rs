//! The Elixir coursework log (`001_57610da62e63f199.txt`), condensed in `001-scenarios.md`
//! into 13 kinds E1-E13; plus the `{:abort}` and `{:timeout}` answers of its `propose` API.
//!
//! Every scenario runs an elected-leader cluster (`p1 is leader`: the lowest live id leads),
//! proposes values from 201-210 in instance 1 (and 2), crashes what the log crashes, and ends
//! with the log's pass rule: every survivor decides, all decide the same value, and it is one
//! of the proposed values. Clients that get `Aborted` (not the leader) or `TimedOut` ask again
//! until they get the decision, which the log's `propose` blocks for.

use super::common::{AVAILABILITY, CALLERS, FOLLOWERS_DOWN, ONE_PROPOSER};
use super::common::{
    DECIDE_WITHIN, PROPOSE_TIMEOUT, all_survivors_agree, elixir_values, jitter, p,
    propose_until_decided, rng, rng_stream, silence_accepted, until_chosen, until_done, value_in,
    watching_leaders,
};
use super::{Scenario, n};
use crate::chaos::Break;
use crate::cluster::{BodyFuture, Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::invariants::Val;
use crate::wait::{Look, eventually};
use paxos_core::{InstanceId, LearnerStrategy, NodeId, Outcome};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::cell::Cell;
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
            |c| Box::pin(leader_crash(c, 5, &[1], &[], &[(2, 1)])),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_simple_2",
            "E10: 7 nodes, leader and 2 followers killed, 4 survive",
            || elected(7),
            |c| Box::pin(leader_crash(c, 7, &[1], &[6, 7], &[(2, 1)])),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_complex",
            "E11: 11 nodes, 2 leaders and 3 followers die, 6 survive",
            || elected(11),
            |c| Box::pin(leader_crash(c, 11, &[1, 2], &[9, 10, 11], &[(3, 1)])),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_complex_2",
            "E12: as E11; two of the 6 spares propose 10 and 2 times, also after the decision (14 proposals), answered at once; at most 3 leaders",
            || elected(11),
            |c| Box::pin(leader_crash_complex_2(c)),
        )
        .catches(Break::IgnorePromisedValues),
        scenario(
            "leader_crash_complex_2_paused",
            "ours, not the log's: E12 with spares suspended and resumed (cut off 1-60 ms) while the proposals are under way",
            || elected(11),
            |c| Box::pin(leader_crash_complex_2_paused(c)),
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
/// proposer is any live node, a follower in most runs (13 of 20 E1 runs, 8 of 10 E4 runs):
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
    let clients: Vec<_> = (1..=5)
        .map(|i| propose_plan(&c, n(i), plan(&mut r, 10)))
        .collect();
    let mut answers = Answers::default();
    for got in futures::future::join_all(clients).await {
        answers.extend(got?);
    }
    let decided = all_survivors_agree(&c, &[I1]).await?;
    answers.all_are(decided[&I1])?;
    answers.at_once_at_least(&c, 50, 40, 45)
}

/// Proposals one client makes in turn, each after its pause.
type Plan = Vec<(Duration, Val)>;

/// `k` proposals of values from 201-210, 1-10 ms apart (E6's and E12's clients).
fn plan(r: &mut StdRng, k: usize) -> Plan {
    (0..k)
        .map(|_| (jitter(r, 10), elixir_values(r, 1)[0]))
        .collect()
}

/// What clients' proposals on instance 1 got back.
#[derive(Debug, Default)]
struct Answers {
    /// Every decision a client was answered with.
    decided: Vec<Val>,
    /// How many proposals came after their node had learned the decision (each was answered
    /// with it at once: the log's `Has already decided for 1 sending {:val, v}`).
    at_once: usize,
}

impl Answers {
    fn extend(&mut self, other: Answers) {
        self.decided.extend(other.decided);
        self.at_once += other.at_once;
    }

    /// Every client was answered with the decision.
    fn all_are(&self, decided: Val) -> Result<(), Failure> {
        ensure!(
            self.decided.iter().all(|a| *a == decided),
            "answers {:?} differ from the decision {decided}",
            self.decided
        );
        Ok(())
    }

    /// At least `min` of the run's `proposals` came after their node learned the decision
    /// (`log` of them in each of the log's runs). A floor: how many do depends on when the
    /// decision lands among the proposals, which the clock decides.
    fn at_once_at_least(
        &self,
        c: &Cluster,
        proposals: usize,
        min: usize,
        log: usize,
    ) -> Result<(), Failure> {
        let at_once = self.at_once;
        c.say(format!(
            "{at_once} of {proposals} proposals came after their node learned the decision, each answered with it"
        ));
        ensure!(
            at_once >= min,
            "only {at_once} of {proposals} proposals came after the decision (the log: {log})"
        );
        Ok(())
    }
}

/// `node` makes the proposals of `plan` on instance 1, in turn. One made after `node` learned
/// the decision must be answered with it at once, and is counted.
async fn propose_plan(c: &Cluster, node: NodeId, plan: Plan) -> Result<Answers, Failure> {
    let mut answers = Answers::default();
    for (pause, v) in plan {
        c.sleep(pause).await;
        let known = c.decisions(node).await?.get(&I1).cloned();
        let answer = c.propose_at(node, I1, v, PROPOSE_TIMEOUT).await?;
        if let Some(known) = known {
            ensure!(
                answer == Outcome::Decided(known.clone()),
                "{node} had decided {known:?} and answered {answer:?}"
            );
            answers.at_once += 1;
        }
        match answer {
            Outcome::Decided(d) => answers.decided.push(value_in(I1, &d)?),
            Outcome::Aborted | Outcome::TimedOut => {}
        }
    }
    Ok(answers)
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
    let mut r = rng_stream(c, 0xC8A5_4ED0);
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

/// A proposing spare of E9-E12: its node, and how many times it proposes. The first proposal
/// is made until the spare gets the decision; the others follow it 1-10 ms apart (E12's: after
/// the decision).
type Spare = (u64, usize);

/// E9-E11: `leaders` propose and are killed one after another, `followers` are killed too,
/// `spares` propose. All `nodes - killed` survivors must agree.
async fn leader_crash(
    c: Cluster,
    nodes: u64,
    leaders: &[u64],
    followers: &[u64],
    spares: &[Spare],
) -> Result<(), Failure> {
    let crashed = crash_leaders(&c, nodes, leaders, followers, spares).await?;
    crashed.check(&c).await.map(|_| ())
}

/// What the crashes of E9-E12 leave to check once the proposals are done.
struct Crashed {
    /// How many nodes must survive.
    survivors: usize,
    /// The value chosen before the first leader died, in the runs it dies that late.
    chosen_first: Option<Val>,
    /// What the spares were answered.
    answers: Answers,
}

/// The proposals and crashes of E9-E12: `leaders` propose and are killed one after another,
/// then `followers` are killed, while `spares` propose. The first leader dies in one of two
/// ways, drawn per run: shortly after proposing (0-3 ms, before any Accept of its got far: most
/// of the log's runs), or, as in log runs 28 and 60, once a majority accepted its value and
/// before anyone learned it; the next leader then finds the value in its promises and must
/// decide exactly it.
async fn crash_leaders(
    c: &Cluster,
    nodes: u64,
    leaders: &[u64],
    followers: &[u64],
    spares: &[Spare],
) -> Result<Crashed, Failure> {
    let mut r = rng(c);
    let vs = elixir_values(&mut r, leaders.len() + spares.len());
    let after_a_majority = r.gen_bool(0.5);
    let again: Vec<Plan> = spares
        .iter()
        .map(|&(_, times)| plan(&mut r, times.saturating_sub(1)))
        .collect();
    if after_a_majority {
        c.say(format!(
            "p{} - Leader dies once a majority accepted, before the decision",
            leaders[0]
        ));
        silence_accepted(c);
    }
    let chosen_first = Cell::new(None);
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
    let spare_clients = spares
        .iter()
        .zip(again)
        .enumerate()
        .map(|(k, (&(s, _), again))| {
            let v = vs[leaders.len() + k];
            async move {
                let Some(first) = propose_until_decided(c, n(s), I1, v).await? else {
                    return Err(Failure(format!("the spare p{s} was crashed")));
                };
                let mut answers = propose_plan(c, n(s), again).await?;
                answers.decided.push(first);
                Ok(answers)
            }
        });
    let (killed, spares_got) = futures::join!(killer, futures::future::join_all(spare_clients));
    killed?;
    let mut answers = Answers::default();
    for got in spares_got {
        answers.extend(got?);
    }
    Ok(Crashed {
        survivors: (nodes as usize) - leaders.len() - followers.len(),
        chosen_first: chosen_first.get(),
        answers,
    })
}

impl Crashed {
    /// The log's pass rule (the survivors decide one proposed value), the value chosen before
    /// the first leader died if it died that late, and every spare answered with the decision.
    async fn check(&self, c: &Cluster) -> Result<Val, Failure> {
        let survivors = c.live();
        ensure!(
            survivors.len() == self.survivors,
            "expected {} survivors, have {survivors:?}",
            self.survivors
        );
        let decided = all_survivors_agree(c, &[I1]).await?[&I1];
        if let Some(chosen) = self.chosen_first {
            ensure!(
                decided == chosen,
                "survivors decided {decided}, but {chosen} was chosen before the leader died"
            );
        }
        self.answers.all_are(decided)?;
        Ok(decided)
    }
}

/// E12's spares: p3-p8 survive (p1 and p2 are the proposers killed, p9-p11 the followers).
const E12_SPARES: [u64; 6] = [3, 4, 5, 6, 7, 8];

/// E12's two proposing spares, drawn per run as the log draws them: one proposes 10 times, the
/// other twice (the log's last and first spare).
fn e12_proposers(c: &Cluster, r: &mut StdRng) -> [Spare; 2] {
    let mut six = E12_SPARES;
    six.shuffle(r);
    c.say(format!(
        "spares p3-p8; p{} proposes 10 times, p{} twice",
        six[0], six[1]
    ));
    [(six[0], 10), (six[1], 2)]
}

/// E12's own draws (who proposes, the paused variant's pauses): a stream apart from the one
/// [`crash_leaders`] draws E11's schedule from, so E12 crashes as E11 does.
fn e12_rng(c: &Cluster) -> StdRng {
    rng_stream(c, 0x0E12_5BA2)
}

/// E12 as the log runs it: as E11, but two of the six spares propose, 10 and 2 times, each
/// first before the decision and then again after it (with the killed proposers' one each, 14
/// proposals a run). Every proposal made after a node learned the decision is answered with it
/// at once (10 a run in the log: all the re-proposals), and the run sees at most 3 leaders, 2
/// changes, as the log's runs do (here p1; p2, once p1 times out, for the few ms by which it
/// outlived p1; then p3: the lowest live id leads).
async fn leader_crash_complex_2(c: Cluster) -> Result<(), Failure> {
    let proposers = e12_proposers(&c, &mut e12_rng(&c));
    let (crashed, leaders) = watching_leaders(&c, async {
        let crashed = crash_leaders(&c, 11, &[1, 2], &[9, 10, 11], &proposers).await?;
        crashed.check(&c).await?;
        Ok(crashed)
    })
    .await?;
    crashed.answers.at_once_at_least(&c, 14, 10, 10)?;
    c.say(format!(
        "leaders trusted: {}",
        leaders.iter().map(|&l| p(l)).collect::<Vec<_>>().join(", ")
    ));
    ensure!(
        leaders.len() <= 3,
        "{} leaders were trusted over the run, {leaders:?} (the log: at most 3)",
        leaders.len()
    );
    Ok(())
}

/// Ours, not the log's (no suspend or resume appears in it): E12 while spares are suspended
/// and resumed one after another (cut off from everyone for 1-60 ms, like a paused BEAM
/// process). Each pause begins while the proposals are under way, and all are over before the
/// checks.
async fn leader_crash_complex_2_paused(c: Cluster) -> Result<(), Failure> {
    let mut r = e12_rng(&c);
    let proposers = e12_proposers(&c, &mut r);
    let pauses: Vec<(u64, Duration, Duration)> = (0..4)
        .map(|k| {
            let node = E12_SPARES[k % E12_SPARES.len()];
            (node, jitter(&mut r, 30), jitter(&mut r, 60))
        })
        .collect();
    let done = Cell::new(false);
    let (crashed, paused) = futures::join!(
        until_done(
            &done,
            crash_leaders(&c, 11, &[1, 2], &[9, 10, 11], &proposers)
        ),
        suspend_while(&c, &pauses, &done)
    );
    // The first pause starts within 30 ms; no spare is decided before a leader timeout
    // (40 ms) after p1 died.
    ensure!(
        paused > 0,
        "no pause fell while the proposals were under way"
    );
    crashed?.check(&c).await.map(|_| ())
}

/// Suspend each `(node, after, for)` of `pauses` in turn: cut it off from everyone `for`,
/// `after` the previous one. A pause begins only while `done` is down; one under way when it
/// rises still ends before this returns. Returns how many pauses there were.
async fn suspend_while(
    c: &Cluster,
    pauses: &[(u64, Duration, Duration)],
    done: &Cell<bool>,
) -> usize {
    let all = c.spec().nodes();
    let mut paused = 0;
    for &(node, after, pause) in pauses {
        c.sleep(after).await;
        if done.get() {
            break;
        }
        c.say(format!("suspend p{node} for {pause:?}"));
        c.faults().isolate(n(node), all.iter().copied());
        c.sleep(pause).await;
        for &o in &all {
            c.faults().repair(n(node), o);
        }
        paused += 1;
    }
    paused
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
/// a follower in 13 of the log's 20 E1 runs): the follower answers with the decision.
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
