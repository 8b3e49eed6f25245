//! Both halves of the handshake (see the wire description in [`crate::codec`]).
//!
//! Callers put one deadline around a whole handshake.

use crate::auth;
use crate::codec::{
    CodecError, EncodedFrame, Frame, FrameCodec, HANDSHAKE_MAX_FRAME_LEN, Hello, Refusal,
    WIRE_VERSION,
};
use crate::error::NetError;
use futures::{SinkExt, StreamExt};
use paxos_core::{NodeId, Value};
use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// What a node proves and checks in handshakes.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) id: NodeId,
    pub(crate) cluster_id: u64,
    /// Ids allowed to connect to us: the peers of the configuration in force, replaced when
    /// the membership changes ([`crate::Transport`]'s `set_peers`).
    pub(crate) members: Mutex<BTreeSet<NodeId>>,
    pub(crate) secret: Option<Vec<u8>>,
    /// The TLS configurations, when links run inside TLS.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Contexts>,
}

impl Identity {
    /// True if `node` may connect to us now.
    pub(crate) fn admits(&self, node: NodeId) -> bool {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.contains(&node)
    }

    /// From now on admit `members` only.
    pub(crate) fn admit_only(&self, members: BTreeSet<NodeId>) {
        *self.members.lock().unwrap_or_else(|p| p.into_inner()) = members;
    }
}

fn encode<V: Value>(frame: Frame<V>) -> Result<EncodedFrame, NetError> {
    Ok(EncodedFrame::encode(&frame, HANDSHAKE_MAX_FRAME_LEN)?)
}

/// Read the next frame, turning "stream ended" into an error.
async fn next<S, V>(framed: &mut Framed<S, FrameCodec<V>>) -> Result<Frame<V>, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    V: Value,
{
    match framed.next().await {
        Some(frame) => Ok(frame?),
        None => Err(NetError::ConnectionClosed),
    }
}

/// Dialer side: answer the challenge, introduce ourselves to `peer`, wait for its verdict.
///
/// # Errors
/// [`NetError::Refused`] if the listener refused us, [`NetError::WrongPeer`] if another node
/// answered, codec/i-o/protocol errors otherwise.
pub(crate) async fn dial<S, V>(
    framed: &mut Framed<S, FrameCodec<V>>,
    me: &Identity,
    peer: NodeId,
) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    V: Value,
{
    let nonce = match next(framed).await? {
        Frame::Challenge { nonce } => nonce,
        Frame::Refused(refusal) => return Err(NetError::Refused(refusal)),
        _ => return Err(NetError::Protocol("expected a challenge")),
    };
    let auth = me
        .secret
        .as_deref()
        .map(|s| auth::prove(s, WIRE_VERSION, me.cluster_id, me.id, peer, &nonce));
    let hello = Hello {
        version: WIRE_VERSION,
        cluster_id: me.cluster_id,
        node: me.id,
        auth,
    };
    framed.send(encode::<V>(Frame::Hello(hello))?).await?;
    match next(framed).await? {
        Frame::Welcome { node } if node == peer => Ok(()),
        Frame::Welcome { node } => Err(NetError::WrongPeer {
            expected: peer,
            actual: node,
        }),
        Frame::Refused(refusal) => Err(NetError::Refused(refusal)),
        _ => Err(NetError::Protocol("expected welcome or refused")),
    }
}

/// What the link below the handshake proved of the dialer: `Some(names)` under TLS, where
/// `names(n)` is true if its client certificate names node `n`.
pub(crate) type Certified<'a> = Option<&'a (dyn Fn(NodeId) -> bool + Sync)>;

/// Listener side: challenge the dialer with `nonce` and check its hello (and, under TLS, that
/// it claims the node its certificate names).
///
/// Returns the dialer's authenticated id. On refusal the dialer is told why (best effort) and
/// the typed reason is returned for the caller to log.
///
/// # Errors
/// [`NetError::Refused`] / [`CodecError::WrongCluster`] / [`CodecError::UnknownVersion`] for a
/// refused dialer; codec/i-o/protocol errors for a broken one.
pub(crate) async fn accept<S, V>(
    framed: &mut Framed<S, FrameCodec<V>>,
    me: &Identity,
    nonce: [u8; 32],
    certified: Certified<'_>,
) -> Result<NodeId, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    V: Value,
{
    framed
        .send(encode::<V>(Frame::Challenge { nonce })?)
        .await?;
    let verdict = match next(framed).await {
        Ok(Frame::Hello(hello)) => check(&hello, me, &nonce, certified).map(|()| hello.node),
        Ok(_) => Err((
            Refusal::ExpectedHello,
            NetError::Refused(Refusal::ExpectedHello),
        )),
        Err(NetError::Codec(CodecError::UnknownVersion(v))) => Err((
            Refusal::UnsupportedVersion { ours: WIRE_VERSION },
            CodecError::UnknownVersion(v).into(),
        )),
        Err(e) => return Err(e),
    };
    match verdict {
        Ok(node) => {
            framed
                .send(encode::<V>(Frame::Welcome { node: me.id })?)
                .await?;
            Ok(node)
        }
        Err((refusal, error)) => {
            // Tell the dialer why, so its operator sees it too; it may already be gone.
            let _ = framed.send(encode::<V>(Frame::Refused(refusal))?).await;
            Err(error)
        }
    }
}

/// Check a hello against our identity: the refusal to send and the error to report.
///
/// Proof first, membership last: a dialer that proves nothing learns nothing of who the
/// members are (it is refused alike whether or not it named one).
fn check(
    hello: &Hello,
    me: &Identity,
    nonce: &[u8; 32],
    certified: Certified<'_>,
) -> Result<(), (Refusal, NetError)> {
    if hello.version != WIRE_VERSION {
        return Err((
            Refusal::UnsupportedVersion { ours: WIRE_VERSION },
            CodecError::UnknownVersion(hello.version).into(),
        ));
    }
    if hello.cluster_id != me.cluster_id {
        return Err((
            Refusal::WrongCluster(hello.cluster_id),
            CodecError::WrongCluster {
                expected: me.cluster_id,
                got: hello.cluster_id,
            }
            .into(),
        ));
    }
    let refuse = |r: Refusal| Err((r.clone(), NetError::Refused(r)));
    if let Some(names) = certified
        && !names(hello.node)
    {
        return refuse(Refusal::NotYourCertificate(hello.node));
    }
    if let Some(secret) = me.secret.as_deref() {
        let Some(proof) = hello.auth else {
            return refuse(Refusal::AuthRequired);
        };
        let ok = auth::verify(
            secret,
            hello.version,
            hello.cluster_id,
            hello.node,
            me.id,
            nonce,
            &proof,
        );
        if !ok {
            return refuse(Refusal::BadAuth);
        }
    }
    if !me.admits(hello.node) {
        return refuse(Refusal::UnknownNode(hello.node));
    }
    Ok(())
}
