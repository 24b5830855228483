//! OpenID Connect and FranceConnect providers in the configuration, and their resolution into
//! the settings the `protocols` crate runs with (secrets read, keys loaded, defaults applied).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use guichet_protocols::oidc::{
    ClientAuth, Endpoints, OidcSettings, SigningAlg, StaticEndpoints, UserinfoMode,
    FRANCECONNECT_INTEGRATION, FRANCECONNECT_PRODUCTION, FRANCECONNECT_SANDBOX,
};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, SecretSource};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The issuer exactly as the provider writes it. Required for `oidc`; for `franceconnect`
    /// it follows `environment` unless given (tests, proxies).
    #[serde(default)]
    pub issuer: Option<String>,
    /// `franceconnect` only: `sandbox` (partner-portal client ids), `integration` (older
    /// client ids) or `production`.
    #[serde(default)]
    pub environment: Option<FranceConnectEnvironment>,
    /// Fetch `{issuer}/.well-known/openid-configuration` (default) or use `endpoints`.
    #[serde(default = "yes")]
    pub discovery: bool,
    #[serde(default)]
    pub endpoints: Option<EndpointsConfig>,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// `client_secret_basic` (default for `oidc`), `client_secret_post` (default for
    /// `franceconnect`) or `private_key_jwt`.
    #[serde(default)]
    pub client_auth: Option<ClientAuthMethod>,
    /// RSA private key (PEM) for `private_key_jwt`.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Scopes besides `openid` (always sent).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// PKCE (S256). Default on, except for `franceconnect`, which refuses it.
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Default RS256 and ES256. `none` is refused; HS256 only when listed here.
    #[serde(default)]
    pub allowed_algs: Option<Vec<SigningAlg>>,
    /// `skip`, `fetch` or `require_signed`.
    #[serde(default)]
    pub userinfo: Option<UserinfoConfig>,
    #[serde(default)]
    pub acr_values: Option<String>,
    /// Principal attribute → claim (dotted path for nested claims).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Extra /authorize parameters (`prompt`, `ui_locales`...).
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// The `claims` request parameter, as YAML (sent as JSON), e.g.
    /// `{ id_token: { amr: { essential: true } } }` for FranceConnect's `amr`.
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
    /// Continue to the provider's end-session endpoint at logout.
    #[serde(default = "yes")]
    pub end_session: bool,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_metadata_ttl", with = "humantime_serde")]
    pub metadata_ttl: Duration,
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How these logins are linked to directory people.
    #[serde(default)]
    pub pivot: Option<super::PivotConfig>,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_metadata_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_jwks_refresh() -> Duration {
    Duration::from_secs(30)
}
fn default_skew() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FranceConnectEnvironment {
    Sandbox,
    Integration,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserinfoConfig {
    Skip,
    Fetch,
    RequireSigned,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsConfig {
    pub authorization: Url,
    pub token: Url,
    pub jwks: Url,
    #[serde(default)]
    pub userinfo: Option<Url>,
    #[serde(default)]
    pub end_session: Option<Url>,
}

/// Scopes FranceConnect v2 removed or never had: asking for one fails every login.
fn check_franceconnect_scopes(at: &str, scopes: &[String]) -> Result<(), ConfigError> {
    for scope in scopes {
        let why = match scope.as_str() {
            "address" | "phone" => "removed in FranceConnect v2",
            "offline_access" => "FranceConnect issues no refresh tokens",
            s if s.starts_with("rnipp_") => "FranceConnect+ only",
            s if s.is_empty() || !s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                "not a FranceConnect scope name"
            }
            _ => continue,
        };
        return Err(ConfigError::new(at, format!("{scope:?}: {why}")));
    }
    Ok(())
}

/// FranceConnect's /authorize refuses any parameter outside its list (error Y030007): of the
/// optional ones, Guichet lets the configuration set `prompt`, `idp_hint` and `ui_locales`.
fn check_franceconnect_param(at: &str, name: &str, value: &str) -> Result<(), ConfigError> {
    match name {
        "idp_hint" | "ui_locales" => Ok(()),
        "prompt" if value.split(' ').all(|p| p == "login" || p == "consent") => Ok(()),
        "prompt" => Err(ConfigError::new(
            at,
            "FranceConnect accepts login and consent only",
        )),
        _ => Err(ConfigError::new(
            at,
            "FranceConnect refuses /authorize parameters outside its list (prompt, idp_hint, \
             ui_locales; claims through `claims`)",
        )),
    }
}

/// Provider URLs must be https; plain http only on loopback (tests, a local provider).
fn check_url(path: &str, url: &Url) -> Result<(), ConfigError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ConfigError::new(
            path,
            "must be an https URL (http only on loopback)",
        )),
    }
}

impl OidcProviderConfig {
    /// Applies defaults (FranceConnect's when `franceconnect`) and reads secrets. `at` is the
    /// provider's path in the file, e.g. `providers[2]`.
    pub fn resolve(&self, at: &str, franceconnect: bool) -> Result<OidcSettings, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        let issuer = match (franceconnect, &self.issuer, self.environment) {
            (false, _, Some(_)) => {
                return Err(ConfigError::new(
                    field("environment"),
                    "only for kind franceconnect",
                ))
            }
            (_, Some(issuer), _) => issuer.clone(),
            (true, None, Some(FranceConnectEnvironment::Sandbox)) => {
                FRANCECONNECT_SANDBOX.to_owned()
            }
            (true, None, Some(FranceConnectEnvironment::Integration)) => {
                FRANCECONNECT_INTEGRATION.to_owned()
            }
            (true, None, Some(FranceConnectEnvironment::Production)) => {
                FRANCECONNECT_PRODUCTION.to_owned()
            }
            (true, None, None) => {
                return Err(ConfigError::new(
                    field("environment"),
                    "required: sandbox, integration or production",
                ))
            }
            (false, None, None) => return Err(ConfigError::new(field("issuer"), "required")),
        };
        let issuer_url = Url::parse(&issuer)
            .map_err(|e| ConfigError::new(field("issuer"), format!("invalid URL: {e}")))?;
        check_url(&field("issuer"), &issuer_url)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::new(field("client_id"), "must not be empty"));
        }

        let method = self.client_auth.unwrap_or(if franceconnect {
            ClientAuthMethod::ClientSecretPost
        } else {
            ClientAuthMethod::ClientSecretBasic
        });
        if franceconnect && method == ClientAuthMethod::ClientSecretBasic {
            return Err(ConfigError::new(
                field("client_auth"),
                "FranceConnect accepts client_secret_post or private_key_jwt only",
            ));
        }
        let secret = || {
            self.client_secret
                .as_ref()
                .ok_or_else(|| ConfigError::new(field("client_secret"), "required"))?
                .resolve()
                .map(|s| s.expose().to_owned())
                .map_err(|e| ConfigError::new(field("client_secret"), e))
        };
        let client_auth = match method {
            ClientAuthMethod::ClientSecretBasic => ClientAuth::SecretBasic(secret()?),
            ClientAuthMethod::ClientSecretPost => ClientAuth::SecretPost(secret()?),
            ClientAuthMethod::PrivateKeyJwt => {
                let path = self.private_key_file.as_ref().ok_or_else(|| {
                    ConfigError::new(field("private_key_file"), "required for private_key_jwt")
                })?;
                let key_pem = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        field("private_key_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                ClientAuth::PrivateKeyJwt {
                    key_pem,
                    key_id: self.private_key_id.clone(),
                }
            }
        };

        let mut settings = if franceconnect {
            OidcSettings::franceconnect(&self.id, &issuer, &self.client_id, client_auth)
        } else {
            OidcSettings::new(&self.id, &issuer, &self.client_id, client_auth)
        };
        if let Some(name) = &self.display_name {
            settings.display_name = name.clone();
        }
        settings.endpoints = match (self.discovery, &self.endpoints) {
            (true, None) => Endpoints::Discovery,
            (true, Some(_)) => {
                return Err(ConfigError::new(
                    field("endpoints"),
                    "set discovery: false to configure endpoints by hand",
                ))
            }
            (false, None) => {
                return Err(ConfigError::new(
                    field("endpoints"),
                    "required when discovery is false",
                ))
            }
            (false, Some(e)) => {
                check_url(&field("endpoints.authorization"), &e.authorization)?;
                check_url(&field("endpoints.token"), &e.token)?;
                check_url(&field("endpoints.jwks"), &e.jwks)?;
                for (name, url) in [("userinfo", &e.userinfo), ("end_session", &e.end_session)] {
                    if let Some(url) = url {
                        check_url(&field(&format!("endpoints.{name}")), url)?;
                    }
                }
                Endpoints::Static(Box::new(StaticEndpoints {
                    authorization: e.authorization.clone(),
                    token: e.token.clone(),
                    jwks: e.jwks.clone(),
                    userinfo: e.userinfo.clone(),
                    end_session: e.end_session.clone(),
                }))
            }
        };
        if let Some(scopes) = &self.scopes {
            if franceconnect {
                check_franceconnect_scopes(&field("scopes"), scopes)?;
            }
            settings.scopes = scopes.clone();
        }
        settings.pkce =
            match (franceconnect, self.pkce) {
                (true, Some(true)) => return Err(ConfigError::new(
                    field("pkce"),
                    "FranceConnect refuses code_challenge (its /authorize takes a fixed list of \
                     parameters): leave pkce off",
                )),
                (true, _) => false,
                (false, pkce) => pkce.unwrap_or(true),
            };
        if let Some(algs) = &self.allowed_algs {
            if algs.is_empty() {
                return Err(ConfigError::new(field("allowed_algs"), "must not be empty"));
            }
            if algs.contains(&SigningAlg::None) {
                return Err(ConfigError::new(
                    field("allowed_algs"),
                    "unsigned tokens (none) are never accepted",
                ));
            }
            let symmetric = algs.iter().any(|a| {
                matches!(
                    a,
                    SigningAlg::HmacSha256 | SigningAlg::HmacSha384 | SigningAlg::HmacSha512
                )
            });
            if franceconnect
                && algs.iter().any(|a| {
                    !matches!(
                        a,
                        SigningAlg::EcdsaP256Sha256 | SigningAlg::RsaSsaPkcs1V15Sha256
                    )
                })
            {
                return Err(ConfigError::new(
                    field("allowed_algs"),
                    "FranceConnect signs with ES256 or RS256 only",
                ));
            }
            if symmetric && settings.client_auth.secret().is_none() {
                return Err(ConfigError::new(
                    field("allowed_algs"),
                    "HS* needs a client_secret",
                ));
            }
            settings.allowed_algs = algs.clone();
        }
        match (franceconnect, self.userinfo) {
            (true, Some(mode)) if mode != UserinfoConfig::RequireSigned => {
                return Err(ConfigError::new(
                    field("userinfo"),
                    "FranceConnect userinfo is always signed: require_signed",
                ))
            }
            (_, Some(mode)) => {
                settings.userinfo = match mode {
                    UserinfoConfig::Skip => UserinfoMode::Skip,
                    UserinfoConfig::Fetch => UserinfoMode::Fetch,
                    UserinfoConfig::RequireSigned => UserinfoMode::RequireSigned,
                }
            }
            (_, None) => {}
        }
        if let Some(acr) = &self.acr_values {
            settings.acr_values = Some(acr.clone()).filter(|a| !a.trim().is_empty());
        }
        if franceconnect && settings.acr_values.as_deref() != Some("eidas1") {
            return Err(ConfigError::new(
                field("acr_values"),
                "FranceConnect v2 offers eidas1 only (it answers eidas2 and eidas3 with \
                 invalid_acr: those are FranceConnect+'s)",
            ));
        }
        settings.attributes = self.attributes.clone();
        for (name, value) in &self.authorize_params {
            const OURS: &[&str] = &[
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
                "acr_values",
            ];
            let at = field(&format!("authorize_params.{name}"));
            if OURS.contains(&name.as_str()) {
                return Err(ConfigError::new(at, "set by Guichet itself"));
            }
            if name == "claims" {
                return Err(ConfigError::new(at, "use the provider's `claims` setting"));
            }
            if franceconnect {
                check_franceconnect_param(&at, name, value)?;
            }
        }
        settings.claims = match &self.claims {
            None => None,
            Some(claims @ serde_json::Value::Object(_)) => Some(claims.to_string()),
            Some(_) => {
                return Err(ConfigError::new(
                    field("claims"),
                    "a mapping such as { id_token: { amr: { essential: true } } }",
                ))
            }
        };
        settings.extra_authorize_params = self
            .authorize_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if franceconnect && !self.end_session {
            return Err(ConfigError::new(
                field("end_session"),
                "FranceConnect asks services to log users out of FranceConnect too",
            ));
        }
        settings.end_session = self.end_session;
        if self.timeout.is_zero() {
            return Err(ConfigError::new(field("timeout"), "must be positive"));
        }
        if let Endpoints::Static(endpoints) = &settings.endpoints {
            // What the provider must do, it must have an endpoint for: otherwise every login
            // (or every logout) would fail at run time instead of here.
            if settings.end_session
                && settings.end_session_required
                && endpoints.end_session.is_none()
            {
                return Err(ConfigError::new(
                    field("endpoints.end_session"),
                    "required: logging out at this provider is mandatory",
                ));
            }
            if settings.userinfo == UserinfoMode::RequireSigned && endpoints.userinfo.is_none() {
                return Err(ConfigError::new(
                    field("endpoints.userinfo"),
                    "required: userinfo is require_signed",
                ));
            }
        }
        settings.http_timeout = self.timeout;
        settings.metadata_ttl = self.metadata_ttl;
        settings.jwks_refresh_interval = self.jwks_refresh_interval;
        settings.clock_skew = self.clock_skew;
        Ok(settings)
    }
}
