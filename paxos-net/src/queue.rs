//! The bounded queues between the node and its links: a per-peer queue of frames to send and
//! the inbox of messages received. Each is bounded twice, in items and in bytes, so neither
//! many small frames nor a few of the largest can make a slow peer (or a slow node) cost
//! more memory than configured. `try_send` never waits: a full queue refuses, and the caller
//! drops and counts (Paxos retransmits on its own timers).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Why [`Sender::try_send`] refused an item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its bound of items or bytes.
    Full,
    /// The receiving end is gone.
    Closed,
}

/// Bytes queued, against a bound.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    /// Reserve `bytes`, unless that would pass the bound (then nothing is reserved).
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        // Never below zero, whatever a caller's arithmetic.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// A queue of at most `capacity` items and `max_bytes` bytes (as the sender declares them).
pub(crate) fn bounded<T>(capacity: usize, max_bytes: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    let budget = Arc::new(Budget {
        used: AtomicUsize::new(0),
        max: max_bytes,
    });
    (
        Sender {
            tx,
            budget: budget.clone(),
        },
        Receiver { rx, budget },
    )
}

/// The sending end; clones share the bounds.
#[derive(Debug)]
pub(crate) struct Sender<T> {
    tx: mpsc::Sender<(T, usize)>,
    budget: Arc<Budget>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            budget: self.budget.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Queue `item`, which weighs `bytes`, without waiting.
    pub(crate) fn try_send(&self, item: T, bytes: usize) -> Result<(), Refused> {
        if !self.budget.try_take(bytes) {
            return Err(if self.tx.is_closed() {
                Refused::Closed
            } else {
                Refused::Full
            });
        }
        self.tx.try_send((item, bytes)).map_err(|e| {
            self.budget.give_back(bytes);
            match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }
        })
    }
}

/// The receiving end: every item taken frees its bytes.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    rx: mpsc::Receiver<(T, usize)>,
    budget: Arc<Budget>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone. Cancel-safe, as `mpsc::Receiver::recv`.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        let (item, bytes) = self.rx.recv().await?;
        self.budget.give_back(bytes);
        Some(item)
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let (item, bytes) = self.rx.try_recv().ok()?;
        self.budget.give_back(bytes);
        Some(item)
    }

    /// Every sender is gone (or [`Receiver::close`] was called).
    pub(crate) fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    /// Refuse further items; those queued can still be taken.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_is_bounded_in_bytes_as_well_as_items() {
        let (tx, mut rx) = bounded::<&str>(4, 100);
        assert_eq!(tx.try_send("a", 60), Ok(()));
        // 60 + 50 > 100: refused, and nothing of it reserved.
        assert_eq!(tx.try_send("b", 50), Err(Refused::Full));
        assert_eq!(tx.try_send("c", 40), Ok(()));
        assert_eq!(tx.try_send("d", 1), Err(Refused::Full));
        // Taking an item frees its bytes.
        assert_eq!(rx.recv().await, Some("a"));
        assert_eq!(tx.try_send("e", 60), Ok(()));
        assert_eq!(rx.try_recv(), Some("c"));
        assert_eq!(rx.try_recv(), Some("e"));
        assert_eq!(rx.try_recv(), None);
        // The item bound holds too, with bytes to spare; a refused item gives its bytes back.
        for i in 0..4 {
            assert_eq!(tx.try_send("small", 1), Ok(()), "{i}");
        }
        assert_eq!(tx.try_send("fifth", 1), Err(Refused::Full));
        assert_eq!(rx.len(), 4);
        while rx.try_recv().is_some() {}
        assert_eq!(tx.try_send("all", 100), Ok(()));
        // More bytes than the bound can ever hold: refused, never wrapping.
        assert_eq!(tx.try_send("huge", usize::MAX), Err(Refused::Full));
        rx.close();
        assert!(rx.is_closed());
        assert_eq!(rx.recv().await, Some("all"));
        assert_eq!(tx.try_send("late", 1), Err(Refused::Closed));
    }
}
