//! STUB (placeholder until the real history lands from branch `lin`): the history of a
//! Jepsen-style run, with exactly the public API the real module has.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One key-value operation as a client invokes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Set `key` to `to` if it holds `from`.
    Cas {
        /// The key.
        key: String,
        /// The value expected.
        from: u64,
        /// The value written.
        to: u64,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It happened; a get carries the value read.
    Ok(Option<u64>),
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may happen at any time after its invocation, or never.
    Info,
}

/// One event: an invocation (`outcome` `None`) or a completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client process.
    pub process: u64,
    /// The operation.
    pub op: Op,
    /// `None` for an invocation.
    pub outcome: Option<Outcome>,
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
    /// Completed `info`.
    pub info: usize,
    /// Never completed.
    pub pending: usize,
}

/// A history file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("history stub: {0}")]
pub struct HistoryError(String);

impl History {
    /// Write one JSON object per event.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write_jsonl(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        for e in &self.events {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Read what [`History::write_jsonl`] wrote.
    ///
    /// # Errors
    /// A line that is not an event.
    pub fn read_jsonl(r: impl std::io::BufRead) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        for line in r.lines() {
            let line = line.map_err(|e| HistoryError(e.to_string()))?;
            events.push(serde_json::from_str(&line).map_err(|e| HistoryError(e.to_string()))?);
        }
        Ok(History { events })
    }

    /// How many operations ended which way.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        let mut invoked: usize = 0;
        for e in &self.events {
            match e.outcome {
                None => invoked += 1,
                Some(Outcome::Ok(_)) => c.ok += 1,
                Some(Outcome::Fail) => c.fail += 1,
                Some(Outcome::Info) => c.info += 1,
            }
        }
        c.pending = invoked.saturating_sub(c.ok + c.fail + c.info);
        c
    }
}

/// Thread-safe recorder shared by all clients of a run.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record an invocation; returns its index.
    pub fn invoke(&self, process: u64, op: Op, _at: Duration) -> usize {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push(Event {
            process,
            op,
            outcome: None,
        });
        events.len() - 1
    }

    /// Record the completion of `process`'s pending op.
    pub fn complete(&self, process: u64, outcome: Outcome, _at: Duration) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let op = events
            .iter()
            .rev()
            .find(|e| e.process == process && e.outcome.is_none())
            .map(|e| e.op.clone());
        if let Some(op) = op {
            events.push(Event {
                process,
                op,
                outcome: Some(outcome),
            });
        }
    }

    /// The events so far.
    pub fn history(&self) -> History {
        History {
            events: self
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
