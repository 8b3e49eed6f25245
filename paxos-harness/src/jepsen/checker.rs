//! STUB (placeholder until the real checker lands from branch `lin`): it checks nothing and
//! answers every key [`KeyVerdict::Unknown`], so nothing passes against it.

use super::history::{Event, History, Op};
use std::collections::BTreeMap;
use std::fmt;

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Some total order fits.
    Linearizable {
        /// The operations checked.
        ops: usize,
    },
    /// No total order fits.
    NotLinearizable {
        /// A short window of the key's events that is not linearizable on its own.
        window: Vec<Event>,
    },
    /// Not decided.
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
}

impl Verdict {
    /// Whether every key is linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.keys
            .values()
            .all(|v| matches!(v, KeyVerdict::Linearizable { .. }))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, v) in &self.keys {
            writeln!(f, "  key {key}: {v:?}")?;
        }
        Ok(())
    }
}

/// Checks every key of `history` (the stub decides nothing).
pub fn check(history: &History) -> Verdict {
    let mut keys = BTreeMap::new();
    for e in &history.events {
        let key = match &e.op {
            Op::Put { key, .. } | Op::Get { key } | Op::Cas { key, .. } | Op::Delete { key } => key,
        };
        keys.entry(key.clone())
            .or_insert_with(|| KeyVerdict::Unknown {
                reason: "checker stub: the real checker is on branch lin".into(),
            });
    }
    Verdict { keys }
}
