//! The IdP's metadata: read, its signature checked when the configuration asks for one, the
//! IdP's entity picked (a federation's aggregate holds hundreds), and what Guichet needs taken
//! from it: the signing certificates every IdP signature is checked with, and the SSO and SLO
//! endpoints.
//!
//! Metadata is the trust anchor of SAML: an IdP without a signing certificate would make every
//! later check meaningless (samael would verify nothing), so such metadata is refused outright.
//!
//! Signed metadata (`metadata_signing_certificates` set): the root's signature must be the
//! document's only one, and what is read is what was signed: the root as xmlsec's pre-digest
//! data gives it back (see [`signature::verify_signed_root`]), never the document as received.
//! Such a document must say how long it holds (`validUntil` on its root): a federation's
//! signature on an aggregate without it would vouch for its keys forever, so a replayed old
//! aggregate (with keys since revoked) would be as good as today's.
//!
//! `validUntil` (the earliest of the root's, the entity's and its IDPSSODescriptor's) is checked
//! when the metadata is read and again at every use ([`IdpMetadata::check_current`]): expired
//! metadata refuses logins until a refresh brings a current document. `cacheDuration` is
//! ignored: `metadata_refresh` says when a URL source is fetched again (and it is fetched again
//! by `validUntil` at the latest).

use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use samael::crypto::CertificateDer;
use time::OffsetDateTime;
use url::Url;

use super::instant::parse_instant;
use super::signature::{self, SignatureError};
use super::xml_guard::{
    self, clip, Element, XmlError, METADATA_LIMITS, NS_DSIG, NS_METADATA, NS_PROTOCOL,
};

pub(crate) const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub(crate) const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// Largest metadata document read (federation aggregates are large).
pub(crate) const MAX_METADATA_BYTES: usize = 10 * 1024 * 1024;

/// An IdP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub location: Url,
    /// Where responses to requests sent to `location` go (SLO), when not `location` itself.
    pub response_location: Option<Url>,
}

/// One service's endpoints, by binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Services {
    pub redirect: Option<Endpoint>,
    pub post: Option<Endpoint>,
}

/// What Guichet uses of the IdP's metadata.
pub(crate) struct IdpMetadata {
    pub entity_id: String,
    /// For XML signatures (xmlsec).
    pub signing_certs: Vec<CertificateDer>,
    /// The same keys, for HTTP-Redirect query signatures.
    pub signing_keys: Vec<PKey<Public>>,
    pub want_authn_requests_signed: bool,
    pub sso: Services,
    pub slo: Services,
    /// The earliest `validUntil` of the document's root, the entity and its descriptor.
    pub valid_until: Option<OffsetDateTime>,
}

impl IdpMetadata {
    /// Refuses metadata whose `validUntil` has passed.
    pub fn check_current(&self, now: OffsetDateTime) -> Result<(), MetadataError> {
        match self.valid_until {
            Some(until) if until <= now => Err(MetadataError::Expired(
                super::instant::format_instant(until),
            )),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for IdpMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpMetadata")
            .field("entity_id", &self.entity_id)
            .field("signing_certs", &self.signing_certs.len())
            .field(
                "want_authn_requests_signed",
                &self.want_authn_requests_signed,
            )
            .field("sso", &self.sso)
            .field("slo", &self.slo)
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

/// Why metadata cannot be used; [`MetadataError::setting`] names the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MetadataError {
    #[error("cannot read the metadata: {0}")]
    Read(String),
    #[error("the metadata is larger than {MAX_METADATA_BYTES} bytes")]
    TooLarge,
    #[error("the metadata: {0}")]
    Xml(XmlError),
    #[error("the document is not SAML metadata (EntityDescriptor or EntitiesDescriptor)")]
    NotMetadata,
    #[error("a metadata signing certificate is not a readable PEM certificate")]
    BadTrustedCertificate,
    #[error("the metadata signature: {0}")]
    Signature(SignatureError),
    #[error("the IdP's metadata expired (validUntil {}): it must be refreshed", clip(.0))]
    Expired(String),
    #[error(
        "signed metadata without validUntil on its root: the signature would vouch for it forever"
    )]
    NoValidUntil,
    #[error("the metadata holds {0} SAML 2.0 IdPs: say which with idp_entity_id")]
    SeveralIdps(usize),
    #[error("no entity {:?} in the metadata", clip(.0))]
    EntityNotFound(String),
    #[error("entity {:?} is not a SAML 2.0 IdP (no IDPSSODescriptor for SAML 2.0)", clip(.0))]
    NotAnIdp(String),
    #[error("the metadata holds no SAML 2.0 IdP")]
    NoIdp,
    #[error("the IdP has no signing certificate: its signatures could not be checked")]
    NoSigningCertificate,
    #[error("an IdP signing certificate is unreadable")]
    BadCertificate,
    #[error("the IdP has no SingleSignOnService for HTTP-Redirect or HTTP-POST")]
    NoSso,
    #[error("{} is not a URL: {}", .0, clip(.1))]
    BadLocation(&'static str, String),
}

impl MetadataError {
    /// The setting an operator must look at.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::BadTrustedCertificate | Self::Signature(_) => "metadata_signing_certificates",
            Self::SeveralIdps(_) | Self::EntityNotFound(_) | Self::NotAnIdp(_) => "idp_entity_id",
            _ => "idp_metadata",
        }
    }
}

/// What reading the metadata needs from the settings.
pub(crate) struct MetadataPolicy<'a> {
    pub idp_entity_id: Option<&'a str>,
    /// DER of the certificates the document must be signed by (none: unsigned is fine).
    pub trusted: &'a [CertificateDer],
    pub allow_sha1: bool,
}

/// The PEM certificates of `metadata_signing_certificates`, as DER.
pub(crate) fn trusted_certificates(pems: &[String]) -> Result<Vec<CertificateDer>, MetadataError> {
    pems.iter()
        .map(|pem| {
            X509::from_pem(pem.as_bytes())
                .and_then(|cert| cert.to_der())
                .map(CertificateDer::from)
                .map_err(|_| MetadataError::BadTrustedCertificate)
        })
        .collect()
}

/// Reads IdP metadata (see the module documentation).
pub(crate) fn parse_idp_metadata(
    xml: &str,
    policy: &MetadataPolicy<'_>,
    now: OffsetDateTime,
) -> Result<IdpMetadata, MetadataError> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge);
    }
    let received = xml_guard::parse(xml, &METADATA_LIMITS).map_err(MetadataError::Xml)?;
    let is_entity = received.is(NS_METADATA, "EntityDescriptor");
    if !is_entity && !received.is(NS_METADATA, "EntitiesDescriptor") {
        return Err(MetadataError::NotMetadata);
    }
    // Signed: only what the signature covers is read from here on.
    let root = if policy.trusted.is_empty() {
        received
    } else {
        let signed = signature::verify_signed_root(
            xml,
            &received,
            policy.trusted,
            policy.allow_sha1,
            &METADATA_LIMITS,
        )
        .map_err(MetadataError::Signature)?;
        if signed.attr("validUntil").is_none() {
            return Err(MetadataError::NoValidUntil);
        }
        signed
    };
    let mut valid_until = check_valid_until(&root, now, None)?;

    let mut entities = Vec::new();
    collect_entities(&root, &mut entities);
    let entity = match policy.idp_entity_id {
        Some(wanted) => {
            let entity = entities
                .iter()
                .find(|e| e.attr("entityID") == Some(wanted))
                .ok_or_else(|| MetadataError::EntityNotFound(wanted.to_owned()))?;
            if idp_descriptor(entity).is_none() {
                return Err(MetadataError::NotAnIdp(wanted.to_owned()));
            }
            *entity
        }
        None => {
            let idps: Vec<&Element> = entities
                .iter()
                .copied()
                .filter(|e| idp_descriptor(e).is_some())
                .collect();
            match idps.as_slice() {
                [] => return Err(MetadataError::NoIdp),
                [one] => *one,
                several => return Err(MetadataError::SeveralIdps(several.len())),
            }
        }
    };
    valid_until = check_valid_until(entity, now, valid_until)?;
    let descriptor = idp_descriptor(entity).ok_or(MetadataError::NoIdp)?;
    valid_until = check_valid_until(descriptor, now, valid_until)?;
    let entity_id = entity
        .attr("entityID")
        .filter(|id| !id.is_empty())
        .ok_or(MetadataError::NoIdp)?
        .to_owned();

    let mut signing_certs = Vec::new();
    let mut signing_keys = Vec::new();
    for key_descriptor in descriptor.children_named(NS_METADATA, "KeyDescriptor") {
        if !matches!(key_descriptor.attr("use"), None | Some("signing")) {
            continue;
        }
        let certificates = key_descriptor
            .children_named(NS_DSIG, "KeyInfo")
            .flat_map(|info| info.children_named(NS_DSIG, "X509Data"))
            .flat_map(|data| data.children_named(NS_DSIG, "X509Certificate"));
        for certificate in certificates {
            let der = xml_guard::decode_base64(&certificate.text(), 64 * 1024)
                .map_err(|_| MetadataError::BadCertificate)?;
            let cert = X509::from_der(&der).map_err(|_| MetadataError::BadCertificate)?;
            let key = cert
                .public_key()
                .map_err(|_| MetadataError::BadCertificate)?;
            signing_certs.push(CertificateDer::from(der));
            signing_keys.push(key);
        }
    }
    if signing_certs.is_empty() {
        return Err(MetadataError::NoSigningCertificate);
    }
    let sso = services(descriptor, "SingleSignOnService")?;
    if sso.redirect.is_none() && sso.post.is_none() {
        return Err(MetadataError::NoSso);
    }
    Ok(IdpMetadata {
        entity_id,
        signing_certs,
        signing_keys,
        want_authn_requests_signed: matches!(
            descriptor.attr("WantAuthnRequestsSigned"),
            Some("true" | "1")
        ),
        sso,
        slo: services(descriptor, "SingleLogoutService")?,
        valid_until,
    })
}

/// Every EntityDescriptor, however deeply EntitiesDescriptors nest.
fn collect_entities<'a>(element: &'a Element, out: &mut Vec<&'a Element>) {
    if element.is(NS_METADATA, "EntityDescriptor") {
        out.push(element);
    } else if element.is(NS_METADATA, "EntitiesDescriptor") {
        for child in element.elements() {
            collect_entities(child, out);
        }
    }
}

/// The entity's IDPSSODescriptor for SAML 2.0.
fn idp_descriptor(entity: &Element) -> Option<&Element> {
    entity
        .children_named(NS_METADATA, "IDPSSODescriptor")
        .find(|d| {
            d.attr("protocolSupportEnumeration")
                .is_some_and(|p| p.split_ascii_whitespace().any(|p| p == NS_PROTOCOL))
        })
}

/// `validUntil`, when present, must not have passed; returns the earlier of it and `earliest`.
fn check_valid_until(
    element: &Element,
    now: OffsetDateTime,
    earliest: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, MetadataError> {
    let Some(until) = element.attr("validUntil") else {
        return Ok(earliest);
    };
    let parsed = parse_instant(until)
        .map_err(|_| MetadataError::Expired(format!("{until:?}, unreadable")))?;
    if parsed <= now {
        return Err(MetadataError::Expired(until.to_owned()));
    }
    Ok(Some(earliest.map_or(parsed, |e| e.min(parsed))))
}

/// The first endpoint of each binding among the descriptor's `name` elements.
fn services(descriptor: &Element, name: &'static str) -> Result<Services, MetadataError> {
    let mut services = Services::default();
    for service in descriptor.children_named(NS_METADATA, name) {
        let slot = match service.attr("Binding") {
            Some(BINDING_REDIRECT) => &mut services.redirect,
            Some(BINDING_POST) => &mut services.post,
            _ => continue,
        };
        if slot.is_some() {
            continue;
        }
        let url = |value: &str| {
            Url::parse(value).map_err(|e| MetadataError::BadLocation(name, e.to_string()))
        };
        let location = url(service.attr("Location").unwrap_or_default())?;
        let response_location = service.attr("ResponseLocation").map(url).transpose()?;
        *slot = Some(Endpoint {
            location,
            response_location,
        });
    }
    Ok(services)
}
