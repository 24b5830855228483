//! What the targets check against: a fixture IdP and OpenID provider whose keys made the
//! recorded seeds (`fixtures/`, written by `seedgen/`), and the instant those seeds were made
//! for, so that they stay acceptable whatever the date.

/// 2030-01-01T00:00:00Z: the SAML responses of the corpus were issued then.
pub const NOW: i64 = 1_893_456_000;

pub const SAML_IDP_METADATA: &str = include_str!("../fixtures/saml-idp-metadata.xml");
/// The SP's key, which the encrypted assertions of the corpus are encrypted to.
pub const SAML_SP_KEY: &str = include_str!("../fixtures/saml-sp-key.pem");
pub const SAML_SP_ENTITY_ID: &str = "https://guichet.example.org/saml";
pub const SAML_ACS_URL: &str = "https://app.example.org/.guichet/callback/idp";

pub const OIDC_ISSUER: &str = "https://op.example.org";
pub const OIDC_CLIENT_ID: &str = "guichet";
/// Also the HS256 key.
pub const OIDC_CLIENT_SECRET: &str = "fuzz-client-secret-0123456789abcdef";
pub const OIDC_NONCE: &str = "fuzz-nonce";
pub const OIDC_ACCESS_TOKEN: &str = "fuzz-access-token";
pub const OIDC_REDIRECT: &str = "https://app.example.org/.guichet/callback/op";
pub const OIDC_RSA_KID: &str = "rsa-1";
pub const OIDC_DISCOVERY: &str = include_str!("../fixtures/oidc-discovery.json");
/// The provider's public signing keys (RS256 `rsa-1`, ES256 `ec-1`).
pub const OIDC_JWKS: &str = include_str!("../fixtures/oidc-jwks.json");
/// The service's decryption keys (FranceConnect+ encrypts to them).
pub const OIDC_ENC_EC_KEY: &str = include_str!("../fixtures/oidc-enc-ec.pem");
pub const OIDC_ENC_RSA_KEY: &str = include_str!("../fixtures/oidc-enc-rsa.pem");
/// A token signed by `rsa-1`, verified against every JWKS the fuzzer makes.
pub const OIDC_SIGNED_TOKEN: &str = include_str!("../fixtures/oidc-signed-token.txt");
