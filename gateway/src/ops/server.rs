//! Assembling and running the pingora server: the proxy service and the admin service.

use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::sync::Notify;

use std::time::Duration;

use crate::config::Config;
use crate::ops::admin::AdminApp;
use crate::ops::background::BackgroundRuntime;
use crate::ops::connections::GuardedProxy;
use crate::ops::plain_listener::PlainListeners;
use crate::ops::reload::{ConfigReload, ReloadSource};
use crate::ops::store_watch::StoreWatch;
use crate::pipeline::proxy::GuichetProxy;
use crate::state::{Gateway, LiveGateway, StartError};
use crate::telemetry::metrics::ConnectionMetrics;

/// Builds the pingora server for a validated config. Nothing listens until it runs.
///
/// The gateway is built inside `background`, which must outlive the server (see
/// [`crate::ops::background`]).
pub fn build(
    config: &Config,
    background: &BackgroundRuntime,
    reload: Option<ReloadSource>,
) -> Result<(Server, LiveGateway), StartError> {
    let gateway = background.enter(|| Gateway::new(config))?;
    let live = LiveGateway::new(gateway.clone());
    // Opens the session store's connection from the background runtime, so that its driver
    // task lives there rather than on whichever service runtime would ask first.
    let warm = gateway.clone();
    background.handle().spawn(async move {
        warm.store.ping().await.ok();
    });
    let file = &config.file;
    let conf = ServerConf {
        threads: file.threads,
        // SIGTERM (the orchestrator's): listeners stop, requests in flight have the drain
        // timeout (pingora's grace period) to finish; then the runtimes stop within a second.
        grace_period_seconds: Some(file.shutdown.drain_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let server_conf = server.configuration.clone();

    // pingora's HTTP proxy behind the connection layer (connection limit, request head and
    // body deadlines and sizes: see `ops::connections`).
    let limits = &file.limits;
    limits
        .validate()
        .map_err(|e| StartError::Setting(e.to_string()))?;
    let guarded = Arc::new(GuardedProxy::new(
        pingora::proxy::http_proxy(&server_conf, GuichetProxy::new(live.clone())),
        limits,
        ConnectionMetrics::register(&gateway.metrics),
    ));
    // Plain listeners: Guichet's own accept loop, a few hundred bytes per idle connection
    // (`ops::plain_listener`). TLS listeners: pingora's listening service, its handshake
    // and its read buffer (TLS records are read 16 KiB at a time; a TLS session costs more
    // than the buffer anyway).
    let plain: Vec<_> = file
        .listen
        .iter()
        .filter(|listener| listener.tls.is_none())
        .map(|listener| listener.address)
        .collect();
    if !plain.is_empty() {
        let listeners =
            PlainListeners::bind(guarded.clone(), &plain, None).map_err(StartError::Setting)?;
        server.add_service(listeners);
    }
    let mut tls_listeners = Service::new(
        "guichet-proxy-tls".to_string(),
        TlsConnections(guarded.clone()),
    );
    for listener in &file.listen {
        let Some(tls) = &listener.tls else { continue };
        let address = listener.address.to_string();
        tls_listeners
            .add_tls(
                &address,
                &tls.cert_file.to_string_lossy(),
                &tls.key_file.to_string_lossy(),
            )
            .map_err(|e| StartError::Setting(format!("listen: TLS for {address}: {e}")))?;
    }
    if file.listen.iter().any(|listener| listener.tls.is_some()) {
        server.add_service(tls_listeners);
    }
    let mut admin = Service::new("guichet-admin".to_string(), AdminApp { live: live.clone() });
    admin.add_tcp(&file.admin.to_string());
    admin.threads = Some(1);

    let watch = pingora::services::background::background_service(
        "store watch",
        StoreWatch {
            gateway: gateway.clone(),
            interval: Duration::from_secs(5),
        },
    );

    server.add_service(admin);
    server.add_service(watch);
    server.add_service(pingora::services::background::background_service(
        "drain on SIGTERM",
        crate::ops::drain::DrainOnTerm { live: live.clone() },
    ));
    if let Some(cache) = &gateway.directory {
        tracing::info!(directory = %cache.describe(), "directory configured");
    }
    // Replicas share the directory cache through Redis and hear each other's invalidations
    // there (the listener follows the cache a reload builds).
    if config.redis.is_some() {
        server.add_service(pingora::services::background::background_service(
            "directory invalidations",
            crate::ops::directory_watch::DirectoryInvalidations { live: live.clone() },
        ));
    }
    if let Some(source) = reload {
        server.add_service(pingora::services::background::background_service(
            "configuration reload",
            ConfigReload {
                live: live.clone(),
                source,
                background: background.handle().clone(),
            },
        ));
    }
    server.bootstrap();
    Ok((server, live))
}

/// The connection layer behind pingora's TLS listeners.
struct TlsConnections(Arc<GuardedProxy>);

#[async_trait]
impl ServerApp for TlsConnections {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.0.serve_tls(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.0.cleanup().await
    }
}

/// A shutdown signal that code can fire: how tests and the demo stop an in-process gateway.
#[derive(Clone, Default)]
pub struct ShutdownHandle(Arc<Notify>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.notify_one();
    }
}

struct NotifyWatch(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for NotifyWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// A gateway running on its own threads in this process.
pub struct RunningGateway {
    /// The gateway it started with.
    pub gateway: Arc<Gateway>,
    /// The gateway serving now (a reload replaces it).
    pub live: LiveGateway,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    /// Dropped after the server thread has ended (field order does not matter: `stop_inner`
    /// joins the thread first).
    background: Option<BackgroundRuntime>,
}

impl RunningGateway {
    /// Stops accepting, ends the runtimes and waits for them.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shutdown.shutdown();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
        self.background.take();
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Starts the gateway in the background of this process (tests, `guichet demo`).
pub fn spawn(config: &Config) -> Result<RunningGateway, StartError> {
    let background = BackgroundRuntime::start()?;
    let (server, live) = build(config, &background, None)?;
    let gateway = live.current();
    let shutdown = ShutdownHandle::default();
    let signal = NotifyWatch(shutdown.0.clone());
    let thread = std::thread::Builder::new()
        .name("guichet-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        })
        .map_err(|e| StartError::System(format!("cannot start server thread: {e}")))?;
    Ok(RunningGateway {
        gateway,
        live,
        shutdown,
        thread: Some(thread),
        background: Some(background),
    })
}

/// Runs until SIGTERM/SIGINT/SIGQUIT (the `guichet run` command), then returns once in-flight
/// requests are done and every runtime has stopped.
pub fn run_forever(config: &Config, reload: Option<ReloadSource>) -> Result<(), StartError> {
    let background = BackgroundRuntime::start()?;
    let (server, live) = build(config, &background, reload)?;
    let gateway = live.current();
    let listeners: Vec<String> = config
        .file
        .listen
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                if l.tls.is_some() {
                    "https://"
                } else {
                    "http://"
                },
                l.address
            )
        })
        .collect();
    tracing::info!(
        listen = ?listeners,
        admin = %config.file.admin,
        apps = gateway.apps.len(),
        store = if config.redis.is_some() { "redis" } else { "memory" },
        "guichet starting"
    );
    server.run(RunArgs::default());
    // pingora's runtimes are gone; what they used can go now.
    drop(gateway);
    drop(live);
    drop(background);
    tracing::info!("guichet stopped");
    Ok(())
}
