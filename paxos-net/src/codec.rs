//! The one wire codec: length-delimited frames carrying a version byte and a postcard payload.
//!
//! Both transports wrap their streams in [`FrameCodec`]; nothing else reads or writes bytes.
//!
//! # Framing
//! ```text
//! +----------------+---------+-------------------------------+
//! | length: u32 BE | version | postcard(Frame<V>)            |
//! | (bytes after)  |  u8 = 2 |                               |
//! +----------------+---------+-------------------------------+
//! ```
//! The length counts the version byte and the payload. A length above the limit (default
//! [`DEFAULT_MAX_FRAME_LEN`], and only [`HANDSHAKE_MAX_FRAME_LEN`] before a peer is
//! authenticated) is refused from the 4-byte prefix alone, before any buffer is reserved.
//!
//! # Handshake
//! Every connection carries messages one way, from the dialer to the listener:
//! 1. listener → dialer: [`Frame::Challenge`] with a fresh 32-byte nonce;
//! 2. dialer → listener: [`Frame::Hello`] with version, cluster id, its node id and, when the
//!    cluster has a shared secret, `HMAC-SHA256(secret, tag ‖ version ‖ cluster ‖ dialer ‖
//!    listener ‖ nonce)` (see [`crate::auth`]);
//! 3. listener → dialer: [`Frame::Welcome`] with the listener's id, or [`Frame::Refused`] with a
//!    [`Refusal`], after which the listener closes the connection.
//!
//! With TLS credentials ([`crate::tls`]) a TLS 1.3 session is established first and all of the
//! above, and everything after, travels inside it; the `Hello` must then claim the node the
//! dialer's client certificate names ([`Refusal::NotYourCertificate`]).
//!
//! After the handshake the dialer sends [`Frame::Message`]s and a [`Frame::Ping`] every
//! keepalive interval; the listener answers each ping with a [`Frame::Pong`]. Either side closes
//! a connection that stays silent for the idle timeout (a partitioned link drops segments
//! without telling anyone).
//!
//! # Versioning
//! The version byte leads every frame. A frame with another version is a
//! [`CodecError::UnknownVersion`]; a listener answers it with
//! [`Refusal::UnsupportedVersion`] naming the version it speaks. The variant order of [`Frame`],
//! [`Refusal`] and `paxos_core::Message` is part of the wire format: append, never reorder.
//! A change inside a variant bumps the version: 2 (issue 16) added `Promise::compacted` and
//! the snapshot pieces (`SnapshotChunk`, `SnapshotRead`); 3 (issue 18) gave every ballot an
//! epoch and log entries the membership change.

use bytes::{BufMut, Bytes, BytesMut};
use paxos_core::{Message, NodeId};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The wire version this build speaks.
pub const WIRE_VERSION: u8 = 3;
/// Default maximum frame length (version byte + payload): 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Maximum frame length before the peer is authenticated: handshake frames are tiny, so a
/// stranger cannot make us reserve more than this.
pub const HANDSHAKE_MAX_FRAME_LEN: usize = 1024;
/// Size of the length prefix.
const LENGTH_PREFIX_LEN: usize = 4;

/// The dialer's introduction: who it is and which cluster it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The wire version the dialer speaks.
    pub version: u8,
    /// The cluster the dialer belongs to; must equal the listener's.
    pub cluster_id: u64,
    /// The dialer's node id; must be a member of the listener's membership.
    pub node: NodeId,
    /// HMAC-SHA256 proof of the shared secret over the listener's challenge, if the cluster has
    /// a secret.
    pub auth: Option<[u8; 32]>,
}

/// Why a listener refused a handshake. Sent to the dialer in [`Frame::Refused`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The dialer speaks another wire version; the listener speaks `ours`.
    #[error("unsupported wire version (listener speaks {ours})")]
    UnsupportedVersion {
        /// The version the listener speaks.
        ours: u8,
    },
    /// The dialer belongs to another cluster.
    #[error("wrong cluster id {0:#x}")]
    WrongCluster(u64),
    /// The dialer's node id is not in the listener's membership.
    #[error("node {0} is not a member of this cluster")]
    UnknownNode(NodeId),
    /// The cluster has a secret and the dialer sent no proof.
    #[error("authentication required")]
    AuthRequired,
    /// The dialer's proof does not match the secret.
    #[error("authentication failed")]
    BadAuth,
    /// The listener expected a `Hello` and got another frame.
    #[error("protocol violation: expected hello")]
    ExpectedHello,
    /// The `Hello` claims a node the dialer's TLS client certificate does not name.
    #[error("the client certificate does not name node {0}")]
    NotYourCertificate(NodeId),
}

/// One frame on the wire. See the [module docs](self) for who sends what when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame<V> {
    /// Listener → dialer, first frame: the nonce the dialer must authenticate.
    Challenge {
        /// Fresh per connection.
        nonce: [u8; 32],
    },
    /// Dialer → listener: the dialer's introduction.
    Hello(Hello),
    /// Listener → dialer: handshake accepted; the listener's node id.
    Welcome {
        /// The listener's node id, so the dialer can check it reached whom it meant to.
        node: NodeId,
    },
    /// Listener → dialer: handshake refused; the connection closes.
    Refused(Refusal),
    /// Dialer → listener: keepalive.
    Ping,
    /// Listener → dialer: keepalive answer.
    Pong,
    /// Dialer → listener: a protocol message.
    Message(Message<V>),
}

/// Why a frame could not be decoded (or encoded). Each closes only the connection it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame is longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversize {
        /// Announced (or encoded) length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The stream or payload ended inside a frame.
    #[error("frame truncated")]
    Truncated,
    /// The frame's version byte is not [`WIRE_VERSION`].
    #[error("unknown wire version {0} (this node speaks {WIRE_VERSION})")]
    UnknownVersion(u8),
    /// The peer's hello names another cluster.
    #[error("wrong cluster id {got:#x}, expected {expected:#x}")]
    WrongCluster {
        /// Our cluster id.
        expected: u64,
        /// The peer's cluster id.
        got: u64,
    },
    /// The payload is not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The underlying stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A frame already serialized (version byte + payload) and checked against a size limit.
///
/// Encoding happens once, in the sender's task, so an oversize message is refused there and
/// never reaches a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame(Bytes);

impl EncodedFrame {
    /// Serialize `frame`.
    ///
    /// # Errors
    /// [`CodecError::Oversize`] if the result exceeds `max_frame_len`;
    /// [`CodecError::Malformed`] if the value cannot be serialized.
    pub fn encode<V: Serialize>(
        frame: &Frame<V>,
        max_frame_len: usize,
    ) -> Result<EncodedFrame, CodecError> {
        // Size first (cheap: no bytes are copied), so the buffer is allocated once, at its
        // final size, and an oversize message costs no copy at all.
        let len = 1 + postcard::experimental::serialized_size(frame)
            .map_err(|e| CodecError::Malformed(e.to_string()))?;
        if len > max_frame_len {
            return Err(CodecError::Oversize {
                len,
                max: max_frame_len,
            });
        }
        let mut buf = BytesMut::with_capacity(len).writer();
        buf.get_mut().put_u8(WIRE_VERSION);
        postcard::to_io(frame, &mut buf).map_err(|e| CodecError::Malformed(e.to_string()))?;
        Ok(EncodedFrame(buf.into_inner().freeze()))
    }

    /// The frame's bytes: version byte + payload, without the length prefix.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Decode one frame body (version byte + payload, without the length prefix).
///
/// # Errors
/// [`CodecError::UnknownVersion`], [`CodecError::Truncated`] or [`CodecError::Malformed`].
pub fn decode_frame<V: Serialize + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<Frame<V>, CodecError> {
    let (&version, payload) = body.split_first().ok_or(CodecError::Truncated)?;
    if version != WIRE_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    match postcard::take_from_bytes::<Frame<V>>(payload) {
        Ok((frame, [])) => Ok(frame),
        Ok((_, rest)) => Err(CodecError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        ))),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(CodecError::Truncated),
        Err(e) => Err(CodecError::Malformed(e.to_string())),
    }
}

/// `tokio_util` codec for [`Frame`]s: decodes `Frame<V>`, encodes [`EncodedFrame`]s.
///
/// Wrap any `AsyncRead + AsyncWrite` stream in `Framed::new(stream, FrameCodec::new(max))`.
#[derive(Debug)]
pub struct FrameCodec<V> {
    inner: LengthDelimitedCodec,
    /// The inner codec consumed a length prefix and waits for the body: an EOF now truncates.
    mid_frame: bool,
    /// Bytes of the frame decoded last (its body).
    last_frame_len: usize,
    _value: PhantomData<fn() -> V>,
}

impl<V> FrameCodec<V> {
    /// A codec refusing frames longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        FrameCodec {
            inner: LengthDelimitedCodec::builder()
                .length_field_length(LENGTH_PREFIX_LEN)
                .max_frame_length(max_frame_len)
                .new_codec(),
            mid_frame: false,
            last_frame_len: 0,
            _value: PhantomData,
        }
    }

    /// Bytes of the frame decoded last (its body, without the length prefix): what the
    /// decoded value holds on to.
    pub fn last_frame_len(&self) -> usize {
        self.last_frame_len
    }

    /// The current limit.
    pub fn max_frame_len(&self) -> usize {
        self.inner.max_frame_length()
    }

    /// Change the limit (raised once the peer is authenticated).
    pub fn set_max_frame_len(&mut self, max_frame_len: usize) {
        self.inner.set_max_frame_length(max_frame_len);
    }

    fn map_io(&self, e: std::io::Error, src: &[u8]) -> CodecError {
        let oversize = e
            .get_ref()
            .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>());
        if !oversize {
            return CodecError::Io(e);
        }
        // On this error the prefix is still at the front of `src`.
        let len = src
            .get(..LENGTH_PREFIX_LEN)
            .and_then(|p| <[u8; 4]>::try_from(p).ok())
            .map_or(0, |p| u32::from_be_bytes(p) as usize);
        CodecError::Oversize {
            len,
            max: self.max_frame_len(),
        }
    }
}

impl<V: Serialize + serde::de::DeserializeOwned> Decoder for FrameCodec<V> {
    type Item = Frame<V>;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame<V>>, CodecError> {
        let before = src.len();
        match self.inner.decode(src) {
            Ok(Some(body)) => {
                self.mid_frame = false;
                self.last_frame_len = body.len();
                // Lend the frame to the decode: byte values become slices of it, not copies.
                let body = body.freeze();
                paxos_core::decode_zero_copy(&body, decode_frame).map(Some)
            }
            Ok(None) => {
                self.mid_frame |= src.len() != before;
                Ok(None)
            }
            Err(e) => Err(self.map_io(e, src)),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame<V>>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && !self.mid_frame => Ok(None),
            None => Err(CodecError::Truncated),
        }
    }
}

impl<V> Encoder<EncodedFrame> for FrameCodec<V> {
    type Error = CodecError;

    /// Writes the length prefix and the already-encoded body. The size limit is checked where
    /// the frame was built ([`EncodedFrame::encode`], against the sender's own limit), not
    /// here: this codec's limit is for what it *reads*, which differs per direction (a dialer
    /// reads only small handshake frames but writes full-size messages).
    fn encode(&mut self, frame: EncodedFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = frame.0.len();
        let prefix = u32::try_from(len).map_err(|_| CodecError::Oversize {
            len,
            max: u32::MAX as usize,
        })?;
        dst.reserve(LENGTH_PREFIX_LEN + len);
        dst.extend_from_slice(&prefix.to_be_bytes());
        dst.extend_from_slice(&frame.0);
        Ok(())
    }
}
