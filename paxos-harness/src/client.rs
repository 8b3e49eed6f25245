//! [`Client`]: an async client of the client port of `paxos-harness node`, which speaks the
//! newline-delimited JSON of [`protocol`].

pub mod protocol;
pub mod reconfigure;

use paxos_core::{ClientId, ProposalId};
use protocol::{Decision, MAX_LINE, Op, Request, Response, Status};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The node closed the connection before answering.
    #[error("connection closed by the node")]
    Closed,
    /// The node answered something that is not a valid response (or not the expected one).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The node answered `{"error":...}`.
    #[error("node error: {error}")]
    Node {
        /// The node's message.
        error: String,
        /// The value may still be chosen (retry the same request id to find out).
        maybe_chosen: bool,
        /// The node does not lead, and only the leader takes this request: ask the leader.
        not_leader: bool,
    },
}

/// Read one line of at most [`MAX_LINE`] bytes into `line`; `None` at end of stream. Both
/// ends of the protocol read through it, so neither can be made to buffer an endless line.
///
/// # Errors
/// I/O errors, and [`std::io::ErrorKind::InvalidData`] for a line over the limit.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> std::io::Result<Option<()>> {
    read_line_within(reader, line, MAX_LINE).await
}

/// [`read_line`] with another bound (a node's `--client-max-line`): at most `max` bytes
/// before the newline are ever buffered.
///
/// # Errors
/// I/O errors, and [`std::io::ErrorKind::InvalidData`] for a line over `max`.
pub async fn read_line_within<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
    max: usize,
) -> std::io::Result<Option<()>> {
    line.clear();
    // `max + 1` bytes: a line of exactly `max` bytes still has room for its newline.
    let n = reader.take(max as u64 + 1).read_line(line).await?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line longer than {max} bytes"),
        ));
    }
    Ok(Some(()))
}

/// One connection to a node's client port. Requests are answered in order.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl Client {
    /// Connect to `addr` (`"host:port"`).
    ///
    /// # Errors
    /// [`ClientError::Io`] if the connection fails.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer,
            line: String::new(),
        })
    }

    /// Send one request and read its response (which may be [`Response::Error`]).
    ///
    /// # Errors
    /// [`ClientError::Io`], [`ClientError::Closed`] or [`ClientError::Protocol`].
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut out =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        out.push(b'\n');
        self.writer.write_all(&out).await?;
        if read_line(&mut self.reader, &mut self.line).await?.is_none() {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(self.line.trim_end())
            .map_err(|e| ClientError::Protocol(format!("bad response {:?}: {e}", self.line)))
    }

    /// Connect to `addr` and, with a `token`, prove it first (a node started with
    /// `--client-token-file` serves nothing else).
    ///
    /// # Errors
    /// [`ClientError::Io`] if the connection fails; [`ClientError::Node`] if the token is
    /// refused.
    pub async fn connect_with(addr: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let mut client = Client::connect(addr).await?;
        if let Some(token) = token {
            client.authenticate(token).await?;
        }
        Ok(client)
    }

    /// Prove the client token on this connection.
    ///
    /// # Errors
    /// [`ClientError::Node`] if the node refuses it (it closes the connection then).
    pub async fn authenticate(&mut self, token: &str) -> Result<(), ClientError> {
        let auth = Op::Auth {
            token: token.to_owned(),
        };
        match self.request(&Request::new(auth)).await? {
            Response::Authenticated { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// A new client id from the node: requests `{client, seq}` with it are exactly once.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn session(&mut self) -> Result<ClientId, ClientError> {
        match self.request(&Request::new(Op::Session {})).await? {
            Response::Session { client } => Ok(client),
            other => Err(unexpected(other)),
        }
    }

    /// Put `value` in the log as a new request of the node's own client; returns its
    /// instance. `timeout` is the node-side deadline (default 30 s); the caller should bound
    /// the call itself against a dead node.
    ///
    /// # Errors
    /// [`ClientError::Node`] if the node gave up (timed out, node stopped...); with
    /// `maybe_chosen` the value may still be chosen later. Any other [`ClientError`] on
    /// connection trouble.
    pub async fn propose(
        &mut self,
        value: &str,
        timeout: Option<Duration>,
    ) -> Result<u64, ClientError> {
        self.propose_request(None, value, timeout).await
    }

    /// Put `value` in the log as request `id` (from [`Client::session`]); sending the same id
    /// again (here or to another node) never puts it in twice, and answers with its instance.
    ///
    /// # Errors
    /// As [`Client::propose`].
    pub async fn append(
        &mut self,
        id: ProposalId,
        value: &str,
        timeout: Option<Duration>,
    ) -> Result<u64, ClientError> {
        self.propose_request(Some(id), value, timeout).await
    }

    async fn propose_request(
        &mut self,
        id: Option<ProposalId>,
        value: &str,
        timeout: Option<Duration>,
    ) -> Result<u64, ClientError> {
        let request = Request {
            id,
            timeout_ms: millis(timeout),
            ..Request::new(Op::Propose(value.to_owned()))
        };
        match self.request(&request).await? {
            Response::Chosen {
                instance,
                value: chosen,
            } if chosen == value => Ok(instance),
            other => Err(unexpected(other)),
        }
    }

    /// One page of applied slots at or above `from` (at most `limit`, default 1000), where
    /// the next page starts, and the node's applied frontier.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn decisions_page(
        &mut self,
        from: u64,
        limit: Option<usize>,
    ) -> Result<(Vec<Decision>, u64, u64), ClientError> {
        match self
            .request(&Request::new(Op::Decisions { from, limit }))
            .await?
        {
            Response::Decisions {
                decisions,
                next,
                applied,
            } => Ok((decisions, next, applied)),
            other => Err(unexpected(other)),
        }
    }

    /// Every slot the node applied at or above `from`, in instance order (pages through).
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn decisions(&mut self, from: u64) -> Result<Vec<Decision>, ClientError> {
        let mut all: Vec<Decision> = Vec::new();
        let mut at = from;
        loop {
            let (page, next, applied) = self.decisions_page(at, None).await?;
            all.extend(page);
            if next <= at || next >= applied {
                return Ok(all);
            }
            at = next;
        }
    }

    /// A key-value request (`put`, `get`, `cas`, `delete`): `id` makes a write exactly once
    /// (from [`Client::session`]; send it again to retry), `timeout` is the node-side
    /// deadline. Returns the outcome: for a write, whether it took effect (a `cas` may not),
    /// what the key holds after it and its instance; for a get, the value (`None`: absent).
    ///
    /// # Errors
    /// [`ClientError::Node`] if the node gave up (with `maybe_chosen`, a write may still take
    /// effect); any other [`ClientError`] on connection trouble.
    pub async fn kv(
        &mut self,
        op: Op,
        id: Option<ProposalId>,
        timeout: Option<Duration>,
    ) -> Result<KvAnswer, ClientError> {
        let request = Request {
            op,
            id,
            timeout_ms: millis(timeout),
        };
        match self.request(&request).await? {
            Response::Kv {
                ok,
                value,
                instance,
            } => Ok(KvAnswer {
                ok,
                value,
                instance,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Ask the node to change the membership to `roles`; answers once the new configuration
    /// is in force there. Only the leader takes it ([`Status::leader`] says which node is).
    ///
    /// # Errors
    /// [`ClientError::Node`] with the refusal (not the leader, a change already in progress,
    /// an id reused, ...); any other [`ClientError`] on connection trouble.
    pub async fn reconfigure(
        &mut self,
        roles: &protocol::Roles,
        timeout: Option<Duration>,
    ) -> Result<protocol::MembershipView, ClientError> {
        let request = Request {
            timeout_ms: millis(timeout),
            ..Request::new(Op::Reconfigure(roles.clone()))
        };
        match self.request(&request).await? {
            Response::Membership { membership } => Ok(membership),
            other => Err(unexpected(other)),
        }
    }

    /// The node's protocol state.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn status(&mut self) -> Result<Status, ClientError> {
        match self.request(&Request::new(Op::Status {})).await? {
            Response::Status { status } => Ok(status),
            other => Err(unexpected(other)),
        }
    }
}

/// The answer to [`Client::kv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvAnswer {
    /// The write took effect (false: a `cas` that did not match); true for a get.
    pub ok: bool,
    /// What the key holds (after the write); `None` if absent.
    pub value: Option<String>,
    /// A write's instance in the log.
    pub instance: Option<u64>,
}

/// A request's `timeout_ms` (saturating: a timeout beyond `u64::MAX` ms is forever anyway).
fn millis(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

fn unexpected(response: Response) -> ClientError {
    match response {
        Response::Error {
            error,
            maybe_chosen,
            not_leader,
        } => ClientError::Node {
            error,
            maybe_chosen,
            not_leader,
        },
        other => ClientError::Protocol(format!("unexpected response {other:?}")),
    }
}
