//! Exhaustive model checking of the paxos-core state machines (issue 8).
//!
//! Each test wires the real [`paxos_core::Replica`] of every node to a nondeterministic network
//! (loss, duplication, reordering), crashes and restarts nodes from their durable state, and
//! lets stateright explore every interleaving up to a depth bound, checking the properties in
//! [`properties`] in every state. See [`cluster`] for what a step is.
//!
//! Node roles in all checks: `n1` and `n2` propose, `n3..n5` accept (quorum 2), `n1` (and `n2`)
//! learn. Bounds are small enough for debug builds; `PAXOS_MODEL_DEEP=1` raises them, e.g.
//! `PAXOS_MODEL_DEEP=1 cargo test --release -p paxos-core --test model -- --nocapture`.

mod cluster;
mod properties;
mod run;
mod wire;

use cluster::{NetworkMode, PaxosModel, Proposal};
use paxos_core::testing::{AcceptorFaults, ProposerFaults};
use paxos_core::{InstanceId, LearnerStrategy, MemberChange, NodeId};
use properties::{
    AGREEMENT, EPOCHS_EXTEND_THE_PREFIX, EVERY_NAMED_INSTANCE_LEARNED, HEALS_WITHOUT_HOLES,
    INSTALL_IS_DECIDED_PREFIX, ONE_VALUE_CHOSEN, ONE_VALUE_PER_BALLOT, READ_ANSWERED_AFTER_A_WRITE,
    READS_SEE_EARLIER_WRITES, SNAPSHOT_INSTALLED,
};
use run::{Search, check, deep};
use std::collections::BTreeSet;

fn bfs(max_depth: usize) -> Search {
    Search::Bfs { max_depth }
}

fn random(seed: u64) -> Search {
    Search::Random {
        seed,
        max_depth: 60,
        states: 2_000_000,
    }
}

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn propose(node: NodeId, instance: u64, value: u64) -> Proposal {
    Proposal {
        node,
        instance: Some(InstanceId(instance)),
        value,
        after_restart: false,
    }
}

/// Two proposers race for instance 0: A proposes 1 and B proposes 2 at the start (a late
/// proposal is one whose messages are slow).
fn single_decree() -> PaxosModel {
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[3, 4, 5],
        &[1],
        vec![propose(A, 0, 1), propose(B, 0, 2)],
    );
    model.propose_at_start = true;
    model
}

/// Paxos Made Simple §2.2–2.3 on a duplicating, reordering, lossy network.
#[test]
fn single_decree_is_safe_under_loss_duplication_and_reordering() {
    let mut model = single_decree();
    model.ticks_per_proposer = u8::from(deep());
    let report = check(
        "single decree",
        model,
        bfs(if deep() { 16 } else { 12 }),
        None,
    );
    report.assert_properties(&[]);
}

/// The same race with one acceptor crash, recovering from its durable promise and accepted
/// pair.
#[test]
fn single_decree_is_safe_across_an_acceptor_crash() {
    let mut model = single_decree();
    model.crashable = [3, 4, 5].map(NodeId).into();
    model.max_crashes = 1;
    model.ticks_per_proposer = u8::from(deep());
    let depth = if deep() { 14 } else { 10 };
    let report = check("single decree, acceptor crash", model, bfs(depth), None);
    report.assert_properties(&[]);
}

/// The same race with loss and duplication as explicit actions (deliver-and-remove,
/// deliver-and-keep, drop) instead of a grow-only network. Dropping a packet forks the state
/// space at every step (exhaustive search runs out of steam at depth 7), so this check walks
/// long seeded random runs instead and asserts safety on every state it meets.
#[test]
fn single_decree_is_safe_with_explicit_drops() {
    let mut model = single_decree();
    model.network = NetworkMode::Lossy;
    model.ticks_per_proposer = 2;
    model.crashable = [3, 4, 5].map(NodeId).into();
    model.max_crashes = 1;
    let states = if deep() { 1_000_000 } else { 50_000 };
    let search = Search::Random {
        seed: 8,
        max_depth: 60,
        states,
    };
    let report = check("single decree, lossy network", model, search, None);
    report.assert_properties(&[]);
}

/// Multi-Paxos: A proposes in instances 0 and 1; B competes for instance 1 and takes over A's
/// ballot; values A's acceptors already accepted must survive into B's reign.
#[test]
fn multi_paxos_is_safe_across_a_leader_change() {
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[3, 4, 5],
        &[1],
        vec![propose(A, 0, 1), propose(A, 1, 2), propose(B, 1, 3)],
    );
    model.ticks_per_proposer = u8::from(deep());
    let depth = if deep() { 18 } else { 11 };
    let report = check("multi-paxos", model, bfs(depth), None);
    // Learning both instances takes 14 steps: only the deep run reaches it.
    let shallow = [EVERY_NAMED_INSTANCE_LEARNED];
    report.assert_properties(if deep() { &[] } else { &shallow });
}

/// The same leader change under the leader learner strategy: acceptors answer only the
/// proposer, without the value, and a proposer announces what it saw chosen with `Chosen`
/// (instances only) to learners that are acceptors and `Decided` to the others (here n1, when
/// B decides). A learner must still only ever learn chosen values.
#[test]
fn multi_paxos_is_safe_under_the_leader_learner_strategy() {
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[3, 4, 5],
        &[1, 3],
        vec![propose(A, 0, 1), propose(A, 1, 2), propose(B, 1, 3)],
    );
    for c in &mut model.configs {
        c.learner_strategy = LearnerStrategy::Leader;
    }
    model.ticks_per_proposer = 1;
    model.crashable = [3].map(NodeId).into();
    model.max_crashes = 1;
    let states = if deep() { 2_000_000 } else { 40_000 };
    let search = Search::Random {
        seed: 11,
        max_depth: 40,
        states,
    };
    let report = check("multi-paxos, leader learner", model, search, None);
    report.assert_properties(&[EVERY_NAMED_INSTANCE_LEARNED]);
}

/// A proposer that restarts from durable state must not reuse a ballot it used before the
/// crash, even to propose a new value (seed 003 Q4).
fn restart(faults: ProposerFaults) -> PaxosModel {
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[3, 4, 5],
        &[1],
        vec![
            propose(A, 0, 1),
            Proposal {
                after_restart: true,
                ..propose(A, 0, 3)
            },
            propose(B, 0, 2),
        ],
    );
    model.crashable = [A].into();
    model.max_crashes = if deep() { 2 } else { 1 };
    model.ticks_per_proposer = u8::from(deep());
    model.proposer_faults = faults;
    model
}

#[test]
fn restarted_proposer_never_reuses_a_ballot() {
    let model = restart(ProposerFaults::default());
    let depth = if deep() { 16 } else { 11 };
    let report = check("proposer restart", model, bfs(depth), None);
    report.assert_properties(&[]);
}

/// The checks have teeth: an acceptor that accepts below its promise breaks agreement.
#[test]
fn checker_catches_acceptor_accepting_below_promise() {
    let mut model = single_decree();
    model.acceptor_faults = AcceptorFaults {
        accept_below_promise: true,
        ..AcceptorFaults::default()
    };
    model.propose_at_start = true;
    let report = check(
        "fault: accept below promise",
        model,
        random(1),
        Some(AGREEMENT),
    );
    report.counterexample(AGREEMENT);
}

/// The checks have teeth: a proposer that ignores the values reported in promises breaks
/// agreement (seed 003 Q1).
#[test]
fn checker_catches_proposer_ignoring_promised_values() {
    let mut model = single_decree();
    model.proposer_faults = ProposerFaults {
        ignore_promised_values: true,
        ..ProposerFaults::default()
    };
    model.propose_at_start = true;
    let report = check(
        "fault: ignore promised values",
        model,
        random(1),
        Some(AGREEMENT),
    );
    report.counterexample(AGREEMENT);
}

/// The checks have teeth: a proposer that does not persist its round reuses a ballot with a
/// new value after a restart.
#[test]
fn checker_catches_proposer_reusing_a_ballot_after_restart() {
    let model = restart(ProposerFaults {
        skip_round_persist: true,
        ..ProposerFaults::default()
    });
    let report = check(
        "fault: round not persisted",
        model,
        bfs(16),
        Some(ONE_VALUE_PER_BALLOT),
    );
    report.counterexample(ONE_VALUE_PER_BALLOT);
}

/// The hole schedules of issue 15 on three nodes that are all acceptors and learners: A pins
/// a value to instance 1, so its phase 2 also carries a no-op for instance 0; any message may
/// be delayed past any other or never delivered (healing drops whatever is in flight), so
/// Accepts go missing and an acceptor can miss the phase 1; A may crash and recover (the leader
/// lost). Healing from any state (what is in flight lost, then a reliable network and ticking
/// clocks) must leave no hole below the highest decided instance.
fn holes(faults: ProposerFaults) -> PaxosModel {
    let mut model = PaxosModel::new(&[1, 2, 3], &[1, 2, 3], &[1, 2, 3], vec![propose(A, 1, 1)]);
    model.crashable = [A].into();
    model.max_crashes = 1;
    model.proposer_faults = faults;
    model.check_healing = true;
    model
}

#[test]
fn holes_are_filled_once_the_faults_stop() {
    let depth = if deep() { 14 } else { 12 };
    let report = check("holes", holes(ProposerFaults::default()), bfs(depth), None);
    report.assert_properties(&[EVERY_NAMED_INSTANCE_LEARNED]);
}

/// A broken fill (no no-op where nothing was accepted) is caught: a counterexample leaves a
/// hole below a decision for ever.
#[test]
fn checker_catches_a_leader_that_leaves_holes() {
    let model = holes(ProposerFaults {
        skip_noop_fill: true,
        ..ProposerFaults::default()
    });
    let report = check(
        "fault: no no-op fill",
        model,
        bfs(12),
        Some(HEALS_WITHOUT_HOLES),
    );
    report.counterexample(HEALS_WITHOUT_HOLES);
}

/// Compaction (issue 16) on three nodes that are all acceptors and learners (leader
/// strategy, the fewest messages): A and B race for instance 0 from the start, A and B may
/// each snapshot what they applied and drop their log below it, and C ticks and asks for what
/// it missed, getting the snapshot where its peers compacted. A compacted acceptor no longer
/// reports what it accepted below its log start, so a proposer that filled below it could
/// choose a second value: every promise says where the log starts. Checked: one value chosen
/// and learned per instance, and a snapshot C installs holds exactly the decided prefix.
fn compaction(proposals: Vec<Proposal>, faults: ProposerFaults) -> PaxosModel {
    let mut model = PaxosModel::new(&[1, 2, 3], &[1, 2, 3], &[1, 2, 3], proposals).with_compaction(
        [A, B],
        2,
        [NodeId(3)],
    );
    for c in &mut model.configs {
        c.learner_strategy = LearnerStrategy::Leader;
    }
    model.propose_at_start = true;
    model.proposer_faults = faults;
    model
}

/// One proposer, its follower catching up by snapshot: every install is the decided prefix,
/// in every state within the bound.
#[test]
fn a_follower_installs_exactly_the_decided_prefix() {
    let model = compaction(vec![propose(A, 0, 1)], ProposerFaults::default());
    let depth = if deep() { 17 } else { 14 };
    let report = check("snapshot install", model, bfs(depth), None);
    report.assert_properties(&[]);
}

/// The install check has teeth: a state machine whose snapshot is not the whole applied
/// prefix is caught at the follower that installs it.
#[test]
fn checker_catches_a_snapshot_that_is_not_the_decided_prefix() {
    let mut model = compaction(vec![propose(A, 0, 1)], ProposerFaults::default());
    model.snapshot_drops_last_entry = true;
    let report = check(
        "fault: snapshot misses an entry",
        model,
        bfs(14),
        Some(INSTALL_IS_DECIDED_PREFIX),
    );
    report.counterexample(INSTALL_IS_DECIDED_PREFIX);
}

/// Two proposers race while both may compact: seeded random runs (the race is too deep for
/// an exhaustive search in a debug build) keep one value chosen per instance.
#[test]
fn compaction_keeps_one_value_chosen_in_a_race() {
    let model = compaction(
        vec![propose(A, 0, 1), propose(B, 0, 2)],
        ProposerFaults::default(),
    );
    let states = if deep() { 2_000_000 } else { 20_000 };
    let search = Search::Random {
        seed: 1,
        max_depth: 60,
        states,
    };
    let report = check("compaction race", model, search, None);
    report.assert_properties(&[EVERY_NAMED_INSTANCE_LEARNED, SNAPSHOT_INSTALLED]);
}

/// A proposer that ignores where promises say the log was compacted fills below it and
/// chooses a second value: caught.
#[test]
fn checker_catches_a_proposer_that_fills_below_a_compacted_log() {
    let model = compaction(
        vec![propose(A, 0, 1), propose(B, 0, 2)],
        ProposerFaults {
            ignore_compaction: true,
            ..ProposerFaults::default()
        },
    );
    let report = check(
        "fault: ignore compaction",
        model,
        random(1),
        Some(ONE_VALUE_CHOSEN),
    );
    report.counterexample(ONE_VALUE_CHOSEN);
}

/// Reads: A has had 1 chosen and learned it; B (a learner that heard nothing of it) reads.
/// B's read must show 1: B takes a ballot, recovers 1 in phase 1, confirms its ballot with a
/// quorum, and answers only once it applied up to its frontier (paxos-core's `read.rs`).
fn reads(faults: ProposerFaults) -> PaxosModel {
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[3, 4, 5],
        &[1, 2],
        vec![propose(A, 0, 1)],
    );
    model.reads = vec![B];
    model.proposer_faults = faults;
    model.propose_at_start = true;
    model.settled_except = Some([B].into());
    // Acceptors answer the proposer only: fewer packets, the same read path.
    for c in &mut model.configs {
        c.learner_strategy = LearnerStrategy::Leader;
    }
    model
}

#[test]
fn a_read_sees_every_write_learned_before_it_began() {
    let model = reads(ProposerFaults::default());
    // 14 steps answer the read (1 read, 4 for phase 1, 4 to confirm, 4 to decide 1 again,
    // plus the initial state).
    let depth = if deep() { 17 } else { 15 };
    let report = check("reads", model, bfs(depth), None);
    report.assert_properties(&[EVERY_NAMED_INSTANCE_LEARNED]);
}

/// The read index taken from the decided prefix instead of the frontier (etcd #7331): B's
/// new ballot recovers 1 but answers before it is decided there.
#[test]
fn checker_catches_a_read_index_from_the_decided_prefix() {
    let model = reads(ProposerFaults {
        read_index_from_decided: true,
        ..ProposerFaults::default()
    });
    let report = check(
        "fault: read index from the decided prefix",
        model,
        bfs(11),
        None,
    );
    report.counterexample(READS_SEE_EARLIER_WRITES);
}

/// Reads answered from the local state with no read index at all.
#[test]
fn checker_catches_reads_without_a_barrier() {
    let model = reads(ProposerFaults {
        read_without_barrier: true,
        ..ProposerFaults::default()
    });
    let report = check("fault: reads without a barrier", model, bfs(3), None);
    report.counterexample(READS_SEE_EARLIER_WRITES);
}

/// Leases: A read first and holds a lease (granted by every acceptor); B then tries to get
/// 2 chosen, and A reads again at any time. The grantors refuse B's ballot until their grant
/// runs out, when A's lease has run out too: A's second read never misses 2.
fn leases(faults: AcceptorFaults, until: u64) -> PaxosModel {
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[3, 4, 5],
        &[1, 2],
        vec![propose(B, 0, 2)],
    )
    .with_lease(2, until);
    model.reads = vec![A, A];
    model.read_at_start = true;
    model.settled_except = Some(BTreeSet::new());
    model.acceptor_faults = faults;
    for c in &mut model.configs {
        c.learner_strategy = LearnerStrategy::Leader;
    }
    model
}

#[test]
fn a_lease_read_sees_every_write_learned_before_it_began() {
    // 13: deep enough for time to pass the lease and B's write to be learned (14 would also
    // read it again, at four times the states). Time stops just past the lease.
    let depth = if deep() { 14 } else { 13 };
    let report = check(
        "leases",
        leases(AcceptorFaults::default(), 4),
        bfs(depth),
        None,
    );
    report.assert_properties(&[EVERY_NAMED_INSTANCE_LEARNED, READ_ANSWERED_AFTER_A_WRITE]);
}

/// Grantors that promise another leader during a lease: B gets 2 chosen while A still reads
/// alone.
#[test]
fn checker_catches_grantors_that_ignore_a_lease() {
    // No time passes: the lease holds throughout, and the broken grantors let B in anyway.
    let model = leases(
        AcceptorFaults {
            ignore_leases: true,
            ..AcceptorFaults::default()
        },
        2,
    );
    let report = check("fault: grantors ignore leases", model, bfs(12), None);
    report.counterexample(READS_SEE_EARLIER_WRITES);
}

/// Membership change (issue 18): epoch 0's acceptors are n1..n3 (n1 and n2 propose, n4 and
/// n5 learn), and n1 is asked to hand the cluster to acceptors n3..n5 while n1 and n2 each
/// propose a value in the next free instance. The two epochs' quorums need not meet ({n1, n2}
/// and {n4, n5}): only the hand-off keeps them from choosing apart. The window is 2, so the
/// old leader can still be pipelining a value in the instance after the change.
fn hand_off(faults: ProposerFaults) -> PaxosModel {
    let next_free = |node, value| Proposal {
        node,
        instance: None,
        value,
        after_restart: false,
    };
    let mut model = PaxosModel::new(
        &[1, 2, 3, 4, 5],
        &[1, 2, 3],
        &[1, 2, 3, 4, 5],
        vec![next_free(A, 1), next_free(B, 2)],
    );
    for c in &mut model.configs {
        c.max_instances_ahead = 2;
    }
    let change = MemberChange::new([3, 4, 5].map(NodeId), [1, 2].map(NodeId));
    model.reconfigurations = vec![(A, change)];
    model.ticks_per_proposer = 2;
    model.proposer_faults = faults;
    model
}

/// The hand-off is a deep path (decide the change, fill the window, enter the epoch, win a
/// ballot among new acceptors): seeded random runs reach it where breadth-first search cannot.
fn hand_off_search(states: usize) -> Search {
    Search::Random {
        seed: 3,
        max_depth: 80,
        states,
    }
}

#[test]
fn a_membership_change_hands_off_exactly_the_decided_prefix() {
    let states = if deep() { 1_000_000 } else { 20_000 };
    let report = check(
        "membership hand-off",
        hand_off(ProposerFaults::default()),
        hand_off_search(states),
        None,
    );
    report.assert_properties(&[EVERY_NAMED_INSTANCE_LEARNED]);
}

/// The checks have teeth: a next epoch that starts right after the change (no window) is
/// entered with the old epoch's last instances undecided, and lets the old leader's pipelined
/// value and the new epoch's meet in one instance: with deeper search, two values are chosen
/// there (28k states: the old acceptors n1, n2 choose 1 in i1 at an epoch-0 ballot, the new
/// ones n3, n5 choose 2 at an epoch-1 ballot).
#[test]
fn checker_catches_an_epoch_that_starts_before_the_old_window_ends() {
    let model = hand_off(ProposerFaults {
        epoch_without_window: true,
        ..ProposerFaults::default()
    });
    let violated = match deep() {
        true => vec![EPOCHS_EXTEND_THE_PREFIX, ONE_VALUE_CHOSEN],
        false => vec![EPOCHS_EXTEND_THE_PREFIX],
    };
    for property in violated {
        let report = check(
            "fault: epoch without a window",
            model.clone(),
            hand_off_search(1_000_000),
            Some(property),
        );
        report.counterexample(property);
    }
}
