//! Entry points for the fuzz targets in `fuzz/` (hidden from the documentation: not an API).
//!
//! The SAML modules are private to the crate; these thin wrappers let the fuzzers run the
//! production pre-scan and assertion consumer checks, not a copy of them. Nothing here is used
//! by the provider itself.

use std::collections::BTreeMap;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use time::OffsetDateTime;
use url::Url;

use super::decrypt::DecryptPolicy;
use super::metadata::{parse_idp_metadata, IdpMetadata, MetadataPolicy};
use super::response::{self, Expected, MAX_RESPONSE_BYTES};
use super::xml_guard::{self, MESSAGE_LIMITS, METADATA_LIMITS};

/// The strict pre-scan every SAML message (and, with larger bounds, metadata) goes through:
/// whether `xml` passes it as a message and as metadata.
pub fn xml_guard(xml: &str) -> (bool, bool) {
    (
        xml_guard::parse(xml, &MESSAGE_LIMITS).is_ok(),
        xml_guard::parse(xml, &METADATA_LIMITS).is_ok(),
    )
}

/// The base64 decoding of a `SAMLResponse` form value, bounded as the ACS bounds it.
pub fn decode_form_value(value: &str) -> Option<Vec<u8>> {
    xml_guard::decode_base64(value, MAX_RESPONSE_BYTES).ok()
}

/// IdP metadata as the provider reads it (unsigned accepted), at `now` (Unix seconds).
pub fn idp_metadata(xml: &str, now_unix: i64) -> Result<String, String> {
    let now = OffsetDateTime::from_unix_timestamp(now_unix).map_err(|e| e.to_string())?;
    parse_idp_metadata(
        xml,
        &MetadataPolicy {
            idp_entity_id: None,
            trusted: &[],
            allow_sha1: false,
        },
        now,
    )
    .map(|idp| idp.entity_id)
    .map_err(|e| e.to_string())
}

/// What the assertion consumer service checks a `SAMLResponse` against: the IdP's metadata and
/// the SP's settings, at a fixed instant so that recorded responses stay acceptable.
pub struct AcsCheck {
    idp: IdpMetadata,
    sp_entity_id: String,
    callback_url: Url,
    request_id: Option<String>,
    now: OffsetDateTime,
    decryption_keys: Vec<PKey<Private>>,
    attribute_names: BTreeMap<String, String>,
}

impl AcsCheck {
    /// `decryption_key_pem`: the SP's key for encrypted assertions.
    pub fn new(
        idp_metadata_xml: &str,
        sp_entity_id: &str,
        callback_url: &str,
        request_id: Option<&str>,
        now_unix: i64,
        decryption_key_pem: Option<&str>,
    ) -> Result<AcsCheck, String> {
        let now = OffsetDateTime::from_unix_timestamp(now_unix).map_err(|e| e.to_string())?;
        let idp = parse_idp_metadata(
            idp_metadata_xml,
            &MetadataPolicy {
                idp_entity_id: None,
                trusted: &[],
                allow_sha1: false,
            },
            now,
        )
        .map_err(|e| e.to_string())?;
        let decryption_keys = match decryption_key_pem {
            Some(pem) => {
                vec![PKey::private_key_from_pem(pem.as_bytes()).map_err(|e| e.to_string())?]
            }
            None => Vec::new(),
        };
        Ok(AcsCheck {
            idp,
            sp_entity_id: sp_entity_id.to_owned(),
            callback_url: Url::parse(callback_url).map_err(|e| e.to_string())?,
            request_id: request_id.map(str::to_owned),
            now,
            decryption_keys,
            attribute_names: BTreeMap::new(),
        })
    }

    /// The ACS's checks of a `SAMLResponse` form value, in the provider's default settings:
    /// the NameID of the login, or why it is refused.
    pub fn verify(&self, encoded: &str) -> Result<String, String> {
        response::verify(
            encoded,
            &Expected {
                idp: &self.idp,
                sp_entity_id: &self.sp_entity_id,
                callback_url: &self.callback_url,
                request_id: self.request_id.as_deref(),
                skew: Duration::from_secs(60),
                now: self.now,
                require_signed_assertion: false,
                allow_sha1: false,
                decrypt: DecryptPolicy {
                    allow_cbc: false,
                    allow_rsa1_5: false,
                },
                decryption_keys: &self.decryption_keys,
                requested_authn_context: None,
                attribute_names: &self.attribute_names,
            },
        )
        .map(|login| login.name_id.value)
        .map_err(|e| e.to_string())
    }
}
