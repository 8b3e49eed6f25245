//! The client protocol of `paxos-harness node`: newline-delimited JSON over TCP.
//!
//! A client connects to the node's client address (`--client`), writes one request per line and
//! reads one response per line. Responses come back in request order, so a client may pipeline
//! (write several requests before reading); the node answers them one at a time per connection.
//! For several proposals in flight at once, open several connections. A line longer than
//! [`MAX_LINE`] bytes, or one that is not valid UTF-8, closes the connection; a line that is not a
//! valid request gets an `{"error":...}` response and the connection stays open.
//!
//! | request | response |
//! |---|---|
//! | `{"propose":"v"}` | `{"instance":3,"value":"v"}` once `v` is chosen (the node retries in later instances until the chosen value *is* `v`) |
//! | `{"propose":"v","timeout_ms":5000}` | the same, giving up after 5 s (default 30 s) |
//! | `{"decisions":{"from":0}}` | `{"decisions":[{"instance":0,"value":"a"},...],"first_undecided":2}`: at most 1000 decisions at or above `from`, in instance order (`"limit":N` changes the page size) |
//! | `{"status":{}}` | `{"status":{"id":1,"leader":1,"first_undecided":2,"decided":2}}` |
//! | anything that fails | `{"error":"why"}`, plus `"leader":N` when a leader is known but could not be reached |
//!
//! `"forwarded":true` on a propose request is used between nodes: the receiving node proposes
//! locally and never forwards again.

use serde::{Deserialize, Serialize};

/// Longest accepted request or response line, in bytes (without the newline).
pub const MAX_LINE: usize = 1 << 20;

/// Default for [`Request::timeout_ms`] on a propose: 30 s.
pub const DEFAULT_PROPOSE_TIMEOUT_MS: u64 = 30_000;

/// Default page size of a `decisions` request.
pub const DEFAULT_DECISIONS_LIMIT: usize = 1000;

/// One request line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
    /// Propose only: give up after this many milliseconds (default
    /// [`DEFAULT_PROPOSE_TIMEOUT_MS`]). A value may still be chosen after its request timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Propose only: sent by a node forwarding to the leader; the receiver never forwards again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
}

impl Request {
    /// A plain request for `op` (default timeout, not forwarded).
    pub fn new(op: Op) -> Request {
        Request {
            op,
            timeout_ms: None,
            forwarded: false,
        }
    }
}

/// The operation of a [`Request`]; the JSON key names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `{"propose":"v"}`: get `v` chosen in some instance.
    Propose(String),
    /// `{"decisions":{"from":0}}`: the decided log from an instance on.
    Decisions {
        /// First instance wanted (default 0).
        #[serde(default)]
        from: u64,
        /// Page size (default [`DEFAULT_DECISIONS_LIMIT`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// `{"status":{}}`: the node's protocol state.
    Status {},
}

/// One decided instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The instance.
    pub instance: u64,
    /// The value chosen there.
    pub value: String,
}

/// The answer to `{"status":{}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node's id.
    pub id: u64,
    /// The leader this node trusts (`null` when leaderless).
    pub leader: Option<u64>,
    /// Every instance below this is decided on this node.
    pub first_undecided: u64,
    /// Number of decisions this node knows.
    pub decided: usize,
}

/// One response line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    /// A proposal was chosen.
    Chosen {
        /// The instance it was chosen in.
        instance: u64,
        /// The value (the proposed one).
        value: String,
    },
    /// A page of the decided log.
    Decisions {
        /// Decisions in instance order.
        decisions: Vec<Decision>,
        /// Every instance below this is decided on the answering node.
        first_undecided: u64,
    },
    /// The node's state.
    Status {
        /// The state.
        status: Status,
    },
    /// The request failed.
    Error {
        /// Why.
        error: String,
        /// The leader, when the failure is "not the leader".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<u64>,
    },
}

impl Response {
    /// An error response without a leader.
    pub fn error(error: impl Into<String>) -> Response {
        Response::Error {
            error: error.into(),
            leader: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_the_documented_json() {
        let r: Request = serde_json::from_str(r#"{"propose":"v"}"#).expect("propose");
        assert_eq!(r, Request::new(Op::Propose("v".into())));
        let r: Request =
            serde_json::from_str(r#"{"propose":"v","timeout_ms":5,"forwarded":true}"#).expect("p");
        assert_eq!(r.timeout_ms, Some(5));
        assert!(r.forwarded);
        let r: Request = serde_json::from_str(r#"{"decisions":{"from":3}}"#).expect("decisions");
        assert_eq!(
            r.op,
            Op::Decisions {
                from: 3,
                limit: None
            }
        );
        let r: Request = serde_json::from_str(r#"{"decisions":{}}"#).expect("decisions");
        assert_eq!(
            r.op,
            Op::Decisions {
                from: 0,
                limit: None
            }
        );
        let r: Request = serde_json::from_str(r#"{"status":{}}"#).expect("status");
        assert_eq!(r.op, Op::Status {});
        assert!(serde_json::from_str::<Request>(r#"{"nope":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"propose":3}"#).is_err());
        let line = serde_json::to_string(&Request::new(Op::Propose("x".into()))).expect("ser");
        assert_eq!(line, r#"{"propose":"x"}"#);
    }

    #[test]
    fn responses_round_trip() {
        for (r, json) in [
            (
                Response::Chosen {
                    instance: 3,
                    value: "v".into(),
                },
                r#"{"instance":3,"value":"v"}"#,
            ),
            (Response::error("no"), r#"{"error":"no"}"#),
            (
                Response::Error {
                    error: "not the leader".into(),
                    leader: Some(2),
                },
                r#"{"error":"not the leader","leader":2}"#,
            ),
            (
                Response::Decisions {
                    decisions: vec![Decision {
                        instance: 0,
                        value: "a".into(),
                    }],
                    first_undecided: 1,
                },
                r#"{"decisions":[{"instance":0,"value":"a"}],"first_undecided":1}"#,
            ),
            (
                Response::Status {
                    status: Status {
                        id: 1,
                        leader: Some(1),
                        first_undecided: 0,
                        decided: 0,
                    },
                },
                r#"{"status":{"id":1,"leader":1,"first_undecided":0,"decided":0}}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&r).expect("ser"), json);
            assert_eq!(serde_json::from_str::<Response>(json).expect("de"), r);
        }
    }
}
