//! OpenID Connect and FranceConnect providers in the configuration, and their resolution into
//! the settings the `protocols` crate runs with (secrets read, keys loaded, defaults applied).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use guichet_protocols::oidc::jwe::{DecryptionKey, KeyAlg};
use guichet_protocols::oidc::{
    ClientAuth, Encryption, Endpoints, OidcSettings, SigningAlg, StaticEndpoints, UserinfoMode,
    FRANCECONNECT_INTEGRATION, FRANCECONNECT_PLUS_INTEGRATION, FRANCECONNECT_PLUS_PRODUCTION,
    FRANCECONNECT_PRODUCTION, FRANCECONNECT_SANDBOX,
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
    /// client ids) or `production`; `franceconnect_plus`: `integration` or `production`.
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
    /// RSA or P-256 private key (PEM) for `private_key_jwt` (P-256, ES256, for FranceConnect+).
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
    /// Private keys the provider encrypts id_tokens and userinfo to (required for
    /// `franceconnect_plus`). Their public halves are served at `/.guichet/jwks/{id}`.
    #[serde(default)]
    pub encryption_keys: Vec<EncryptionKeyConfig>,
    /// The guard of its back-channel logout endpoint: allowed sources, per-address limit.
    #[serde(default)]
    pub server_endpoints: super::ServerEndpointsConfig,
}

/// One decryption key, usually a file mounted from a Kubernetes Secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionKeyConfig {
    /// PEM: a P-256 EC key (ECDH-ES) or an RSA key of 2048 bits or more (RSA-OAEP-256 or
    /// RSA-OAEP).
    pub private_key: SecretSource,
    /// Default: the key's RFC 7638 thumbprint.
    #[serde(default)]
    pub kid: Option<String>,
    /// `ECDH-ES`, `RSA-OAEP-256` or `RSA-OAEP`; default from the key type.
    #[serde(default)]
    pub alg: Option<String>,
    /// Still decrypts, no longer published: the last step of a rotation.
    #[serde(default)]
    pub retired: bool,
}

/// Which rules an OpenID Connect provider follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OidcFlavour {
    Generic,
    /// FranceConnect v2 (eIDAS low).
    FranceConnect,
    /// FranceConnect+ (eIDAS substantial and high): FranceConnect's rules, ES256, encryption.
    FranceConnectPlus,
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
fn check_franceconnect_scopes(at: &str, scopes: &[String], plus: bool) -> Result<(), ConfigError> {
    for scope in scopes {
        let why = match scope.as_str() {
            "address" | "phone" => "removed in FranceConnect v2",
            "offline_access" => "FranceConnect issues no refresh tokens",
            s if s.starts_with("rnipp_") && !plus => "FranceConnect+ only",
            "idp_birthdate" | "idp_id" | "given_name_array" if plus => {
                "FranceConnect (v2) only: FranceConnect+ has no such scope"
            }
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
    /// Applies defaults (FranceConnect's for its flavours), reads secrets and keys. `at` is
    /// the provider's path in the file, e.g. `providers[2]`.
    pub fn resolve(&self, at: &str, flavour: OidcFlavour) -> Result<OidcSettings, ConfigError> {
        use OidcFlavour as F;
        let field = |name: &str| format!("{at}.{name}");
        let franceconnect = flavour != F::Generic;
        let plus = flavour == F::FranceConnectPlus;
        let issuer = self.issuer_url(at, flavour)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::new(field("client_id"), "must not be empty"));
        }

        let client_auth = self.client_auth(at, flavour)?;

        let encryption = self.encryption(at, flavour)?;
        let mut settings = match flavour {
            F::Generic => OidcSettings::new(&self.id, &issuer, &self.client_id, client_auth),
            F::FranceConnect => {
                OidcSettings::franceconnect(&self.id, &issuer, &self.client_id, client_auth)
            }
            F::FranceConnectPlus => OidcSettings::franceconnect_plus(
                &self.id,
                &issuer,
                &self.client_id,
                client_auth,
                Vec::new(),
            ),
        };
        settings.encryption = encryption;
        if let Some(name) = &self.display_name {
            settings.display_name = name.clone();
        }
        settings.endpoints = self.endpoints(at)?;
        if let Some(scopes) = &self.scopes {
            if franceconnect {
                check_franceconnect_scopes(&field("scopes"), scopes, plus)?;
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
        if let Some(algs) = self.allowed_algs(at, flavour, &settings.client_auth)? {
            settings.allowed_algs = algs;
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
        if plus {
            let levels: Vec<&str> = settings
                .acr_values
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if levels.is_empty() || levels.iter().any(|l| !matches!(*l, "eidas2" | "eidas3")) {
                return Err(ConfigError::new(
                    field("acr_values"),
                    "FranceConnect+ offers eidas2 and eidas3 only (it answers eidas1 with \
                     invalid_acr: that is FranceConnect's)",
                ));
            }
        } else if franceconnect && settings.acr_values.as_deref() != Some("eidas1") {
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

    /// The issuer: configured, or the platform of `environment` for FranceConnect's kinds.
    fn issuer_url(&self, at: &str, flavour: OidcFlavour) -> Result<String, ConfigError> {
        use FranceConnectEnvironment as Env;
        use OidcFlavour as F;
        let field = |name: &str| format!("{at}.{name}");
        let issuer = match (flavour, &self.issuer, self.environment) {
            (F::Generic, _, Some(_)) => {
                return Err(ConfigError::new(
                    field("environment"),
                    "only for kinds franceconnect and franceconnect_plus",
                ))
            }
            (_, Some(issuer), _) => issuer.clone(),
            (F::FranceConnect, None, Some(Env::Sandbox)) => FRANCECONNECT_SANDBOX.to_owned(),
            (F::FranceConnect, None, Some(Env::Integration)) => {
                FRANCECONNECT_INTEGRATION.to_owned()
            }
            (F::FranceConnect, None, Some(Env::Production)) => FRANCECONNECT_PRODUCTION.to_owned(),
            (F::FranceConnectPlus, None, Some(Env::Integration)) => {
                FRANCECONNECT_PLUS_INTEGRATION.to_owned()
            }
            (F::FranceConnectPlus, None, Some(Env::Production)) => {
                FRANCECONNECT_PLUS_PRODUCTION.to_owned()
            }
            (F::FranceConnectPlus, None, Some(Env::Sandbox)) => {
                return Err(ConfigError::new(
                    field("environment"),
                    "FranceConnect+ publishes no sandbox: integration or production",
                ))
            }
            (F::FranceConnect, None, None) => {
                return Err(ConfigError::new(
                    field("environment"),
                    "required: sandbox, integration or production",
                ))
            }
            (F::FranceConnectPlus, None, None) => {
                return Err(ConfigError::new(
                    field("environment"),
                    "required: integration or production",
                ))
            }
            (F::Generic, None, None) => return Err(ConfigError::new(field("issuer"), "required")),
        };
        let issuer_url = Url::parse(&issuer)
            .map_err(|e| ConfigError::new(field("issuer"), format!("invalid URL: {e}")))?;
        check_url(&field("issuer"), &issuer_url)?;
        Ok(issuer)
    }

    /// How Guichet authenticates at the token endpoint, its secret or key read.
    fn client_auth(&self, at: &str, flavour: OidcFlavour) -> Result<ClientAuth, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        let franceconnect = flavour != OidcFlavour::Generic;
        let plus = flavour == OidcFlavour::FranceConnectPlus;
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
                // FranceConnect+ checks client assertions with ES256 only.
                if plus && guichet_protocols::oidc::assertion_alg(&key_pem) != Some("ES256") {
                    return Err(ConfigError::new(
                        field("private_key_file"),
                        "FranceConnect+ takes ES256 client assertions only: a P-256 EC key",
                    ));
                }
                ClientAuth::PrivateKeyJwt {
                    key_pem,
                    key_id: self.private_key_id.clone(),
                }
            }
        };
        Ok(client_auth)
    }

    /// Discovery, or endpoints configured one by one (https, or http on loopback).
    fn endpoints(&self, at: &str) -> Result<Endpoints, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        let endpoints = match (self.discovery, &self.endpoints) {
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
        Ok(endpoints)
    }

    /// The signing algorithms the configuration restricts the provider to, checked against
    /// what the platform signs with.
    fn allowed_algs(
        &self,
        at: &str,
        flavour: OidcFlavour,
        client_auth: &ClientAuth,
    ) -> Result<Option<Vec<SigningAlg>>, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        let franceconnect = flavour != OidcFlavour::Generic;
        let plus = flavour == OidcFlavour::FranceConnectPlus;
        let Some(algs) = &self.allowed_algs else {
            return Ok(None);
        };
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
        if plus && algs.iter().any(|a| *a != SigningAlg::EcdsaP256Sha256) {
            return Err(ConfigError::new(
                field("allowed_algs"),
                "FranceConnect+ signs with ES256 only",
            ));
        }
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
        if symmetric && client_auth.secret().is_none() {
            return Err(ConfigError::new(
                field("allowed_algs"),
                "HS* needs a client_secret",
            ));
        }
        Ok(Some(algs.clone()))
    }

    /// The decryption keys, loaded and checked: none, or at least one published, kids unique.
    fn encryption(
        &self,
        at: &str,
        flavour: OidcFlavour,
    ) -> Result<Option<Encryption>, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        let plus = flavour == OidcFlavour::FranceConnectPlus;
        if flavour == OidcFlavour::FranceConnect && !self.encryption_keys.is_empty() {
            return Err(ConfigError::new(
                field("encryption_keys"),
                "FranceConnect v2 encrypts nothing (every login would fail): encrypted tokens \
                 are FranceConnect+'s, kind franceconnect_plus",
            ));
        }
        if self.encryption_keys.is_empty() {
            return if plus {
                Err(ConfigError::new(
                    field("encryption_keys"),
                    "required: FranceConnect+ encrypts id_tokens and userinfo to the service's keys",
                ))
            } else {
                Ok(None)
            };
        }
        let mut keys: Vec<DecryptionKey> = Vec::new();
        for (i, key) in self.encryption_keys.iter().enumerate() {
            let at = field(&format!("encryption_keys[{i}]"));
            let alg = match &key.alg {
                None => None,
                Some(name) => Some(KeyAlg::from_name(name).ok_or_else(|| {
                    ConfigError::new(format!("{at}.alg"), "ECDH-ES, RSA-OAEP-256 or RSA-OAEP")
                })?),
            };
            let pem = key
                .private_key
                .resolve()
                .map_err(|e| ConfigError::new(format!("{at}.private_key"), e))?;
            let loaded = DecryptionKey::from_pem(pem.expose(), key.kid.clone(), alg, !key.retired)
                .map_err(|e| ConfigError::new(format!("{at}.private_key"), e.to_string()))?;
            if keys.iter().any(|k| k.kid() == loaded.kid()) {
                return Err(ConfigError::new(
                    format!("{at}.kid"),
                    format!("{:?} is already another key's kid", loaded.kid()),
                ));
            }
            keys.push(loaded);
        }
        if !keys.iter().any(DecryptionKey::published) {
            return Err(ConfigError::new(
                field("encryption_keys"),
                "every key is retired: the provider would have nothing to encrypt to",
            ));
        }
        // A provider configured to encrypt always does: a plain token is a downgrade.
        Ok(Some(Encryption {
            keys,
            required: true,
        }))
    }
}
