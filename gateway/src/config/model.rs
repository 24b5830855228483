//! The configuration file, as parsed. Every struct rejects unknown keys so a typo is an error,
//! not a silently ignored setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use guichet_policies::roles::RoleMapping;
use guichet_policies::{Access, RuleConfig};
use guichet_protocols::local::LocalUser;
use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use super::cas::CasProviderConfig;
use super::directory::{DirectoryConfig, PivotConfig, UnknownPerson};
use super::identity_headers::{Encoding, ValueSource};
use super::oidc::OidcProviderConfig;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Vec<Listener>,
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    /// Worker threads of the proxy service.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Peers whose X-Forwarded-* headers are believed (a load balancer in front of Guichet).
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub session: SessionConfig,
    pub providers: Vec<ProviderConfig>,
    pub apps: Vec<AppConfig>,
    /// Where people and their roles come from (see docs/directory.md). Without one, roles come
    /// from local users and from provider attributes mapped by each app.
    #[serde(default)]
    pub directory: Option<DirectoryConfig>,
    /// What SIGTERM does (see docs/deployment.md).
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Bounds on connections, request sizes and times, and logins in flight (see
    /// docs/configuration.md, "Resource limits").
    #[serde(default)]
    pub limits: super::LimitsConfig,
}

/// SIGTERM: readiness turns 503 at once, listeners stop accepting, and requests in flight have
/// up to `drain_timeout` to finish before the process exits (it waits that long in any case:
/// pingora's grace period).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: std::time::Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: default_drain_timeout(),
        }
    }
}

fn default_drain_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(5)
}

#[allow(clippy::expect_used, reason = "a constant address literal parses")]
fn default_admin() -> SocketAddr {
    "127.0.0.1:9180".parse().expect("valid literal")
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub address: SocketAddr,
    #[serde(default)]
    pub tls: Option<ListenerTls>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `info,guichet_gateway=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// One `access` line per request (at info). Audit events are logged regardless.
    #[serde(default = "yes")]
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
            access: true,
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// Domain attribute of the cookie; host-only when absent (the safer default).
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// A session unused for this long ends.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    #[serde(default = "default_absolute", with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Logins one client address (IPv4, or IPv6 /64) may start per minute: each one stores a
    /// login transaction, so this bounds what anonymous traffic can make the store hold.
    #[serde(default = "default_login_starts")]
    pub login_starts_per_minute: u64,
    #[serde(default)]
    pub store: StoreConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: default_cookie_name(),
            cookie_domain: None,
            idle_timeout: default_idle(),
            absolute_timeout: default_absolute(),
            login_starts_per_minute: default_login_starts(),
            store: StoreConfig::default(),
        }
    }
}

fn default_login_starts() -> u64 {
    600
}

fn default_cookie_name() -> String {
    "guichet_session".into()
}
fn default_idle() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_absolute() -> Duration {
    Duration::from_secs(8 * 3600)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// In-process (moka). One replica only: sessions are lost on restart. A struct variant,
    /// not a unit one, so that Redis settings left beside `kind: memory` are refused instead
    /// of silently ignored (serde skips `deny_unknown_fields` for unit variants).
    Memory {},
    /// Redis (a URL or Sentinel), shared by every replica: see [`super::redis`].
    Redis(Box<super::RedisStoreConfig>),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Memory {}
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderConfig {
    Local(LocalProviderConfig),
    /// Any OpenID Connect provider (authorization code flow).
    Oidc(OidcProviderConfig),
    /// FranceConnect v2: OpenID Connect with its rules and defaults.
    Franceconnect(OidcProviderConfig),
    /// FranceConnect+: FranceConnect's rules at eIDAS substantial or high, encrypted tokens.
    FranceconnectPlus(OidcProviderConfig),
    /// A CAS server (CAS protocol 2.0 or 3.0), e.g. a school ENT portal.
    Cas(CasProviderConfig),
    /// A SAML 2.0 identity provider (Shibboleth, ADFS, SimpleSAMLphp, a federation's IdP).
    Saml(super::SamlProviderConfig),
    /// A provider implemented by a program that embeds Guichet as a library and supplies it
    /// ([`super::Config::supply_provider`]); the `guichet` binary supplies none.
    External(ExternalProviderConfig),
}

/// The guard of a provider's server-to-server endpoints (back-channel logout), the same for
/// every protocol.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEndpointsConfig {
    /// When not empty, only these networks may call them.
    #[serde(default)]
    pub allowed_sources: Vec<ipnet::IpNet>,
    /// Requests one address (IPv4, IPv6 /64) may send them per minute; beyond, 429.
    #[serde(default)]
    pub max_per_minute: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalProviderConfig {
    pub id: String,
    #[serde(default)]
    pub pivot: Option<PivotConfig>,
    /// When not empty, its server-to-server endpoints take requests only from these networks.
    #[serde(default)]
    pub allowed_sources: Vec<ipnet::IpNet>,
    /// Requests one address may send its endpoints per minute.
    #[serde(default)]
    pub max_per_minute: Option<u64>,
}

impl ProviderConfig {
    pub fn id(&self) -> &str {
        match self {
            ProviderConfig::Local(local) => &local.id,
            ProviderConfig::Oidc(oidc)
            | ProviderConfig::Franceconnect(oidc)
            | ProviderConfig::FranceconnectPlus(oidc) => &oidc.id,
            ProviderConfig::Cas(cas) => &cas.id,
            ProviderConfig::Saml(saml) => &saml.id,
            ProviderConfig::External(external) => &external.id,
        }
    }

    pub fn pivot(&self) -> Option<&PivotConfig> {
        match self {
            ProviderConfig::Local(local) => local.pivot.as_ref(),
            ProviderConfig::Oidc(oidc)
            | ProviderConfig::Franceconnect(oidc)
            | ProviderConfig::FranceconnectPlus(oidc) => oidc.pivot.as_ref(),
            ProviderConfig::Cas(cas) => cas.pivot.as_ref(),
            ProviderConfig::Saml(saml) => saml.pivot.as_ref(),
            ProviderConfig::External(external) => external.pivot.as_ref(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalProviderConfig {
    pub id: String,
    #[serde(default = "default_local_name")]
    pub display_name: String,
    /// YAML file with `users: [{username, email, password_hash, ...}]`.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Users inline, instead of `users_file` (demos and tests).
    #[serde(default)]
    pub users: Option<Vec<LocalUser>>,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// How these logins are linked to directory people.
    #[serde(default)]
    pub pivot: Option<PivotConfig>,
}

fn default_local_name() -> String {
    "Compte local / Local account".into()
}

/// Password-guessing limits of a local provider, counted in the session store (so they hold
/// across replicas) before each password is checked.
///
/// Sized for schools and town halls where hundreds of people share one public address: an
/// address is never refused as a whole, it is slowed down; refusals are per account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Failed attempts on one account from one address (IPv6: its /64) within `window`;
    /// beyond, that account is refused from that address until the window ends.
    #[serde(default = "default_per_account_and_address")]
    pub max_failures_per_account_and_address: u64,
    /// Failed attempts on one account from all addresses within `window`; beyond, that account
    /// is refused from everywhere (guessing one account from many addresses).
    #[serde(default = "default_per_account")]
    pub max_failures_per_account: u64,
    /// Failed attempts from one address, all accounts together, within `window` before its
    /// attempts are slowed down: checked one at a time, each after a delay that grows with the
    /// failures (1 s more per further `slow_down_address_after`), up to `max_delay`.
    #[serde(default = "default_slow_down_after")]
    pub slow_down_address_after: u64,
    #[serde(default = "default_max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// Networks with their own thresholds (a school's or a town hall's known address).
    #[serde(default)]
    pub trusted_networks: Vec<TrustedNetworkLimits>,
    /// Replaced by `slow_down_address_after`; kept to explain the change (see `validate`).
    #[serde(default)]
    pub max_failures_per_ip: Option<u64>,
}

/// Thresholds for addresses in `networks`; unset ones are the provider's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedNetworkLimits {
    pub networks: Vec<IpNet>,
    #[serde(default)]
    pub max_failures_per_account_and_address: Option<u64>,
    #[serde(default)]
    pub slow_down_address_after: Option<u64>,
}

/// The thresholds that apply to one client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressLimits {
    pub max_failures_per_account_and_address: u64,
    pub slow_down_address_after: u64,
}

impl RateLimitConfig {
    /// The first trusted network containing `ip` sets its thresholds; otherwise the defaults.
    pub fn for_address(&self, ip: Option<std::net::IpAddr>) -> AddressLimits {
        let defaults = AddressLimits {
            max_failures_per_account_and_address: self.max_failures_per_account_and_address,
            slow_down_address_after: self.slow_down_address_after,
        };
        let Some(ip) = ip else { return defaults };
        match self
            .trusted_networks
            .iter()
            .find(|trusted| trusted.networks.iter().any(|net| net.contains(&ip)))
        {
            None => defaults,
            Some(trusted) => AddressLimits {
                max_failures_per_account_and_address: trusted
                    .max_failures_per_account_and_address
                    .unwrap_or(defaults.max_failures_per_account_and_address),
                slow_down_address_after: trusted
                    .slow_down_address_after
                    .unwrap_or(defaults.slow_down_address_after),
            },
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            max_failures_per_account_and_address: default_per_account_and_address(),
            max_failures_per_account: default_per_account(),
            slow_down_address_after: default_slow_down_after(),
            max_delay: default_max_delay(),
            window: default_window(),
            trusted_networks: Vec::new(),
            max_failures_per_ip: None,
        }
    }
}

fn default_per_account_and_address() -> u64 {
    5
}
/// Several addresses' worth of the per-address cap: one address alone cannot lock an account.
fn default_per_account() -> u64 {
    20
}
/// 1,000 people behind one address, a fifth of them mistyping once in a window, are not slowed.
fn default_slow_down_after() -> u64 {
    200
}
fn default_max_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_window() -> Duration {
    Duration::from_secs(15 * 60)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub id: String,
    /// Where users reach the app through Guichet: scheme, host and optional path prefix, e.g.
    /// `https://intranet.example.org` or `https://portal.example.org/library`.
    pub url: Url,
    /// More host names routed to this app (same scheme and path prefix).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Where Guichet forwards to: `http://host:port` or `https://host:port`.
    pub upstream: Url,
    #[serde(default)]
    pub upstream_tls: UpstreamTls,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub upstream_connect_timeout: Duration,
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub upstream_read_timeout: Duration,
    /// Send the client's Host to the upstream (the default; legacy apps build absolute links
    /// from it) or the upstream's own host.
    #[serde(default = "yes")]
    pub preserve_host: bool,
    /// Providers a user may sign in with for this app, by id.
    pub providers: Vec<String>,
    #[serde(default = "default_access")]
    pub access: Access,
    /// Ordered rules: the first one matching the path (and method) decides; see
    /// docs/policies.md.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// How this app's roles are computed (directory roles, groups, attribute values).
    #[serde(default)]
    pub roles: RoleMapping,
    /// Whom users refused access should contact (shown on the 403 page), e.g. an address or
    /// a service desk's phone number.
    #[serde(default)]
    pub contact: Option<String>,
    /// A signed-in person unknown to the directory: `deny` (default) or `guest`.
    #[serde(default)]
    pub unknown_person: UnknownPerson,
    /// The roles of such a guest.
    #[serde(default)]
    pub guest_roles: Vec<String>,
    /// Compare paths case-insensitively in `rules`, for apps that do (IIS, ASP.NET), so that
    /// `/ADMIN` cannot slip past a rule on `/admin`.
    #[serde(default)]
    pub case_insensitive_paths: bool,
    #[serde(default)]
    pub identity_headers: IdentityHeadersConfig,
}

fn yes() -> bool {
    true
}
fn default_access() -> Access {
    Access::Authenticated
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Verify the upstream's certificate (chain and host name). Turning it off is logged loudly.
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM file of CA certificates trusted for this upstream instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SNI and expected certificate name; the upstream URL's host when absent.
    #[serde(default)]
    pub sni: Option<String>,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        Self {
            verify: true,
            ca_file: None,
            sni: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersConfig {
    /// Every incoming header starting with this prefix is removed (case-insensitive, `_` = `-`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How non-ASCII values are written unless a header says otherwise.
    #[serde(default)]
    pub encoding: Encoding,
    /// Joins multi-valued attributes and roles.
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default = "default_headers")]
    pub headers: Vec<HeaderMapping>,
}

impl Default for IdentityHeadersConfig {
    fn default() -> Self {
        Self {
            prefix: default_prefix(),
            encoding: Encoding::default(),
            separator: default_separator(),
            headers: default_headers(),
        }
    }
}

fn default_prefix() -> String {
    "X-Remote-".into()
}
fn default_separator() -> String {
    ",".into()
}
fn default_headers() -> Vec<HeaderMapping> {
    vec![HeaderMapping {
        name: "X-Remote-User".into(),
        value: ValueSource::Subject,
        encoding: None,
    }]
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMapping {
    pub name: String,
    /// `subject`, `provider`, `roles`, `auth_level`, `attribute:NAME` or `constant:TEXT`.
    pub value: ValueSource,
    #[serde(default)]
    pub encoding: Option<Encoding>,
}
