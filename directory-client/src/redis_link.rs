//! The way to Redis for everything Guichet keeps there (sessions, login state, counters, replay
//! caches, the directory's shared cache and its invalidation channel): one URL (`redis://`,
//! `rediss://`) or Sentinel, with TLS checked against a private CA and ACL credentials.
//!
//! With Sentinel, the master is asked of the sentinels when first needed, and again whenever a
//! command fails in a way that says the master is gone or demoted (an I/O error or timeout,
//! `READONLY`, `MASTERDOWN`): a failover is followed without restart. Lookups are one at a
//! time and spaced out (100 ms, doubling up to 1 s, while they fail), so during an outage each
//! request fails fast instead of piling up connection attempts. Subscribers learn that the
//! master changed ([`MasterChange`]) and subscribe again on the new one.
//!
//! No error or log line carries a password or a URL with credentials: errors are described by
//! [`describe_error`].

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, ServerErrorKind, TlsCertificates, TlsMode, Value,
};
use tokio::sync::watch;

/// Each connection attempt to a Redis node gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command without an answer after this long fails (and, with Sentinel, the master is looked
/// up again).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A lookup of the master through Sentinel (sentinels asked, master checked, connection opened)
/// gives up after this long.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Spacing of failed Sentinel lookups: the first retry waits this long...
const LOOKUP_MIN_DELAY: Duration = Duration::from_millis(100);
/// ...then twice as long each time, up to this.
const LOOKUP_MAX_DELAY: Duration = Duration::from_secs(1);

/// Where Redis is.
#[derive(Clone)]
pub enum RedisTarget {
    /// `redis://[user:password@]host:port/db` or `rediss://` (TLS).
    Url(String),
    /// A master known to a set of sentinels by its name.
    Sentinel(SentinelSettings),
}

#[derive(Clone)]
pub struct SentinelSettings {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// `(host, port)` of each sentinel; at least one.
    pub nodes: Vec<(String, u16)>,
    /// The sentinels' own `AUTH` password, if they require one.
    pub password: Option<String>,
    /// TLS to the sentinels and to the master they name.
    pub tls: bool,
    /// The database on the master.
    pub db: i64,
}

/// How to reach Redis and authenticate there.
#[derive(Clone)]
pub struct RedisSettings {
    pub target: RedisTarget,
    /// ACL user of the master (and replicas); overrides the URL's.
    pub username: Option<String>,
    /// Password of the master (and replicas); overrides the URL's.
    pub password: Option<String>,
    /// PEM certificates of a private CA, trusted for TLS besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl RedisSettings {
    /// A URL and nothing else (credentials, if any, in it; the system's roots for `rediss://`).
    pub fn url(url: impl Into<String>) -> RedisSettings {
        RedisSettings {
            target: RedisTarget::Url(url.into()),
            username: None,
            password: None,
            ca_pem: None,
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { "<redacted>" } else { "none" };
        let target = match &self.target {
            RedisTarget::Url(_) => "url <redacted>".to_owned(),
            RedisTarget::Sentinel(sentinel) => sentinel_location(sentinel),
        };
        f.debug_struct("RedisSettings")
            .field("target", &target)
            .field("username", &self.username)
            .field("password", &redacted(self.password.is_some()))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .finish()
    }
}

/// Settings that cannot make a client (the message never carries a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisLinkError {
    #[error("invalid Redis URL ({0})")]
    Url(String),
    #[error("{0}")]
    Client(String),
}

/// A shared, cheap to clone way to send commands to the Redis master: a
/// [`redis::aio::ConnectionLike`], so `cmd.query_async(&mut link.clone())` works as with a
/// connection. Does not connect until the first command; reconnects by itself.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    /// Where Redis is, for log lines: never credentials.
    location: String,
    db: i64,
}

#[allow(clippy::large_enum_variant, reason = "one per link, behind an Arc")]
enum Mode {
    Direct {
        client: Client,
        manager: ConnectionManager,
    },
    Sentinel(Arc<Follower>),
}

/// Follows the master the sentinels name.
struct Follower {
    lookup: tokio::sync::Mutex<Lookup>,
    active: RwLock<Option<Arc<Active>>>,
    /// Bumped whenever the master in use is dropped or replaced.
    generation: watch::Sender<u64>,
    /// Where lookups and the connections they open run (their driver tasks live on): the
    /// runtime that built the link.
    runtime: Option<tokio::runtime::Handle>,
    master_name: String,
}

struct Lookup {
    sentinel: SentinelClient,
    retry_after: Option<Instant>,
    delay: Duration,
    last_error: Option<RedisError>,
    failures: u32,
    /// The last master found, for log lines.
    master: Option<String>,
}

struct Active {
    client: Client,
    manager: ConnectionManager,
    generation: u64,
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

impl RedisLink {
    /// Checks what only the client can (the URL, the CA's certificates, the sentinels'
    /// addresses) without connecting or needing a Tokio runtime.
    pub fn check(settings: &RedisSettings) -> Result<(), RedisLinkError> {
        let certificates = settings.ca_pem.as_deref().map(trusted_roots).transpose()?;
        match &settings.target {
            RedisTarget::Url(url) => url_client(url, settings, certificates).map(drop),
            RedisTarget::Sentinel(sentinel) => {
                sentinel_client(sentinel, settings, certificates).map(drop)
            }
        }
    }

    /// Checks the settings and builds the client; connects at the first command. Must run
    /// within a Tokio runtime: with Sentinel, lookups and the connections they open run on it.
    pub fn new(settings: &RedisSettings) -> Result<RedisLink, RedisLinkError> {
        let certificates = settings.ca_pem.as_deref().map(trusted_roots).transpose()?;
        let inner = match &settings.target {
            RedisTarget::Url(url) => {
                let client = url_client(url, settings, certificates)?;
                let info = client.get_connection_info();
                let db = info.redis_settings().db();
                let location = redacted_url(url);
                let manager =
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
                        .map_err(|e| RedisLinkError::Client(describe_error(&e)))?;
                Inner {
                    mode: Mode::Direct { client, manager },
                    location,
                    db,
                }
            }
            RedisTarget::Sentinel(sentinel) => {
                let client = sentinel_client(sentinel, settings, certificates)?;
                let (generation, _) = watch::channel(0);
                Inner {
                    mode: Mode::Sentinel(Arc::new(Follower {
                        lookup: tokio::sync::Mutex::new(Lookup {
                            sentinel: client,
                            retry_after: None,
                            delay: LOOKUP_MIN_DELAY,
                            last_error: None,
                            failures: 0,
                            master: None,
                        }),
                        active: RwLock::new(None),
                        generation,
                        runtime: tokio::runtime::Handle::try_current().ok(),
                        master_name: sentinel.master_name.clone(),
                    })),
                    location: sentinel_location(sentinel),
                    db: sentinel.db,
                }
            }
        };
        Ok(RedisLink {
            inner: Arc::new(inner),
        })
    }

    /// Where Redis is (`redis://host:port/db`, or the sentinels and the master's name), without
    /// credentials.
    pub fn describe(&self) -> String {
        self.inner.location.clone()
    }

    /// A connection to the channel messages of the master, and what says when that master is
    /// no longer the one in use (subscribe again then).
    pub async fn pubsub(&self) -> RedisResult<(PubSub, MasterChange)> {
        let (client, change) = match &self.inner.mode {
            Mode::Direct { client, .. } => (client.clone(), MasterChange(None)),
            Mode::Sentinel(follower) => {
                let active = follower.current_or_lookup().await?;
                let change =
                    MasterChange(Some((follower.generation.subscribe(), active.generation)));
                (active.client.clone(), change)
            }
        };
        let pubsub = tokio::time::timeout(
            CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
            client.get_async_pubsub(),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out("no pub/sub connection to Redis within 4s")));
        if let (Err(e), Mode::Sentinel(follower), Some((_, generation))) =
            (&pubsub, &self.inner.mode, &change.0)
        {
            follower.observe(e, *generation);
        }
        Ok((pubsub?, change))
    }

    /// Subscribes to `channel` on the master. The subscription yields each message's payload
    /// until the connection is lost or (Sentinel) the master changes: then the caller
    /// subscribes again (on the new master). Messages published while no subscription was
    /// open are not heard: a caller that caches what they invalidate drops its cache when it
    /// subscribes again.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, ChannelError> {
        let (mut pubsub, master_change) = self
            .pubsub()
            .await
            .map_err(|e| ChannelError::Redis(describe_error(&e)))?;
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, pubsub.subscribe(channel))
            .await
            .map_err(|_| ChannelError::Redis("no answer to SUBSCRIBE within 4s".into()))?
            .map_err(|e| ChannelError::Redis(describe_error(&e)))?;
        Ok(Subscription {
            messages: pubsub.into_on_message(),
            master_changed: Box::pin(master_change.changed()),
        })
    }

    async fn send(&self, cmd: &Cmd) -> RedisResult<Value> {
        match &self.inner.mode {
            Mode::Direct { manager, .. } => manager.clone().send_packed_command(cmd).await,
            Mode::Sentinel(follower) => {
                let active = follower.current_or_lookup().await?;
                let result = active.manager.clone().send_packed_command(cmd).await;
                match &result {
                    Err(e) => follower.observe(e, active.generation),
                    Ok(value) => follower.observe_value(value, active.generation),
                }
                result
            }
        }
    }

    async fn send_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match &self.inner.mode {
            Mode::Direct { manager, .. } => {
                manager
                    .clone()
                    .send_packed_commands(pipeline, offset, count)
                    .await
            }
            Mode::Sentinel(follower) => {
                let active = follower.current_or_lookup().await?;
                let result = active
                    .manager
                    .clone()
                    .send_packed_commands(pipeline, offset, count)
                    .await;
                match &result {
                    Err(e) => follower.observe(e, active.generation),
                    Ok(values) => values
                        .iter()
                        .for_each(|value| follower.observe_value(value, active.generation)),
                }
                result
            }
        }
    }
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.send(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.send_pipeline(pipeline, offset, count))
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}

/// How long subscribing may take before a follower gives up and tries again.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(4);

/// A channel subscribed to by [`RedisLink::subscribe`].
pub struct Subscription {
    messages: redis::aio::PubSubStream,
    master_changed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Subscription {
    /// The next message's payload; an error once the subscription is over.
    pub async fn next(&mut self) -> Result<Vec<u8>, ChannelError> {
        use futures_util::StreamExt;

        tokio::select! {
            message = self.messages.next() => match message {
                Some(message) => Ok(message.get_payload_bytes().to_vec()),
                None => Err(ChannelError::Ended),
            },
            () = &mut self.master_changed => Err(ChannelError::MasterChanged),
        }
    }
}

/// Why a [`Subscription`] ended (never with the URL or a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("Redis: {0}")]
    Redis(String),
    #[error("subscription ended")]
    Ended,
    #[error("the Redis master changed: subscribing again on the new one")]
    MasterChanged,
}

/// Resolves once the master a subscription was opened on is no longer the one in use (never,
/// with a URL: the subscription then ends with its connection).
pub struct MasterChange(Option<(watch::Receiver<u64>, u64)>);

impl MasterChange {
    pub async fn changed(self) {
        match self.0 {
            None => std::future::pending().await,
            Some((mut receiver, generation)) => {
                // A dropped sender (the link is gone) ends the wait too.
                receiver.wait_for(|now| *now != generation).await.ok();
            }
        }
    }
}

impl Follower {
    fn current(&self) -> Option<Arc<Active>> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The master in use, or a new lookup (on the link's runtime, so it completes even if the
    /// request that asked is dropped, and the connection's driver lives there).
    async fn current_or_lookup(self: &Arc<Self>) -> RedisResult<Arc<Active>> {
        if let Some(active) = self.current() {
            return Ok(active);
        }
        let follower = self.clone();
        let lookup = async move { follower.lookup().await };
        match &self.runtime {
            Some(runtime) => runtime.spawn(lookup).await.unwrap_or_else(|_| {
                Err(RedisError::from(io::Error::other(
                    "the Redis master lookup was cancelled (shutting down)",
                )))
            }),
            None => lookup.await,
        }
    }

    async fn lookup(&self) -> RedisResult<Arc<Active>> {
        let mut lookup = self.lookup.lock().await;
        // Another request may have found it while this one waited.
        if let Some(active) = self.current() {
            return Ok(active);
        }
        if let Some(until) = lookup.retry_after {
            if Instant::now() < until {
                return Err(lookup
                    .last_error
                    .clone()
                    .unwrap_or_else(|| timed_out("the Redis master is unknown")));
            }
        }
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, async {
            let client = lookup.sentinel.async_get_client().await?;
            let manager =
                ConnectionManager::new_with_config(client.clone(), manager_config()).await?;
            Ok::<_, RedisError>((client, manager))
        })
        .await
        .unwrap_or_else(|_| {
            Err(timed_out(
                "no answer from the sentinels or the master they name within 3s",
            ))
        });
        match found {
            Ok((client, manager)) => {
                let address = client.get_connection_info().addr().to_string();
                self.generation.send_modify(|generation| *generation += 1);
                let active = Arc::new(Active {
                    client,
                    manager,
                    generation: *self.generation.borrow(),
                });
                *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(active.clone());
                if lookup.master.as_deref() != Some(address.as_str()) {
                    tracing::info!(
                        master = %address,
                        name = %self.master_name,
                        "Redis master found through Sentinel"
                    );
                } else if lookup.failures > 0 {
                    tracing::info!(master = %address, "Redis master reachable again");
                }
                lookup.master = Some(address);
                lookup.retry_after = None;
                lookup.delay = LOOKUP_MIN_DELAY;
                lookup.failures = 0;
                lookup.last_error = None;
                Ok(active)
            }
            Err(error) => {
                if lookup.failures == 0 {
                    tracing::warn!(
                        error = %describe_error(&error),
                        name = %self.master_name,
                        "no usable Redis master through Sentinel yet: asking again with backoff"
                    );
                }
                lookup.failures = lookup.failures.saturating_add(1);
                lookup.retry_after = Some(Instant::now() + lookup.delay);
                lookup.delay = (lookup.delay * 2).min(LOOKUP_MAX_DELAY);
                lookup.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// After a failed command: if it says the master is gone or demoted, stop using it (the
    /// next command looks it up again).
    fn observe(&self, error: &RedisError, generation: u64) {
        let lost = error.is_io_error()
            || matches!(
                error.kind(),
                ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        if lost {
            self.drop_master(generation, error);
        }
    }

    /// A reply that is an error value (how a server error comes back before
    /// `query_async` turns it into an `Err`).
    fn observe_value(&self, value: &Value, generation: u64) {
        let demoted = |value: &Value| {
            matches!(value, Value::ServerError(e)
                if matches!(e.kind(), Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)))
        };
        let found = match value {
            Value::Array(items) => items.iter().find(|item| demoted(item)),
            other => Some(other).filter(|value| demoted(value)),
        };
        if let Some(Value::ServerError(e)) = found {
            self.drop_master(generation, &RedisError::from(e.clone()));
        }
    }

    fn drop_master(&self, generation: u64, error: &RedisError) {
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        if active.as_ref().is_some_and(|a| a.generation == generation) {
            *active = None;
            drop(active);
            self.generation.send_modify(|generation| *generation += 1);
            tracing::warn!(
                error = %describe_error(error),
                name = %self.master_name,
                "Redis master lost: asking the sentinels where it is now"
            );
        }
    }
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(io::Error::new(io::ErrorKind::TimedOut, what))
}

/// What went wrong, in words an operator can act on, without anything that could be a
/// credential (Redis' own text can quote a URL).
pub fn describe_error(error: &RedisError) -> String {
    match error.kind() {
        ErrorKind::AuthenticationFailed => {
            "authentication failed: Redis refused the user name or password".into()
        }
        ErrorKind::Server(ServerErrorKind::NoPerm) => {
            "the Redis user lacks a permission for this command (ACL: NOPERM)".into()
        }
        // I/O errors name the cause (refused, timed out, invalid peer certificate...), never
        // the URL.
        ErrorKind::Io => format!("I/O error: {error}"),
        ErrorKind::MasterNameNotFoundBySentinel => {
            "no sentinel knows a healthy master by that name".into()
        }
        ErrorKind::Server(_) => format!("Redis answered {}", error.code().unwrap_or("an error")),
        kind => format!("{kind:?}: {}", error.category()),
    }
}

/// The roots a TLS connection trusts when a private CA is given: that CA and the system's
/// (the roots are replaced as a whole, so the system's are added back).
fn trusted_roots(ca_pem: &[u8]) -> Result<TlsCertificates, RedisLinkError> {
    let only_ca = TlsCertificates {
        client_tls: None,
        root_cert: Some(ca_pem.to_vec()),
    };
    check_roots(&only_ca).map_err(|e| {
        RedisLinkError::Client(format!(
            "the CA file is not usable ({})",
            describe_error(&e)
        ))
    })?;
    let Some(system) = system_roots_pem() else {
        return Ok(only_ca);
    };
    let mut roots = ca_pem.to_vec();
    roots.push(b'\n');
    roots.extend_from_slice(&system);
    let with_system = TlsCertificates {
        client_tls: None,
        root_cert: Some(roots),
    };
    match check_roots(&with_system) {
        Ok(()) => Ok(with_system),
        Err(e) => {
            tracing::warn!(
                error = %describe_error(&e),
                "the system's CA bundle is not usable: Redis TLS trusts only the configured CA"
            );
            Ok(only_ca)
        }
    }
}

/// Whether the redis client accepts these roots (it parses them when a client is built).
fn check_roots(certificates: &TlsCertificates) -> RedisResult<()> {
    Client::build_with_tls("rediss://localhost/", certificates.clone()).map(|_| ())
}

/// The system's CA bundle, where Debian, Red Hat, Alpine and the distroless images keep it
/// (`SSL_CERT_FILE` first).
fn system_roots_pem() -> Option<Vec<u8>> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        )
        .find_map(|path| std::fs::read(path).ok())
}

fn url_client(
    url: &str,
    settings: &RedisSettings,
    certificates: Option<TlsCertificates>,
) -> Result<Client, RedisLinkError> {
    let info: ConnectionInfo = url
        .into_connection_info()
        .map_err(|e| RedisLinkError::Url(format!("{:?}", e.kind())))?;
    let mut redis = info.redis_settings().clone();
    if let Some(username) = &settings.username {
        redis = redis.set_username(username);
    }
    if let Some(password) = &settings.password {
        redis = redis.set_password(password);
    }
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    let info = info.set_redis_settings(redis);
    let client = match certificates {
        Some(certificates) if tls => Client::build_with_tls(info, certificates),
        _ => Client::open(info),
    };
    client.map_err(|e| RedisLinkError::Client(describe_error(&e)))
}

fn sentinel_client(
    sentinel: &SentinelSettings,
    settings: &RedisSettings,
    certificates: Option<TlsCertificates>,
) -> Result<SentinelClient, RedisLinkError> {
    if sentinel.nodes.is_empty() {
        return Err(RedisLinkError::Client(
            "at least one sentinel is required".into(),
        ));
    }
    let nodes = sentinel.nodes.iter().map(|(host, port)| {
        if sentinel.tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let fail = |e: RedisError| RedisLinkError::Client(describe_error(&e));
    let mut builder =
        SentinelClientBuilder::new(nodes, &sentinel.master_name, SentinelServerType::Master)
            .map_err(fail)?
            .set_client_to_redis_db(sentinel.db);
    if sentinel.tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(certificates) = certificates {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
    }
    if let Some(username) = &settings.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = &sentinel.password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    builder.build().map_err(fail)
}

/// `redis+sentinel://host:port,host:port/name/db` (`redis+sentinels` with TLS): what a link
/// follows, for log lines.
pub fn sentinel_location(sentinel: &SentinelSettings) -> String {
    let nodes: Vec<String> = sentinel
        .nodes
        .iter()
        .map(|(host, port)| {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect();
    format!(
        "redis+sentinel{}://{}/{}/{}",
        if sentinel.tls { "s" } else { "" },
        nodes.join(","),
        sentinel.master_name,
        sentinel.db
    )
}

/// The URL without user name and password.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_username("").ok();
            parsed.set_password(None).ok();
            parsed.to_string()
        }
        Err(_) => "redis (unparseable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_have_no_credentials() {
        assert_eq!(
            redacted_url("redis://user:s3cret@redis.example:6380/2"),
            "redis://redis.example:6380/2"
        );
        let sentinel = SentinelSettings {
            master_name: "guichet".into(),
            nodes: vec![("10.0.0.1".into(), 26379), ("::1".into(), 26380)],
            password: Some("s3cret".into()),
            tls: true,
            db: 2,
        };
        assert_eq!(
            sentinel_location(&sentinel),
            "redis+sentinels://10.0.0.1:26379,[::1]:26380/guichet/2"
        );
        let settings = RedisSettings {
            target: RedisTarget::Sentinel(sentinel),
            username: Some("guichet".into()),
            password: Some("s3cret".into()),
            ca_pem: None,
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn a_ca_file_that_is_no_certificate_is_refused() {
        assert!(trusted_roots(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        let error = RedisLink::new(&RedisSettings::url("http://user:s3cret@x/"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("invalid Redis URL"), "{error}");
        assert!(!error.contains("s3cret"));
    }
}
