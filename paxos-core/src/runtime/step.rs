//! The order in which a runtime makes a step's writes durable and lets its messages go: one
//! pure function, used by the node loop and by the model checker, so the rule that is checked
//! is the rule that runs.
//!
//! **Everything a step writes is durable, in one atomic save, before anything that depends on
//! it leaves the node or is told to a client.** Two exceptions, because what leaves reveals
//! nothing the pending writes record:
//! 1. An `Accept` may leave while the step's writes are saved, unless one of them is a
//!    proposer round: its ballot was made durable when phase 1 started, and its entry is
//!    nobody's durable state yet. A leader's own accept write then overlaps its followers'
//!    (as deployed Multi-Paxos does).
//! 2. A `Decided` write records a fact that a quorum of acceptors already made durable. A
//!    step whose only writes are decisions sends and answers at once, its records waiting for
//!    a later save; a crash before then loses only this node's copy, which catch-up restores.
//!    They are saved with the next save, on a tick after a tick with no save (the node is
//!    idle), at shutdown, or once [`MAX_UNSAVED_DECISIONS`] wait.

use crate::effects::{Write, may_leave_before_save};
use crate::message::Envelope;

/// Decision records allowed to wait for a later save.
pub const MAX_UNSAVED_DECISIONS: usize = 4096;

/// What to do with one step's messages and the writes waiting to be saved, in this order:
/// send `early`, save the waiting writes if `save`, then send `late` and answer clients.
#[derive(Clone, Debug, PartialEq)]
pub struct Step<V> {
    /// Messages that may leave before the save (exception 1).
    pub early: Vec<Envelope<V>>,
    /// Save every waiting write now, before `late` and the answers.
    pub save: bool,
    /// Messages that leave after the save.
    pub late: Vec<Envelope<V>>,
}

impl<V> Step<V> {
    /// The plan for a step that left `messages` for peers and `unsaved` writes waiting (this
    /// step's and any earlier decision records). `idle` is true on a tick that follows a tick
    /// without a save, `stopping` at shutdown.
    pub fn plan(
        messages: Vec<Envelope<V>>,
        unsaved: &[Write<V>],
        idle: bool,
        stopping: bool,
    ) -> Step<V> {
        let must_save = unsaved.iter().any(|w| !w.is_decision());
        if !must_save {
            // Exception 2: only decision records wait (or nothing does).
            let flush =
                !unsaved.is_empty() && (idle || stopping || unsaved.len() >= MAX_UNSAVED_DECISIONS);
            return Step {
                early: messages,
                save: flush,
                late: Vec::new(),
            };
        }
        let (early, late) = messages
            .into_iter()
            .partition(|env| may_leave_before_save(&env.message, unsaved));
        Step {
            early,
            save: true,
            late,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::{Ballot, InstanceId, NodeId};
    use crate::log::Entry;
    use crate::message::Message;

    fn env(message: Message<u64>) -> Envelope<u64> {
        Envelope {
            to: NodeId(2),
            message,
        }
    }

    fn accept() -> Message<u64> {
        Message::Accept {
            ballot: Ballot::new(1, NodeId(1)),
            instance: InstanceId(0),
            entry: Entry::Noop,
        }
    }

    fn promise() -> Message<u64> {
        Message::Promise {
            ballot: Ballot::new(1, NodeId(1)),
            first: InstanceId(0),
            accepted: vec![],
            more: None,
            compacted: InstanceId(0),
        }
    }

    fn decided() -> Write<u64> {
        Write::Decided {
            instance: InstanceId(0),
            entry: Entry::Noop,
        }
    }

    /// The rule: a promise waits for its write; an accept may go first, unless the step
    /// persists a round.
    #[test]
    fn replies_wait_for_the_save_and_accepts_overtake_it_unless_a_round_is_new() {
        let own_accept = Write::Accept {
            instance: InstanceId(0),
            ballot: Ballot::new(1, NodeId(1)),
            entry: Entry::Noop,
        };
        let step = Step::plan(
            vec![env(accept()), env(promise())],
            std::slice::from_ref(&own_accept),
            false,
            false,
        );
        assert_eq!(step.early, vec![env(accept())]);
        assert!(step.save);
        assert_eq!(step.late, vec![env(promise())]);
        let with_round = Step::plan(
            vec![env(accept())],
            &[Write::ProposerRound(1), own_accept],
            false,
            false,
        );
        assert!(with_round.early.is_empty() && with_round.save);
        assert_eq!(with_round.late, vec![env(accept())]);
    }

    /// Exception 2: decision records alone do not hold anything back, and are saved only when
    /// the node is idle, stops, or too many wait.
    #[test]
    fn decision_records_wait_until_idle_shutdown_or_too_many() {
        let one = [decided()];
        let busy = Step::plan(vec![env(promise())], &one, false, false);
        assert!(!busy.save, "a busy node lets decision records ride along");
        assert_eq!(busy.early, vec![env(promise())]);
        assert!(Step::plan(vec![], &one, true, false).save, "idle");
        assert!(Step::plan(vec![], &one, false, true).save, "stopping");
        let many = vec![decided(); MAX_UNSAVED_DECISIONS];
        assert!(Step::plan(vec![], &many, false, false).save, "too many");
        assert!(
            !Step::plan(Vec::<Envelope<u64>>::new(), &[], true, true).save,
            "nothing to save"
        );
    }
}
