//! The replicated key-value service `paxos-harness node` runs: what its log holds
//! ([`LogValue`]), the state machine applying it ([`KvService`]) and its read-only queries
//! ([`KvQuery`]).
//!
//! A write (`put`, `cas`, `delete`) is a [`KvCommand`] in the log, applied once per request
//! (the node's sessions deduplicate retries) on every node in log order; its output, what the
//! client is told, is a [`KvOutput`]. A `get` is not in the log: it is a linearizable query
//! ([`paxos_core::NodeHandle::query`]) answered from the local state once the node has applied
//! everything the read must see. Plain proposals (`propose`) stay in the log as
//! [`LogValue::Plain`] and change no key.

use bytes::Bytes;
use paxos_core::{InstanceId, RestoreError, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One entry of the node binary's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogValue {
    /// A value proposed with `propose`: in the log, no effect on the keys.
    Plain(String),
    /// A key-value write.
    Kv(KvCommand),
}

impl std::fmt::Display for LogValue {
    /// A plain value as itself; a command as its JSON (how `decisions` shows it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogValue::Plain(s) => f.write_str(s),
            LogValue::Kv(c) => f.write_str(&serde_json::to_string(c).map_err(|_| std::fmt::Error)?),
        }
    }
}

/// A write to the key-value map: the log entry, the client protocol's write request and the
/// `paxos-harness kv` subcommand, one definition for all three.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum KvCommand {
    /// Set KEY to VALUE.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Set KEY to TO if it holds FROM now (an absent key holds nothing).
    Cas {
        /// The key.
        key: String,
        /// The value it must hold.
        from: String,
        /// The value it gets.
        to: String,
    },
    /// Remove KEY.
    Delete {
        /// The key.
        key: String,
    },
}

/// What applying a [`KvCommand`] did, as told to its client (the log entry's output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOutput {
    /// The write took effect (false: a `cas` whose `from` did not match).
    pub ok: bool,
    /// What the key holds after it.
    pub value: Option<String>,
}

/// A read-only query of the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvQuery {
    /// What `key` holds.
    Get {
        /// The key.
        key: String,
    },
}

/// The map, on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvService {
    map: BTreeMap<String, String>,
}

impl KvService {
    /// An empty map.
    pub fn new() -> Self {
        KvService::default()
    }

    /// What `key` holds.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }

    fn write(&mut self, command: &KvCommand) -> KvOutput {
        let (ok, key) = match command {
            KvCommand::Put { key, value } => {
                self.map.insert(key.clone(), value.clone());
                (true, key)
            }
            KvCommand::Cas { key, from, to } => {
                let matches = self.map.get(key) == Some(from);
                if matches {
                    self.map.insert(key.clone(), to.clone());
                }
                (matches, key)
            }
            KvCommand::Delete { key } => {
                self.map.remove(key);
                (true, key)
            }
        };
        KvOutput {
            ok,
            value: self.map.get(key).cloned(),
        }
    }
}

/// Encode `value` as a state machine output or query answer (JSON: readable in logs).
fn json<T: Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_default()
}

impl StateMachine<LogValue> for KvService {
    /// A command's output is its [`KvOutput`] as JSON; a plain value's is empty.
    fn apply(&mut self, _instance: InstanceId, value: &LogValue) -> Bytes {
        match value {
            LogValue::Plain(_) => Bytes::new(),
            LogValue::Kv(command) => json(&self.write(command)),
        }
    }

    fn snapshot(&self) -> Bytes {
        // A BTreeMap encodes in key order: equal maps, equal bytes on every node.
        postcard::to_allocvec(&self.map)
            .map(Bytes::from)
            .unwrap_or_default()
    }

    fn restore(&mut self, _below: InstanceId, state: &[u8]) -> Result<(), RestoreError> {
        let (map, rest) =
            postcard::take_from_bytes(state).map_err(|e| RestoreError(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RestoreError(format!("{} trailing bytes", rest.len())));
        }
        self.map = map;
        Ok(())
    }

    /// A [`KvQuery`] as JSON, answered with the value (JSON `null` if absent); a query that
    /// does not parse is answered with an empty answer (the server checks queries first).
    fn query(&self, query: &[u8]) -> Bytes {
        match serde_json::from_slice::<KvQuery>(query) {
            Ok(KvQuery::Get { key }) => json(&self.map.get(&key)),
            Err(_) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> LogValue {
        LogValue::Kv(KvCommand::Put {
            key: key.into(),
            value: value.into(),
        })
    }

    fn output(bytes: &Bytes) -> KvOutput {
        serde_json::from_slice(bytes).expect("an output")
    }

    #[test]
    fn writes_apply_in_order_and_cas_checks_the_current_value() {
        let mut kv = KvService::new();
        let i = InstanceId(0);
        assert_eq!(
            output(&kv.apply(i, &put("k", "1"))),
            KvOutput {
                ok: true,
                value: Some("1".into())
            }
        );
        let cas = |from: &str, to: &str| {
            LogValue::Kv(KvCommand::Cas {
                key: "k".into(),
                from: from.into(),
                to: to.into(),
            })
        };
        assert_eq!(
            output(&kv.apply(i, &cas("2", "3"))),
            KvOutput {
                ok: false,
                value: Some("1".into())
            }
        );
        assert!(output(&kv.apply(i, &cas("1", "3"))).ok);
        assert_eq!(kv.get("k").map(String::as_str), Some("3"));
        assert!(kv.apply(i, &LogValue::Plain("x".into())).is_empty());
        let del = LogValue::Kv(KvCommand::Delete { key: "k".into() });
        assert_eq!(
            output(&kv.apply(i, &del)),
            KvOutput {
                ok: true,
                value: None
            }
        );
        assert!(
            !output(&kv.apply(i, &cas("3", "4"))).ok,
            "absent holds nothing"
        );
    }

    #[test]
    fn queries_answer_from_the_state_and_snapshots_restore_it() {
        let mut kv = KvService::new();
        kv.apply(InstanceId(0), &put("a", "x"));
        let get = |kv: &KvService, key: &str| {
            kv.query(&serde_json::to_vec(&KvQuery::Get { key: key.into() }).expect("json"))
        };
        assert_eq!(get(&kv, "a"), Bytes::from_static(b"\"x\""));
        assert_eq!(get(&kv, "b"), Bytes::from_static(b"null"));
        assert!(kv.query(b"nonsense").is_empty());
        let mut copy = KvService::new();
        copy.restore(InstanceId(1), &kv.snapshot())
            .expect("restores");
        assert_eq!(copy, kv);
        assert!(copy.restore(InstanceId(1), b"\xff\xff\xff").is_err());
    }

    #[test]
    fn log_values_show_as_text_or_json() {
        assert_eq!(LogValue::Plain("v".into()).to_string(), "v");
        assert_eq!(
            put("k", "v").to_string(),
            r#"{"put":{"key":"k","value":"v"}}"#
        );
    }
}
