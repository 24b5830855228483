//! The header-echo application: a tiny upstream that shows what it received. It is the demo's
//! protected app and the test kit's upstream: HTML for browsers, JSON when asked
//! (`Accept: application/json`), and it answers protocol upgrades by echoing bytes back so
//! WebSocket pass-through can be checked. With `?echo=set-cookies` it sets cookies, some named
//! like Guichet's (which the gateway drops). With `?echo=fixed` it answers a fixed body instead
//! (benchmarks).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::http::pages::escape;

/// A running echo server.
pub struct EchoServer {
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Binds `address` (port 0 for any) and serves on a thread of its own.
    #[allow(
        clippy::expect_used,
        reason = "the echo app is a development tool: failing to start it is fatal"
    )]
    pub fn start(address: SocketAddr) -> std::io::Result<EchoServer> {
        let std_listener = std::net::TcpListener::bind(address)?;
        std_listener.set_nonblocking(true)?;
        let address = std_listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("echo-app".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    tokio::select! {
                        _ = serve(listener) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(EchoServer {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(handle);
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
                .ok();
        });
    }
}

const FIXED_BODY: &[u8] = &[b'.'; 700];

#[allow(
    clippy::expect_used,
    reason = "responses built from constants are valid"
)]
async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(protocol) = request.headers().get(http::header::UPGRADE).cloned() {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buffer = [0u8; 4096];
                while let Ok(n) = io.read(&mut buffer).await {
                    if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(http::header::UPGRADE, protocol)
            .header(http::header::CONNECTION, "upgrade")
            .body(Full::new(Bytes::new()))
            .expect("valid response"));
    }

    // `?echo=fixed`: the same ~700-byte answer whatever the request carries, so a benchmark
    // compares proxies on equal upstream work (the echo page grows with the headers received).
    if request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "echo=fixed"))
    {
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(FIXED_BODY)))
            .expect("valid response"));
    }

    // `?echo=set-cookies`: an app setting its own cookie and, as a misbehaving (or hostile)
    // app might, cookies named like Guichet's, which the gateway must not pass on.
    if request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "echo=set-cookies"))
    {
        let mut response = Response::builder().status(StatusCode::OK);
        for cookie in [
            "app_pref=dark; Path=/",
            "guichet_session=planted; Path=/",
            "guichet_session_device=planted; Path=/.guichet/",
            "__Host-guichet_session=planted; Path=/; Secure",
            "GUICHET_SESSION_LOGIN=planted; Path=/",
        ] {
            response = response.header(http::header::SET_COOKIE, cookie);
        }
        return Ok(response
            .body(Full::new(Bytes::from_static(b"cookies set\n")))
            .expect("valid response"));
    }

    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let wants_json = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let (content_type, page) = if wants_json {
        let value = serde_json::json!({
            "method": parts.method.as_str(),
            "target": target,
            "headers": headers,
            // Raw header bytes, hex: lets tests check encodings byte for byte.
            "raw_headers": parts.headers.iter().map(|(n, v)| (n.as_str().to_owned(), hex::encode(v.as_bytes()))).collect::<Vec<_>>(),
            "body_bytes": body.len(),
        });
        ("application/json", value.to_string())
    } else {
        let rows: String = headers
            .iter()
            .map(|(name, value)| {
                let highlight = if name.starts_with("x-remote-") || name.starts_with("x-forwarded-")
                {
                    " class=\"id\""
                } else {
                    ""
                };
                format!(
                    "<tr{highlight}><th>{}</th><td>{}</td></tr>\n",
                    escape(name),
                    escape(value)
                )
            })
            .collect();
        (
            "text/html; charset=utf-8",
            format!(
                r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Guichet echo app</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}} th{{text-align:left;padding-right:1rem}} tr.id{{background:#e3f6e8;font-weight:600}} td,th{{padding:.2rem .5rem;font-family:monospace}}</style></head>
<body><h1>Headers received by the application</h1>
<p>{method} <code>{target}</code> — identity headers (<code>x-remote-*</code>) were written by Guichet; anything a browser sent under those names was removed.</p>
<table>{rows}</table>
<p><a href="/.guichet/whoami">/.guichet/whoami</a> · <a href="/.guichet/logout">/.guichet/logout</a></p></body></html>"#,
                method = escape(parts.method.as_str()),
                target = escape(target),
            ),
        )
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(page)))
        .expect("valid response"))
}

/// Convenience for tests: an echo server on an ephemeral loopback port.
pub fn start_on_loopback() -> std::io::Result<EchoServer> {
    EchoServer::start(SocketAddr::from(([127, 0, 0, 1], 0)))
}

#[allow(dead_code)]
fn assert_send() {
    fn is_send<T: Send>() {}
    is_send::<EchoServer>();
}
