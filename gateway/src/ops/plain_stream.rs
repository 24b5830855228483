//! A client connection accepted by Guichet's own listener ([`super::plain_listener`]): the
//! TCP socket and what pingora asks of a connection, and nothing an idle connection does not
//! need.
//!
//! pingora's connection type keeps a write buffer (1,460 bytes) and its socket digest
//! (about 400 bytes) for the connection's whole life. Here the write buffer exists only while
//! a response is being written: writes are gathered, as pingora's buffer does, so that a
//! response's head and a small body leave in one segment (the socket has `TCP_NODELAY`), and
//! the buffer is freed at each flush. The socket digest is made the first time it is asked
//! for. An idle keep-alive connection then holds the socket and a few words.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Writes shorter than this are gathered; pingora's choice (one TCP segment on most links).
const GATHER: usize = 1460;

/// A plain TCP client connection; see the module.
pub struct PlainStream {
    socket: TcpStream,
    peer: SocketAddr,
    established: SystemTime,
    digest: OnceLock<Arc<SocketDigest>>,
    /// Bytes written but not yet sent; no allocation between responses.
    pending: Vec<u8>,
    /// How much of `pending` the socket has taken.
    sent: usize,
}

impl PlainStream {
    pub fn new(socket: TcpStream, peer: SocketAddr) -> Self {
        Self {
            socket,
            peer,
            established: SystemTime::now(),
            digest: OnceLock::new(),
            pending: Vec::new(),
            sent: 0,
        }
    }

    /// Sends what is gathered; frees the buffer once it is all sent.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.socket).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for PlainStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.pending.len() + buf.len() > GATHER {
            ready!(this.poll_send_pending(cx))?;
        }
        if buf.len() >= GATHER {
            return Pin::new(&mut this.socket).poll_write(cx, buf);
        }
        if this.pending.capacity() == 0 {
            this.pending.reserve_exact(GATHER);
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send_pending(cx))?;
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send_pending(cx))?;
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for PlainStream {
    async fn shutdown(&mut self) {
        // The client may already be gone; nothing to do about it.
        AsyncWriteExt::shutdown(self).await.ok();
    }
}

impl UniqueID for PlainStream {
    fn id(&self) -> UniqueIDType {
        self.socket.as_raw_fd()
    }
}

impl Ssl for PlainStream {}

impl GetTimingDigest for PlainStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![Some(TimingDigest {
            established_ts: self.established,
            ..Default::default()
        })]
    }
}

impl GetProxyDigest for PlainStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for PlainStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(
            self.digest
                .get_or_init(|| {
                    let digest = SocketDigest::from_raw_fd(self.socket.as_raw_fd());
                    // Known from accept: no system call to ask again.
                    digest.peer_addr.set(Some(self.peer.into())).ok();
                    Arc::new(digest)
                })
                .clone(),
        )
    }
}

impl Peek for PlainStream {}

impl fmt::Debug for PlainStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainStream")
            .field("peer", &self.peer)
            .field("fd", &self.socket.as_raw_fd())
            .field("pending", &(self.pending.len() - self.sent))
            .finish()
    }
}

#[cfg(test)]
mod tests;
