//! The CAS server's single logout request: a SAML `LogoutRequest` naming, in `SessionIndex`,
//! the service ticket that opened the session. Back-channel: POSTed as the `logoutRequest`
//! form field. Front-channel: a GET whose `logoutRequest` parameter is the request, raw
//! DEFLATE-compressed then base64-encoded.
//!
//! These requests are not signed: the gateway only ends the sessions a known ticket opened,
//! and answers the same whatever the ticket. Parsing refuses a DOCTYPE and is bounded.

use std::io::Read;

use base64::Engine;

use super::response::{read_tree, XmlError};

/// A logout request Guichet does not act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutRequestError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("logout request too large")]
    TooLarge,
    #[error("root element is {0:?}, not samlp:LogoutRequest")]
    Root(String),
    #[error("{0} SessionIndex elements, expected one")]
    SessionIndexCount(usize),
    #[error("SessionIndex is not a service ticket")]
    NotATicket,
    #[error("logout request is not base64")]
    NotBase64,
    #[error("logout request is not deflated UTF-8")]
    NotDeflated,
}

const SAMLP_NAMESPACE: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
/// Largest logout request read (decoded or inflated).
pub const MAX_LOGOUT_REQUEST_BYTES: usize = 16 * 1024;

/// The service ticket a logout request names.
pub fn session_index(xml: &str) -> Result<String, LogoutRequestError> {
    if xml.len() > MAX_LOGOUT_REQUEST_BYTES {
        return Err(LogoutRequestError::TooLarge);
    }
    let root = read_tree(xml.as_bytes(), SAMLP_NAMESPACE)?;
    if !(root.in_namespace && root.name == "LogoutRequest") {
        return Err(LogoutRequestError::Root(root.name));
    }
    let indexes: Vec<_> = root.children_named("SessionIndex").collect();
    let [index] = indexes.as_slice() else {
        return Err(LogoutRequestError::SessionIndexCount(indexes.len()));
    };
    let ticket = index.text.trim();
    if ticket.is_empty() || ticket.len() > 256 || !ticket.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LogoutRequestError::NotATicket);
    }
    Ok(ticket.to_owned())
}

/// The XML of a front-channel logout request (`base64(deflate(xml))`).
pub fn decode_front_channel(parameter: &str) -> Result<String, LogoutRequestError> {
    if parameter.len() > MAX_LOGOUT_REQUEST_BYTES * 2 {
        return Err(LogoutRequestError::TooLarge);
    }
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(parameter.trim())
        .map_err(|_| LogoutRequestError::NotBase64)?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(compressed.as_slice())
        .take(MAX_LOGOUT_REQUEST_BYTES as u64 + 1)
        .read_to_string(&mut xml)
        .map_err(|_| LogoutRequestError::NotDeflated)?;
    if xml.len() > MAX_LOGOUT_REQUEST_BYTES {
        return Err(LogoutRequestError::TooLarge);
    }
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const REQUEST: &str = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="LR-1" Version="2.0" IssueInstant="2026-11-30T10:00:00Z"><saml:NameID>@NOT_USED@</saml:NameID><samlp:SessionIndex>ST-42-abc</samlp:SessionIndex></samlp:LogoutRequest>"#;

    #[test]
    fn the_session_index_is_the_ticket() {
        assert_eq!(session_index(REQUEST).unwrap(), "ST-42-abc");
    }

    #[test]
    fn bad_logout_requests_are_refused() {
        let doctype = format!(
            "<!DOCTYPE x [<!ENTITY t \"ST-1\">]>{}",
            REQUEST.replace("ST-42-abc", "&t;")
        );
        for bad in [
            doctype.as_str(),
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>",
            "<x/>",
            "not xml",
            &REQUEST.replace(
                "ST-42-abc",
                "ST-1</samlp:SessionIndex><samlp:SessionIndex>ST-2",
            ),
        ] {
            assert!(session_index(bad).is_err(), "{bad}");
        }
        assert!(session_index(&"x".repeat(MAX_LOGOUT_REQUEST_BYTES + 1)).is_err());
    }

    #[test]
    fn front_channel_requests_are_inflated_and_bounded() {
        let deflate = |text: &[u8]| {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(text).unwrap();
            base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap())
        };
        let xml = decode_front_channel(&deflate(REQUEST.as_bytes())).unwrap();
        assert_eq!(session_index(&xml).unwrap(), "ST-42-abc");
        // A deflate bomb stops at the bound.
        let bomb = deflate(&vec![b' '; 10 * 1024 * 1024]);
        assert!(decode_front_channel(&bomb).is_err());
        assert!(decode_front_channel("%%%").is_err());
    }
}
