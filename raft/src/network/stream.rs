//! A bus connection's two halves, over plain TCP or TLS: the rest of the bus reads and
//! writes them without knowing which.
//!
//! Owns the halves only. Plain TCP keeps tokio's lock-free owned halves (the unsecured and
//! the secret-only bus pay one `match` per read or write); a TLS stream is split with
//! `tokio::io::split`, which takes a short lock per read or write.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};
use tokio_rustls::TlsStream;

/// The reading half of a bus connection.
#[derive(Debug)]
pub(crate) enum BusRead {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a bus connection.
#[derive(Debug)]
pub(crate) enum BusWrite {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

/// The halves of a plain TCP connection.
pub(crate) fn plain(sock: TcpStream) -> (BusRead, BusWrite) {
    let (r, w) = sock.into_split();
    (BusRead::Tcp(r), BusWrite::Tcp(w))
}

/// The halves of a TLS connection.
pub(crate) fn tls(s: TlsStream<TcpStream>) -> (BusRead, BusWrite) {
    let (r, w) = tokio::io::split(s);
    (BusRead::Tls(r), BusWrite::Tls(w))
}

impl BusRead {
    /// True when nothing can be read now and the peer has not closed the connection (polled
    /// once, never waiting). On TLS a record that arrived is read to tell: the connection is
    /// then dropped anyway.
    pub(crate) fn is_quiet(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match self {
            BusRead::Tcp(r) => r.poll_peek(&mut cx, &mut buf).is_pending(),
            BusRead::Tls(r) => Pin::new(r).poll_read(&mut cx, &mut buf).is_pending(),
        }
    }
}

impl AsyncRead for BusRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BusRead::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            BusRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BusWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BusWrite::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            BusWrite::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BusWrite::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            BusWrite::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BusWrite::Tcp(w) => w.is_write_vectored(),
            BusWrite::Tls(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BusWrite::Tcp(w) => Pin::new(w).poll_flush(cx),
            BusWrite::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BusWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            BusWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
