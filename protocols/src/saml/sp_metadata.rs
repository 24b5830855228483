//! Guichet's own SP metadata: what the IdP's administrator registers. Built from the settings
//! alone (no IdP needed), so `guichet saml metadata` can print it before the IdP exists, and
//! served at `/.guichet/saml-metadata/{id}`.

use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{
    EncryptionMethod, Endpoint, EntityDescriptor, IndexedEndpoint, KeyDescriptor, SpSsoDescriptor,
};
use samael::traits::ToXml;

use super::metadata::{BINDING_POST, BINDING_REDIRECT};
use super::settings::{setting, SamlSettings, SignRequests, SpKeys};
use super::xml_guard::NS_PROTOCOL;
use crate::SetupError;

/// Data encryption the IdP may use towards us, preferred first (GCM only: CBC is accepted
/// only when configured, and never advertised).
const DATA_ENCRYPTION: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
];
/// Key transport the IdP may use towards us.
const KEY_TRANSPORT: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

/// The SP metadata XML for these settings.
pub fn sp_metadata_xml(settings: &SamlSettings) -> Result<String, SetupError> {
    let keys = SpKeys::parse(settings)?;
    sp_metadata(settings, &keys)
}

pub(crate) fn sp_metadata(settings: &SamlSettings, keys: &SpKeys) -> Result<String, SetupError> {
    if settings.acs_urls.is_empty() {
        return Err(setting("acs_urls", "at least one assertion consumer URL"));
    }
    let key_info = |cert: &str| KeyInfo {
        id: None,
        x509_data: Some(X509Data {
            certificates: vec![cert.to_owned()],
        }),
    };
    let mut key_descriptors = Vec::new();
    if let Some(signing) = &keys.signing {
        key_descriptors.push(KeyDescriptor {
            key_use: Some("signing".into()),
            key_info: key_info(&signing.cert_b64),
            encryption_methods: None,
        });
    }
    if let Some(cert) = &keys.encryption_cert_b64 {
        key_descriptors.push(KeyDescriptor {
            key_use: Some("encryption".into()),
            key_info: key_info(cert),
            encryption_methods: Some(
                DATA_ENCRYPTION
                    .iter()
                    .chain(KEY_TRANSPORT)
                    .map(|algorithm| EncryptionMethod {
                        algorithm: (*algorithm).to_owned(),
                    })
                    .collect(),
            ),
        });
    }
    let single_logout_services = settings.slo_urls.first().map(|slo| {
        [BINDING_REDIRECT, BINDING_POST]
            .into_iter()
            .map(|binding| Endpoint {
                binding: binding.to_owned(),
                location: slo.to_string(),
                response_location: None,
            })
            .collect()
    });
    let descriptor = SpSsoDescriptor {
        protocol_support_enumeration: Some(NS_PROTOCOL.to_owned()),
        authn_requests_signed: Some(
            keys.signing.is_some() && settings.sign_requests != SignRequests::Never,
        ),
        // Asked for even when a signed Response suffices: it costs the IdP nothing.
        want_assertions_signed: Some(true),
        key_descriptors: (!key_descriptors.is_empty()).then_some(key_descriptors),
        single_logout_services,
        name_id_formats: settings.name_id_format.clone().map(|format| vec![format]),
        assertion_consumer_services: settings
            .acs_urls
            .iter()
            .enumerate()
            .map(|(index, url)| IndexedEndpoint {
                binding: BINDING_POST.to_owned(),
                location: url.to_string(),
                response_location: None,
                index,
                is_default: (index == 0).then_some(true),
            })
            .collect(),
        ..SpSsoDescriptor::default()
    };
    let entity = EntityDescriptor {
        entity_id: Some(settings.entity_id.clone()),
        sp_sso_descriptors: Some(vec![descriptor]),
        ..EntityDescriptor::default()
    };
    entity
        .to_string()
        .map_err(|e| setting("entity_id", &format!("cannot write the SP metadata: {e}")))
}
