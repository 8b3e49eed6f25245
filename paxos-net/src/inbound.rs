//! The accept loop and one reader task per inbound connection.
//!
//! Each accepted connection must pass the handshake before anything it sends is read as a
//! message; the handshake's proven id is the `from` of every message on that connection. A
//! bad frame, a failed handshake or a silent link closes only that connection.

use crate::codec::{CodecError, EncodedFrame, Frame, FrameCodec, HANDSHAKE_MAX_FRAME_LEN};
use crate::error::NetError;
use crate::handshake::{self, Identity};
use crate::link::Link;
use crate::metrics::Counters;
use crate::network::Network;
use crate::queue;
use crate::throttle::LogThrottle;
use futures::{SinkExt, StreamExt};
use paxos_core::{Message, NodeId, Value};
use rand::RngCore;
use rand::rngs::StdRng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Connections allowed to be in their handshake at once; more are closed on accept, so
/// strangers cannot pile up half-open connections.
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What every inbound connection task shares.
pub(crate) struct Inbound<V> {
    pub(crate) identity: Arc<Identity>,
    pub(crate) inbox: queue::Sender<(NodeId, Message<V>)>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) max_frame_len: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    /// The live connection of each peer. A newer authenticated connection replaces the older
    /// one, so each member holds at most one reader however often it redials.
    pub(crate) live: Mutex<BTreeMap<NodeId, (u64, CancellationToken)>>,
    /// Refused connections are logged once per period with their count (every one is
    /// counted in the metrics): a flood of strangers must not flood the log.
    pub(crate) refusals: Mutex<LogThrottle>,
}

impl<V: Value> Inbound<V> {
    /// Accept connections until `stop` is cancelled; then close every connection and return.
    pub(crate) async fn accept_loop<N: Network>(
        self: Arc<Self>,
        listener: N::Listener,
        mut nonces: StdRng,
        stop: CancellationToken,
    ) {
        let mut conns = JoinSet::new();
        let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        let mut next_conn = 0u64;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = N::accept(&listener) => match accepted {
                    Ok((stream, remote)) => {
                        let Ok(permit) = pending.clone().try_acquire_owned() else {
                            Counters::bump(&self.counters.refused);
                            self.refused(remote, "too many pending handshakes; closing connection");
                            continue;
                        };
                        let mut nonce = [0u8; 32];
                        nonces.fill_bytes(&mut nonce);
                        next_conn += 1;
                        conns.spawn(self.clone().serve(stream, remote, nonce, permit, next_conn));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        sleep(ACCEPT_RETRY).await;
                    }
                },
            }
        }
        drop(listener);
        conns.shutdown().await;
    }

    /// Log a refused connection, at most once per period, with the count since the last line.
    fn refused(&self, remote: SocketAddr, why: &str) {
        let due = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(tokio::time::Instant::now());
        if let Some(refused) = due {
            tracing::warn!(%remote, refused, "{why} ({refused} refused since the last such line)");
        }
    }

    /// Handshake, then read frames into the inbox until the connection ends.
    async fn serve<S>(
        self: Arc<Self>,
        stream: S,
        remote: SocketAddr,
        nonce: [u8; 32],
        permit: OwnedSemaphorePermit,
        conn_id: u64,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let handshake = timeout(self.handshake_timeout, self.handshake(stream, nonce));
        let (mut conn, peer) = match handshake.await {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(
                e @ (NetError::Io(_)
                | NetError::Codec(CodecError::Io(_))
                | NetError::ConnectionClosed),
            )) => {
                tracing::debug!(%remote, error = %e, "inbound connection closed during handshake");
                return;
            }
            Ok(Err(e)) => {
                let counter = match &e {
                    NetError::Refused(_)
                    | NetError::Tls(_)
                    | NetError::Codec(
                        CodecError::WrongCluster { .. } | CodecError::UnknownVersion(_),
                    ) => &self.counters.refused,
                    _ => &self.counters.bad_frames,
                };
                Counters::bump(counter);
                self.refused(remote, &format!("refused inbound connection: {e}"));
                return;
            }
            Err(_) => {
                // Proved nothing in time: under TLS, e.g., a dialer that speaks no TLS waits
                // for a challenge that never comes.
                Counters::bump(&self.counters.refused);
                self.refused(remote, "inbound handshake timed out; closing connection");
                return;
            }
        };
        drop(permit);
        conn.codec_mut().set_max_frame_len(self.max_frame_len);
        let stop = self.register(peer, conn_id);
        tracing::debug!(%peer, %remote, "accepted connection");
        let why = tokio::select! {
            biased;
            () = stop.cancelled() => NetError::Protocol("replaced by a newer connection, or the peer left the cluster"),
            why = self.read(&mut conn, peer) => why,
        };
        self.unregister(peer, conn_id);
        match why {
            // Under TLS: a record that failed its authentication (bytes changed or injected on
            // the path). Nothing of it reached the inbox.
            NetError::Codec(CodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Counters::bump(&self.counters.bad_frames);
                tracing::warn!(%peer, %remote, error = %e, "closed inbound connection: TLS record failed");
            }
            NetError::Codec(CodecError::Io(_))
            | NetError::Io(_)
            | NetError::Timeout(_)
            | NetError::ConnectionClosed => {
                tracing::debug!(%peer, %remote, error = %why, "inbound connection closed");
            }
            _ if stop.is_cancelled() => {
                tracing::debug!(%peer, %remote, "inbound connection replaced by a newer one");
            }
            NetError::Codec(_) | NetError::Protocol(_) => {
                Counters::bump(&self.counters.bad_frames);
                tracing::warn!(%peer, %remote, error = %why, "closed inbound connection");
            }
            _ => tracing::debug!(%peer, %remote, error = %why, "inbound connection closed"),
        }
    }

    /// Run the handshake on a fresh connection: TLS first when the cluster has credentials,
    /// then the framed challenge/hello, whose claimed id must be the certificate's.
    pub(crate) async fn handshake<S>(
        &self,
        stream: S,
        nonce: [u8; 32],
    ) -> Result<(Framed<Link<S>, FrameCodec<V>>, NodeId), NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let framed = |link| Framed::new(link, FrameCodec::<V>::new(HANDSHAKE_MAX_FRAME_LEN));
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.identity.tls {
            let (stream, cert) = tls.accept(stream).await?;
            let mut conn = framed(Link::Tls(Box::new(stream)));
            let names = |node| crate::tls::names(&cert, node);
            let peer = handshake::accept(&mut conn, &self.identity, nonce, Some(&names)).await?;
            return Ok((conn, peer));
        }
        let mut conn = framed(Link::Plain(stream));
        let peer = handshake::accept(&mut conn, &self.identity, nonce, None).await?;
        Ok((conn, peer))
    }

    /// Read frames until the connection fails; returns why.
    async fn read<S>(&self, conn: &mut Framed<S, FrameCodec<V>>, peer: NodeId) -> NetError
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let pong = match EncodedFrame::encode(&Frame::<V>::Pong, HANDSHAKE_MAX_FRAME_LEN) {
            Ok(pong) => pong,
            Err(e) => return e.into(),
        };
        loop {
            let frame = match timeout(self.idle_timeout, conn.next()).await {
                Err(_) => return NetError::Timeout("idle connection"),
                Ok(None) => return NetError::ConnectionClosed,
                Ok(Some(Err(e))) => return e.into(),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Message(message) => {
                    // A decoded message holds its frame's bytes (values are slices of it).
                    let bytes = conn.codec().last_frame_len();
                    match self.inbox.try_send((peer, message), bytes) {
                        Ok(()) => {}
                        // The node is not keeping up; Paxos tolerates the loss, a stalled
                        // connection would hurt more.
                        Err(queue::Refused::Full) => Counters::bump(&self.counters.dropped),
                        Err(queue::Refused::Closed) => return NetError::ConnectionClosed,
                    }
                }
                Frame::Ping => match timeout(self.write_timeout, conn.send(pong.clone())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return e.into(),
                    Err(_) => return NetError::Timeout("pong write"),
                },
                _ => return NetError::Protocol("unexpected frame after handshake"),
            }
        }
    }

    fn register(&self, peer: NodeId, conn_id: u64) -> CancellationToken {
        let token = CancellationToken::new();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, older)) = live.insert(peer, (conn_id, token.clone())) {
            older.cancel();
        }
        token
    }

    /// Close `peer`'s connection, if it has one (it left the cluster).
    pub(crate) fn disconnect(&self, peer: NodeId) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, token)) = live.remove(&peer) {
            token.cancel();
        }
    }

    fn unregister(&self, peer: NodeId, conn_id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(&peer).is_some_and(|(id, _)| *id == conn_id) {
            live.remove(&peer);
        }
    }
}
