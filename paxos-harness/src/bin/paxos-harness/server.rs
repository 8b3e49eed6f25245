//! The node's client listener: serves `paxos_harness::client::protocol` on top of a
//! [`NodeHandle`]. Proposals go in with `append` (the core forwards them to the leader and
//! applies a retried request once), so the listener itself holds no retry loop.

use crate::admission::{Admission, Admit};
use paxos_core::{Applied, InstanceId, NodeError, NodeHandle, ProposalId, ReconfigError};
use paxos_harness::client::protocol::{
    DEFAULT_DECISIONS_LIMIT, DEFAULT_PROPOSE_TIMEOUT_MS, Decision, Op, Request, Response, Status,
};
use paxos_harness::client::read_line_within;
use paxos_harness::service::{KvCommand, KvOutput, KvQuery, LogValue};
use paxos_net::LogThrottle;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The client port's limits (`node --client-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientLimits {
    /// Connections held at most; at the cap the one idle longest makes room
    /// ([`crate::admission`]).
    pub max_connections: usize,
    /// A connection that sends no complete request for this long is closed; so is one whose
    /// answer cannot be written for this long.
    pub idle_timeout: Duration,
    /// Longest request line, in bytes: what one connection may make the node buffer.
    pub max_line: usize,
}

/// What every client connection shares.
pub(crate) struct Server {
    /// The local node.
    pub handle: NodeHandle<LogValue>,
    pub limits: ClientLimits,
    pub admission: Mutex<Admission<CancellationToken>>,
    /// The token a connection must prove before anything else (`--client-token-file`).
    pub token: Option<Vec<u8>>,
    /// Connections closed for the limits, logged once per period with their count.
    pub refusals: Mutex<LogThrottle>,
}

/// Why the port closed a connection.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("evicted to make room for a new connection")]
    Evicted,
    #[error("the port is full and every connection is mid-request")]
    Full,
    #[error("no valid client token")]
    Unauthenticated,
}

/// How long a connection may take to prove the client token.
const AUTH_WITHIN: Duration = Duration::from_secs(5);

impl Server {
    pub(crate) fn new(
        handle: NodeHandle<LogValue>,
        limits: ClientLimits,
        token: Option<Vec<u8>>,
    ) -> Server {
        Server {
            handle,
            limits,
            token,
            admission: Mutex::new(Admission::new(limits.max_connections)),
            refusals: Mutex::new(LogThrottle::default()),
        }
    }

    /// Accept client connections forever, one task each.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let stop = CancellationToken::new();
                    let admitted = lock(&self.admission).admit(Instant::now(), stop.clone());
                    let id = match admitted {
                        Admit::In { id, evicted } => {
                            if let Some(victim) = evicted {
                                victim.cancel();
                            }
                            id
                        }
                        Admit::Refused => {
                            self.refused(remote, &Closed::Full, "client connection refused");
                            continue;
                        }
                    };
                    let server = self.clone();
                    tokio::spawn(async move {
                        let end = server.connection(stream, id, &stop).await;
                        lock(&server.admission).leave(id);
                        match end {
                            Ok(()) => {}
                            Err(
                                e @ (Closed::Idle(_) | Closed::Evicted | Closed::Unauthenticated),
                            ) => {
                                server.refused(remote, &e, "client connection closed");
                            }
                            Err(Closed::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                                server.refused(remote, &Closed::Io(e), "client connection closed");
                            }
                            Err(e) => {
                                tracing::debug!(%remote, error = %e, "client connection closed")
                            }
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Log a connection closed for the limits, at most once per period, with the count.
    fn refused(&self, remote: std::net::SocketAddr, why: &Closed, what: &str) {
        if let Some(closed) = lock(&self.refusals).note(Instant::now()) {
            tracing::warn!(%remote, error = %why, closed, "{what} ({closed} closed for the client port's limits since the last such line)");
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        id: u64,
        stop: &CancellationToken,
    ) -> Result<(), Closed> {
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut line = String::new();
        let idle = self.limits.idle_timeout;
        let mut authenticated = self.token.is_none();
        loop {
            let read = read_line_within(&mut reader, &mut line, self.limits.max_line);
            // A stranger gets a short while to prove the token, not the idle timeout.
            let wait = if authenticated {
                idle
            } else {
                idle.min(AUTH_WITHIN)
            };
            tokio::select! {
                // An evicted connection that is reading has no request under way.
                () = stop.cancelled() => return Err(Closed::Evicted),
                r = timeout(wait, read) => match r {
                    Err(_) if authenticated => return Err(Closed::Idle(idle)),
                    Err(_) => return Err(Closed::Unauthenticated),
                    Ok(r) => if r?.is_none() {
                        return Ok(());
                    },
                },
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let request = serde_json::from_str::<Request>(text);
            if !authenticated {
                // Only a valid `auth` opens the connection; anything else closes it, so an
                // unauthenticated connection never completes a request (it is the first
                // evicted at the cap) and never reaches the node.
                let proven = match (&request, &self.token) {
                    (
                        Ok(Request {
                            op: Op::Auth { token },
                            ..
                        }),
                        Some(expected),
                    ) => bool::from(token.as_bytes().ct_eq(expected)),
                    _ => false,
                };
                if !proven {
                    let refusal = Response::error("authenticate first: {\"auth\":{\"token\":...}}");
                    let mut out = serde_json::to_vec(&refusal).map_err(std::io::Error::other)?;
                    out.push(b'\n');
                    let _ = timeout(AUTH_WITHIN, write.write_all(&out)).await;
                    return Err(Closed::Unauthenticated);
                }
                authenticated = true;
            }
            lock(&self.admission).busy(id);
            let response = match request {
                Ok(request) => self.handle(request).await,
                Err(e) => Response::error(format!("bad request: {e}")),
            };
            let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
            out.push(b'\n');
            timeout(idle, write.write_all(&out))
                .await
                .map_err(|_| Closed::Idle(idle))??;
            lock(&self.admission).idle(id, Instant::now());
        }
    }

    /// Put `value` in the log as request `id` (or a new one of the node's own client), and
    /// answer with its instance and output.
    async fn write(
        &self,
        id: Option<ProposalId>,
        value: LogValue,
        timeout: Duration,
    ) -> Result<paxos_core::Reply, NodeError> {
        match id {
            Some(id) => self.handle.call(id, value, timeout).await,
            // The node's own client: no new session (and no floor) per write.
            None => self.handle.call_new(value, timeout).await,
        }
    }

    /// A key-value write's answer.
    async fn kv_write(&self, request: &Request, command: KvCommand, timeout: Duration) -> Response {
        match self.write(request.id, LogValue::Kv(command), timeout).await {
            Ok(reply) => match serde_json::from_slice::<KvOutput>(&reply.output) {
                Ok(out) => Response::Kv {
                    ok: out.ok,
                    value: out.value,
                    instance: Some(reply.instance.0),
                },
                // Only if the entry was applied as something else (cannot happen: the id is
                // this request's): say so rather than guess.
                Err(e) => Response::error(format!("unreadable output at {}: {e}", reply.instance)),
            },
            Err(e) => failed(&e),
        }
    }

    async fn handle(&self, request: Request) -> Response {
        let timeout =
            Duration::from_millis(request.timeout_ms.unwrap_or(DEFAULT_PROPOSE_TIMEOUT_MS));
        match request.op.clone() {
            Op::Write(command) => self.kv_write(&request, command, timeout).await,
            Op::Get { key } => {
                let query = match serde_json::to_vec(&KvQuery::Get { key }) {
                    Ok(q) => q,
                    Err(e) => return Response::error(format!("bad key: {e}")),
                };
                match self.handle.query(query.into(), timeout).await {
                    Ok(answer) => match serde_json::from_slice::<Option<String>>(&answer) {
                        Ok(value) => Response::Kv {
                            ok: true,
                            value,
                            instance: None,
                        },
                        Err(e) => Response::error(format!("unreadable answer: {e}")),
                    },
                    Err(e) => failed(&e),
                }
            }
            Op::Propose(value) => {
                let plain = LogValue::Plain(value.clone());
                let appended = match request.id {
                    Some(id) => self.handle.append_request(id, plain, timeout).await,
                    None => self.handle.append(plain, timeout).await,
                };
                match appended {
                    Ok(instance) => Response::Chosen {
                        instance: instance.0,
                        value,
                    },
                    Err(e) => failed(&e),
                }
            }
            Op::Session {} => match self.handle.session().await {
                Ok(session) => Response::Session {
                    client: session.client(),
                },
                Err(e) => failed(&e),
            },
            Op::Decisions { from, limit } => {
                let limit = limit.unwrap_or(DEFAULT_DECISIONS_LIMIT);
                match self.handle.read(InstanceId(from), limit).await {
                    Ok((page, applied)) => Response::Decisions {
                        next: page.last().map_or(from, |d| d.instance.0 + 1),
                        decisions: page
                            .into_iter()
                            .filter(|d| matches!(d.applied, Applied::First | Applied::Noop))
                            .map(|d| Decision {
                                instance: d.instance.0,
                                value: d.entry.value().map(LogValue::to_string),
                            })
                            .collect(),
                        applied: applied.0,
                    },
                    Err(e) => failed(&e),
                }
            }
            Op::Reconfigure(roles) => {
                let change = match roles.to_change() {
                    Ok(change) => change,
                    Err(e) => return Response::error(format!("bad request: {e}")),
                };
                match self.handle.reconfigure(change, timeout).await {
                    Ok(m) => Response::Membership {
                        membership: (&m).into(),
                    },
                    Err(e) => failed(&e),
                }
            }
            // Proven already (or no token is asked for): nothing more to prove.
            Op::Auth { .. } => Response::Authenticated {
                authenticated: true,
            },
            Op::Status {} => match self.handle.status().await {
                Ok(s) => Response::Status {
                    status: Status {
                        id: s.id.0,
                        leader: s.leader.map(|l| l.0),
                        first_undecided: s.first_undecided.0,
                        applied: s.applied.0,
                        decided: s.decided,
                        epoch: s.membership.epoch,
                    },
                },
                Err(e) => failed(&e),
            },
        }
    }
}

/// The error line for `e`, saying whether the value may still be chosen.
fn failed(e: &NodeError) -> Response {
    let maybe_chosen = matches!(
        e,
        NodeError::TimedOut { maybe_chosen: true } | NodeError::Aborted { maybe_chosen: true }
    );
    Response::Error {
        error: e.to_string(),
        maybe_chosen,
        not_leader: matches!(e, NodeError::Reconfig(ReconfigError::NotLeader(_))),
    }
}
