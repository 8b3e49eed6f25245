//! The node's client listener: serves `paxos_harness::client::protocol` on top of a
//! [`NodeHandle`]. Proposals go in with `append` (the core forwards them to the leader and
//! applies a retried request once), so the listener itself holds no retry loop.

use paxos_core::{Applied, InstanceId, NodeError, NodeHandle};
use paxos_harness::client::protocol::{
    DEFAULT_DECISIONS_LIMIT, DEFAULT_PROPOSE_TIMEOUT_MS, Decision, Op, Request, Response, Status,
};
use paxos_harness::client::read_line;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::sleep;

/// What every client connection shares.
pub(crate) struct Server {
    /// The local node.
    pub handle: NodeHandle<String>,
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
                let timeout = Duration::from_millis(ms);
                let appended = match request.id {
                    Some(id) => self.handle.append_request(id, value.clone(), timeout).await,
                    None => self.handle.append(value.clone(), timeout).await,
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
                                value: d.entry.value().cloned(),
                            })
                            .collect(),
                        applied: applied.0,
                    },
                    Err(e) => failed(&e),
                }
            }
            Op::Status {} => match self.handle.status().await {
                Ok(s) => Response::Status {
                    status: Status {
                        id: s.id.0,
                        leader: s.leader.map(|l| l.0),
                        first_undecided: s.first_undecided.0,
                        applied: s.applied.0,
                        decided: s.decided,
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
    }
}
