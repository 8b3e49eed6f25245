//! Batching and pipelining keep the log correct: many values per instance, many instances in
//! flight, every value committed exactly once at the place the caller was told, and every node
//! holding the same log.

use paxos_core::testing::ChannelNetwork;
use paxos_core::{
    BatchConfig, Batcher, Config, LeaderMode, LearnerStrategy, Node, NodeHandle, NodeId,
};
use paxos_storage::MemoryStorage;
use std::collections::BTreeMap;
use std::time::Duration;

/// Three nodes on channels (n1 elected leader) and a batcher on n1: window 4, at most
/// `max_values` per batch.
fn cluster(
    strategy: LearnerStrategy,
    max_values: usize,
) -> (Vec<NodeHandle<Vec<u64>>>, Batcher<u64>) {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let net = ChannelNetwork::<Vec<u64>>::new();
    let handles: Vec<_> = ids
        .iter()
        .map(|&id| {
            let config = Config::symmetric(id, ids)
                .with_leader_mode(LeaderMode::Elected)
                .with_learner_strategy(strategy.clone());
            Node::spawn(config, MemoryStorage::new(), net.endpoint(id), id.0).expect("valid config")
        })
        .collect();
    let batcher = Batcher::spawn(
        handles[0].clone(),
        BatchConfig {
            window: 4,
            max_values,
            max_bytes: 1 << 20,
            weigh: |_| 8,
        },
    );
    (handles, batcher)
}

#[tokio::test(flavor = "current_thread")]
async fn batched_pipelined_values_land_exactly_where_reported() {
    let (handles, batcher) = cluster(LearnerStrategy::AllToAll, 50);
    let submits = (0..1000u64).map(|v| {
        let b = batcher.clone();
        async move { (v, b.submit(v).await) }
    });
    let results = futures::future::join_all(submits).await;
    let mut placed = BTreeMap::new();
    for (v, r) in results {
        let c = r.expect("committed");
        assert!(
            placed.insert((c.instance, c.index), v).is_none(),
            "two values reported at {c:?}"
        );
    }
    // Every node converges on the same log, and it holds each value where it was reported.
    let mut logs = Vec::new();
    for h in &handles {
        let mut log = BTreeMap::new();
        for _ in 0..200 {
            log = h.decisions().await.expect("running");
            if log.values().map(Vec::len).sum::<usize>() >= 1000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        logs.push(log);
    }
    assert!(
        logs.windows(2).all(|w| w[0] == w[1]),
        "nodes hold different logs"
    );
    for ((instance, index), v) in &placed {
        assert_eq!(
            logs[0][instance].get(*index),
            Some(v),
            "value {v} not at {instance}[{index}]"
        );
    }
    let instances = logs[0].len();
    assert!(
        instances < 1000,
        "no batching happened: {instances} instances for 1000 values"
    );
}

/// The pipeline API: values go in as chunks of any size (split across batches when a batch
/// fills), decided ticket ranges come back consecutively, in proposal order, and each ticket's
/// value sits exactly where its range says, on every node.
#[tokio::test(flavor = "current_thread")]
async fn pipelined_tickets_come_back_in_order_and_land_where_reported() {
    let (handles, batcher) = cluster(LearnerStrategy::Leader, 16);
    let (mut submitter, mut commits) = batcher.pipeline();
    // Chunks of awkward sizes: a lone value, one that fits, several that must be split.
    let sizes = [1usize, 7, 50, 3, 16, 17, 1, 100, 5];
    let mut values = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        let chunk: Vec<u64> = (0..n as u64).map(|i| 1000 * k as u64 + i).collect();
        let tickets = submitter
            .submit_many(chunk.clone())
            .await
            .expect("submitted");
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
        let commit = commits.next().await.expect("open").expect("committed");
        assert_eq!(
            commit.tickets.start, next,
            "ranges arrive in proposal order"
        );
        next = commit.tickets.end;
        placed.push(commit);
    }
    let mut log = BTreeMap::new();
    for _ in 0..200 {
        log = handles[2].decisions().await.expect("running");
        if placed.iter().all(|c| log.contains_key(&c.instance)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for c in &placed {
        let batch = &log[&c.instance];
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
}
