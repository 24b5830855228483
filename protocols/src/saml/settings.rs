//! What one SAML identity provider is, as the gateway's configuration resolves it (keys and
//! certificates already read from their files or environment variables), and the SP keys parsed
//! once from it.
//!
//! The gateway's configuration layer fills [`SamlSettings`]; [`SpKeys`] is what the provider
//! actually signs and decrypts with, parsed at start so that a bad key stops the gateway there
//! rather than at the first login.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use openssl::pkey::{Id, PKey, Private};
use openssl::x509::X509;
use url::Url;

use crate::SetupError;

#[derive(Clone, Debug)]
pub struct SamlSettings {
    pub id: String,
    pub display_name: String,
    /// Our SP entityID: the Issuer of our messages and the Audience every assertion must name.
    pub entity_id: String,
    /// Every app's assertion consumer URL (`{origin}/.guichet/callback/{id}`); the first is the
    /// default in the SP metadata, each published with its index.
    pub acs_urls: Vec<Url>,
    /// `{origin}/.guichet/saml-slo/{id}` for the same apps: the first is published; a logout
    /// message's Destination must be one of them.
    pub slo_urls: Vec<Url>,
    /// Signs AuthnRequests (when asked to) and single logout messages.
    pub signing: Option<SpKeyPair>,
    /// The first is published for encryption; every one is tried for decryption (rotation).
    pub encryption: Vec<SpKeyPair>,
    pub idp_metadata: IdpMetadataSource,
    /// Which entity of the metadata is the IdP: required when it holds several (a federation's
    /// aggregate).
    pub idp_entity_id: Option<String>,
    /// PEM certificates; when not empty, the metadata document must carry a valid enveloped
    /// signature by one of them.
    pub metadata_signing_certificates: Vec<String>,
    /// How often metadata from a URL is fetched again (lazily, at a login).
    pub metadata_refresh: Duration,
    pub binding: AuthnBinding,
    pub sign_requests: SignRequests,
    pub force_authn: bool,
    pub requested_authn_context: Option<RequestedAuthnContext>,
    /// The NameID format asked for in the AuthnRequest and published in the SP metadata.
    pub name_id_format: Option<String>,
    /// Accept IdP-initiated responses (no AuthnRequest, no InResponseTo).
    pub allow_unsolicited: bool,
    /// The app id IdP-initiated logins land on (only with `allow_unsolicited`).
    pub unsolicited_landing: Option<String>,
    pub clock_skew: Duration,
    /// The assertion must carry its own signature (a signed Response around it is not enough).
    pub require_signed_assertion: bool,
    /// Accept rsa-sha1 signatures and sha1 digests.
    pub allow_sha1: bool,
    /// Accept AES-CBC data encryption (padding-oracle prone): AES-GCM only otherwise.
    pub allow_cbc: bool,
    /// Accept the rsa-1_5 key transport (Bleichenbacher prone): RSA-OAEP only otherwise.
    pub allow_rsa1_5: bool,
    /// The attribute (readable name) whose first value is the subject instead of the NameID.
    pub subject_attribute: Option<String>,
    /// Attribute `Name` as the IdP sends it -> readable name; overrides the built-in table.
    pub attribute_names: BTreeMap<String, String>,
    /// Timeout of metadata fetches.
    pub http_timeout: Duration,
}

/// A key and its certificate, both PEM.
#[derive(Clone)]
pub struct SpKeyPair {
    pub private_key_pem: String,
    pub certificate_pem: String,
}

impl std::fmt::Debug for SpKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKeyPair")
            .field("private_key_pem", &"[redacted]")
            .field("certificate_pem", &self.certificate_pem)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdpMetadataSource {
    /// Read once, at start.
    File(PathBuf),
    /// Fetched at start, then again every `metadata_refresh`.
    Url(Url),
}

/// How the AuthnRequest travels to the IdP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthnBinding {
    #[default]
    Redirect,
    Post,
}

/// When AuthnRequests are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignRequests {
    /// When the IdP's metadata says `WantAuthnRequestsSigned="true"`.
    #[default]
    Auto,
    Always,
    Never,
}

/// The RequestedAuthnContext of the AuthnRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedAuthnContext {
    /// `exact`, `minimum`, `maximum` or `better`. With `exact`, the assertion's
    /// AuthnContextClassRef must be one of `class_refs`.
    pub comparison: String,
    pub class_refs: Vec<String>,
}

pub(crate) const COMPARISONS: &[&str] = &["exact", "minimum", "maximum", "better"];

/// The signature algorithm our key signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    /// An EC key, with the byte length of its field (r and s are that long each).
    Ec(usize),
}

/// Our signing key, parsed.
pub(crate) struct SigningKey {
    pub key: PKey<Private>,
    pub kind: KeyKind,
    /// The key in DER, as xmlsec loads it.
    pub key_der: Vec<u8>,
    /// The certificate, base64 DER, as `ds:X509Certificate` holds it.
    pub cert_b64: String,
}

/// The SP's keys, parsed once.
pub(crate) struct SpKeys {
    pub signing: Option<SigningKey>,
    /// Every decryption key, the published one first.
    pub decryption: Vec<PKey<Private>>,
    /// The published encryption certificate, base64 DER.
    pub encryption_cert_b64: Option<String>,
}

impl SpKeys {
    pub fn parse(settings: &SamlSettings) -> Result<Self, SetupError> {
        let signing = settings
            .signing
            .as_ref()
            .map(|pair| signing_key(pair, "signing"))
            .transpose()?;
        let mut decryption = Vec::new();
        let mut encryption_cert_b64 = None;
        for pair in &settings.encryption {
            let key = private_key(&pair.private_key_pem, "encryption")?;
            if key.id() != Id::RSA {
                return Err(setting(
                    "encryption",
                    "encryption keys must be RSA (the IdP encrypts the AES key to it)",
                ));
            }
            let cert = X509::from_pem(pair.certificate_pem.as_bytes()).map_err(|_| {
                setting(
                    "encryption",
                    "the certificate is not a readable PEM certificate",
                )
            })?;
            if !cert.public_key().is_ok_and(|public| public.public_eq(&key)) {
                return Err(setting(
                    "encryption",
                    "a certificate is not its private key's",
                ));
            }
            let cert = certificate_b64(&pair.certificate_pem, "encryption")?;
            encryption_cert_b64.get_or_insert(cert);
            decryption.push(key);
        }
        Ok(Self {
            signing,
            decryption,
            encryption_cert_b64,
        })
    }
}

pub(crate) fn signing_key(pair: &SpKeyPair, name: &'static str) -> Result<SigningKey, SetupError> {
    let key = private_key(&pair.private_key_pem, name)?;
    let kind = match key.id() {
        Id::RSA => KeyKind::Rsa,
        Id::EC => {
            let bits = key
                .ec_key()
                .map_err(|e| setting(name, &format!("unreadable EC key: {e}")))?
                .group()
                .degree();
            KeyKind::Ec((bits as usize).div_ceil(8))
        }
        _ => return Err(setting(name, "the signing key must be RSA or EC")),
    };
    let key_der = key
        .private_key_to_der()
        .map_err(|e| setting(name, &format!("cannot encode the private key: {e}")))?;
    let cert = X509::from_pem(pair.certificate_pem.as_bytes())
        .map_err(|_| setting(name, "the certificate is not a readable PEM certificate"))?;
    let matches = cert.public_key().is_ok_and(|public| public.public_eq(&key));
    if !matches {
        return Err(setting(name, "the certificate is not the private key's"));
    }
    Ok(SigningKey {
        cert_b64: certificate_b64(&pair.certificate_pem, name)?,
        key,
        kind,
        key_der,
    })
}

fn private_key(pem: &str, name: &'static str) -> Result<PKey<Private>, SetupError> {
    PKey::private_key_from_pem(pem.as_bytes())
        .map_err(|_| setting(name, "the private key is not a readable PEM key"))
}

/// The certificate's DER in base64, checked to be a certificate.
fn certificate_b64(pem: &str, name: &'static str) -> Result<String, SetupError> {
    use base64::Engine;
    let cert = X509::from_pem(pem.as_bytes())
        .map_err(|_| setting(name, "the certificate is not a readable PEM certificate"))?;
    let der = cert
        .to_der()
        .map_err(|e| setting(name, &format!("cannot encode the certificate: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der))
}

pub(crate) fn setting(setting: &'static str, reason: &str) -> SetupError {
    SetupError::Setting {
        setting,
        reason: reason.to_owned(),
    }
}
