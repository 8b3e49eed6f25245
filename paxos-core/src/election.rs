//! An eventual leader detector (Omega) from heartbeats.

use crate::ballot::NodeId;
use crate::config::Config;
use crate::effects::Effects;
use crate::message::Message;
use std::collections::BTreeMap;

/// Heartbeat-based leader detector.
///
/// Every node sends `Heartbeat` to every other node each `heartbeat_ticks`. A node counts as
/// alive if it was heard from within `leader_timeout_ticks` (itself always). The leader is the
/// **lowest** live node id, so `n1` leads a healthy cluster, as `p1` does in the Elixir log.
/// Every node starts by assuming everyone alive, so a fresh cluster agrees on `n1` at once
/// instead of each node first electing itself.
///
/// Omega is only needed for progress: safety never depends on it. Two nodes that both think
/// they lead are just two duelling proposers, separated by ballots and backoff.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Election {
    id: NodeId,
    /// Tick each other node was last heard from.
    last_heard: BTreeMap<NodeId, u64>,
    heartbeat_every: u64,
    timeout: u64,
    now: u64,
}

impl Election {
    /// A detector that assumes every node alive at start.
    pub fn new(config: &Config) -> Self {
        Election {
            id: config.id,
            last_heard: config
                .nodes
                .iter()
                .filter(|n| **n != config.id)
                .map(|n| (*n, 0))
                .collect(),
            heartbeat_every: config.heartbeat_ticks,
            timeout: config.leader_timeout_ticks,
            now: 0,
        }
    }

    /// The node currently trusted as leader.
    pub fn leader(&self) -> NodeId {
        self.last_heard
            .iter()
            .filter(|(_, heard)| self.now.saturating_sub(**heard) < self.timeout)
            .map(|(n, _)| *n)
            .chain(std::iter::once(self.id))
            .min()
            .unwrap_or(self.id)
    }

    /// True if this node trusts itself as leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == self.id
    }

    /// A message (any message) came from `from`: it is alive.
    pub fn on_heard(&mut self, from: NodeId) {
        if let Some(t) = self.last_heard.get_mut(&from) {
            *t = self.now;
        }
    }

    /// One tick: send heartbeats when due.
    pub fn tick<V>(&mut self, out: &mut Effects<V>) {
        self.now += 1;
        if self.now.is_multiple_of(self.heartbeat_every) {
            for &n in self.last_heard.keys() {
                out.send(n, Message::Heartbeat);
            }
        }
    }
}
