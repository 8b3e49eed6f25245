//! The node's client listener: serves `paxos_harness::client::protocol` on top of a
//! [`NodeHandle`].

use paxos_core::{InstanceId, NodeError, NodeHandle, NodeId};
use paxos_harness::client::protocol::{
    DEFAULT_DECISIONS_LIMIT, DEFAULT_PROPOSE_TIMEOUT_MS, Decision, Op, Request, Response, Status,
};
use paxos_harness::client::{Client, ClientError, read_line};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant as TokioInstant, sleep, timeout};

/// One attempt of a proposal waits at most this long for its instance before proposing again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before retrying after "not the leader" (an election in progress) or a failed forward.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// Deadline for connecting to a peer's client port when forwarding.
const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What every client connection shares.
pub(crate) struct Server {
    /// The local node.
    pub handle: NodeHandle<String>,
    /// Client addresses of the other nodes, for forwarding proposals to the leader.
    pub peer_clients: BTreeMap<NodeId, String>,
}

impl Server {
    /// Accept client connections forever, one task each.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = server.connection(stream).await {
                            tracing::debug!(%remote, error = %e, "client connection closed");
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

    async fn connection(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut line = String::new();
        while read_line(&mut reader, &mut line).await?.is_some() {
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let response = match serde_json::from_str::<Request>(text) {
                Ok(request) => self.handle(request).await,
                Err(e) => Response::error(format!("bad request: {e}")),
            };
            let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
            out.push(b'\n');
            write.write_all(&out).await?;
        }
        Ok(())
    }

    async fn handle(&self, request: Request) -> Response {
        match request.op {
            Op::Propose(value) => {
                let ms = request.timeout_ms.unwrap_or(DEFAULT_PROPOSE_TIMEOUT_MS);
                let deadline = TokioInstant::now() + Duration::from_millis(ms);
                self.commit(value, deadline, request.forwarded).await
            }
            Op::Decisions { from, limit } => match self.handle.decisions().await {
                Ok(map) => {
                    let limit = limit.unwrap_or(DEFAULT_DECISIONS_LIMIT);
                    let first_undecided = first_gap(&map);
                    let decisions = map
                        .range(InstanceId(from)..)
                        .take(limit)
                        .map(|(i, v)| Decision {
                            instance: i.0,
                            value: v.clone(),
                        })
                        .collect();
                    Response::Decisions {
                        decisions,
                        first_undecided,
                    }
                }
                Err(e) => Response::error(e.to_string()),
            },
            Op::Status {} => match self.handle.status().await {
                Ok(s) => Response::Status {
                    status: Status {
                        id: s.id.0,
                        leader: s.leader.map(|l| l.0),
                        first_undecided: s.first_undecided.0,
                        decided: s.decided,
                    },
                },
                Err(e) => Response::error(e.to_string()),
            },
        }
    }

    /// Propose `value` until it is the value chosen in some instance, or the deadline passes.
    /// Not the leader: forward to the leader (unless this request was itself forwarded).
    async fn commit(&self, value: String, deadline: TokioInstant, forwarded: bool) -> Response {
        let me = self.handle.id();
        let mut last_leader = None;
        loop {
            let now = TokioInstant::now();
            if now >= deadline {
                return Response::Error {
                    error: "timed out; the value may still be chosen later".into(),
                    leader: last_leader,
                };
            }
            let attempt = (deadline - now).min(ATTEMPT_TIMEOUT);
            match timeout(attempt, self.handle.propose(value.clone())).await {
                Err(_) => {
                    tracing::debug!(node = %me, "proposal not decided in time; proposing again");
                }
                Ok(Ok((instance, chosen))) if chosen == value => {
                    return Response::Chosen {
                        instance: instance.0,
                        value,
                    };
                }
                Ok(Ok((instance, _))) => {
                    tracing::debug!(node = %me, %instance, "another value was chosen; proposing again");
                }
                Ok(Err(NodeError::NotLeader { leader })) => {
                    last_leader = Some(leader.0);
                    if forwarded {
                        return Response::Error {
                            error: format!("not the leader; the leader is {}", leader.0),
                            leader: Some(leader.0),
                        };
                    }
                    if leader != me {
                        match self.forward(leader, &value, deadline).await {
                            Ok(instance) => return Response::Chosen { instance, value },
                            Err(e) => {
                                tracing::debug!(node = %me, %leader, error = %e, "forward failed");
                            }
                        }
                    }
                    sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(TokioInstant::now())))
                        .await;
                }
                Ok(Err(e)) => return Response::error(e.to_string()),
            }
        }
    }

    /// Ask `leader` (through its client port) to commit `value` by `deadline`.
    async fn forward(
        &self,
        leader: NodeId,
        value: &str,
        deadline: TokioInstant,
    ) -> Result<u64, ClientError> {
        let addr = self
            .peer_clients
            .get(&leader)
            .ok_or_else(|| ClientError::Protocol(format!("no client address for {leader}")))?;
        let remaining = deadline.saturating_duration_since(TokioInstant::now());
        let work = async {
            let mut client = timeout(FORWARD_CONNECT_TIMEOUT, Client::connect(addr))
                .await
                .map_err(|_| ClientError::Protocol(format!("connect to {addr} timed out")))??;
            let request = Request {
                timeout_ms: Some(u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX)),
                forwarded: true,
                ..Request::new(Op::Propose(value.to_owned()))
            };
            match client.request(&request).await? {
                Response::Chosen {
                    instance,
                    value: chosen,
                } if chosen == value => Ok(instance),
                Response::Error { error, leader } => Err(ClientError::Node { error, leader }),
                other => Err(ClientError::Protocol(format!(
                    "unexpected forward response {other:?}"
                ))),
            }
        };
        // A little slack past the deadline so the leader's own timeout answer arrives first.
        timeout(remaining + Duration::from_secs(1), work)
            .await
            .map_err(|_| ClientError::Protocol(format!("forward to {addr} timed out")))?
    }
}

/// The first instance missing from `map` (every instance below it is decided).
fn first_gap(map: &BTreeMap<InstanceId, String>) -> u64 {
    let mut next = 0u64;
    for i in map.keys() {
        if i.0 != next {
            break;
        }
        next += 1;
    }
    next
}
