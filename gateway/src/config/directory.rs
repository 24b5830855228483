//! The directory in the configuration: which backend, its cache, and how each provider's logins
//! are linked to directory people (pivot identity).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use guichet_directory_client::scim::ScimAuth;
use guichet_directory_client::{
    CacheSettings, Directory, FileDirectory, ScimDirectory, ScimSettings,
};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, Secret, SecretSource};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    pub backend: DirectoryBackendConfig,
    #[serde(default)]
    pub cache: DirectoryCacheConfig,
    /// Bearer token for `POST /directory/invalidate` on the admin listener. Without it, only
    /// loopback peers may call the endpoint.
    #[serde(default)]
    pub admin_token: Option<SecretSource>,
}

/// The directory, built from the configuration: its backend (file read, SCIM credentials
/// resolved), its cache settings and the admin token.
#[derive(Clone)]
pub struct ResolvedDirectory {
    pub backend: Arc<dyn Directory>,
    pub cache: CacheSettings,
    pub admin_token: Option<Secret>,
}

impl fmt::Debug for ResolvedDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedDirectory")
            .field("backend", &self.backend.describe())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl DirectoryConfig {
    pub fn resolve(&self) -> Result<ResolvedDirectory, ConfigError> {
        let backend: Arc<dyn Directory> = match &self.backend {
            DirectoryBackendConfig::File { path } => {
                Arc::new(FileDirectory::load(path).map_err(|e| {
                    ConfigError::new("directory.backend.path", format!("{}: {e}", path.display()))
                })?)
            }
            DirectoryBackendConfig::Scim(scim) => Arc::new(scim.build()?),
        };
        let cache = &self.cache;
        let at = |field: &str| format!("directory.cache.{field}");
        for (field, value) in [
            ("l1_ttl", cache.l1_ttl),
            ("negative_ttl", cache.negative_ttl),
            ("l2_ttl", cache.l2_ttl),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(at(field), "must be more than 0s"));
            }
        }
        if cache.l1_capacity == 0 {
            return Err(ConfigError::new(at("l1_capacity"), "must be at least 1"));
        }
        let admin_token = self
            .admin_token
            .as_ref()
            .map(|token| {
                token
                    .resolve()
                    .map_err(|e| ConfigError::new("directory.admin_token", e))
            })
            .transpose()?;
        Ok(ResolvedDirectory {
            backend,
            cache: CacheSettings {
                l1_ttl: cache.l1_ttl,
                l1_capacity: cache.l1_capacity,
                negative_ttl: cache.negative_ttl,
                l2_ttl: cache.l2_ttl,
                max_stale: cache.max_stale,
            },
            admin_token,
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DirectoryBackendConfig {
    /// A YAML file of people, reloaded when it changes (see docs/directory.md).
    File { path: PathBuf },
    /// A SCIM 2.0 service.
    Scim(Box<ScimConfig>),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// The SCIM base URL, e.g. `https://directory.example.org/scim/v2`.
    pub url: Url,
    /// A bearer token, or `basic_user` + `basic_password`.
    #[serde(default)]
    pub bearer_token: Option<SecretSource>,
    #[serde(default)]
    pub basic_user: Option<String>,
    #[serde(default)]
    pub basic_password: Option<SecretSource>,
    #[serde(default = "default_scim_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Pivot attribute name → SCIM filter path (`email: emails.value`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Groups named `{group_prefix}{app}{group_separator}{role}` give roles.
    #[serde(default = "default_group_separator")]
    pub group_separator: String,
    #[serde(default)]
    pub group_prefix: String,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// SCIM paths of the person's structures (organisation ids) and validity dates, when the
    /// directory has them, e.g. `urn:example:params:scim:schemas:ent:2.0:User:structures`.
    #[serde(default)]
    pub structure_attribute: Option<String>,
    #[serde(default)]
    pub valid_from_attribute: Option<String>,
    #[serde(default)]
    pub valid_until_attribute: Option<String>,
    /// Extra trusted CA certificates (PEM) for an https directory behind a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl ScimConfig {
    fn build(&self) -> Result<ScimDirectory, ConfigError> {
        let at = |field: &str| format!("directory.backend.{field}");
        if !matches!(self.url.scheme(), "http" | "https") {
            return Err(ConfigError::new(at("url"), "scheme must be https or http"));
        }
        if !self.url.username().is_empty() || self.url.password().is_some() {
            return Err(ConfigError::new(
                at("url"),
                "credentials go in bearer_token or basic_user/basic_password, not in the URL",
            ));
        }
        let secret = |field: &str, source: &SecretSource| {
            source
                .resolve()
                .map(|s| s.expose().to_owned())
                .map_err(|e| ConfigError::new(at(field), e))
        };
        let auth = match (&self.bearer_token, &self.basic_user, &self.basic_password) {
            (None, None, None) => ScimAuth::None,
            (Some(token), None, None) => ScimAuth::Bearer(secret("bearer_token", token)?),
            (None, Some(user), Some(password)) => ScimAuth::Basic {
                user: user.clone(),
                password: secret("basic_password", password)?,
            },
            (Some(_), _, _) => {
                return Err(ConfigError::new(
                    at("bearer_token"),
                    "use either bearer_token or basic_user/basic_password",
                ))
            }
            (None, Some(_), None) => {
                return Err(ConfigError::new(
                    at("basic_password"),
                    "required with basic_user",
                ))
            }
            (None, None, Some(_)) => {
                return Err(ConfigError::new(
                    at("basic_user"),
                    "required with basic_password",
                ))
            }
        };
        if !(1..=1000).contains(&self.page_size) {
            return Err(ConfigError::new(
                at("page_size"),
                "must be between 1 and 1000",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(at("timeout"), "must be more than 0s"));
        }
        let ca_pem = match &self.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                ConfigError::new(
                    at("ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
        };
        if self.url.scheme() == "http"
            && !matches!(
                self.url.host_str(),
                Some("127.0.0.1" | "localhost" | "[::1]")
            )
        {
            tracing::warn!(url = %self.url, "the SCIM directory is reached over plain http: credentials and personal data cross the network unencrypted");
        }
        ScimDirectory::new(ScimSettings {
            url: self.url.clone(),
            auth,
            timeout: self.timeout,
            attributes: self.attributes.clone(),
            group_prefix: self.group_prefix.clone(),
            group_separator: self.group_separator.clone(),
            page_size: self.page_size,
            structure_attribute: self.structure_attribute.clone(),
            valid_from_attribute: self.valid_from_attribute.clone(),
            valid_until_attribute: self.valid_until_attribute.clone(),
            ca_pem,
        })
        .map_err(|e| ConfigError::new(at("url"), e.to_string()))
    }
}

fn default_scim_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_group_separator() -> String {
    ":".into()
}
fn default_page_size() -> u32 {
    100
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryCacheConfig {
    /// In-process cache of people found.
    #[serde(default = "default_l1_ttl", with = "humantime_serde")]
    pub l1_ttl: Duration,
    #[serde(default = "default_l1_capacity")]
    pub l1_capacity: u64,
    /// How long "nobody in the directory for this pivot" is remembered.
    #[serde(default = "default_negative_ttl", with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Redis cache shared by replicas (used when `session.store` is Redis).
    #[serde(default = "default_l2_ttl", with = "humantime_serde")]
    pub l2_ttl: Duration,
    /// While the backend fails, entries up to this old are still served; older: 503.
    #[serde(default = "default_max_stale", with = "humantime_serde")]
    pub max_stale: Duration,
}

impl Default for DirectoryCacheConfig {
    fn default() -> Self {
        Self {
            l1_ttl: default_l1_ttl(),
            l1_capacity: default_l1_capacity(),
            negative_ttl: default_negative_ttl(),
            l2_ttl: default_l2_ttl(),
            max_stale: default_max_stale(),
        }
    }
}

fn default_l1_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_l1_capacity() -> u64 {
    50_000
}
fn default_negative_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_l2_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_max_stale() -> Duration {
    Duration::from_secs(3600)
}

/// How a provider's logins find their person in the directory.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivotConfig {
    /// The principal's attribute carrying the pivot (`email`, `uid`...), or `subject`.
    #[serde(default)]
    pub attribute: String,
    /// The directory attribute it must equal (`email`, `entUid`, `id`...).
    #[serde(default)]
    pub directory_attribute: String,
    /// Compare case-sensitively (default: case-insensitive). Surrounding spaces are always
    /// ignored.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Instead of one attribute: the *identité pivot*, the six FranceConnect claims that
    /// together name a citizen, each compared with a directory attribute.
    #[serde(default)]
    pub identity: Option<IdentityPivotConfig>,
}

/// The directory attribute holding each of the six identité-pivot claims.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityPivotConfig {
    pub given_name: String,
    pub family_name: String,
    pub birthdate: String,
    pub gender: String,
    pub birthplace: String,
    pub birthcountry: String,
}

impl IdentityPivotConfig {
    /// In the order of [`guichet_directory_client::identity_pivot::CLAIMS`].
    pub fn directory_attributes(&self) -> [String; 6] {
        [
            self.given_name.clone(),
            self.family_name.clone(),
            self.birthdate.clone(),
            self.gender.clone(),
            self.birthplace.clone(),
            self.birthcountry.clone(),
        ]
    }
}

/// What an app does with a signed-in person the directory does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownPerson {
    /// A 403 page saying the account is not known for this application.
    #[default]
    Deny,
    /// Admitted with the app's `guest_roles` (e.g. parents authenticated by the school ENT).
    Guest,
}
