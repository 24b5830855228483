//! Single logout (SAML profiles §4.4), both ways, at `/.guichet/saml-slo/{id}`:
//!
//! - the IdP's LogoutRequest (HTTP-Redirect or HTTP-POST): its signature is required and checked
//!   with the metadata's certificates (over the query as received for HTTP-Redirect, enveloped
//!   for HTTP-POST), then Issuer, Destination, times and NameID; the gateway ends the sessions
//!   of that NameID with those SessionIndexes (or all the NameID's sessions when it names none;
//!   see [`NameIdKey`]) and the browser goes back to the IdP with our signed LogoutResponse;
//! - the IdP's LogoutResponse to our own LogoutRequest (started by
//!   [`IdentityProvider::sign_out`](crate::IdentityProvider::sign_out)): checked the same way,
//!   its InResponseTo must be the ID derived from the RelayState (the gateway's single-use logout
//!   state), and the gateway lands the browser as after any logout.
//!
//! A DEFLATEd message inflates to [`MAX_LOGOUT_BYTES`] at most; messages are read and verified
//! on the blocking pool (see [`super::blocking`]); the IdP's metadata must be current.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::blocking;
use super::instant::{minus, parse_instant, plus};
use super::metadata::IdpMetadata;
use super::request::{
    logout_request_id, pick, random_id, send, Binding, LogoutRequest, LogoutResponse, NameId,
    STATUS_SUCCESS,
};
use super::signature::{self, RedirectError, SignatureError};
use super::xml_guard::{
    self, clip, clip_opt, Element, EncodingError, XmlError, MESSAGE_LIMITS, NS_ASSERTION,
    NS_PROTOCOL,
};
use super::SamlProvider;
use crate::{
    logout_tag, BrowserTo, EndpointOutcome, EndpointReply, EndpointRequest, LogoutHandle,
    Principal, ProviderError,
};

/// Largest logout message, inflated or decoded.
pub(crate) const MAX_LOGOUT_BYTES: usize = 64 * 1024;
/// Longest RelayState echoed back (SAML says 80 bytes; some IdPs send more).
const MAX_RELAY_STATE: usize = 1024;
/// How long our LogoutRequest is valid.
const LOGOUT_REQUEST_LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LogoutError {
    #[error("{0}")]
    Redirect(RedirectError),
    #[error("the message is {0}")]
    Encoding(EncodingError),
    #[error("the message is not UTF-8")]
    NotUtf8,
    #[error("the message: {0}")]
    Xml(XmlError),
    #[error("the form carries no single SAMLRequest or SAMLResponse")]
    NoMessage,
    #[error("the RelayState is longer than {MAX_RELAY_STATE} bytes")]
    RelayStateTooLong,
    #[error("{} is not a {}", clip(.0), .1)]
    WrongMessage(String, &'static str),
    #[error("a logout message must not carry an assertion")]
    Assertion,
    #[error("the message is not signed")]
    Unsigned,
    #[error("signature: {0}")]
    Signature(SignatureError),
    #[error("the signature does not cover the message")]
    SignedOther,
    #[error("{0} missing")]
    Missing(&'static str),
    #[error("Version is not 2.0")]
    Version,
    #[error("{0} is not a UTC xs:dateTime")]
    BadTime(&'static str),
    #[error("IssueInstant is not within the clock skew of now")]
    IssueInstant,
    #[error("the LogoutRequest expired (NotOnOrAfter)")]
    Expired,
    #[error("Issuer {:?} is not the IdP", clip(.0))]
    Issuer(String),
    #[error("Destination {:?} is not one of this SP's SingleLogoutService URLs", clip(.0))]
    Destination(String),
    #[error("the NameID is encrypted (EncryptedID is not supported)")]
    EncryptedId,
    #[error("the LogoutResponse has no RelayState")]
    NoRelayState,
    #[error(
        "InResponseTo {:?} does not answer the LogoutRequest of this RelayState",
        clip_opt(.0)
    )]
    InResponseTo(Option<String>),
}

/// A LogoutRequest from the IdP, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdpLogoutRequest {
    pub id: String,
    pub name_id: NameId,
    pub session_indexes: Vec<String>,
    pub relay_state: Option<String>,
}

/// The IdP's LogoutResponse to ours, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdpLogoutResponse {
    pub status: String,
    pub relay_state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    Request(IdpLogoutRequest),
    Response(IdpLogoutResponse),
}

/// The NameID format SAML assumes when none is given.
const UNSPECIFIED_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
const PERSISTENT_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const TRANSIENT_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

/// A NameID as single logout matches it: its value with its Format, NameQualifier and
/// SPNameQualifier (a value is only unique within those), hashed (the session store holds no
/// user names for this).
///
/// Defaults make the assertion's and the LogoutRequest's forms of one NameID equal: no Format is
/// the unspecified one; for persistent and transient NameIDs (SAML core §8.3.7, §8.3.8), no
/// NameQualifier is the IdP's entityID and no SPNameQualifier ours.
///
/// Sessions are filed under [`NameIdKey::name_id_tag`] and, with a SessionIndex, under
/// [`NameIdKey::session_tag`] (that NameID *and* that index): an IdP's SessionIndex that is not
/// unique across users cannot end someone else's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NameIdKey([u8; 32]);

impl NameIdKey {
    pub fn new(name_id: &NameId, idp_entity_id: &str, sp_entity_id: &str) -> NameIdKey {
        let format = name_id.format.as_deref().unwrap_or(UNSPECIFIED_FORMAT);
        let qualified = matches!(format, PERSISTENT_FORMAT | TRANSIENT_FORMAT);
        let name_qualifier = name_id
            .name_qualifier
            .as_deref()
            .or(qualified.then_some(idp_entity_id));
        let sp_name_qualifier = name_id
            .sp_name_qualifier
            .as_deref()
            .or(qualified.then_some(sp_entity_id));
        let mut hash = Sha256::new();
        hash.update(b"guichet-saml-nameid\0");
        for field in [
            Some(name_id.value.as_str()),
            Some(format),
            name_qualifier,
            sp_name_qualifier,
        ] {
            absorb(&mut hash, field);
        }
        NameIdKey(hash.finalize().into())
    }

    /// Every session of this NameID (a LogoutRequest without SessionIndex).
    pub fn name_id_tag(&self, provider: &str) -> String {
        logout_tag(provider, "nameid", &hex(&self.0))
    }

    /// The session of this NameID with that SessionIndex.
    pub fn session_tag(&self, provider: &str, session_index: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(b"guichet-saml-session\0");
        hash.update(self.0);
        absorb(&mut hash, Some(session_index));
        let digest: [u8; 32] = hash.finalize().into();
        logout_tag(provider, "session", &hex(&digest))
    }
}

/// A field, length-prefixed (no two lists of fields hash alike); `None` apart from any value.
fn absorb(hash: &mut Sha256, field: Option<&str>) {
    match field {
        Some(value) => {
            hash.update([1u8]);
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        }
        None => hash.update([0u8]),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a logout message must match.
pub(crate) struct SloContext<'a> {
    pub idp: &'a IdpMetadata,
    pub slo_urls: &'a [Url],
    pub skew: Duration,
    pub now: OffsetDateTime,
    pub allow_sha1: bool,
}

/// An HTTP-Redirect binding message, from the raw query string.
pub(crate) fn read_redirect(
    raw_query: &str,
    ctx: &SloContext<'_>,
) -> Result<Incoming, LogoutError> {
    let message = signature::verify_redirect(raw_query, &ctx.idp.signing_keys, ctx.allow_sha1)
        .map_err(LogoutError::Redirect)?;
    let deflated = xml_guard::decode_base64(&message.message, MAX_LOGOUT_BYTES)
        .map_err(LogoutError::Encoding)?;
    let inflated =
        xml_guard::inflate(&deflated, MAX_LOGOUT_BYTES).map_err(LogoutError::Encoding)?;
    let xml = String::from_utf8(inflated).map_err(|_| LogoutError::NotUtf8)?;
    let root = xml_guard::parse(&xml, &MESSAGE_LIMITS).map_err(LogoutError::Xml)?;
    // The query signature covers the whole message; an enveloped one is not looked at.
    interpret(&root, message.param, message.relay_state, ctx)
}

/// An HTTP-POST binding message, from the form.
pub(crate) fn read_post(
    form: &[(String, String)],
    ctx: &SloContext<'_>,
) -> Result<Incoming, LogoutError> {
    fn field<'f>(
        form: &'f [(String, String)],
        name: &'static str,
    ) -> impl Iterator<Item = &'f String> + 'f {
        form.iter().filter(move |(k, _)| k == name).map(|(_, v)| v)
    }
    let mut requests = field(form, "SAMLRequest");
    let mut responses = field(form, "SAMLResponse");
    let (param, value) = match (requests.next(), requests.next(), responses.next()) {
        (Some(value), None, None) => ("SAMLRequest", value),
        (None, None, Some(value)) if responses.next().is_none() => ("SAMLResponse", value),
        _ => return Err(LogoutError::NoMessage),
    };
    let mut relay_states = field(form, "RelayState");
    let relay_state = relay_states.next().cloned();
    if relay_states.next().is_some() {
        return Err(LogoutError::NoMessage);
    }
    let bytes = xml_guard::decode_base64(value, MAX_LOGOUT_BYTES).map_err(LogoutError::Encoding)?;
    let xml = String::from_utf8(bytes).map_err(|_| LogoutError::NotUtf8)?;
    let root = xml_guard::parse(&xml, &MESSAGE_LIMITS).map_err(LogoutError::Xml)?;
    let signed =
        signature::check_signatures(&root, ctx.allow_sha1).map_err(LogoutError::Signature)?;
    if signed.is_empty() {
        return Err(LogoutError::Unsigned);
    }
    let reduced = signature::verify_and_reduce(
        &xml,
        &ctx.idp.signing_certs,
        ctx.allow_sha1,
        &MESSAGE_LIMITS,
    )
    .map_err(LogoutError::Signature)?;
    if reduced.ns != root.ns || reduced.name != root.name || reduced.attr("ID") != root.attr("ID") {
        return Err(LogoutError::SignedOther);
    }
    interpret(&reduced, param, relay_state, ctx)
}

fn interpret(
    root: &Element,
    param: &str,
    relay_state: Option<String>,
    ctx: &SloContext<'_>,
) -> Result<Incoming, LogoutError> {
    let expected = if param == "SAMLRequest" {
        "LogoutRequest"
    } else {
        "LogoutResponse"
    };
    if !root.is(NS_PROTOCOL, expected) {
        return Err(LogoutError::WrongMessage(root.name.clone(), expected));
    }
    if relay_state
        .as_ref()
        .is_some_and(|r| r.len() > MAX_RELAY_STATE)
    {
        return Err(LogoutError::RelayStateTooLong);
    }
    if root
        .descendants()
        .iter()
        .any(|e| e.name == "Assertion" || e.name == "EncryptedAssertion")
    {
        return Err(LogoutError::Assertion);
    }
    if root.attr("Version") != Some("2.0") {
        return Err(LogoutError::Version);
    }
    let id = root
        .attr("ID")
        .filter(|id| !id.is_empty())
        .ok_or(LogoutError::Missing("ID"))?;
    let issued = parse_instant(
        root.attr("IssueInstant")
            .ok_or(LogoutError::Missing("IssueInstant"))?,
    )
    .map_err(|_| LogoutError::BadTime("IssueInstant"))?;
    if issued > plus(ctx.now, ctx.skew) || issued < minus(ctx.now, ctx.skew) {
        return Err(LogoutError::IssueInstant);
    }
    let issuer = root
        .child(NS_ASSERTION, "Issuer")
        .ok_or(LogoutError::Missing("Issuer"))?
        .text();
    if issuer != ctx.idp.entity_id {
        return Err(LogoutError::Issuer(issuer));
    }
    let destination = root
        .attr("Destination")
        .ok_or(LogoutError::Missing("Destination"))?;
    let parsed = Url::parse(destination).ok();
    if !parsed.is_some_and(|d| ctx.slo_urls.contains(&d)) {
        return Err(LogoutError::Destination(destination.to_owned()));
    }
    if expected == "LogoutRequest" {
        if let Some(until) = root.attr("NotOnOrAfter") {
            let until = parse_instant(until).map_err(|_| LogoutError::BadTime("NotOnOrAfter"))?;
            if minus(ctx.now, ctx.skew) >= until {
                return Err(LogoutError::Expired);
            }
        }
        let name_id = match root.child(NS_ASSERTION, "NameID") {
            Some(name_id) => NameId {
                value: name_id.text(),
                format: name_id.attr("Format").map(str::to_owned),
                name_qualifier: name_id.attr("NameQualifier").map(str::to_owned),
                sp_name_qualifier: name_id.attr("SPNameQualifier").map(str::to_owned),
            },
            None if root.child(NS_ASSERTION, "EncryptedID").is_some() => {
                return Err(LogoutError::EncryptedId)
            }
            None => return Err(LogoutError::Missing("NameID")),
        };
        if name_id.value.is_empty() {
            return Err(LogoutError::Missing("NameID value"));
        }
        Ok(Incoming::Request(IdpLogoutRequest {
            id: id.to_owned(),
            name_id,
            session_indexes: root
                .children_named(NS_PROTOCOL, "SessionIndex")
                .map(Element::text)
                .filter(|s| !s.is_empty())
                .collect(),
            relay_state,
        }))
    } else {
        let relay_state = relay_state.ok_or(LogoutError::NoRelayState)?;
        let in_response_to = root.attr("InResponseTo");
        if in_response_to != Some(logout_request_id(&relay_state).as_str()) {
            return Err(LogoutError::InResponseTo(in_response_to.map(str::to_owned)));
        }
        let status = root
            .child(NS_PROTOCOL, "Status")
            .and_then(|s| s.child(NS_PROTOCOL, "StatusCode"))
            .and_then(|c| c.attr("Value"))
            .ok_or(LogoutError::Missing("StatusCode"))?
            .to_owned();
        Ok(Incoming::Response(IdpLogoutResponse {
            status,
            relay_state,
        }))
    }
}

/// The SLO endpoint: `post` says which binding the request came by.
pub(crate) async fn endpoint(
    provider: &SamlProvider,
    request: &EndpointRequest<'_>,
    post: bool,
) -> EndpointOutcome {
    let settings = &provider.settings;
    let refused = |reason: String| EndpointOutcome::Refused {
        reason: format!("SAML single logout: {reason}"),
        reply: EndpointReply::text(400, "invalid SAML logout message\n"),
    };
    let idp = match provider.metadata.current().await {
        Ok(idp) => idp,
        Err(error) => return refused(error.to_string()),
    };
    let now = OffsetDateTime::now_utc();
    // Read and verified on the blocking pool (xmlsec for HTTP-POST): see `blocking`.
    let incoming = {
        let idp = Arc::clone(&idp);
        let slo_urls = settings.slo_urls.clone();
        let (skew, allow_sha1) = (settings.clock_skew, settings.allow_sha1);
        let form = request.form.to_vec();
        let raw_query = request.raw_query.to_owned();
        blocking::run(blocking::MESSAGE_TIMEOUT, move || {
            let ctx = SloContext {
                idp: &idp,
                slo_urls: &slo_urls,
                skew,
                now,
                allow_sha1,
            };
            if post {
                read_post(&form, &ctx)
            } else {
                read_redirect(&raw_query, &ctx)
            }
        })
        .await
    };
    let incoming = match incoming {
        Ok(incoming) => incoming,
        Err(stalled) => return refused(stalled.to_string()),
    };
    match incoming {
        Err(error) => refused(error.to_string()),
        Ok(Incoming::Response(response)) => {
            if response.status != STATUS_SUCCESS {
                // The local session is over already: only the IdP's may remain.
                tracing::warn!(
                    idp.id = %settings.id,
                    saml.status = %clip(&response.status),
                    "the IdP did not confirm the single logout"
                );
            }
            EndpointOutcome::SignOutReturned {
                state: response.relay_state,
            }
        }
        Ok(Incoming::Request(logout)) => {
            // Accepted within the clock skew of its IssueInstant only; within that window, the
            // same message (on any replica) is used once.
            let keep_for = settings.clock_skew * 2 + std::time::Duration::from_secs(1);
            match request
                .proofs
                .first_use(&format!("logout-request:{}", logout.id), keep_for)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return refused(format!("LogoutRequest {:?} replayed", clip(&logout.id)))
                }
                Err(error) => return refused(error.to_string()),
            }
            let key = NameIdKey::new(&logout.name_id, &idp.entity_id, &settings.entity_id);
            let tags = if logout.session_indexes.is_empty() {
                vec![key.name_id_tag(&settings.id)]
            } else {
                logout
                    .session_indexes
                    .iter()
                    .map(|index| key.session_tag(&settings.id, index))
                    .collect()
            };
            let reply = match answer(provider, &idp, &logout, now) {
                Ok(Some(to)) => EndpointReply::navigate(to),
                Ok(None) => EndpointReply::text(200, "signed out\n"),
                Err(error) => {
                    tracing::warn!(
                        idp.id = %settings.id,
                        error = %error,
                        "cannot answer the IdP's LogoutRequest"
                    );
                    EndpointReply::text(200, "signed out\n")
                }
            };
            EndpointOutcome::EndSessions {
                tags,
                subject: Some(clip(&logout.name_id.value).into_owned()),
                reply,
            }
        }
    }
}

/// Our LogoutResponse to the IdP's LogoutRequest, signed when we have a key; `None` when the
/// IdP has no SingleLogoutService to answer to.
fn answer(
    provider: &SamlProvider,
    idp: &IdpMetadata,
    logout: &IdpLogoutRequest,
    now: OffsetDateTime,
) -> Result<Option<BrowserTo>, super::signature::SignError> {
    let Some((binding, endpoint)) = pick(&idp.slo, Binding::Redirect) else {
        return Ok(None);
    };
    let destination = endpoint
        .response_location
        .as_ref()
        .unwrap_or(&endpoint.location);
    let id = random_id();
    let response = LogoutResponse {
        id: &id,
        in_response_to: &logout.id,
        issue_instant: now,
        destination,
        issuer: &provider.settings.entity_id,
    };
    send(
        binding,
        destination,
        "SAMLResponse",
        logout.relay_state.as_deref(),
        provider.keys.signing.as_ref(),
        |key| response.to_xml(key),
    )
    .map(Some)
}

/// Our LogoutRequest, when the session came from this IdP, the IdP has a SingleLogoutService
/// and we can sign.
pub(crate) fn sign_out(
    provider: &SamlProvider,
    idp: &IdpMetadata,
    principal: &Principal,
    state: &str,
    now: OffsetDateTime,
) -> Result<Option<BrowserTo>, ProviderError> {
    let LogoutHandle::Saml {
        name_id,
        name_id_format,
        session_index,
        name_qualifier,
        sp_name_qualifier,
    } = &principal.logout
    else {
        return Ok(None);
    };
    let Some(key) = provider.keys.signing.as_ref() else {
        return Ok(None);
    };
    let Some((binding, endpoint)) = pick(&idp.slo, Binding::Redirect) else {
        return Ok(None);
    };
    let id = logout_request_id(state);
    let name_id = NameId {
        value: name_id.clone(),
        format: name_id_format.clone(),
        name_qualifier: name_qualifier.clone(),
        sp_name_qualifier: sp_name_qualifier.clone(),
    };
    let request = LogoutRequest {
        id: &id,
        issue_instant: now,
        not_on_or_after: plus(now, LOGOUT_REQUEST_LIFETIME),
        destination: &endpoint.location,
        issuer: &provider.settings.entity_id,
        name_id: &name_id,
        session_index: session_index.as_deref(),
    };
    send(
        binding,
        &endpoint.location,
        "SAMLRequest",
        Some(state),
        Some(key),
        |key| request.to_xml(key),
    )
    .map(Some)
    .map_err(|e| ProviderError::Unavailable(format!("cannot sign the LogoutRequest: {e}")))
}
