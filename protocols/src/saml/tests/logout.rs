//! Single logout both ways, both bindings.

use time::OffsetDateTime;

use super::fixtures::*;
use crate::saml::logout::{read_redirect, LogoutError, NameIdKey, SloContext, MAX_LOGOUT_BYTES};
use crate::saml::request::{logout_request_id, LogoutRequest, LogoutResponse, NameId};
use crate::saml::signature::{self, RedirectError};
use crate::saml::xml_guard::{self, EncodingError, MESSAGE_LIMITS};
use crate::{
    BrowserTo, EndpointOutcome, EndpointRequest, IdentityProvider, LogoutHandle, Principal,
};

const P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

fn name_id() -> NameId {
    NameId {
        value: "alice-7f3e".into(),
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        name_qualifier: None,
        sp_name_qualifier: None,
    }
}

/// The key the sessions of [`name_id`] are filed under (its qualifiers defaulted).
fn key() -> NameIdKey {
    NameIdKey::new(&name_id(), IDP, SP)
}

/// An IdP LogoutRequest to our SLO URL.
fn idp_logout_request(destination: &str, session_index: Option<&str>) -> String {
    let destination = url::Url::parse(destination).unwrap();
    let name_id = name_id();
    LogoutRequest {
        id: "_idp-logout-1",
        issue_instant: OffsetDateTime::now_utc(),
        not_on_or_after: OffsetDateTime::now_utc() + time::Duration::minutes(5),
        destination: &destination,
        issuer: IDP,
        name_id: &name_id,
        session_index,
    }
    .to_xml(None)
}

async fn get(provider: &crate::saml::SamlProvider, raw_query: &str) -> EndpointOutcome {
    provider
        .endpoint(
            "saml-slo",
            &EndpointRequest {
                query: &[],
                form: &[],
                raw_query,
                proofs: &crate::ProcessProofs::default(),
            },
        )
        .await
}

async fn post(provider: &crate::saml::SamlProvider, form: &[(String, String)]) -> EndpointOutcome {
    provider
        .endpoint(
            "saml-slo-post",
            &EndpointRequest {
                query: &[],
                form,
                raw_query: "",
                proofs: &crate::ProcessProofs::default(),
            },
        )
        .await
}

fn refused_reason(outcome: EndpointOutcome) -> String {
    match outcome {
        EndpointOutcome::Refused { reason, reply } => {
            assert_eq!(reply.status, 400);
            reason
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_idp_logout_request_by_redirect_ends_the_sessions_and_answers_signed() {
    let provider = provider(|_| {});
    let xml = idp_logout_request(SLO, Some("_sidx-42"));
    let query = signature::redirect_query(
        "SAMLRequest",
        &xml,
        Some("idp relay/state"),
        Some(&keys().idp.signing_key()),
    )
    .unwrap();
    let outcome = get(&provider, &query).await;
    let EndpointOutcome::EndSessions {
        tags,
        subject,
        reply,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(tags, vec![key().session_tag("idp", "_sidx-42")]);
    assert_eq!(subject.as_deref(), Some("alice-7f3e"));
    let Some(BrowserTo::Redirect { location }) = reply.navigate else {
        panic!("{:?}", reply.navigate)
    };
    assert!(location.as_str().starts_with(IDP_SLO));
    // Our LogoutResponse, signed with our key.
    let public = openssl::pkey::PKey::public_key_from_pem(
        &keys().sp_signing.key.public_key_to_pem().unwrap(),
    )
    .unwrap();
    let message = signature::verify_redirect(location.query().unwrap(), &[public], false).unwrap();
    assert_eq!(message.param, "SAMLResponse");
    assert_eq!(message.relay_state.as_deref(), Some("idp relay/state"));
    let deflated = xml_guard::decode_base64(&message.message, MAX_LOGOUT_BYTES).unwrap();
    let answer =
        String::from_utf8(xml_guard::inflate(&deflated, MAX_LOGOUT_BYTES).unwrap()).unwrap();
    let root = xml_guard::parse(&answer, &MESSAGE_LIMITS).unwrap();
    assert!(root.is(P, "LogoutResponse"));
    assert_eq!(root.attr("InResponseTo"), Some("_idp-logout-1"));
    assert_eq!(root.attr("Destination"), Some(IDP_SLO));
    assert_eq!(
        root.child(P, "Status")
            .unwrap()
            .child(P, "StatusCode")
            .unwrap()
            .attr("Value"),
        Some("urn:oasis:names:tc:SAML:2.0:status:Success")
    );
}

#[tokio::test]
async fn without_session_index_the_name_id_sessions_end() {
    let provider = provider(|_| {});
    let xml = idp_logout_request(SLO, None);
    let query =
        signature::redirect_query("SAMLRequest", &xml, None, Some(&keys().idp.signing_key()))
            .unwrap();
    let EndpointOutcome::EndSessions { tags, .. } = get(&provider, &query).await else {
        panic!()
    };
    assert_eq!(tags, vec![key().name_id_tag("idp")]);
}

#[tokio::test]
async fn unsigned_foreign_or_misdirected_logout_requests_are_refused() {
    let provider = provider(|_| {});
    let xml = idp_logout_request(SLO, Some("_sidx-42"));
    let unsigned = signature::redirect_query("SAMLRequest", &xml, None, None).unwrap();
    assert!(refused_reason(get(&provider, &unsigned).await).contains("not signed"));
    let foreign = signature::redirect_query(
        "SAMLRequest",
        &xml,
        None,
        Some(&keys().foreign.signing_key()),
    )
    .unwrap();
    assert!(refused_reason(get(&provider, &foreign).await).contains("invalid query signature"));
    // The signed octets are the query as received: altering the RelayState breaks it.
    let altered = signature::redirect_query(
        "SAMLRequest",
        &xml,
        Some("a"),
        Some(&keys().idp.signing_key()),
    )
    .unwrap()
    .replacen("RelayState=a", "RelayState=b", 1);
    assert!(refused_reason(get(&provider, &altered).await).contains("invalid query signature"));
    let misdirected = idp_logout_request("https://other.example.org/.guichet/saml-slo/idp", None);
    let query = signature::redirect_query(
        "SAMLRequest",
        &misdirected,
        None,
        Some(&keys().idp.signing_key()),
    )
    .unwrap();
    assert!(refused_reason(get(&provider, &query).await).contains("Destination"));
}

#[test]
fn a_deflate_bomb_is_refused_after_its_signature() {
    let provider = provider(|_| {});
    let idp = provider.metadata.snapshot();
    let ctx = SloContext {
        idp: &idp,
        slo_urls: &provider.settings.slo_urls,
        skew: std::time::Duration::from_secs(60),
        now: OffsetDateTime::now_utc(),
        allow_sha1: false,
    };
    let bomb = " ".repeat(20 * 1024 * 1024);
    let query =
        signature::redirect_query("SAMLRequest", &bomb, None, Some(&keys().idp.signing_key()))
            .unwrap();
    assert!(query.len() < 200 * 1024, "{}", query.len());
    assert_eq!(
        read_redirect(&query, &ctx).unwrap_err(),
        LogoutError::Encoding(EncodingError::InflatesTooLarge(MAX_LOGOUT_BYTES))
    );
    // Unsigned, it is not even inflated.
    let unsigned = signature::redirect_query("SAMLRequest", &bomb, None, None).unwrap();
    assert_eq!(
        read_redirect(&unsigned, &ctx).unwrap_err(),
        LogoutError::Redirect(RedirectError::Unsigned)
    );
}

#[tokio::test]
async fn an_idp_logout_request_by_post_needs_its_enveloped_signature() {
    let provider = provider(|_| {});
    let xml = idp_logout_request(SLO, Some("_sidx-42"));
    let with_template = xml.replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer>{}", template("_idp-logout-1", Signer::idp())),
        1,
    );
    let signed = sign(&with_template, Signer::idp());
    let form = vec![
        ("SAMLRequest".to_string(), b64(&signed)),
        ("RelayState".to_string(), "r".to_string()),
    ];
    let EndpointOutcome::EndSessions { tags, reply, .. } = post(&provider, &form).await else {
        panic!()
    };
    assert_eq!(tags, vec![key().session_tag("idp", "_sidx-42")]);
    assert!(matches!(reply.navigate, Some(BrowserTo::Redirect { .. })));
    let unsigned = vec![("SAMLRequest".to_string(), b64(&xml))];
    assert!(refused_reason(post(&provider, &unsigned).await).contains("not signed"));
    let tampered = vec![(
        "SAMLRequest".to_string(),
        b64(&signed.replacen("_sidx-42", "_sidx-43", 1)),
    )];
    assert!(refused_reason(post(&provider, &tampered).await).contains("invalid signature"));
}

fn principal() -> Principal {
    Principal {
        provider: "idp".into(),
        subject: "alice-7f3e".into(),
        attributes: Default::default(),
        auth_time: OffsetDateTime::now_utc(),
        auth_level: None,
        logout: LogoutHandle::Saml {
            name_id: "alice-7f3e".into(),
            name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
            session_index: Some("_sidx-42".into()),
            name_qualifier: Some(IDP.into()),
            sp_name_qualifier: Some(SP.into()),
        },
    }
}

/// The IdP's signed LogoutResponse by redirect.
fn idp_logout_response(in_response_to: &str, status_ok: bool, relay_state: &str) -> String {
    let destination = url::Url::parse(SLO).unwrap();
    let mut xml = LogoutResponse {
        id: "_idp-answer",
        in_response_to,
        issue_instant: OffsetDateTime::now_utc(),
        destination: &destination,
        issuer: IDP,
    }
    .to_xml(None);
    if !status_ok {
        xml = xml.replace(
            "urn:oasis:names:tc:SAML:2.0:status:Success",
            "urn:oasis:names:tc:SAML:2.0:status:PartialLogout",
        );
    }
    signature::redirect_query(
        "SAMLResponse",
        &xml,
        Some(relay_state),
        Some(&keys().idp.signing_key()),
    )
    .unwrap()
}

#[tokio::test]
async fn sign_out_sends_a_signed_logout_request_and_its_answer_returns_the_state() {
    let provider = provider(|_| {});
    let back = url::Url::parse("https://app.example.org/").unwrap();
    let state = "gateway-logout-state-0123456789";
    let Some(BrowserTo::Redirect { location }) =
        provider.sign_out(&principal(), &back, state).await.unwrap()
    else {
        panic!()
    };
    assert!(location.as_str().starts_with(IDP_SLO));
    let public = openssl::pkey::PKey::public_key_from_pem(
        &keys().sp_signing.key.public_key_to_pem().unwrap(),
    )
    .unwrap();
    let message = signature::verify_redirect(location.query().unwrap(), &[public], false).unwrap();
    assert_eq!(message.relay_state.as_deref(), Some(state));
    let deflated = xml_guard::decode_base64(&message.message, MAX_LOGOUT_BYTES).unwrap();
    let xml = String::from_utf8(xml_guard::inflate(&deflated, MAX_LOGOUT_BYTES).unwrap()).unwrap();
    let request = xml_guard::parse(&xml, &MESSAGE_LIMITS).unwrap();
    assert!(request.is(P, "LogoutRequest"));
    let id = logout_request_id(state);
    assert_eq!(request.attr("ID"), Some(id.as_str()));
    assert_eq!(request.attr("Destination"), Some(IDP_SLO));
    assert!(request.attr("NotOnOrAfter").is_some());
    let name_id = request.child(NS_A, "NameID").unwrap();
    assert_eq!(name_id.text(), "alice-7f3e");
    assert_eq!(name_id.attr("NameQualifier"), Some(IDP));
    assert_eq!(name_id.attr("SPNameQualifier"), Some(SP));
    assert_eq!(request.child(P, "SessionIndex").unwrap().text(), "_sidx-42");

    let answer = idp_logout_response(&id, true, state);
    assert_eq!(
        get(&provider, &answer).await,
        EndpointOutcome::SignOutReturned {
            state: state.into()
        }
    );
    // A partial logout still returns (the local session is over), with a warning.
    let partial = idp_logout_response(&id, false, state);
    assert_eq!(
        get(&provider, &partial).await,
        EndpointOutcome::SignOutReturned {
            state: state.into()
        }
    );
    // An answer to another logout (another state) is refused.
    let other = idp_logout_response(&id, true, "another-state");
    assert!(refused_reason(get(&provider, &other).await).contains("InResponseTo"));
}

#[tokio::test]
async fn sign_out_needs_a_saml_session_and_a_signing_key() {
    let back = url::Url::parse("https://app.example.org/").unwrap();
    let unsigned = provider(|s| s.signing = None);
    assert_eq!(
        unsigned.sign_out(&principal(), &back, "s").await.unwrap(),
        None
    );
    let mut local = principal();
    local.logout = LogoutHandle::None;
    assert_eq!(
        provider(|_| {}).sign_out(&local, &back, "s").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_idp_with_only_post_single_logout_is_answered_by_post() {
    let metadata = idp_metadata_xml().replacen(
        &format!(r#"<md:SingleLogoutService Binding="{BINDING_REDIRECT}" Location="{IDP_SLO}"/>"#),
        "",
        1,
    );
    let provider = provider_with(&metadata, |_| {}).unwrap();
    let xml = idp_logout_request(SLO, Some("_sidx-42"));
    let query = signature::redirect_query(
        "SAMLRequest",
        &xml,
        Some("r"),
        Some(&keys().idp.signing_key()),
    )
    .unwrap();
    let EndpointOutcome::EndSessions { reply, .. } = get(&provider, &query).await else {
        panic!()
    };
    let Some(BrowserTo::AutoPost { action, fields }) = reply.navigate else {
        panic!("{:?}", reply.navigate)
    };
    assert_eq!(action.as_str(), IDP_SLO_POST);
    assert_eq!(fields[0].0, "SAMLResponse");
    assert_eq!(fields[1], ("RelayState".to_string(), "r".to_string()));
    let answer =
        String::from_utf8(xml_guard::decode_base64(&fields[0].1, MAX_LOGOUT_BYTES).unwrap())
            .unwrap();
    let sp_cert = samael::crypto::CertificateDer::from(
        openssl::x509::X509::from_pem(keys().sp_signing.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap(),
    );
    let reduced =
        signature::verify_and_reduce(&answer, &[sp_cert], false, &MESSAGE_LIMITS).unwrap();
    assert!(reduced.is(P, "LogoutResponse"));
    assert_eq!(reduced.attr("InResponseTo"), Some("_idp-logout-1"));

    // Our own sign-out goes by POST too, signed in the document.
    let back = url::Url::parse("https://app.example.org/").unwrap();
    let Some(BrowserTo::AutoPost { action, fields }) =
        provider.sign_out(&principal(), &back, "st").await.unwrap()
    else {
        panic!()
    };
    assert_eq!(action.as_str(), IDP_SLO_POST);
    assert_eq!(fields[1], ("RelayState".to_string(), "st".to_string()));
}
