//! The properties every model is checked against (Paxos Made Simple §2.1, §2.2).
//!
//! "Chosen" is computed from the ghost votes, not from any node's view: a value is chosen in an
//! instance once a majority of acceptors voted for it (sent `Accepted`) at one ballot, at any
//! time in the run — even if some of them later accepted something else or crashed.

use crate::cluster::{PaxosModel, State};
use paxos_core::{Ballot, Entry, InstanceId, Membership, NodeId, majority};
use stateright::Property;
use std::collections::{BTreeMap, BTreeSet};

/// Safety: at most one value learned per instance, by anyone, ever.
pub const AGREEMENT: &str = "agreement";
/// Safety: a learned value was proposed by a client.
pub const VALIDITY: &str = "validity";
/// Safety: a learned value is chosen (a quorum voted for it at one ballot).
pub const LEARNED_IS_CHOSEN: &str = "learned is chosen";
/// Safety: at most one value chosen per instance (P2).
pub const ONE_VALUE_CHOSEN: &str = "one value chosen";
/// Safety: no ballot is used with two values in one instance (ballots are never reused).
pub const ONE_VALUE_PER_BALLOT: &str = "one value per ballot";
/// Liveness witness: some run learns a value (the safety checks are not vacuous).
pub const SOME_VALUE_LEARNED: &str = "some value learned";
/// Liveness witness: some run learns every instance a proposal names.
pub const EVERY_NAMED_INSTANCE_LEARNED: &str = "every named instance learned";
/// Liveness: once the faults stop (whatever was in flight lost), every instance below the
/// highest one any node decided becomes decided (no hole is left for ever).
pub const HEALS_WITHOUT_HOLES: &str = "heals without holes";
/// Safety: a snapshot a node installs holds exactly the decided prefix below its index (one
/// entry per instance, each the one learned there).
pub const INSTALL_IS_DECIDED_PREFIX: &str = "install is the decided prefix";
/// Liveness witness (models with compaction): some run installs a snapshot at a follower.
pub const SNAPSHOT_INSTALLED: &str = "snapshot installed";

/// Safety: a read answered shows every value that was learned anywhere before it began
/// (stronger than linearizability, which asks it only of writes acknowledged before).
pub const READS_SEE_EARLIER_WRITES: &str = "reads see earlier writes";
/// Liveness witness (models with reads): some run answers a read that must see a value.
pub const READ_ANSWERED_AFTER_A_WRITE: &str = "read answered after a write";

/// Safety (membership change): every vote is cast at a ballot of a configuration that was
/// decided (epoch 0, or named by the first change decided in the epoch before), by one of
/// its acceptors. No quorum of a configuration that was never decided decides anything.
pub const VOTES_IN_DECIDED_CONFIGURATIONS: &str = "votes in decided configurations";
/// Safety (membership change): the epochs split the log: every vote of epoch `e` is at an
/// instance from the epoch's start (a window after the change that began it) to the next
/// epoch's start, and a node enters epoch `e` only with every instance below its start
/// decided, so the new epoch's first decisions extend the old prefix.
pub const EPOCHS_EXTEND_THE_PREFIX: &str = "epochs extend the prefix";
/// Liveness witness (models with changes): some run chooses a value in a later epoch.
pub const CHOSEN_IN_A_LATER_EPOCH: &str = "chosen in a later epoch";

/// Every property, for `Model::properties`.
pub fn all() -> Vec<Property<PaxosModel>> {
    vec![
        Property::always(AGREEMENT, |_, s| agreement(s)),
        Property::always(VALIDITY, |_, s| validity(s)),
        Property::always(LEARNED_IS_CHOSEN, learned_is_chosen),
        Property::always(ONE_VALUE_CHOSEN, |m, s| {
            chosen(m, s).values().all(|vs| vs.len() <= 1)
        }),
        Property::always(ONE_VALUE_PER_BALLOT, |_, s| one_value_per_ballot(s)),
        Property::sometimes(SOME_VALUE_LEARNED, |_, s| !learned(s).is_empty()),
        Property::sometimes(EVERY_NAMED_INSTANCE_LEARNED, every_named_instance_learned),
        Property::always(HEALS_WITHOUT_HOLES, |m, s| {
            !m.check_healing || heals_without_holes(m, s)
        }),
        Property::always(INSTALL_IS_DECIDED_PREFIX, |_, s| {
            install_is_decided_prefix(s)
        }),
        Property::sometimes(SNAPSHOT_INSTALLED, |m: &PaxosModel, s: &State| {
            m.max_compactions == 0 || !s.history.installed.is_empty()
        }),
        Property::always(READS_SEE_EARLIER_WRITES, |_, s| reads_see_earlier_writes(s)),
        Property::always(VOTES_IN_DECIDED_CONFIGURATIONS, |m, s| {
            votes_in_decided_configurations(m, s)
        }),
        Property::always(EPOCHS_EXTEND_THE_PREFIX, epochs_extend_the_prefix),
        Property::sometimes(CHOSEN_IN_A_LATER_EPOCH, |m: &PaxosModel, s: &State| {
            m.reconfigurations.is_empty() || chosen_by_epoch(m, s).keys().any(|(e, _)| *e > 0)
        }),
        Property::sometimes(READ_ANSWERED_AFTER_A_WRITE, |m: &PaxosModel, s: &State| {
            m.reads.is_empty()
                || s.history.reads_answered.keys().any(|k| {
                    s.history
                        .reads_begun
                        .get(k)
                        .is_some_and(|(_, before)| !before.is_empty())
                })
        }),
    ]
}

fn reads_see_earlier_writes(s: &State) -> bool {
    s.history.reads_answered.iter().all(|(k, seen)| {
        s.history
            .reads_begun
            .get(k)
            .is_some_and(|(_, before)| before.is_subset(seen))
    })
}

fn install_is_decided_prefix(s: &State) -> bool {
    let learned = learned(s);
    s.history.installed.iter().all(|(index, bytes)| {
        let Ok(prefix) = postcard::from_bytes::<Vec<(InstanceId, Entry<u64>)>>(bytes) else {
            return false;
        };
        prefix.len() as u64 == index.0
            && prefix.iter().enumerate().all(|(k, (i, e))| {
                i.0 == k as u64
                    && learned
                        .get(i)
                        .is_some_and(|vs| vs.len() == 1 && vs.contains(e))
            })
    })
}

/// From `s`, the faults stop: after healing, some node has learned every instance below the
/// highest one any node learned.
fn heals_without_holes(m: &PaxosModel, s: &State) -> bool {
    let Some(top) = learned(s).keys().next_back().copied() else {
        return true;
    };
    let no_holes = |s: &State| {
        let learned = learned(s);
        (0..top.0).all(|i| learned.contains_key(&InstanceId(i)))
    };
    no_holes(&m.heal(s, 40, no_holes))
}

fn agreement(s: &State) -> bool {
    learned(s).values().all(|vs| vs.len() <= 1)
}

/// Every learned client value was proposed (a no-op fills a hole and carries none).
fn validity(s: &State) -> bool {
    learned(s)
        .values()
        .flatten()
        .filter_map(Entry::value)
        .all(|v| s.history.proposed.contains(v))
}

fn learned_is_chosen(m: &PaxosModel, s: &State) -> bool {
    let chosen = chosen(m, s);
    learned(s).iter().all(|(i, vs)| {
        chosen
            .get(i)
            .is_some_and(|c| vs.iter().all(|v| c.contains(v)))
    })
}

fn one_value_per_ballot(s: &State) -> bool {
    let mut seen: BTreeMap<(InstanceId, Ballot), &Entry<u64>> = BTreeMap::new();
    s.history
        .accepts_sent
        .iter()
        .all(|(i, b, e)| *seen.entry((*i, *b)).or_insert(e) == e)
}

fn every_named_instance_learned(m: &PaxosModel, s: &State) -> bool {
    let learned = learned(s);
    !learned.is_empty()
        && m.proposals
            .iter()
            .filter_map(|p| p.instance)
            .all(|i| learned.contains_key(&i))
}

/// Entries learned per instance: the ghost history and every learner's current decisions.
pub fn learned(s: &State) -> BTreeMap<InstanceId, BTreeSet<Entry<u64>>> {
    let mut by_instance: BTreeMap<InstanceId, BTreeSet<Entry<u64>>> = BTreeMap::new();
    let now = s.nodes.iter().flat_map(|n| {
        n.replica
            .learner()
            .decisions()
            .iter()
            .map(|(i, e)| (*i, e.clone()))
    });
    for (i, e) in s.history.learned.iter().cloned().chain(now) {
        by_instance.entry(i).or_default().insert(e);
    }
    by_instance
}

/// Entries chosen per instance: a quorum of distinct acceptors voted `(ballot, entry)`.
pub fn chosen(m: &PaxosModel, s: &State) -> BTreeMap<InstanceId, BTreeSet<Entry<u64>>> {
    let mut chosen: BTreeMap<InstanceId, BTreeSet<Entry<u64>>> = BTreeMap::new();
    for ((_, i), entries) in chosen_by_epoch(m, s) {
        chosen.entry(i).or_default().extend(entries);
    }
    chosen
}

/// Entries chosen per `(epoch, instance)`: a quorum of the acceptors of the ballot's epoch
/// (as decided in the log, see [`configurations`]) voted `(ballot, entry)`.
fn chosen_by_epoch(m: &PaxosModel, s: &State) -> BTreeMap<(u64, InstanceId), BTreeSet<Entry<u64>>> {
    let configurations = configurations(m, s);
    let mut voters: BTreeMap<(InstanceId, Ballot, &Entry<u64>), BTreeSet<NodeId>> = BTreeMap::new();
    for (i, b, e, a) in &s.history.votes {
        voters.entry((*i, *b, e)).or_default().insert(*a);
    }
    let mut chosen: BTreeMap<(u64, InstanceId), BTreeSet<Entry<u64>>> = BTreeMap::new();
    for ((i, b, e), who) in voters {
        let Some((config, _)) = configurations.get(&b.epoch) else {
            continue; // no such configuration: `VOTES_IN_DECIDED_CONFIGURATIONS` fails
        };
        let acceptors = who.intersection(&config.acceptors).count();
        if acceptors >= majority(config.acceptors.len()) {
            chosen.entry((b.epoch, i)).or_default().insert(e.clone());
        }
    }
    chosen
}

/// The configurations the log decided, by epoch, each with the instance it starts at: epoch
/// 0 from instance 0, and epoch `e + 1` as the first change to it learned at or above epoch
/// `e`'s start, starting one window (`e`'s) after that change. The specification, written
/// apart from `paxos_core::Epochs` on purpose.
pub fn configurations(m: &PaxosModel, s: &State) -> BTreeMap<u64, (Membership, InstanceId)> {
    let initial = Membership::initial(&m.configs[0]);
    let mut configurations = BTreeMap::from([(0, (initial, InstanceId(0)))]);
    let learned = learned(s);
    let (mut current, mut start) = (Membership::initial(&m.configs[0]), InstanceId(0));
    for (i, entries) in learned.range(start..) {
        for e in entries {
            if let Entry::Reconfigure(next) = e
                && *i >= start
                && next.epoch == current.epoch + 1
            {
                start = InstanceId(i.0 + current.window);
                current = next.clone();
                configurations.insert(current.epoch, (current.clone(), start));
            }
        }
    }
    configurations
}

fn votes_in_decided_configurations(m: &PaxosModel, s: &State) -> bool {
    let configurations = configurations(m, s);
    s.history.votes.iter().all(|(_, b, _, voter)| {
        configurations
            .get(&b.epoch)
            .is_some_and(|(c, _)| c.acceptors.contains(voter))
    })
}

fn epochs_extend_the_prefix(m: &PaxosModel, s: &State) -> bool {
    let configurations = configurations(m, s);
    let start = |epoch: u64| configurations.get(&epoch).map(|(_, start)| *start);
    let votes_inside = s.history.votes.iter().all(|(i, b, _, _)| {
        start(b.epoch).is_some_and(|from| from <= *i)
            && start(b.epoch + 1).is_none_or(|until| *i < until)
    });
    let entered_on_the_prefix = s.nodes.iter().all(|n| {
        let epoch = n.replica.membership().epoch;
        epoch == 0 || start(epoch).is_some_and(|from| n.replica.learner().first_undecided() >= from)
    });
    votes_inside && entered_on_the_prefix
}
