//! A `cas` provider in the configuration (see docs/cas.md).

use std::time::Duration;

use guichet_protocols::cas::{CasSettings, CasVersion, SingleLogout};
use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use super::directory::PivotConfig;
use super::ConfigError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasProviderConfig {
    pub id: String,
    #[serde(default = "default_name")]
    pub display_name: String,
    /// The CAS server's base URL, e.g. `https://ent.example.org/cas`.
    pub server_url: Url,
    /// `"3.0"` (default: `/p3/serviceValidate`, attributes) or `"2.0"` (`/serviceValidate`).
    #[serde(default)]
    pub protocol: CasProtocol,
    #[serde(default)]
    pub renew: bool,
    #[serde(default)]
    pub gateway: bool,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// At `/.guichet/logout`, continue to the server's `/logout` (default true).
    #[serde(default = "default_true")]
    pub logout_at_server: bool,
    #[serde(default)]
    pub single_logout: SingleLogoutConfig,
    /// How these logins are linked to directory people.
    #[serde(default)]
    pub pivot: Option<PivotConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum CasProtocol {
    #[serde(rename = "2.0")]
    V2,
    #[default]
    #[serde(rename = "3.0")]
    V3,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleLogoutConfig {
    /// Honour the server's logout requests (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// When not empty, back-channel logout requests are accepted only from these networks.
    #[serde(default)]
    pub allowed_sources: Vec<IpNet>,
    /// Accept front-channel logout requests (relayed by browsers, so from anywhere). Default:
    /// on, unless `allowed_sources` restricts where logout requests may come from.
    #[serde(default)]
    pub front_channel: Option<bool>,
    /// Logout requests one address (IPv4, IPv6 /64) may send per minute; beyond, 429.
    #[serde(default = "default_slo_per_minute")]
    pub max_per_minute: u64,
}

fn default_slo_per_minute() -> u64 {
    3000
}

impl SingleLogoutConfig {
    pub fn accepts_front_channel(&self) -> bool {
        self.enabled
            && self
                .front_channel
                .unwrap_or(self.allowed_sources.is_empty())
    }
}

impl Default for SingleLogoutConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_sources: Vec::new(),
            front_channel: None,
            max_per_minute: default_slo_per_minute(),
        }
    }
}

fn default_name() -> String {
    "ENT / CAS".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_true() -> bool {
    true
}

impl CasProviderConfig {
    pub fn resolve(&self, at: &str) -> Result<CasSettings, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        match self.server_url.scheme() {
            "https" => {}
            "http"
                if matches!(
                    self.server_url.host_str(),
                    Some("127.0.0.1" | "localhost" | "[::1]")
                ) => {}
            _ => {
                return Err(ConfigError::new(
                    field("server_url"),
                    "must be https (http only on loopback, for tests)",
                ))
            }
        }
        if self.server_url.query().is_some() || self.server_url.fragment().is_some() {
            return Err(ConfigError::new(
                field("server_url"),
                "the server's base URL, without query or fragment",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(field("timeout"), "must be more than 0s"));
        }
        if self.renew && self.gateway {
            return Err(ConfigError::new(
                field("gateway"),
                "renew and gateway cannot both be set",
            ));
        }
        Ok(CasSettings {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            server: self.server_url.clone(),
            version: match self.protocol {
                CasProtocol::V2 => CasVersion::V2,
                CasProtocol::V3 => CasVersion::V3,
            },
            renew: self.renew,
            gateway: self.gateway,
            timeout: self.timeout,
            logout_at_server: self.logout_at_server,
            single_logout: SingleLogout {
                enabled: self.single_logout.enabled,
                front_channel: self.single_logout.accepts_front_channel(),
            },
        })
    }
}
