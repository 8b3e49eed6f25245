//! Batching and pipelining keep the log correct: many values per instance, many instances in
//! flight, every value committed exactly once at the place the caller was told, and every node
//! holding the same log.

use paxos_core::testing::ChannelNetwork;
use paxos_core::{BatchConfig, Batcher, Config, LeaderMode, Node, NodeId};
use paxos_storage::MemoryStorage;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "current_thread")]
async fn batched_pipelined_values_land_exactly_where_reported() {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let net = ChannelNetwork::<Vec<u64>>::new();
    let mut handles = Vec::new();
    for id in ids {
        let config = Config::symmetric(id, ids).with_leader_mode(LeaderMode::Elected);
        let handle = Node::spawn(config, MemoryStorage::new(), net.endpoint(id), id.0)
            .expect("valid config");
        handles.push(handle);
    }
    let batcher = Batcher::spawn(
        handles[0].clone(),
        BatchConfig {
            window: 4,
            max_values: 50,
            max_bytes: 1 << 20,
            weigh: |_| 8,
        },
    );
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
