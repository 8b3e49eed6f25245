//! [`StateMachine`]: the application a log drives, and the contract the runtime keeps with it.

use crate::ballot::InstanceId;
use bytes::Bytes;

/// A snapshot's state could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot restore the state machine: {0}")]
pub struct RestoreError(pub String);

/// The application a replicated log drives.
///
/// Give a node one with [`crate::Node::with_state_machine`]; the runtime then
/// - restores it at start-up from the node's snapshot (if any) and applies the decided
///   entries kept above it, so it resumes exactly where the node stopped;
/// - applies every decided client value in instance order, once per request: no-ops and
///   duplicates of a request applied earlier are skipped (the sessions, which the snapshots
///   carry, decide what is a duplicate, the same way on every node);
/// - takes a snapshot when [`crate::Config::snapshot_every_entries`] entries were applied since
///   the last one: it asks [`StateMachine::snapshot`] for the state at that point, between two
///   applies, and compacts the log below it ([`crate::Replica::compact`]);
/// - restores it from a snapshot a peer sent when the node was too far behind to catch up
///   from the log ([`crate::Effects::restored`]), then applies what follows.
///
/// Every node that applied the same prefix must hold the same state: `apply` must be
/// deterministic (no clocks, no randomness, no iteration over hash maps into the state).
///
/// # Example
/// A counter of the values applied:
/// ```
/// use bytes::Bytes;
/// use paxos_core::{InstanceId, RestoreError, StateMachine};
///
/// #[derive(Default)]
/// struct Sum(u64);
///
/// impl StateMachine<u64> for Sum {
///     fn apply(&mut self, _instance: InstanceId, value: &u64) -> Bytes {
///         self.0 = self.0.wrapping_add(*value);
///         // The output: what the caller of `NodeHandle::call` is answered.
///         Bytes::copy_from_slice(&self.0.to_be_bytes())
///     }
///     fn snapshot(&self) -> Bytes {
///         Bytes::copy_from_slice(&self.0.to_be_bytes())
///     }
///     fn restore(&mut self, _below: InstanceId, state: &[u8]) -> Result<(), RestoreError> {
///         let bytes = state.try_into().map_err(|_| RestoreError("not a u64".into()))?;
///         self.0 = u64::from_be_bytes(bytes);
///         Ok(())
///     }
/// }
///
/// let mut sum = Sum::default();
/// assert_eq!(sum.apply(InstanceId(0), &5), Bytes::copy_from_slice(&5u64.to_be_bytes()));
/// let mut copy = Sum::default();
/// copy.restore(InstanceId(1), &sum.snapshot()).unwrap();
/// assert_eq!(copy.0, 5);
/// ```
pub trait StateMachine<V>: Send + 'static {
    /// Apply `value`, the first copy of its request, decided in `instance`, and return its
    /// output (empty if there is nothing to say): the caller of [`crate::NodeHandle::call`]
    /// gets it, and so does a retry of the same request, from the sessions, while they
    /// remember it ([`crate::Config::session_window_entries`]). Called in instance order; must
    /// be deterministic, output included.
    fn apply(&mut self, instance: InstanceId, value: &V) -> Bytes;

    /// The state after everything applied so far, encoded. Called on the node loop between
    /// two applies, when the snapshot policy says so: keep it proportional to the state.
    fn snapshot(&self) -> Bytes;

    /// A snapshot taken off the node loop, for a state too big to encode between two applies
    /// (openraft #596): return a job that encodes the state *as of now* (from a cheap copy:
    /// an `Arc` of a persistent map, a copy-on-write clone) and the runtime runs it on a
    /// blocking thread while the node goes on applying; the log is compacted at this point
    /// once it returns. `None`, the default, has the runtime call [`StateMachine::snapshot`]
    /// on the loop instead. A job's finishing time is real time, so simulations that replay a
    /// seed bit for bit should keep the default.
    fn snapshot_job(&self) -> Option<SnapshotJob> {
        None
    }

    /// Replace the whole state with one [`StateMachine::snapshot`] produced (here or on a
    /// peer, at the same version of your code): the state after every instance below `below`.
    /// The next `apply` is for an instance at or above it.
    ///
    /// # Errors
    /// Bytes this state machine cannot read: the node stops (a state machine that skipped a
    /// snapshot would diverge from its peers), at start-up as when a peer sent it.
    fn restore(&mut self, below: InstanceId, state: &[u8]) -> Result<(), RestoreError>;

    /// Answer a read-only `query` from the current state ([`crate::NodeHandle::query`]):
    /// called on the node loop once the node has applied everything a linearizable read
    /// must see, so the answer reflects every write acknowledged before the read began. It
    /// must not change the state (it is not in the log: other nodes never run it). The
    /// default answers nothing.
    fn query(&self, query: &[u8]) -> Bytes {
        let _ = query;
        Bytes::new()
    }
}

/// The off-loop encoding of a snapshot ([`StateMachine::snapshot_job`]).
pub type SnapshotJob = Box<dyn FnOnce() -> Bytes + Send>;

impl<V, M: StateMachine<V> + ?Sized> StateMachine<V> for Box<M> {
    fn apply(&mut self, instance: InstanceId, value: &V) -> Bytes {
        (**self).apply(instance, value)
    }
    fn snapshot(&self) -> Bytes {
        (**self).snapshot()
    }
    fn snapshot_job(&self) -> Option<SnapshotJob> {
        (**self).snapshot_job()
    }
    fn restore(&mut self, below: InstanceId, state: &[u8]) -> Result<(), RestoreError> {
        (**self).restore(below, state)
    }
    fn query(&self, query: &[u8]) -> Bytes {
        (**self).query(query)
    }
}
