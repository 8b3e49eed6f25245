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
//! | `{"auth":{"token":"t"}}` | `{"authenticated":true}`; a node started with `--client-token-file` takes nothing else first, and closes a connection that sends anything else or a wrong token |
//! | `{"session":{}}` | `{"client":{"node":1,"boot":5,"session":2}}`: a new client id, unique forever |
//! | `{"propose":"v","id":{"client":{...},"seq":7}}` | `{"instance":3,"value":"v"}` once `v` is in the log and every instance below it is decided (any node: followers forward to the leader) |
//! | `{"propose":"v"}` | the same, as a request of the node's own client (a retry is a new request) |
//! | `..., "timeout_ms":5000` | give up after 5 s (default 30 s): `{"error":"...","maybe_chosen":true}` |
//! | `{"decisions":{"from":0}}` | `{"decisions":[{"instance":0,"value":"a"},{"instance":1,"value":null}],"next":2,"applied":2}`: at most 1000 applied slots at or above `from`, in instance order; `null` is a no-op, and a request decided twice appears once; the next page starts at `next` (`"limit":N` changes the page size) |
//! | `{"status":{}}` | `{"status":{"id":1,"leader":1,"first_undecided":2,"applied":2,"decided":2,"epoch":0}}` |
//! | `{"reconfigure":{"acceptors":[1,2,3],"learners":[4],"addresses":{"4":"10.0.0.4:7001"}}}` | `{"membership":{"epoch":1,"acceptors":[1,2,3],"learners":[4],"retired":[],"addresses":{"4":"10.0.0.4:7001"}}}` once the new configuration is in force on the answering node; only the leader takes it (others answer an error naming the leader). `learners` are the non-voting members besides the acceptors (a new node joins as one, then becomes an acceptor by a second change); `addresses` says where a new node's `--listen` is |
//! | `{"put":{"key":"k","value":"v"}}` | `{"ok":true,"value":"v","instance":4}` once the write is in the log (and every instance below it decided) |
//! | `{"cas":{"key":"k","from":"v","to":"w"}}` | `{"ok":true,"value":"w","instance":5}`, or `{"ok":false,"value":"x","instance":5}` if `k` held `x` (an absent key matches nothing) |
//! | `{"delete":{"key":"k"}}` | `{"ok":true,"value":null,"instance":6}` |
//! | `{"get":{"key":"k"}}` | `{"ok":true,"value":"w"}` (`null` if absent): a linearizable read, not in the log: it reflects every write acknowledged before it was sent |
//! | anything that fails | `{"error":"why"}`, with `"maybe_chosen":true` when the value may still be chosen |
//!
//! **Exactly once:** a client that retries a request (after a timeout, a lost connection, or
//! through another node) sends the same `id`; the log applies it once and answers the retry
//! with the instance (and, for a write, the outcome) of the first copy. `put`, `cas` and
//! `delete` take `id` and `timeout_ms` as `propose` does; `get` takes `timeout_ms`.

use crate::service::KvCommand;
use paxos_core::{ClientId, MemberChange, Membership, NodeId, ProposalId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Propose and writes: the request's id, from a session (`{"session":{}}`); the same id on a
    /// retry makes it exactly once. Without one, the node's own client makes a new request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ProposalId>,
    /// Give up after this many milliseconds (default
    /// [`DEFAULT_PROPOSE_TIMEOUT_MS`]). A value may still be chosen after its request timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Request {
    /// A plain request for `op` (no id, default timeout).
    pub fn new(op: Op) -> Request {
        Request {
            op,
            id: None,
            timeout_ms: None,
        }
    }
}

/// The operation of a [`Request`]; the JSON key names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `{"propose":"v"}`: put `v` in the log.
    Propose(String),
    /// `{"session":{}}`: a new client id.
    Session {},
    /// `{"decisions":{"from":0}}`: the applied log from an instance on.
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
    /// `{"auth":{"token":"..."}}`: prove the client token (a node started with
    /// `--client-token-file` answers nothing else on a connection before it).
    Auth {
        /// The token, as in the node's token file.
        token: String,
    },
    /// `{"reconfigure":{"acceptors":[1,2,3]}}`: change the membership.
    Reconfigure(Roles),
    /// `{"get":{"key":"k"}}`: a linearizable read of a key.
    Get {
        /// The key.
        key: String,
    },
    /// `{"put":{"key":"k","value":"v"}}`, `{"cas":{"key":"k","from":"v","to":"w"}}` or
    /// `{"delete":{"key":"k"}}`: a write of the key-value service, spelled on the wire as the
    /// log entry itself (untagged here: the command's own tag names it).
    #[serde(untagged)]
    Write(KvCommand),
}

/// One applied slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The instance.
    pub instance: u64,
    /// The value applied there; `None` (`null`) for a no-op.
    pub value: Option<String>,
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
    /// Every instance below this is applied on this node.
    pub applied: u64,
    /// Number of decisions this node knows.
    pub decided: usize,
    /// The epoch of the configuration in force on this node (0: the one it started with).
    #[serde(default)]
    pub epoch: u64,
}

/// A configuration's roles, by node id: what a `reconfigure` asks for and (with the epoch)
/// what it answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// The acceptors (voters); a majority of them is a quorum.
    pub acceptors: BTreeSet<u64>,
    /// Non-voting members besides the acceptors.
    #[serde(default)]
    pub learners: BTreeSet<u64>,
    /// Where members listen (their `--listen`), for nodes the cluster does not know yet, by
    /// id. (JSON object keys are strings; ids are parsed by [`Roles::to_change`], because
    /// serde cannot read integer keys under the request's flattened operation.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, String>,
}

impl Roles {
    /// The change this asks the core for.
    ///
    /// # Errors
    /// An `addresses` key that is not a node id.
    pub fn to_change(&self) -> Result<MemberChange, String> {
        let ids = |set: &BTreeSet<u64>| set.iter().copied().map(NodeId).collect::<Vec<_>>();
        let mut change = MemberChange::new(ids(&self.acceptors), ids(&self.learners));
        for (id, addr) in &self.addresses {
            let id: u64 = id
                .parse()
                .map_err(|e| format!("address key {id:?} is not a node id: {e}"))?;
            change = change.with_address(NodeId(id), addr.clone());
        }
        Ok(change)
    }
}

/// The answer to a `reconfigure`: the configuration now in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    /// Its epoch.
    pub epoch: u64,
    /// The acceptors.
    pub acceptors: BTreeSet<u64>,
    /// Members that only learn.
    pub learners: BTreeSet<u64>,
    /// Ids removed by earlier changes (never reused).
    pub retired: BTreeSet<u64>,
    /// Member addresses the changes named, by id (a string key, as in [`Roles::addresses`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, String>,
}

impl From<&Membership> for MembershipView {
    fn from(m: &Membership) -> Self {
        let ids = |set: &BTreeSet<NodeId>| set.iter().map(|n| n.0).collect();
        MembershipView {
            epoch: m.epoch,
            acceptors: ids(&m.acceptors),
            learners: m
                .learners
                .iter()
                .filter(|n| !m.acceptors.contains(n))
                .map(|n| n.0)
                .collect(),
            retired: ids(&m.retired),
            addresses: m
                .addresses
                .iter()
                .map(|(n, a)| (n.0.to_string(), a.clone()))
                .collect(),
        }
    }
}

/// One response line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    /// A key-value operation's outcome (first: a write's answer also has an `instance`).
    Kv {
        /// The write took effect (false: a `cas` that did not match); always true for a get.
        ok: bool,
        /// What the key holds (after the write), `null` if absent.
        value: Option<String>,
        /// A write's instance in the log (none for a get).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u64>,
    },
    /// A proposal is in the log.
    Chosen {
        /// The instance it was applied at.
        instance: u64,
        /// The value (the proposed one).
        value: String,
    },
    /// A new session.
    Session {
        /// Its client id.
        client: ClientId,
    },
    /// A page of the applied log.
    Decisions {
        /// Applied slots in instance order (duplicates left out).
        decisions: Vec<Decision>,
        /// Where the next page starts.
        next: u64,
        /// Every instance below this is applied on the answering node.
        applied: u64,
    },
    /// The node's state.
    Status {
        /// The state.
        status: Status,
    },
    /// A membership change is in force.
    Membership {
        /// The configuration in force.
        membership: MembershipView,
    },
    /// The connection may send requests (the answer to `auth`).
    Authenticated {
        /// Always true.
        authenticated: bool,
    },
    /// The request failed.
    Error {
        /// Why.
        error: String,
        /// The value may still be chosen (the request timed out after it was proposed).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        maybe_chosen: bool,
        /// The node does not lead and only the leader takes this request (a `reconfigure`):
        /// ask the leader (`status` names it).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        not_leader: bool,
    },
}

impl Response {
    /// An error response for a request that was not proposed.
    pub fn error(error: impl Into<String>) -> Response {
        Response::Error {
            error: error.into(),
            maybe_chosen: false,
            not_leader: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconfigure_parses_and_names_the_change() {
        let r: Request = serde_json::from_str(
            r#"{"reconfigure":{"acceptors":[1,2,3],"learners":[4],"addresses":{"4":"h:1"}}}"#,
        )
        .expect("reconfigure");
        let Op::Reconfigure(roles) = r.op else {
            panic!("not a reconfigure: {r:?}");
        };
        let change = roles.to_change().expect("valid ids");
        assert_eq!(change.acceptors, [1, 2, 3].map(NodeId).into());
        assert_eq!(change.learners, [NodeId(4)].into());
        assert_eq!(change.addresses, [(NodeId(4), "h:1".to_string())].into());
        let r: Request = serde_json::from_str(r#"{"reconfigure":{"acceptors":[1]}}"#)
            .expect("learners and addresses are optional");
        assert_eq!(
            r.op,
            Op::Reconfigure(Roles {
                acceptors: [1].into(),
                ..Roles::default()
            })
        );
        let bad = Roles {
            addresses: [("four".to_string(), "h:1".to_string())].into(),
            ..Roles::default()
        };
        assert!(
            bad.to_change()
                .unwrap_err()
                .contains("\"four\" is not a node id")
        );
    }

    #[test]
    fn requests_parse_from_the_documented_json() {
        let r: Request = serde_json::from_str(r#"{"propose":"v"}"#).expect("propose");
        assert_eq!(r, Request::new(Op::Propose("v".into())));
        let r: Request = serde_json::from_str(r#"{"auth":{"token":"t"}}"#).expect("auth");
        assert_eq!(r, Request::new(Op::Auth { token: "t".into() }));
        let r: Request = serde_json::from_str(
            r#"{"propose":"v","timeout_ms":5,"id":{"client":{"node":1,"boot":5,"session":2},"seq":7}}"#,
        )
        .expect("propose with an id");
        assert_eq!(r.timeout_ms, Some(5));
        assert_eq!(
            r.id,
            Some(ProposalId {
                client: ClientId {
                    node: NodeId(1),
                    boot: 5,
                    session: 2
                },
                seq: 7
            })
        );
        let r: Request = serde_json::from_str(r#"{"decisions":{"from":3}}"#).expect("decisions");
        assert_eq!(
            r.op,
            Op::Decisions {
                from: 3,
                limit: None
            }
        );
        let r: Request = serde_json::from_str(r#"{"session":{}}"#).expect("session");
        assert_eq!(r.op, Op::Session {});
        let r: Request = serde_json::from_str(r#"{"status":{}}"#).expect("status");
        assert_eq!(r.op, Op::Status {});
        let r: Request =
            serde_json::from_str(r#"{"cas":{"key":"k","from":"a","to":"b"}}"#).expect("cas");
        assert_eq!(
            r.op,
            Op::Write(KvCommand::Cas {
                key: "k".into(),
                from: "a".into(),
                to: "b".into()
            })
        );
        let line = serde_json::to_string(&r).expect("ser");
        assert_eq!(line, r#"{"cas":{"key":"k","from":"a","to":"b"}}"#);
        let r: Request =
            serde_json::from_str(r#"{"get":{"key":"k"},"timeout_ms":9}"#).expect("get");
        assert_eq!((r.op, r.timeout_ms), (Op::Get { key: "k".into() }, Some(9)));
        assert!(serde_json::from_str::<Request>(r#"{"put":{"key":"k"}}"#).is_err());
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
                Response::Authenticated {
                    authenticated: true,
                },
                r#"{"authenticated":true}"#,
            ),
            (
                Response::Kv {
                    ok: true,
                    value: Some("v".into()),
                    instance: Some(4),
                },
                r#"{"ok":true,"value":"v","instance":4}"#,
            ),
            (
                Response::Kv {
                    ok: true,
                    value: None,
                    instance: None,
                },
                r#"{"ok":true,"value":null}"#,
            ),
            (
                Response::Error {
                    error: "timed out".into(),
                    maybe_chosen: true,
                    not_leader: false,
                },
                r#"{"error":"timed out","maybe_chosen":true}"#,
            ),
            (
                Response::Error {
                    error: "not the leader; ask Some(n2)".into(),
                    maybe_chosen: false,
                    not_leader: true,
                },
                r#"{"error":"not the leader; ask Some(n2)","not_leader":true}"#,
            ),
            (
                Response::Session {
                    client: ClientId {
                        node: NodeId(2),
                        boot: 4,
                        session: 1,
                    },
                },
                r#"{"client":{"node":2,"boot":4,"session":1}}"#,
            ),
            (
                Response::Decisions {
                    decisions: vec![
                        Decision {
                            instance: 0,
                            value: Some("a".into()),
                        },
                        Decision {
                            instance: 1,
                            value: None,
                        },
                    ],
                    next: 2,
                    applied: 2,
                },
                r#"{"decisions":[{"instance":0,"value":"a"},{"instance":1,"value":null}],"next":2,"applied":2}"#,
            ),
            (
                Response::Status {
                    status: Status {
                        id: 1,
                        leader: Some(1),
                        first_undecided: 0,
                        applied: 0,
                        decided: 0,
                        epoch: 2,
                    },
                },
                r#"{"status":{"id":1,"leader":1,"first_undecided":0,"applied":0,"decided":0,"epoch":2}}"#,
            ),
            (
                Response::Membership {
                    membership: MembershipView {
                        epoch: 1,
                        acceptors: [1, 2, 3].into(),
                        learners: [4].into(),
                        retired: [].into(),
                        addresses: [("4".to_string(), "h:1".to_string())].into(),
                    },
                },
                r#"{"membership":{"epoch":1,"acceptors":[1,2,3],"learners":[4],"retired":[],"addresses":{"4":"h:1"}}}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&r).expect("ser"), json);
            assert_eq!(serde_json::from_str::<Response>(json).expect("de"), r);
        }
    }
}
