//! The state machine side of a node: applied in log order, restored from snapshots, and
//! snapshotted by the policy of [`Config::snapshot_every_entries`].

use super::error::Fatal;
use crate::ballot::InstanceId;
use crate::config::Config;
use crate::effects::{Effects, Write};
use crate::log::{Entry, ProposalId};
use crate::message::Value;
use crate::replica::{Replica, SnapshotPoint};
use crate::session::Applied;
use crate::state_machine::StateMachine;
use bytes::Bytes;
use std::collections::BTreeMap;

/// Drives one node's [`StateMachine`] (see its module docs for the contract).
pub(super) struct Applier<V> {
    machine: Box<dyn StateMachine<V>>,
    every: u64,
    every_bytes: u64,
    /// Bytes of the entries applied since this node last took a snapshot (one installed from
    /// a peer does not reset it: at worst the next one comes early).
    bytes_since: u64,
    /// A snapshot being encoded off the loop ([`StateMachine::snapshot_job`]), one at a time.
    job: Option<Job>,
}

/// A snapshot being encoded on a blocking thread, and the point of the log it is of.
struct Job {
    point: SnapshotPoint,
    task: tokio::task::JoinHandle<Bytes>,
}

impl<V: Value> Applier<V> {
    /// Bring `machine` to where `replica` resumes: restore the snapshot it holds (if any),
    /// then apply the decided entries kept above it.
    ///
    /// # Errors
    /// [`Fatal::Restore`] if the snapshot's state cannot be restored.
    pub(super) fn start(
        mut machine: Box<dyn StateMachine<V>>,
        config: &Config,
        replica: &mut Replica<V>,
    ) -> Result<Self, Fatal> {
        let from = match replica.snapshot_state() {
            Some((meta, state)) => {
                machine
                    .restore(meta.index, &state)
                    .map_err(Fatal::Restore)?;
                meta.index
            }
            None => InstanceId(0),
        };
        let mut bytes_since = 0;
        for d in replica.applied_log(from, usize::MAX) {
            if config.snapshot_every_bytes > 0 {
                bytes_since += weight(&d.entry);
            }
            apply(machine.as_mut(), replica, d.instance, &d.entry, d.applied);
        }
        Ok(Applier {
            machine,
            every: config.snapshot_every_entries,
            every_bytes: config.snapshot_every_bytes,
            bytes_since,
            job: None,
        })
    }

    /// After a step's save: apply what it applied (restoring a snapshot it installed at its
    /// place in the order). Returns the output of every request the step applied or showed
    /// applied (a duplicate's and a restored one's from the sessions), to answer their
    /// callers with.
    ///
    /// # Errors
    /// [`Fatal::Restore`] if an installed snapshot's state cannot be restored.
    pub(super) fn after_step(
        &mut self,
        replica: &mut Replica<V>,
        out: &Effects<V>,
    ) -> Result<Outputs, Fatal> {
        let machine = self.machine.as_mut();
        let mut done = 0;
        for r in &out.restored {
            // `after` only grows within a step; `get` keeps a broken one from panicking.
            for (instance, entry, applied) in out.applied.get(done..r.after).unwrap_or_default() {
                apply(machine, replica, *instance, entry, *applied);
            }
            machine
                .restore(r.meta.index, &r.state)
                .map_err(Fatal::Restore)?;
            done = r.after;
        }
        for (instance, entry, applied) in out.applied.get(done..).unwrap_or_default() {
            apply(machine, replica, *instance, entry, *applied);
        }
        if self.every_bytes > 0 {
            let after = out.restored.last().map_or(0, |r| r.after);
            let weights = out.applied.get(after..).unwrap_or_default().iter();
            self.bytes_since += weights.map(|(_, e, _)| weight(e)).sum::<u64>();
        }
        let restored = out.restored.iter().flat_map(|r| &r.requests);
        let answered = out
            .applied
            .iter()
            .map(|(_, e, _)| e)
            .chain(restored.map(|(_, e)| e));
        let outputs = answered
            .filter_map(Entry::id)
            .filter_map(|id| Some((id, replica.output_of(id)?.clone())))
            .collect();
        Ok(outputs)
    }

    /// The state machine's answer to a read-only `query` ([`StateMachine::query`]).
    pub(super) fn query(&self, query: &[u8]) -> Bytes {
        self.machine.query(query)
    }

    /// Take a snapshot if the policy says so, once the step's callers and readers were
    /// served (a reader keeping up sees every slot before it can be compacted): on the loop,
    /// or as a job on a blocking thread if the state machine hands one
    /// ([`Applier::encoded`] then says when it is done). The snapshot's writes go to
    /// `unsaved`, durable with the next save; the log is compacted in memory at once.
    pub(super) fn snapshot_if_due(
        &mut self,
        replica: &mut Replica<V>,
        unsaved: &mut Vec<Write<V>>,
    ) {
        let kept = replica.snapshot().map_or(InstanceId(0), |s| s.meta.index);
        let by_entries = self.every > 0 && replica.applied().0.saturating_sub(kept.0) >= self.every;
        let by_bytes = self.every_bytes > 0 && self.bytes_since >= self.every_bytes;
        if !(by_entries || by_bytes) || self.job.is_some() {
            return;
        }
        self.bytes_since = 0;
        let point = replica.snapshot_point();
        match self.machine.snapshot_job() {
            Some(job) => {
                let task = tokio::task::spawn_blocking(job);
                self.job = Some(Job { point, task });
            }
            None => {
                let state = self.machine.snapshot();
                compact(replica, point, state, unsaved);
            }
        }
    }

    /// Wait until the snapshot being encoded off the loop is done (pending while there is
    /// none, so the node loop can always wait on it).
    /// Cancel-safe: the job is kept until it finished.
    pub(super) async fn encoded(&mut self) -> Encoded {
        let Some(job) = &mut self.job else {
            return std::future::pending().await;
        };
        let result = (&mut job.task).await;
        let point = match self.job.take() {
            Some(job) => job.point,
            None => return std::future::pending().await,
        };
        Encoded { point, result }
    }
}

/// A snapshot encoded off the loop ([`Applier::encoded`]).
pub(super) struct Encoded {
    point: SnapshotPoint,
    result: Result<Bytes, tokio::task::JoinError>,
}

impl Encoded {
    /// Compact `replica` at the encoded point (unless a newer snapshot came meanwhile, or the
    /// job failed: then the next policy point tries again).
    pub(super) fn compact<V: Value>(self, replica: &mut Replica<V>, unsaved: &mut Vec<Write<V>>) {
        match self.result {
            Ok(state) => compact(replica, self.point, state, unsaved),
            Err(e) => {
                tracing::error!(node = %replica.id(), error = %e, "snapshot job failed; the log is not compacted");
            }
        }
    }
}

/// Compact `replica` at `point` with the state machine's `state` there.
fn compact<V: Value>(
    replica: &mut Replica<V>,
    point: SnapshotPoint,
    state: Bytes,
    unsaved: &mut Vec<Write<V>>,
) {
    let mut writes = Effects::new();
    // `NotNewer`: a snapshot installed from a peer meanwhile is newer; this one is dropped.
    if replica.compact(point, state, &mut writes).is_ok() {
        unsaved.append(&mut writes.writes);
    }
}

/// The outputs of the requests one step answers, by request.
pub(super) type Outputs = BTreeMap<ProposalId, Bytes>;

/// What `entry` weighs for [`Config::snapshot_every_bytes`]: its postcard encoding.
fn weight<V: Value>(entry: &Entry<V>) -> u64 {
    postcard::experimental::serialized_size(entry).map_or(u64::MAX, |n| n as u64)
}

/// Apply one entry if it is a request's first copy, and record its output.
fn apply<V: Value>(
    machine: &mut dyn StateMachine<V>,
    replica: &mut Replica<V>,
    instance: InstanceId,
    entry: &Entry<V>,
    applied: Applied,
) {
    if let (Applied::First, Entry::Value { id, value }) = (applied, entry) {
        let output = machine.apply(instance, value);
        replica.record_output(*id, output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::{Ballot, NodeId};
    use crate::effects::Restored;
    use crate::log::{ClientId, ProposalId};
    use crate::snapshot::SnapshotMeta;
    use crate::state_machine::RestoreError;
    use crate::storage::DurableState;
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};

    /// Records what it is told, in order.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl StateMachine<u64> for Recorder {
        fn apply(&mut self, instance: InstanceId, value: &u64) -> Bytes {
            self.0
                .lock()
                .unwrap()
                .push(format!("apply {instance} {value}"));
            Bytes::new()
        }
        fn snapshot(&self) -> Bytes {
            Bytes::new()
        }
        fn restore(&mut self, below: InstanceId, _: &[u8]) -> Result<(), RestoreError> {
            self.0.lock().unwrap().push(format!("restore {below}"));
            Ok(())
        }
    }

    fn value(i: u64) -> (InstanceId, Entry<u64>, Applied) {
        let id = ProposalId {
            client: ClientId::default(),
            seq: i,
        };
        let entry = Entry::Value { id, value: i };
        (InstanceId(i), entry, Applied::First)
    }

    fn installed(index: u64, after: usize) -> Restored<u64> {
        let meta = SnapshotMeta {
            index: InstanceId(index),
            ballot: Ballot::ZERO,
            size: 0,
            checksum: 0,
        };
        Restored {
            meta,
            state: Bytes::new(),
            requests: Vec::new(),
            after,
        }
    }

    fn value_entry(i: u64) -> Entry<u64> {
        value(i).1
    }

    /// The bytes policy counts the entries a restart replays (they were applied since the last
    /// snapshot too), and nothing at all while it is off.
    #[test]
    fn the_byte_count_starts_with_the_replayed_tail_and_only_when_asked() {
        let mut config = Config::symmetric(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let mut disk = DurableState::default();
        for i in 0..3 {
            disk.decided.insert(InstanceId(i), value_entry(i));
        }
        let recorder = || Box::new(Recorder(Arc::default()));
        let mut replica = Replica::new(&config, disk.clone(), 1).expect("valid");
        let mut off = Applier::start(recorder(), &config, &mut replica).expect("started");
        let mut out = Effects::new();
        out.applied = vec![value(3)];
        off.after_step(&mut replica, &out).expect("applied");
        assert_eq!(off.bytes_since, 0, "no byte bound: nothing weighed");
        config.snapshot_every_bytes = 1 << 20;
        let mut replica = Replica::new(&config, disk, 1).expect("valid");
        let mut on = Applier::start(recorder(), &config, &mut replica).expect("started");
        let tail: u64 = (0..3).map(|i| weight(&value_entry(i))).sum();
        assert!(tail > 0);
        assert_eq!(on.bytes_since, tail, "the replayed tail counts");
        let mut out = Effects::new();
        out.applied = vec![value(3)];
        on.after_step(&mut replica, &out).expect("applied");
        assert_eq!(on.bytes_since, tail + weight(&value_entry(3)));
    }

    /// Two snapshots installed in one step (it folded several inputs) are both restored, each
    /// at its place among the applied entries: dropping the first would leave the entries
    /// between them applied on top of the state from before it (seen in chaos seed 179).
    #[test]
    fn every_snapshot_installed_in_a_step_is_restored_in_its_place() {
        let config = Config::symmetric(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let mut replica = Replica::new(&config, DurableState::default(), 1).expect("valid");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut applier = Applier::start(Box::new(Recorder(calls.clone())), &config, &mut replica)
            .expect("nothing to restore");
        let mut out = Effects::new();
        out.applied = vec![value(0), value(5), value(6), value(9)];
        out.restored = vec![installed(5, 1), installed(9, 3)];
        applier.after_step(&mut replica, &out).expect("restored");
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "apply i0 0",
                "restore i5",
                "apply i5 5",
                "apply i6 6",
                "restore i9",
                "apply i9 9"
            ]
        );
    }
}
