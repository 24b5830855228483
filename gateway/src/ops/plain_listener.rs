//! Guichet's own accept loop for the plain (non-TLS) listeners of `listen:`.
//!
//! pingora's listening service spawns, for every connection, a task whose future holds its
//! TLS handshake inline (plain connections included): about 9 KiB for as long as the
//! connection lives, most of what an idle keep-alive connection cost (docs/resilience.md,
//! "Resource bounds"). Here a connection's task is the connection layer's loop alone
//! ([`GuardedProxy::serve_plain`]) over a [`PlainStream`]. TLS listeners keep pingora's
//! service (a TLS session costs more than the task anyway).
//!
//! The sockets are bound when the server is built, before anything runs, so that an address
//! in use is a start-up error naming it rather than a failure inside a runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ListenFds;
use pingora::server::ShutdownWatch;
use pingora::services::Service;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

use super::connections::GuardedProxy;

/// pingora's backlog (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 65535;

/// The plain listeners and the connection layer they feed.
pub struct PlainListeners {
    proxy: Arc<GuardedProxy>,
    sockets: Vec<(SocketAddr, std::net::TcpListener)>,
    threads: Option<usize>,
}

impl PlainListeners {
    /// Binds every address now; the error names the address that failed.
    pub fn bind(
        proxy: Arc<GuardedProxy>,
        addresses: &[SocketAddr],
        threads: Option<usize>,
    ) -> Result<Self, String> {
        let sockets = addresses
            .iter()
            .map(|address| {
                bind(*address)
                    .map(|socket| (*address, socket))
                    .map_err(|e| format!("listen: cannot listen on {address}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            proxy,
            sockets,
            threads,
        })
    }
}

fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    // A restarted process may bind while the last one's connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[async_trait]
impl Service for PlainListeners {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let mut loops = tokio::task::JoinSet::new();
        for (address, socket) in self.sockets.drain(..) {
            let listener = match TcpListener::from_std(socket) {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::error!(%address, error = %e, "cannot listen");
                    continue;
                }
            };
            loops.spawn(accept_loop(
                listener,
                address,
                self.proxy.clone(),
                shutdown.clone(),
            ));
        }
        while loops.join_next().await.is_some() {}
        // Tells pingora's sessions waiting on a keep-alive connection that the service stops.
        self.proxy.cleanup().await;
    }

    fn name(&self) -> &str {
        "guichet-proxy"
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// Accepts connections until shutdown; each is served on a task of its own.
async fn accept_loop(
    listener: TcpListener,
    address: SocketAddr,
    proxy: Arc<GuardedProxy>,
    mut shutdown: ShutdownWatch,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    tracing::info!(%address, "no longer accepting connections");
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok((socket, peer)) => {
                // As pingora does: a response's head and body are gathered by the stream,
                // and nothing should wait for an acknowledgement.
                socket.set_nodelay(true).ok();
                let proxy = proxy.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { proxy.serve_plain(socket, peer, &shutdown).await });
            }
            Err(e) if is_out_of_descriptors(&e) => {
                // accept() would fail again at once: pingora's pause, so that connections
                // closing can free descriptors.
                tracing::error!(%address, error = %e, "cannot accept a connection: out of file descriptors (raise the open-file limit, or lower limits.max_connections)");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // A connection reset before it was accepted, and the like: that one is lost.
            Err(e) => tracing::debug!(%address, error = %e, "accept failed"),
        }
    }
}

/// EMFILE and ENFILE (Linux): the process's or the system's descriptors are all in use.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
