//! The runtime's end: why a node stopped reaches every handle and the task that ran it, and a
//! stopped node has released its storage.

use async_trait::async_trait;
use paxos_core::testing::ChannelNetwork;
use paxos_core::{
    Config, DurableState, Fatal, InputError, InstanceId, Node, NodeError, NodeId, Storage,
    StorageError, Write,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A store that loads empty and fails every save, as a dead disk does.
struct DeadDisk;

#[async_trait]
impl Storage<u64> for DeadDisk {
    async fn load(&self) -> Result<DurableState<u64>, StorageError> {
        Ok(DurableState::default())
    }

    async fn save(&self, _: &[Write<u64>]) -> Result<(), StorageError> {
        Err(StorageError::Unavailable("the disk is gone".into()))
    }
}

/// A store that saves nothing (none of these tests restarts) and says when it is dropped.
struct Blank(Arc<AtomicBool>);

#[async_trait]
impl Storage<u64> for Blank {
    async fn load(&self) -> Result<DurableState<u64>, StorageError> {
        Ok(DurableState::default())
    }

    async fn save(&self, _: &[Write<u64>]) -> Result<(), StorageError> {
        Ok(())
    }
}

impl Drop for Blank {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn single_node() -> Config {
    Config::symmetric(NodeId(1), [NodeId(1)])
}

/// The first proposal's round cannot be saved: the node stops, the proposer and a second handle
/// both get `Fatal::Storage` with the disk's own error, and so does the task.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_save_reaches_every_handle_and_the_task() {
    let net = ChannelNetwork::<u64>::new();
    let (handle, task) =
        Node::spawn(single_node(), DeadDisk, net.endpoint(NodeId(1)), 1).expect("valid config");
    let other = handle.clone();
    let proposed = handle.propose(7).await;
    let storage_failed = |e: &NodeError| matches!(e, NodeError::Fatal(Fatal::Storage(s)) if s.to_string().contains("the disk is gone"));
    assert!(proposed.as_ref().is_err_and(storage_failed), "{proposed:?}");
    let status = other.status().await;
    assert!(status.as_ref().is_err_and(storage_failed), "{status:?}");
    let ended = task.await;
    assert!(
        matches!(&ended, Err(Fatal::Storage(_))),
        "the task ends with the cause: {ended:?}"
    );
}

/// A shutdown ends the task cleanly, after the node dropped its storage; later requests say
/// `Stopped`.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_ends_the_task_after_the_storage_is_released() {
    let released = Arc::new(AtomicBool::new(false));
    let net = ChannelNetwork::<u64>::new();
    let (handle, task) = Node::spawn(
        single_node(),
        Blank(released.clone()),
        net.endpoint(NodeId(1)),
        1,
    )
    .expect("valid config");
    let (instance, entry) = handle.propose(7).await.expect("decided");
    assert_eq!((instance, entry.value()), (InstanceId(0), Some(&7)));
    handle.shutdown().await;
    assert!(task.await.is_ok(), "a requested shutdown is not a failure");
    assert!(released.load(Ordering::SeqCst), "storage still held");
    assert!(matches!(
        handle.status().await,
        Err(NodeError::Fatal(Fatal::Stopped))
    ));
}

/// A client asking for an instance past the bound gets a typed rejection, and the node goes
/// on serving.
#[tokio::test(flavor = "current_thread")]
async fn an_instance_out_of_range_is_rejected_and_the_node_carries_on() {
    let net = ChannelNetwork::<u64>::new();
    let released = Arc::new(AtomicBool::new(false));
    let (handle, _task) = Node::spawn(single_node(), Blank(released), net.endpoint(NodeId(1)), 1)
        .expect("valid config");
    let beyond = InstanceId(u64::MAX);
    let answer = handle
        .propose_at(beyond, 7, std::time::Duration::from_secs(1))
        .await;
    assert!(
        matches!(
            answer,
            Err(NodeError::Rejected(InputError::InstanceOutOfRange { instance })) if instance == beyond
        ),
        "{answer:?}"
    );
    let (instance, entry) = handle.propose(8).await.expect("decided");
    assert_eq!((instance, entry.value()), (InstanceId(0), Some(&8)));
}
