//! Client-side batching and pipelining: many client values per instance, many instances in
//! flight, and no timer anywhere.
//!
//! A [`Batcher`] sits in front of a node whose log values are batches (any [`Batch`]: `Vec<T>`,
//! or [`PackedBytes`], one contiguous buffer that clones by reference count). Its one task
//! keeps at most `window` instances in flight. A value that arrives while the window has room
//! is proposed **at once**, alone (no batching delay for a lone value, unlike a batch timer);
//! values that arrive while the window is full accumulate and leave together, up to
//! `max_values` / `max_bytes`, as soon as an instance completes. Under load batches grow by
//! themselves; at rest every value goes out immediately.

use super::handle::NodeHandle;
use super::node::NodeError;
use crate::ballot::InstanceId;
use crate::message::Value;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::VecDeque;
use tokio::sync::{mpsc, oneshot};

/// A log value that packs many client items: what a [`Batcher`] proposes per instance.
pub trait Batch: Value {
    /// One client item.
    type Item: Clone + Send + 'static;
    /// Pack `items`, in order, into one value.
    fn pack(items: &[Self::Item]) -> Self;
}

impl<T: Value> Batch for Vec<T> {
    type Item = T;
    fn pack(items: &[T]) -> Self {
        items.to_vec()
    }
}

/// Byte strings packed into one buffer (`u32` big-endian length, then the bytes, repeated).
///
/// Cloning it (into every message and write of an instance) is a reference-count bump, and a
/// received batch is one allocation, however many items it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackedBytes(pub Bytes);

impl PackedBytes {
    /// The items, in order, as zero-copy slices. Stops at the first malformed length.
    pub fn items(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let len = self.0.get(at..at + 4)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let item = self
                .0
                .get(at + 4..at + 4 + len)
                .map(|_| self.0.slice(at + 4..at + 4 + len))?;
            at += 4 + len;
            Some(item)
        })
    }
}

impl Batch for PackedBytes {
    type Item = Bytes;
    fn pack(items: &[Bytes]) -> Self {
        let mut buf = BytesMut::with_capacity(items.iter().map(|b| 4 + b.len()).sum());
        for item in items {
            // Items longer than u32::MAX cannot be framed anyway (the wire limit is far lower).
            buf.put_u32(u32::try_from(item.len()).unwrap_or(u32::MAX));
            buf.extend_from_slice(item);
        }
        PackedBytes(buf.freeze())
    }
}

/// Where a submitted value ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The instance whose batch holds the value.
    pub instance: InstanceId,
    /// The value's position in that batch.
    pub index: usize,
}

/// Limits of a [`Batcher`].
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig<T> {
    /// Instances in flight at most (the pipeline window).
    pub window: usize,
    /// Values per batch at most.
    pub max_values: usize,
    /// Bytes per batch at most, as measured by `weigh` (a single larger value still goes alone).
    pub max_bytes: usize,
    /// Size of one value in bytes, for `max_bytes`.
    pub weigh: fn(&T) -> usize,
}

impl<T> Default for BatchConfig<T> {
    fn default() -> Self {
        BatchConfig {
            window: 32,
            max_values: 4096,
            max_bytes: 1 << 20,
            weigh: |_| std::mem::size_of::<T>(),
        }
    }
}

type Reply = oneshot::Sender<Result<Committed, NodeError>>;

struct Request<T> {
    value: T,
    reply: Reply,
}

/// A handle that batches and pipelines values onto a node. Cheap to clone.
#[derive(Debug)]
pub struct Batcher<T> {
    requests: mpsc::Sender<Request<T>>,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Batcher {
            requests: self.requests.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Request<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl<T: Clone + Send + 'static> Batcher<T> {
    /// Start the batching task (`tokio::spawn`) in front of `node`, whose log values are
    /// batches `B` of `T`s.
    pub fn spawn<B: Batch<Item = T>>(node: NodeHandle<B>, config: BatchConfig<T>) -> Self {
        let (tx, rx) = mpsc::channel(config.max_values.max(1) * 4);
        tokio::spawn(run(node, config, rx));
        Batcher { requests: tx }
    }

    /// Commit `value`: returns once the instance holding it is decided.
    ///
    /// # Errors
    /// [`NodeError::NotLeader`] (leader mode, the node is a follower) or [`NodeError::Stopped`].
    pub async fn submit(&self, value: T) -> Result<Committed, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request { value, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
}

async fn run<T: Clone + Send + 'static, B: Batch<Item = T>>(
    node: NodeHandle<B>,
    config: BatchConfig<T>,
    mut requests: mpsc::Receiver<Request<T>>,
) {
    let mut pending: VecDeque<Request<T>> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        // Fill the window: a lone value goes out immediately; a backlog goes out in batches.
        while in_flight.len() < config.window.max(1) && !pending.is_empty() {
            let batch = take_batch(&mut pending, &config);
            let items: Vec<T> = batch.iter().map(|r| r.value.clone()).collect();
            let values = B::pack(&items);
            let node = node.clone();
            in_flight.push(async move {
                let result = node.propose(values.clone()).await;
                (batch, values, result)
            });
        }
        if !open && pending.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            Some((batch, values, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    // Our batch won the instance.
                    Ok((instance, chosen)) if chosen == values => {
                        for (index, r) in batch.into_iter().enumerate() {
                            let _ = r.reply.send(Ok(Committed { instance, index }));
                        }
                    }
                    // Another proposer's value won that instance: try again in a later one.
                    Ok(_) => {
                        for r in batch.into_iter().rev() {
                            pending.push_front(r);
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for r in batch {
                            let _ = r.reply.send(Err(clone_error(&e, &msg)));
                        }
                    }
                }
            }
            req = requests.recv(), if open => match req {
                Some(r) => {
                    pending.push_back(r);
                    while pending.len() < config.max_values.saturating_mul(config.window) {
                        match requests.try_recv() {
                            Ok(r) => pending.push_back(r),
                            Err(_) => break,
                        }
                    }
                }
                None => open = false,
            },
        }
    }
}

fn take_batch<T>(pending: &mut VecDeque<Request<T>>, config: &BatchConfig<T>) -> Vec<Request<T>> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(r) = pending.front() {
        let w = (config.weigh)(&r.value);
        if !batch.is_empty() && (batch.len() >= config.max_values || bytes + w > config.max_bytes) {
            break;
        }
        bytes += w;
        if let Some(r) = pending.pop_front() {
            batch.push(r);
        }
    }
    batch
}

fn clone_error(e: &NodeError, msg: &str) -> NodeError {
    match e {
        NodeError::NotLeader { leader } => NodeError::NotLeader { leader: *leader },
        NodeError::Stopped => NodeError::Stopped,
        _ => NodeError::Failed(msg.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing keeps items and their order; unpacking is zero-copy and stops at damage.
    #[test]
    fn packed_bytes_round_trip() {
        let items = vec![
            Bytes::from_static(b"a"),
            Bytes::new(),
            Bytes::from_static(b"hello"),
        ];
        let packed = PackedBytes::pack(&items);
        assert_eq!(packed.items().collect::<Vec<_>>(), items);
        let truncated = PackedBytes(packed.0.slice(..packed.0.len() - 1));
        assert_eq!(truncated.items().count(), 2);
    }
}
