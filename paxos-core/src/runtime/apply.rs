//! The state machine side of a node: applied in log order, restored from snapshots, and
//! snapshotted by the policy of [`Config::snapshot_every_entries`].

use super::error::Fatal;
use crate::ballot::InstanceId;
use crate::config::Config;
use crate::effects::{Effects, Write};
use crate::log::Entry;
use crate::message::Value;
use crate::replica::Replica;
use crate::session::Applied;
use crate::state_machine::StateMachine;

/// Drives one node's [`StateMachine`] (see its module docs for the contract).
pub(super) struct Applier<V> {
    machine: Box<dyn StateMachine<V>>,
    every: u64,
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
        replica: &Replica<V>,
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
        for d in replica.applied_log(from, usize::MAX) {
            apply(machine.as_mut(), d.instance, &d.entry, d.applied);
        }
        Ok(Applier {
            machine,
            every: config.snapshot_every_entries,
        })
    }

    /// After a step's save: apply what it applied (restoring a snapshot it installed at its
    /// place in the order), then take a snapshot if the policy says so. The snapshot's writes
    /// go to `unsaved`, durable with the next save; the log is compacted in memory at once.
    ///
    /// # Errors
    /// [`Fatal::Restore`] if an installed snapshot's state cannot be restored.
    pub(super) fn after_step(
        &mut self,
        replica: &mut Replica<V>,
        out: &Effects<V>,
        unsaved: &mut Vec<Write<V>>,
    ) -> Result<(), Fatal> {
        let after = out.restored.as_ref().map_or(out.applied.len(), |r| r.after);
        let machine = self.machine.as_mut();
        for (instance, entry, applied) in &out.applied[..after] {
            apply(machine, *instance, entry, *applied);
        }
        if let Some(r) = &out.restored {
            machine
                .restore(r.meta.index, &r.state)
                .map_err(Fatal::Restore)?;
        }
        for (instance, entry, applied) in &out.applied[after..] {
            apply(machine, *instance, entry, *applied);
        }
        let kept = replica.snapshot().map_or(InstanceId(0), |s| s.meta.index);
        if self.every > 0 && replica.applied().0.saturating_sub(kept.0) >= self.every {
            let point = replica.snapshot_point();
            let mut writes = Effects::new();
            // `NotNewer` cannot happen here (the point is above the kept snapshot).
            if replica
                .compact(point, self.machine.snapshot(), &mut writes)
                .is_ok()
            {
                unsaved.append(&mut writes.writes);
            }
        }
        Ok(())
    }
}

/// Apply one entry if it is a request's first copy.
fn apply<V: Value>(
    machine: &mut dyn StateMachine<V>,
    instance: InstanceId,
    entry: &Entry<V>,
    applied: Applied,
) {
    if let (Applied::First, Entry::Value { value, .. }) = (applied, entry) {
        machine.apply(instance, value);
    }
}
