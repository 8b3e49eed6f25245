//! What the clients were told, checked the way Jepsen checks a database: every append a
//! client invoked, with when it returned and what it was told, against the log the nodes hold.
//!
//! | check | what fails it |
//! |---|---|
//! | linearizable: some total order of the appends respects real time and puts each at its acknowledged instance, in increasing order (stateright's [`LinearizabilityTester`] over [`LogSpec`]) | an append acknowledged before another was invoked sits above it (acknowledged out of log order, or a new value put into a hole) |
//! | every acknowledged append is in every node's log at its instance, under its request id (where the node still holds its log: below its log start the instance is in its snapshot, whose state the digest check covers, and the value was checked against the chosen one when it was acknowledged) | a lost or moved acknowledged value |
//! | no request is applied twice | a retry decided twice and applied twice (no sessions) |
//!
//! An operation that never returned (its client gave up, or its node crashed) is indeterminate,
//! as Jepsen treats it: it may or may not have taken effect, and constrains nothing.

use crate::cluster::Failure;
use paxos_core::{Applied, Decision, Entry, InstanceId, ProposalId};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use tokio::time::Instant;

/// A client of the history (one operation in flight at a time).
pub type ClientNo = u64;

/// One append as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<V> {
    /// Who.
    pub client: ClientNo,
    /// The request (the same id on every retry).
    pub id: ProposalId,
    /// The value.
    pub value: V,
    /// When the client invoked it.
    pub invoked: Instant,
    /// When it returned with an instance, if it did.
    pub acked: Option<(Instant, InstanceId)>,
}

/// One node's applied log as the history checks it.
#[derive(Clone, Copy, Debug)]
pub struct NodeLog<'a, V> {
    /// The node's log start: everything below is compacted into its snapshot.
    pub start: InstanceId,
    /// The decisions it holds from `start` up to its applied index, in order.
    pub decisions: &'a [Decision<V>],
}

impl<'a, V> From<&'a [Decision<V>]> for NodeLog<'a, V> {
    /// A whole log, never compacted.
    fn from(decisions: &'a [Decision<V>]) -> Self {
        NodeLog {
            start: InstanceId(0),
            decisions,
        }
    }
}

/// Every append of a run, in invocation order.
#[derive(Clone, Debug)]
pub struct History<V> {
    ops: Vec<Op<V>>,
    in_flight: BTreeMap<ClientNo, usize>,
}

impl<V> Default for History<V> {
    fn default() -> Self {
        History {
            ops: Vec::new(),
            in_flight: BTreeMap::new(),
        }
    }
}

/// The sequential specification of an append-only log: each append returns its instance, and
/// in the total order the instances strictly increase.
///
/// To keep the search linear, the spec knows the acknowledged instances up front and accepts
/// an append only at the lowest one not yet placed: the tester's only freedom is then which
/// append sits there, and real time either allows it or nothing does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogSpec {
    remaining: BTreeSet<InstanceId>,
}

/// An append (what the spec sees of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append(pub ProposalId);

impl SequentialSpec for LogSpec {
    type Op = Append;
    type Ret = InstanceId;

    fn invoke(&mut self, _: &Append) -> InstanceId {
        // Only used for operations that never returned: they place nothing.
        InstanceId::MAX
    }

    fn is_valid_step(&mut self, _: &Append, at: &InstanceId) -> bool {
        match self.remaining.first() {
            Some(lowest) if lowest == at => {
                self.remaining.pop_first();
                true
            }
            _ => false,
        }
    }
}

/// A broken property of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly<V> {
    /// No order respects real time: `earlier` was acknowledged (at its instance) before
    /// `later` was invoked, yet `later` sits below it.
    NotLinearizable {
        /// The append acknowledged first.
        earlier: (ProposalId, InstanceId),
        /// The append invoked after, acknowledged below it.
        later: (ProposalId, InstanceId),
    },
    /// Two appends acknowledged at one instance.
    SameInstance(InstanceId, ProposalId, ProposalId),
    /// An acknowledged append is not in a node's log where it was acknowledged.
    NotAtItsInstance {
        /// The append.
        id: ProposalId,
        /// Where it was acknowledged.
        at: InstanceId,
        /// What that node holds there.
        found: Option<Entry<V>>,
    },
    /// A request applied (not skipped as a duplicate) at two instances.
    AppliedTwice(ProposalId, InstanceId, InstanceId),
}

impl<V: fmt::Debug> fmt::Display for Anomaly<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::NotLinearizable { earlier, later } => write!(
                f,
                "not linearizable: {} was acknowledged at {} before {} was invoked, which was acknowledged at {}",
                earlier.0, earlier.1, later.0, later.1
            ),
            Anomaly::SameInstance(at, a, b) => {
                write!(f, "{a} and {b} were both acknowledged at {at}")
            }
            Anomaly::NotAtItsInstance { id, at, found } => match found {
                Some(e) => write!(f, "{id} was acknowledged at {at}, which holds {e} instead"),
                None => write!(
                    f,
                    "{id} was acknowledged at {at}, which a node has not decided"
                ),
            },
            Anomaly::AppliedTwice(id, a, b) => write!(f, "{id} was applied twice, at {a} and {b}"),
        }
    }
}

impl<V: Clone + PartialEq + fmt::Debug> History<V> {
    /// `client` invokes request `id` with `value` at `now`.
    ///
    /// # Errors
    /// The client already has an operation in flight (a bug in the workload).
    pub fn invoke(
        &mut self,
        client: ClientNo,
        id: ProposalId,
        value: V,
        now: Instant,
    ) -> Result<(), Failure> {
        if self.in_flight.contains_key(&client) {
            return Err(Failure(format!(
                "client {client} invoked {id} with another operation in flight"
            )));
        }
        self.in_flight.insert(client, self.ops.len());
        self.ops.push(Op {
            client,
            id,
            value,
            invoked: now,
            acked: None,
        });
        Ok(())
    }

    /// `client`'s operation returned at `now`: acknowledged at `instance`, or (`None`) it gave
    /// up and the operation stays indeterminate.
    pub fn returned(&mut self, client: ClientNo, instance: Option<InstanceId>, now: Instant) {
        if let Some(k) = self.in_flight.remove(&client)
            && let Some(at) = instance
        {
            self.ops[k].acked = Some((now, at));
        }
    }

    /// Every operation, in invocation order.
    pub fn ops(&self) -> &[Op<V>] {
        &self.ops
    }

    /// How many operations were acknowledged, and how many stayed indeterminate.
    pub fn counts(&self) -> (usize, usize) {
        let acked = self.ops.iter().filter(|o| o.acked.is_some()).count();
        (acked, self.ops.len() - acked)
    }

    /// The first anomaly of the history against `logs` (each node's applied log), if any.
    pub fn check<'a, L>(&self, logs: impl IntoIterator<Item = L>) -> Option<Anomaly<V>>
    where
        V: 'a,
        L: Into<NodeLog<'a, V>>,
    {
        self.check_linearizable()
            .or_else(|| logs.into_iter().find_map(|log| self.check_log(log.into())))
    }

    /// Linearizability of the acknowledged appends (stateright's tester over [`LogSpec`]);
    /// when it fails, the pair that shows why.
    fn check_linearizable(&self) -> Option<Anomaly<V>> {
        let mut at: BTreeMap<InstanceId, ProposalId> = BTreeMap::new();
        for op in &self.ops {
            if let Some((_, i)) = op.acked
                && let Some(other) = at.insert(i, op.id)
            {
                return Some(Anomaly::SameInstance(i, other, op.id));
            }
        }
        let spec = LogSpec {
            remaining: at.keys().copied().collect(),
        };
        // Events in time order; at a tie, returns first (a return at the same instant as an
        // invocation happened before it, as far as anyone can tell).
        let mut events: Vec<(Instant, u8, usize)> = Vec::new();
        for (k, op) in self.ops.iter().enumerate() {
            if let Some((t, _)) = op.acked {
                events.push((op.invoked, 1, k));
                events.push((t, 0, k));
            }
        }
        events.sort();
        let mut tester = LinearizabilityTester::new(spec);
        for (_, kind, k) in events {
            let op = &self.ops[k];
            let step = match (kind, op.acked) {
                (1, _) => tester.on_invoke(op.client, Append(op.id)).map(|_| ()),
                (_, Some((_, i))) => tester.on_return(op.client, i).map(|_| ()),
                _ => Ok(()),
            };
            if step.is_err() {
                return None; // not a history the tester can judge; the workload is at fault
            }
        }
        if tester.is_consistent() {
            return None;
        }
        self.real_time_witness()
    }

    /// Two acknowledged appends out of real-time order (what makes a history not linearizable
    /// under [`LogSpec`]).
    fn real_time_witness(&self) -> Option<Anomaly<V>> {
        let acked: Vec<(&Op<V>, Instant, InstanceId)> = self
            .ops
            .iter()
            .filter_map(|o| o.acked.map(|(t, i)| (o, t, i)))
            .collect();
        for (a, a_t, a_i) in &acked {
            for (b, _, b_i) in &acked {
                if *a_t < b.invoked && b_i < a_i {
                    return Some(Anomaly::NotLinearizable {
                        earlier: (a.id, *a_i),
                        later: (b.id, *b_i),
                    });
                }
            }
        }
        None
    }

    /// Every acknowledged append at or above the log's start sits at its instance in `log`,
    /// and no request is applied twice there.
    fn check_log(&self, NodeLog { start, decisions }: NodeLog<'_, V>) -> Option<Anomaly<V>> {
        let log = decisions;
        let by_instance: BTreeMap<InstanceId, &Decision<V>> =
            log.iter().map(|d| (d.instance, d)).collect();
        for op in &self.ops {
            let Some((_, at)) = op.acked else { continue };
            if at < start {
                continue; // compacted into the node's snapshot
            }
            let found = by_instance.get(&at).map(|d| &d.entry);
            let right = matches!(found, Some(Entry::Value { id, value }) if *id == op.id && *value == op.value);
            if !right {
                return Some(Anomaly::NotAtItsInstance {
                    id: op.id,
                    at,
                    found: found.cloned(),
                });
            }
        }
        let mut first: BTreeMap<ProposalId, InstanceId> = BTreeMap::new();
        for d in log.iter().filter(|d| d.applied == Applied::First) {
            if let Some(id) = d.entry.id()
                && let Some(earlier) = first.insert(id, d.instance)
            {
                return Some(Anomaly::AppliedTwice(id, earlier, d.instance));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::ClientId;
    use std::time::Duration;

    fn id(seq: u64) -> ProposalId {
        ProposalId {
            client: ClientId::default(),
            seq,
        }
    }

    fn t(ms: u64) -> Instant {
        // A fixed origin: only differences matter.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    fn entry(seq: u64) -> Decision<u64> {
        Decision {
            instance: InstanceId(seq),
            entry: Entry::Value {
                id: id(seq),
                value: seq,
            },
            applied: Applied::First,
        }
    }

    /// Concurrent appends may land in either order; sequential ones must land in real-time
    /// order, and the tester tells them apart.
    #[test]
    fn the_checker_accepts_concurrent_reorders_and_rejects_real_time_inversions() {
        let mut h = History::default();
        h.invoke(1, id(1), 1, t(0)).unwrap();
        h.invoke(2, id(2), 2, t(1)).unwrap();
        h.returned(2, Some(InstanceId(1)), t(5));
        h.returned(1, Some(InstanceId(2)), t(6));
        let at = |instance: u64, seq: u64| Decision {
            instance: InstanceId(instance),
            ..entry(seq)
        };
        let logs = [at(1, 2), at(2, 1)];
        assert_eq!(h.check([&logs[..]]), None, "overlapping: any order");

        let mut h = History::default();
        h.invoke(1, id(1), 1, t(0)).unwrap();
        h.returned(1, Some(InstanceId(5)), t(2));
        h.invoke(2, id(2), 2, t(3)).unwrap();
        h.returned(2, Some(InstanceId(4)), t(4));
        assert_eq!(
            h.check_linearizable(),
            Some(Anomaly::NotLinearizable {
                earlier: (id(1), InstanceId(5)),
                later: (id(2), InstanceId(4)),
            })
        );
    }

    /// An indeterminate append constrains nothing; an acknowledged one must be in the log at
    /// its instance, and applied once.
    #[test]
    fn acknowledged_appends_must_be_in_the_log_once() {
        let mut h = History::default();
        h.invoke(1, id(1), 1, t(0)).unwrap();
        h.returned(1, Some(InstanceId(1)), t(1));
        h.invoke(1, id(2), 2, t(2)).unwrap();
        h.returned(1, None, t(3));
        assert_eq!(h.counts(), (1, 1));
        let good = [entry(1)];
        assert_eq!(h.check([&good[..]]), None);
        let moved = [Decision {
            instance: InstanceId(1),
            entry: Entry::Noop,
            applied: Applied::Noop,
        }];
        assert!(matches!(
            h.check([&moved[..]]),
            Some(Anomaly::NotAtItsInstance { .. })
        ));
        let twice = [
            entry(1),
            Decision {
                instance: InstanceId(7),
                ..entry(1)
            },
        ];
        assert_eq!(
            h.check([&twice[..]]),
            Some(Anomaly::AppliedTwice(id(1), InstanceId(1), InstanceId(7)))
        );
        assert!(h.invoke(1, id(3), 3, t(4)).is_ok());
        assert!(
            h.invoke(1, id(4), 4, t(5)).is_err(),
            "one operation in flight per client"
        );
    }

    /// Below a node's log start an acknowledged append is in its snapshot, not its log: not
    /// demanded there; at the start and above, it is.
    #[test]
    fn a_compacted_log_is_checked_from_its_start() {
        let mut h = History::default();
        h.invoke(1, id(1), 1, t(0)).unwrap();
        h.returned(1, Some(InstanceId(1)), t(1));
        let tail = [Decision {
            instance: InstanceId(2),
            ..entry(2)
        }];
        let log = |start| NodeLog {
            start: InstanceId(start),
            decisions: &tail[..],
        };
        assert_eq!(h.check([log(2)]), None);
        assert!(matches!(
            h.check([log(1)]),
            Some(Anomaly::NotAtItsInstance { found: None, .. })
        ));
    }
}
