//! A `saml` provider in the configuration (see docs/saml.md): Guichet as a SAML 2.0 service
//! provider in front of one IdP, picked by entityID when its metadata is a federation's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use guichet_protocols::saml::{
    AuthnBinding, IdpMetadataSource, RequestedAuthnContext, SamlSettings, SignRequests, SpKeyPair,
};
use serde::Deserialize;
use url::Url;

use super::directory::PivotConfig;
use super::model::AppConfig;
use super::{ConfigError, SecretSource};

/// The path of the SP's SingleLogoutService under each app's origin (a provider endpoint).
pub const SLO_ENDPOINT: &str = "saml-slo";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlProviderConfig {
    pub id: String,
    #[serde(default = "default_name")]
    pub display_name: String,
    /// Guichet's entityID at this IdP (an https URL by convention, e.g.
    /// `https://guichet.example.org/saml`). Audience of every assertion accepted.
    pub entity_id: String,
    /// The IdP's metadata: `{ file: path }` or `{ url: https://... }` (a federation's aggregate
    /// is fine with `idp_entity_id`).
    pub idp_metadata: MetadataLocation,
    /// Which entity of the metadata is the IdP; required when it holds several.
    #[serde(default)]
    pub idp_entity_id: Option<String>,
    /// When set, the metadata document must carry a valid signature by one of these
    /// certificates (PEM), as federations publish it.
    #[serde(default)]
    pub metadata_signing_certificates: Vec<SecretSource>,
    /// How often metadata fetched from a URL is fetched again (a failure keeps the last good).
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub metadata_refresh: Duration,
    /// The SP's signing key and certificate (AuthnRequests, single logout).
    #[serde(default)]
    pub signing: Option<KeyPairConfig>,
    /// Keys the IdP encrypts assertions to; the first is published, all decrypt (rotation).
    #[serde(default)]
    pub encryption: Vec<KeyPairConfig>,
    /// How the AuthnRequest travels: `redirect` (default) or `post`.
    #[serde(default)]
    pub binding: BindingConfig,
    /// `auto` (default: when the IdP's metadata asks for signed requests), `always`, `never`.
    #[serde(default)]
    pub sign_requests: SignRequestsConfig,
    #[serde(default)]
    pub force_authn: bool,
    #[serde(default)]
    pub requested_authn_context: Option<RequestedAuthnContextConfig>,
    /// The NameID format asked for (e.g. `urn:oasis:names:tc:SAML:2.0:nameid-format:persistent`).
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// Accept IdP-initiated responses (no AuthnRequest); they land on `unsolicited_landing`.
    #[serde(default)]
    pub allow_unsolicited: bool,
    /// The app id IdP-initiated logins land on (required with `allow_unsolicited`).
    #[serde(default)]
    pub unsolicited_landing: Option<String>,
    /// Clock difference tolerated with the IdP on every time window.
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Refuse a response whose assertion carries no signature of its own (default: a signed
    /// Response covering the assertion suffices).
    #[serde(default)]
    pub require_signed_assertion: bool,
    /// Accept rsa-sha1 signatures and sha1 digests (refused by default).
    #[serde(default)]
    pub allow_sha1: bool,
    /// Accept assertions encrypted with AES-CBC (refused by default: AES-GCM only).
    #[serde(default)]
    pub allow_cbc: bool,
    /// Accept the rsa-1_5 key transport (refused by default: RSA-OAEP only).
    #[serde(default)]
    pub allow_rsa1_5: bool,
    /// The attribute (readable name) to use as the subject instead of the NameID.
    #[serde(default)]
    pub subject_attribute: Option<String>,
    /// Extra attribute names, `Name` as sent by the IdP -> readable name (the usual `urn:oid:`
    /// names are built in).
    #[serde(default)]
    pub attribute_names: BTreeMap<String, String>,
    /// Timeout of metadata fetches.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How these logins are linked to directory people.
    #[serde(default)]
    pub pivot: Option<PivotConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum MetadataLocation {
    File { file: PathBuf },
    Url { url: Url },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairConfig {
    /// The private key (PEM): `{ file: ... }` or `{ env: ... }` (a Kubernetes Secret).
    pub private_key: SecretSource,
    /// Its certificate (PEM), published in the SP metadata.
    pub certificate: SecretSource,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingConfig {
    #[default]
    Redirect,
    Post,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignRequestsConfig {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedAuthnContextConfig {
    /// `exact` (default), `minimum`, `maximum` or `better`.
    #[serde(default = "default_comparison")]
    pub comparison: String,
    pub class_refs: Vec<String>,
}

fn default_name() -> String {
    "SAML".into()
}

fn default_refresh() -> Duration {
    Duration::from_secs(3600)
}

fn default_skew() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_comparison() -> String {
    "exact".into()
}

impl SamlProviderConfig {
    /// Checks the provider against the apps that use it and reads its keys: every error names
    /// the field.
    pub fn resolve(&self, at: &str, apps: &[AppConfig]) -> Result<SamlSettings, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        if self.entity_id.trim().is_empty() || self.entity_id.len() > 1024 {
            return Err(ConfigError::new(
                field("entity_id"),
                "required: the SP's entityID (1 to 1024 characters)",
            ));
        }
        let (acs_urls, slo_urls) = self
            .endpoints(apps)
            .map_err(|reason| ConfigError::new(field("id"), reason))?;
        let idp_metadata = match &self.idp_metadata {
            MetadataLocation::File { file } => IdpMetadataSource::File(file.clone()),
            MetadataLocation::Url { url } => {
                let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
                if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                    return Err(ConfigError::new(
                        field("idp_metadata.url"),
                        "must be https (http only on loopback, for tests)",
                    ));
                }
                IdpMetadataSource::Url(url.clone())
            }
        };
        if self.allow_unsolicited {
            let landing = self.unsolicited_landing.as_deref().ok_or_else(|| {
                ConfigError::new(
                    field("unsolicited_landing"),
                    "required with allow_unsolicited: the app IdP-initiated logins land on",
                )
            })?;
            if !apps
                .iter()
                .any(|app| app.id == landing && app.providers.contains(&self.id))
            {
                return Err(ConfigError::new(
                    field("unsolicited_landing"),
                    format!("no app {landing:?} uses provider {:?}", self.id),
                ));
            }
        }
        if self.clock_skew > Duration::from_secs(600) {
            return Err(ConfigError::new(
                field("clock_skew"),
                "at most 10m (a wider window lets stale assertions in)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(field("timeout"), "must be more than 0s"));
        }
        if self.metadata_refresh < Duration::from_secs(60) {
            return Err(ConfigError::new(field("metadata_refresh"), "at least 1m"));
        }
        let requested_authn_context = match &self.requested_authn_context {
            Some(context) => {
                if !matches!(
                    context.comparison.as_str(),
                    "exact" | "minimum" | "maximum" | "better"
                ) {
                    return Err(ConfigError::new(
                        field("requested_authn_context.comparison"),
                        "one of exact, minimum, maximum, better",
                    ));
                }
                if context.class_refs.is_empty() {
                    return Err(ConfigError::new(
                        field("requested_authn_context.class_refs"),
                        "at least one AuthnContextClassRef",
                    ));
                }
                Some(RequestedAuthnContext {
                    comparison: context.comparison.clone(),
                    class_refs: context.class_refs.clone(),
                })
            }
            None => None,
        };
        let signing = self
            .signing
            .as_ref()
            .map(|pair| pair.resolve(&field("signing")))
            .transpose()?;
        if signing.is_none() && matches!(self.sign_requests, SignRequestsConfig::Always) {
            return Err(ConfigError::new(
                field("signing"),
                "required with sign_requests: always",
            ));
        }
        let encryption = self
            .encryption
            .iter()
            .enumerate()
            .map(|(i, pair)| pair.resolve(&field(&format!("encryption[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let metadata_signing_certificates = self
            .metadata_signing_certificates
            .iter()
            .enumerate()
            .map(|(i, source)| {
                read(
                    source,
                    &field(&format!("metadata_signing_certificates[{i}]")),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SamlSettings {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            entity_id: self.entity_id.clone(),
            acs_urls,
            slo_urls,
            signing,
            encryption,
            idp_metadata,
            idp_entity_id: self.idp_entity_id.clone(),
            metadata_signing_certificates,
            metadata_refresh: self.metadata_refresh,
            binding: match self.binding {
                BindingConfig::Redirect => AuthnBinding::Redirect,
                BindingConfig::Post => AuthnBinding::Post,
            },
            sign_requests: match self.sign_requests {
                SignRequestsConfig::Auto => SignRequests::Auto,
                SignRequestsConfig::Always => SignRequests::Always,
                SignRequestsConfig::Never => SignRequests::Never,
            },
            force_authn: self.force_authn,
            requested_authn_context,
            name_id_format: self.name_id_format.clone(),
            allow_unsolicited: self.allow_unsolicited,
            unsolicited_landing: self
                .unsolicited_landing
                .clone()
                .filter(|_| self.allow_unsolicited),
            clock_skew: self.clock_skew,
            require_signed_assertion: self.require_signed_assertion,
            allow_sha1: self.allow_sha1,
            allow_cbc: self.allow_cbc,
            allow_rsa1_5: self.allow_rsa1_5,
            subject_attribute: self.subject_attribute.clone(),
            attribute_names: self.attribute_names.clone(),
            http_timeout: self.timeout,
        })
    }

    /// The ACS and SLO URLs: one of each per distinct origin of the apps using this provider,
    /// in the apps' order (the first is the default in the SP metadata).
    fn endpoints(&self, apps: &[AppConfig]) -> Result<(Vec<Url>, Vec<Url>), String> {
        let mut origins: Vec<String> = Vec::new();
        for app in apps.iter().filter(|app| app.providers.contains(&self.id)) {
            let origin = app.url.origin().ascii_serialization();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        if origins.is_empty() {
            return Err(format!(
                "no app uses provider {:?}: its assertion consumer URL comes from the apps' URLs",
                self.id
            ));
        }
        let url = |origin: &str, path: String| {
            Url::parse(&format!("{origin}{path}")).map_err(|e| format!("{origin}{path}: {e}"))
        };
        let acs = origins
            .iter()
            .map(|origin| url(origin, format!("/.guichet/callback/{}", self.id)))
            .collect::<Result<Vec<_>, _>>()?;
        let slo = origins
            .iter()
            .map(|origin| url(origin, format!("/.guichet/{SLO_ENDPOINT}/{}", self.id)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((acs, slo))
    }
}

impl KeyPairConfig {
    fn resolve(&self, at: &str) -> Result<SpKeyPair, ConfigError> {
        Ok(SpKeyPair {
            private_key_pem: read(&self.private_key, &format!("{at}.private_key"))?,
            certificate_pem: read(&self.certificate, &format!("{at}.certificate"))?,
        })
    }
}

fn read(source: &SecretSource, at: &str) -> Result<String, ConfigError> {
    source
        .resolve()
        .map(|secret| secret.expose().to_owned())
        .map_err(|e| ConfigError::new(at, e.to_string()))
}
