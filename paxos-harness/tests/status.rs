//! `NodeStatus::backlog` sees unhandled messages, and a running node drains them (the probe
//! behind the Elixir suite's `{:message_queue_len, 0}` check).

use paxos_core::testing::ChannelNetwork;
use paxos_core::{Config, Message, Node, NodeId, Transport};
use paxos_storage::MemoryStorage;
use std::time::Duration;

#[tokio::test(flavor = "current_thread")]
async fn backlog_counts_queued_messages_until_the_node_drains_them() {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let net = ChannelNetwork::<u64>::new();
    let me = net.endpoint(ids[0]);
    let peer = net.endpoint(ids[1]);
    for _ in 0..100 {
        peer.send(ids[0], Message::Heartbeat).await.expect("queued");
    }
    let config = Config::symmetric(ids[0], ids);
    let (node, handle) = Node::new(config, MemoryStorage::new(), me, 1).expect("valid config");
    // Asked before the node runs: the status is taken before the mailbox is drained.
    let first = tokio::spawn({
        let handle = handle.clone();
        async move { handle.status().await }
    });
    tokio::task::yield_now().await;
    tokio::spawn(node.run());
    let first = first.await.expect("joined").expect("running");
    assert_eq!(first.backlog, 100, "the queued heartbeats");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = handle.status().await.expect("running");
    assert_eq!(later.backlog, 0, "a running node drains its mailbox");
}
