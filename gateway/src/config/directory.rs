//! The directory in the configuration: which backend, its cache, and how each provider's logins
//! are linked to directory people (pivot identity).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::SecretSource;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    pub backend: DirectoryBackendConfig,
    #[serde(default)]
    pub cache: DirectoryCacheConfig,
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
    pub attribute: String,
    /// The directory attribute it must equal (`email`, `entUid`, `id`...).
    pub directory_attribute: String,
    /// Compare case-sensitively (default: case-insensitive). Surrounding spaces are always
    /// ignored.
    #[serde(default)]
    pub case_sensitive: bool,
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
