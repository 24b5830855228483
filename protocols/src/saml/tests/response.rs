//! The assertion consumer service: every refusal with its precise reason.

use super::fixtures::*;
use crate::saml::decrypt::DecryptError;
use crate::saml::response::ResponseError;
use crate::saml::signature::SignatureError;
use crate::saml::xml_guard::{EncodingError, XmlError};

#[test]
fn a_signed_response_is_accepted_with_its_attributes() {
    let spec = ResponseSpec::default();
    let login = Check::default().run(&spec.xml()).unwrap();
    assert_eq!(login.name_id.value, "alice-7f3e");
    assert_eq!(
        login.name_id.format.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    assert_eq!(login.name_id.name_qualifier.as_deref(), Some(IDP));
    assert_eq!(login.name_id.sp_name_qualifier.as_deref(), Some(SP));
    assert_eq!(login.response_id, spec.response_id);
    assert_eq!(login.assertion_id, spec.assertion_id);
    assert_eq!(login.session_index.as_deref(), Some("_sidx-42"));
    assert_eq!(
        login.authn_context_class_ref.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    );
    assert_eq!(login.attributes["mail"], vec!["alice@example.org"]);
    assert_eq!(
        login.attributes["eduPersonAffiliation"],
        vec!["member", "staff"]
    );
    // Built-in OID name, accents kept.
    assert_eq!(login.attributes["displayName"], vec!["Hélène Dupré"]);
}

#[test]
fn a_signed_assertion_in_an_unsigned_response_is_accepted() {
    let spec = ResponseSpec {
        sign_response: None,
        sign_assertion: Some(Signer::idp()),
        ..ResponseSpec::default()
    };
    let login = Check::default().run(&spec.xml()).unwrap();
    assert_eq!(login.name_id.value, "alice-7f3e");
}

#[test]
fn a_response_and_assertion_both_signed_are_accepted_even_when_assertion_signatures_are_required() {
    let spec = ResponseSpec {
        sign_assertion: Some(Signer::idp()),
        ..ResponseSpec::default()
    };
    let check = Check {
        require_signed_assertion: true,
        ..Check::default()
    };
    assert_eq!(check.run(&spec.xml()).unwrap().name_id.value, "alice-7f3e");
}

#[test]
fn require_signed_assertion_refuses_a_response_signature_alone() {
    let check = Check {
        require_signed_assertion: true,
        ..Check::default()
    };
    assert_eq!(
        check.run(&ResponseSpec::default().xml()).unwrap_err(),
        ResponseError::AssertionUnsigned
    );
}

#[test]
fn an_encrypted_assertion_in_a_signed_response_is_decrypted() {
    for data in [AES128_GCM, AES256_GCM] {
        for transport in [RSA_OAEP_MGF1P, RSA_OAEP11] {
            let spec = ResponseSpec {
                encrypt: Some(Encryption { data, transport }),
                ..ResponseSpec::default()
            };
            let login = Check::default().run(&spec.xml()).unwrap();
            assert_eq!(login.name_id.value, "alice-7f3e", "{data} {transport}");
            assert_eq!(login.attributes["mail"], vec!["alice@example.org"]);
        }
    }
}

#[test]
fn an_encrypted_signed_assertion_in_an_unsigned_response_is_accepted() {
    let spec = ResponseSpec {
        sign_response: None,
        sign_assertion: Some(Signer::idp()),
        encrypt: Some(Encryption::gcm()),
        ..ResponseSpec::default()
    };
    let check = Check {
        require_signed_assertion: true,
        ..Check::default()
    };
    assert_eq!(check.run(&spec.xml()).unwrap().name_id.value, "alice-7f3e");
}

#[test]
fn an_encrypted_unsigned_assertion_in_an_unsigned_response_is_refused() {
    let spec = ResponseSpec {
        sign_response: None,
        encrypt: Some(Encryption::gcm()),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&spec.xml()).unwrap_err(),
        ResponseError::Unsigned
    );
}

#[test]
fn decryption_tries_every_key_and_fails_generically() {
    let spec = ResponseSpec {
        encrypt: Some(Encryption::gcm()),
        ..ResponseSpec::default()
    };
    let xml = spec.xml();
    // The right key second (rotation).
    let check = Check {
        keys: vec![keys().foreign.key.clone(), keys().sp_encryption.key.clone()],
        ..Check::default()
    };
    assert!(check.run(&xml).is_ok());
    let wrong = Check {
        keys: vec![keys().foreign.key.clone()],
        ..Check::default()
    };
    assert_eq!(
        wrong.run(&xml).unwrap_err(),
        ResponseError::Decrypt(DecryptError::Failed)
    );
}

#[test]
fn a_truncated_ciphertext_fails_without_panicking() {
    let spec = ResponseSpec {
        sign_response: None,
        encrypt: Some(Encryption::gcm()),
        ..ResponseSpec::default()
    };
    let xml = spec.xml();
    // Replace the data CipherValue (the last one) with a few bytes.
    let start = xml.rfind("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
    let end = xml.rfind("</xenc:CipherValue>").unwrap();
    let short = format!("{}AAAA{}", &xml[..start], &xml[end..]);
    assert_eq!(
        Check::default().run(&short).unwrap_err(),
        ResponseError::Decrypt(DecryptError::Failed)
    );
}

#[test]
fn aes_cbc_is_refused_unless_allowed() {
    let spec = ResponseSpec {
        encrypt: Some(Encryption {
            data: AES128_CBC,
            transport: RSA_OAEP_MGF1P,
        }),
        ..ResponseSpec::default()
    };
    let xml = spec.xml();
    assert!(matches!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Decrypt(DecryptError::CbcRefused(_))
    ));
    let mut check = Check::default();
    check.decrypt.allow_cbc = true;
    assert_eq!(check.run(&xml).unwrap().name_id.value, "alice-7f3e");
}

#[test]
fn rsa_1_5_is_refused_unless_allowed() {
    let spec = ResponseSpec {
        encrypt: Some(Encryption {
            data: AES128_GCM,
            transport: RSA_1_5,
        }),
        ..ResponseSpec::default()
    };
    let xml = spec.xml();
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Decrypt(DecryptError::Rsa15Refused)
    );
    let mut check = Check::default();
    check.decrypt.allow_rsa1_5 = true;
    assert_eq!(check.run(&xml).unwrap().name_id.value, "alice-7f3e");
}

#[test]
fn one_byte_altered_in_signed_content_breaks_the_signature() {
    let xml = ResponseSpec::default().xml();
    let altered = xml.replacen("alice-7f3e", "alicf-7f3e", 1);
    assert_ne!(xml, altered);
    assert_eq!(
        Check::default().run(&altered).unwrap_err(),
        ResponseError::Signature(SignatureError::Invalid)
    );
}

fn remove_signatures(xml: &str) -> String {
    let mut out = xml.to_owned();
    while let Some(start) = out.find("<ds:Signature") {
        let end = out.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        out.replace_range(start..end, "");
    }
    out
}

#[test]
fn a_removed_signature_leaves_an_unsigned_response() {
    let xml = remove_signatures(&ResponseSpec::default().xml());
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Unsigned
    );
}

#[test]
fn a_signature_by_a_foreign_key_with_its_cert_in_keyinfo_is_invalid() {
    let spec = ResponseSpec {
        sign_response: Some(Signer {
            pair: &keys().foreign,
            ..Signer::idp()
        }),
        ..ResponseSpec::default()
    };
    let xml = spec.xml();
    assert!(xml.contains(&keys().foreign.cert_b64));
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Signature(SignatureError::Invalid)
    );
}

#[test]
fn rsa_sha1_is_refused_by_default_and_accepted_when_allowed() {
    let spec = ResponseSpec {
        sign_response: Some(Signer {
            alg: RSA_SHA1,
            digest: SHA1,
            ..Signer::idp()
        }),
        ..ResponseSpec::default()
    };
    let xml = spec.xml();
    assert!(matches!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Signature(SignatureError::Sha1Refused(_))
    ));
    let check = Check {
        allow_sha1: true,
        ..Check::default()
    };
    assert_eq!(check.run(&xml).unwrap().name_id.value, "alice-7f3e");
}

#[test]
fn two_assertions_are_refused() {
    let spec = ResponseSpec::default();
    let second = ResponseSpec {
        name_id: "admin".into(),
        ..ResponseSpec::default()
    }
    .assertion_xml();
    let xml = spec.wrap(&format!("{}{second}", spec.assertion_xml()));
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::AssertionCount(2)
    );
}

#[test]
fn an_evil_assertion_after_a_valid_signed_one_is_refused() {
    // XSW: the signed assertion kept, an unsigned one added after it, the Response unsigned.
    let signed = ResponseSpec {
        sign_response: None,
        sign_assertion: Some(Signer::idp()),
        ..ResponseSpec::default()
    };
    let evil = ResponseSpec {
        name_id: "admin".into(),
        sign_response: None,
        ..ResponseSpec::default()
    };
    let xml = signed.wrap(&format!(
        "{}{}",
        signed.assertion_xml(),
        evil.assertion_xml()
    ));
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::AssertionCount(2)
    );
}

#[test]
fn assertions_wrapped_in_extensions_or_ds_object_are_counted() {
    let spec = ResponseSpec::default();
    let signed = ResponseSpec {
        sign_response: None,
        sign_assertion: Some(Signer::idp()),
        ..spec.clone()
    };
    let evil = ResponseSpec {
        name_id: "admin".into(),
        sign_response: None,
        ..ResponseSpec::default()
    };
    // XSW: the signed assertion moved into Extensions, an evil one in its place.
    let in_extensions = ResponseSpec {
        sign_response: None,
        ..spec.clone()
    }
    .wrap(&format!(
        "<samlp:Extensions>{}</samlp:Extensions>{}",
        signed.assertion_xml(),
        evil.assertion_xml()
    ));
    assert_eq!(
        Check::default().run(&in_extensions).unwrap_err(),
        ResponseError::AssertionCount(2)
    );
    // XSW: inside a ds:Object of the Response's own (valid) signature.
    let xml = spec.xml();
    let with_object = xml.replacen(
        "</ds:KeyInfo>",
        &format!(
            "</ds:KeyInfo><ds:Object>{}</ds:Object>",
            evil.assertion_xml()
        ),
        1,
    );
    assert_eq!(
        Check::default().run(&with_object).unwrap_err(),
        ResponseError::AssertionCount(2)
    );
    // The only assertion, but not a direct child of the Response.
    let nested = ResponseSpec {
        sign_response: None,
        ..spec
    }
    .wrap(&format!(
        "<samlp:Extensions>{}</samlp:Extensions>",
        signed.assertion_xml()
    ));
    assert_eq!(
        Check::default().run(&nested).unwrap_err(),
        ResponseError::AssertionMisplaced
    );
}

#[test]
fn a_signed_response_for_another_element_is_not_enveloped() {
    // A signature moved to sign something it is not enveloped in.
    let xml = ResponseSpec::default().xml();
    let response_id = xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let moved = xml.replacen(&format!("URI=\"#{response_id}\""), "URI=\"#_other\"", 1);
    assert_eq!(
        Check::default().run(&moved).unwrap_err(),
        ResponseError::Signature(SignatureError::NotEnveloped)
    );
}

#[test]
fn a_comment_in_the_nameid_is_refused() {
    let xml = ResponseSpec::default().xml().replacen(
        "alice-7f3e",
        "admin@corp.example<!---->.evil.example",
        1,
    );
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Xml(XmlError::Comment)
    );
}

#[test]
fn a_doctype_is_refused() {
    let xml = format!(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]>{}"#,
        ResponseSpec::default().xml()
    );
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Xml(XmlError::Doctype)
    );
}

#[test]
fn a_processing_instruction_is_refused() {
    let xml = ResponseSpec::default()
        .xml()
        .replacen("<saml:Issuer>", "<?evil?><saml:Issuer>", 1);
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Xml(XmlError::ProcessingInstruction)
    );
}

#[test]
fn missing_or_wrong_audience_is_refused() {
    let missing = ResponseSpec {
        audiences: None,
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&missing.xml()).unwrap_err(),
        ResponseError::NoAudienceRestriction
    );
    let wrong = ResponseSpec {
        audiences: Some(vec!["https://other-sp.example.org".into()]),
        ..ResponseSpec::default()
    };
    assert!(matches!(
        Check::default().run(&wrong.xml()).unwrap_err(),
        ResponseError::Audience(_)
    ));
}

#[test]
fn wrong_or_missing_destination_is_refused() {
    let wrong = ResponseSpec {
        destination: Some(ACS2.into()),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&wrong.xml()).unwrap_err(),
        ResponseError::Destination(ACS2.into())
    );
    let missing = ResponseSpec {
        destination: None,
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&missing.xml()).unwrap_err(),
        ResponseError::Missing("Response Destination")
    );
}

#[test]
fn wrong_recipient_is_refused() {
    let spec = ResponseSpec {
        recipient: "https://evil.example/acs".into(),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&spec.xml()).unwrap_err(),
        ResponseError::Recipient(Some("https://evil.example/acs".into()))
    );
}

#[test]
fn wrong_issuer_is_refused() {
    let assertion = ResponseSpec {
        assertion_issuer: "https://evil.example/idp".into(),
        ..ResponseSpec::default()
    };
    assert!(matches!(
        Check::default().run(&assertion.xml()).unwrap_err(),
        ResponseError::Issuer {
            which: "Assertion",
            ..
        }
    ));
    let response = ResponseSpec {
        response_issuer: Some("https://evil.example/idp".into()),
        ..ResponseSpec::default()
    };
    assert!(matches!(
        Check::default().run(&response.xml()).unwrap_err(),
        ResponseError::Issuer {
            which: "Response",
            ..
        }
    ));
}

#[test]
fn expired_and_not_yet_valid_assertions_are_refused() {
    let expired = ResponseSpec {
        scd_not_on_or_after: at(-120),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&expired.xml()).unwrap_err(),
        ResponseError::Expired("the SubjectConfirmationData")
    );
    let conditions_expired = ResponseSpec {
        conditions_not_on_or_after: at(-120),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&conditions_expired.xml()).unwrap_err(),
        ResponseError::Expired("the Conditions")
    );
    let early = ResponseSpec {
        conditions_not_before: at(600),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&early.xml()).unwrap_err(),
        ResponseError::NotYetValid("the Conditions")
    );
    // Within the skew: accepted.
    let skewed = ResponseSpec {
        conditions_not_before: at(30),
        scd_not_on_or_after: at(-30),
        ..ResponseSpec::default()
    };
    assert!(Check::default().run(&skewed.xml()).is_ok());
}

#[test]
fn in_response_to_must_answer_the_request() {
    let other = ResponseSpec {
        in_response_to: Some("_another".into()),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&other.xml()).unwrap_err(),
        ResponseError::InResponseTo(Some("_another".into()))
    );
    let confirmation = ResponseSpec {
        scd_in_response_to: Some("_another".into()),
        ..ResponseSpec::default()
    };
    assert_eq!(
        Check::default().run(&confirmation.xml()).unwrap_err(),
        ResponseError::InResponseTo(Some("_another".into()))
    );
    // Unsolicited: InResponseTo must be absent.
    let unsolicited = Check {
        request_id: None,
        ..Check::default()
    };
    assert_eq!(
        unsolicited.run(&ResponseSpec::default().xml()).unwrap_err(),
        ResponseError::UnsolicitedInResponseTo(REQUEST_ID.into())
    );
    let idp_initiated = ResponseSpec {
        in_response_to: None,
        scd_in_response_to: None,
        ..ResponseSpec::default()
    };
    assert!(unsolicited.run(&idp_initiated.xml()).is_ok());
}

#[test]
fn a_non_success_status_is_a_denial() {
    let spec = ResponseSpec {
        status: "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
        sub_status: Some("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed".into()),
        status_message: Some("Authentication failed".into()),
        ..ResponseSpec::default()
    };
    let xml = spec.wrap("");
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::Status {
            code: "Responder/AuthnFailed".into(),
            message: Some("Authentication failed".into()),
        }
    );
}

#[test]
fn malformed_transport_is_refused() {
    assert_eq!(
        Check::default().run_encoded("not base64 !!").unwrap_err(),
        ResponseError::Encoding(EncodingError::NotBase64)
    );
    let latin1 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"<samlp:Response>\xe9</samlp:Response>",
    );
    assert_eq!(
        Check::default().run_encoded(&latin1).unwrap_err(),
        ResponseError::NotUtf8
    );
    let huge = "A".repeat(400 * 1024);
    assert!(matches!(
        Check::default().run_encoded(&huge).unwrap_err(),
        ResponseError::Encoding(EncodingError::TooLarge(_))
    ));
    // Wrapped base64 (76 columns) is fine.
    let xml = ResponseSpec::default().xml();
    let encoded = b64(&xml);
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert!(Check::default().run_encoded(&wrapped).is_ok());
}

#[test]
fn another_root_is_refused() {
    let xml = format!(r#"<samlp:AuthnRequest xmlns:samlp="{NS_P}" ID="_x"/>"#);
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::NotAResponse
    );
}

#[test]
fn an_unknown_condition_is_refused() {
    let spec = ResponseSpec::default();
    let mut unsigned = spec.clone();
    unsigned.sign_response = None;
    let assertion = unsigned.assertion_xml().replacen(
        "</saml:Conditions>",
        r#"<saml:Condition xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="x:Delegation"/></saml:Conditions>"#,
        1,
    );
    let xml = spec.wrap(&assertion);
    assert_eq!(
        Check::default().run(&xml).unwrap_err(),
        ResponseError::UnknownCondition("Condition".into())
    );
}

#[test]
fn a_decrypted_assertion_may_use_the_responses_namespace_declarations() {
    let spec = ResponseSpec::default();
    let assertion = spec
        .assertion_xml()
        .replacen(&format!(r#" xmlns:saml="{NS_A}""#), "", 1);
    assert!(!assertion.contains("xmlns:saml"));
    let xml = spec.wrap(&encrypt(&assertion, Encryption::gcm()).replacen(
        &format!(r#"<saml:EncryptedAssertion xmlns:saml="{NS_A}">"#),
        "<saml:EncryptedAssertion>",
        1,
    ));
    assert_eq!(
        Check::default().run(&xml).unwrap().name_id.value,
        "alice-7f3e"
    );
}
