//! The gateway's runtime state, built once from a validated [`Config`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::Duration;

use guichet_directory_client::CachedDirectory;
use guichet_policies::roles::RoleMapping;
use guichet_policies::Policy;
use guichet_protocols::cas::CasProvider;
use guichet_protocols::local::LocalProvider;
use guichet_protocols::oidc::OidcProvider;
use guichet_protocols::saml::SamlProvider;
use guichet_protocols::IdentityProvider;
use ipnet::IpNet;

use crate::config::{
    Config, PivotConfig, ProviderConfig, RateLimitConfig, StoreConfig, UnknownPerson,
};
use crate::http::headers::IdentityHeaders;
use crate::http::routing::Router;
use crate::http::upstream::Upstream;
use crate::session::{MemoryStore, RedisStore, SharedStore};
use crate::telemetry::metrics::Metrics;

/// One protected application.
pub struct App {
    pub id: String,
    /// The configuration generation it belongs to (0 at start, +1 at each reload): what a
    /// session computed for an app of another generation is computed again.
    pub generation: u64,
    /// `scheme://host[:port]` as users reach it.
    pub origin: String,
    /// Served over https: cookies get `Secure`.
    pub secure: bool,
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub upstream: Upstream,
    pub preserve_host: bool,
    pub providers: Vec<String>,
    pub policy: Policy,
    /// The app ignores case (IIS, ASP.NET): paths it would read differently are refused.
    pub case_insensitive_paths: bool,
    pub roles: RoleMapping,
    pub contact: Option<String>,
    pub unknown_person: UnknownPerson,
    pub guest_roles: Vec<String>,
    pub identity_headers: IdentityHeaders,
    /// This app's latency histogram, resolved once instead of by label on every request.
    pub latency: prometheus::Histogram,
    pub requests: crate::telemetry::metrics::StatusCounters,
}

/// One provider and the gateway's settings around it. Nothing here depends on its protocol:
/// what differs is behind [`IdentityProvider`].
pub struct ProviderEntry {
    pub provider: Arc<dyn IdentityProvider>,
    /// Login limits of a password provider's form.
    pub rate_limit: RateLimitConfig,
    /// What is checked before a server-to-server provider endpoint is handed a request.
    pub server_endpoints: ServerEndpointLimits,
}

/// The generic guard of provider endpoints called by servers (single logout).
#[derive(Clone, Debug, Default)]
pub struct ServerEndpointLimits {
    /// When not empty, only these networks may call them.
    pub allowed_sources: Vec<ipnet::IpNet>,
    /// Requests one address (IPv4, IPv6 /64) may send per minute to any of the provider's
    /// endpoints; beyond, 429. Each costs a store lookup.
    pub max_per_minute: Option<u64>,
}

impl ProviderEntry {
    fn new(provider: Arc<dyn IdentityProvider>) -> Self {
        Self {
            provider,
            rate_limit: RateLimitConfig::default(),
            server_endpoints: ServerEndpointLimits::default(),
        }
    }
}

pub struct SessionSettings {
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Name of the short-lived cookie that binds a login transaction to the browser.
    pub login_cookie_name: String,
    /// Name of the long-lived cookie of a browser that signed in to a local account before
    /// (a known device: see `login_limits`).
    pub device_cookie_name: String,
    /// `__Host-` + `cookie_name`: used for https apps without `cookie_domain`, so that no
    /// other host (a sibling subdomain) can set or shadow the session cookie.
    pub host_cookie_name: String,
    /// Logins each client address may start per minute.
    pub login_starts_per_minute: u64,
}

impl SessionSettings {
    /// Every cookie that is Guichet's, not the applications': never forwarded to them, and
    /// never set by them.
    pub fn own_cookie_names(&self) -> [&str; 4] {
        [
            &self.cookie_name,
            &self.host_cookie_name,
            &self.login_cookie_name,
            &self.device_cookie_name,
        ]
    }

    /// The session cookie's name on this app.
    pub fn cookie_name_for(&self, app: &App) -> &str {
        if app.secure && self.cookie_domain.is_none() {
            &self.host_cookie_name
        } else {
            &self.cookie_name
        }
    }
}

pub struct Gateway {
    pub apps: Vec<App>,
    pub router: Router,
    pub store: SharedStore,
    pub providers: HashMap<String, ProviderEntry>,
    pub sessions: SessionSettings,
    pub trusted_proxies: Vec<IpNet>,
    pub metrics: Metrics,
    /// Log one `access` line per request.
    pub access_log: bool,
    /// The cached directory, when one is configured.
    pub directory: Option<Arc<CachedDirectory>>,
    /// Token the admin endpoint `POST /directory/invalidate` requires, if set.
    pub directory_admin_token: Option<crate::config::Secret>,
    /// How each provider's logins are linked to directory people, by provider id.
    pub pivots: HashMap<String, PivotConfig>,
    /// Addresses whose login attempts are being slowed down, on this replica.
    pub busy_addresses: crate::session::login_limits::BusyAddresses,
    /// Logins finishing at once on this replica (`limits.max_concurrent_logins`), kept across
    /// reloads (a changed bound applies at the next restart).
    pub login_slots: crate::http::slots::Slots,
    /// What the process was started with and a reload cannot change.
    pub start_settings: StartSettings,
    /// 0 at start, +1 at each reload.
    pub generation: u64,
}

/// The settings a process fixes at start (sockets, threads, session store, log output), as
/// they were then: a reload that changes them says they wait for a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartSettings {
    pub listen: String,
    pub admin: String,
    pub threads: usize,
    pub store: String,
    pub log: String,
    pub shutdown: String,
    pub limits: String,
}

impl StartSettings {
    fn of(config: &Config) -> Self {
        let file = &config.file;
        Self {
            listen: format!("{:?}", file.listen),
            admin: file.admin.to_string(),
            threads: file.threads,
            store: format!("{:?}", file.session.store),
            log: format!("{:?}", file.log),
            shutdown: format!("{:?}", file.shutdown),
            limits: format!("{:?}", file.limits),
        }
    }
}

/// Why the gateway cannot start with a configuration that passed validation: something only
/// building it finds (a provider's key, the Redis client, a CA file), named by where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A programming error, not a configuration one.
    #[error("internal: the gateway must be built inside a Tokio runtime")]
    NoRuntime,
    #[error("providers: {id:?}: {reason}")]
    Provider { id: String, reason: String },
    /// A setting, with its path.
    #[error("{0}")]
    Setting(String),
    /// Something the system refused (a runtime, a thread, a TLS listener).
    #[error("{0}")]
    System(String),
}

impl Gateway {
    /// Builds the gateway's state. Connections to Redis and the directory are created here,
    /// so this must run where their client libraries may spawn background tasks: inside
    /// [`crate::ops::background::BackgroundRuntime::enter`] (or within a runtime that outlives the
    /// gateway, as the one-shot commands do).
    pub fn new(config: &Config) -> Result<Arc<Gateway>, StartError> {
        Self::build(config, None)
    }

    /// The gateway for a reloaded configuration: everything is built again from `config`
    /// except what must outlive a reload — the session store (sessions survive; its settings
    /// take effect at the next restart), the metrics (counters go on), and this replica's
    /// slowed-down addresses.
    pub fn rebuild(config: &Config, previous: &Gateway) -> Result<Arc<Gateway>, StartError> {
        Self::build(config, Some(previous))
    }

    fn build(config: &Config, previous: Option<&Gateway>) -> Result<Arc<Gateway>, StartError> {
        if tokio::runtime::Handle::try_current().is_err() {
            // A programming error, not a configuration one: say so instead of letting a
            // client library panic with "there is no reactor running".
            return Err(StartError::NoRuntime);
        }
        let file = &config.file;
        let store: SharedStore = match (previous, &file.session.store, &config.redis) {
            (Some(previous), _, _) => previous.store.clone(),
            (None, StoreConfig::Redis(_), Some(redis)) => {
                Arc::new(RedisStore::new(redis).map_err(|e| StartError::Setting(e.to_string()))?)
            }
            _ => Arc::new(MemoryStore::default()),
        };

        let providers = build_providers(config)?;

        let directory = build_directory(config)?;

        let metrics = previous.map_or_else(Metrics::new, |previous| previous.metrics.clone());
        let generation = previous.map_or(0, |previous| previous.generation + 1);
        let (apps, router) = build_apps(config, &metrics, generation)?;

        Ok(Arc::new(Gateway {
            apps,
            router,
            store,
            providers,
            sessions: SessionSettings {
                cookie_name: file.session.cookie_name.clone(),
                cookie_domain: file.session.cookie_domain.clone(),
                idle_timeout: file.session.idle_timeout,
                absolute_timeout: file.session.absolute_timeout,
                login_cookie_name: format!("{}_login", file.session.cookie_name),
                device_cookie_name: format!("{}_device", file.session.cookie_name),
                host_cookie_name: format!("__Host-{}", file.session.cookie_name),
                login_starts_per_minute: file.session.login_starts_per_minute,
            },
            trusted_proxies: file.trusted_proxies.clone(),
            metrics,
            access_log: file.log.access,
            directory,
            directory_admin_token: config
                .directory
                .as_ref()
                .and_then(|d| d.admin_token.clone()),
            pivots: file
                .providers
                .iter()
                .filter_map(|p| p.pivot().map(|pivot| (p.id().to_owned(), pivot.clone())))
                .collect(),
            busy_addresses: previous
                .map(|previous| previous.busy_addresses.clone())
                .unwrap_or_default(),
            login_slots: previous.map_or_else(
                || {
                    crate::http::slots::Slots::new(
                        file.limits.max_concurrent_logins,
                        file.limits.login_queue_timeout,
                    )
                },
                |previous| previous.login_slots.clone(),
            ),
            start_settings: previous
                .map(|previous| previous.start_settings.clone())
                .unwrap_or_else(|| StartSettings::of(config)),
            generation,
        }))
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The app serving the gateway's own endpoints on this host: the one with the shortest path
    /// prefix (the login transaction, when there is one, names the real app).
    pub fn default_app_for_host(&self, host: &str) -> Option<usize> {
        self.apps
            .iter()
            .enumerate()
            .filter(|(_, app)| app.hosts.iter().any(|h| h == host))
            .min_by_key(|(_, app)| app.path_prefix.len())
            .map(|(index, _)| index)
    }

    pub fn app_by_id(&self, id: &str) -> Option<usize> {
        self.apps.iter().position(|app| app.id == id)
    }
}

/// Every configured provider, built from its resolved settings: the one place the gateway
/// names protocols.
fn build_providers(config: &Config) -> Result<HashMap<String, ProviderEntry>, StartError> {
    let file = &config.file;
    let mut providers = HashMap::new();
    for provider in &file.providers {
        match provider {
            ProviderConfig::Local(local) => {
                let users = config.local_users.get(&local.id).cloned().ok_or_else(|| {
                    StartError::Provider {
                        id: local.id.clone(),
                        reason: "users not loaded".into(),
                    }
                })?;
                let provider = Arc::new(LocalProvider::new(
                    local.id.clone(),
                    local.display_name.clone(),
                    users,
                ));
                providers.insert(
                    local.id.clone(),
                    ProviderEntry {
                        rate_limit: local.rate_limit.clone(),
                        ..ProviderEntry::new(provider)
                    },
                );
            }
            ProviderConfig::Cas(cas) => {
                let settings =
                    config
                        .cas
                        .get(&cas.id)
                        .cloned()
                        .ok_or_else(|| StartError::Provider {
                            id: cas.id.clone(),
                            reason: "settings not resolved".into(),
                        })?;
                let provider =
                    Arc::new(
                        CasProvider::new(settings).map_err(|e| StartError::Provider {
                            id: cas.id.clone(),
                            reason: e.to_string(),
                        })?,
                    );
                providers.insert(
                    cas.id.clone(),
                    ProviderEntry {
                        server_endpoints: ServerEndpointLimits {
                            allowed_sources: cas.single_logout.allowed_sources.clone(),
                            max_per_minute: Some(cas.single_logout.max_per_minute),
                        },
                        ..ProviderEntry::new(provider)
                    },
                );
            }
            ProviderConfig::Oidc(oidc)
            | ProviderConfig::Franceconnect(oidc)
            | ProviderConfig::FranceconnectPlus(oidc) => {
                let settings =
                    config
                        .oidc
                        .get(&oidc.id)
                        .cloned()
                        .ok_or_else(|| StartError::Provider {
                            id: oidc.id.clone(),
                            reason: "settings not resolved".into(),
                        })?;
                let provider =
                    Arc::new(
                        OidcProvider::new(settings).map_err(|e| StartError::Provider {
                            id: oidc.id.clone(),
                            reason: e.to_string(),
                        })?,
                    );
                providers.insert(
                    oidc.id.clone(),
                    ProviderEntry {
                        server_endpoints: ServerEndpointLimits {
                            allowed_sources: oidc.server_endpoints.allowed_sources.clone(),
                            max_per_minute: oidc.server_endpoints.max_per_minute,
                        },
                        ..ProviderEntry::new(provider)
                    },
                );
            }
            ProviderConfig::Saml(saml) => {
                let settings =
                    config
                        .saml
                        .get(&saml.id)
                        .cloned()
                        .ok_or_else(|| StartError::Provider {
                            id: saml.id.clone(),
                            reason: "settings not resolved".into(),
                        })?;
                // Reads (or fetches) the IdP's metadata now: a start that cannot is an error
                // naming the setting.
                let provider =
                    Arc::new(
                        SamlProvider::new(settings).map_err(|e| StartError::Provider {
                            id: saml.id.clone(),
                            reason: e.to_string(),
                        })?,
                    );
                providers.insert(saml.id.clone(), ProviderEntry::new(provider));
            }
            ProviderConfig::External(external) => {
                let provider = config.external.get(&external.id).cloned().ok_or_else(|| {
                    StartError::Provider {
                        id: external.id.clone(),
                        reason: "is kind external, and no implementation was supplied (only a \
                                 program embedding Guichet supplies one)"
                            .into(),
                    }
                })?;
                providers.insert(
                    external.id.clone(),
                    ProviderEntry {
                        server_endpoints: ServerEndpointLimits {
                            allowed_sources: external.allowed_sources.clone(),
                            max_per_minute: external.max_per_minute,
                        },
                        ..ProviderEntry::new(provider)
                    },
                );
            }
        }
    }
    Ok(providers)
}

/// The cached directory, when one is configured.
fn build_directory(config: &Config) -> Result<Option<Arc<CachedDirectory>>, StartError> {
    let directory = match &config.directory {
        None => None,
        Some(directory) => {
            // Shared by replicas when sessions are: same Redis, same sealing key.
            // (Its own link: a URL or Sentinel, TLS, ACL, as the session store's.)
            let shared = config
                .redis
                .as_ref()
                .map(|redis| redis.shared_cache())
                .transpose()
                .map_err(|e| StartError::Setting(format!("directory: {e}")))?;
            let cache = CachedDirectory::with_shared(
                directory.backend.clone(),
                directory.cache.clone(),
                shared,
            );
            Some(Arc::new(cache))
        }
    };
    Ok(directory)
}

/// The apps and the router that finds them, from what the configuration's validation kept.
fn build_apps(
    config: &Config,
    metrics: &Metrics,
    generation: u64,
) -> Result<(Vec<App>, Router), StartError> {
    let file = &config.file;
    let mut apps = Vec::new();
    let mut router = Router::default();
    for (index, (app, resolved)) in file.apps.iter().zip(&config.apps).enumerate() {
        let hosts = resolved.hosts.clone();
        let path_prefix = resolved.path_prefix.clone();
        for host in &hosts {
            router.add(host, &path_prefix, index);
        }
        let upstream = Upstream::from_config(app, &resolved.upstream)
            .map_err(|e| StartError::Setting(format!("apps[{index}].upstream_tls: {e}")))?;
        if !app.upstream_tls.verify && app.upstream.scheme() == "https" {
            tracing::warn!(app = %app.id, "upstream certificate verification is OFF");
        }
        apps.push(App {
            id: app.id.clone(),
            generation,
            origin: app.url.origin().ascii_serialization(),
            secure: app.url.scheme() == "https",
            hosts,
            path_prefix,
            upstream,
            preserve_host: app.preserve_host,
            providers: app.providers.clone(),
            policy: resolved.policy.clone(),
            case_insensitive_paths: app.case_insensitive_paths,
            roles: app.roles.clone(),
            contact: app.contact.clone(),
            unknown_person: app.unknown_person,
            guest_roles: app.guest_roles.clone(),
            identity_headers: IdentityHeaders::compile(
                &app.identity_headers,
                resolved.header_names.clone(),
            ),
            latency: metrics.latency.with_label_values(&[&app.id]),
            requests: Default::default(),
        });
    }
    Ok((apps, router))
}

/// The gateway now serving, swapped whole by a configuration reload. Each request takes the
/// current one when it starts and keeps it to its end: a request never sees half of an old
/// configuration and half of a new one, and in-flight requests finish on the one they began
/// with.
#[derive(Clone)]
pub struct LiveGateway {
    current: Arc<ArcSwap<Gateway>>,
    changes: tokio::sync::watch::Sender<u64>,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl LiveGateway {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self {
            current: Arc::new(ArcSwap::new(gateway)),
            changes: tokio::sync::watch::Sender::new(0),
            draining: Arc::default(),
        }
    }

    /// The process is shutting down: readiness turns false so no new traffic comes.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn current(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    /// Serves `gateway` from now on; requests already started keep the previous one.
    pub fn replace(&self, gateway: Arc<Gateway>) {
        self.current.store(gateway);
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Wakes when the gateway is replaced (background work bound to the old one restarts).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
