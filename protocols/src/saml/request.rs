//! The messages Guichet sends: AuthnRequest, LogoutRequest, LogoutResponse (SAML core §3.4,
//! §3.7), written directly (every value escaped), and the ways they travel: HTTP-Redirect
//! (DEFLATE, base64, query signature) or HTTP-POST (base64, enveloped XML signature).
//!
//! IDs are `_` and 32 random bytes in hex (256 bits: samael's own are 32-bit); RelayState is
//! 32 random bytes in base64url, opaque, never a URL.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use quick_xml::escape::escape;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::instant::format_instant;
use super::metadata::{Endpoint, Services, BINDING_POST};
use super::settings::{RequestedAuthnContext, SigningKey};
use super::signature::{self, redirect_query, signature_template, with_query, SignError};
use super::xml_guard::{NS_ASSERTION, NS_PROTOCOL};
use crate::BrowserTo;

pub(crate) const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// `_` and 256 random bits in hex.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("_{}", hex(&bytes))
}

/// 256 random bits, base64url.
pub(crate) fn random_relay_state() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The ID of our LogoutRequest for the gateway's logout `state`: the LogoutResponse's
/// InResponseTo then binds to that single-use state without anything stored here.
pub(crate) fn logout_request_id(state: &str) -> String {
    let digest = Sha256::digest(format!("guichet-logout:{state}").as_bytes());
    format!("_{}", hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an AuthnRequest says.
pub(crate) struct AuthnRequest<'a> {
    pub id: &'a str,
    pub issue_instant: OffsetDateTime,
    pub destination: &'a Url,
    pub acs_url: &'a Url,
    pub issuer: &'a str,
    pub name_id_format: Option<&'a str>,
    pub force_authn: bool,
    pub requested_authn_context: Option<&'a RequestedAuthnContext>,
}

impl AuthnRequest<'_> {
    /// The XML, with an enveloped signature template after the Issuer when `key` is given.
    pub fn to_xml(&self, key: Option<&SigningKey>) -> String {
        let mut xml = format!(
            concat!(
                r#"<samlp:AuthnRequest xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" "#,
                r#"Version="2.0" IssueInstant="{instant}" Destination="{destination}" "#,
                r#"AssertionConsumerServiceURL="{acs}" ProtocolBinding="{binding}"{force}>"#,
                r#"<saml:Issuer>{issuer}</saml:Issuer>"#
            ),
            p = NS_PROTOCOL,
            a = NS_ASSERTION,
            id = escape(self.id),
            instant = format_instant(self.issue_instant),
            destination = escape(self.destination.as_str()),
            acs = escape(self.acs_url.as_str()),
            binding = BINDING_POST,
            force = if self.force_authn {
                r#" ForceAuthn="true""#
            } else {
                ""
            },
            issuer = escape(self.issuer),
        );
        if let Some(key) = key {
            xml.push_str(&signature_template(self.id, key));
        }
        match self.name_id_format {
            Some(format) => xml.push_str(&format!(
                r#"<samlp:NameIDPolicy Format="{}" AllowCreate="true"/>"#,
                escape(format)
            )),
            None => xml.push_str(r#"<samlp:NameIDPolicy AllowCreate="true"/>"#),
        }
        if let Some(context) = self.requested_authn_context {
            xml.push_str(&format!(
                r#"<samlp:RequestedAuthnContext Comparison="{}">"#,
                escape(&context.comparison)
            ));
            for class_ref in &context.class_refs {
                xml.push_str(&format!(
                    "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                    escape(class_ref)
                ));
            }
            xml.push_str("</samlp:RequestedAuthnContext>");
        }
        xml.push_str("</samlp:AuthnRequest>");
        xml
    }
}

/// The NameID a LogoutRequest names, as the assertion gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NameId {
    pub value: String,
    pub format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
}

/// What a LogoutRequest says.
pub(crate) struct LogoutRequest<'a> {
    pub id: &'a str,
    pub issue_instant: OffsetDateTime,
    pub not_on_or_after: OffsetDateTime,
    pub destination: &'a Url,
    pub issuer: &'a str,
    pub name_id: &'a NameId,
    pub session_index: Option<&'a str>,
}

impl LogoutRequest<'_> {
    pub fn to_xml(&self, key: Option<&SigningKey>) -> String {
        let mut xml = format!(
            concat!(
                r#"<samlp:LogoutRequest xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" "#,
                r#"Version="2.0" IssueInstant="{instant}" Destination="{destination}" "#,
                r#"NotOnOrAfter="{until}"><saml:Issuer>{issuer}</saml:Issuer>"#
            ),
            p = NS_PROTOCOL,
            a = NS_ASSERTION,
            id = escape(self.id),
            instant = format_instant(self.issue_instant),
            destination = escape(self.destination.as_str()),
            until = format_instant(self.not_on_or_after),
            issuer = escape(self.issuer),
        );
        if let Some(key) = key {
            xml.push_str(&signature_template(self.id, key));
        }
        xml.push_str("<saml:NameID");
        for (name, value) in [
            ("Format", &self.name_id.format),
            ("NameQualifier", &self.name_id.name_qualifier),
            ("SPNameQualifier", &self.name_id.sp_name_qualifier),
        ] {
            if let Some(value) = value {
                xml.push_str(&format!(r#" {name}="{}""#, escape(value)));
            }
        }
        xml.push_str(&format!(">{}</saml:NameID>", escape(&self.name_id.value)));
        if let Some(index) = self.session_index {
            xml.push_str(&format!(
                "<samlp:SessionIndex>{}</samlp:SessionIndex>",
                escape(index)
            ));
        }
        xml.push_str("</samlp:LogoutRequest>");
        xml
    }
}

/// What a LogoutResponse says (always Success: the sessions are ended whatever they were).
pub(crate) struct LogoutResponse<'a> {
    pub id: &'a str,
    pub in_response_to: &'a str,
    pub issue_instant: OffsetDateTime,
    pub destination: &'a Url,
    pub issuer: &'a str,
}

impl LogoutResponse<'_> {
    pub fn to_xml(&self, key: Option<&SigningKey>) -> String {
        let mut xml = format!(
            concat!(
                r#"<samlp:LogoutResponse xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" "#,
                r#"Version="2.0" IssueInstant="{instant}" Destination="{destination}" "#,
                r#"InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer>"#
            ),
            p = NS_PROTOCOL,
            a = NS_ASSERTION,
            id = escape(self.id),
            instant = format_instant(self.issue_instant),
            destination = escape(self.destination.as_str()),
            irt = escape(self.in_response_to),
            issuer = escape(self.issuer),
        );
        if let Some(key) = key {
            xml.push_str(&signature_template(self.id, key));
        }
        xml.push_str(&format!(
            r#"<samlp:Status><samlp:StatusCode Value="{STATUS_SUCCESS}"/></samlp:Status>"#
        ));
        xml.push_str("</samlp:LogoutResponse>");
        xml
    }
}

/// How a message goes to the IdP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    Redirect,
    Post,
}

/// The endpoint of `services` for the preferred binding, else the other one.
pub(crate) fn pick(services: &Services, preferred: Binding) -> Option<(Binding, &Endpoint)> {
    let redirect = services.redirect.as_ref().map(|e| (Binding::Redirect, e));
    let post = services.post.as_ref().map(|e| (Binding::Post, e));
    match preferred {
        Binding::Redirect => redirect.or(post),
        Binding::Post => post.or(redirect),
    }
}

/// Sends a message (`param`: `SAMLRequest` or `SAMLResponse`) by `binding` to `to`: a signed
/// query for HTTP-Redirect, a signed document in a form for HTTP-POST (signed when `key` is
/// given). `write` builds the XML, with a signature template when asked.
pub(crate) fn send(
    binding: Binding,
    to: &Url,
    param: &str,
    relay_state: Option<&str>,
    key: Option<&SigningKey>,
    write: impl Fn(Option<&SigningKey>) -> String,
) -> Result<BrowserTo, SignError> {
    match binding {
        Binding::Redirect => {
            let query = redirect_query(param, &write(None), relay_state, key)?;
            Ok(BrowserTo::Redirect {
                location: with_query(to, &query),
            })
        }
        Binding::Post => {
            let xml = match key {
                Some(key) => signature::sign_xml(&write(Some(key)), key)?,
                None => write(None),
            };
            let mut fields = vec![(param.to_owned(), STANDARD.encode(xml.as_bytes()))];
            if let Some(relay_state) = relay_state {
                fields.push(("RelayState".to_owned(), relay_state.to_owned()));
            }
            Ok(BrowserTo::AutoPost {
                action: to.clone(),
                fields,
            })
        }
    }
}
