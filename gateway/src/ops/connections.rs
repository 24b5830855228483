//! The connection layer in front of the proxy: how many client connections a process holds,
//! and how long and how large a client may make a request before the proxy sees it (the
//! `limits:` section; docs/configuration.md, "Resource limits").
//!
//! pingora has no connection limit, bounds request heads and bodies per read only (a client
//! trickling a byte a minute holds its connection forever), and after the first request of a
//! keep-alive connection waits for the next one without any timeout. [`GuardedProxy`] is the
//! proxy service's application in pingora's place: it takes a connection slot, reads each
//! request's head itself within `header_timeout` and the size bounds, wraps the connection so
//! that its body must arrive in time ([`GuardedStream`]), then hands pingora's own HTTP/1
//! session the head it read and lets pingora do the rest, as it would have. Between requests,
//! it waits for the next one `idle_timeout` at most, holding no buffer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{GetSocketDigest, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::body_guard::{BodyLimits, GuardedStream, OnCut};
use super::plain_stream::PlainStream;
use super::request_head::{self, Head, HeadLimits, Refusal};
use crate::config::LimitsConfig;
use crate::http::pages::{text, Bilingual};
use crate::http::respond::{Reply, STRICT_CSP};
use crate::pipeline::proxy::GuichetProxy;
use crate::telemetry::audit::{self, AuditContext};
use crate::telemetry::metrics::ConnectionMetrics;

/// The proxy service's application: see the module.
pub struct GuardedProxy {
    proxy: Arc<HttpProxy<GuichetProxy>>,
    connections: Arc<Semaphore>,
    max_connections: usize,
    head: HeadLimits,
    body: BodyLimits,
    idle_timeout: Duration,
    send_timeout: Duration,
    metrics: ConnectionMetrics,
    on_body_cut: OnCut,
    refusals: Arc<Throttle>,
    cuts: Arc<Throttle>,
}

impl GuardedProxy {
    pub fn new(
        proxy: HttpProxy<GuichetProxy>,
        limits: &LimitsConfig,
        metrics: ConnectionMetrics,
    ) -> Self {
        let cuts = Arc::new(Throttle::default());
        let on_body_cut: OnCut = {
            let counter = metrics.cut.with_label_values(&["body_timeout"]);
            let cuts = cuts.clone();
            Arc::new(move || {
                counter.inc();
                cuts.note("body_timeout");
            })
        };
        let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        warn_if_few_descriptors(max_connections);
        Self {
            proxy: Arc::new(proxy),
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            head: HeadLimits {
                header_timeout: limits.header_timeout,
                max_bytes: limits.max_header_bytes,
                max_headers: limits.max_headers,
            },
            body: BodyLimits {
                timeout: limits.body_timeout,
                min_rate: limits.body_min_rate,
            },
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
            metrics,
            on_body_cut,
            refusals: Arc::new(Throttle::default()),
            cuts,
        }
    }

    /// Serves HTTP/1 requests on `stream` until the client or pingora ends the connection.
    async fn serve_http1(&self, stream: Stream, shutdown: &ShutdownWatch) {
        let began = Instant::now();
        let mut stream = GuardedStream::new(stream, self.body, self.on_body_cut.clone());
        let mut shutdown = shutdown.clone();
        let mut persistent = None;
        let mut first = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            // The first request must come whole within `header_timeout` of connecting; later
            // ones may be `idle_timeout` away, then have `header_timeout` from their first
            // byte. A connection that sends nothing is closed quietly (browsers open spare
            // ones), not counted as a cut request.
            let wait = if first {
                self.head.header_timeout
            } else {
                self.idle_timeout
            };
            let started = tokio::select! {
                started = tokio::time::timeout(wait, request_head::first_bytes(&mut stream)) => started,
                _ = shutdown.changed() => return,
            };
            let Ok(Some(started)) = started else { return };
            let head = HeadLimits {
                header_timeout: if first {
                    self.head.header_timeout.saturating_sub(began.elapsed())
                } else {
                    self.head.header_timeout
                },
                ..self.head
            };
            let (bytes, head_len, framing) =
                match request_head::read_head(&mut stream, started, &head).await {
                    Head::Complete {
                        bytes,
                        head_len,
                        framing,
                    } => (bytes, head_len, framing),
                    Head::Closed => return,
                    Head::Refused(refusal) => {
                        self.refuse_request(stream, refusal).await;
                        return;
                    }
                };
            stream.expect_body(framing, &bytes[head_len..]);
            let mut session = ServerSession::new_http1(Box::new(stream));
            if let Some(persistent) = persistent.take() {
                pingora::apps::HttpPersistentSettings::apply_to_session(persistent, &mut session);
            }
            // pingora reads nothing more for this head (it parses the bytes given); were it
            // to read, each read would wait this long at most.
            session.set_keepalive(Some(self.head.header_timeout.as_secs().max(1)));
            session.set_write_timeout(Some(self.send_timeout));
            session.set_pipelined_prefix(bytes);
            let Some(reused) = self.proxy.process_new_http(session, &shutdown).await else {
                return;
            };
            let (next, settings) = reused.consume();
            persistent = settings;
            // pingora hands back the stream it was given.
            stream = match next.into_any().downcast::<GuardedStream>() {
                Ok(stream) => *stream,
                Err(_) => return,
            };
            if !stream.body_complete() {
                // Reused with its body unread: only a framing pingora read differently could
                // do that. Not served further.
                return;
            }
            first = false;
        }
    }

    /// Answers a request whose head was refused, then closes.
    async fn refuse_request(&self, mut stream: GuardedStream, refusal: Refusal) {
        self.metrics
            .cut
            .with_label_values(&[refusal.reason()])
            .inc();
        let id = uuid::Uuid::new_v4().to_string();
        let reply = match refusal {
            // Slow clients are most often attacks (slowloris): counted, logged in summary.
            Refusal::Timeout => {
                self.cuts.note(refusal.reason());
                Reply::error(408, TIMEOUT, TOO_SLOW, &id)
            }
            Refusal::LineTooLong | Refusal::TooLarge | Refusal::TooManyHeaders => {
                let reason = match refusal {
                    Refusal::LineTooLong => "request line longer than limits.max_header_bytes",
                    Refusal::TooLarge => "request headers larger than limits.max_header_bytes",
                    _ => "more request header fields than limits.max_headers",
                };
                // The connection's peer: behind a load balancer, the balancer (the forwarded
                // address is in the headers refused here).
                let peer = stream
                    .get_socket_digest()
                    .and_then(|digest| digest.peer_addr().and_then(|addr| addr.as_inet().copied()));
                audit::request_refused(
                    &AuditContext {
                        correlation_id: &id,
                        app: "-",
                        client_ip: peer.map(|addr| addr.ip()),
                    },
                    reason,
                );
                Reply::error(refusal.status(), text::BAD_REQUEST, text::TOO_LARGE, &id)
            }
        };
        self.answer_and_close(&mut stream, &reply, &id, Duration::from_secs(1))
            .await;
    }

    /// Refuses a connection over `max_connections`: a short 503, then closed.
    async fn refuse_connection<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        self.metrics.refused.inc();
        if let Some(refused) = self.refusals.take_report() {
            tracing::warn!(
                refused,
                max_connections = self.max_connections,
                "connections refused: limits.max_connections are open"
            );
        }
        let reply = Reply::text(503, REFUSED_TEXT).with_header("retry-after", "1".into());
        // Not counted among the open connections: kept as briefly as possible.
        self.answer_and_close(&mut stream, &reply, "-", Duration::from_millis(250))
            .await;
    }

    /// Writes `reply` with `Connection: close`, then lets the client read it: the write side
    /// is shut and what the client still sends is read and dropped for up to `linger`.
    /// Closing with unread bytes would reset the connection, and the client could lose the
    /// answer.
    async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        reply: &Reply,
        correlation_id: &str,
        linger: Duration,
    ) {
        let bytes = serialize(reply, correlation_id);
        let wrote = tokio::time::timeout(self.send_timeout.min(Duration::from_secs(5)), async {
            stream.write_all(&bytes).await?;
            stream.flush().await?;
            stream.shutdown().await
        })
        .await;
        if !matches!(wrote, Ok(Ok(()))) {
            return;
        }
        let deadline = Instant::now() + linger;
        let mut drained = 0;
        // On the heap: on the stack, it would be part of every connection's future, idle ones
        // included.
        let mut sink = vec![0u8; 2048];
        while drained < 64 * 1024 {
            match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => return,
            }
        }
    }
}

impl GuardedProxy {
    /// Serves a connection accepted by Guichet's own listener ([`super::plain_listener`]).
    pub async fn serve_plain(&self, socket: TcpStream, peer: SocketAddr, shutdown: &ShutdownWatch) {
        let Ok(slot) = self.connections.clone().try_acquire_owned() else {
            self.refuse_connection(socket).await;
            return;
        };
        let _open = Open::new(&self.metrics);
        self.serve_http1(Box::new(PlainStream::new(socket, peer)), shutdown)
            .await;
        drop(slot);
    }
}

impl GuardedProxy {
    /// Serves a connection accepted by pingora's TLS listening service.
    pub async fn serve_tls(&self, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let Ok(slot) = self.connections.clone().try_acquire_owned() else {
            self.refuse_connection(stream).await;
            return None;
        };
        let _open = Open::new(&self.metrics);
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 (Guichet's listeners do not offer it today): pingora's own handling,
            // still within the connection limit.
            let reused = ServerApp::process_new(&self.proxy, stream, shutdown).await;
            drop(slot);
            return reused;
        }
        self.serve_http1(stream, shutdown).await;
        drop(slot);
        None
    }

    /// Tells pingora's sessions waiting on a keep-alive connection that the service stops.
    pub async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

const TIMEOUT: Bilingual = Bilingual {
    fr: "Délai dépassé",
    en: "Request timeout",
};
const TOO_SLOW: Bilingual = Bilingual {
    fr: "La requête est arrivée trop lentement. Réessayez.",
    en: "The request arrived too slowly. Please try again.",
};

/// The body of the 503 of a refused connection (plain text: it is sent before any request is
/// read, to whatever client connected).
const REFUSED_TEXT: &str = "Service momentanément indisponible : trop de connexions. Réessayez dans quelques instants.\nService temporarily unavailable: too many connections. Please try again in a moment.\n";

/// The bytes of a complete HTTP/1.1 response closing the connection, with the headers the
/// proxy gives its own pages.
fn serialize(reply: &Reply, correlation_id: &str) -> Vec<u8> {
    let status = http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    let mut head = format!(
        "HTTP/1.1 {} {status}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nx-frame-options: DENY\r\nreferrer-policy: no-referrer\r\ncontent-security-policy: {}\r\nx-request-id: {correlation_id}\r\nconnection: close\r\n",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.csp.as_deref().unwrap_or(STRICT_CSP),
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&reply.body);
    bytes
}

/// `guichet_connections_open`, for as long as a connection is served.
struct Open<'a>(&'a ConnectionMetrics);

impl<'a> Open<'a> {
    fn new(metrics: &'a ConnectionMetrics) -> Self {
        metrics.open.inc();
        Self(metrics)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.dec();
    }
}

/// At most one log line every ten seconds for events that come in floods under attack
/// (refused connections, cut requests); each line says how many there were since the last.
#[derive(Default)]
struct Throttle(Mutex<ThrottleState>);

#[derive(Default)]
struct ThrottleState {
    last: Option<Instant>,
    since: u64,
}

const REPORT_EVERY: Duration = Duration::from_secs(10);

impl Throttle {
    /// Counts one event; the number to report when a line is due.
    fn take_report(&self) -> Option<u64> {
        let Ok(mut state) = self.0.lock() else {
            return None;
        };
        state.since += 1;
        let due = state.last.is_none_or(|last| last.elapsed() >= REPORT_EVERY);
        if !due {
            return None;
        }
        state.last = Some(Instant::now());
        Some(std::mem::take(&mut state.since))
    }

    /// Counts a cut request and logs the summary line when due.
    fn note(&self, reason: &'static str) {
        if let Some(count) = self.take_report() {
            tracing::warn!(
                reason,
                count,
                "requests cut off: too slow (limits.header_timeout, limits.body_timeout)"
            );
        }
    }
}

/// Each connection holds a file descriptor, and each request proxied one more: a process
/// allowed fewer than that refuses connections with "too many open files" (and pingora's
/// accept loop then pauses for a second) before the configured limit is reached.
fn warn_if_few_descriptors(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    if let Some(soft) = soft {
        let wanted = max_connections.saturating_mul(2).saturating_add(1024);
        if soft < wanted {
            tracing::warn!(
                nofile = soft,
                wanted,
                max_connections,
                "the open-file limit is below what limits.max_connections needs: raise it (ulimit -n, LimitNOFILE) or lower max_connections"
            );
        }
    }
}
