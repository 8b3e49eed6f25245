//! One task per peer: dial, handshake, write queued frames, keep the link alive, redial.
//!
//! The task owns the receiving end of the peer's bounded queue; `send` only `try_send`s into
//! it, so a slow or dead peer costs at most `queue_capacity` frames of at most `queue_bytes`
//! bytes in all, and never blocks the node.

use crate::backoff::Backoff;
use crate::codec::{EncodedFrame, Frame, FrameCodec, HANDSHAKE_MAX_FRAME_LEN};
use crate::error::NetError;
use crate::handshake::{self, Identity};
use crate::link::Link;
use crate::metrics::Counters;
use crate::network::Network;
use crate::queue;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use paxos_core::{NodeId, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until, timeout};
use tokio_util::codec::Framed;

/// Frames written per flush at most, so one batch cannot outlive its write deadline by much.
const MAX_BATCH: usize = 256;

/// Deadlines of an outbound connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) keepalive_interval: Duration,
    pub(crate) idle_timeout: Duration,
}

/// The state of one peer's outbound task.
pub(crate) struct Outbound {
    pub(crate) peer: NodeId,
    pub(crate) addr: String,
    pub(crate) queue: queue::Receiver<EncodedFrame>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) timing: Timing,
    pub(crate) backoff: Backoff,
    pub(crate) counters: Arc<Counters>,
}

type Conn<N, V> = Framed<Link<<N as Network>::Stream>, FrameCodec<V>>;

impl Outbound {
    /// Run until the transport drops the queue (or aborts the task).
    pub(crate) async fn run<N: Network, V: Value>(mut self) {
        loop {
            match self.connect::<N, V>().await {
                Ok(conn) => {
                    self.backoff.reset();
                    Counters::bump(&self.counters.connects);
                    tracing::debug!(peer = %self.peer, addr = %self.addr, "connected");
                    let (sink, stream) = conn.split();
                    match self.session::<N, V>(sink, stream).await {
                        None => return,
                        Some(why) => {
                            tracing::debug!(peer = %self.peer, error = %why, "connection lost")
                        }
                    }
                }
                Err(e @ (NetError::Refused(_) | NetError::WrongPeer { .. })) => {
                    tracing::warn!(peer = %self.peer, addr = %self.addr, error = %e, "handshake refused");
                }
                // A peer that is down or unreachable is routine; keep the log quiet.
                Err(e) => {
                    tracing::debug!(peer = %self.peer, addr = %self.addr, error = %e, "dial failed")
                }
            }
            if self.queue.is_closed() {
                return;
            }
            sleep(self.backoff.next_delay()).await;
        }
    }

    /// Connect and handshake, under one deadline each.
    async fn connect<N: Network, V: Value>(&self) -> Result<Conn<N, V>, NetError> {
        let deadline = self.timing.connect_timeout;
        let stream = timeout(deadline, N::connect(self.addr.clone()))
            .await
            .map_err(|_| NetError::Timeout("connect"))??;
        timeout(deadline, self.handshake::<N, V>(stream))
            .await
            .map_err(|_| NetError::Timeout("handshake"))?
    }

    /// TLS first when the cluster has credentials (the listener must hold the peer's
    /// certificate), then the framed challenge/hello.
    async fn handshake<N: Network, V: Value>(
        &self,
        stream: N::Stream,
    ) -> Result<Conn<N, V>, NetError> {
        // The listener only ever sends handshake frames and pongs: keep its limit small.
        let framed = |link| Framed::new(link, FrameCodec::<V>::new(HANDSHAKE_MAX_FRAME_LEN));
        #[cfg(feature = "tls")]
        let link = match &self.identity.tls {
            Some(tls) => Link::Tls(Box::new(tls.dial(stream, self.peer).await?)),
            None => Link::Plain(stream),
        };
        #[cfg(not(feature = "tls"))]
        let link = Link::Plain(stream);
        let mut conn = framed(link);
        handshake::dial(&mut conn, &self.identity, self.peer).await?;
        Ok(conn)
    }

    /// Write queued frames and pings until the connection fails (`Some(why)`) or the queue is
    /// closed (`None`).
    async fn session<N: Network, V: Value>(
        &mut self,
        mut sink: SplitSink<Conn<N, V>, EncodedFrame>,
        mut stream: SplitStream<Conn<N, V>>,
    ) -> Option<NetError> {
        let Timing {
            write_timeout,
            keepalive_interval,
            idle_timeout,
            ..
        } = self.timing;
        let ping = match EncodedFrame::encode(&Frame::<V>::Ping, HANDSHAKE_MAX_FRAME_LEN) {
            Ok(ping) => ping,
            Err(e) => return Some(e.into()),
        };
        let mut ticker =
            tokio::time::interval_at(Instant::now() + keepalive_interval, keepalive_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            // Biased: liveness first, so a busy queue cannot starve pings and pongs.
            tokio::select! {
                biased;
                frame = stream.next() => match frame {
                    Some(Ok(Frame::Pong)) => last_heard = Instant::now(),
                    Some(Ok(_)) => return Some(NetError::Protocol("unexpected frame from listener")),
                    Some(Err(e)) => return Some(e.into()),
                    None => return Some(NetError::ConnectionClosed),
                },
                _ = ticker.tick() => {
                    if let Err(e) = write(&mut sink, write_timeout, ping.clone(), None).await {
                        return Some(e);
                    }
                }
                () = sleep_until(last_heard + idle_timeout) => return Some(NetError::Timeout("keepalive")),
                frame = self.queue.recv() => {
                    let frame = frame?;
                    if let Err(e) = write(&mut sink, write_timeout, frame, Some(&mut self.queue)).await {
                        return Some(e);
                    }
                }
            }
        }
    }
}

/// Feed `first` and whatever else is queued (up to [`MAX_BATCH`]), then flush once, all
/// within `deadline`. A failed batch is lost: Paxos retransmits on its own timers.
async fn write<S>(
    sink: &mut S,
    deadline: Duration,
    first: EncodedFrame,
    more: Option<&mut queue::Receiver<EncodedFrame>>,
) -> Result<(), NetError>
where
    S: futures::Sink<EncodedFrame, Error = crate::codec::CodecError> + Unpin,
{
    let batch = async {
        sink.feed(first).await?;
        if let Some(queue) = more {
            for _ in 1..MAX_BATCH {
                let Some(frame) = queue.try_recv() else { break };
                sink.feed(frame).await?;
            }
        }
        sink.flush().await
    };
    timeout(deadline, batch)
        .await
        .map_err(|_| NetError::Timeout("write"))?
        .map_err(NetError::from)
}
