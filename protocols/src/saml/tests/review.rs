//! The security review's findings, as regression tests.
//!
//! r01-r06 are the reviewer's attacks, each now refused (and for the SSRF ones, with a loopback
//! listener that must receive no request): a `ds:Signature` whose namespace is written with a
//! character reference (`xmldsig&#x23;`) was invisible to the pre-scan and verified by xmlsec,
//! so it could forge metadata, make xmlsec fetch URLs or read files, or run XSLT, before any
//! authentication. Then: every place where the pre-scan could read a document differently from
//! libxml2 (the root cause), the rules on what xmlsec may dereference, and the other findings
//! (metadata validity, replay window, logout tags, FriendlyName, echoed values, blocking work).

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::fixtures::*;
use crate::saml::blocking::{self, Stalled};
use crate::saml::decrypt::DecryptError;
use crate::saml::logout::{read_post, LogoutError, NameIdKey, SloContext};
use crate::saml::metadata::{parse_idp_metadata, MetadataError, MetadataPolicy};
use crate::saml::request::NameId;
use crate::saml::response::ResponseError;
use crate::saml::signature::SignatureError;
use crate::saml::xml_guard::{self, XmlError, MESSAGE_LIMITS, NS_DSIG};
use crate::{
    Callback, EndpointOutcome, EndpointRequest, FinishContext, IdentityProvider, OneTimeProofs,
    ProviderError, ProviderState,
};

/// The XML signature namespace as the reviewer wrote it: libxml2 reads `#`, a reader keeping
/// namespace names raw reads something else.
const DSIG_HIDDEN: &str = "http://www.w3.org/2000/09/xmldsig&#x23;";

fn parse(xml: &str) -> Result<xml_guard::Element, XmlError> {
    xml_guard::parse(xml, &MESSAGE_LIMITS)
}

fn ambiguous<T: std::fmt::Debug>(result: Result<T, XmlError>) {
    assert!(matches!(result, Err(XmlError::Ambiguous(_))), "{result:?}");
}

fn malformed<T: std::fmt::Debug>(result: Result<T, XmlError>) {
    assert!(matches!(result, Err(XmlError::Syntax(_))), "{result:?}");
}

// --- a loopback listener: did xmlsec fetch anything? ----------------------------------------

/// Accepts connections on a loopback port (reading each request, then closing it, so that a
/// fetching xmlsec would not hang) until [`Listener::requests`].
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Listener {
    fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).ok();
                        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        let mut buf = [0u8; 512];
                        let n = stream.read(&mut buf).unwrap_or(0);
                        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    Err(_) if stopping.load(Ordering::SeqCst) => return seen,
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Listener { port, stop, handle }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// What reached the listener (a last look at the backlog first).
    fn requests(self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(50));
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// A Signature in the namespace written `ns`, with one Reference to `uri` and `transforms`.
fn signature_in(ns: &str, uri: &str, transforms: &str) -> String {
    format!(
        concat!(
            r#"<ds:Signature xmlns:ds="{h}"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
            r#"<ds:SignatureMethod Algorithm="{alg}"/><ds:Reference URI="{uri}">{transforms}"#,
            r#"<ds:DigestMethod Algorithm="{d}"/><ds:DigestValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ds:DigestValue></ds:Reference></ds:SignedInfo>"#,
            r#"<ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"#
        ),
        h = ns,
        alg = RSA_SHA256,
        d = SHA256,
        uri = uri,
        transforms = transforms,
    )
}

/// The reviewer's hidden signature.
fn hidden_signature(uri: &str, transforms: &str) -> String {
    signature_in(DSIG_HIDDEN, uri, transforms)
}

/// An unsigned Response (a visible, unfilled signature template) carrying `extension` in its
/// Extensions.
fn acs_with(extension: &str) -> String {
    let spec = ResponseSpec {
        sign_response: None,
        ..ResponseSpec::default()
    };
    let visible_dummy = template(&spec.response_id, Signer::idp());
    spec.wrap(&spec.assertion_xml()).replacen(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{extension}</samlp:Extensions>{visible_dummy}<samlp:Status>"),
        1,
    )
}

fn acs_with_hidden(uri: &str, transforms: &str) -> String {
    acs_with(&hidden_signature(uri, transforms))
}

fn ambiguous_response(result: Result<impl std::fmt::Debug, ResponseError>) {
    assert!(
        matches!(result, Err(ResponseError::Xml(XmlError::Ambiguous(_)))),
        "{result:?}"
    );
}

// --- r01-r06 -----------------------------------------------------------------------------------

/// r01: the pre-scan kept namespace names raw (`xmldsig&#x23;`) where libxml2 decodes them; a
/// namespace declaration holding a reference is now refused, whatever it decodes to.
#[test]
fn r01_a_namespace_name_with_a_reference_is_refused() {
    for ns in [
        DSIG_HIDDEN,
        "http://www.w3.org/2000/09/xmldsig&#35;",
        "http://www.w3.org/2000/09/xmldsig#&amp;",
        "&#104;ttp://www.w3.org/2000/09/xmldsig#",
    ] {
        ambiguous(parse(&format!(r#"<a xmlns:ds="{ns}"><ds:Signature/></a>"#)));
        ambiguous(parse(&format!(r#"<a><Signature xmlns="{ns}"/></a>"#)));
    }
    // As written, the namespace is read as libxml2 reads it.
    let root = parse(&format!(r#"<a xmlns:ds="{NS_DSIG}"><ds:Signature/></a>"#)).unwrap();
    assert!(root.elements().next().unwrap().is(NS_DSIG, "Signature"));
}

fn federation_signed(extra_root_attributes: &str) -> String {
    let entities = [
        idp_entity(
            "https://idp1.example.org",
            Some(&keys().foreign.cert_b64),
            false,
        ),
        idp_entity(IDP, Some(&keys().idp.cert_b64), true),
    ]
    .concat();
    let signer = Signer {
        pair: &keys().federation,
        ..Signer::idp()
    };
    let xml = format!(
        r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_federation" Name="urn:example:federation"{extra_root_attributes}>{}{entities}</md:EntitiesDescriptor>"#,
        template("_federation", signer)
    );
    sign(&xml, signer)
}

fn valid_until() -> String {
    format!(r#" validUntil="{}""#, at(7 * 24 * 3600))
}

fn federation_der() -> [samael::crypto::CertificateDer; 1] {
    [samael::crypto::CertificateDer::from(
        openssl::x509::X509::from_pem(keys().federation.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap(),
    )]
}

fn bogus_root_signature(id: &str) -> String {
    format!(
        concat!(
            r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
            r##"<ds:SignatureMethod Algorithm="{alg}"/><ds:Reference URI="#{id}"><ds:Transforms>"##,
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            r#"</ds:Transforms><ds:DigestMethod Algorithm="{d}"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo>"#,
            r#"<ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"#
        ),
        alg = RSA_SHA256,
        d = SHA256,
        id = id,
    )
}

/// r02: a genuinely signed aggregate hidden in Extensions (its Signature's namespace written
/// with a reference), a bogus root signature for the pre-scan, the attacker's entity: refused.
/// Visible, the hidden signature makes a second one, refused too; and what is read of signed
/// metadata is the signed root only.
#[test]
fn r02_metadata_signature_bypass_is_refused() {
    let trusted = federation_der();
    let policy = MetadataPolicy {
        idp_entity_id: Some(IDP),
        trusted: &trusted,
        allow_sha1: false,
    };
    let genuine = federation_signed(&valid_until());
    let read = parse_idp_metadata(&genuine, &policy, now()).unwrap();
    assert_eq!(read.signing_certs.len(), 1);
    assert_eq!(read.signing_certs[0].der_data(), {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&keys().idp.cert_b64)
            .unwrap()
    });

    let dsig_declaration = r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">"#;
    let hidden = genuine.replacen(
        dsig_declaration,
        &format!(r#"<ds:Signature xmlns:ds="{DSIG_HIDDEN}">"#),
        1,
    );
    assert_ne!(hidden, genuine);
    let evil_entity = idp_entity(IDP, Some(&keys().foreign.cert_b64), false);
    let attack = |inner: &str| {
        format!(
            r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_evil"{}><md:Extensions>{inner}</md:Extensions>{}{evil_entity}</md:EntitiesDescriptor>"#,
            valid_until(),
            bogus_root_signature("_evil"),
        )
    };
    assert!(matches!(
        parse_idp_metadata(&attack(&hidden), &policy, now()),
        Err(MetadataError::Xml(XmlError::Ambiguous(_)))
    ));
    // The genuine signature visible: two signatures, xmlsec would verify both.
    assert_eq!(
        parse_idp_metadata(&attack(&genuine), &policy, now()).unwrap_err(),
        MetadataError::Signature(SignatureError::OtherSignatures(2))
    );
    // And without the bogus root signature: not the root's.
    let no_root_signature = format!(
        r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_evil"{}><md:Extensions>{genuine}</md:Extensions>{evil_entity}</md:EntitiesDescriptor>"#,
        valid_until()
    );
    assert_eq!(
        parse_idp_metadata(&no_root_signature, &policy, now()).unwrap_err(),
        MetadataError::Signature(SignatureError::NotEnveloped)
    );
}

/// r03: the hidden Reference to an http URL in a Response: refused before xmlsec, nothing
/// fetched.
#[test]
fn r03_acs_ssrf_through_a_hidden_reference_is_refused() {
    let listener = Listener::start();
    let xml = acs_with_hidden(&listener.url("ssrf-from-xmlsec"), "");
    ambiguous_response(Check::default().run(&xml));
    assert_eq!(listener.requests(), Vec::<String>::new());
}

/// r04: the same through the SLO POST endpoint (no login transaction needed).
#[test]
fn r04_slo_post_ssrf_through_a_hidden_reference_is_refused() {
    let listener = Listener::start();
    for ns in [DSIG_HIDDEN, NS_DSIG] {
        let xml = format!(
            concat!(
                r#"<samlp:LogoutRequest xmlns:samlp="{p}" xmlns:saml="{a}" ID="_lr1" Version="2.0" IssueInstant="{now}" Destination="{slo}">"#,
                r#"<saml:Issuer>{idp}</saml:Issuer><samlp:Extensions>{hidden}</samlp:Extensions>{visible}<saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"#
            ),
            p = NS_P,
            a = NS_A,
            now = at(0),
            slo = SLO,
            idp = IDP,
            visible = template("_lr1", Signer::idp()),
            hidden = signature_in(ns, &listener.url("ssrf-slo"), ""),
        );
        let form = vec![("SAMLRequest".to_string(), b64(&xml))];
        let idp = idp();
        let slo = [url::Url::parse(SLO).unwrap()];
        let ctx = SloContext {
            idp: &idp,
            slo_urls: &slo,
            skew: Duration::from_secs(60),
            now: now(),
            allow_sha1: false,
        };
        let result = read_post(&form, &ctx);
        assert!(
            matches!(
                result,
                Err(LogoutError::Xml(XmlError::Ambiguous(_)))
                    | Err(LogoutError::Signature(SignatureError::Shape(_)))
            ),
            "{result:?}"
        );
    }
    assert_eq!(listener.requests(), Vec::<String>::new());
}

/// r05: `file:///dev/zero` as a Reference made the verifying thread read forever: refused at
/// once now.
#[test]
fn r05_a_file_reference_is_refused_at_once() {
    for uri in ["file:///dev/zero", "/dev/zero", "", "#xpointer(/)"] {
        let xml = acs_with_hidden(uri, "");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Check::default().run(&xml).map(|_| ()));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("refused at once, not stuck reading");
        ambiguous_response(result);
        // Visible, the same Reference is refused by its shape.
        let visible = acs_with(&signature_in(NS_DSIG, uri, ""));
        assert!(matches!(
            Check::default().run(&visible),
            Err(ResponseError::Signature(SignatureError::Shape(_)))
        ));
    }
}

/// r06: an XSLT transform (whose stylesheet could fetch documents) in a hidden Reference:
/// refused, nothing fetched; visible, refused by the transform list.
#[test]
fn r06_an_xslt_transform_is_refused() {
    let listener = Listener::start();
    let xslt = format!(
        r#"<ds:Transforms><ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"><xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"><xsl:template match="/"><xsl:copy-of select="document('{}')"/></xsl:template></xsl:stylesheet></ds:Transform></ds:Transforms>"#,
        listener.url("xslt-document")
    );
    ambiguous_response(Check::default().run(&acs_with_hidden("", &xslt)));
    // In the Response's own signature, instead of its canonicalization transform.
    let xslt_transform = xslt
        .trim_start_matches("<ds:Transforms>")
        .trim_end_matches("</ds:Transforms>");
    let visible = ResponseSpec::default().xml().replacen(
        r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
        xslt_transform,
        1,
    );
    assert!(matches!(
        Check::default().run(&visible),
        Err(ResponseError::Signature(
            SignatureError::UnsupportedAlgorithm(_)
        ))
    ));
    assert_eq!(listener.requests(), Vec::<String>::new());
}

// --- F2: what xmlsec may dereference, in every document ----------------------------------------

/// A Reference reading `x:URI` before its `URI`: libxml2's xmlGetProp (xmlsec's reader) ignores
/// the prefix and takes the first; two attributes of one local name are refused.
#[test]
fn a_prefixed_uri_attribute_before_the_reference_uri_is_refused() {
    let listener = Listener::start();
    let spec = ResponseSpec::default();
    let xml = spec.xml().replacen(
        r#"<ds:Reference URI="#,
        &format!(
            r#"<ds:Reference xmlns:x="urn:x" x:URI="{}" URI="#,
            listener.url("prefixed-uri")
        ),
        1,
    );
    ambiguous_response(Check::default().run(&xml));
    // Alone, it is not the `#ID` URI the profile wants.
    let alone = spec.xml().replacen(
        r#"<ds:Reference URI="#,
        r#"<ds:Reference xmlns:x="urn:x" x:URI="#,
        1,
    );
    assert!(matches!(
        Check::default().run(&alone),
        Err(ResponseError::Signature(SignatureError::Shape(_)))
    ));
    assert_eq!(listener.requests(), Vec::<String>::new());
}

/// ds:Object, ds:Manifest (whose References xmlsec verifies), ds:RetrievalMethod, a URI
/// anywhere in a signature but on its Reference: refused, in a valid signature too.
#[test]
fn manifests_retrieval_methods_and_stray_uris_are_refused() {
    let listener = Listener::start();
    let xml = ResponseSpec::default().xml();
    assert!(Check::default().run(&xml).is_ok());
    let manifest = format!(
        r#"<ds:Object><ds:Manifest><ds:Reference URI="{}"><ds:DigestMethod Algorithm="{SHA256}"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:Manifest></ds:Object></ds:Signature>"#,
        listener.url("manifest")
    );
    let retrieval = format!(
        r#"<ds:RetrievalMethod URI="{}"/></ds:KeyInfo>"#,
        listener.url("retrieval")
    );
    let key_info_reference = format!(
        r#"<dsig11:KeyInfoReference xmlns:dsig11="http://www.w3.org/2009/xmldsig11#" URI="{}"/></ds:KeyInfo>"#,
        listener.url("key-info-reference")
    );
    let cases = [
        xml.replacen("</ds:Signature>", &manifest, 1),
        xml.replacen("</ds:KeyInfo>", &retrieval, 1),
        xml.replacen("</ds:KeyInfo>", &key_info_reference, 1),
        xml.replacen(
            "<ds:SignatureValue>",
            &format!(
                r#"<ds:SignatureValue xmlns:p="urn:p" p:URI="{}">"#,
                listener.url("attribute")
            ),
            1,
        ),
        // A Reference outside any SignedInfo.
        xml.replacen(
            "<samlp:Status>",
            &format!(
                r#"<samlp:Extensions><ds:Reference xmlns:ds="{NS_DSIG}" URI="{}"/></samlp:Extensions><samlp:Status>"#,
                listener.url("loose")
            ),
            1,
        ),
    ];
    for case in cases {
        let result = Check::default().run(&case);
        assert!(
            matches!(
                result,
                Err(ResponseError::Signature(SignatureError::Shape(_)))
            ),
            "{result:?}"
        );
    }
    assert_eq!(listener.requests(), Vec::<String>::new());
}

/// A Reference URI is `#` and a name: nothing an XPointer expression could be made of.
#[test]
fn reference_uris_are_a_name_only() {
    let xml = ResponseSpec::default().xml();
    for uri in [
        "#a'b",
        "#a b",
        "#a%41",
        "#1abc",
        "#a:b",
        "",
        "#xpointer(id('a'))",
    ] {
        let case = xml.replacen(
            r##"<ds:Reference URI="#_r"##,
            &format!(r#"<ds:Reference URI="{uri}_r"#),
            1,
        );
        let result = Check::default().run(&case);
        assert!(
            matches!(
                result,
                Err(ResponseError::Signature(SignatureError::Shape(_)))
            ),
            "{uri}: {result:?}"
        );
    }
}

/// Hidden or not, a signature nested anywhere in a decrypted assertion is checked before
/// xmlsec sees it.
#[test]
fn signatures_in_a_decrypted_assertion_are_checked_too() {
    let listener = Listener::start();
    let spec = ResponseSpec {
        sign_response: None,
        ..ResponseSpec::default()
    };
    for (ns, expected) in [(DSIG_HIDDEN, "failed"), (NS_DSIG, "shape")] {
        let assertion = spec.assertion_xml().replacen(
            "<saml:Subject>",
            &format!(
                "{}<saml:Subject>",
                signature_in(ns, &listener.url("decrypted"), "")
            ),
            1,
        );
        let xml = spec.wrap(&encrypt(&assertion, Encryption::gcm()));
        let result = Check::default().run(&xml);
        match expected {
            // Unreadable plaintext is the same failure as a wrong key.
            "failed" => assert_eq!(
                result.unwrap_err(),
                ResponseError::Decrypt(DecryptError::Failed)
            ),
            _ => assert!(
                matches!(
                    result,
                    Err(ResponseError::Signature(SignatureError::Shape(_)))
                ),
                "{result:?}"
            ),
        }
    }
    assert_eq!(listener.requests(), Vec::<String>::new());
}

/// Signed metadata: a hidden or nested signature with an external Reference is refused before
/// xmlsec.
#[test]
fn signatures_nested_in_metadata_are_checked_too() {
    let listener = Listener::start();
    let trusted = federation_der();
    let policy = MetadataPolicy {
        idp_entity_id: Some(IDP),
        trusted: &trusted,
        allow_sha1: false,
    };
    for ns in [DSIG_HIDDEN, NS_DSIG] {
        let nested = signature_in(ns, &listener.url("metadata"), "");
        let xml = federation_signed(&valid_until()).replacen(
            "<md:IDPSSODescriptor",
            &format!("<md:Extensions>{nested}</md:Extensions><md:IDPSSODescriptor"),
            1,
        );
        let result = parse_idp_metadata(&xml, &policy, now());
        assert!(
            matches!(
                result,
                Err(MetadataError::Xml(XmlError::Ambiguous(_)))
                    | Err(MetadataError::Signature(SignatureError::Shape(_)))
            ),
            "{result:?}"
        );
    }
    assert_eq!(listener.requests(), Vec::<String>::new());
}

/// `finish` and the SLO endpoint refuse the hidden signature (they verify on the blocking pool).
#[tokio::test]
async fn finish_and_the_slo_endpoint_refuse_the_attack() {
    let listener = Listener::start();
    let provider = provider(|_| {});
    let xml = acs_with_hidden(&listener.url("finish"), "");
    let error = provider
        .finish(
            &FinishContext {
                callback_url: url::Url::parse(ACS).unwrap(),
                proofs: Arc::new(crate::ProcessProofs::default()),
            },
            &Callback {
                query: Vec::new(),
                form: vec![
                    ("SAMLResponse".into(), b64(&xml)),
                    ("RelayState".into(), "relay-123".into()),
                ],
            },
            &login_state(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected(reason) if reason.contains("ambiguous XML")),
        "{error:?}"
    );
    let logout = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="{NS_P}" xmlns:saml="{NS_A}" ID="_lr1" Version="2.0" IssueInstant="{}" Destination="{SLO}"><saml:Issuer>{IDP}</saml:Issuer><samlp:Extensions>{}</samlp:Extensions><saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"#,
        at(0),
        hidden_signature(&listener.url("slo"), "")
    );
    let form = vec![("SAMLRequest".to_string(), b64(&logout))];
    let outcome = provider
        .endpoint(
            "saml-slo-post",
            &EndpointRequest {
                query: &[],
                form: &form,
                raw_query: "",
                proofs: &crate::ProcessProofs::default(),
            },
        )
        .await;
    assert!(
        matches!(&outcome, EndpointOutcome::Refused { reason, .. } if reason.contains("ambiguous XML")),
        "{outcome:?}"
    );
    assert_eq!(listener.requests(), Vec::<String>::new());
}

fn login_state() -> ProviderState {
    ProviderState(vec![
        ("request_id".into(), REQUEST_ID.into()),
        ("relay_state".into(), "relay-123".into()),
        ("acs_url".into(), ACS.into()),
    ])
}

/// A job that does not come back in time is abandoned with a generic error, and the caller is
/// not held.
#[tokio::test]
async fn blocking_work_is_bounded_in_time() {
    let started = Instant::now();
    let result = blocking::run(Duration::from_millis(100), || {
        std::thread::sleep(Duration::from_secs(3));
    })
    .await;
    assert_eq!(result, Err(Stalled::TimedOut));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(blocking::run(Duration::from_secs(5), || 42).await, Ok(42));
}

// --- the root cause: the pre-scan reads what libxml2 reads ---------------------------------

#[test]
fn namespace_declarations_must_read_the_same_to_every_parser() {
    // Whitespace (libxml2 normalizes it in attribute values, the resolver would not).
    for ns in ["urn:a\turn", "urn:a urn", "urn:a\n", " urn:a"] {
        ambiguous(parse(&format!(r#"<p:a xmlns:p="{ns}"/>"#)));
    }
    // A prefix cannot be undeclared (libxml2 reads `p:b` as an unqualified name then).
    ambiguous(parse(r#"<a xmlns:p=""><p:b/></a>"#));
    // The reserved prefixes and namespaces.
    ambiguous(parse(r#"<a xmlns:xml="urn:x"/>"#));
    ambiguous(parse(r#"<a xmlns:xmlns="urn:x"/>"#));
    ambiguous(parse(
        r#"<a xmlns:p="http://www.w3.org/XML/1998/namespace"/>"#,
    ));
    ambiguous(parse(r#"<a xmlns="http://www.w3.org/2000/xmlns/"/>"#));
    ambiguous(parse(r#"<xmlns:a/>"#));
    // The xml prefix needs no declaration; its own binding is fine.
    let root =
        parse(r#"<a xmlns:xml="http://www.w3.org/XML/1998/namespace" xml:lang="fr"/>"#).unwrap();
    assert_eq!(
        root.attr_ns("http://www.w3.org/XML/1998/namespace", "lang"),
        Some("fr")
    );
    // Undeclaring the default namespace: unqualified, as libxml2 reads it.
    let root = parse(r#"<a xmlns="urn:a"><b xmlns=""><c/></b></a>"#).unwrap();
    assert!(root.is("urn:a", "a"));
    let b = root.elements().next().unwrap();
    assert_eq!((b.ns.as_deref(), b.name.as_str()), (None, "b"));
    assert_eq!(b.elements().next().unwrap().ns, None);
    // Unprefixed attributes are in no namespace, whatever the default one.
    assert_eq!(root.attrs.len(), 0);
    let root = parse(r#"<a xmlns="urn:a" x="1"/>"#).unwrap();
    assert_eq!(root.attr("x"), Some("1"));
    // A declaration later in the same tag applies to the whole tag.
    let root = parse(r#"<p:a p:x="1" xmlns:p="urn:p"/>"#).unwrap();
    assert!(root.is("urn:p", "a"));
    assert_eq!(root.attr_ns("urn:p", "x"), Some("1"));
}

#[test]
fn attributes_xmlsec_reads_without_namespace_must_be_unambiguous() {
    // Two attributes of one local name: libxml2's xmlGetProp takes the first, whatever its
    // prefix (ID, URI, Algorithm are read so).
    ambiguous(parse(r#"<a xmlns:p="urn:p" p:ID="x" ID="y"/>"#));
    ambiguous(parse(r##"<a xmlns:p="urn:p" URI="#y" p:URI="http://x"/>"##));
    ambiguous(parse(
        r#"<a xmlns:p="urn:p" xmlns:q="urn:p" p:x="1" q:x="2"/>"#,
    ));
    // A qualified ID is never SAML's.
    ambiguous(parse(r#"<a xmlns:p="urn:p" p:ID="x"/>"#));
    // xml:id is an ID to libxml2: it counts among the document's IDs.
    assert_eq!(
        parse(r#"<a ID="x"><b xml:id="x"/></a>"#).unwrap_err(),
        XmlError::DuplicateId("x".into())
    );
    // A repeated attribute.
    malformed(parse(r#"<a x="1" x="2"/>"#));
    malformed(parse(r#"<a xmlns:p="urn:p" xmlns:p="urn:q"/>"#));
}

#[test]
fn attribute_values_are_normalized_as_libxml2_does() {
    // Literal tab, newline and CR LF become spaces; references to them stay.
    let root = parse("<a x=\"1\n2\t3\r\n4&#10;5&#9;6&#13;7\r8\"/>").unwrap();
    assert_eq!(root.attr("x"), Some("1 2 3 4\n5\t6\r7 8"));
    // So an ID or a Reference URI is compared as xmlsec sees it: with spaces, not the name
    // the IdP wrote, and refused (not a name).
    let xml = ResponseSpec::default().xml();
    let spaced = xml.replacen(
        r##"<ds:Reference URI="#_r"##,
        "<ds:Reference URI=\"#\t_r",
        1,
    );
    assert!(matches!(
        Check::default().run(&spaced),
        Err(ResponseError::Signature(SignatureError::Shape(_)))
    ));
    // Text: line ends normalized (XML 1.0 §2.11), references kept.
    let root = parse("<a>x\r\ny\rz&#13;!</a>").unwrap();
    assert_eq!(root.text(), "x\ny\nz\r!");
    let root = parse("<a><![CDATA[x\r\ny]]></a>").unwrap();
    assert_eq!(root.text(), "x\ny");
}

#[test]
fn what_libxml2_would_recover_from_is_refused() {
    // libxml2 runs in recover mode under samael: anything not well-formed could be read two
    // ways, so the pre-scan refuses it.
    for xml in [
        r#"<a x="1"y="2"/>"#,
        r#"<a x="a<b"/>"#,
        r#"<a x/>"#,
        r#"<a x=1/>"#,
        r#"<a x="1" / >"#,
        "<1a/>",
        "<a:b:c xmlns:a=\"urn:a\"/>",
        r#"<a :b="x"/>"#,
        r#"<a b:="x" xmlns:b="urn:b"/>"#,
        "<-a/>",
        "<a.b/>x",
        "<a>]]></a>",
        "<a>&#1;</a>",
        r#"<a x="&#1;"/>"#,
        "<a>&#xFFFE;</a>",
        "<a>\u{1}</a>",
        "<a>\u{FFFF}</a>",
        "<a>&nbsp;</a>",
        r#"<a x="&copy;"/>"#,
        "<a>&#X41;</a>",
        r#"<?xml version="1.1"?><a/>"#,
        "<é/>",
    ] {
        malformed(parse(xml));
    }
}

#[test]
fn an_overlong_value_is_echoed_cut() {
    let long = "x".repeat(100_000);
    let reason = XmlError::DuplicateId(long.clone()).to_string();
    assert!(reason.len() < 400 && reason.contains('…'), "{reason}");
    let error = parse(&format!(r#"<a ID="{long}"><b ID="{long}"/></a>"#)).unwrap_err();
    assert!(error.to_string().len() < 400, "{error}");
}

// --- F4: metadata validity --------------------------------------------------------------------

#[test]
fn signed_metadata_needs_valid_until() {
    let trusted = vec![keys().federation.cert_pem.clone()];
    let error = provider_with(&federation_signed(""), |s| {
        s.idp_entity_id = Some(IDP.into());
        s.metadata_signing_certificates = trusted.clone();
    })
    .unwrap_err();
    let crate::SetupError::Setting { setting, reason } = error else {
        panic!("{error:?}")
    };
    assert_eq!(setting, "idp_metadata");
    assert!(reason.contains("validUntil"), "{reason}");
    // Unsigned metadata may leave it out.
    assert!(provider_with(&idp_metadata_xml(), |_| {}).is_ok());
    // With it, signed metadata loads, and its earliest validUntil is kept.
    let provider = provider_with(&federation_signed(&valid_until()), |s| {
        s.idp_entity_id = Some(IDP.into());
        s.metadata_signing_certificates = trusted;
    })
    .unwrap();
    assert!(provider.metadata.snapshot().valid_until.is_some());
}

#[tokio::test]
async fn expired_metadata_refuses_logins_with_the_reason() {
    let metadata = idp_metadata_xml().replacen(
        "entityID=",
        &format!(r#"validUntil="{}" entityID="#, at(2)),
        1,
    );
    let provider = provider_with(&metadata, |_| {}).unwrap();
    let callback = url::Url::parse(ACS).unwrap();
    assert!(provider.begin(&callback).await.is_ok());
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let error = provider.begin(&callback).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable(reason) if reason.contains("expired")),
        "{error:?}"
    );
    let error = provider
        .finish(
            &FinishContext {
                callback_url: callback.clone(),
                proofs: Arc::new(crate::ProcessProofs::default()),
            },
            &Callback {
                query: Vec::new(),
                form: vec![
                    ("SAMLResponse".into(), b64(&ResponseSpec::default().xml())),
                    ("RelayState".into(), "relay-123".into()),
                ],
            },
            &login_state(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable(reason) if reason.contains("expired")),
        "{error:?}"
    );
    // The metadata itself says so.
    let idp = provider.metadata.snapshot();
    assert!(idp.check_current(now()).is_err());
    assert!(idp.check_current(now() - time::Duration::hours(1)).is_ok());
}

// --- F5: the replay window is bounded ---------------------------------------------------------

/// Records how long each proof is to be kept.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Duration)>>);

#[async_trait]
impl OneTimeProofs for Recorder {
    async fn first_use(&self, id: &str, keep_for: Duration) -> Result<bool, ProviderError> {
        self.0.lock().unwrap().push((id.to_owned(), keep_for));
        Ok(true)
    }
}

#[test]
fn overlong_validity_and_old_assertions_are_refused() {
    let too_long = ResponseSpec {
        scd_not_on_or_after: at(2 * 3600),
        ..ResponseSpec::default()
    };
    assert!(matches!(
        Check::default().run(&too_long.xml()),
        Err(ResponseError::ValidTooLong(
            "the SubjectConfirmationData",
            60
        ))
    ));
    let conditions = ResponseSpec {
        conditions_not_on_or_after: at(25 * 3600),
        ..ResponseSpec::default()
    };
    assert!(matches!(
        Check::default().run(&conditions.xml()),
        Err(ResponseError::ValidTooLong("the Conditions", _))
    ));
    // Entra ID's 70 minutes of Conditions are fine.
    let entra = ResponseSpec {
        conditions_not_on_or_after: at(65 * 60),
        ..ResponseSpec::default()
    };
    assert!(Check::default().run(&entra.xml()).is_ok());

    // Issued two hours ago (still valid by its times): refused.
    let spec = ResponseSpec {
        sign_response: None,
        ..ResponseSpec::default()
    };
    let unsigned = spec.xml();
    let old = at(-2 * 3600);
    let mut aged = String::new();
    let mut rest = unsigned.as_str();
    while let Some(at_attr) = rest.find(r#"IssueInstant=""#) {
        let value_start = at_attr + r#"IssueInstant=""#.len();
        let value_end = value_start + rest[value_start..].find('"').unwrap();
        aged.push_str(&rest[..value_start]);
        aged.push_str(&old);
        rest = &rest[value_end..];
    }
    aged.push_str(rest);
    let aged = aged.replacen(
        "</saml:Issuer>",
        &format!(
            "</saml:Issuer>{}",
            template(&spec.response_id, Signer::idp())
        ),
        1,
    );
    let aged = sign(&aged, Signer::idp());
    assert!(matches!(
        Check::default().run(&aged),
        Err(ResponseError::IssuedTooLongAgo("the Response", 60))
    ));
}

#[tokio::test]
async fn proofs_are_kept_until_the_earliest_not_on_or_after() {
    let provider = provider(|_| {});
    let recorder = Arc::new(Recorder::default());
    // Confirmation for 5 minutes, Conditions for an hour: the response is refused as expired
    // after 5 minutes (plus the skew), so that is how long the proofs are needed.
    let spec = ResponseSpec {
        scd_not_on_or_after: at(300),
        conditions_not_on_or_after: at(3600),
        ..ResponseSpec::default()
    };
    provider
        .finish(
            &FinishContext {
                callback_url: url::Url::parse(ACS).unwrap(),
                proofs: recorder.clone(),
            },
            &Callback {
                query: Vec::new(),
                form: vec![
                    ("SAMLResponse".into(), b64(&spec.xml())),
                    ("RelayState".into(), "relay-123".into()),
                ],
            },
            &login_state(),
        )
        .await
        .unwrap();
    let recorded = recorder.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2);
    for (_, keep_for) in recorded {
        assert!(
            keep_for <= Duration::from_secs(300 + 60) && keep_for > Duration::from_secs(300),
            "{keep_for:?}"
        );
    }
}

// --- F6: logout tags ----------------------------------------------------------------------------

fn name_id(value: &str, format: Option<&str>, nq: Option<&str>, spnq: Option<&str>) -> NameId {
    NameId {
        value: value.into(),
        format: format.map(str::to_owned),
        name_qualifier: nq.map(str::to_owned),
        sp_name_qualifier: spnq.map(str::to_owned),
    }
}

const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

#[test]
fn a_session_index_only_ends_that_name_ids_session() {
    let alice = NameIdKey::new(&name_id("alice", Some(PERSISTENT), None, None), IDP, SP);
    let bob = NameIdKey::new(&name_id("bob", Some(PERSISTENT), None, None), IDP, SP);
    // The IdP gave both the same SessionIndex: Alice's LogoutRequest ends Alice's only.
    assert_ne!(
        alice.session_tag("idp", "_sidx-1"),
        bob.session_tag("idp", "_sidx-1")
    );
    assert_ne!(alice.name_id_tag("idp"), bob.name_id_tag("idp"));
    assert_ne!(
        alice.session_tag("idp", "_sidx-1"),
        alice.session_tag("idp", "_sidx-2")
    );
    // Another provider's tags are others.
    assert_ne!(alice.name_id_tag("idp"), alice.name_id_tag("idp2"));
}

#[test]
fn the_name_id_is_matched_with_its_format_and_qualifiers() {
    let key = |n: NameId| NameIdKey::new(&n, IDP, SP).name_id_tag("idp");
    let plain = key(name_id("alice", Some(PERSISTENT), None, None));
    // Persistent and transient: the qualifiers default to the IdP and us.
    assert_eq!(
        plain,
        key(name_id("alice", Some(PERSISTENT), Some(IDP), Some(SP)))
    );
    assert_ne!(
        plain,
        key(name_id(
            "alice",
            Some(PERSISTENT),
            Some("https://other-idp"),
            None
        ))
    );
    assert_ne!(
        plain,
        key(name_id(
            "alice",
            Some(PERSISTENT),
            None,
            Some("https://other-sp")
        ))
    );
    // The same value in another format is another NameID.
    assert_ne!(plain, key(name_id("alice", Some(EMAIL), None, None)));
    // No Format is the unspecified one.
    assert_eq!(
        key(name_id("alice", None, None, None)),
        key(name_id(
            "alice",
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
            None,
            None
        ))
    );
    // Other formats: no defaults.
    assert_ne!(
        key(name_id("alice@example.org", Some(EMAIL), None, None)),
        key(name_id("alice@example.org", Some(EMAIL), Some(IDP), None))
    );
    // Fields cannot be shifted into one another.
    assert_ne!(
        key(name_id("a", Some(EMAIL), Some("b"), None)),
        key(name_id("a", Some(EMAIL), None, Some("b")))
    );
}

// --- F7: FriendlyName ---------------------------------------------------------------------------

#[tokio::test]
async fn a_friendly_name_cannot_become_a_known_readable_name() {
    let provider = provider(|s| s.subject_attribute = Some("eduPersonPrincipalName".into()));
    let spec = ResponseSpec {
        attributes: vec![
            (
                "urn:example:attacker-controlled".into(),
                Some("eduPersonPrincipalName".into()),
                vec!["admin@example.org".into()],
            ),
            (
                "urn:example:custom".into(),
                Some("custom".into()),
                vec!["x".into()],
            ),
        ],
        ..ResponseSpec::default()
    };
    let error = provider
        .finish(
            &FinishContext {
                callback_url: url::Url::parse(ACS).unwrap(),
                proofs: Arc::new(crate::ProcessProofs::default()),
            },
            &Callback {
                query: Vec::new(),
                form: vec![
                    ("SAMLResponse".into(), b64(&spec.xml())),
                    ("RelayState".into(), "relay-123".into()),
                ],
            },
            &login_state(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected(r) if r.contains("eduPersonPrincipalName")),
        "{error:?}"
    );
    let login = Check::default().run(&spec.xml()).unwrap();
    assert!(!login.attributes.contains_key("eduPersonPrincipalName"));
    assert_eq!(
        login.attributes["urn:example:attacker-controlled"],
        vec!["admin@example.org"]
    );
    // A FriendlyName that means nothing else is still used.
    assert_eq!(login.attributes["custom"], vec!["x"]);
}

#[test]
fn a_friendly_name_cannot_merge_into_another_attribute() {
    let mut names = std::collections::BTreeMap::new();
    names.insert("urn:example:role".to_owned(), "role".to_owned());
    let spec = ResponseSpec {
        attributes: vec![
            ("urn:example:role".into(), None, vec!["user".into()]),
            // A configured readable name.
            (
                "urn:example:evil".into(),
                Some("role".into()),
                vec!["admin".into()],
            ),
            // Another attribute's Name.
            ("urn:example:plain".into(), None, vec!["a".into()]),
            (
                "urn:example:evil2".into(),
                Some("urn:example:plain".into()),
                vec!["b".into()],
            ),
            // The built-in table's (mail comes from its OID).
            (
                "urn:example:evil3".into(),
                Some("mail".into()),
                vec!["c".into()],
            ),
        ],
        ..ResponseSpec::default()
    };
    let check = Check {
        names,
        ..Check::default()
    };
    let login = check.run(&spec.xml()).unwrap();
    assert_eq!(login.attributes["role"], vec!["user"]);
    assert_eq!(login.attributes["urn:example:evil"], vec!["admin"]);
    assert_eq!(login.attributes["urn:example:plain"], vec!["a"]);
    assert_eq!(login.attributes["urn:example:evil2"], vec!["b"]);
    assert_eq!(login.attributes["urn:example:evil3"], vec!["c"]);
    assert!(!login.attributes.contains_key("mail"));
}

// --- F8: echoed values are cut ------------------------------------------------------------------

#[test]
fn unsigned_values_are_echoed_cut_to_256_characters() {
    let long = format!("https://app.example.org/{}", "x".repeat(200_000));
    let spec = ResponseSpec {
        destination: Some(long.clone()),
        ..ResponseSpec::default()
    };
    let reason = Check::default().run(&spec.xml()).unwrap_err().to_string();
    assert!(reason.chars().count() < 400, "{} chars", reason.len());
    assert!(reason.contains('…'));
    let spec = ResponseSpec {
        audiences: Some(vec![long[..2000].to_owned(); 50]),
        ..ResponseSpec::default()
    };
    let reason = Check::default().run(&spec.xml()).unwrap_err().to_string();
    assert!(reason.chars().count() < 400, "{} chars", reason.len());
    let spec = ResponseSpec {
        status: format!("urn:example:{}", &long[..20_000]),
        status_message: Some(long[..20_000].to_owned()),
        ..ResponseSpec::default()
    };
    let error = Check::default().run(&spec.xml()).unwrap_err();
    assert!(error.to_string().chars().count() < 700);
    let ProviderError::Denied { error, description } = ProviderError::from(error) else {
        panic!()
    };
    assert!(error.chars().count() <= 257);
    assert!(description.unwrap().chars().count() <= 257);
    let reason = SignatureError::UnsupportedAlgorithm(long.clone()).to_string();
    assert!(reason.chars().count() < 400);
    let reason = LogoutError::Destination(long).to_string();
    assert!(reason.chars().count() < 400);
}
