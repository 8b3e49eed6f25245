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
            .fold(self.id, std::cmp::min)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Node `me` of n1..n3, heartbeats every 2 ticks, a node dead after 5 silent ticks.
    fn election(me: u64) -> Election {
        let mut c = Config::symmetric(NodeId(me), (1..=3).map(NodeId));
        c.heartbeat_ticks = 2;
        c.leader_timeout_ticks = 5;
        Election::new(&c)
    }

    fn ticks(e: &mut Election, n: u64) -> Effects<u64> {
        let mut out = Effects::new();
        for _ in 0..n {
            e.tick(&mut out);
        }
        out
    }

    #[test]
    fn a_fresh_cluster_agrees_on_the_lowest_id_at_once() {
        for me in 1..=3 {
            let e = election(me);
            assert_eq!(e.leader(), NodeId(1), "n{me}");
            assert_eq!(e.is_leader(), me == 1, "n{me}");
        }
    }

    #[test]
    fn a_silent_leader_is_dead_after_the_timeout_and_not_before() {
        let mut e = election(2);
        e.on_heard(NodeId(3));
        ticks(&mut e, 4);
        assert_eq!(e.leader(), NodeId(1), "4 silent ticks: n1 still trusted");
        ticks(&mut e, 1);
        assert_eq!(e.leader(), NodeId(2), "5 silent ticks: n1 dead, n2 leads");
        assert!(e.is_leader());
        e.on_heard(NodeId(1));
        assert_eq!(e.leader(), NodeId(1), "heard again: n1 leads again");
        assert!(!e.is_leader());
    }

    #[test]
    fn hearing_a_node_keeps_it_alive_for_a_timeout_from_then() {
        let mut e = election(3);
        ticks(&mut e, 3);
        e.on_heard(NodeId(1));
        ticks(&mut e, 4);
        assert_eq!(e.leader(), NodeId(1), "heard at tick 3, now 7: alive");
        ticks(&mut e, 1);
        assert_eq!(
            e.leader(),
            NodeId(3),
            "tick 8: n1 and n2 both silent too long"
        );
    }

    #[test]
    fn a_node_outside_the_configuration_is_never_trusted() {
        let mut e = election(2);
        ticks(&mut e, 5); // n1 and n3 dead
        e.on_heard(NodeId(0));
        assert_eq!(e.leader(), NodeId(2), "n0 is no member: ignored");
    }

    #[test]
    fn heartbeats_go_to_every_other_node_when_due() {
        let mut e = election(2);
        assert!(ticks(&mut e, 1).messages.is_empty(), "tick 1: not due");
        let out = ticks(&mut e, 1);
        let to: Vec<NodeId> = out.messages.iter().map(|m| m.to).collect();
        assert_eq!(
            to,
            [NodeId(1), NodeId(3)],
            "tick 2: to the others, not to itself"
        );
        assert!(
            out.messages
                .iter()
                .all(|m| matches!(m.message, Message::Heartbeat))
        );
        assert!(ticks(&mut e, 1).messages.is_empty(), "tick 3: not due");
        assert_eq!(ticks(&mut e, 1).messages.len(), 2, "tick 4: due again");
    }
}
