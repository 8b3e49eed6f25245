//! [`Cluster`]: a body's handle on a running cluster.

use super::{ClusterSpec, Driver, Failure, Lifecycle, Shared, lock};
use crate::ensure;
use crate::faults::Faults;
use crate::invariants::{Checkable, Val};
use crate::observer::Observer;
use crate::wait::{Look, eventually};
use paxos_core::{
    Entry, InstanceId, MemberChange, Membership, NodeError, NodeHandle, NodeId, Outcome,
    ProposalId, ReconfigError,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How long [`Cluster::node`] waits for a (re)started node to register.
const NODE_START: Duration = Duration::from_secs(1);

/// The body's handle on a running cluster. Cheap to clone.
pub struct Cluster<V = Val> {
    pub(super) shared: Arc<Shared<V>>,
}

impl<V> Clone for Cluster<V> {
    fn clone(&self) -> Self {
        Cluster {
            shared: self.shared.clone(),
        }
    }
}

impl<V: Checkable> Cluster<V> {
    /// The spec the cluster was built from.
    pub fn spec(&self) -> &ClusterSpec<V> {
        &self.shared.spec
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.shared.env.seed
    }

    /// The observer (event log and invariant checker).
    pub fn observer(&self) -> &Observer<V> {
        &self.shared.observer
    }

    /// The fault plan (partitions, loss).
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Nodes that are not crashed.
    pub fn live(&self) -> Vec<NodeId> {
        let down = lock(&self.shared.down);
        self.shared
            .spec
            .nodes()
            .into_iter()
            .filter(|n| !down.contains(n))
            .collect()
    }

    /// The current handle of `node`, waiting (up to 1 s) for it to start.
    pub async fn node(&self, node: NodeId) -> Result<NodeHandle<V>, Failure> {
        eventually(NODE_START, Duration::from_millis(1), || async {
            Ok(match lock(&self.shared.handles).get(&node) {
                Some(h) => Look::Done(h.clone()),
                None => Look::Wait(format!("{node} did not start")),
            })
        })
        .await
    }

    /// `node` proposes `value` in the next free instance; returns the entry chosen there.
    pub async fn propose(&self, node: NodeId, value: V) -> Result<(InstanceId, Entry<V>), Failure> {
        self.shared.observer.proposed(node, None, value.clone());
        Ok(self.node(node).await?.propose(value).await?)
    }

    /// `node` proposes `value` in `instance`, waiting at most `timeout`.
    pub async fn propose_at(
        &self,
        node: NodeId,
        instance: InstanceId,
        value: V,
        timeout: Duration,
    ) -> Result<Outcome<V>, Failure> {
        self.shared
            .observer
            .proposed(node, Some(instance), value.clone());
        Ok(self
            .node(node)
            .await?
            .propose_at(instance, value, timeout)
            .await?)
    }

    /// `node` puts `value` in the log as request `id` (a session's), waiting at most `timeout`;
    /// returns its instance once it is applied there.
    pub async fn append(
        &self,
        node: NodeId,
        id: ProposalId,
        value: V,
        timeout: Duration,
    ) -> Result<InstanceId, Failure> {
        self.shared.observer.proposed(node, None, value.clone());
        Ok(self
            .node(node)
            .await?
            .append_request(id, value, timeout)
            .await?)
    }

    /// The directory `node`'s storage keeps its files in, if it has one (RocksDB): to measure
    /// its size on disk.
    pub fn storage_dir(&self, node: NodeId) -> Option<&std::path::Path> {
        self.shared.stores.get(&node).and_then(|s| s.dir())
    }

    /// Every decision `node` knows.
    pub async fn decisions(&self, node: NodeId) -> Result<BTreeMap<InstanceId, Entry<V>>, Failure> {
        Ok(self.node(node).await?.decisions().await?)
    }

    /// Wait until every node in `nodes` has decided `instance` (looking every 5 ms, at most
    /// `timeout`), check they agree, and return the value.
    pub async fn await_decided(
        &self,
        nodes: &[NodeId],
        instance: InstanceId,
        timeout: Duration,
    ) -> Result<Entry<V>, Failure> {
        eventually(timeout, Duration::from_millis(5), || async {
            let mut values = BTreeMap::new();
            for &n in nodes {
                if let Some(v) = self.decisions(n).await?.get(&instance) {
                    values.insert(n, v.clone());
                }
            }
            let distinct: BTreeSet<&Entry<V>> = values.values().collect();
            ensure!(
                distinct.len() <= 1,
                "{instance}: nodes decided different values {values:?}"
            );
            if let (true, Some(v)) = (values.len() == nodes.len(), distinct.first()) {
                return Ok(Look::Done((*v).clone()));
            }
            let missing: Vec<NodeId> = nodes
                .iter()
                .filter(|n| !values.contains_key(n))
                .copied()
                .collect();
            Ok(Look::Wait(format!(
                "{instance}: {missing:?} did not decide (have {values:?})"
            )))
        })
        .await
    }

    /// Ask `via` to change the membership, following its "not the leader" answers to the
    /// leader it names (and waiting while there is none) for at most `within`: the new
    /// configuration once in force on the node that made it, or the typed refusal.
    pub async fn try_reconfigure(
        &self,
        via: NodeId,
        change: &MemberChange,
        within: Duration,
    ) -> Result<Result<Membership, ReconfigError>, Failure> {
        self.say(format!(
            "reconfigure via {via}: acceptors {:?}, learners {:?}",
            change.acceptors, change.learners
        ));
        let target = std::cell::Cell::new(via);
        eventually(within, Duration::from_millis(20), || async {
            let node = target.get();
            let handle = match lock(&self.shared.handles).get(&node) {
                Some(h) => h.clone(),
                None => {
                    // A leader hint can name a node that has crashed since: ask another
                    // live node, which will point at the new leader once there is one.
                    let next = self.live().into_iter().find(|&n| n != node);
                    target.set(if self.live().contains(&via) {
                        via
                    } else {
                        next.unwrap_or(via)
                    });
                    return Ok(Look::Wait(format!("{node} is down")));
                }
            };
            match handle.reconfigure(change.clone(), within).await {
                Ok(m) => Ok(Look::Done(Ok(m))),
                Err(NodeError::Reconfig(ReconfigError::NotLeader(leader))) => {
                    if let Some(l) = leader {
                        target.set(l);
                    }
                    Ok(Look::Wait(format!(
                        "{node} is not the leader (it trusts {leader:?})"
                    )))
                }
                Err(NodeError::Reconfig(refused)) => Ok(Look::Done(Err(refused))),
                Err(NodeError::Fatal(_)) => Ok(Look::Wait(format!("{node} stopped"))),
                Err(e) => Err(Failure(format!("reconfigure via {node}: {e}"))),
            }
        })
        .await
    }

    /// [`Cluster::try_reconfigure`], failing the run on a refusal.
    pub async fn reconfigure(
        &self,
        via: NodeId,
        change: &MemberChange,
        within: Duration,
    ) -> Result<Membership, Failure> {
        match self.try_reconfigure(via, change, within).await? {
            Ok(m) => {
                self.say(format!("in force: {m}"));
                Ok(m)
            }
            Err(e) => Err(Failure(format!("membership change refused: {e}"))),
        }
    }

    /// The configuration in force on `node`.
    pub async fn membership(&self, node: NodeId) -> Result<Membership, Failure> {
        Ok(self.node(node).await?.status().await?.membership)
    }

    /// Wait until every node in `nodes` is in `epoch` (or further), for at most `within`.
    pub async fn await_epoch(
        &self,
        nodes: &[NodeId],
        epoch: u64,
        within: Duration,
    ) -> Result<(), Failure> {
        eventually(within, Duration::from_millis(5), || async {
            for &n in nodes {
                let at = self.membership(n).await?.epoch;
                if at < epoch {
                    return Ok(Look::Wait(format!("{n} is in epoch {at}, not {epoch}")));
                }
            }
            Ok(Look::Done(()))
        })
        .await
    }

    /// The leader trusted by most live nodes (leader mode).
    pub async fn leader(&self) -> Result<Option<NodeId>, Failure> {
        let mut votes: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in self.live() {
            if let Some(l) = self.node(n).await?.status().await?.leader {
                *votes.entry(l).or_default() += 1;
            }
        }
        Ok(votes
            .into_iter()
            .max_by_key(|(n, c)| (*c, std::cmp::Reverse(*n)))
            .map(|(n, _)| n))
    }

    /// Print a line under the scenario's `=== RUN` header (like `t.Log` in Go) and log it.
    pub fn say(&self, line: impl Into<String>) {
        let line = line.into();
        self.shared.observer.note(line.clone());
        lock(&self.shared.said).push(line);
    }

    /// Sleep in run time (simulated under turmoil).
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Crash `node`: its task and sockets are gone; its storage stays.
    pub async fn crash(&self, node: NodeId) -> Result<(), Failure> {
        self.shared.observer.note(format!("crash {node}"));
        lock(&self.shared.handles).remove(&node);
        lock(&self.shared.down).insert(node);
        self.lifecycle(Lifecycle::Crash(node)).await
    }

    /// Restart a crashed `node` from its storage.
    pub async fn restart(&self, node: NodeId) -> Result<(), Failure> {
        self.shared.observer.note(format!("restart {node}"));
        lock(&self.shared.down).remove(&node);
        self.lifecycle(Lifecycle::Restart(node)).await?;
        self.node(node).await.map(|_| ())
    }

    async fn lifecycle(&self, what: Lifecycle) -> Result<(), Failure> {
        match &self.shared.driver {
            #[cfg(feature = "turmoil")]
            Driver::Sim(sim) => sim.request(what).await,
            Driver::Realtime(_) => super::realtime::lifecycle(&self.shared, what).await,
        }
    }
}
