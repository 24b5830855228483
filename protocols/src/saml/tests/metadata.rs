//! IdP metadata (federations, signatures, refusals) and the SP metadata.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use super::fixtures::*;
use crate::saml::metadata::{parse_idp_metadata, MetadataError, MetadataPolicy};
use crate::saml::signature::SignatureError;
use crate::saml::xml_guard::{self, MESSAGE_LIMITS};
use crate::saml::{sp_metadata_xml, IdpMetadataSource, SamlProvider};
use crate::{IdentityProvider, SetupError};

fn federation(signed: bool) -> String {
    let entities = [
        idp_entity(
            "https://idp1.example.org",
            Some(&keys().foreign.cert_b64),
            false,
        ),
        idp_entity(IDP, Some(&keys().idp.cert_b64), true),
        idp_entity(
            "https://idp3.example.org",
            Some(&keys().foreign.cert_b64),
            false,
        ),
    ]
    .concat();
    let template = if signed {
        template(
            "_federation",
            Signer {
                pair: &keys().federation,
                ..Signer::idp()
            },
        )
    } else {
        String::new()
    };
    let valid_until = if signed {
        format!(r#" validUntil="{}""#, at(7 * 24 * 3600))
    } else {
        String::new()
    };
    let xml = format!(
        r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_federation" Name="urn:example:federation"{valid_until}>{template}{entities}</md:EntitiesDescriptor>"#
    );
    if signed {
        sign(
            &xml,
            Signer {
                pair: &keys().federation,
                ..Signer::idp()
            },
        )
    } else {
        xml
    }
}

fn setting_of(error: SetupError) -> (&'static str, String) {
    match error {
        SetupError::Setting { setting, reason } => (setting, reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_federation_entity_is_picked_by_entity_id() {
    let provider = provider_with(&federation(false), |s| {
        s.idp_entity_id = Some(IDP.into());
        s.sign_requests = crate::saml::SignRequests::Always;
    })
    .unwrap();
    assert_eq!(provider.idp_entity_id(), IDP);
    let idp = provider.metadata.snapshot();
    assert!(idp.want_authn_requests_signed);
    assert_eq!(idp.signing_certs.len(), 1);
    assert_eq!(
        idp.sso.redirect.as_ref().unwrap().location.as_str(),
        IDP_SSO
    );
    assert_eq!(
        idp.slo.post.as_ref().unwrap().location.as_str(),
        IDP_SLO_POST
    );
}

#[test]
fn several_idps_without_idp_entity_id_name_the_setting() {
    let (setting, reason) = setting_of(provider_with(&federation(false), |_| {}).unwrap_err());
    assert_eq!(setting, "idp_entity_id");
    assert!(reason.contains("3 SAML 2.0 IdPs"), "{reason}");
    let (setting, reason) = setting_of(
        provider_with(&federation(false), |s| {
            s.idp_entity_id = Some("https://nowhere.example".into())
        })
        .unwrap_err(),
    );
    assert_eq!(setting, "idp_entity_id");
    assert!(reason.contains("no entity"), "{reason}");
}

#[test]
fn an_idp_without_a_signing_certificate_stops_the_start() {
    let (setting, reason) =
        setting_of(provider_with(&idp_entity(IDP, None, false), |_| {}).unwrap_err());
    assert_eq!(setting, "idp_metadata");
    assert!(reason.contains("no signing certificate"), "{reason}");
}

#[test]
fn an_idp_asking_for_signed_requests_needs_a_signing_key() {
    let (setting, _) = setting_of(
        provider_with(&idp_entity(IDP, Some(&keys().idp.cert_b64), true), |s| {
            s.signing = None
        })
        .unwrap_err(),
    );
    assert_eq!(setting, "signing");
}

#[test]
fn signed_metadata_is_verified_and_tampering_refused() {
    let signed = federation(true);
    let trusted = vec![keys().federation.cert_pem.clone()];
    let provider = provider_with(&signed, |s| {
        s.idp_entity_id = Some(IDP.into());
        s.metadata_signing_certificates = trusted.clone();
    })
    .unwrap();
    assert_eq!(provider.idp_entity_id(), IDP);

    // Another IdP certificate slipped in: the digest no longer matches.
    let tampered = signed.replacen(&keys().idp.cert_b64, &keys().foreign.cert_b64, 1);
    let (setting, reason) = setting_of(
        provider_with(&tampered, |s| {
            s.idp_entity_id = Some(IDP.into());
            s.metadata_signing_certificates = trusted.clone();
        })
        .unwrap_err(),
    );
    assert_eq!(setting, "metadata_signing_certificates");
    assert!(reason.contains("invalid signature"), "{reason}");

    // Unsigned metadata when a signature is required.
    let (setting, _) = setting_of(
        provider_with(&federation(false), |s| {
            s.idp_entity_id = Some(IDP.into());
            s.metadata_signing_certificates = trusted.clone();
        })
        .unwrap_err(),
    );
    assert_eq!(setting, "metadata_signing_certificates");

    // Signed by someone else.
    let (setting, _) = setting_of(
        provider_with(&signed, |s| {
            s.idp_entity_id = Some(IDP.into());
            s.metadata_signing_certificates = vec![keys().foreign.cert_pem.clone()];
        })
        .unwrap_err(),
    );
    assert_eq!(setting, "metadata_signing_certificates");
}

#[test]
fn metadata_parse_errors_are_precise() {
    let policy = MetadataPolicy {
        idp_entity_id: None,
        trusted: &[],
        allow_sha1: false,
    };
    let expired = idp_metadata_xml().replacen(
        "entityID=",
        &format!(r#"validUntil="{}" entityID="#, at(-60)),
        1,
    );
    assert!(matches!(
        parse_idp_metadata(&expired, &policy, now()).unwrap_err(),
        MetadataError::Expired(_)
    ));
    let doctype = format!("<!DOCTYPE x>{}", idp_metadata_xml());
    assert!(matches!(
        parse_idp_metadata(&doctype, &policy, now()).unwrap_err(),
        MetadataError::Xml(_)
    ));
    let other = r#"<foo xmlns="urn:x"/>"#;
    assert_eq!(
        parse_idp_metadata(other, &policy, now()).unwrap_err(),
        MetadataError::NotMetadata
    );
    // A signature somewhere else than on the root does not count as the document's.
    let trusted = [samael::crypto::CertificateDer::from(
        openssl::x509::X509::from_pem(keys().federation.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap(),
    )];
    let signed_policy = MetadataPolicy {
        trusted: &trusted,
        ..policy
    };
    assert_eq!(
        parse_idp_metadata(&idp_metadata_xml(), &signed_policy, now()).unwrap_err(),
        MetadataError::Signature(SignatureError::Missing)
    );
}

/// Serves `bodies` in turn on a loopback port, one connection each, then stops.
fn serve(bodies: Vec<String>) -> url::Url {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for body in bodies {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/samlmetadata+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                body.len(),
                body
            );
        }
    });
    url::Url::parse(&format!("http://127.0.0.1:{port}/metadata")).unwrap()
}

#[tokio::test]
async fn url_metadata_is_fetched_at_start_and_a_failed_refresh_keeps_the_last_good() {
    let url = serve(vec![idp_metadata_xml()]);
    let mut settings = settings(IdpMetadataSource::Url(url));
    // Due at once; the server is gone by then.
    settings.metadata_refresh = Duration::ZERO;
    settings.http_timeout = Duration::from_secs(2);
    // Built from inside a runtime, as the gateway does.
    let provider = SamlProvider::new(settings).unwrap();
    assert_eq!(provider.idp_entity_id(), IDP);
    assert_eq!(provider.metadata_refresh_failures(), 0);
    let callback = url::Url::parse(ACS).unwrap();
    assert!(provider.begin(&callback).await.is_ok());
    assert_eq!(provider.metadata_refresh_failures(), 1);
    assert_eq!(provider.idp_entity_id(), IDP);
    // Not retried at once after a failure.
    assert!(provider.begin(&callback).await.is_ok());
    assert_eq!(provider.metadata_refresh_failures(), 1);
}

#[test]
fn url_metadata_must_be_https_off_loopback() {
    let settings = settings(IdpMetadataSource::Url(
        url::Url::parse("http://idp.example.org/metadata").unwrap(),
    ));
    let (setting, reason) = setting_of(SamlProvider::new(settings).unwrap_err());
    assert_eq!(setting, "idp_metadata");
    assert!(reason.contains("https"), "{reason}");
}

#[test]
fn sp_metadata_publishes_entity_acs_slo_and_both_certificates() {
    let settings = settings(IdpMetadataSource::File("/nonexistent".into()));
    let xml = sp_metadata_xml(&settings).unwrap();
    let root = xml_guard::parse(&xml, &MESSAGE_LIMITS).unwrap();
    const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
    assert!(root.is(MD, "EntityDescriptor"));
    assert_eq!(root.attr("entityID"), Some(SP));
    let sp = root.child(MD, "SPSSODescriptor").unwrap();
    assert_eq!(
        sp.attr("protocolSupportEnumeration"),
        Some("urn:oasis:names:tc:SAML:2.0:protocol")
    );
    assert_eq!(sp.attr("AuthnRequestsSigned"), Some("true"));
    assert_eq!(sp.attr("WantAssertionsSigned"), Some("true"));
    let keys_published: Vec<(Option<&str>, String)> = sp
        .children_named(MD, "KeyDescriptor")
        .map(|k| (k.attr("use"), k.descendants().last().unwrap().text()))
        .collect();
    assert_eq!(keys_published.len(), 2);
    assert_eq!(keys_published[0].0, Some("signing"));
    assert!(xml.contains(&keys().sp_signing.cert_b64));
    assert_eq!(keys_published[1].0, Some("encryption"));
    assert!(xml.contains(&keys().sp_encryption.cert_b64));
    assert!(xml.contains("http://www.w3.org/2009/xmlenc11#aes128-gcm"));
    assert!(xml.contains("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"));
    let slo: Vec<(Option<&str>, Option<&str>)> = sp
        .children_named(MD, "SingleLogoutService")
        .map(|s| (s.attr("Binding"), s.attr("Location")))
        .collect();
    assert_eq!(
        slo,
        vec![
            (Some(BINDING_REDIRECT), Some(SLO)),
            (Some(BINDING_POST), Some(SLO))
        ]
    );
    assert_eq!(
        sp.child(MD, "NameIDFormat").unwrap().text(),
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    );
    type Acs<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let acs: Vec<Acs> = sp
        .children_named(MD, "AssertionConsumerService")
        .map(|a| {
            (
                a.attr("Binding"),
                a.attr("Location"),
                a.attr("index"),
                a.attr("isDefault"),
            )
        })
        .collect();
    assert_eq!(
        acs,
        vec![
            (Some(BINDING_POST), Some(ACS), Some("0"), Some("true")),
            (Some(BINDING_POST), Some(ACS2), Some("1"), None),
        ]
    );
}

#[tokio::test]
async fn the_metadata_endpoint_serves_the_sp_metadata() {
    let provider = provider(|_| {});
    let outcome = provider
        .endpoint(
            "saml-metadata",
            &crate::EndpointRequest {
                query: &[],
                form: &[],
                raw_query: "",
                proofs: &crate::ProcessProofs::default(),
            },
        )
        .await;
    let crate::EndpointOutcome::Reply(reply) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/samlmetadata+xml");
    assert_eq!(reply.cache_control, Some("public, max-age=300"));
    assert!(reply.body.contains(SP));
}
