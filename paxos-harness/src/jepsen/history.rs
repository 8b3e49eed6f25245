//! The history of a Jepsen-style run: every key-value operation a client invoked, and how it
//! ended, in the order the [`Recorder`] saw them.
//!
//! An operation is two events of one process: its invocation, then its completion, which is
//! `ok` (it happened; a get carries the value it read), `fail` (it definitely did not happen)
//! or `info` (unknown: a timeout or a lost connection; it may happen at any time after its
//! invocation, or never). A process whose operation ended `info` never invokes again: its
//! client carries on under a new process number. An operation still pending when the run ends
//! is treated like `info`.
//!
//! # The history file
//!
//! [`History::write_jsonl`] writes one JSON object per line, one line per event, in the order
//! the events were recorded, which is the order the checker uses for real time (an operation
//! precedes another when its completion comes before the other's invocation):
//!
//! ```text
//! {"index":0,"time_ns":1234567000,"process":3,"type":"invoke","op":{"f":"cas","key":"k1","from":4,"to":5},"value":null}
//! {"index":1,"time_ns":1250000000,"process":3,"type":"ok","op":{"f":"cas","key":"k1","from":4,"to":5},"value":null}
//! {"index":2,"time_ns":1260000000,"process":4,"type":"invoke","op":{"f":"get","key":"k1"},"value":null}
//! {"index":3,"time_ns":1270000000,"process":4,"type":"ok","op":{"f":"get","key":"k1"},"value":5}
//! ```
//!
//! - `index`: the event's position in the history (0, 1, 2, ...); informative: readers go by
//!   line order;
//! - `time_ns`: nanoseconds since the run's start (monotonic), for people reading the file;
//! - `process`: the client process;
//! - `type`: `invoke`, `ok`, `fail` or `info`;
//! - `op`: the operation, `f` one of `put` (`key`, `value`), `get` (`key`), `cas` (`key`,
//!   `from`, `to`), `delete` (`key`); a completion repeats its invocation's op;
//! - `value`: on an `ok` get, the value read (`null`: the key was absent); otherwise `null`.
//!
//! [`History::read_jsonl`] reads it back, and rejects (with the line number) a line that is not
//! such an event, or a completion that does not complete a pending invocation of its process.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One key-value operation as a client invokes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value written.
        value: u64,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Set `key` to `to` if it holds `from`; fail otherwise.
    Cas {
        /// The key.
        key: String,
        /// The value expected.
        from: u64,
        /// The value written if the expected one is there.
        to: u64,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl Op {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Cas { key, .. } | Op::Delete { key } => key,
        }
    }
}

impl fmt::Display for Op {
    /// Jepsen-style: `put k1 5`, `get k1`, `cas k1 [4 5]`, `delete k1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put {key} {value}"),
            Op::Get { key } => write!(f, "get {key}"),
            Op::Cas { key, from, to } => write!(f, "cas {key} [{from} {to}]"),
            Op::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It happened. For a get: the value read (None = key absent). For others: None.
    Ok(Option<u64>),
    /// It definitely did not happen (e.g. a cas whose expected value did not match, or an
    /// error that proves no effect).
    Fail,
    /// Unknown (timeout, connection lost): it may or may not have happened, at any time after
    /// its invocation (Jepsen's `:info`). The process that saw it never invokes again (the
    /// client continues under a new process number).
    Info,
}

/// The type of an event: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The client invoked the operation.
    Invoke,
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// It may or may not have happened.
    Info,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Invoke => "invoke",
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        })
    }
}

/// One line of the history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The event's position in the history.
    pub index: usize,
    /// When it was recorded, in nanoseconds since the run's start.
    pub time_ns: u64,
    /// The client process.
    pub process: u64,
    /// Invocation or completion.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The operation (a completion repeats its invocation's).
    pub op: Op,
    /// On an `ok` get: the value read (`None`: absent). Otherwise `None`.
    #[serde(default)]
    pub value: Option<u64>,
}

impl fmt::Display for Event {
    /// Jepsen-style: `process 3 invoke cas k1 [4 5] at 1.234567s`; an `ok` get shows what it
    /// read (`process 4 ok get k1 5 at ...`, `nil` for absent).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} {} {}", self.process, self.kind, self.op)?;
        if self.kind == Kind::Ok && matches!(self.op, Op::Get { .. }) {
            match self.value {
                Some(v) => write!(f, " {v}")?,
                None => f.write_str(" nil")?,
            }
        }
        write!(
            f,
            " at {}.{:06}s",
            self.time_ns / 1_000_000_000,
            self.time_ns % 1_000_000_000 / 1_000
        )
    }
}

/// Every event of a run, in the order recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The events, in order.
    pub events: Vec<Event>,
}

/// How many operations ended which way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Completed `ok`.
    pub ok: usize,
    /// Completed `fail`.
    pub fail: usize,
    /// Completed `info` (indeterminate).
    pub info: usize,
    /// Invoked and never completed: indeterminate, like `info`.
    pub pending: usize,
}

/// One operation of a history: where its invocation and its completion sit in
/// [`History::events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The position of its invocation.
    pub invoked: usize,
    /// The position of its completion; `None`: it never completed.
    pub completed: Option<usize>,
}

/// A history's events paired into operations (see [`History::pair`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairing {
    /// Every operation, in invocation order.
    pub operations: Vec<Operation>,
    /// The positions of completions that complete nothing: their process had no pending
    /// invocation, or a pending invocation of another op. A well-formed history has none.
    pub unpaired: Vec<usize>,
}

/// Why a history file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The reader failed.
    #[error("history line {line}: cannot read: {source}")]
    Io {
        /// The line being read (1-based).
        line: usize,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A line is not an event.
    #[error("history line {line}: not an event: {source}")]
    Parse {
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// A completion with no pending invocation of the same op by its process.
    #[error(
        "history line {line}: process {process}'s {kind} completes no pending invocation of that op"
    )]
    Unpaired {
        /// The line (1-based).
        line: usize,
        /// The completion's process.
        process: u64,
        /// The completion's type.
        kind: Kind,
    },
}

impl HistoryError {
    /// The line (1-based) the error is about.
    pub fn line(&self) -> usize {
        match self {
            HistoryError::Io { line, .. }
            | HistoryError::Parse { line, .. }
            | HistoryError::Unpaired { line, .. } => *line,
        }
    }
}

impl History {
    /// Writes the history as JSON lines (the format is in the [module doc](self)).
    ///
    /// # Errors
    /// The writer's.
    pub fn write_jsonl(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        for event in &self.events {
            serde_json::to_writer(&mut w, event)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Reads a history written by [`History::write_jsonl`]. Blank lines are skipped.
    ///
    /// # Errors
    /// The first line that cannot be read, is not an event, or completes no pending invocation.
    pub fn read_jsonl(r: impl std::io::BufRead) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        // The file line of each event, to name it in an error.
        let mut lines = Vec::new();
        for (k, text) in r.lines().enumerate() {
            let line = k + 1;
            let text = text.map_err(|source| HistoryError::Io { line, source })?;
            if text.trim().is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(&text)
                .map_err(|source| HistoryError::Parse { line, source })?;
            events.push(event);
            lines.push(line);
        }
        let history = History { events };
        if let Some(&at) = history.pair().unpaired.first() {
            let event = &history.events[at];
            return Err(HistoryError::Unpaired {
                line: lines[at],
                process: event.process,
                kind: event.kind,
            });
        }
        Ok(history)
    }

    /// Pairs each completion with the pending invocation of its process.
    ///
    /// A completion whose process has no pending invocation, or a pending invocation of a
    /// different op, completes nothing and is listed in [`Pairing::unpaired`]. A process that
    /// invokes while an earlier op is still pending (which a well-behaved client never does)
    /// leaves that earlier op pending forever: indeterminate, the safe reading.
    pub fn pair(&self) -> Pairing {
        let mut pairing = Pairing::default();
        // Process -> its pending operation (an index into `pairing.operations`).
        let mut pending: HashMap<u64, usize> = HashMap::new();
        for (at, event) in self.events.iter().enumerate() {
            if event.kind == Kind::Invoke {
                pending.insert(event.process, pairing.operations.len());
                pairing.operations.push(Operation {
                    invoked: at,
                    completed: None,
                });
                continue;
            }
            let matching = pending
                .get(&event.process)
                .copied()
                .filter(|&k| self.events[pairing.operations[k].invoked].op == event.op);
            match matching {
                Some(k) => {
                    pending.remove(&event.process);
                    pairing.operations[k].completed = Some(at);
                }
                None => pairing.unpaired.push(at),
            }
        }
        pairing
    }

    /// How many operations completed `ok`, `fail` and `info`, and how many never completed.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for op in self.pair().operations {
            match op.completed.map(|at| self.events[at].kind) {
                Some(Kind::Ok) => counts.ok += 1,
                Some(Kind::Fail) => counts.fail += 1,
                Some(Kind::Info) => counts.info += 1,
                // `Invoke` cannot complete an operation (see `pair`).
                Some(Kind::Invoke) | None => counts.pending += 1,
            }
        }
        counts
    }
}

/// Thread-safe recorder shared by all clients of a run (wraps an inner mutex; cheap to clone:
/// the clones share one history).
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Recording>>,
}

/// What the [`Recorder`] holds.
#[derive(Default)]
struct Recording {
    history: History,
    /// Process -> the index of its pending invocation.
    pending: HashMap<u64, usize>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        // A client that panicked while holding the lock left the history consistent (each
        // critical section is a push and a map update): keep recording.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record an invocation by `process` at time `at` (since the run's start, monotonic).
    /// Returns the op's index: the position of its invocation event in the history.
    pub fn invoke(&self, process: u64, op: Op, at: Duration) -> usize {
        let mut recording = self.lock();
        let index = recording.history.events.len();
        recording.history.events.push(Event {
            index,
            time_ns: nanos(at),
            process,
            kind: Kind::Invoke,
            op,
            value: None,
        });
        recording.pending.insert(process, index);
        index
    }

    /// Record the completion of `process`'s pending op. A process with no pending op (a bug in
    /// the client) is logged and ignored: there is no op to complete.
    pub fn complete(&self, process: u64, outcome: Outcome, at: Duration) {
        let mut recording = self.lock();
        let Some(invoked) = recording.pending.remove(&process) else {
            tracing::warn!(
                process,
                ?outcome,
                "completion with no pending invocation; ignored"
            );
            return;
        };
        let op = recording.history.events[invoked].op.clone();
        let (kind, value) = match outcome {
            Outcome::Ok(value) => (Kind::Ok, value),
            Outcome::Fail => (Kind::Fail, None),
            Outcome::Info => (Kind::Info, None),
        };
        let index = recording.history.events.len();
        recording.history.events.push(Event {
            index,
            time_ns: nanos(at),
            process,
            kind,
            op,
            value,
        });
    }

    /// Snapshot of the events so far.
    pub fn history(&self) -> History {
        self.lock().history.clone()
    }
}

/// A duration in nanoseconds (saturating: 584 years fit).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sample() -> History {
        let r = Recorder::new();
        let k = || "k1".to_string();
        r.invoke(1, Op::Put { key: k(), value: 4 }, ms(1));
        r.invoke(2, Op::Get { key: k() }, ms(2));
        r.complete(1, Outcome::Ok(None), ms(3));
        r.complete(2, Outcome::Ok(Some(4)), ms(4));
        r.invoke(
            3,
            Op::Cas {
                key: k(),
                from: 4,
                to: 5,
            },
            ms(5),
        );
        r.complete(3, Outcome::Fail, ms(6));
        r.invoke(4, Op::Delete { key: k() }, ms(7));
        r.complete(4, Outcome::Info, ms(8));
        r.invoke(5, Op::Get { key: k() }, ms(9));
        r.complete(5, Outcome::Ok(None), ms(10));
        r.invoke(6, Op::Put { key: k(), value: 9 }, ms(11));
        r.history()
    }

    #[test]
    fn the_recorder_pairs_completions_with_invocations() {
        let h = sample();
        assert_eq!(h.events.len(), 11);
        assert!(h.events.iter().enumerate().all(|(k, e)| e.index == k));
        assert_eq!(h.events[3].value, Some(4));
        assert_eq!(h.events[3].op, Op::Get { key: "k1".into() });
        assert_eq!(
            h.counts(),
            Counts {
                ok: 3,
                fail: 1,
                info: 1,
                pending: 1
            }
        );
        let pairing = h.pair();
        assert!(pairing.unpaired.is_empty());
        assert_eq!(
            pairing.operations[..2],
            [
                Operation {
                    invoked: 0,
                    completed: Some(2)
                },
                Operation {
                    invoked: 1,
                    completed: Some(3)
                }
            ]
        );
        // A stray completion records nothing.
        let r = Recorder::new();
        r.complete(7, Outcome::Info, ms(1));
        assert!(r.history().events.is_empty());
    }

    #[test]
    fn clients_on_many_threads_share_one_recorder() {
        let r = Recorder::new();
        let clients: Vec<_> = (0..4u64)
            .map(|process| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for value in 0..100 {
                        let key = "k".to_string();
                        r.invoke(process, Op::Put { key, value }, ms(value));
                        r.complete(process, Outcome::Ok(None), ms(value));
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().expect("the client does not panic");
        }
        let h = r.history();
        assert_eq!(h.events.len(), 800);
        assert!(h.events.iter().enumerate().all(|(k, e)| e.index == k));
        assert!(h.pair().unpaired.is_empty());
        assert_eq!(
            h.counts(),
            Counts {
                ok: 400,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn jsonl_round_trips() {
        let h = sample();
        let mut out = Vec::new();
        h.write_jsonl(&mut out).expect("writes to a Vec");
        let text = String::from_utf8(out.clone()).expect("JSON is UTF-8");
        assert_eq!(text.lines().count(), h.events.len());
        assert!(text.lines().next().is_some_and(|l| l.starts_with(
            r#"{"index":0,"time_ns":1000000,"process":1,"type":"invoke","op":{"f":"put","key":"k1","value":4},"value":null}"#
        )));
        let back = History::read_jsonl(&out[..]).expect("reads back");
        assert_eq!(back, h);
    }

    #[test]
    fn a_malformed_line_is_a_typed_error_with_its_line_number() {
        let mut out = Vec::new();
        sample().write_jsonl(&mut out).expect("writes to a Vec");
        let mut lines: Vec<String> = String::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(str::to_string)
            .collect();
        lines.insert(1, String::new()); // blank lines are skipped, but counted
        lines[3] = r#"{"index":2,"type":"ok"}"#.to_string();
        let text = lines.join("\n");
        let err = History::read_jsonl(text.as_bytes()).expect_err("line 4 is malformed");
        assert!(matches!(err, HistoryError::Parse { line: 4, .. }), "{err}");
        assert_eq!(err.line(), 4);

        let orphan = r#"{"index":0,"time_ns":5,"process":2,"type":"ok","op":{"f":"get","key":"a"},"value":1}"#;
        let err = History::read_jsonl(orphan.as_bytes()).expect_err("completes nothing");
        assert!(
            matches!(
                err,
                HistoryError::Unpaired {
                    line: 1,
                    process: 2,
                    kind: Kind::Ok
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn events_print_jepsen_style() {
        let h = sample();
        assert_eq!(
            h.events[0].to_string(),
            "process 1 invoke put k1 4 at 0.001000s"
        );
        assert_eq!(
            h.events[3].to_string(),
            "process 2 ok get k1 4 at 0.004000s"
        );
        assert_eq!(
            h.events[5].to_string(),
            "process 3 fail cas k1 [4 5] at 0.006000s"
        );
        assert_eq!(
            h.events[9].to_string(),
            "process 5 ok get k1 nil at 0.010000s"
        );
    }
}
