//! The provider end to end within the crate: begin (both bindings, signed), finish (RelayState,
//! unsolicited, replay, denial), the principal and its session tags.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fixtures::*;
use crate::saml::logout::NameIdKey;
use crate::saml::metadata::{parse_idp_metadata, MetadataPolicy};
use crate::saml::request::NameId;
use crate::saml::signature;
use crate::saml::xml_guard::{self, MESSAGE_LIMITS};
use crate::saml::{AuthnBinding, RequestedAuthnContext, SignRequests};
use crate::{
    Callback, FinishContext, IdentityProvider, LoginStart, LogoutHandle, ProcessProofs,
    ProviderError, ProviderState,
};

fn query_pairs(url: &url::Url) -> BTreeMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// The AuthnRequest inside a redirect, its query signature checked with our signing cert.
fn redirect_request(location: &url::Url) -> xml_guard::Element {
    let sp_cert = keys().sp_signing.key.public_key_to_pem().unwrap();
    let public = openssl::pkey::PKey::public_key_from_pem(&sp_cert).unwrap();
    let message = signature::verify_redirect(location.query().unwrap(), &[public], false).unwrap();
    let deflated = xml_guard::decode_base64(&message.message, 64 * 1024).unwrap();
    let xml = String::from_utf8(xml_guard::inflate(&deflated, 64 * 1024).unwrap()).unwrap();
    xml_guard::parse(&xml, &MESSAGE_LIMITS).unwrap()
}

#[tokio::test]
async fn begin_redirects_with_a_signed_authn_request() {
    let provider = provider(|s| {
        s.sign_requests = SignRequests::Always;
        s.force_authn = true;
        s.requested_authn_context = Some(RequestedAuthnContext {
            comparison: "minimum".into(),
            class_refs: vec![
                "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".into(),
            ],
        });
    });
    let callback = url::Url::parse(ACS2).unwrap();
    let (start, state) = provider.begin(&callback).await.unwrap();
    let LoginStart::Redirect { location } = start else {
        panic!("{start:?}")
    };
    assert!(location.as_str().starts_with(IDP_SSO));
    let pairs = query_pairs(&location);
    assert_eq!(
        pairs["SigAlg"],
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    assert_eq!(Some(pairs["RelayState"].as_str()), state.get("relay_state"));
    assert_eq!(pairs["RelayState"].len(), 43);
    let request = redirect_request(&location);
    const P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
    assert!(request.is(P, "AuthnRequest"));
    let id = request.attr("ID").unwrap();
    assert_eq!(Some(id), state.get("request_id"));
    assert_eq!(id.len(), 65);
    assert!(id.starts_with('_'));
    assert_eq!(request.attr("Destination"), Some(IDP_SSO));
    assert_eq!(request.attr("AssertionConsumerServiceURL"), Some(ACS2));
    assert_eq!(state.get("acs_url"), Some(ACS2));
    assert_eq!(request.attr("ProtocolBinding"), Some(BINDING_POST));
    assert_eq!(request.attr("ForceAuthn"), Some("true"));
    assert_eq!(request.child(NS_A, "Issuer").unwrap().text(), SP);
    let policy = request.child(P, "NameIDPolicy").unwrap();
    assert_eq!(policy.attr("AllowCreate"), Some("true"));
    assert_eq!(
        policy.attr("Format"),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    let context = request.child(P, "RequestedAuthnContext").unwrap();
    assert_eq!(context.attr("Comparison"), Some("minimum"));
}

#[tokio::test]
async fn begin_refuses_a_callback_that_is_not_an_acs_url() {
    let provider = provider(|_| {});
    let error = provider
        .begin(&url::Url::parse("https://evil.example/.guichet/callback/idp").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
}

#[tokio::test]
async fn begin_unsigned_by_default_when_the_idp_does_not_ask() {
    let provider = provider(|_| {});
    let (LoginStart::Redirect { location }, _) = provider
        .begin(&url::Url::parse(ACS).unwrap())
        .await
        .unwrap()
    else {
        panic!()
    };
    let pairs = query_pairs(&location);
    assert!(pairs.contains_key("SAMLRequest"));
    assert!(!pairs.contains_key("Signature"));
}

#[tokio::test]
async fn begin_by_post_sends_an_enveloped_signature() {
    let provider = provider(|s| {
        s.binding = AuthnBinding::Post;
        s.sign_requests = SignRequests::Always;
    });
    let (start, state) = provider
        .begin(&url::Url::parse(ACS).unwrap())
        .await
        .unwrap();
    let LoginStart::AutoPost { action, fields } = start else {
        panic!("{start:?}")
    };
    assert_eq!(action.as_str(), IDP_SSO_POST);
    assert_eq!(fields[0].0, "SAMLRequest");
    assert_eq!(
        fields[1],
        (
            "RelayState".to_string(),
            state.get("relay_state").unwrap().to_string()
        )
    );
    let xml =
        String::from_utf8(xml_guard::decode_base64(&fields[0].1, 64 * 1024).unwrap()).unwrap();
    // Verifiable with our own certificate, as the IdP would from our metadata.
    let sp_cert = samael::crypto::CertificateDer::from(
        openssl::x509::X509::from_pem(keys().sp_signing.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap(),
    );
    let reduced = signature::verify_and_reduce(&xml, &[sp_cert], false, &MESSAGE_LIMITS).unwrap();
    assert_eq!(reduced.attr("ID"), state.get("request_id"));
}

fn ctx(proofs: Arc<ProcessProofs>) -> FinishContext {
    FinishContext {
        callback_url: url::Url::parse(ACS).unwrap(),
        proofs,
    }
}

fn state() -> ProviderState {
    ProviderState(vec![
        ("request_id".into(), REQUEST_ID.into()),
        ("relay_state".into(), "relay-123".into()),
        ("acs_url".into(), ACS.into()),
    ])
}

fn callback(xml: &str, relay_state: Option<&str>) -> Callback {
    let mut form = vec![("SAMLResponse".to_string(), b64(xml))];
    if let Some(relay_state) = relay_state {
        form.push(("RelayState".into(), relay_state.into()));
    }
    Callback {
        query: Vec::new(),
        form,
    }
}

#[tokio::test]
async fn finish_builds_the_principal_and_refuses_a_replay() {
    let provider = provider(|_| {});
    let proofs = Arc::new(ProcessProofs::default());
    let xml = ResponseSpec::default().xml();
    let principal = provider
        .finish(
            &ctx(proofs.clone()),
            &callback(&xml, Some("relay-123")),
            &state(),
        )
        .await
        .unwrap();
    assert_eq!(principal.provider, "idp");
    assert_eq!(principal.subject, "alice-7f3e");
    assert_eq!(principal.attribute("mail"), Some("alice@example.org"));
    assert_eq!(
        principal.auth_level.as_ref().map(|l| l.0.as_str()),
        Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    );
    assert_eq!(
        principal.logout,
        LogoutHandle::Saml {
            name_id: "alice-7f3e".into(),
            name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
            session_index: Some("_sidx-42".into()),
            name_qualifier: Some(IDP.into()),
            sp_name_qualifier: Some(SP.into()),
        }
    );
    assert_eq!(provider.session_tags(&principal), {
        // The LogoutRequest's NameID without qualifiers is the same NameID (defaults).
        let key = NameIdKey::new(
            &NameId {
                value: "alice-7f3e".into(),
                format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
                name_qualifier: None,
                sp_name_qualifier: None,
            },
            IDP,
            SP,
        );
        vec![key.name_id_tag("idp"), key.session_tag("idp", "_sidx-42")]
    });
    let replay = provider
        .finish(&ctx(proofs), &callback(&xml, Some("relay-123")), &state())
        .await
        .unwrap_err();
    assert!(
        matches!(&replay, ProviderError::InvalidProof(reason) if reason.starts_with("replayed response:")),
        "{replay:?}"
    );
}

#[tokio::test]
async fn the_same_assertion_in_another_response_is_a_replay() {
    let provider = provider(|_| {});
    let proofs = Arc::new(ProcessProofs::default());
    let first = ResponseSpec::default();
    let second = ResponseSpec {
        response_id: "_another-response".into(),
        ..first.clone()
    };
    provider
        .finish(
            &ctx(proofs.clone()),
            &callback(&first.xml(), Some("relay-123")),
            &state(),
        )
        .await
        .unwrap();
    let replay = provider
        .finish(
            &ctx(proofs),
            &callback(&second.xml(), Some("relay-123")),
            &state(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&replay, ProviderError::InvalidProof(reason) if reason.starts_with("replayed assertion:")),
        "{replay:?}"
    );
}

#[tokio::test]
async fn finish_checks_the_relay_state() {
    let provider = provider(|_| {});
    let xml = ResponseSpec::default().xml();
    let proofs = Arc::new(ProcessProofs::default());
    let wrong = provider
        .finish(
            &ctx(proofs.clone()),
            &callback(&xml, Some("relay-124")),
            &state(),
        )
        .await
        .unwrap_err();
    assert_eq!(wrong, ProviderError::Rejected("RelayState mismatch".into()));
    let missing = provider
        .finish(&ctx(proofs), &callback(&xml, None), &state())
        .await
        .unwrap_err();
    assert!(matches!(missing, ProviderError::MalformedCallback(_)));
}

#[tokio::test]
async fn unsolicited_responses_need_allow_unsolicited() {
    let idp_initiated = ResponseSpec {
        in_response_to: None,
        scd_in_response_to: None,
        ..ResponseSpec::default()
    }
    .xml();
    let refused = provider(|_| {});
    assert_eq!(refused.unsolicited_landing(), None);
    let error = refused
        .finish(
            &ctx(Arc::new(ProcessProofs::default())),
            &callback(&idp_initiated, Some("whatever")),
            &ProviderState::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected(reason) if reason.contains("unsolicited")),
        "{error:?}"
    );
    let allowed = provider(|s| {
        s.allow_unsolicited = true;
        s.unsolicited_landing = Some("portal".into());
    });
    assert_eq!(allowed.unsolicited_landing(), Some("portal"));
    let principal = allowed
        .finish(
            &ctx(Arc::new(ProcessProofs::default())),
            &callback(&idp_initiated, None),
            &ProviderState::default(),
        )
        .await
        .unwrap();
    assert_eq!(principal.subject, "alice-7f3e");
}

#[tokio::test]
async fn a_non_success_status_is_denied() {
    let spec = ResponseSpec {
        status: "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
        sub_status: Some("urn:oasis:names:tc:SAML:2.0:status:NoPassive".into()),
        ..ResponseSpec::default()
    };
    let error = provider(|_| {})
        .finish(
            &ctx(Arc::new(ProcessProofs::default())),
            &callback(&spec.wrap(""), Some("relay-123")),
            &state(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ProviderError::Denied {
            error: "Responder/NoPassive".into(),
            description: None
        }
    );
}

#[tokio::test]
async fn the_subject_can_come_from_an_attribute() {
    let provider = provider(|s| {
        s.subject_attribute = Some("mail".into());
        s.attribute_names.insert(
            "urn:oid:2.16.840.1.113730.3.1.241".into(),
            "fullName".into(),
        );
    });
    let principal = provider
        .finish(
            &ctx(Arc::new(ProcessProofs::default())),
            &callback(&ResponseSpec::default().xml(), Some("relay-123")),
            &state(),
        )
        .await
        .unwrap();
    assert_eq!(principal.subject, "alice@example.org");
    assert_eq!(principal.attribute("fullName"), Some("Hélène Dupré"));
    let missing =
        crate::saml::tests::fixtures::provider(|s| s.subject_attribute = Some("uid".into()))
            .finish(
                &ctx(Arc::new(ProcessProofs::default())),
                &callback(&ResponseSpec::default().xml(), Some("relay-123")),
                &state(),
            )
            .await
            .unwrap_err();
    assert!(matches!(missing, ProviderError::Rejected(_)));
}

#[test]
fn structured_attribute_values_give_their_text() {
    let xml = format!(
        r#"<saml:Assertion xmlns:saml="{NS_A}"><saml:AttributeStatement><saml:Attribute Name="urn:oid:1.3.6.1.4.1.5923.1.1.1.10"><saml:AttributeValue><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">abc123</saml:NameID></saml:AttributeValue></saml:Attribute><saml:Attribute Name="urn:example:custom" FriendlyName="custom"><saml:AttributeValue>x</saml:AttributeValue></saml:Attribute><saml:Attribute Name="urn:example:raw"><saml:AttributeValue>y</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#
    );
    let root = xml_guard::parse(&xml, &MESSAGE_LIMITS).unwrap();
    let attributes = crate::saml::attributes::collect(&root, &BTreeMap::new());
    assert_eq!(attributes["eduPersonTargetedID"], vec!["abc123"]);
    assert_eq!(attributes["custom"], vec!["x"]);
    assert_eq!(attributes["urn:example:raw"], vec!["y"]);
}

#[test]
fn the_idp_metadata_parsed_by_the_fixtures_is_what_the_provider_reads() {
    let idp = parse_idp_metadata(
        &idp_metadata_xml(),
        &MetadataPolicy {
            idp_entity_id: Some(IDP),
            trusted: &[],
            allow_sha1: false,
        },
        now(),
    )
    .unwrap();
    assert_eq!(idp.entity_id, IDP);
}
