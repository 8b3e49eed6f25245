//! Cluster and node configuration, validated once.

use crate::ballot::NodeId;
use std::collections::BTreeSet;
use std::time::Duration;

/// How chosen values reach the learners (Paxos Made Simple §2.3; seed 004).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LearnerStrategy {
    /// Every acceptor sends `Accepted` to every learner: fastest, `acceptors × learners` messages.
    #[default]
    AllToAll,
    /// Acceptors send `Accepted` to these learners only; each of them, once it learns, sends
    /// `Decided` to every other learner. One learner: fewest messages; several: no single point
    /// of failure.
    Distinguished(BTreeSet<NodeId>),
    /// Multi-Paxos as deployed: each acceptor answers only the proposer of the ballot, with an
    /// `Accepted` that leaves out the value (the proposer holds it). The proposer learns from
    /// its quorum and tells every other learner with a compact [`crate::Message::Chosen`] that
    /// names instances, not values; it goes out with the proposer's next `Accept`s, or on the
    /// next tick when there are none. The fewest messages and bytes per decision, and the
    /// distinguished learner follows the leader.
    Leader,
}

/// How a node answers linearizable reads ([`crate::NodeHandle::query`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadPolicy {
    /// ReadIndex: the leader confirms its ballot with a quorum (one round trip per batch of
    /// reads) and answers at its frontier. Safe whatever the clocks do.
    #[default]
    ReadIndex,
    /// Leader lease: a quorum that confirmed the leader's ballot also promises to refuse
    /// other leaders for `duration` (from when each of them got the confirmation request);
    /// the leader answers reads on its own until `duration - max_drift` after it *sent* that
    /// request. Safe only while no two nodes' clocks disagree on an interval of `duration`
    /// by more than `max_drift`; a node paused (or a clock stepped) beyond it can read stale
    /// data. Every node of a cluster must use the same policy.
    Lease {
        /// How long a confirmation holds. Keep it below the leader timeout, or a dead
        /// leader's lease delays the next election by up to the rest of it.
        duration: Duration,
        /// The bound on clock drift over `duration`, subtracted on the leader's side.
        max_drift: Duration,
    },
}

impl ReadPolicy {
    /// The lease's length and the leader's own (shortened) length, if leased.
    pub(crate) fn lease(&self) -> Option<(Duration, Duration)> {
        match *self {
            ReadPolicy::ReadIndex => None,
            ReadPolicy::Lease {
                duration,
                max_drift,
            } => Some((duration, duration.saturating_sub(max_drift))),
        }
    }
}

/// Who may run phase 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaderMode {
    /// Any node proposes whenever asked; duelling proposers are separated by randomized backoff.
    #[default]
    Leaderless,
    /// An eventual leader detector (Omega, [`crate::Election`]) picks one leader; only it runs
    /// phase 1 and proposals sent to other nodes are answered `Aborted`.
    Elected,
}

/// Configuration of one node. Times are in ticks of the runtime's [`Config::tick_interval`];
/// the pure state machines only count ticks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// Every node of the cluster (proposers may be any of them). With membership changes
    /// ([`crate::NodeHandle::reconfigure`]) this and the roles below are epoch 0, the
    /// configuration the cluster started with: every node, a joining one too, is given the
    /// same, and the log says what the cluster is now.
    pub nodes: BTreeSet<NodeId>,
    /// This node is not one of `nodes`: it starts outside the cluster, waits until a
    /// membership change adds it as a learner, then catches up from the members (snapshot and
    /// log tail) and follows the log like any of them. It asks the nodes of its configuration
    /// for the decided log, so give it the cluster's initial configuration (the window,
    /// [`Config::max_instances_ahead`], must be the one the cluster started with: it says
    /// where every later epoch starts). Without it, a node missing from `nodes` is a mistake
    /// ([`ConfigError::SelfMissing`]).
    pub joining: bool,
    /// The acceptors; a majority of them is a quorum.
    pub acceptors: BTreeSet<NodeId>,
    /// The learners; every decision reaches all of them.
    pub learners: BTreeSet<NodeId>,
    /// How decisions reach the learners.
    pub learner_strategy: LearnerStrategy,
    /// Leaderless or elected leader.
    pub leader_mode: LeaderMode,
    /// Wall (or virtual) time of one tick.
    pub tick_interval: Duration,
    /// A phase without a quorum for this many ticks is retried.
    pub phase_timeout_ticks: u64,
    /// After a `Nack`, wait a random number of ticks in `[min, max]` before retrying.
    pub backoff_ticks: (u64, u64),
    /// Heartbeat period of the leader detector.
    pub heartbeat_ticks: u64,
    /// A node not heard from for this many ticks is suspected dead.
    pub leader_timeout_ticks: u64,
    /// Ask peers for missed decisions every this many ticks (0 = never).
    pub catch_up_ticks: u64,
    /// At most this many decisions are sent in answer to one `CatchUp`.
    pub catch_up_batch: usize,
    /// About this many bytes of decisions in answer to one `CatchUp` (their postcard size; an
    /// answer holds at least one decision whatever its size), so a catch-up of large values
    /// costs a bounded burst per ask. Keep it well under the transport's frame and queue
    /// limits.
    pub catch_up_bytes: usize,
    /// At most this many accepted entries in one `Promise` (its pages; at least one).
    pub promise_page_entries: usize,
    /// About this many bytes of entries in one `Promise` (their postcard size; a page holds at
    /// least one entry whatever its size). Keep it well under the transport's frame limit.
    pub promise_page_bytes: usize,
    /// The window: a proposer has at most this many instances above the decided prefix it
    /// knows in flight, and a client may pin a proposal (`propose_at`) at most this far above
    /// it (the leader fills every hole below what it proposes). It is also the hand-off
    /// distance of a membership change: the next epoch starts this many instances after the
    /// entry that ends the current one, so keep it small (every instance of that tail that no
    /// client filled is decided as a no-op). Fixed by epoch 0 for the life of the cluster.
    pub max_instances_ahead: u64,
    /// Take a snapshot once this many entries were applied since the last one (0: never).
    /// Needs a state machine to take it from (see [`crate::Replica::compact`]).
    pub snapshot_every_entries: u64,
    /// Also take a snapshot once the entries applied since the last one weigh this many bytes
    /// (their postcard encoding; 0: no byte bound). Whichever bound is reached first wins.
    pub snapshot_every_bytes: u64,
    /// Entries kept below a snapshot's index when compacting, so a peer a little behind
    /// catches up from the log instead of a whole snapshot.
    pub snapshot_keep_entries: u64,
    /// A snapshot moves in pieces of at most this many bytes. Keep it well under the
    /// transport's frame limit.
    pub snapshot_chunk_bytes: usize,
    /// A snapshot offered by a peer that declares more bytes than this is refused (the
    /// receiver buffers a whole snapshot before it installs it).
    pub max_snapshot_bytes: u64,
    /// A request is remembered (to deduplicate retries) for this many instances after it was
    /// applied; a copy decided later, or an older request of its client, is refused as
    /// [`crate::Applied::Expired`] (0: remember forever, and memory grows with every request).
    /// Must be the same on every node of a cluster, and never changed while it runs: it is
    /// part of how the log is applied.
    pub session_window_entries: u64,
    /// How linearizable reads are answered (the same on every node).
    pub read_policy: ReadPolicy,
}

/// A [`Config`] that cannot work.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No acceptors.
    #[error("a cluster needs at least one acceptor")]
    NoAcceptors,
    /// A role names a node that is not in `nodes`.
    #[error("{0} is an acceptor or learner but not in the node list")]
    NotANode(NodeId),
    /// This node is not in `nodes` (and does not say it is joining, [`Config::joining`]).
    #[error("this node {0} is not in the node list (a node that joins a running cluster says so)")]
    SelfMissing(NodeId),
    /// A joining node that is one of the initial nodes.
    #[error("node {0} is one of the initial nodes; only a new id can join")]
    JoiningMember(NodeId),
    /// A timing parameter is zero or inverted.
    #[error("invalid timing: {0}")]
    Timing(&'static str),
    /// A snapshot parameter cannot work.
    #[error("invalid snapshot setting: {0}")]
    Snapshot(&'static str),
}

impl Config {
    /// This configuration for node `id` joining the cluster it describes (see
    /// [`Config::joining`]).
    pub fn for_joining(&self, id: NodeId) -> Config {
        Config {
            id,
            joining: true,
            ..self.clone()
        }
    }

    /// A cluster where every node is proposer, acceptor and learner (the Elixir shape), with
    /// defaults suited to a LAN or a simulation: 1 ms ticks, 50 ms phase timeout.
    pub fn symmetric(id: NodeId, nodes: impl IntoIterator<Item = NodeId>) -> Config {
        let nodes: BTreeSet<NodeId> = nodes.into_iter().collect();
        Config {
            id,
            acceptors: nodes.clone(),
            learners: nodes.clone(),
            nodes,
            joining: false,
            learner_strategy: LearnerStrategy::AllToAll,
            leader_mode: LeaderMode::Leaderless,
            tick_interval: Duration::from_millis(1),
            phase_timeout_ticks: 50,
            backoff_ticks: (5, 40),
            heartbeat_ticks: 10,
            leader_timeout_ticks: 40,
            catch_up_ticks: 50,
            catch_up_batch: 256,
            catch_up_bytes: 1 << 20,
            promise_page_entries: 1024,
            promise_page_bytes: 1 << 20,
            max_instances_ahead: 1024,
            snapshot_every_entries: 0,
            snapshot_every_bytes: 0,
            snapshot_keep_entries: 1024,
            session_window_entries: 1 << 14,
            snapshot_chunk_bytes: 256 << 10,
            max_snapshot_bytes: 1 << 30,
            read_policy: ReadPolicy::ReadIndex,
        }
    }

    /// This config with other acceptors.
    pub fn with_acceptors(mut self, acceptors: impl IntoIterator<Item = NodeId>) -> Config {
        self.acceptors = acceptors.into_iter().collect();
        self
    }

    /// This config with other learners.
    pub fn with_learners(mut self, learners: impl IntoIterator<Item = NodeId>) -> Config {
        self.learners = learners.into_iter().collect();
        self
    }

    /// This config with a learner strategy.
    pub fn with_learner_strategy(mut self, strategy: LearnerStrategy) -> Config {
        self.learner_strategy = strategy;
        self
    }

    /// This config with a leader mode.
    pub fn with_leader_mode(mut self, mode: LeaderMode) -> Config {
        self.leader_mode = mode;
        self
    }

    /// The same config for another node of the cluster.
    pub fn for_node(&self, id: NodeId) -> Config {
        Config { id, ..self.clone() }
    }

    /// Votes needed for a quorum: a strict majority of the acceptors.
    pub fn quorum(&self) -> usize {
        crate::quorum::majority(self.acceptors.len())
    }

    /// True if this node is an acceptor.
    pub fn is_acceptor(&self) -> bool {
        self.acceptors.contains(&self.id)
    }

    /// True if this node is a learner.
    pub fn is_learner(&self) -> bool {
        self.learners.contains(&self.id)
    }

    /// The learners an acceptor sends `Accepted` to under the strategy.
    /// Under [`LearnerStrategy::Leader`] this is empty: `Accepted` goes to the proposer only.
    pub fn accepted_recipients(&self) -> &BTreeSet<NodeId> {
        static NONE: BTreeSet<NodeId> = BTreeSet::new();
        match &self.learner_strategy {
            LearnerStrategy::AllToAll => &self.learners,
            LearnerStrategy::Distinguished(set) => set,
            LearnerStrategy::Leader => &NONE,
        }
    }

    /// Check the config.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.acceptors.is_empty() {
            return Err(ConfigError::NoAcceptors);
        }
        match (self.nodes.contains(&self.id), self.joining) {
            (false, false) => return Err(ConfigError::SelfMissing(self.id)),
            (true, true) => return Err(ConfigError::JoiningMember(self.id)),
            _ => {}
        }
        let distinguished = match &self.learner_strategy {
            LearnerStrategy::AllToAll | LearnerStrategy::Leader => BTreeSet::new(),
            LearnerStrategy::Distinguished(s) => s.clone(),
        };
        if let Some(n) = self
            .acceptors
            .iter()
            .chain(&self.learners)
            .chain(&distinguished)
            .find(|n| !self.nodes.contains(n))
        {
            return Err(ConfigError::NotANode(*n));
        }
        if self.tick_interval.is_zero() {
            return Err(ConfigError::Timing("tick_interval is zero"));
        }
        if self.phase_timeout_ticks == 0 || self.heartbeat_ticks == 0 {
            return Err(ConfigError::Timing(
                "phase_timeout_ticks and heartbeat_ticks must be > 0",
            ));
        }
        if self.backoff_ticks.0 > self.backoff_ticks.1 {
            return Err(ConfigError::Timing("backoff_ticks min > max"));
        }
        if self.leader_timeout_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::Timing(
                "leader_timeout_ticks must exceed heartbeat_ticks",
            ));
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::Snapshot("snapshot_chunk_bytes is zero"));
        }
        if let ReadPolicy::Lease {
            duration,
            max_drift,
        } = self.read_policy
            && max_drift >= duration
        {
            return Err(ConfigError::Timing(
                "a lease's max_drift must be shorter than its duration",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_joining_node_may_be_missing_from_the_nodes() {
        let founding = Config::symmetric(NodeId(1), [1, 2, 3].map(NodeId));
        assert_eq!(founding.validate(), Ok(()));
        let stranger = Config {
            id: NodeId(4),
            ..founding.clone()
        };
        assert_eq!(
            stranger.validate(),
            Err(ConfigError::SelfMissing(NodeId(4)))
        );
        let joining = founding.for_joining(NodeId(4));
        assert_eq!(joining.validate(), Ok(()));
        assert_eq!(
            founding.for_joining(NodeId(2)).validate(),
            Err(ConfigError::JoiningMember(NodeId(2)))
        );
    }
}
