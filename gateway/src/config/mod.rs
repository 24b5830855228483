//! Loading and validating the configuration.
//!
//! Errors are one line naming the path of the bad field (`apps[2].upstream: ...`) so an operator
//! can fix a Helm value without reading a backtrace; the process then exits non-zero before
//! listening on anything.

mod cas;
mod directory;
pub mod identity_headers;
mod limits;
mod model;
mod oidc;
mod overrides;
mod redis;
mod saml;
mod secret;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use guichet_protocols::local::{LocalUser, LocalUsers};
use guichet_protocols::oidc::OidcSettings;
use guichet_protocols::IdentityProvider;
use std::sync::Arc;

use self::redis::resolve_redis;
pub use self::redis::{RedisSentinelConfig, RedisStoreConfig, ResolvedRedis};
pub use cas::{CasProtocol, CasProviderConfig, SingleLogoutConfig};
pub use directory::{
    DirectoryBackendConfig, DirectoryCacheConfig, DirectoryConfig, IdentityPivotConfig,
    PivotConfig, ResolvedDirectory, ScimConfig, UnknownPerson,
};
pub use limits::LimitsConfig;
pub use model::*;
pub use oidc::{
    ClientAuthMethod, EncryptionKeyConfig, FranceConnectEnvironment, OidcFlavour,
    OidcProviderConfig,
};
pub use overrides::Override;
pub use saml::{SamlProviderConfig, SLO_ENDPOINT as SAML_SLO_ENDPOINT};
pub use secret::{Secret, SecretSource};

/// A configuration error: the dotted path of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let message = message.to_string();
        Self {
            path: path.into(),
            // One line, always: multi-line errors get mangled by log collectors.
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

/// A validated configuration with its secrets and user files resolved.
#[derive(Clone)]
pub struct Config {
    pub file: ConfigFile,
    pub redis: Option<ResolvedRedis>,
    /// Users of each local provider, by provider id.
    pub local_users: HashMap<String, LocalUsers>,
    /// Resolved settings of each OpenID Connect / FranceConnect provider, by provider id.
    pub oidc: HashMap<String, OidcSettings>,
    /// Resolved settings of each CAS provider, by provider id.
    pub cas: HashMap<String, guichet_protocols::cas::CasSettings>,
    /// Resolved settings of each SAML provider, by provider id (the IdP metadata is read when
    /// the gateway starts, so that the SP metadata can be printed before the IdP exists).
    pub saml: HashMap<String, guichet_protocols::saml::SamlSettings>,
    /// The directory's backend and cache settings, when one is configured.
    pub directory: Option<ResolvedDirectory>,
    /// Implementations of `kind: external` providers, by id, supplied by the embedding program.
    pub external: HashMap<String, Arc<dyn IdentityProvider>>,
    /// What validating each app produced (same order as `file.apps`): the gateway builds its
    /// apps from these, never validating or parsing again.
    pub apps: Vec<ResolvedApp>,
}

/// One app as its validation left it.
#[derive(Clone, Debug)]
pub struct ResolvedApp {
    /// The URL's host then the aliases, lowercase.
    pub hosts: Vec<String>,
    /// The URL's path without trailing slash; empty for a whole host.
    pub path_prefix: String,
    pub policy: guichet_policies::Policy,
    /// The identity headers' names, parsed.
    pub header_names: Vec<http::HeaderName>,
    pub upstream: UpstreamAddress,
}

/// Where an app's upstream is, from its validated URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamAddress {
    /// Without IPv6 brackets (for resolution and SNI).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the Host header when the client's is not preserved.
    pub authority: String,
    pub tls: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("file", &self.file)
            .field("local_users", &self.local_users)
            .field("oidc", &self.oidc)
            .field("cas", &self.cas)
            .field("directory", &self.directory.is_some())
            .field("external", &self.external.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Supplies the implementation of the `kind: external` provider `id` (for programs that
    /// embed Guichet: a protocol of their own). Without it the gateway refuses to start.
    pub fn supply_provider(&mut self, provider: Arc<dyn IdentityProvider>) {
        self.external.insert(provider.id().to_owned(), provider);
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        Self::from_yaml(&text)
    }

    /// The file with `--set` overrides applied before validation.
    pub fn load_with_overrides(path: &Path, overrides: &[Override]) -> Result<Config, ConfigError> {
        if overrides.is_empty() {
            return Self::load(path);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        let mut document: serde_norway::Value = serde_norway::from_str(&text)
            .map_err(|e| ConfigError::new("config", strip_location(&e.to_string())))?;
        for change in overrides {
            change.apply(&mut document)?;
        }
        // Back to text, then the one reading path every file takes: a value read from text
        // is what serde_norway's typed reader accepts (`client_id: 300` for a string field),
        // which a document already parsed into numbers would not be.
        let text = serde_norway::to_string(&document)
            .map_err(|e| ConfigError::new("config", e.to_string()))?;
        // Lines and columns of the rebuilt text are not the file's: say none.
        Self::from_file(deserialize_file(
            serde_norway::Deserializer::from_str(&text),
            false,
        )?)
    }

    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Self::from_file(deserialize_file(
            serde_norway::Deserializer::from_str(text),
            true,
        )?)
    }

    pub fn from_file(file: ConfigFile) -> Result<Config, ConfigError> {
        let apps = validate(&file)?;
        let redis = match &file.session.store {
            StoreConfig::Memory {} => None,
            StoreConfig::Redis(redis) => Some(resolve_redis(redis)?),
        };
        let mut local_users = HashMap::new();
        let mut oidc_settings = HashMap::new();
        let mut cas_settings = HashMap::new();
        let mut saml_settings = HashMap::new();
        for (i, provider) in file.providers.iter().enumerate() {
            match provider {
                ProviderConfig::Local(local) => {
                    let users = match (&local.users_file, &local.users) {
                        (Some(path), None) => LocalUsers::from_file(path).map_err(|e| {
                            ConfigError::new(format!("providers[{i}].users_file"), e.to_string())
                        })?,
                        (None, Some(users)) => {
                            LocalUsers::from_users(users.clone()).map_err(|e| {
                                ConfigError::new(format!("providers[{i}]"), e.to_string())
                            })?
                        }
                        _ => {
                            return Err(ConfigError::new(
                                format!("providers[{i}]"),
                                "exactly one of users_file or users is required",
                            ))
                        }
                    };
                    local_users.insert(local.id.clone(), users);
                }
                ProviderConfig::Oidc(oidc)
                | ProviderConfig::Franceconnect(oidc)
                | ProviderConfig::FranceconnectPlus(oidc) => {
                    let at = format!("providers[{i}]");
                    let flavour = match provider {
                        ProviderConfig::Franceconnect(_) => OidcFlavour::FranceConnect,
                        ProviderConfig::FranceconnectPlus(_) => OidcFlavour::FranceConnectPlus,
                        _ => OidcFlavour::Generic,
                    };
                    let settings = oidc.resolve(&at, flavour)?;
                    // Builds the provider once to check what only it can (the private key).
                    guichet_protocols::oidc::OidcProvider::new(settings.clone())
                        .map_err(|e| ConfigError::new(at, e.to_string()))?;
                    oidc_settings.insert(oidc.id.clone(), settings);
                }
                ProviderConfig::Cas(cas) => {
                    let settings = cas.resolve(&format!("providers[{i}]"))?;
                    cas_settings.insert(cas.id.clone(), settings);
                }
                ProviderConfig::Saml(saml) => {
                    let settings = saml.resolve(&format!("providers[{i}]"), &file.apps)?;
                    saml_settings.insert(saml.id.clone(), settings);
                }
                // Supplied by the embedding program after loading; checked when the gateway
                // is built.
                ProviderConfig::External(_) => {}
            }
        }
        let directory = file
            .directory
            .as_ref()
            .map(DirectoryConfig::resolve)
            .transpose()?;
        Ok(Config {
            file,
            redis,
            local_users,
            oidc: oidc_settings,
            cas: cas_settings,
            saml: saml_settings,
            directory,
            external: HashMap::new(),
            apps,
        })
    }
}

/// The file's structure, or the path of the first field that does not fit it.
/// `locate`: the text is the file as written, so its lines and columns mean something.
fn deserialize_file<'de, D>(deserializer: D, locate: bool) -> Result<ConfigFile, ConfigError>
where
    D: serde::Deserializer<'de, Error = serde_norway::Error>,
{
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "config".into() } else { path };
        let message = strip_location(&e.inner().to_string());
        let mut message = strip_path_prefix(&message, &path).to_owned();
        // Where in the file, when the text was parsed as written (not after `--set`, whose
        // document is rebuilt): the path says which field, the line where to look.
        if let Some(location) = e.inner().location().filter(|_| locate) {
            message.push_str(&format!(
                " (line {}, column {})",
                location.line(),
                location.column()
            ));
        }
        ConfigError::new(path, message)
    })
}

/// serde_norway starts some messages with its own, shorter path (`apps[0]: unknown field`);
/// the error already names the precise one, so a leading path that is part of it goes.
fn strip_path_prefix<'a>(message: &'a str, path: &str) -> &'a str {
    match message.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && !head.contains(' ') && path.starts_with(head) => {
            rest
        }
        _ => message,
    }
}

/// serde_norway appends " at line L column C"; it is put back as "(line L, column C)" after
/// the message, which then reads the same with or without a location.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn validate(file: &ConfigFile) -> Result<Vec<ResolvedApp>, ConfigError> {
    if file.listen.is_empty() {
        return Err(ConfigError::new(
            "listen",
            "at least one listener is required",
        ));
    }
    if file.threads == 0 {
        return Err(ConfigError::new("threads", "must be at least 1"));
    }
    validate_session(&file.session)?;

    let mut provider_ids = HashMap::new();
    for (i, provider) in file.providers.iter().enumerate() {
        let id = provider.id();
        if !is_identifier(id) {
            return Err(ConfigError::new(
                format!("providers[{i}].id"),
                "use lowercase letters, digits, '-' and '_'",
            ));
        }
        if let Some(first) = provider_ids.insert(id.to_string(), i) {
            return Err(ConfigError::new(
                format!("providers[{i}].id"),
                format!("duplicate provider id {id:?} (also providers[{first}])"),
            ));
        }
        if let ProviderConfig::Local(local) = provider {
            validate_rate_limit(&local.rate_limit, &format!("providers[{i}].rate_limit"))?;
        }
        if let Some(pivot) = provider.pivot() {
            if file.directory.is_none() {
                return Err(ConfigError::new(
                    format!("providers[{i}].pivot"),
                    "a pivot links logins to directory people: configure `directory` too",
                ));
            }
            validate_pivot(pivot, &format!("providers[{i}].pivot"))?;
            if pivot.identity.is_some() {
                validate_identity_provider(provider, &format!("providers[{i}]"))?;
            }
        }
    }

    let mut app_ids = HashMap::new();
    let mut routes: HashMap<(String, String), usize> = HashMap::new();
    let mut resolved = Vec::with_capacity(file.apps.len());
    for (i, app) in file.apps.iter().enumerate() {
        let at = |field: &str| format!("apps[{i}].{field}");
        if !is_identifier(&app.id) {
            return Err(ConfigError::new(
                at("id"),
                "use lowercase letters, digits, '-' and '_'",
            ));
        }
        if let Some(first) = app_ids.insert(app.id.clone(), i) {
            return Err(ConfigError::new(
                at("id"),
                format!("duplicate app id {:?} (also apps[{first}])", app.id),
            ));
        }
        let host = validate_app_url(&app.url).map_err(|m| ConfigError::new(at("url"), m))?;
        let upstream =
            validate_upstream(&app.upstream).map_err(|m| ConfigError::new(at("upstream"), m))?;
        let prefix = app_path_prefix(&app.url);
        let mut hosts = vec![(host, at("url"))];
        for (j, alias) in app.aliases.iter().enumerate() {
            let alias = alias.to_ascii_lowercase();
            if alias.is_empty() || alias.contains(['/', ':', ' ']) {
                return Err(ConfigError::new(
                    format!("apps[{i}].aliases[{j}]"),
                    "must be a bare host name",
                ));
            }
            hosts.push((alias, format!("apps[{i}].aliases[{j}]")));
        }
        let all_hosts: Vec<String> = hosts.iter().map(|(host, _)| host.clone()).collect();
        for (host, path) in hosts {
            if let Some(first) = routes.insert((host.clone(), prefix.clone()), i) {
                return Err(ConfigError::new(
                    path,
                    format!(
                        "duplicate host {host:?} with path prefix {prefix:?} (also apps[{first}])"
                    ),
                ));
            }
        }
        let policy =
            guichet_policies::Policy::compile(app.access, &app.rules, app.case_insensitive_paths)
                .map_err(|e| {
                ConfigError::new(at(&format!("rules[{}]", e.index)), e.error.to_string())
            })?;
        if app.providers.is_empty() {
            return Err(ConfigError::new(
                at("providers"),
                "at least one provider is required",
            ));
        }
        for (j, provider) in app.providers.iter().enumerate() {
            if !provider_ids.contains_key(provider) {
                return Err(ConfigError::new(
                    format!("apps[{i}].providers[{j}]"),
                    format!("unknown provider {provider:?}"),
                ));
            }
        }
        let header_names =
            identity_headers::validate(&app.identity_headers, &at("identity_headers"))?;
        resolved.push(ResolvedApp {
            hosts: all_hosts,
            path_prefix: prefix,
            policy,
            header_names,
            upstream,
        });
    }
    Ok(resolved)
}

/// The identité pivot only where the civil registry vouches for the six claims (FranceConnect,
/// which sends RNIPP's identity), and only when the provider is asked for all six and keeps
/// them under their own names.
fn validate_identity_provider(provider: &ProviderConfig, at: &str) -> Result<(), ConfigError> {
    let (ProviderConfig::Franceconnect(fc) | ProviderConfig::FranceconnectPlus(fc)) = provider
    else {
        return Err(ConfigError::new(
            format!("{at}.pivot.identity"),
            "only for kinds franceconnect and franceconnect_plus: other providers' names and birth dates are not the \
             civil registry's, and anyone could claim a person's account with them",
        ));
    };
    let claims = guichet_directory_client::identity_pivot::CLAIMS.map(|(name, _)| name);
    let scopes: Vec<&str> = match &fc.scopes {
        Some(scopes) => scopes.iter().map(String::as_str).collect(),
        None => guichet_protocols::oidc::FRANCECONNECT_DEFAULT_SCOPES.to_vec(),
    };
    let granted = |claim: &str| {
        scopes.iter().any(|scope| match *scope {
            "identite_pivot" => true,
            "profile" => matches!(claim, "given_name" | "family_name" | "birthdate" | "gender"),
            "birth" => matches!(claim, "birthplace" | "birthcountry"),
            scope => scope == claim,
        })
    };
    if let Some(missing) = claims.iter().find(|claim| !granted(claim)) {
        return Err(ConfigError::new(
            format!("{at}.scopes"),
            format!("the identité pivot needs {missing}: ask for the identite_pivot scope"),
        ));
    }
    if !fc.attributes.is_empty() {
        if let Some(missing) = claims.iter().find(|c| !fc.attributes.contains_key(**c)) {
            return Err(ConfigError::new(
                format!("{at}.attributes"),
                format!("the identité pivot reads the attribute {missing}: map it too"),
            ));
        }
    }
    Ok(())
}

/// One attribute (`attribute` with `directory_attribute`), or the identité pivot
/// (`identity`), never both.
fn validate_pivot(pivot: &PivotConfig, at: &str) -> Result<(), ConfigError> {
    let single = [
        ("attribute", &pivot.attribute),
        ("directory_attribute", &pivot.directory_attribute),
    ];
    match &pivot.identity {
        Some(_) if single.iter().any(|(_, value)| !value.is_empty()) || pivot.case_sensitive => {
            Err(ConfigError::new(
                at,
                "either attribute and directory_attribute, or identity, not both",
            ))
        }
        Some(identity) => {
            let names = guichet_directory_client::identity_pivot::CLAIMS.map(|(name, _)| name);
            for (name, value) in names.iter().zip(identity.directory_attributes()) {
                if value.trim().is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.identity.{name}"),
                        "must not be empty",
                    ));
                }
            }
            Ok(())
        }
        None => {
            for (field, value) in single {
                if value.trim().is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.{field}"),
                        "must not be empty (or use `identity`)",
                    ));
                }
            }
            Ok(())
        }
    }
}

fn validate_rate_limit(limits: &RateLimitConfig, at: &str) -> Result<(), ConfigError> {
    if limits.max_failures_per_ip.is_some() {
        return Err(ConfigError::new(
            format!("{at}.max_failures_per_ip"),
            "replaced by slow_down_address_after: a busy address is slowed down, never refused \
             as a whole (see docs/configuration.md, local provider)",
        ));
    }
    for (field, value) in [
        (
            "max_failures_per_account_and_address",
            limits.max_failures_per_account_and_address,
        ),
        ("max_failures_per_account", limits.max_failures_per_account),
        ("slow_down_address_after", limits.slow_down_address_after),
    ] {
        if value == 0 {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                "must be at least 1",
            ));
        }
    }
    if limits.window.is_zero() {
        return Err(ConfigError::new(format!("{at}.window"), "must be positive"));
    }
    // A busy address's attempts wait their turn at most 15 s: longer delays would refuse
    // nearly everyone there, shorter than a second would not slow a guesser.
    if !(Duration::from_secs(1)..=Duration::from_secs(10)).contains(&limits.max_delay) {
        return Err(ConfigError::new(
            format!("{at}.max_delay"),
            "between 1s and 10s",
        ));
    }
    // One address alone must not be able to lock an account out for everyone.
    let pair_thresholds = std::iter::once(limits.max_failures_per_account_and_address).chain(
        limits
            .trusted_networks
            .iter()
            .filter_map(|trusted| trusted.max_failures_per_account_and_address),
    );
    for threshold in pair_thresholds {
        if threshold >= limits.max_failures_per_account {
            return Err(ConfigError::new(
                format!("{at}.max_failures_per_account"),
                format!(
                    "must be above every max_failures_per_account_and_address ({threshold}): \
                     otherwise one address could lock an account out for everyone"
                ),
            ));
        }
    }
    for (n, trusted) in limits.trusted_networks.iter().enumerate() {
        if trusted.networks.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.trusted_networks[{n}].networks"),
                "list at least one network",
            ));
        }
        if trusted.max_failures_per_account_and_address == Some(0)
            || trusted.slow_down_address_after == Some(0)
        {
            return Err(ConfigError::new(
                format!("{at}.trusted_networks[{n}]"),
                "thresholds must be at least 1",
            ));
        }
    }
    Ok(())
}

fn validate_session(session: &SessionConfig) -> Result<(), ConfigError> {
    if session.cookie_name.is_empty()
        || !session
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            "session.cookie_name",
            "use letters, digits, '-' and '_'",
        ));
    }
    if session.idle_timeout.is_zero() {
        return Err(ConfigError::new("session.idle_timeout", "must be positive"));
    }
    if session.absolute_timeout < session.idle_timeout {
        return Err(ConfigError::new(
            "session.absolute_timeout",
            "must not be shorter than session.idle_timeout",
        ));
    }
    Ok(())
}

fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Returns the lowercase host the app is routed by.
/// An app or upstream URL Guichet cannot serve or reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL: {0}")]
pub struct InvalidUrl(String);

fn validate_app_url(url: &url::Url) -> Result<String, InvalidUrl> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidUrl(format!(
            "scheme must be http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(InvalidUrl(
            "no query, fragment or credentials allowed".into(),
        ));
    }
    if url.path().contains("/.guichet") || url.path().contains("//") {
        return Err(InvalidUrl("path prefix must be plain segments".into()));
    }
    url.host_str()
        .map(|h| h.to_ascii_lowercase())
        .ok_or_else(|| InvalidUrl("no host".into()))
}

fn validate_upstream(url: &url::Url) -> Result<UpstreamAddress, InvalidUrl> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidUrl(format!(
            "scheme must be http or https, not {:?}",
            url.scheme()
        )));
    }
    let Some(host) = url.host_str() else {
        return Err(InvalidUrl("no host".into()));
    };
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(InvalidUrl(
            "only scheme, host and port are supported".into(),
        ));
    }
    let Some(port) = url.port_or_known_default() else {
        return Err(InvalidUrl("no port".into()));
    };
    Ok(UpstreamAddress {
        host: host.trim_matches(['[', ']']).to_owned(),
        port,
        authority: match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        },
        tls: url.scheme() == "https",
    })
}

/// The app's path prefix without trailing slash; empty for a whole host.
pub fn app_path_prefix(url: &url::Url) -> String {
    url.path().trim_end_matches('/').to_string()
}

/// Inline users for a local provider (demo, tests): validated like a users file.
pub fn inline_users(
    users: Vec<LocalUser>,
) -> Result<LocalUsers, guichet_protocols::local::LocalUsersError> {
    LocalUsers::from_users(users)
}
