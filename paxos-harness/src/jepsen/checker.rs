//! The linearizability check of a [`History`], key by key: each key is a register, and its
//! operations must fit one total order that respects real time and the register's sequential
//! spec.
//!
//! # The spec
//!
//! A key's state is a value or absent (initially absent). `put` sets it; `get` returns it
//! (`ok nil` when absent); `cas from to` succeeds iff it holds `from`, and sets `to`; `delete`
//! makes it absent.
//!
//! # What is checked (Jepsen's reading of a history)
//!
//! - an `ok` operation takes effect once, between its invocation and its completion;
//! - a `fail` operation never took effect: it is dropped (a failed cas constrains nothing);
//! - an `info` or never-completed write (put, cas, delete) may take effect once at any time
//!   after its invocation, or never: its completion is at +infinity; an indeterminate cas takes
//!   effect only where the key holds its `from`;
//! - an `info` or never-completed get observed nothing: it is dropped.
//!
//! Real time is the order of the history's events: an operation precedes another when its
//! completion comes before the other's invocation.
//!
//! # The search
//!
//! Wing & Gong's search as Lowe improved it (and as Porcupine implements it): the key's
//! invocations and completions in one doubly linked list; walking it from the start, an
//! invocation may be linearized next (if the spec allows it from the current state), which
//! lifts the operation out of the list and restarts the walk; reaching a completion whose
//! operation is not linearized yet means the last choice was wrong: undo it (an explicit stack,
//! no recursion) and try the next candidate. A cache of the configurations already explored
//! (the set of linearized operations, as a bitset, with the register's state) cuts off every
//! configuration reached a second time, which is what makes the search practical. The search is
//! exhaustive: it answers linearizable or not, unless it runs out of its step budget
//! ([`CheckOptions::max_steps`]), when the key is [`KeyVerdict::Unknown`] — which does not pass.
//!
//! On top of it, refinements that each skip only configurations from which no linearization
//! exists (or which another one covers), so the answer stays the exact one — the tests check
//! it against stateright's [`LinearizabilityTester`](stateright::semantics::LinearizabilityTester)
//! on thousands of small random histories. Without them, concurrency and indeterminate writes
//! multiply the configurations well past what 5,000 operations allow:
//!
//! - forced moves: a read the current state satisfies, among the operations that may go next,
//!   is linearized at once and never revisited (it could always have gone first); so is a write
//!   of a value nothing observes while the register holds such a value;
//! - no stranding: the state is not left while an operation that must still happen needs it
//!   (a read of it, a cas from it) and nothing left can write it again;
//! - values nothing reads or expects are one value (the register's behaviour cannot tell them
//!   apart), so orders of such writes merge in the cache;
//! - the operations that must complete are tried before the indeterminate writes (any order of
//!   the candidates is exhaustive; this one finds first the usual linearization, where an
//!   unacknowledged write took effect late or never);
//! - an indeterminate write is dropped if no operation that may follow it observes its value;
//!   in the search it is tried only where a candidate observes its value, and of several
//!   candidates with the same effect only the earliest (having no completion, they are
//!   interchangeable): a linearization that places it elsewhere stays one without it, or with
//!   it moved;
//! - the cache compares the indeterminate writes linearized by inclusion: a configuration that
//!   differs from one that failed only by having used up more of them fails too.
//!
//! //! # The failing window
//!
//! For a key that is not linearizable the verdict shows a short window of its events that is
//! not linearizable on its own: the shortest prefix (in event order) of the key's events that
//! is not linearizable, then the latest start for that end such that the window is still not
//! linearizable. A window `[start, end)` of the key's events is read as follows:
//!
//! - operations whose invocation is at or after `end` are not in it;
//! - an `ok` operation that completed before `start` is part of the window's initial state;
//! - an `ok` operation with both events in the window is as in the whole history;
//! - an `ok` write invoked before `start` and completed in the window either took effect
//!   before the window (part of its initial state) or in it, before its completion; an `ok`
//!   get invoked before `start` is dropped (its read may be from before the window);
//! - an operation not completed `ok` in the window (`info`, pending, or completing after
//!   `end`) is indeterminate: its write may take effect any time after its invocation, or
//!   never; a get is dropped;
//! - the initial state is unknown: the window is not linearizable only if it is not
//!   linearizable from every state the key may have held, which is absent or a value written
//!   (by an operation that did not fail) before `start`; values the window never reads or
//!   expects are interchangeable, so one of them stands for all.
//!
//! Every linearization of the whole history gives one of the window under this reading, so a
//! window that is not linearizable proves the history is not; and a shorter window (later
//! start, earlier end) is linearizable whenever a longer one is. So the end is found by
//! bisection over prefixes (each first tried as its last 256 events only, which, when they
//! fail, prove the prefix fails at a fraction of the cost), and the start by windows doubling
//! back from the end, then bisection. A window whose check runs out of budget counts as not
//! proven, so the window shown is always one proven not linearizable.

use super::history::{Event, History};
use std::collections::BTreeMap;
use std::fmt;

/// The default [`CheckOptions::max_steps`]. A key of 5,000 operations from 10 concurrent
/// processes with 50 indeterminate writes takes about 40 thousand steps when it is
/// linearizable, and 0.6 million to prove it is not (the search is then exhaustive); a search
/// caches about one configuration (some 100 bytes) per 10 steps, so this bounds a search's
/// memory to about 100 MB, and its time to seconds.
pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;

/// How hard the checker tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// The most steps (list entries visited) one search may take before giving up on a key
    /// as [`KeyVerdict::Unknown`]: this bounds its time and its memory (at most one cached
    /// configuration per step, typically one per 10). The searches that shrink a failing
    /// window have the same budget each.
    pub max_steps: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Some total order fits.
    Linearizable {
        /// The operations checked (those not dropped: see the [module doc](self)).
        ops: usize,
    },
    /// No total order fits.
    NotLinearizable {
        /// A short window of the key's events, in history order, that is not linearizable on
        /// its own (see the [module doc](self) for how a window is read).
        window: Vec<Event>,
    },
    /// The search ran out of budget before deciding.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// The verdict on a history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Each key's verdict.
    pub keys: BTreeMap<String, KeyVerdict>,
    /// The operations checked on each key (those not dropped: see the [module doc](self)).
    pub ops: BTreeMap<String, usize>,
    /// Completions that complete no invocation (see [`History::pair`]): the history is
    /// malformed, and does not pass.
    pub unpaired: Vec<Event>,
}

impl Verdict {
    /// Whether every key is linearizable and the history is well formed. A key the search
    /// could not decide is not.
    pub fn is_linearizable(&self) -> bool {
        self.unpaired.is_empty()
            && self
                .keys
                .values()
                .all(|v| matches!(v, KeyVerdict::Linearizable { .. }))
    }
}

impl fmt::Display for Verdict {
    /// A summary (keys, operations per key), and the failing window of each key that fails.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.ops.values().sum();
        let verdict = if self.is_linearizable() {
            "linearizable"
        } else {
            "NOT linearizable"
        };
        writeln!(
            f,
            "{} keys checked, {total} operations: {verdict}",
            self.keys.len()
        )?;
        for (key, v) in &self.keys {
            let ops = self.ops.get(key).copied().unwrap_or(0);
            match v {
                KeyVerdict::Linearizable { .. } => {
                    writeln!(f, "  key {key}: linearizable, {ops} operations")?
                }
                KeyVerdict::NotLinearizable { window } => {
                    writeln!(
                        f,
                        "  key {key}: NOT linearizable, {ops} operations; these {} events are not linearizable on their own:",
                        window.len()
                    )?;
                    for event in window {
                        writeln!(f, "    {event}")?;
                    }
                }
                KeyVerdict::Unknown { reason } => writeln!(
                    f,
                    "  key {key}: UNKNOWN (does not pass), {ops} operations: {reason}"
                )?,
            }
        }
        if !self.unpaired.is_empty() {
            writeln!(
                f,
                "  malformed history (does not pass): {} completions complete no invocation:",
                self.unpaired.len()
            )?;
            for event in &self.unpaired {
                writeln!(f, "    {event}")?;
            }
        }
        Ok(())
    }
}

/// Checks every key of `history` for linearizability, with the default budget.
pub fn check(history: &History) -> Verdict {
    check_with(history, &CheckOptions::default())
}

/// Checks every key of `history` for linearizability.
pub fn check_with(history: &History, options: &CheckOptions) -> Verdict {
    let pairing = history.pair();
    let mut verdict = Verdict {
        unpaired: pairing
            .unpaired
            .iter()
            .map(|&at| history.events[at].clone())
            .collect(),
        ..Verdict::default()
    };
    for (key, key_history) in windows::KeyHistory::split(history, &pairing) {
        let whole = key_history.problem(0..key_history.len());
        let ops = whole.checked();
        let v = match wgl::linearize(&whole, None, options.max_steps) {
            wgl::Found::Linearizable => KeyVerdict::Linearizable { ops },
            wgl::Found::NotLinearizable => KeyVerdict::NotLinearizable {
                window: key_history.events(key_history.failing_window(options.max_steps)),
            },
            wgl::Found::OutOfBudget => KeyVerdict::Unknown {
                reason: format!(
                    "the search gave up after {} steps (CheckOptions::max_steps) without \
                     deciding whether {ops} operations are linearizable",
                    options.max_steps
                ),
            },
        };
        verdict.ops.insert(key.to_string(), ops);
        verdict.keys.insert(key.to_string(), v);
    }
    verdict
}

/// The sequential spec of one key: a register that may be absent.
mod register {
    /// The register's state: `None` is absent.
    pub(super) type State = Option<u64>;

    /// What an operation does to the register, as the search sees it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Effect {
        /// Sets the state (a put: `Some`; a delete: `None`).
        Write(State),
        /// Reads the state, which must be this.
        Read(State),
        /// Sets `to` where the state is `from`; impossible elsewhere.
        Cas {
            /// The value expected.
            from: u64,
            /// The value written.
            to: u64,
        },
    }

    impl Effect {
        /// The state after the operation, if it can happen in `state`.
        pub(super) fn apply(self, state: State) -> Option<State> {
            match self {
                Effect::Write(value) => Some(value),
                Effect::Read(seen) => (seen == state).then_some(state),
                Effect::Cas { from, to } => (state == Some(from)).then_some(Some(to)),
            }
        }

        /// The state it leaves, if it writes.
        pub(super) fn written(self) -> Option<State> {
            match self {
                Effect::Write(value) => Some(value),
                Effect::Cas { to, .. } => Some(Some(to)),
                Effect::Read(_) => None,
            }
        }

        /// The state it needs to find, if it needs one.
        pub(super) fn observed(self) -> Option<State> {
            match self {
                Effect::Read(seen) => Some(seen),
                Effect::Cas { from, .. } => Some(Some(from)),
                Effect::Write(_) => None,
            }
        }
    }
}

/// The WGL search (Wing & Gong; Lowe; Porcupine) over one key's operations.
mod wgl {
    use super::register::{Effect, State};
    use std::collections::{HashMap, HashSet};

    /// One operation as the search sees it. Positions are the key's event order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct SearchOp {
        /// Where it was invoked.
        pub call: usize,
        /// Where it completed; `None`: never (an indeterminate write, which may also never
        /// take effect).
        pub ret: Option<usize>,
        /// It may take effect, or be void, before `ret` (a write that may have happened before
        /// the window being checked).
        pub optional: bool,
        /// What it does.
        pub effect: Effect,
    }

    /// The operations to linearize.
    #[derive(Clone, Debug, Default)]
    pub(super) struct Problem {
        ops: Vec<SearchOp>,
        checked: usize,
        /// The values some operation reads or expects.
        observed: HashSet<State>,
        /// The one value standing for every value nothing observes.
        pub junk: State,
    }

    impl Problem {
        /// The problem of `ops`, less the indeterminate (and optional) writes that nothing
        /// could observe: see the module doc. Observers are the operations that must complete
        /// after the write's invocation, and every indeterminate cas (which may come anywhere).
        pub(super) fn new(ops: Vec<SearchOp>) -> Problem {
            let mut last_observer: HashMap<State, usize> = HashMap::new();
            let mut observed_anytime: HashSet<State> = HashSet::new();
            for op in &ops {
                let Some(seen) = op.effect.observed() else {
                    continue;
                };
                match op.ret {
                    Some(ret) => {
                        let last = last_observer.entry(seen).or_insert(ret);
                        *last = (*last).max(ret);
                    }
                    None => {
                        observed_anytime.insert(seen);
                    }
                }
            }
            let checked = ops.len();
            let ops = ops
                .into_iter()
                .filter(|op| {
                    let free = op.ret.is_none() || op.optional;
                    match op.effect.written() {
                        Some(value) if free => {
                            observed_anytime.contains(&value)
                                || last_observer.get(&value).is_some_and(|&ret| ret > op.call)
                        }
                        _ => true,
                    }
                })
                .collect::<Vec<_>>();
            // Values nothing observes are interchangeable: one of them stands for all, so that
            // configurations differing only in which of them the register holds are one.
            let observed: HashSet<State> =
                ops.iter().filter_map(|op| op.effect.observed()).collect();
            let junk = (0..=u64::MAX)
                .rev()
                .map(Some)
                .find(|v| !observed.contains(v))
                .unwrap_or(None);
            let canonical = |value: State| {
                if observed.contains(&value) {
                    value
                } else {
                    junk
                }
            };
            let ops = ops
                .into_iter()
                .map(|op| SearchOp {
                    effect: match op.effect {
                        Effect::Write(value) => Effect::Write(canonical(value)),
                        Effect::Cas { from, to } => Effect::Cas {
                            from,
                            to: canonical(Some(to)).unwrap_or(to),
                        },
                        read @ Effect::Read(_) => read,
                    },
                    ..op
                })
                .collect();
            Problem {
                ops,
                checked,
                observed,
                junk,
            }
        }

        /// The state the search starts in, for the register starting in `init`.
        pub(super) fn initial(&self, init: State) -> State {
            if self.observed.contains(&init) {
                init
            } else {
                self.junk
            }
        }

        /// How many operations the problem was given (before dropping unobservable writes).
        pub(super) fn checked(&self) -> usize {
            self.checked
        }

        /// The operations it searches.
        pub(super) fn ops(&self) -> &[SearchOp] {
            &self.ops
        }
    }

    /// What the search found.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Found {
        /// A linearization exists.
        Linearizable,
        /// None exists.
        NotLinearizable,
        /// The step budget ran out first.
        OutOfBudget,
    }

    /// The end of a list.
    const NIL: usize = usize::MAX;
    /// The head of the list of the bounded operations' invocations and completions.
    const BOUNDED: usize = 0;
    /// The head of the list of the indeterminate writes' invocations.
    const UNBOUNDED: usize = 1;

    /// Which candidates a walk is trying: those that must complete (including optional ones)
    /// first, then the indeterminate writes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Phase {
        Bounded,
        Unbounded,
    }

    /// A choice on the stack, to undo.
    struct Choice {
        op: usize,
        /// The state before it.
        prior: State,
        /// The walk it was made in.
        phase: Phase,
        /// Which alternative it took: 0 its effect, 1 void (optional operations only).
        alternative: usize,
        /// A forced move (see `Search::forced_move`): undoing it undoes the one before too.
        forced: bool,
        /// The configuration it reached, in the cache: finished when undone.
        slot: usize,
    }

    /// A node of the lists.
    #[derive(Clone, Copy, Debug)]
    struct Node {
        op: usize,
        is_return: bool,
        /// Where the event is in the key's events.
        position: usize,
    }

    /// The invocations and completions in event order, as doubly linked lists from which
    /// linearized operations are lifted (and put back, in reverse order, when undone). The
    /// indeterminate writes, which have no completion, have a list of their own, so that the
    /// walks of the others need not step over them.
    struct Entries {
        next: Vec<usize>,
        prev: Vec<usize>,
        node: Vec<Node>,
        call_node: Vec<usize>,
        ret_node: Vec<Option<usize>>,
    }

    impl Entries {
        fn new(ops: &[SearchOp]) -> Entries {
            let mut points: Vec<(usize, bool, usize)> = Vec::with_capacity(2 * ops.len());
            for (k, op) in ops.iter().enumerate() {
                points.push((op.call, false, k));
                if let Some(ret) = op.ret {
                    points.push((ret, true, k));
                }
            }
            points.sort_unstable();
            let head = Node {
                op: NIL,
                is_return: false,
                position: 0,
            };
            let n = points.len() + 2;
            let mut entries = Entries {
                next: vec![NIL; n],
                prev: vec![NIL; n],
                node: vec![head; 2],
                call_node: vec![NIL; ops.len()],
                ret_node: vec![None; ops.len()],
            };
            let mut last = [BOUNDED, UNBOUNDED];
            for &(position, is_return, op) in &points {
                let node = entries.node.len();
                entries.node.push(Node {
                    op,
                    is_return,
                    position,
                });
                if is_return {
                    entries.ret_node[op] = Some(node);
                } else {
                    entries.call_node[op] = node;
                }
                let list = usize::from(ops[op].ret.is_none());
                entries.prev[node] = last[list];
                entries.next[last[list]] = node;
                last[list] = node;
            }
            entries
        }

        fn unlink(&mut self, x: usize) {
            let (p, n) = (self.prev[x], self.next[x]);
            self.next[p] = n;
            if n != NIL {
                self.prev[n] = p;
            }
        }

        fn relink(&mut self, x: usize) {
            let (p, n) = (self.prev[x], self.next[x]);
            self.next[p] = x;
            if n != NIL {
                self.prev[n] = x;
            }
        }

        fn lift(&mut self, op: usize) {
            self.unlink(self.call_node[op]);
            if let Some(ret) = self.ret_node[op] {
                self.unlink(ret);
            }
        }

        fn unlift(&mut self, op: usize) {
            if let Some(ret) = self.ret_node[op] {
                self.relink(ret);
            }
            self.relink(self.call_node[op]);
        }
    }

    /// A set of operations (by their index among the bounded, or the unbounded, ones).
    struct Bitset {
        words: Vec<u64>,
    }

    impl Bitset {
        fn new(n: usize) -> Bitset {
            Bitset {
                words: vec![0; n.div_ceil(64)],
            }
        }

        fn insert(&mut self, k: usize) {
            self.words[k / 64] |= 1 << (k % 64);
        }

        fn remove(&mut self, k: usize) {
            self.words[k / 64] &= !(1 << (k % 64));
        }

        /// Whether every member of `self` is in `other` (a bitset of the same size).
        fn is_subset(words: &[u64], other: &[u64]) -> bool {
            words.iter().zip(other).all(|(a, b)| a & !b == 0)
        }

        /// The cache key of this set with `state`, into `out`: the number of leading full
        /// words, the state, then the words from the first not full to the last not empty.
        /// Exact (one key per configuration), and short, since the operations invoked long ago
        /// are nearly all linearized and those invoked later are not yet.
        fn key(&self, state: State, out: &mut Vec<u64>) {
            out.clear();
            let full = self.words.iter().take_while(|&&w| w == u64::MAX).count();
            let used = self
                .words
                .iter()
                .rposition(|&w| w != 0)
                .map_or(0, |k| k + 1);
            out.push(full as u64);
            match state {
                None => out.extend([0, 0]),
                Some(v) => out.extend([1, v]),
            }
            if used > full {
                out.extend_from_slice(&self.words[full..used]);
            }
        }
    }

    /// The configurations reached: (bounded operations linearized, state) -> the sets of
    /// indeterminate writes linearized with them, each marked finished once its search failed.
    ///
    /// A configuration is skipped when a finished one dominates it: the same bounded set and
    /// state, with a subset of its indeterminate writes. Whatever completes the dominated one
    /// completes the dominating one too (the extra indeterminate writes are never required,
    /// and having no completion they hold nothing back), so it fails as well. This is Lowe's
    /// cache with the indeterminate writes compared by inclusion rather than equality, which
    /// keeps the configurations from doubling with every indeterminate write still pending.
    /// Only finished configurations prune: those on the current path have not failed yet.
    struct Cache {
        /// (bounded set, state) -> its latest slot.
        latest: HashMap<Box<[u64]>, usize>,
        /// Per slot: the previous slot of the same key (`NIL`: none), and whether its search
        /// is over.
        slots: Vec<(usize, bool)>,
        /// Per slot, `stride` words: the indeterminate writes linearized.
        unbounded: Vec<u64>,
        stride: usize,
    }

    impl Cache {
        /// A cache for configurations with `stride`-word sets of indeterminate writes.
        fn new(stride: usize) -> Cache {
            Cache {
                latest: HashMap::new(),
                slots: Vec::new(),
                unbounded: Vec::new(),
                stride,
            }
        }

        /// Records the configuration (`key`, `unbounded`) unless a finished one dominates it
        /// (an identical one included); its slot.
        fn enter(&mut self, key: &[u64], unbounded: &[u64]) -> Option<usize> {
            let slot = self.slots.len();
            let previous = match self.latest.get_mut(key) {
                Some(latest) => {
                    let mut s = *latest;
                    while s != NIL {
                        let (previous, finished) = self.slots[s];
                        let theirs = &self.unbounded[s * self.stride..(s + 1) * self.stride];
                        if finished && Bitset::is_subset(theirs, unbounded) {
                            return None;
                        }
                        s = previous;
                    }
                    std::mem::replace(latest, slot)
                }
                None => {
                    self.latest.insert(key.into(), slot);
                    NIL
                }
            };
            self.slots.push((previous, false));
            self.unbounded.extend_from_slice(unbounded);
            Some(slot)
        }

        /// The search from `slot`'s configuration failed.
        fn finish(&mut self, slot: usize) {
            self.slots[slot].1 = true;
        }
    }

    /// Where the search goes next.
    #[derive(Clone, Copy, Debug)]
    enum Next {
        /// A configuration just reached: look for a forced move, then walk.
        Arrive,
        /// Walk the bounded candidates at `node`, trying alternatives from `first_alternative`.
        Bounded {
            node: usize,
            first_alternative: usize,
        },
        /// Walk the indeterminate writes invoked before the frontier, at `node`.
        Unbounded {
            node: usize,
            first_alternative: usize,
        },
        /// The configuration fails: undo the last choice.
        Undo,
    }

    /// Whether `problem`'s operations linearize from `init`, within `max_steps`.
    pub(super) fn linearize(problem: &Problem, init: State, max_steps: u64) -> Found {
        Search::new(problem, init).run(max_steps)
    }

    /// Where an operation's membership is kept.
    #[derive(Clone, Copy, Debug)]
    enum Member {
        /// Among the operations with a completion (in the cache key).
        Bounded(usize),
        /// Among the indeterminate writes (compared by inclusion).
        Unbounded(usize),
    }

    /// One search's configuration: what is linearized, the register's state, and the choices
    /// that led there.
    struct Search<'p> {
        ops: &'p [SearchOp],
        member: Vec<Member>,
        entries: Entries,
        bounded: Bitset,
        unbounded: Bitset,
        cache: Cache,
        /// A scratch cache key.
        key: Vec<u64>,
        stack: Vec<Choice>,
        state: State,
        /// The value standing for all the values nothing observes.
        junk: State,
        /// Operations with a completion not linearized yet: at zero the search succeeds (the
        /// indeterminate writes left may never have happened).
        remaining: usize,
        /// The values (states) the operations write or need, numbered.
        values: HashMap<State, usize>,
        /// Per operation: the value it writes, and the value it must find if it must happen
        /// (a bounded read or cas that is not optional).
        writes: Vec<Option<usize>>,
        needs: Vec<Option<usize>>,
        /// Per value: the operations not linearized yet that write it, and that need it.
        writers: Vec<u32>,
        needers: Vec<u32>,
        /// During a walk of the indeterminate writes: the position of the first completion in
        /// the list (only operations invoked before it may go next), and the values the
        /// candidates observe, with who observes them.
        frontier: usize,
        wanted: Vec<(State, usize)>,
        /// The earliest candidate of each effect among the indeterminate writes.
        firsts: Vec<(Effect, usize)>,
    }

    impl<'p> Search<'p> {
        fn new(problem: &'p Problem, init: State) -> Search<'p> {
            let ops = problem.ops();
            let init = problem.initial(init);
            let (mut bounded, mut unbounded) = (0, 0);
            let member = ops
                .iter()
                .map(|op| {
                    if op.ret.is_some() {
                        bounded += 1;
                        Member::Bounded(bounded - 1)
                    } else {
                        unbounded += 1;
                        Member::Unbounded(unbounded - 1)
                    }
                })
                .collect();
            let mut values: HashMap<State, usize> = HashMap::new();
            let mut number = |value: State| {
                let next = values.len();
                *values.entry(value).or_insert(next)
            };
            number(init);
            let writes: Vec<Option<usize>> = ops
                .iter()
                .map(|op| op.effect.written().map(&mut number))
                .collect();
            let needs: Vec<Option<usize>> = ops
                .iter()
                .map(|op| {
                    let required = op.ret.is_some() && !op.optional;
                    op.effect.observed().filter(|_| required).map(&mut number)
                })
                .collect();
            let mut writers = vec![0; values.len()];
            let mut needers = vec![0; values.len()];
            writes.iter().flatten().for_each(|&v| writers[v] += 1);
            needs.iter().flatten().for_each(|&v| needers[v] += 1);
            Search {
                ops,
                member,
                entries: Entries::new(ops),
                bounded: Bitset::new(bounded),
                unbounded: Bitset::new(unbounded),
                cache: Cache::new(unbounded.div_ceil(64)),
                key: Vec::new(),
                stack: Vec::new(),
                state: init,
                junk: problem.junk,
                remaining: bounded,
                values,
                writes,
                needs,
                writers,
                needers,
                frontier: 0,
                wanted: Vec::new(),
                firsts: Vec::new(),
            }
        }

        /// The number of a value the operations write or need, or the initial state.
        fn value(&self, state: State) -> Option<usize> {
            self.values.get(&state).copied()
        }

        /// Whether leaving the current state strands an operation that needs it: one that must
        /// still happen, finding this state, when nothing left can write it again. Then no
        /// linearization from here leaves it, and a choice that does fails.
        fn strands(&self, leaving: usize) -> bool {
            let Some(v) = self.value(self.state) else {
                return false;
            };
            let needers = self.needers[v] - u32::from(self.needs[leaving] == Some(v));
            needers > 0 && self.writers[v] == 0
        }

        /// Whether some operation that must happen needs a value that is not the state and that
        /// nothing left can write: then nothing linearizes.
        fn hopeless(&self) -> bool {
            self.values.iter().any(|(&value, &v)| {
                self.needers[v] > 0 && self.writers[v] == 0 && value != self.state
            })
        }

        /// Counts `op` in (`linearized`) or out of what is linearized.
        fn count(&mut self, op: usize, linearized: bool) {
            let change = |n: &mut u32| {
                if linearized {
                    *n -= 1;
                } else {
                    *n += 1;
                }
            };
            if let Some(v) = self.writes[op] {
                change(&mut self.writers[v]);
            }
            if let Some(v) = self.needs[op] {
                change(&mut self.needers[v]);
            }
        }

        fn mark(&mut self, op: usize, linearized: bool) {
            let (set, k) = match self.member[op] {
                Member::Bounded(k) => (&mut self.bounded, k),
                Member::Unbounded(k) => (&mut self.unbounded, k),
            };
            if linearized {
                set.insert(k);
            } else {
                set.remove(k);
            }
        }

        fn run(&mut self, max_steps: u64) -> Found {
            if self.hopeless() {
                return Found::NotLinearizable;
            }
            let mut steps = 0u64;
            let mut next = Next::Arrive;
            loop {
                if self.remaining == 0 {
                    return Found::Linearizable;
                }
                steps += 1;
                if steps > max_steps {
                    return Found::OutOfBudget;
                }
                next = match next {
                    Next::Arrive => match self.forced_move(&mut steps) {
                        Some(op) if self.choose(op, 0, Phase::Bounded, true) => Next::Arrive,
                        Some(_) => Next::Undo,
                        None => Next::Bounded {
                            node: self.entries.next[BOUNDED],
                            first_alternative: 0,
                        },
                    },
                    Next::Bounded {
                        node,
                        first_alternative,
                    } => self.walk_bounded(node, first_alternative, &mut steps),
                    Next::Unbounded {
                        node,
                        first_alternative,
                    } => self.walk_unbounded(node, first_alternative),
                    Next::Undo => match self.undo(&mut steps) {
                        Some(resume) => resume,
                        None => return Found::NotLinearizable,
                    },
                };
            }
        }

        /// A bounded operation that may go next (invoked before the first completion still in
        /// the list) and that can go now at no loss: a read its state allows, or a write of the
        /// junk value (which nothing observes) while the register holds junk. In any
        /// linearization from here, such an operation can move to the front: the read changes
        /// nothing and reads this very state; the junk write changes nothing now, and where it
        /// stood it was followed by a write (nothing could observe it), so removing it there
        /// changes nothing either; and every operation left completes after its invocation.
        /// So if going on from there fails, this configuration fails too: a forced move, never
        /// revisited (which keeps concurrent reads, and unobserved writes, from multiplying
        /// the search).
        fn forced_move(&self, steps: &mut u64) -> Option<usize> {
            let mut node = self.entries.next[BOUNDED];
            while node != NIL {
                *steps += 1;
                let Node { op, is_return, .. } = self.entries.node[node];
                if is_return {
                    return None;
                }
                let candidate = &self.ops[op];
                let forced = match candidate.effect {
                    Effect::Read(seen) => seen == self.state,
                    Effect::Write(value) => value == self.state && value == self.junk,
                    Effect::Cas { .. } => false,
                };
                if forced && !candidate.optional {
                    return Some(op);
                }
                node = self.entries.next[node];
            }
            None
        }

        /// One step of the walk of the bounded candidates; at the first completion, the walk
        /// of the indeterminate writes begins.
        fn walk_bounded(&mut self, node: usize, first_alternative: usize, steps: &mut u64) -> Next {
            if node == NIL || self.entries.node[node].is_return {
                self.begin_unbounded(steps);
                return Next::Unbounded {
                    node: self.entries.next[UNBOUNDED],
                    first_alternative: 0,
                };
            }
            let op = self.entries.node[node].op;
            if (first_alternative..2).any(|a| self.choose(op, a, Phase::Bounded, false)) {
                return Next::Arrive;
            }
            Next::Bounded {
                node: self.entries.next[node],
                first_alternative: 0,
            }
        }

        /// Prepares a walk of the indeterminate writes: the frontier, what the candidates
        /// observe, and the earliest indeterminate candidate of each effect.
        fn begin_unbounded(&mut self, steps: &mut u64) {
            self.wanted.clear();
            self.firsts.clear();
            self.frontier = usize::MAX;
            let mut node = self.entries.next[BOUNDED];
            while node != NIL {
                *steps += 1;
                let Node {
                    op,
                    is_return,
                    position,
                } = self.entries.node[node];
                if is_return {
                    self.frontier = position;
                    break;
                }
                self.wanted
                    .extend(self.ops[op].effect.observed().map(|v| (v, op)));
                node = self.entries.next[node];
            }
            let mut node = self.entries.next[UNBOUNDED];
            while node != NIL && self.entries.node[node].position < self.frontier {
                *steps += 1;
                let op = self.entries.node[node].op;
                let effect = self.ops[op].effect;
                self.wanted.extend(effect.observed().map(|v| (v, op)));
                if self.firsts.iter().all(|&(e, _)| e != effect) {
                    self.firsts.push((effect, op));
                }
                node = self.entries.next[node];
            }
        }

        /// One step of the walk of the indeterminate writes invoked before the frontier. Only
        /// a write some other candidate observes is tried: if going on after a write nothing
        /// observes next succeeds, then so does going on without it, or with a bounded
        /// operation first. (What follows it up to the first observer of its value changes
        /// nothing and observes nothing, so either a write comes first and it can be dropped,
        /// or only void optional operations do, and it can go after them.) And of candidates
        /// with the same effect only the earliest is tried: having no completion, they are
        /// interchangeable from here on.
        fn walk_unbounded(&mut self, node: usize, first_alternative: usize) -> Next {
            if node == NIL || self.entries.node[node].position >= self.frontier {
                return Next::Undo;
            }
            let op = self.entries.node[node].op;
            let effect = self.ops[op].effect;
            let observed = effect
                .written()
                .is_some_and(|w| self.wanted.iter().any(|&(v, o)| v == w && o != op));
            let first = self.firsts.contains(&(effect, op));
            if observed
                && first
                && first_alternative == 0
                && self.choose(op, 0, Phase::Unbounded, false)
            {
                return Next::Arrive;
            }
            Next::Unbounded {
                node: self.entries.next[node],
                first_alternative: 0,
            }
        }

        /// Linearizes `op` next by its `alternative` (0: its effect; 1: void, for an optional
        /// operation), if that is possible and reaches a configuration no finished one
        /// dominates.
        fn choose(&mut self, op: usize, alternative: usize, phase: Phase, forced: bool) -> bool {
            let candidate = self.ops[op];
            let next = match alternative {
                0 => candidate.effect.apply(self.state),
                _ => candidate.optional.then_some(self.state),
            };
            let Some(next) = next else { return false };
            if next != self.state && self.strands(op) {
                return false;
            }
            self.mark(op, true);
            self.bounded.key(next, &mut self.key);
            let Some(slot) = self.cache.enter(&self.key, &self.unbounded.words) else {
                self.mark(op, false);
                return false;
            };
            self.stack.push(Choice {
                op,
                prior: self.state,
                phase,
                alternative,
                forced,
                slot,
            });
            self.entries.lift(op);
            self.count(op, true);
            if candidate.ret.is_some() {
                self.remaining -= 1;
            }
            self.state = next;
            true
        }

        /// The current configuration failed: undoes choices up to the last one that was not
        /// forced (each configuration left has failed), and resumes the walk that choice was
        /// made in with its next alternative; `None` when there is nothing left to undo.
        fn undo(&mut self, steps: &mut u64) -> Option<Next> {
            loop {
                let choice = self.stack.pop()?;
                self.cache.finish(choice.slot);
                self.entries.unlift(choice.op);
                self.mark(choice.op, false);
                self.count(choice.op, false);
                if self.ops[choice.op].ret.is_some() {
                    self.remaining += 1;
                }
                self.state = choice.prior;
                if choice.forced {
                    continue;
                }
                let node = self.entries.call_node[choice.op];
                let first_alternative = choice.alternative + 1;
                return Some(match choice.phase {
                    Phase::Bounded => Next::Bounded {
                        node,
                        first_alternative,
                    },
                    Phase::Unbounded => {
                        self.begin_unbounded(steps);
                        Next::Unbounded {
                            node,
                            first_alternative,
                        }
                    }
                });
            }
        }
    }
}

/// One key's slice of the history, its windows, and the search for a short failing one.
mod windows {
    use super::register::{Effect, State};
    use super::wgl::{self, Found, Problem, SearchOp};
    use crate::jepsen::history::{Event, History, Kind, Op, Operation, Pairing};
    use std::collections::{BTreeMap, BTreeSet};
    use std::ops::Range;

    /// One operation of the key; positions are in the key's event order.
    struct KeyOp<'h> {
        call: usize,
        ret: Option<usize>,
        /// How it ended (`None`: never).
        ended: Option<Kind>,
        op: &'h Op,
        /// The completion's value (a get's read).
        value: Option<u64>,
    }

    /// One key's events and operations.
    pub(super) struct KeyHistory<'h> {
        /// The key's events, in history order.
        events: Vec<&'h Event>,
        ops: Vec<KeyOp<'h>>,
    }

    impl<'h> KeyHistory<'h> {
        /// The history, key by key (unpaired completions left out).
        pub(super) fn split(
            history: &'h History,
            pairing: &Pairing,
        ) -> BTreeMap<&'h str, KeyHistory<'h>> {
            let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
            for op in &pairing.operations {
                let key = history.events[op.invoked].op.key();
                by_key.entry(key).or_default().push(*op);
            }
            let mut keys = BTreeMap::new();
            for (key, operations) in by_key {
                // The key's events, as positions in the history, in order.
                let mut at: Vec<usize> = operations
                    .iter()
                    .flat_map(|op| std::iter::once(op.invoked).chain(op.completed))
                    .collect();
                at.sort_unstable();
                // Every position looked up is in `at`.
                let local = |global: usize| at.binary_search(&global).unwrap_or_else(|k| k);
                let ops = operations
                    .iter()
                    .map(|op| {
                        let completion = op.completed.map(|c| &history.events[c]);
                        KeyOp {
                            call: local(op.invoked),
                            ret: op.completed.map(local),
                            ended: completion.map(|e| e.kind),
                            op: &history.events[op.invoked].op,
                            value: completion.and_then(|e| e.value),
                        }
                    })
                    .collect();
                let events = at.iter().map(|&k| &history.events[k]).collect();
                keys.insert(key, KeyHistory { events, ops });
            }
            keys
        }

        /// How many events the key has.
        pub(super) fn len(&self) -> usize {
            self.events.len()
        }

        /// The events of a window.
        pub(super) fn events(&self, window: Range<usize>) -> Vec<Event> {
            self.events[window].iter().map(|&e| e.clone()).collect()
        }

        /// The search problem of `window` (read as the module doc of the checker says).
        pub(super) fn problem(&self, window: Range<usize>) -> Problem {
            let mut ops = Vec::new();
            for op in &self.ops {
                if op.ended == Some(Kind::Fail) || op.call >= window.end {
                    continue;
                }
                let ok_by = op
                    .ret
                    .filter(|&ret| op.ended == Some(Kind::Ok) && ret < window.end);
                if ok_by.is_some_and(|ret| ret < window.start) {
                    continue; // part of the initial state
                }
                let read = |value| match ok_by {
                    Some(_) if op.call >= window.start => Some(Effect::Read(value)),
                    _ => None, // observed nothing we can check
                };
                let effect = match op.op {
                    Op::Put { value, .. } => Some(Effect::Write(Some(*value))),
                    Op::Delete { .. } => Some(Effect::Write(None)),
                    Op::Cas { from, to, .. } => Some(Effect::Cas {
                        from: *from,
                        to: *to,
                    }),
                    Op::Get { .. } => read(op.value),
                };
                if let Some(effect) = effect {
                    ops.push(SearchOp {
                        call: op.call,
                        ret: ok_by,
                        optional: ok_by.is_some() && op.call < window.start,
                        effect,
                    });
                }
            }
            Problem::new(ops)
        }

        /// The states the key may hold when `window` starts, one per class of states the
        /// window's operations tell apart.
        fn initial_states(&self, start: usize, problem: &Problem) -> Vec<State> {
            let written: BTreeSet<u64> = self
                .ops
                .iter()
                .filter(|op| op.call < start && op.ended != Some(Kind::Fail))
                .filter_map(|op| match op.op {
                    Op::Put { value, .. } => Some(*value),
                    Op::Cas { to, .. } => Some(*to),
                    Op::Get { .. } | Op::Delete { .. } => None,
                })
                .collect();
            let referenced: BTreeSet<u64> = problem
                .ops()
                .iter()
                .filter_map(|op| op.effect.observed().flatten())
                .collect();
            let mut states = vec![None];
            states.extend(written.intersection(&referenced).map(|&v| Some(v)));
            states.extend(written.difference(&referenced).next().map(|&v| Some(v)));
            states
        }

        /// Whether `window` is linearizable from some state it may start in.
        pub(super) fn judge(&self, window: Range<usize>, max_steps: u64) -> Found {
            let problem = self.problem(window.clone());
            let mut found = Found::NotLinearizable;
            for init in self.initial_states(window.start, &problem) {
                match wgl::linearize(&problem, init, max_steps) {
                    Found::Linearizable => return Found::Linearizable,
                    Found::OutOfBudget => found = Found::OutOfBudget,
                    Found::NotLinearizable => {}
                }
            }
            found
        }

        /// A short window that is not linearizable, for a key that is not: the shortest
        /// failing prefix (by bisection), then the latest start that still fails (galloping
        /// back from the end, then bisection). A check out of budget counts as passing, so the
        /// window returned is proven to fail.
        pub(super) fn failing_window(&self, max_steps: u64) -> Range<usize> {
            let fails =
                |window: Range<usize>| self.judge(window, max_steps) == Found::NotLinearizable;
            // A failing window ending at `end` proves the prefix up to `end` fails, and a short
            // one is much cheaper to search than the prefix: violations are usually local.
            let prefix_fails = |end: usize| {
                (end > SHORT_WINDOW && fails(end - SHORT_WINDOW..end)) || fails(0..end)
            };
            let (mut lo, mut hi) = (1, self.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if prefix_fails(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            let end = hi;
            // The latest failing start: windows doubling back from the end until one fails (the
            // one from 0 does), then bisection between it and the last that passed.
            let mut passed = end;
            let mut length = 1;
            let failed = loop {
                let start = end.saturating_sub(length);
                if start == 0 || fails(start..end) {
                    break start;
                }
                passed = start;
                length *= 2;
            };
            let (mut lo, mut hi) = (failed, passed - 1);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if fails(mid..end) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            lo..end
        }
    }

    /// The length (in events) of the window tried first when bisecting for the failing prefix.
    const SHORT_WINDOW: usize = 256;
}

#[cfg(test)]
mod tests {
    use super::windows::KeyHistory;
    use super::*;
    use crate::jepsen::history::{Kind, Op, Outcome, Recorder};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
    use std::time::{Duration, Instant};

    // ---- Writing histories by hand ----

    /// A history written event by event, one millisecond apart, on key `x`.
    struct Script {
        recorder: Recorder,
        tick: u64,
    }

    impl Script {
        fn new() -> Self {
            Script {
                recorder: Recorder::new(),
                tick: 0,
            }
        }

        fn now(&mut self) -> Duration {
            self.tick += 1;
            Duration::from_millis(self.tick)
        }

        fn invoke(&mut self, process: u64, op: Op) -> &mut Self {
            let at = self.now();
            self.recorder.invoke(process, op, at);
            self
        }

        fn end(&mut self, process: u64, outcome: Outcome) -> &mut Self {
            let at = self.now();
            self.recorder.complete(process, outcome, at);
            self
        }

        fn ok(&mut self, process: u64) -> &mut Self {
            self.end(process, Outcome::Ok(None))
        }

        fn read(&mut self, process: u64, value: Option<u64>) -> &mut Self {
            self.end(process, Outcome::Ok(value))
        }

        fn info(&mut self, process: u64) -> &mut Self {
            self.end(process, Outcome::Info)
        }

        fn fail(&mut self, process: u64) -> &mut Self {
            self.end(process, Outcome::Fail)
        }

        /// `process` puts `value` and is acknowledged.
        fn put_ok(&mut self, process: u64, value: u64) -> &mut Self {
            self.invoke(process, put(value)).ok(process)
        }

        /// `process` gets, and reads `value`.
        fn get_ok(&mut self, process: u64, value: Option<u64>) -> &mut Self {
            self.invoke(process, get()).read(process, value)
        }

        fn history(&self) -> History {
            self.recorder.history()
        }
    }

    fn put(value: u64) -> Op {
        Op::Put {
            key: "x".into(),
            value,
        }
    }

    fn get() -> Op {
        Op::Get { key: "x".into() }
    }

    fn cas(from: u64, to: u64) -> Op {
        Op::Cas {
            key: "x".into(),
            from,
            to,
        }
    }

    fn delete() -> Op {
        Op::Delete { key: "x".into() }
    }

    fn linearizable(h: &History) -> bool {
        let v = check(h);
        assert_eq!(
            v.is_linearizable(),
            stateright_says(h, None),
            "the checker and stateright disagree on\n{}",
            show(h)
        );
        v.is_linearizable()
    }

    /// The indexes of the events of `key`'s failing window.
    fn window(h: &History, key: &str) -> Vec<usize> {
        match check(h).keys.get(key) {
            Some(KeyVerdict::NotLinearizable { window }) => {
                window.iter().map(|e| e.index).collect()
            }
            other => panic!("{key} should not be linearizable: {other:?}"),
        }
    }

    fn show(h: &History) -> String {
        h.events.iter().map(|e| format!("{e}\n")).collect()
    }

    // ---- Histories that are not linearizable ----

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_not_linearizable() {
        let h = Script::new()
            .put_ok(1, 1)
            .put_ok(1, 2)
            .get_ok(2, Some(1))
            .history();
        assert!(!linearizable(&h));
        // The write of 1 may be part of the state the window starts in: the window is the
        // second write and the read.
        assert_eq!(window(&h, "x"), [2, 3, 4, 5]);
    }

    #[test]
    fn two_reads_seeing_two_writes_in_opposite_orders_is_not_linearizable() {
        let mut s = Script::new();
        s.invoke(1, put(1)).invoke(2, put(2));
        s.invoke(3, get())
            .invoke(4, get())
            .read(3, Some(1))
            .read(4, Some(2));
        s.invoke(3, get())
            .invoke(4, get())
            .read(3, Some(2))
            .read(4, Some(1));
        s.ok(1).ok(2);
        let h = s.history();
        assert!(!linearizable(&h));
        // Up to the last read: the writes are still pending there.
        assert_eq!(window(&h, "x"), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_cas_from_a_value_never_held_is_not_linearizable() {
        let mut s = Script::new();
        s.put_ok(1, 1).invoke(2, cas(7, 8)).ok(2);
        let h = s.history();
        assert!(!linearizable(&h));
        assert_eq!(window(&h, "x"), [2, 3], "the cas alone cannot be");
    }

    #[test]
    fn a_lost_acknowledged_write_read_back_as_absent_is_not_linearizable() {
        let h = Script::new().put_ok(1, 1).get_ok(2, None).history();
        assert!(!linearizable(&h));
        assert_eq!(window(&h, "x"), [0, 1, 2, 3]);
    }

    #[test]
    fn an_indeterminate_write_cannot_take_effect_before_its_invocation() {
        let mut s = Script::new();
        s.get_ok(2, Some(9)).invoke(1, put(9)).info(1);
        let h = s.history();
        assert!(!linearizable(&h));
        assert_eq!(window(&h, "x"), [0, 1]);
    }

    #[test]
    fn an_indeterminate_write_takes_effect_at_most_once() {
        let mut s = Script::new();
        s.invoke(1, put(9)).info(1);
        s.get_ok(2, Some(9)).put_ok(2, 1).get_ok(2, Some(9));
        assert!(!linearizable(&s.history()));
    }

    #[test]
    fn a_read_after_a_delete_completed_sees_absent() {
        let mut s = Script::new();
        s.put_ok(1, 1).invoke(1, delete()).ok(1).get_ok(2, None);
        assert!(linearizable(&s.history()));
        s.get_ok(2, Some(1));
        assert!(!linearizable(&s.history()));
    }

    // ---- Histories that are ----

    #[test]
    fn concurrent_writes_may_be_read_in_either_order() {
        for read in [1, 2] {
            let mut s = Script::new();
            s.invoke(1, put(1)).invoke(2, put(2)).ok(2).ok(1);
            s.get_ok(3, Some(read));
            assert!(linearizable(&s.history()), "read {read}");
        }
        // And a read concurrent with both sees either, or the state before.
        for read in [None, Some(1), Some(2)] {
            let mut s = Script::new();
            s.invoke(1, put(1)).invoke(3, get()).invoke(2, put(2));
            s.ok(1).read(3, read).ok(2);
            assert!(linearizable(&s.history()), "read {read:?}");
        }
    }

    #[test]
    fn an_indeterminate_write_may_show_up_much_later() {
        let mut s = Script::new();
        s.invoke(1, put(99)).info(1);
        for v in 1..=20 {
            s.put_ok(2, v).get_ok(3, Some(v));
        }
        s.get_ok(3, Some(99));
        assert!(linearizable(&s.history()));
        // ... once.
        s.get_ok(4, Some(20));
        assert!(!linearizable(&s.history()));
    }

    #[test]
    fn an_indeterminate_write_may_never_show_up() {
        let mut s = Script::new();
        s.invoke(1, put(99)).info(1);
        for v in 1..=20 {
            s.put_ok(2, v).get_ok(3, Some(v));
        }
        assert!(linearizable(&s.history()));
        // Never completed is the same as info.
        let mut s = Script::new();
        s.invoke(1, put(99));
        s.put_ok(2, 1).get_ok(3, Some(1)).get_ok(3, Some(99));
        assert!(linearizable(&s.history()));
    }

    #[test]
    fn an_indeterminate_cas_takes_effect_only_from_its_expected_value() {
        let mut s = Script::new();
        s.put_ok(1, 1)
            .invoke(2, cas(1, 2))
            .info(2)
            .get_ok(3, Some(2));
        assert!(linearizable(&s.history()));
        let mut s = Script::new();
        s.put_ok(1, 1)
            .invoke(2, cas(3, 2))
            .info(2)
            .get_ok(3, Some(2));
        assert!(!linearizable(&s.history()));
    }

    #[test]
    fn failed_operations_and_indeterminate_reads_are_dropped() {
        let mut s = Script::new();
        s.put_ok(1, 1)
            .invoke(2, cas(1, 2))
            .fail(2)
            .get_ok(1, Some(1));
        s.invoke(3, put(5))
            .fail(3)
            .invoke(4, get())
            .info(4)
            .invoke(5, get());
        let h = s.history();
        assert!(linearizable(&h));
        let v = check(&h);
        assert_eq!(v.ops["x"], 2, "the put and the read that completed");
        assert_eq!(v.keys["x"], KeyVerdict::Linearizable { ops: 2 });
    }

    #[test]
    fn keys_are_checked_independently() {
        let r = Recorder::new();
        let at = Duration::from_millis;
        let op = |key: &str, value| Op::Put {
            key: key.into(),
            value,
        };
        let read = |key: &str| Op::Get { key: key.into() };
        r.invoke(1, op("a", 1), at(1));
        r.invoke(2, op("b", 1), at(2));
        r.complete(1, Outcome::Ok(None), at(3));
        r.complete(2, Outcome::Ok(None), at(4));
        r.invoke(1, read("a"), at(5));
        r.invoke(2, read("b"), at(6));
        r.complete(1, Outcome::Ok(Some(1)), at(7));
        r.complete(2, Outcome::Ok(None), at(8));
        let v = check(&r.history());
        assert!(!v.is_linearizable());
        assert_eq!(v.keys["a"], KeyVerdict::Linearizable { ops: 2 });
        assert!(
            matches!(&v.keys["b"], KeyVerdict::NotLinearizable { window }
            if window.iter().map(|e| e.index).collect::<Vec<_>>() == [1, 3, 5, 7])
        );
        let text = v.to_string();
        assert!(
            text.starts_with("2 keys checked, 4 operations: NOT linearizable\n"),
            "{text}"
        );
        assert!(
            text.contains("  key a: linearizable, 2 operations\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  key b: NOT linearizable, 2 operations; these 4 events are not linearizable on their own:\n\
                 \x20   process 2 invoke put b 1 at 0.002000s\n\
                 \x20   process 2 ok put b 1 at 0.004000s\n\
                 \x20   process 2 invoke get b at 0.006000s\n\
                 \x20   process 2 ok get b nil at 0.008000s\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_search_out_of_budget_does_not_pass() {
        let mut s = Script::new();
        for v in 1..=10 {
            s.put_ok(1, v).get_ok(2, Some(v));
        }
        let h = s.history();
        let v = check_with(&h, &CheckOptions { max_steps: 5 });
        assert!(matches!(v.keys["x"], KeyVerdict::Unknown { .. }));
        assert!(!v.is_linearizable());
        assert!(v.to_string().contains("UNKNOWN (does not pass)"), "{v}");
        assert!(check(&h).is_linearizable());
    }

    #[test]
    fn a_completion_of_nothing_does_not_pass() {
        let mut h = Script::new().put_ok(1, 1).history();
        h.events.push(Event {
            index: 2,
            time_ns: 3,
            process: 7,
            kind: Kind::Ok,
            op: get(),
            value: Some(1),
        });
        let v = check(&h);
        assert_eq!(v.keys["x"], KeyVerdict::Linearizable { ops: 1 });
        assert_eq!(v.unpaired.len(), 1);
        assert!(!v.is_linearizable());
        assert!(v.to_string().contains("malformed"), "{v}");
        assert!(check(&History::default()).is_linearizable());
    }

    // ---- The cross-check with stateright ----

    /// The register as stateright's tester sees it.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
    struct RegisterSpec(Option<u64>);

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum SpecRet {
        Done,
        Read(Option<u64>),
        Swapped,
        NotSwapped,
    }

    impl SequentialSpec for RegisterSpec {
        type Op = Op;
        type Ret = SpecRet;

        fn invoke(&mut self, op: &Op) -> SpecRet {
            match op {
                Op::Put { value, .. } => {
                    self.0 = Some(*value);
                    SpecRet::Done
                }
                Op::Get { .. } => SpecRet::Read(self.0),
                Op::Cas { from, to, .. } if self.0 == Some(*from) => {
                    self.0 = Some(*to);
                    SpecRet::Swapped
                }
                Op::Cas { .. } => SpecRet::NotSwapped,
                Op::Delete { .. } => {
                    self.0 = None;
                    SpecRet::Done
                }
            }
        }
    }

    /// What an `ok` completion returned, for stateright.
    fn returned(e: &Event) -> SpecRet {
        match e.op {
            Op::Get { .. } => SpecRet::Read(e.value),
            Op::Cas { .. } => SpecRet::Swapped,
            Op::Put { .. } | Op::Delete { .. } => SpecRet::Done,
        }
    }

    /// Stateright's verdict on a one-key history, from `init`. Each operation is its own
    /// "thread" (real time comes from the order of the calls; one op per thread also lets an
    /// indeterminate op stay in flight, which is how stateright reads one: it may take effect
    /// any time after its invocation, or never). Failed ops are dropped, as Jepsen does.
    fn stateright_says(h: &History, init: Option<u64>) -> bool {
        let pairing = h.pair();
        let mut ops = vec![None; h.events.len()];
        for (k, op) in pairing.operations.iter().enumerate() {
            ops[op.invoked] = Some(k);
            if let Some(c) = op.completed {
                ops[c] = Some(k);
            }
        }
        let mut tester = LinearizabilityTester::new(RegisterSpec(init));
        for (at, e) in h.events.iter().enumerate() {
            let Some(k) = ops[at] else { continue };
            let ended = pairing.operations[k].completed.map(|c| h.events[c].kind);
            if ended == Some(Kind::Fail) {
                continue;
            }
            match e.kind {
                Kind::Invoke => tester.on_invoke(k, e.op.clone()).map(|_| ()),
                Kind::Ok => tester.on_return(k, returned(e)).map(|_| ()),
                Kind::Fail | Kind::Info => Ok(()),
            }
            .expect("a well-formed history");
        }
        tester.is_consistent()
    }

    /// Stateright's verdict on the window `[start, end)` of a one-key history, read as the
    /// module doc says, by brute force over what the checker reasons about: every state the key
    /// may start in (every value written before, not just one per class), and for every
    /// acknowledged write that straddles the start, both "took effect before the window"
    /// (dropped) and "took effect in it, before its completion".
    fn stateright_says_window(h: &History, start: usize, end: usize) -> bool {
        let pairing = h.pair();
        let ended = |op: &crate::jepsen::history::Operation| op.completed.map(|c| h.events[c].kind);
        let mut inits = vec![None];
        let mut straddling = Vec::new();
        // Per operation: (invocation position, completion position if it returns in the window).
        let mut feed: Vec<(usize, Option<usize>, usize)> = Vec::new();
        for (k, op) in pairing.operations.iter().enumerate() {
            let e = &h.events[op.invoked];
            if ended(op) == Some(Kind::Fail) {
                continue;
            }
            if op.invoked < start {
                match e.op {
                    Op::Put { value, .. } | Op::Cas { to: value, .. } => inits.push(Some(value)),
                    Op::Get { .. } | Op::Delete { .. } => {}
                }
            }
            if op.invoked >= end {
                continue;
            }
            let ok_by = op
                .completed
                .filter(|&c| ended(op) == Some(Kind::Ok) && c < end);
            if ok_by.is_some_and(|c| c < start) {
                continue;
            }
            let is_get = matches!(e.op, Op::Get { .. });
            if is_get && (ok_by.is_none() || op.invoked < start) {
                continue;
            }
            if ok_by.is_some() && op.invoked < start {
                straddling.push(feed.len());
            }
            feed.push((op.invoked.max(start), ok_by, k));
        }
        assert!(
            straddling.len() < 12,
            "too many straddling ops for brute force"
        );
        for init in inits {
            for dropped in 0u32..1 << straddling.len() {
                let mut events: Vec<(usize, bool, usize)> = Vec::new();
                for (i, &(call, ret, k)) in feed.iter().enumerate() {
                    if straddling
                        .iter()
                        .position(|&s| s == i)
                        .is_some_and(|bit| dropped & (1 << bit) != 0)
                    {
                        continue;
                    }
                    // A straddler is invoked "at the start", before the window's events.
                    let call = if call == start && pairing.operations[k].invoked < start {
                        0
                    } else {
                        call + 1
                    };
                    events.push((call, false, k));
                    if let Some(ret) = ret {
                        events.push((ret + 1, true, k));
                    }
                }
                events.sort_unstable();
                let mut tester = LinearizabilityTester::new(RegisterSpec(init));
                for (_, is_return, k) in events {
                    let op = pairing.operations[k];
                    let step = if is_return {
                        let c = op.completed.expect("returns have a completion");
                        tester.on_return(k, returned(&h.events[c])).map(|_| ())
                    } else {
                        tester
                            .on_invoke(k, h.events[op.invoked].op.clone())
                            .map(|_| ())
                    };
                    step.expect("a well-formed window");
                }
                if tester.is_consistent() {
                    return true;
                }
            }
        }
        false
    }

    // ---- Generated histories ----

    /// The shape of a generated history.
    struct Workload {
        processes: usize,
        ops: usize,
        /// The chance that a write is indeterminate (then a third of those never complete).
        indeterminate: f64,
        /// Values drawn from `0..domain` (collisions on purpose); `None`: every write unique.
        domain: Option<u64>,
    }

    /// A linearizable history: each op gets a linearization point inside its interval (an
    /// indeterminate write: any time after its invocation, up to much later, or never), and
    /// what it returns is what the register does at that point.
    fn simulate(rng: &mut StdRng, w: &Workload) -> History {
        struct SimOp {
            process: u64,
            op: Op,
            start: u64,
            end: u64,
            at: Option<u64>,
            indeterminate: bool,
            completes: bool,
        }
        let mut free_at = vec![0u64; w.processes];
        let mut process: Vec<u64> = (0..w.processes as u64).collect();
        let mut next_process = w.processes as u64;
        let mut fresh = 0u64;
        let mut recent: Vec<u64> = vec![0];
        let mut ops = Vec::new();
        for _ in 0..w.ops {
            let slot = (0..w.processes).min_by_key(|&s| free_at[s]).unwrap_or(0);
            let start = free_at[slot] + rng.gen_range(1..50_000);
            let duration = rng.gen_range(2..1_000_000);
            let end = start + duration;
            let mut value = |rng: &mut StdRng| match w.domain {
                Some(d) => rng.gen_range(0..d),
                None => {
                    fresh += 1;
                    fresh
                }
            };
            let roll = rng.gen_range(0..100);
            let op = if roll < 40 {
                let v = value(rng);
                recent.push(v);
                put(v)
            } else if roll < 80 {
                get()
            } else if roll < 95 {
                let to = value(rng);
                let from = match w.domain {
                    Some(d) => rng.gen_range(0..d),
                    None => recent[recent.len() - 1 - rng.gen_range(0..recent.len().min(3))],
                };
                recent.push(to);
                cas(from, to)
            } else {
                delete()
            };
            let write = !matches!(op, Op::Get { .. });
            let indeterminate = write && rng.gen_bool(w.indeterminate);
            let at = if !indeterminate {
                Some(start + rng.gen_range(1..duration))
            } else if rng.gen_bool(0.5) {
                Some(start + rng.gen_range(1..20 * duration))
            } else {
                None
            };
            ops.push(SimOp {
                process: process[slot],
                op,
                start,
                end,
                at,
                indeterminate,
                completes: !indeterminate || rng.gen_bool(0.7),
            });
            free_at[slot] = end;
            if indeterminate {
                process[slot] = next_process; // the client carries on as a new process
                next_process += 1;
            }
        }
        // The register, in linearization order.
        let mut order: Vec<(u64, usize)> = ops
            .iter()
            .enumerate()
            .filter_map(|(k, o)| o.at.map(|at| (at, k)))
            .collect();
        order.sort_unstable();
        let mut outcome: Vec<Outcome> = ops.iter().map(|_| Outcome::Info).collect();
        let mut state = None;
        for (_, k) in order {
            let result = match &ops[k].op {
                Op::Get { .. } => Outcome::Ok(state),
                Op::Put { value, .. } => {
                    state = Some(*value);
                    Outcome::Ok(None)
                }
                Op::Delete { .. } => {
                    state = None;
                    Outcome::Ok(None)
                }
                Op::Cas { from, to, .. } if state == Some(*from) => {
                    state = Some(*to);
                    Outcome::Ok(None)
                }
                Op::Cas { .. } => Outcome::Fail,
            };
            if !ops[k].indeterminate {
                outcome[k] = result;
            }
        }
        // The events in time order; at a tie, completions first (what ends at an instant
        // precedes what begins at it).
        let mut events: Vec<(u64, bool, usize)> = Vec::new();
        for (k, o) in ops.iter().enumerate() {
            events.push((o.start, true, k));
            if o.completes {
                events.push((o.end, false, k));
            }
        }
        events.sort_unstable();
        let recorder = Recorder::new();
        for (t, is_invocation, k) in events {
            let o = &ops[k];
            let at = Duration::from_nanos(t);
            if !is_invocation {
                recorder.complete(o.process, outcome[k].clone(), at);
            } else {
                recorder.invoke(o.process, o.op.clone(), at);
            }
        }
        recorder.history()
    }

    /// A random history of `ops` operations from `processes` processes, with values from a
    /// small domain (so that values repeat), linearizable or (60% of the time) perturbed: a
    /// read changed, a failed cas turned successful, or (less often) an ok turned info.
    fn random_history(
        rng: &mut StdRng,
        processes: std::ops::RangeInclusive<usize>,
        ops: std::ops::RangeInclusive<usize>,
        indeterminate: f64,
    ) -> History {
        let w = Workload {
            processes: rng.gen_range(processes),
            ops: rng.gen_range(ops),
            indeterminate,
            domain: Some(3),
        };
        let mut h = simulate(rng, &w);
        // Reads and failed cas first: changing them is what breaks a history.
        let telling: Vec<usize> = (0..h.events.len())
            .filter(|&k| {
                matches!(
                    (&h.events[k].op, h.events[k].kind),
                    (Op::Get { .. }, Kind::Ok) | (Op::Cas { .. }, Kind::Fail)
                )
            })
            .collect();
        let mutable: Vec<usize> = if telling.is_empty() || rng.gen_bool(0.2) {
            (0..h.events.len())
                .filter(|&k| h.events[k].kind == Kind::Ok || h.events[k].kind == Kind::Fail)
                .collect()
        } else {
            telling
        };
        if rng.gen_bool(0.6) && !mutable.is_empty() {
            let e = &mut h.events[mutable[rng.gen_range(0..mutable.len())]];
            match (&e.op, e.kind) {
                (Op::Get { .. }, Kind::Ok) => {
                    e.value = [None, Some(0), Some(1), Some(2)][rng.gen_range(0..4)]
                }
                (Op::Cas { .. }, Kind::Fail) => e.kind = Kind::Ok,
                _ => e.kind = Kind::Info,
            }
        }
        h
    }

    /// Up to 7 operations from 2 to 4 processes, a quarter of the writes indeterminate.
    fn small_history(rng: &mut StdRng) -> History {
        random_history(rng, 2..=4, 1..=7, 0.25)
    }

    /// `histories` random histories on which the checker and stateright must agree; both
    /// verdicts must be well represented, or the test proves little.
    fn cross_check(seed: u64, histories: usize, generate: impl Fn(&mut StdRng) -> History) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..histories {
            let h = generate(&mut rng);
            let ours = check(&h).is_linearizable();
            assert_eq!(
                ours,
                stateright_says(&h, None),
                "disagreement on\n{}",
                show(&h)
            );
            if ours {
                yes += 1;
            } else {
                no += 1;
            }
        }
        eprintln!("cross-check: {yes} linearizable, {no} not");
        assert!(
            yes > histories / 5 && no > histories / 5,
            "{yes} linearizable, {no} not"
        );
    }

    #[test]
    fn the_checker_agrees_with_staterights_tester_on_small_random_histories() {
        cross_check(17, 3_000, small_history);
    }

    #[test]
    fn the_checker_agrees_with_staterights_tester_with_more_indeterminate_writes() {
        // Longer, with three processes and half the writes indeterminate: several pending
        // indeterminate writes at once, often with the same effect.
        cross_check(29, 1_000, |rng| random_history(rng, 3..=3, 8..=10, 0.5));
    }

    #[test]
    fn windows_agree_with_stateright_and_the_failing_window_is_minimal() {
        let mut rng = StdRng::seed_from_u64(71);
        let mut failing = 0;
        for _ in 0..500 {
            let h = small_history(&mut rng);
            let pairing = h.pair();
            let keys = KeyHistory::split(&h, &pairing);
            let Some(key) = keys.get("x") else { continue };
            let n = key.len();
            let whole = stateright_says(&h, None);
            for start in 0..n {
                for end in start + 1..=n {
                    let ours = key.judge(start..end, DEFAULT_MAX_STEPS);
                    assert_ne!(ours, wgl::Found::OutOfBudget);
                    let theirs = stateright_says_window(&h, start, end);
                    assert_eq!(
                        ours == wgl::Found::Linearizable,
                        theirs,
                        "window {start}..{end} of\n{}",
                        show(&h)
                    );
                    // A failing window proves the whole history fails.
                    assert!(theirs || !whole, "window {start}..{end} of\n{}", show(&h));
                }
            }
            if let Some(KeyVerdict::NotLinearizable { window }) = check(&h).keys.get("x") {
                failing += 1;
                let start = window.first().map_or(0, |e| e.index);
                let end = window.last().map_or(0, |e| e.index + 1);
                let fails = |s: usize, e: usize| !stateright_says_window(&h, s, e);
                assert!(fails(start, end));
                assert!(
                    start + 1 >= end || !fails(start + 1, end),
                    "a later start fails"
                );
                assert!(!fails(0, end - 1), "a shorter prefix fails");
            }
        }
        assert!(failing > 80, "{failing} failing histories");
    }

    // ---- Size ----

    #[test]
    fn five_thousand_operations_from_ten_processes_with_fifty_indeterminate_writes() {
        let mut rng = StdRng::seed_from_u64(5_000);
        let w = Workload {
            processes: 10,
            ops: 5_000,
            indeterminate: 60.0 / 3_000.0, // about 60% of the ops are writes: some 50 of them
            domain: None,
        };
        let h = simulate(&mut rng, &w);
        let counts = h.counts();
        let began = Instant::now();
        let v = check(&h);
        eprintln!("{counts:?}: checked in {:?}: {v}", began.elapsed());
        assert!(v.is_linearizable(), "{v}");
        assert!(
            (30..=80).contains(&(counts.info + counts.pending)),
            "{counts:?}"
        );

        // And with one read near the end stale: it returns the value of a read a few writes
        // earlier, so that only the exhaustive search proves it wrong.
        let mut h = h;
        let reads: Vec<usize> = (0..h.events.len())
            .rev()
            .filter(|&k| {
                let e = &h.events[k];
                e.kind == Kind::Ok && matches!(e.op, Op::Get { .. }) && e.value.is_some()
            })
            .collect();
        let stale = reads[20];
        let fresh = h.events[stale].value;
        let mut older: Vec<Option<u64>> = reads[20..]
            .iter()
            .map(|&k| h.events[k].value)
            .filter(|&v| v != fresh)
            .collect();
        older.dedup();
        h.events[stale].value = older[5];
        let began = Instant::now();
        let v = check(&h);
        eprintln!("with a stale read: checked in {:?}: {v}", began.elapsed());
        assert!(!v.is_linearizable());
        assert!(
            matches!(&v.keys["x"], KeyVerdict::NotLinearizable { window } if window.len() < 100),
            "{v}"
        );
    }
}
