//! Reading a request's line and headers before pingora parses them, within a deadline and
//! size bounds (`limits.header_timeout`, `limits.max_header_bytes`, `limits.max_headers`).
//!
//! pingora bounds each *read* of a request head (60 s, and not at all on a keep-alive
//! connection after its first request), never the whole head: a client sending a byte every
//! minute holds a connection forever. Its size ceilings (1 MiB, 256 fields) are fixed. So the
//! connection layer reads the head itself, up to its blank line, and hands pingora the bytes
//! it read ([`pingora::protocols::http::ServerSession::set_pipelined_prefix`]): pingora then
//! parses exactly those bytes, with no read of its own.
//!
//! The end of the head is found as httparse finds it: lines end with CRLF or a bare LF, and
//! empty lines before the request line are skipped. Nothing else is interpreted here but the
//! body's framing, which the body deadline needs ([`Framing`]); pingora still parses and
//! validates everything.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::Instant;

/// The bounds of one request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub header_timeout: Duration,
    pub max_bytes: usize,
    pub max_headers: usize,
}

/// How the head ended.
#[derive(Debug)]
pub enum Head {
    /// A complete head: `bytes` holds it (`head_len` bytes) and whatever the client sent after
    /// it (the start of the body).
    Complete {
        bytes: BytesMut,
        head_len: usize,
        framing: Framing,
    },
    /// The client closed the connection or the read failed: nothing to answer.
    Closed,
    /// The request is refused before pingora sees it.
    Refused(Refusal),
}

/// Why a head is refused: the status and the metric's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not complete within `header_timeout`: 408.
    Timeout,
    /// The request line alone is longer than `max_header_bytes`: 414.
    LineTooLong,
    /// The head is longer than `max_header_bytes`: 431.
    TooLarge,
    /// More than `max_headers` fields: 431.
    TooManyHeaders,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Timeout => 408,
            Refusal::LineTooLong => 414,
            Refusal::TooLarge | Refusal::TooManyHeaders => 431,
        }
    }

    /// The `reason` label of `guichet_requests_cut_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Timeout => "header_timeout",
            Refusal::LineTooLong | Refusal::TooLarge => "headers_too_large",
            Refusal::TooManyHeaders => "too_many_headers",
        }
    }
}

/// How a request's body is delimited (RFC 9112 §6.3), as far as the body deadline needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`.
    Chunked,
    /// A framing pingora refuses or reads until the connection closes (conflicting lengths, a
    /// transfer coding other than chunked): the deadline holds until the request ends.
    Unknown,
}

/// Reads the rest of a head whose first byte is `first` (already read), until its blank
/// line, within `limits.header_timeout` from now.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    first: BytesMut,
    limits: &HeadLimits,
) -> Head {
    let deadline = Instant::now() + limits.header_timeout;
    // What [`first_bytes`] read, then more as needed: 4 KiB at a time as pingora does, never
    // far past the bound.
    let mut bytes = first;
    let mut scan = HeadScan::default();
    loop {
        match scan.advance(&bytes, limits) {
            Scan::Complete(head_len) => {
                let framing = framing(&bytes[..head_len]);
                return Head::Complete {
                    bytes,
                    head_len,
                    framing,
                };
            }
            Scan::Refused(refusal) => return Head::Refused(refusal),
            Scan::Partial => {}
        }
        if bytes.capacity() == bytes.len() {
            bytes.reserve(4096.min(limits.max_bytes + 1));
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut bytes)).await {
            Err(_) => return Head::Refused(Refusal::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Complete(usize),
    Partial,
    Refused(Refusal),
}

/// Where a head scan is, so that each read is scanned once.
#[derive(Default, Debug)]
struct HeadScan {
    /// The next byte to look at.
    next: usize,
    /// Where the request line starts (after the empty lines a client may send first).
    start: Option<usize>,
    /// Where the current line starts.
    line_start: usize,
    /// Complete lines so far (the request line, then one per field).
    lines: usize,
}

impl HeadScan {
    fn advance(&mut self, buf: &[u8], limits: &HeadLimits) -> Scan {
        while self.next < buf.len() {
            let at = self.next;
            let byte = buf[at];
            self.next += 1;
            if self.start.is_none() {
                // RFC 9112 §2.2: empty lines before the request line are ignored.
                if byte != b'\r' && byte != b'\n' {
                    self.start = Some(at);
                    self.line_start = at;
                }
                continue;
            }
            if byte != b'\n' {
                continue;
            }
            let line = &buf[self.line_start..at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                // The blank line: the head is complete (a request line always came first).
                let head_len = at + 1;
                if head_len > limits.max_bytes {
                    return Scan::Refused(Refusal::TooLarge);
                }
                return Scan::Complete(head_len);
            }
            self.lines += 1;
            if self.lines == 1 && at > limits.max_bytes {
                return Scan::Refused(Refusal::LineTooLong);
            }
            if self.lines - 1 > limits.max_headers {
                return Scan::Refused(Refusal::TooManyHeaders);
            }
            self.line_start = at + 1;
        }
        if buf.len() > limits.max_bytes {
            return Scan::Refused(if self.lines == 0 {
                Refusal::LineTooLong
            } else {
                Refusal::TooLarge
            });
        }
        Scan::Partial
    }
}

/// The body framing a complete head declares. `Transfer-Encoding` wins over `Content-Length`
/// (RFC 9112 §6.3, and pingora drops the length when both are there).
fn framing(head: &[u8]) -> Framing {
    let mut transfer_encoding: Option<Vec<u8>> = None;
    let mut length: Option<u64> = None;
    let mut conflicting = false;
    // The first line is the request line; the last one the blank line.
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let codings = transfer_encoding.get_or_insert_with(Vec::new);
            codings.push(b',');
            codings.extend_from_slice(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for item in value.split(|b| *b == b',') {
                let parsed = std::str::from_utf8(item.trim_ascii())
                    .ok()
                    .filter(|digits| {
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|digits| digits.parse::<u64>().ok());
                match (parsed, length) {
                    (None, _) => conflicting = true,
                    (Some(n), Some(seen)) if n != seen => conflicting = true,
                    (Some(n), _) => length = Some(n),
                }
            }
        }
    }
    if let Some(codings) = transfer_encoding {
        let last = codings
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .rfind(|coding| !coding.is_empty());
        return match last {
            Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            _ => Framing::Unknown,
        };
    }
    match (conflicting, length) {
        (true, _) => Framing::Unknown,
        (false, Some(0) | None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    }
}

/// How much the first read of a request takes: most request heads fit, so that one read
/// (one system call) usually brings the whole head. (Reading one byte first, then the rest,
/// cost a system call more per request.)
pub const FIRST_READ: usize = 1024;

/// Waits for the start of a request and returns what the client sent first (at most
/// [`FIRST_READ`] bytes): `None` when the client closes or the read fails.
///
/// The read buffer lives only inside each poll, on the thread's stack: a future holding it
/// across the wait would make every idle connection's task that much larger, and a heap
/// buffer would be held by every idle connection.
pub async fn first_bytes<S: AsyncRead + Unpin>(stream: &mut S) -> Option<BytesMut> {
    std::future::poll_fn(|cx| {
        let mut buffer = [0u8; FIRST_READ];
        let mut read = ReadBuf::new(&mut buffer);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(None),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(BytesMut::from(read.filled()))),
        }
    })
    .await
}

#[cfg(test)]
mod tests;
