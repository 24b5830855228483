//! The strict XML pre-scan and the signature shapes, on their own.

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;

use super::fixtures::*;
use crate::saml::settings::{KeyKind, SigningKey};
use crate::saml::signature::{self, RedirectError, SignatureError};
use crate::saml::xml_guard::{self, EncodingError, Limits, XmlError, MESSAGE_LIMITS};

#[test]
fn the_pre_scan_refuses_what_saml_never_needs() {
    let parse = |xml: &str| xml_guard::parse(xml, &MESSAGE_LIMITS).map(|_| ());
    assert_eq!(
        parse(r#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#),
        Err(XmlError::NotUtf8)
    );
    assert_eq!(parse("<!DOCTYPE a><a/>"), Err(XmlError::Doctype));
    assert_eq!(parse("<a><!-- x --></a>"), Err(XmlError::Comment));
    assert_eq!(
        parse("<a><?pi x?></a>"),
        Err(XmlError::ProcessingInstruction)
    );
    assert_eq!(
        parse(r#"<a><b ID="x"/><c ID="x"/></a>"#),
        Err(XmlError::DuplicateId("x".into()))
    );
    assert!(matches!(parse("<a>&ent;</a>"), Err(XmlError::Syntax(_))));
    assert!(matches!(parse("<a><b></a>"), Err(XmlError::Syntax(_))));
    assert!(matches!(parse("<a/><b/>"), Err(XmlError::Syntax(_))));
    assert!(matches!(parse("<p:a/>"), Err(XmlError::Syntax(_))));
    assert!(matches!(parse("<a>"), Err(XmlError::Syntax(_))));
    let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
    assert_eq!(parse(&deep), Err(XmlError::TooDeep(64)));
    let limits = Limits {
        max_depth: 64,
        max_elements: 3,
    };
    assert_eq!(
        xml_guard::parse("<a><b/><c/><d/></a>", &limits).map(|_| ()),
        Err(XmlError::TooManyElements(3))
    );
    // Entities and CDATA read as text; the XML declaration and a BOM are fine.
    let root = xml_guard::parse(
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?><a xmlns=\"urn:x\">&lt;b&#233;<![CDATA[<c>]]></a>",
        &MESSAGE_LIMITS,
    )
    .unwrap();
    assert!(root.is("urn:x", "a"));
    assert_eq!(root.text(), "<bé<c>");
}

#[test]
fn inflation_and_base64_are_bounded() {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&vec![b'x'; 1024 * 1024]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 8 * 1024);
    assert_eq!(
        xml_guard::inflate(&bomb, 64 * 1024),
        Err(EncodingError::InflatesTooLarge(64 * 1024))
    );
    assert_eq!(
        xml_guard::inflate(b"not deflate", 1024),
        Err(EncodingError::NotDeflate)
    );
    assert_eq!(
        xml_guard::decode_base64("QUJD", 2),
        Err(EncodingError::TooLarge(2))
    );
    assert_eq!(xml_guard::decode_base64("QU\nJD", 3).unwrap(), b"ABC");
    assert_eq!(xml_guard::decode_base64("QQ", 3).unwrap(), b"A");
}

fn shape(xml: &str) -> Result<Vec<String>, SignatureError> {
    signature::check_signatures(&xml_guard::parse(xml, &MESSAGE_LIMITS).unwrap(), false)
}

#[test]
fn signature_shapes_outside_the_saml_profile_are_refused() {
    let signed = ResponseSpec::default().xml();
    assert_eq!(shape(&signed).unwrap().len(), 1);
    let xpointer = signed.replacen("URI=\"#_r", "URI=\"#xpointer(id('_r", 1);
    assert!(matches!(shape(&xpointer), Err(SignatureError::Shape(_))));
    let xslt = signed.replacen(
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        1,
    );
    assert!(matches!(
        shape(&xslt),
        Err(SignatureError::UnsupportedAlgorithm(_))
    ));
    let sha1_digest = signed.replacen(SHA256, SHA1, 1);
    assert!(matches!(
        shape(&sha1_digest),
        Err(SignatureError::Sha1Refused(_))
    ));
    let two_references = signed.replacen(
        "</ds:SignedInfo>",
        r##"<ds:Reference URI="#_x"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>"##,
        1,
    );
    assert!(matches!(
        shape(&two_references),
        Err(SignatureError::Shape(_))
    ));
}

#[test]
fn ecdsa_query_signatures_round_trip() {
    let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
    let key = PKey::from_ec_key(ec).unwrap();
    let signing = SigningKey {
        key_der: key.private_key_to_der().unwrap(),
        kind: KeyKind::Ec(32),
        cert_b64: String::new(),
        key: key.clone(),
    };
    let query =
        signature::redirect_query("SAMLRequest", "<x/>", Some("rs"), Some(&signing)).unwrap();
    assert!(query.contains("ecdsa-sha256"));
    let public = PKey::public_key_from_pem(&key.public_key_to_pem().unwrap()).unwrap();
    let message = signature::verify_redirect(&query, &[public], false).unwrap();
    assert_eq!(message.relay_state.as_deref(), Some("rs"));
    // The IdP's RSA key does not verify it.
    let rsa = PKey::public_key_from_pem(&keys().idp.key.public_key_to_pem().unwrap()).unwrap();
    assert_eq!(
        signature::verify_redirect(&query, &[rsa], false),
        Err(RedirectError::Invalid)
    );
}

#[test]
fn query_signature_algorithms_follow_allow_sha1() {
    let public = PKey::public_key_from_pem(&keys().idp.key.public_key_to_pem().unwrap()).unwrap();
    let query =
        signature::redirect_query("SAMLRequest", "<x/>", None, Some(&keys().idp.signing_key()))
            .unwrap()
            .replace("rsa-sha256", "rsa-sha1")
            .replace("xmldsig-more%23rsa-sha1", "xmldsig%23rsa-sha1")
            .replace(
                "2001%2F04%2Fxmldsig%23rsa-sha1",
                "2000%2F09%2Fxmldsig%23rsa-sha1",
            );
    assert!(matches!(
        signature::verify_redirect(&query, &[public], false),
        Err(RedirectError::Algorithm(SignatureError::Sha1Refused(_)))
    ));
}
