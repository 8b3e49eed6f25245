//! Batching and pipelining keep the log correct: many values per instance, many instances in
//! flight, every value committed exactly once at the place the caller was told, and every node
//! holding the same log.

use paxos_core::{BatchConfig, Batcher, Entry, InstanceId, LearnerStrategy, NodeId};
use paxos_harness::cluster::{self, BodyFuture, Cluster, ClusterSpec, Env, Failure, TransportKind};
use paxos_harness::wait::{Look, eventually};
use std::collections::BTreeMap;
use std::time::Duration;

type Log = BTreeMap<InstanceId, Entry<Vec<u64>>>;

/// Three nodes on channels (n1 elected leader) and a batcher on n1 (window 4, at most
/// `max_values` per batch) for `body`. The nodes run bare: the batcher proposes through the
/// node handle, past the observer's record of proposals, and the tests check placement
/// themselves.
fn with_batcher(
    strategy: LearnerStrategy,
    max_values: usize,
    body: impl FnOnce(Cluster<Vec<u64>>, Batcher<u64>) -> BodyFuture + 'static,
) {
    let spec = ClusterSpec::<Vec<u64>>::symmetric(3)
        .elected()
        .learner_strategy(strategy)
        .unobserved();
    let env = Env::new(1).over(TransportKind::Channel);
    let run = cluster::run(spec, &env, move |c| {
        Box::pin(async move {
            let batcher = Batcher::spawn(
                c.node(NodeId(1)).await?,
                BatchConfig {
                    window: 4,
                    max_values,
                    max_bytes: 1 << 20,
                    weigh: |_| 8,
                    ..BatchConfig::default()
                },
            );
            body(c, batcher).await
        })
    });
    if let Err(e) = run.result {
        panic!("{e}");
    }
}

/// `node`'s log once `complete` holds for it (at most 2 s).
async fn log_once(
    c: &Cluster<Vec<u64>>,
    node: NodeId,
    complete: impl Fn(&Log) -> bool,
) -> Result<Log, Failure> {
    eventually(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || async {
            let log = c.decisions(node).await?;
            Ok(match complete(&log) {
                true => Look::Done(log),
                false => Look::Wait(format!("{node} has {} instances", log.len())),
            })
        },
    )
    .await
}

#[test]
fn batched_pipelined_values_land_exactly_where_reported() {
    with_batcher(LearnerStrategy::AllToAll, 50, |c, batcher| {
        Box::pin(batched(c, batcher))
    });
}

async fn batched(c: Cluster<Vec<u64>>, batcher: Batcher<u64>) -> Result<(), Failure> {
    let submits = (0..1000u64).map(|v| {
        let b = batcher.clone();
        async move { (v, b.submit(v).await) }
    });
    let results = futures::future::join_all(submits).await;
    let mut placed = BTreeMap::new();
    for (v, r) in results {
        let at = r?;
        assert!(
            placed.insert((at.instance, at.index), v).is_none(),
            "two values reported at {at:?}"
        );
    }
    // Every node converges on the same log, and it holds each value where it was reported.
    let mut logs = Vec::new();
    for node in c.live() {
        let all_in = |log: &Log| {
            log.values()
                .filter_map(Entry::value)
                .map(Vec::len)
                .sum::<usize>()
                >= 1000
        };
        logs.push(log_once(&c, node, all_in).await?);
    }
    assert!(
        logs.windows(2).all(|w| w[0] == w[1]),
        "nodes hold different logs"
    );
    for ((instance, index), v) in &placed {
        assert_eq!(
            logs[0][instance].value().and_then(|b| b.get(*index)),
            Some(v),
            "value {v} not at {instance}[{index}]"
        );
    }
    let instances = logs[0].len();
    assert!(
        instances < 1000,
        "no batching happened: {instances} instances for 1000 values"
    );
    Ok(())
}

/// The pipeline API: values go in as chunks of any size (split across batches when a batch
/// fills), decided ticket ranges come back consecutively, in proposal order, and each ticket's
/// value sits exactly where its range says, on every node.
#[test]
fn pipelined_tickets_come_back_in_order_and_land_where_reported() {
    with_batcher(LearnerStrategy::Leader, 16, |c, batcher| {
        Box::pin(pipelined(c, batcher))
    });
}

async fn pipelined(c: Cluster<Vec<u64>>, batcher: Batcher<u64>) -> Result<(), Failure> {
    let (mut submitter, mut commits) = batcher.pipeline();
    // Chunks of awkward sizes: a lone value, one that fits, several that must be split.
    let sizes = [1usize, 7, 50, 3, 16, 17, 1, 100, 5];
    let mut values = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        let chunk: Vec<u64> = (0..n as u64).map(|i| 1000 * k as u64 + i).collect();
        let tickets = submitter.submit_many(chunk.clone()).await?;
        assert_eq!(
            tickets.start,
            values.len() as u64,
            "tickets are consecutive"
        );
        values.extend(chunk);
    }
    let mut placed = Vec::new();
    let mut next = 0u64;
    while next < values.len() as u64 {
        let commit = commits
            .next()
            .await
            .expect("the batcher runs")
            .map_err(|e| Failure(e.to_string()))?;
        assert_eq!(
            commit.tickets.start, next,
            "ranges arrive in proposal order"
        );
        next = commit.tickets.end;
        placed.push(commit);
    }
    let every_commit = |log: &Log| placed.iter().all(|p| log.contains_key(&p.instance));
    let log = log_once(&c, NodeId(3), every_commit).await?;
    for c in &placed {
        let batch = log[&c.instance].value().expect("a batch, not a no-op");
        for (k, ticket) in c.tickets.clone().enumerate() {
            assert_eq!(
                batch.get(c.index + k),
                Some(&values[ticket as usize]),
                "ticket {ticket} not at {}[{}]",
                c.instance,
                c.index + k
            );
        }
    }
    assert!(
        placed.iter().all(|c| c.tickets.end - c.tickets.start <= 16),
        "a range larger than a batch"
    );
    Ok(())
}

/// Two clients' batches with equal contents are two requests: each is committed, at its own
/// instance, and the log holds both copies (it used to decide "my batch won" by equality, so
/// both reported success over one copy).
#[test]
fn equal_batches_of_two_clients_are_both_in_the_log() {
    with_batcher(LearnerStrategy::AllToAll, 4, |c, first| {
        Box::pin(async move {
            let second = Batcher::spawn(c.node(NodeId(2)).await?, BatchConfig::default());
            let (a, b) = futures::join!(first.submit(7), second.submit(7));
            let (a, b) = (a?, b?);
            assert_ne!(a.instance, b.instance, "two requests, two instances");
            let both = |log: &Log| [a.instance, b.instance].iter().all(|i| log.contains_key(i));
            let log = log_once(&c, NodeId(3), both).await?;
            for at in [a, b] {
                assert_eq!(
                    log[&at.instance].value().and_then(|v| v.get(at.index)),
                    Some(&7)
                );
            }
            Ok(())
        })
    });
}
