//! A client connection that cuts off request bodies sent too slowly (`limits.body_timeout`,
//! `limits.body_min_rate`).
//!
//! pingora bounds each read of a body (60 s), not the body: a client sending one byte every
//! 59 s holds a connection and a task for as long as it likes. [`GuardedStream`] wraps the
//! connection pingora reads from; while a request's body is incomplete, a read may wait only
//! until a deadline that starts at `body_timeout` and moves one second later for every
//! `body_min_rate` bytes received (mod_reqtimeout's rule): a body arriving on average more
//! slowly than `body_min_rate` fails with a timeout, a large upload at any normal speed never
//! does. The deadline is checked only while a read is waiting, so it costs nothing otherwise.
//!
//! Knowing when the body is complete needs its framing: a length is counted down, chunked
//! encoding is followed by [`ChunkedScan`]. Once complete, reads wait freely: pingora keeps a
//! read pending while the upstream answers (to notice a client leaving), and that wait is the
//! upstream's timeout to bound, not the client's fault.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::request_head::Framing;

/// The body rule of `limits:`.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub timeout: Duration,
    /// Bytes per second that move the deadline one second.
    pub min_rate: u64,
}

/// Called once when a body is cut off (to count it).
pub type OnCut = Arc<dyn Fn() + Send + Sync>;

/// A client connection whose request bodies must arrive in time; see the module.
pub struct GuardedStream {
    inner: Stream,
    limits: BodyLimits,
    body: BodyState,
    /// Armed while a body is incomplete.
    clock: Option<Pin<Box<Sleep>>>,
    on_cut: OnCut,
}

#[derive(Debug)]
enum BodyState {
    Complete,
    Length(u64),
    Chunked(ChunkedScan),
    /// Until the request ends (framing pingora refuses anyway).
    Unknown,
}

impl GuardedStream {
    pub fn new(inner: Stream, limits: BodyLimits, on_cut: OnCut) -> Self {
        Self {
            inner,
            limits,
            body: BodyState::Complete,
            clock: None,
            on_cut,
        }
    }

    /// A request's head has been read: its body, framed as `framing`, starts with `preread`
    /// (the bytes read with the head, which pingora gets without reading them here).
    pub fn expect_body(&mut self, framing: Framing, preread: &[u8]) {
        self.body = match framing {
            Framing::None => BodyState::Complete,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedScan::default()),
            Framing::Unknown => BodyState::Unknown,
        };
        self.clock = None;
        // A small body often comes whole with its head: then there is nothing to time.
        if !self.advance(preread) {
            let allowed = self.limits.timeout + self.credit(preread.len());
            self.clock = Some(Box::pin(tokio::time::sleep(allowed)));
        }
    }

    /// Whether the last request's body has been received whole.
    pub fn body_complete(&self) -> bool {
        matches!(self.body, BodyState::Complete)
    }

    /// Follows the body through `bytes`; true once it is complete.
    fn advance(&mut self, bytes: &[u8]) -> bool {
        let complete = match &mut self.body {
            BodyState::Complete => return true,
            BodyState::Length(remaining) => {
                *remaining = remaining.saturating_sub(bytes.len() as u64);
                *remaining == 0
            }
            BodyState::Chunked(scan) => scan.feed(bytes),
            BodyState::Unknown => false,
        };
        if complete {
            self.body = BodyState::Complete;
        }
        complete
    }

    /// The time `received` bytes add to the deadline.
    fn credit(&self, received: usize) -> Duration {
        Duration::from_nanos(
            (received as u64).saturating_mul(1_000_000_000) / self.limits.min_rate.max(1),
        )
    }

    /// Bytes pingora read: the body moves on, and so does its deadline.
    fn received(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.clock.is_none() {
            return;
        }
        if self.advance(bytes) {
            self.clock = None;
        } else if let Some(mut clock) = self.clock.take() {
            let deadline = clock.deadline() + self.credit(bytes.len());
            clock.as_mut().reset(deadline);
            self.clock = Some(clock);
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let this = &mut *self;
                this.received(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(clock) = self.clock.as_mut() else {
                    return Poll::Pending;
                };
                if clock.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Cut off: every later read fails too, and the connection is not reused.
                self.clock = Some(Box::pin(tokio::time::sleep(Duration::ZERO)));
                self.body = BodyState::Unknown;
                (self.on_cut)();
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body arriving too slowly (limits.body_timeout, limits.body_min_rate)",
                )))
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// What pingora asks a connection besides reading and writing: the socket's, the TLS
// session's and the timing digests, all the wrapped connection's.

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .field("body", &self.body)
            .field(
                "deadline",
                &self.clock.as_ref().map(|clock| clock.deadline()),
            )
            .finish_non_exhaustive()
    }
}

/// Follows chunked transfer coding (RFC 9112 §7.1) far enough to know where the body ends:
/// chunk sizes, extensions, data, the last chunk and its trailer fields. Bytes that break the
/// framing stop it in [`ChunkedScan::Broken`] (pingora refuses the body; the deadline holds
/// until it does).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum ChunkedScan {
    /// Reading a chunk size (`digits` hex digits so far).
    #[default]
    Start,
    Size {
        size: u64,
        digits: u32,
    },
    /// After the size: extensions, up to the line's end.
    Extension {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    /// After a chunk's data: its CRLF (`cr`: the CR was seen).
    DataEnd {
        cr: bool,
    },
    /// After the last chunk: trailer fields, until an empty line (`line`: bytes on this one).
    Trailer {
        line: u64,
    },
    Done,
    Broken,
}

impl ChunkedScan {
    /// Takes more body bytes; true once the body is complete.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut at = 0;
        while at < bytes.len() {
            if let ChunkedScan::Data { remaining } = self {
                // Skip data in one step.
                let take = (*remaining).min((bytes.len() - at) as u64);
                *remaining -= take;
                at += take as usize;
                if *remaining == 0 {
                    *self = ChunkedScan::DataEnd { cr: false };
                }
                continue;
            }
            let byte = bytes[at];
            at += 1;
            *self = match std::mem::take(self) {
                ChunkedScan::Start => match hex(byte) {
                    Some(digit) => ChunkedScan::Size {
                        size: digit,
                        digits: 1,
                    },
                    None => ChunkedScan::Broken,
                },
                ChunkedScan::Size { size, digits } => match hex(byte) {
                    // 16 hex digits are a u64; more is not a size anyone sends.
                    Some(digit) if digits < 16 => ChunkedScan::Size {
                        size: size << 4 | digit,
                        digits: digits + 1,
                    },
                    Some(_) => ChunkedScan::Broken,
                    None => Self::after_size(size, byte),
                },
                ChunkedScan::Extension { size } => Self::after_size(size, byte),
                ChunkedScan::Data { .. } => ChunkedScan::Broken,
                ChunkedScan::DataEnd { cr } => match byte {
                    b'\r' if !cr => ChunkedScan::DataEnd { cr: true },
                    b'\n' => ChunkedScan::Start,
                    _ => ChunkedScan::Broken,
                },
                ChunkedScan::Trailer { line } => match byte {
                    b'\n' if line == 0 => ChunkedScan::Done,
                    b'\n' => ChunkedScan::Trailer { line: 0 },
                    b'\r' => ChunkedScan::Trailer { line },
                    _ => ChunkedScan::Trailer { line: line + 1 },
                },
                // Bytes after the end belong to no body (pingora does not reuse the
                // connection then).
                ChunkedScan::Done => ChunkedScan::Done,
                ChunkedScan::Broken => ChunkedScan::Broken,
            };
            if *self == ChunkedScan::Broken {
                return false;
            }
        }
        *self == ChunkedScan::Done
    }

    /// A byte after a chunk size or within its extensions.
    fn after_size(size: u64, byte: u8) -> ChunkedScan {
        match byte {
            b'\n' if size == 0 => ChunkedScan::Trailer { line: 0 },
            b'\n' => ChunkedScan::Data { remaining: size },
            _ => ChunkedScan::Extension { size },
        }
    }
}

fn hex(byte: u8) -> Option<u64> {
    (byte as char).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests;
