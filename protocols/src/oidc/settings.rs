//! What one OpenID Connect provider is, as the gateway's configuration resolves it (secrets
//! already read from their files or environment variables).

use std::collections::BTreeMap;
use std::time::Duration;

use openidconnect::core::CoreJwsSigningAlgorithm;
use url::Url;

use super::jwe::DecryptionKey;

// FranceConnect v2 platforms. Sources (see docs/franceconnect.md, "Platforms"): the partner
// documentation's endpoint page (docs.partenaires.franceconnect.gouv.fr/fs/fs-technique/
// fs-technique-endpoints/) for integration; the sandbox and production hosts as FranceConnect's
// partner-portal clients use them (InseeFr/Keycloak-FranceConnect, france-connect.properties).

/// FranceConnect v2 integration platform, for client ids from "démarches simplifiées" (test
/// identities, no real citizens).
pub const FRANCECONNECT_INTEGRATION: &str = "https://fcp-low.integ01.dev-franceconnect.fr/api/v2";
/// FranceConnect v2 sandbox, for client ids created in the partner portal (since May 2025).
pub const FRANCECONNECT_SANDBOX: &str = "https://fcp-low.sbx.dev-franceconnect.fr/api/v2";
/// FranceConnect v2 production platform.
pub const FRANCECONNECT_PRODUCTION: &str = "https://oidc.franceconnect.gouv.fr/api/v2";

// FranceConnect+ (eIDAS substantial and high). Sources: the partner documentation's endpoint
// page (integration) and the last full version of FranceConnect+'s own documentation
// (github.com/france-connect/Documentation-FranceConnect-Plus, fs/docs-fs.md at 4c69dfa,
// production). No FranceConnect+ sandbox host is published.

/// FranceConnect+ integration platform.
pub const FRANCECONNECT_PLUS_INTEGRATION: &str = "https://auth.integ01.dev-franceconnect.fr/api/v2";
/// FranceConnect+ production platform.
pub const FRANCECONNECT_PLUS_PRODUCTION: &str = "https://auth.franceconnect.gouv.fr/api/v2";

/// The identity claims FranceConnect v2 can release, each its own scope (france-connect/sources,
/// back/libs/scopes/src/data/fcp-low/fcp-low.scopes.ts). A service asks only for those its
/// DataPass authorisation lists: any other scope gets `invalid_scope`.
pub const FRANCECONNECT_SCOPES: &[&str] = &[
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "email",
    "preferred_username",
];

/// What the FranceConnect preset asks for when the configuration lists no scopes: the least a
/// DataPass authorises (the citizen's names).
pub const FRANCECONNECT_DEFAULT_SCOPES: &[&str] = &["given_name", "family_name"];

#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub id: String,
    pub display_name: String,
    /// The issuer, pinned: discovery must return exactly this string, tokens must carry it.
    /// Kept as written in the configuration (a URL type would add a trailing `/`).
    pub issuer: String,
    pub endpoints: Endpoints,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// Scopes besides `openid`, which is always sent.
    pub scopes: Vec<String>,
    /// PKCE (S256); on unless a provider cannot take it.
    pub pkce: bool,
    /// Algorithms the provider's tokens may be signed with. `none` is refused by configuration.
    pub allowed_algs: Vec<CoreJwsSigningAlgorithm>,
    pub userinfo: UserinfoMode,
    /// `acr_values` sent at /authorize; the id_token's `acr` must then be at least the first one.
    pub acr_values: Option<String>,
    /// Principal attribute name → claim (a dotted path into nested claims). Empty: every claim
    /// under its own name.
    pub attributes: BTreeMap<String, String>,
    /// Extra parameters for /authorize (`prompt`, `ui_locales`...).
    pub extra_authorize_params: Vec<(String, String)>,
    /// The OpenID Connect `claims` request parameter (JSON), e.g. to ask FranceConnect for `amr`.
    pub claims: Option<String>,
    /// RP-initiated logout at the provider's end-session endpoint when the user signs out.
    pub end_session: bool,
    /// The provider's own logout must happen (FranceConnect asks services to implement it): when
    /// the end-session endpoint cannot be found, the user is told, instead of the step being
    /// skipped.
    pub end_session_required: bool,
    /// Bound on every request to the provider.
    pub http_timeout: Duration,
    /// How long discovery results are trusted before being fetched again.
    pub metadata_ttl: Duration,
    /// Least time between two JWKS fetches caused by tokens signed with an unknown key.
    pub jwks_refresh_interval: Duration,
    /// Tolerated clock difference with the provider for `iat`/`exp`.
    pub clock_skew: Duration,
    /// Keys the provider encrypts id_tokens and userinfo to (FranceConnect+).
    pub encryption: Option<Encryption>,
}

/// The service's decryption keys for one provider.
#[derive(Clone, Debug)]
pub struct Encryption {
    /// The first published key is the current one; the others decrypt what is still encrypted
    /// to them during a rotation.
    pub keys: Vec<DecryptionKey>,
    /// Every id_token and userinfo response must be encrypted: a plain one is refused (it would
    /// be a downgrade the provider never makes).
    pub required: bool,
}

/// Where the provider's endpoints come from.
#[derive(Clone, Debug)]
pub enum Endpoints {
    /// `{issuer}/.well-known/openid-configuration`, whose `issuer` must equal the configured one.
    Discovery,
    /// Configured one by one, for providers without discovery.
    Static(Box<StaticEndpoints>),
}

#[derive(Clone, Debug)]
pub struct StaticEndpoints {
    pub authorization: Url,
    pub token: Url,
    pub jwks: Url,
    pub userinfo: Option<Url>,
    pub end_session: Option<Url>,
}

/// How Guichet authenticates to the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    SecretBasic(String),
    SecretPost(String),
    /// A JWT signed with this RSA key (PEM, PKCS#8 or PKCS#1), RS256.
    PrivateKeyJwt {
        key_pem: String,
        key_id: Option<String>,
    },
}

impl ClientAuth {
    /// The shared secret, which is also the HMAC key when HS256 is explicitly allowed.
    pub fn secret(&self) -> Option<&str> {
        match self {
            ClientAuth::SecretBasic(s) | ClientAuth::SecretPost(s) => Some(s),
            ClientAuth::PrivateKeyJwt { .. } => None,
        }
    }
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::SecretBasic(_) => "client_secret_basic(<redacted>)",
            ClientAuth::SecretPost(_) => "client_secret_post(<redacted>)",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt(<redacted>)",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserinfoMode {
    /// The id_token's claims only.
    Skip,
    /// Fetch userinfo whenever the provider advertises a userinfo endpoint (the default:
    /// OpenID Connect Core 5.4 returns scope claims such as `email` there, not in the
    /// id_token, in the code flow); JSON or a signed JWT (verified) are both accepted.
    Fetch,
    /// Fetch userinfo and accept only a signed JWT (FranceConnect).
    RequireSigned,
}

impl OidcSettings {
    /// Defaults shared by every provider; the gateway's configuration overrides them.
    pub fn new(id: &str, issuer: &str, client_id: &str, client_auth: ClientAuth) -> Self {
        Self {
            id: id.to_owned(),
            display_name: id.to_owned(),
            issuer: issuer.to_owned(),
            endpoints: Endpoints::Discovery,
            client_id: client_id.to_owned(),
            client_auth,
            scopes: vec!["profile".into(), "email".into()],
            pkce: true,
            allowed_algs: vec![
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            ],
            userinfo: UserinfoMode::Fetch,
            acr_values: None,
            attributes: BTreeMap::new(),
            extra_authorize_params: Vec::new(),
            claims: None,
            end_session: true,
            end_session_required: false,
            http_timeout: Duration::from_secs(10),
            metadata_ttl: Duration::from_secs(3600),
            jwks_refresh_interval: Duration::from_secs(30),
            clock_skew: Duration::from_secs(60),
            encryption: None,
        }
    }

    /// FranceConnect v2: eIDAS level 1, signed userinfo, ES256/RS256 only, no PKCE (its
    /// /authorize refuses every parameter outside its list, `code_challenge` included), logout
    /// at FranceConnect required.
    pub fn franceconnect(id: &str, issuer: &str, client_id: &str, client_auth: ClientAuth) -> Self {
        Self {
            display_name: "FranceConnect".into(),
            scopes: FRANCECONNECT_DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            pkce: false,
            userinfo: UserinfoMode::RequireSigned,
            acr_values: Some("eidas1".into()),
            end_session_required: true,
            ..Self::new(id, issuer, client_id, client_auth)
        }
    }

    /// FranceConnect+: the v2 rules, plus eIDAS substantial (`eidas2`) by default, ES256 only,
    /// and id_tokens and userinfo encrypted to `keys` (always: a plain one is refused).
    pub fn franceconnect_plus(
        id: &str,
        issuer: &str,
        client_id: &str,
        client_auth: ClientAuth,
        keys: Vec<DecryptionKey>,
    ) -> Self {
        Self {
            display_name: "FranceConnect+".into(),
            allowed_algs: vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256],
            acr_values: Some("eidas2".into()),
            encryption: Some(Encryption {
                keys,
                required: true,
            }),
            ..Self::franceconnect(id, issuer, client_id, client_auth)
        }
    }
}
