//! The Go test log (`000_48e927d028b9bfb6.txt`): 1 or 3 proposers, 3 acceptors, 2 learners.

use super::common::value_in;
use super::{Catches, Scenario};
use crate::chaos::Break;
use crate::cluster::{Cluster, ClusterSpec, Failure};
use crate::ensure;
use crate::invariants::Val;
use paxos_core::{InstanceId, NodeId};
use std::collections::BTreeSet;
use std::time::Duration;

const ACCEPTORS: u64 = 3;
const LEARNERS: u64 = 2;
const WAIT: Duration = Duration::from_secs(10);

/// The Go suite.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            suite: "go",
            name: "basic",
            about: "TestBasicPaxos: 1 proposer proposes 100; every learner learns 100",
            runs: 1,
            spec: || ClusterSpec::roles(1, ACCEPTORS, LEARNERS),
            body: |c| Box::pin(basic(c)),
            catches: None,
        },
        Scenario {
            suite: "go",
            name: "single-proposer",
            about: "TestSingleProposer: 100, 200, 300 one after another; each decided as proposed",
            runs: 1,
            spec: || ClusterSpec::roles(1, ACCEPTORS, LEARNERS),
            body: |c| Box::pin(single_proposer(c)),
            catches: None,
        },
        Scenario {
            suite: "go",
            name: "many-proposers",
            about: "TestManyProposer: 3 proposers race on each instance; all agree on one proposed value",
            runs: 1,
            spec: || ClusterSpec::roles(3, ACCEPTORS, LEARNERS),
            body: |c| Box::pin(many_proposers(c, 0.0)),
            catches: None,
        },
        Scenario {
            suite: "go",
            name: "many-proposers-sequential",
            about: "TestManyProposer as the log ran it: proposers 1, 2, 3 one after another on each instance; 2 and 3 adopt 1's accepted value (110, 210, 310)",
            runs: 1,
            spec: || ClusterSpec::roles(3, ACCEPTORS, LEARNERS),
            body: |c| Box::pin(many_proposers_in_turn(c)),
            catches: Some(Catches::Break(Break::IgnorePromisedValues)),
        },
        Scenario {
            suite: "go",
            name: "unreliable",
            about: "TestManyProposerUnreliable: the same with ~30% of proposer-acceptor messages lost",
            runs: 1,
            spec: || ClusterSpec::roles(3, ACCEPTORS, LEARNERS),
            body: |c| Box::pin(many_proposers(c, 0.3)),
            catches: None,
        },
    ]
}

fn learners(c: &Cluster) -> Vec<NodeId> {
    c.spec().learners()
}

/// `[proposer:1] 1.1 reach consensus Value: 100`, as the Go log prints a decision: the
/// proposer's ballot, then the value.
async fn reach_consensus(c: &Cluster, proposer: NodeId, value: Val) -> Result<(), Failure> {
    let ballot = c.node(proposer).await?.status().await?.ballot;
    c.say(format!(
        "[proposer:{}] {ballot} reach consensus Value: {value}",
        proposer.0
    ));
    Ok(())
}

async fn basic(c: Cluster) -> Result<(), Failure> {
    let (instance, value) = c.propose(NodeId(1), 100).await?;
    let value = value_in(instance, &value)?;
    ensure!(value == 100, "proposer got {value}, expected 100");
    reach_consensus(&c, NodeId(1), value).await?;
    let learned = value_in(
        instance,
        &c.await_decided(&learners(&c), instance, WAIT).await?,
    )?;
    ensure!(learned == 100, "learners learned {learned}, expected 100");
    Ok(())
}

async fn single_proposer(c: Cluster) -> Result<(), Failure> {
    for (k, want) in [100, 200, 300].into_iter().enumerate() {
        let (instance, value) = c.propose(NodeId(1), want).await?;
        let value = value_in(instance, &value)?;
        ensure!(
            instance == InstanceId(k as u64),
            "proposal {want} went to {instance}, expected i{k}"
        );
        ensure!(value == want, "proposal {want} decided {value}");
        let learned = value_in(
            instance,
            &c.await_decided(&learners(&c), instance, WAIT).await?,
        )?;
        ensure!(
            learned == want,
            "learners learned {learned} in {instance}, expected {want}"
        );
        reach_consensus(&c, NodeId(1), value).await?;
    }
    Ok(())
}

/// The log's TestManyProposer: three rounds; in round k proposer i proposes `100k + 10i` in
/// instance k-1, one proposer after another. Proposers are not learners, so 2 and 3 run their
/// own rounds (ballots 1.2, 1.3 in the log), find 1's value accepted and must propose it: each
/// returns `100k + 10`.
async fn many_proposers_in_turn(c: Cluster) -> Result<(), Failure> {
    for k in 1..=3u64 {
        let instance = InstanceId(k - 1);
        let first = 100 * k + 10;
        for p in 1..=3u64 {
            let proposer = NodeId(p);
            let got = match c
                .propose_at(proposer, instance, 100 * k + 10 * p, WAIT)
                .await?
            {
                paxos_core::Outcome::Decided(v) => value_in(instance, &v)?,
                other => return Err(Failure(format!("{proposer} got {other:?} in {instance}"))),
            };
            reach_consensus(&c, proposer, got).await?;
            ensure!(
                got == first,
                "{proposer} reached {got} in {instance}; proposer 1's {first} was accepted first"
            );
        }
        let learned = value_in(
            instance,
            &c.await_decided(&learners(&c), instance, WAIT).await?,
        )?;
        ensure!(
            learned == first,
            "learners learned {learned}, expected {first}"
        );
    }
    Ok(())
}

/// Three rounds; in round k every proposer i proposes `100k + 10i` in instance k-1, concurrently.
/// With `loss`, the messages between proposers and acceptors are lost at that rate: the run
/// must really lose some, and the ballots climb above round 1 (the log's `4.2`).
async fn many_proposers(c: Cluster, loss: f64) -> Result<(), Failure> {
    let proposers = [NodeId(1), NodeId(2), NodeId(3)];
    if loss > 0.0 {
        for &p in &proposers {
            for a in c.spec().acceptors() {
                c.faults().set_loss(p, a, loss);
                c.faults().set_loss(a, p, loss);
            }
        }
    }
    for k in 1..=3u64 {
        let instance = InstanceId(k - 1);
        let values: Vec<u64> = proposers.iter().map(|p| 100 * k + 10 * p.0).collect();
        let mut tasks = Vec::new();
        for (&p, &v) in proposers.iter().zip(&values) {
            let c = c.clone();
            tasks.push(async move { (p, c.propose_at(p, instance, v, WAIT).await) });
        }
        let mut got = BTreeSet::new();
        for (p, r) in futures::future::join_all(tasks).await {
            match r? {
                paxos_core::Outcome::Decided(v) => {
                    let v = value_in(instance, &v)?;
                    got.insert(v);
                    reach_consensus(&c, p, v).await?;
                }
                other => return Err(Failure(format!("{p} got {other:?} in {instance}"))),
            }
        }
        ensure!(got.len() == 1, "proposers disagree in {instance}: {got:?}");
        let chosen = got.into_iter().next().unwrap_or_default();
        ensure!(
            values.contains(&chosen),
            "{chosen} was not proposed in {instance} ({values:?})"
        );
        let learned = value_in(
            instance,
            &c.await_decided(&learners(&c), instance, WAIT).await?,
        )?;
        ensure!(
            learned == chosen,
            "learners learned {learned}, proposers {chosen}"
        );
    }
    if loss > 0.0 {
        let lost = c.faults().lost_at_random();
        let mut top = 0;
        for &p in &proposers {
            top = top.max(c.node(p).await?.status().await?.ballot.round);
        }
        c.say(format!("{lost} messages lost; highest round {top}"));
        ensure!(lost > 0, "no message was lost");
        ensure!(top > 1, "the ballots never climbed above round 1");
    }
    Ok(())
}
