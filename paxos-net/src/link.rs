//! [`Link`]: a connection's byte stream, in the clear or inside TLS.
//!
//! The framing, handshake and queues above it are the same either way; only this enum knows.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connected stream over a [`crate::network::Network`]'s `S`.
pub(crate) enum Link<S> {
    /// No encryption: the cluster runs `--insecure` or with the shared secret only.
    Plain(S),
    /// Inside mutually authenticated TLS ([`crate::tls`]). Boxed: the TLS state is large.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::TlsStream<S>>),
}

/// Call `$method` on whichever stream the link holds (all of them are `Unpin`).
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Link::Plain($s) => $e,
            #[cfg(feature = "tls")]
            Link::Tls($s) => $e,
        }
    };
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Link<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Link<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Link::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Link::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
