//! The assertion consumer service: a SAML Response (Web Browser SSO profile, SAML profiles
//! §4.1.4.3) checked strictly, in this order, each step bounded and panic-free:
//!
//! 1. transport and shape: base64 of at most 256 KiB, UTF-8, the strict pre-scan of
//!    [`xml_guard`], a protocol `Response` at the root; a non-Success status ends here as a
//!    denial; exactly one `Assertion`/`EncryptedAssertion` in the whole document (Extensions,
//!    `ds:Object` and nested ones counted), a direct child of the Response;
//! 2. signatures: shapes and algorithms, then xmlsec with the IdP's metadata certificates
//!    only; what is read afterwards comes from the verified, reduced document (response-level
//!    fields may come from the original when only the assertion is signed: the assertion's own
//!    Recipient and InResponseTo bind it then);
//! 3. an encrypted assertion is decrypted ([`decrypt`]), pre-scanned again, and its own
//!    signature verified when it has one: it must be covered by the Response's signature or
//!    its own;
//! 4. the checks: Destination, InResponseTo, Issuers, versions and times, the bearer
//!    SubjectConfirmation (Recipient, NotOnOrAfter, InResponseTo), Conditions with a required
//!    AudienceRestriction naming us, the AuthnStatement.
//!
//! Replay (step 5) needs the shared store: [`super::SamlProvider`] does it with the IDs and
//! lifetime returned here, after every signature check. That lifetime is bounded: a bearer
//! confirmation valid for more than [`MAX_CONFIRMATION_VALIDITY`] from now, Conditions valid for
//! more than [`MAX_CONDITIONS_VALIDITY`], or an IssueInstant older than [`MAX_ISSUE_AGE`] are
//! refused, and the proofs are kept until the earliest NotOnOrAfter (past it the response is
//! refused as expired anyway).
//!
//! Every value an error quotes from the message is cut to 256 characters
//! ([`xml_guard::clip`]): unsigned content reaches the audit log through these reasons.

use std::collections::BTreeMap;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use url::Url;

use super::attributes;
use super::decrypt::{self, DecryptError, DecryptPolicy};
use super::instant::{minus, parse_instant, plus};
use super::metadata::IdpMetadata;
use super::request::{NameId, STATUS_SUCCESS};
use super::settings::RequestedAuthnContext;
use super::signature::{self, SignatureError};
use super::xml_guard::{
    self, clip, clip_list, clip_opt, Element, EncodingError, XmlError, MESSAGE_LIMITS,
    NS_ASSERTION, NS_DSIG, NS_PROTOCOL,
};
use crate::ProviderError;

/// Largest decoded SAMLResponse.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const STATUS_PREFIX: &str = "urn:oasis:names:tc:SAML:2.0:status:";

/// Longest a bearer SubjectConfirmationData may still be valid when the response arrives (its
/// NotOnOrAfter minus now, beyond the clock skew). IdPs give a few minutes (Shibboleth, ADFS,
/// Entra ID, Okta: 5); an hour leaves room for any of them. This bounds how long a response
/// can be used, so how long its IDs stay in the replay cache.
pub(crate) const MAX_CONFIRMATION_VALIDITY: Duration = Duration::from_secs(3600);

/// Longest the assertion's Conditions may still be valid (NotOnOrAfter minus now). Larger than
/// the confirmation's: Entra ID gives 70 minutes, ADFS its relying party's token lifetime (an
/// hour by default, a working day where configured so). The replay cache does not depend on it
/// (the confirmation expires first), it only refuses the absurd.
pub(crate) const MAX_CONDITIONS_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Oldest IssueInstant accepted (Response and Assertion), beyond the clock skew.
pub(crate) const MAX_ISSUE_AGE: Duration = Duration::from_secs(3600);

/// What the response must match.
pub(crate) struct Expected<'a> {
    pub idp: &'a IdpMetadata,
    pub sp_entity_id: &'a str,
    pub callback_url: &'a Url,
    /// The AuthnRequest's ID; `None` for an unsolicited response.
    pub request_id: Option<&'a str>,
    pub skew: Duration,
    pub now: OffsetDateTime,
    pub require_signed_assertion: bool,
    pub allow_sha1: bool,
    pub decrypt: DecryptPolicy,
    pub decryption_keys: &'a [PKey<Private>],
    pub requested_authn_context: Option<&'a RequestedAuthnContext>,
    pub attribute_names: &'a BTreeMap<String, String>,
}

/// A login the IdP vouches for, every check passed but replay.
#[derive(Debug)]
pub(crate) struct VerifiedLogin {
    pub response_id: String,
    pub assertion_id: String,
    pub name_id: NameId,
    pub session_index: Option<String>,
    pub auth_instant: OffsetDateTime,
    pub authn_context_class_ref: Option<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The earliest NotOnOrAfter (the confirmation's, the Conditions'): the response is refused
    /// as expired past it, so the proofs are remembered until then (plus the skew); never more
    /// than [`MAX_CONFIRMATION_VALIDITY`] from now.
    pub valid_until: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseError {
    #[error("SAMLResponse is {0}")]
    Encoding(EncodingError),
    #[error("SAMLResponse is not UTF-8")]
    NotUtf8,
    #[error("SAMLResponse: {0}")]
    Xml(XmlError),
    #[error("the message is not a SAML 2.0 protocol Response")]
    NotAResponse,
    #[error("the IdP answered {}: {:?}", clip(code), clip_opt(message))]
    Status {
        code: String,
        message: Option<String>,
    },
    #[error("the Response holds {0} assertions (exactly one is accepted)")]
    AssertionCount(usize),
    #[error("the assertion is not a direct child of the Response")]
    AssertionMisplaced,
    #[error("signature: {0}")]
    Signature(SignatureError),
    #[error("unsigned: neither the Response nor its assertion carries a signature")]
    Unsigned,
    #[error("the signature covers {}, neither the Response nor its assertion", clip(.0))]
    SignedOther(String),
    #[error("the assertion carries no signature of its own (require_signed_assertion)")]
    AssertionUnsigned,
    #[error("encrypted assertion: {0}")]
    Decrypt(DecryptError),
    #[error("{0} missing")]
    Missing(&'static str),
    #[error("{0} Version is not 2.0")]
    Version(&'static str),
    #[error("{0} is not a UTC xs:dateTime")]
    BadTime(&'static str),
    #[error("{0} issued in the future")]
    IssuedInFuture(&'static str),
    #[error("Destination {:?} is not this callback URL", clip(.0))]
    Destination(String),
    #[error("InResponseTo {:?} does not answer this login's AuthnRequest", clip_opt(.0))]
    InResponseTo(Option<String>),
    #[error("an unsolicited response carries InResponseTo {:?}", clip(.0))]
    UnsolicitedInResponseTo(String),
    #[error("{which} Issuer {:?} is not the IdP", clip(got))]
    Issuer { which: &'static str, got: String },
    #[error("{0} Issuer Format is not the entity format")]
    IssuerFormat(&'static str),
    #[error("the NameID is encrypted (EncryptedID is not supported)")]
    EncryptedId,
    #[error("no bearer SubjectConfirmation")]
    NoBearer,
    #[error("SubjectConfirmationData Recipient {:?} is not this callback URL", clip_opt(.0))]
    Recipient(Option<String>),
    #[error("SubjectConfirmationData has no NotOnOrAfter")]
    NoNotOnOrAfter,
    #[error("{0} expired")]
    Expired(&'static str),
    #[error("{0} not yet valid")]
    NotYetValid(&'static str),
    #[error("{0} is valid for longer than {1} minutes from now: refused")]
    ValidTooLong(&'static str, u64),
    #[error("{0} was issued more than {1} minutes ago")]
    IssuedTooLongAgo(&'static str, u64),
    #[error("the Conditions have no AudienceRestriction")]
    NoAudienceRestriction,
    #[error("an AudienceRestriction does not name this SP (audiences {})", clip_list(.0))]
    Audience(Vec<String>),
    #[error("unknown Condition {:?}", clip(.0))]
    UnknownCondition(String),
    #[error("AuthnContextClassRef {:?} is not one of those requested", clip_opt(.0))]
    AuthnContext(Option<String>),
}

impl From<ResponseError> for ProviderError {
    fn from(error: ResponseError) -> Self {
        use ResponseError as E;
        let reason = error.to_string();
        match error {
            E::Encoding(_) | E::NotUtf8 => ProviderError::MalformedCallback(reason),
            E::Xml(e) if !e.is_attack() => ProviderError::MalformedCallback(reason),
            E::Status { code, message } => ProviderError::Denied {
                error: clip(&code).into_owned(),
                description: message.map(|m| clip(&m).into_owned()),
            },
            E::Destination(_)
            | E::InResponseTo(_)
            | E::UnsolicitedInResponseTo(_)
            | E::Recipient(_)
            | E::Expired(_)
            | E::NotYetValid(_)
            | E::IssuedInFuture(_)
            | E::IssuedTooLongAgo(..)
            | E::Audience(_)
            | E::AuthnContext(_) => ProviderError::InvalidProof(reason),
            _ => ProviderError::Rejected(reason),
        }
    }
}

fn is_assertion_like(e: &Element) -> bool {
    e.name == "Assertion" || e.name == "EncryptedAssertion"
}

fn is_assertion(e: &Element) -> bool {
    e.is(NS_ASSERTION, "Assertion")
}

fn is_encrypted_assertion(e: &Element) -> bool {
    e.is(NS_ASSERTION, "EncryptedAssertion")
}

/// Checks a `SAMLResponse` form value (see the module documentation).
pub(crate) fn verify(
    encoded: &str,
    expected: &Expected<'_>,
) -> Result<VerifiedLogin, ResponseError> {
    // 1. Transport and shape.
    let bytes =
        xml_guard::decode_base64(encoded, MAX_RESPONSE_BYTES).map_err(ResponseError::Encoding)?;
    let xml = String::from_utf8(bytes).map_err(|_| ResponseError::NotUtf8)?;
    let document = xml_guard::parse(&xml, &MESSAGE_LIMITS).map_err(ResponseError::Xml)?;
    if !document.is(NS_PROTOCOL, "Response") {
        return Err(ResponseError::NotAResponse);
    }
    // An error answer carries no login: it ends this one as a denial, signed or not (nothing is
    // granted on it, so an unsigned one is harmless).
    check_status(&document)?;
    let count = document
        .descendants()
        .into_iter()
        .filter(|e| is_assertion_like(e))
        .count();
    if count != 1 {
        return Err(ResponseError::AssertionCount(count));
    }
    let outer = document
        .elements()
        .find(|e| is_assertion(e) || is_encrypted_assertion(e))
        .ok_or(ResponseError::AssertionMisplaced)?;
    let response_id = document
        .attr("ID")
        .filter(|id| !id.is_empty())
        .ok_or(ResponseError::Missing("Response ID"))?;

    // 2. Signatures, verified with the metadata's certificates only.
    let signed = signature::check_signatures(&document, expected.allow_sha1)
        .map_err(ResponseError::Signature)?;
    let reduced = if signed.is_empty() {
        None
    } else {
        Some(
            signature::verify_and_reduce(
                &xml,
                &expected.idp.signing_certs,
                expected.allow_sha1,
                &MESSAGE_LIMITS,
            )
            .map_err(ResponseError::Signature)?,
        )
    };
    let (response_signed, assertion, assertion_signed) = match &reduced {
        Some(root) if root.is(NS_PROTOCOL, "Response") => {
            if root.attr("ID") != Some(response_id) {
                return Err(ResponseError::SignedOther("another Response".into()));
            }
            let mut inner = root
                .elements()
                .filter(|e| is_assertion(e) || is_encrypted_assertion(e));
            let (Some(inner), None) = (inner.next(), inner.next()) else {
                return Err(ResponseError::AssertionCount(0));
            };
            if is_assertion(inner) {
                let own = inner.child(NS_DSIG, "Signature").is_some()
                    && inner
                        .attr("ID")
                        .is_some_and(|id| signed.iter().any(|s| s == id));
                (true, inner.clone(), own)
            } else {
                let (assertion, own) = decrypt_assertion(inner, root, expected)?;
                (true, assertion, own)
            }
        }
        Some(root) if is_assertion(root) => {
            if root.attr("ID").is_none() || root.attr("ID") != outer.attr("ID") {
                return Err(ResponseError::SignedOther("another Assertion".into()));
            }
            (false, root.clone(), true)
        }
        Some(root) => return Err(ResponseError::SignedOther(root.name.clone())),
        None if is_encrypted_assertion(outer) => {
            let (assertion, own) = decrypt_assertion(outer, &document, expected)?;
            (false, assertion, own)
        }
        None => return Err(ResponseError::Unsigned),
    };
    if !response_signed && !assertion_signed {
        return Err(ResponseError::Unsigned);
    }
    if expected.require_signed_assertion && !assertion_signed {
        return Err(ResponseError::AssertionUnsigned);
    }

    // 4. Response-level checks (from the verified Response when it is signed).
    let response = match &reduced {
        Some(root) if response_signed => root,
        _ => &document,
    };
    check_version(response, "Response")?;
    let issued = instant(response.attr("IssueInstant"), "Response IssueInstant")?;
    check_issued(issued, expected, "the Response")?;
    let destination = response
        .attr("Destination")
        .ok_or(ResponseError::Missing("Response Destination"))?;
    if Url::parse(destination).ok().as_ref() != Some(expected.callback_url) {
        return Err(ResponseError::Destination(destination.to_owned()));
    }
    check_in_response_to(response.attr("InResponseTo"), expected)?;
    if let Some(issuer) = response.child(NS_ASSERTION, "Issuer") {
        check_issuer(issuer, expected.idp, "Response")?;
    }

    let facts = check_assertion(&assertion, expected)?;
    Ok(VerifiedLogin {
        response_id: response_id.to_owned(),
        attributes: attributes::collect(&assertion, expected.attribute_names),
        ..facts
    })
}

/// A non-Success status, as a denial.
fn check_status(response: &Element) -> Result<(), ResponseError> {
    let status = response
        .child(NS_PROTOCOL, "Status")
        .ok_or(ResponseError::Missing("Status"))?;
    let code = status
        .child(NS_PROTOCOL, "StatusCode")
        .ok_or(ResponseError::Missing("StatusCode"))?;
    let value = code.attr("Value").unwrap_or_default();
    if value == STATUS_SUCCESS {
        return Ok(());
    }
    let short = |v: &str| v.strip_prefix(STATUS_PREFIX).unwrap_or(v).to_owned();
    let mut described = short(value);
    if let Some(second) = code
        .child(NS_PROTOCOL, "StatusCode")
        .and_then(|c| c.attr("Value"))
    {
        described.push('/');
        described.push_str(&short(second));
    }
    let message = status
        .child(NS_PROTOCOL, "StatusMessage")
        .map(|m| m.text())
        .filter(|m| !m.is_empty())
        .map(|m| clip(&m).into_owned());
    Err(ResponseError::Status {
        code: clip(&described).into_owned(),
        message,
    })
}

/// Decrypts an EncryptedAssertion found under `context` (whose namespace declarations the
/// plaintext may rely on), pre-scans it and verifies its own signature when it has one.
/// Returns the assertion and whether it is signed.
fn decrypt_assertion(
    encrypted: &Element,
    context: &Element,
    expected: &Expected<'_>,
) -> Result<(Element, bool), ResponseError> {
    let plaintext =
        decrypt::decrypt_assertion(encrypted, expected.decryption_keys, expected.decrypt)
            .map_err(ResponseError::Decrypt)?;
    // Whatever does not parse is the same failure as a wrong key (no padding oracle).
    let failed = || ResponseError::Decrypt(DecryptError::Failed);
    let text = String::from_utf8(plaintext).map_err(|_| failed())?;
    let (xml, assertion) = match xml_guard::parse(&text, &MESSAGE_LIMITS) {
        Ok(root) => (text, root),
        // The plaintext is a fragment of the Response: it may use prefixes declared there.
        Err(XmlError::Syntax(_)) => {
            let wrapped = wrap(&text, context, encrypted);
            let root = xml_guard::parse(&wrapped, &MESSAGE_LIMITS).map_err(|_| failed())?;
            let mut children = root.elements();
            let (Some(inner), None) = (children.next(), children.next()) else {
                return Err(failed());
            };
            (wrapped.clone(), inner.clone())
        }
        Err(_) => return Err(failed()),
    };
    if !is_assertion(&assertion) {
        return Err(failed());
    }
    let nested = assertion
        .descendants()
        .into_iter()
        .filter(|e| is_assertion_like(e))
        .count();
    if nested != 1 {
        return Err(ResponseError::AssertionCount(nested));
    }
    let signed = signature::check_signatures(&assertion, expected.allow_sha1)
        .map_err(ResponseError::Signature)?;
    if signed.is_empty() {
        return Ok((assertion, false));
    }
    let reduced = signature::verify_and_reduce(
        &xml,
        &expected.idp.signing_certs,
        expected.allow_sha1,
        &MESSAGE_LIMITS,
    )
    .map_err(ResponseError::Signature)?;
    if !is_assertion(&reduced) || reduced.attr("ID") != assertion.attr("ID") {
        return Err(ResponseError::SignedOther(reduced.name.clone()));
    }
    Ok((reduced, true))
}

/// The plaintext inside an element declaring the namespaces in scope where it was.
fn wrap(plaintext: &str, context: &Element, encrypted: &Element) -> String {
    let body = match plaintext.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map(|(_, after)| after)
            .unwrap_or(rest),
        None => plaintext,
    };
    let mut declarations = String::new();
    let mut seen = std::collections::HashSet::new();
    for (prefix, uri) in encrypted.ns_decls.iter().chain(context.ns_decls.iter()) {
        if !seen.insert(prefix.as_str()) {
            continue;
        }
        let name = if prefix.is_empty() {
            "xmlns".to_owned()
        } else {
            format!("xmlns:{prefix}")
        };
        declarations.push_str(&format!(
            r#" {name}="{}""#,
            quick_xml::escape::escape(uri.as_str())
        ));
    }
    format!("<guichet-decrypted{declarations}>{body}</guichet-decrypted>")
}

fn check_version(element: &Element, what: &'static str) -> Result<(), ResponseError> {
    if element.attr("Version") == Some("2.0") {
        Ok(())
    } else {
        Err(ResponseError::Version(what))
    }
}

fn instant(value: Option<&str>, what: &'static str) -> Result<OffsetDateTime, ResponseError> {
    parse_instant(value.ok_or(ResponseError::Missing(what))?)
        .map_err(|_| ResponseError::BadTime(what))
}

/// An IssueInstant neither in the future nor older than [`MAX_ISSUE_AGE`] (both beyond the
/// clock skew).
fn check_issued(
    issued: OffsetDateTime,
    expected: &Expected<'_>,
    what: &'static str,
) -> Result<(), ResponseError> {
    if issued > plus(expected.now, expected.skew) {
        return Err(ResponseError::IssuedInFuture(what));
    }
    if issued < minus(minus(expected.now, expected.skew), MAX_ISSUE_AGE) {
        return Err(ResponseError::IssuedTooLongAgo(
            what,
            MAX_ISSUE_AGE.as_secs() / 60,
        ));
    }
    Ok(())
}

/// A NotOnOrAfter no further than `max` from now (beyond the clock skew).
fn check_validity(
    until: OffsetDateTime,
    expected: &Expected<'_>,
    max: Duration,
    what: &'static str,
) -> Result<(), ResponseError> {
    if until > plus(plus(expected.now, expected.skew), max) {
        return Err(ResponseError::ValidTooLong(what, max.as_secs() / 60));
    }
    Ok(())
}

fn check_in_response_to(got: Option<&str>, expected: &Expected<'_>) -> Result<(), ResponseError> {
    match (expected.request_id, got) {
        (Some(id), Some(got)) if bool::from(id.as_bytes().ct_eq(got.as_bytes())) => Ok(()),
        (Some(_), got) => Err(ResponseError::InResponseTo(got.map(str::to_owned))),
        (None, Some(got)) => Err(ResponseError::UnsolicitedInResponseTo(got.to_owned())),
        (None, None) => Ok(()),
    }
}

fn check_issuer(
    issuer: &Element,
    idp: &IdpMetadata,
    which: &'static str,
) -> Result<(), ResponseError> {
    let got = issuer.text();
    if got != idp.entity_id {
        return Err(ResponseError::Issuer { which, got });
    }
    match issuer.attr("Format") {
        None | Some(ENTITY_FORMAT) => Ok(()),
        Some(_) => Err(ResponseError::IssuerFormat(which)),
    }
}

/// The assertion's own checks; attributes and the response ID are filled by the caller.
fn check_assertion(
    assertion: &Element,
    expected: &Expected<'_>,
) -> Result<VerifiedLogin, ResponseError> {
    let now = expected.now;
    let skew = expected.skew;
    check_version(assertion, "Assertion")?;
    let assertion_id = assertion
        .attr("ID")
        .filter(|id| !id.is_empty())
        .ok_or(ResponseError::Missing("Assertion ID"))?;
    let issued = instant(assertion.attr("IssueInstant"), "Assertion IssueInstant")?;
    check_issued(issued, expected, "the Assertion")?;
    let issuer = assertion
        .child(NS_ASSERTION, "Issuer")
        .ok_or(ResponseError::Missing("Assertion Issuer"))?;
    check_issuer(issuer, expected.idp, "Assertion")?;

    // Subject.
    let subject = assertion
        .child(NS_ASSERTION, "Subject")
        .ok_or(ResponseError::Missing("Subject"))?;
    let name_id = match subject.child(NS_ASSERTION, "NameID") {
        Some(name_id) => name_id,
        None if subject.child(NS_ASSERTION, "EncryptedID").is_some() => {
            return Err(ResponseError::EncryptedId)
        }
        None => return Err(ResponseError::Missing("NameID")),
    };
    let name_id = NameId {
        value: Some(name_id.text())
            .filter(|v| !v.is_empty())
            .ok_or(ResponseError::Missing("NameID value"))?,
        format: name_id.attr("Format").map(str::to_owned),
        name_qualifier: name_id.attr("NameQualifier").map(str::to_owned),
        sp_name_qualifier: name_id.attr("SPNameQualifier").map(str::to_owned),
    };
    let mut bearers = subject
        .children_named(NS_ASSERTION, "SubjectConfirmation")
        .filter(|c| c.attr("Method") == Some(BEARER))
        .peekable();
    if bearers.peek().is_none() {
        return Err(ResponseError::NoBearer);
    }
    // One bearer confirmation must hold entirely; the first failure is the reason otherwise.
    let mut first_failure = None;
    let mut confirmed_until = None;
    for bearer in bearers {
        match check_confirmation(bearer, expected) {
            Ok(until) => {
                confirmed_until = Some(until);
                break;
            }
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    let mut valid_until = match (confirmed_until, first_failure) {
        (Some(until), _) => until,
        (None, Some(failure)) => return Err(failure),
        (None, None) => return Err(ResponseError::NoBearer),
    };

    // Conditions, with an AudienceRestriction required (samael only checks one when present).
    let conditions = assertion
        .child(NS_ASSERTION, "Conditions")
        .ok_or(ResponseError::Missing("Conditions"))?;
    if let Some(not_before) = conditions.attr("NotBefore") {
        if parse_instant(not_before).map_err(|_| ResponseError::BadTime("Conditions NotBefore"))?
            > plus(now, skew)
        {
            return Err(ResponseError::NotYetValid("the Conditions"));
        }
    }
    if let Some(not_on_or_after) = conditions.attr("NotOnOrAfter") {
        let until = parse_instant(not_on_or_after)
            .map_err(|_| ResponseError::BadTime("Conditions NotOnOrAfter"))?;
        if minus(now, skew) >= until {
            return Err(ResponseError::Expired("the Conditions"));
        }
        check_validity(until, expected, MAX_CONDITIONS_VALIDITY, "the Conditions")?;
        valid_until = valid_until.min(until);
    }
    let mut restricted = false;
    for condition in conditions.elements() {
        if condition.is(NS_ASSERTION, "AudienceRestriction") {
            restricted = true;
            let audiences: Vec<String> = condition
                .children_named(NS_ASSERTION, "Audience")
                .map(Element::text)
                .collect();
            if !audiences.iter().any(|a| a == expected.sp_entity_id) {
                return Err(ResponseError::Audience(audiences));
            }
        } else if !condition.is(NS_ASSERTION, "OneTimeUse")
            && !condition.is(NS_ASSERTION, "ProxyRestriction")
        {
            return Err(ResponseError::UnknownCondition(condition.name.clone()));
        }
    }
    if !restricted {
        return Err(ResponseError::NoAudienceRestriction);
    }

    // The AuthnStatement.
    let statement = assertion
        .child(NS_ASSERTION, "AuthnStatement")
        .ok_or(ResponseError::Missing("AuthnStatement"))?;
    let auth_instant = instant(statement.attr("AuthnInstant"), "AuthnInstant")?;
    if let Some(session_until) = statement.attr("SessionNotOnOrAfter") {
        let until = parse_instant(session_until)
            .map_err(|_| ResponseError::BadTime("SessionNotOnOrAfter"))?;
        if minus(now, skew) >= until {
            return Err(ResponseError::Expired(
                "the IdP session (SessionNotOnOrAfter)",
            ));
        }
    }
    let class_ref = statement
        .child(NS_ASSERTION, "AuthnContext")
        .and_then(|c| c.child(NS_ASSERTION, "AuthnContextClassRef"))
        .map(Element::text)
        .filter(|c| !c.is_empty());
    if let Some(requested) = expected.requested_authn_context {
        // Only `exact` can be checked without knowing the IdP's ordering of contexts.
        if requested.comparison == "exact"
            && !class_ref
                .as_ref()
                .is_some_and(|c| requested.class_refs.contains(c))
        {
            return Err(ResponseError::AuthnContext(class_ref));
        }
    }
    Ok(VerifiedLogin {
        response_id: String::new(),
        assertion_id: assertion_id.to_owned(),
        name_id,
        session_index: statement
            .attr("SessionIndex")
            .map(str::to_owned)
            .filter(|s| !s.is_empty()),
        auth_instant,
        authn_context_class_ref: class_ref,
        attributes: BTreeMap::new(),
        valid_until,
    })
}

/// A bearer SubjectConfirmation: returns its NotOnOrAfter when it holds.
fn check_confirmation(
    confirmation: &Element,
    expected: &Expected<'_>,
) -> Result<OffsetDateTime, ResponseError> {
    let data = confirmation
        .child(NS_ASSERTION, "SubjectConfirmationData")
        .ok_or(ResponseError::Missing("SubjectConfirmationData"))?;
    let recipient = data.attr("Recipient");
    if recipient.and_then(|r| Url::parse(r).ok()).as_ref() != Some(expected.callback_url) {
        return Err(ResponseError::Recipient(recipient.map(str::to_owned)));
    }
    let until = data
        .attr("NotOnOrAfter")
        .ok_or(ResponseError::NoNotOnOrAfter)?;
    let until = parse_instant(until)
        .map_err(|_| ResponseError::BadTime("SubjectConfirmationData NotOnOrAfter"))?;
    if minus(expected.now, expected.skew) >= until {
        return Err(ResponseError::Expired("the SubjectConfirmationData"));
    }
    check_validity(
        until,
        expected,
        MAX_CONFIRMATION_VALIDITY,
        "the SubjectConfirmationData",
    )?;
    if let Some(not_before) = data.attr("NotBefore") {
        let not_before = parse_instant(not_before)
            .map_err(|_| ResponseError::BadTime("SubjectConfirmationData NotBefore"))?;
        if not_before > plus(expected.now, expected.skew) {
            return Err(ResponseError::NotYetValid("the SubjectConfirmationData"));
        }
    }
    check_in_response_to(data.attr("InResponseTo"), expected)?;
    Ok(until)
}
