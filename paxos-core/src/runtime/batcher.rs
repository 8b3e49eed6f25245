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
//!
//! Two ways in:
//! - [`Batcher::submit`]: one value, one answer ([`Committed`]: its instance and position).
//! - [`Batcher::pipeline`]: a [`Submitter`] that takes values (alone or a `Vec` at a time) and
//!   numbers them with tickets, and a [`Commits`] stream that reports decided *ranges* of
//!   tickets. Nothing is allocated per value, which is what high-throughput callers want.
//!
//! Every batch is one request of the batcher's own [`crate::Session`], put in the log with
//! [`NodeHandle::append_request`]: it is acknowledged only once it is applied (its instance
//! and every one below are decided), it follows the leader (a batcher on a follower is
//! forwarded), and a batch decided twice is applied once. "My batch made it" is a question
//! about the request id, never about equal contents. Results come back in log order.

use super::error::{Fatal, NodeError};
use super::handle::NodeHandle;
use crate::ballot::InstanceId;
use crate::message::Value;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A log value that packs many client items: what a [`Batcher`] proposes per instance.
pub trait Batch: Value {
    /// One client item.
    type Item: Clone + Send + 'static;

    /// Pack `items`, in order, into one value.
    fn pack(items: &[Self::Item]) -> Self;

    /// Pack the items of every chunk, in order, into one value. The default concatenates and
    /// calls [`Batch::pack`]; override it to skip that copy.
    fn pack_chunks(chunks: &[&[Self::Item]]) -> Self {
        Self::pack(&chunks.concat())
    }
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
/// received batch is a slice of the frame it came in ([`crate::decode_zero_copy`]), however many
/// items it holds. On the wire it is one byte string.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PackedBytes(pub Bytes);

impl<'de> serde::Deserialize<'de> for PackedBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PackedBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<PackedBytes, E> {
                Ok(PackedBytes(crate::zero_copy::bytes_from(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<PackedBytes, E> {
                Ok(PackedBytes(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<PackedBytes, E> {
                Ok(PackedBytes(Bytes::from(v)))
            }
            // Formats without byte strings (JSON) carry a sequence of numbers.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PackedBytes, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(PackedBytes(Bytes::from(v)))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

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
        Self::pack_chunks(&[items])
    }

    fn pack_chunks(chunks: &[&[Bytes]]) -> Self {
        let size = chunks.iter().flat_map(|c| c.iter()).map(|b| 4 + b.len());
        let mut buf = BytesMut::with_capacity(size.sum());
        for item in chunks.iter().flat_map(|c| c.iter()) {
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

/// A decided run of a [`Submitter`]'s values: tickets `tickets` sit, in order, at positions
/// `index..` of `instance`'s batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The tickets decided (as numbered by [`Submitter::submit`] / [`Submitter::submit_many`]).
    pub tickets: Range<u64>,
    /// The instance whose batch holds them.
    pub instance: InstanceId,
    /// Position of the first of them in that batch.
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
    /// A batch not in the log within this long fails with [`NodeError::TimedOut`] (its values
    /// may still be chosen: the [`BatchError`] says which tickets).
    pub timeout: Duration,
}

impl<T> Default for BatchConfig<T> {
    fn default() -> Self {
        BatchConfig {
            window: 32,
            max_values: 4096,
            max_bytes: 1 << 20,
            weigh: |_| std::mem::size_of::<T>(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A run of a [`Submitter`]'s tickets that did not make it into the log, and why. With
/// [`NodeError::TimedOut`] their values may still be chosen; resubmitting them is then safe
/// only if the values themselves are idempotent (the batcher's ids are its own).
#[derive(Clone, Debug, thiserror::Error)]
#[error("tickets {}..{}: {error}", .tickets.start, .tickets.end)]
pub struct BatchError {
    /// The tickets to resubmit.
    pub tickets: Range<u64>,
    /// What happened to them.
    pub error: NodeError,
}

type Reply = oneshot::Sender<Result<Committed, NodeError>>;
type CommitSink = mpsc::UnboundedSender<Result<Commit, BatchError>>;

/// Who waits for a run of values.
enum Origin {
    /// One [`Batcher::submit`] call.
    One(Reply),
    /// A [`Submitter`]; the run's first value has ticket `first`.
    Stream { first: u64, sink: CommitSink },
}

/// Values in order with the one who waits for them: a request, or the part of one that a batch
/// took or has yet to take.
struct Run<T> {
    values: Vec<T>,
    origin: Origin,
}

impl<T> Run<T> {
    /// Split off and return the first `n` values (n < len), keeping the rest here.
    fn take_front(&mut self, n: usize) -> Run<T> {
        let rest = self.values.split_off(n);
        let front = std::mem::replace(&mut self.values, rest);
        let origin = match &mut self.origin {
            Origin::Stream { first, sink } => {
                let front = Origin::Stream {
                    first: *first,
                    sink: sink.clone(),
                };
                *first += n as u64;
                front
            }
            // A single value is never split.
            Origin::One(_) => unreachable!("a one-value run is never split"),
        };
        Run {
            values: front,
            origin,
        }
    }

    /// Tell the waiter where its values landed (`index` = position of the first one).
    fn commit(self, instance: InstanceId, index: usize) {
        match self.origin {
            Origin::One(reply) => {
                let _ = reply.send(Ok(Committed { instance, index }));
            }
            Origin::Stream { first, sink } => {
                let tickets = first..first + self.values.len() as u64;
                let _ = sink.send(Ok(Commit {
                    tickets,
                    instance,
                    index,
                }));
            }
        }
    }

    fn fail(self, e: &NodeError) {
        match self.origin {
            Origin::One(reply) => {
                let _ = reply.send(Err(e.clone()));
            }
            Origin::Stream { first, sink } => {
                let _ = sink.send(Err(BatchError {
                    tickets: first..first + self.values.len() as u64,
                    error: e.clone(),
                }));
            }
        }
    }
}

/// A handle that batches and pipelines values onto a node. Cheap to clone.
#[derive(Debug)]
pub struct Batcher<T> {
    requests: mpsc::Sender<Run<T>>,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Batcher {
            requests: self.requests.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Run<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Run({} values)", self.values.len())
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

    /// Commit `value`: returns once the batch holding it is applied (in log order).
    ///
    /// # Errors
    /// [`NodeError::TimedOut`] (the value may still be chosen) or [`NodeError::Fatal`].
    pub async fn submit(&self, value: T) -> Result<Committed, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Run {
                values: vec![value],
                origin: Origin::One(reply),
            })
            .await
            .map_err(|_| NodeError::Fatal(Fatal::Stopped))?;
        rx.await.map_err(|_| NodeError::Fatal(Fatal::Stopped))?
    }

    /// A pipeline onto this batcher: submit values through the [`Submitter`] without waiting
    /// for their decision, and read decided ticket ranges from [`Commits`].
    ///
    /// The caller bounds how many values it keeps in flight (for example: tickets submitted
    /// minus tickets committed).
    ///
    /// ```no_run
    /// # async fn demo(batcher: paxos_core::Batcher<bytes::Bytes>) -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut submitter, mut commits) = batcher.pipeline();
    /// let tickets = submitter.submit_many(vec![bytes::Bytes::from_static(b"a"); 100]).await?;
    /// let mut done = 0;
    /// while done < tickets.end {
    ///     let commit = commits.next().await.expect("batcher running")?;
    ///     done = commit.tickets.end;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn pipeline(&self) -> (Submitter<T>, Commits) {
        let (sink, rx) = mpsc::unbounded_channel();
        (
            Submitter {
                requests: self.requests.clone(),
                sink,
                next: 0,
            },
            Commits { rx },
        )
    }
}

/// The sending half of a [`Batcher::pipeline`]: numbers values with consecutive tickets from 0.
#[derive(Debug)]
pub struct Submitter<T> {
    requests: mpsc::Sender<Run<T>>,
    sink: CommitSink,
    next: u64,
}

impl<T> Submitter<T> {
    /// Queue `value`; returns its ticket. Waits only while the batcher's queue is full.
    ///
    /// # Errors
    /// [`NodeError::Fatal`] if the batcher stopped.
    pub async fn submit(&mut self, value: T) -> Result<u64, NodeError> {
        self.submit_many(vec![value]).await.map(|t| t.start)
    }

    /// Queue `values`, in order; returns their tickets. One queue slot however many values.
    ///
    /// # Errors
    /// [`NodeError::Fatal`] if the batcher stopped.
    pub async fn submit_many(&mut self, values: Vec<T>) -> Result<Range<u64>, NodeError> {
        let first = self.next;
        let tickets = first..first + values.len() as u64;
        if values.is_empty() {
            return Ok(tickets);
        }
        let origin = Origin::Stream {
            first,
            sink: self.sink.clone(),
        };
        self.requests
            .send(Run { values, origin })
            .await
            .map_err(|_| NodeError::Fatal(Fatal::Stopped))?;
        self.next = tickets.end;
        Ok(tickets)
    }

    /// The ticket the next submitted value will get.
    pub fn next_ticket(&self) -> u64 {
        self.next
    }
}

/// The receiving half of a [`Batcher::pipeline`]: decided ticket ranges, in proposal order.
#[derive(Debug)]
pub struct Commits {
    rx: mpsc::UnboundedReceiver<Result<Commit, BatchError>>,
}

impl Commits {
    /// The next decided range, or the range that could not be committed and why. `None` once
    /// the batcher stopped and the [`Submitter`] is gone.
    pub async fn next(&mut self) -> Option<Result<Commit, BatchError>> {
        self.rx.recv().await
    }

    /// A range already decided, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Commit, BatchError>> {
        self.rx.try_recv().ok()
    }
}

async fn run<T: Clone + Send + 'static, B: Batch<Item = T>>(
    node: NodeHandle<B>,
    config: BatchConfig<T>,
    mut requests: mpsc::Receiver<Run<T>>,
) {
    let session = match node.session().await {
        Ok(session) => session,
        Err(e) => {
            // The node is gone: every request gets its cause.
            while let Some(run) = requests.recv().await {
                run.fail(&e);
            }
            return;
        }
    };
    let mut pending: VecDeque<Run<T>> = VecDeque::new();
    let mut pending_values = 0usize;
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    loop {
        // Fill the window: a lone value goes out immediately; a backlog goes out in batches.
        while in_flight.len() < config.window.max(1) && !pending.is_empty() {
            let runs = take_batch(&mut pending, &config);
            pending_values -= runs.iter().map(|r| r.values.len()).sum::<usize>();
            let chunks: Vec<&[T]> = runs.iter().map(|r| r.values.as_slice()).collect();
            let batch = B::pack_chunks(&chunks);
            let id = session.next_request();
            let node = node.clone();
            let timeout = config.timeout;
            in_flight.push_back(async move {
                let result = node.append_request(id, batch, timeout).await;
                (runs, result)
            });
        }
        if !open && pending.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            Some((runs, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(instance) => {
                        let mut index = 0;
                        for run in runs {
                            let len = run.values.len();
                            run.commit(instance, index);
                            index += len;
                        }
                    }
                    Err(e) => {
                        for run in runs {
                            run.fail(&e);
                        }
                    }
                }
            }
            req = requests.recv(), if open => match req {
                Some(r) => {
                    pending_values += r.values.len();
                    pending.push_back(r);
                    // Take what else is queued, up to a full window of full batches.
                    while pending_values < config.max_values.saturating_mul(config.window) {
                        match requests.try_recv() {
                            Ok(r) => {
                                pending_values += r.values.len();
                                pending.push_back(r);
                            }
                            Err(_) => break,
                        }
                    }
                }
                None => open = false,
            },
        }
    }
}

/// The runs of the next batch, splitting the last one if it does not fit whole.
fn take_batch<T>(pending: &mut VecDeque<Run<T>>, config: &BatchConfig<T>) -> Vec<Run<T>> {
    let mut batch: Vec<Run<T>> = Vec::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    while let Some(run) = pending.front_mut() {
        // How many of this run's values fit (at least one value per batch, however large).
        let mut fit = 0;
        for v in &run.values {
            let w = (config.weigh)(v);
            let full = count + fit >= config.max_values || bytes + w > config.max_bytes;
            if full && count + fit > 0 {
                break;
            }
            bytes += w;
            fit += 1;
        }
        count += fit;
        if fit == run.values.len() {
            if let Some(run) = pending.pop_front() {
                batch.push(run);
            }
        } else {
            if fit > 0 {
                batch.push(run.take_front(fit));
            }
            break;
        }
    }
    batch
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
        let chunked = PackedBytes::pack_chunks(&[&items[..1], &[], &items[1..]]);
        assert_eq!(chunked, packed);
        let truncated = PackedBytes(packed.0.slice(..packed.0.len() - 1));
        assert_eq!(truncated.items().count(), 2);
    }

    /// Decoded inside a lending decode, a batch is a slice of the frame, not a copy; JSON (a
    /// sequence of numbers) still decodes.
    #[test]
    fn packed_bytes_decode_without_copying() {
        let packed = PackedBytes::pack(&[Bytes::from_static(b"abc")]);
        let frame = Bytes::from(postcard::to_stdvec(&packed).expect("encodes"));
        let decoded: PackedBytes =
            crate::decode_zero_copy(&frame, |b| postcard::from_bytes(b).expect("decodes"));
        assert_eq!(decoded, packed);
        assert!(frame.as_ptr_range().contains(&decoded.0.as_ptr()));
        let json = serde_json::to_string(&packed).expect("encodes");
        let back: PackedBytes = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, packed);
    }

    /// A batch takes whole runs while they fit and splits the one that does not, keeping
    /// ticket numbers consecutive across the split.
    #[test]
    fn take_batch_splits_runs_at_the_limit() {
        let (sink, _rx) = mpsc::unbounded_channel();
        let mut pending: VecDeque<Run<u64>> = VecDeque::new();
        pending.push_back(Run {
            values: (0..3).collect(),
            origin: Origin::Stream {
                first: 10,
                sink: sink.clone(),
            },
        });
        pending.push_back(Run {
            values: (3..8).collect(),
            origin: Origin::Stream { first: 13, sink },
        });
        let config = BatchConfig {
            window: 1,
            max_values: 5,
            max_bytes: usize::MAX,
            weigh: |_| 8,
            ..BatchConfig::default()
        };
        let batch = take_batch(&mut pending, &config);
        let taken: Vec<u64> = batch.iter().flat_map(|r| r.values.clone()).collect();
        assert_eq!(taken, vec![0, 1, 2, 3, 4]);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].values, vec![5, 6, 7]);
        assert!(matches!(
            pending[0].origin,
            Origin::Stream { first: 15, .. }
        ));
    }
}
