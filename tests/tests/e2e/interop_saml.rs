//! Interop with a SAML 2.0 IdP nobody here wrote: SimpleSAMLphp 1.19 (Debian's package), run
//! on loopback by the test kit (`guichet_tests::simplesamlphp`). Its own login form, its own
//! signatures (RSA-SHA256 on the Response and the Assertion), its own XML encryption
//! (RSA-OAEP, AES-128-CBC), its own single logout both ways.
//!
//! The metadata goes both ways, as when an SP joins an IdP: Guichet reads the IdP's from its
//! URL at start; the IdP is then given what Guichet publishes at
//! `/.guichet/saml-metadata/{provider}` (entityID, assertion consumer URLs, logout URL,
//! certificate), and is told to refuse unsigned AuthnRequests and logout messages from it.
//!
//! Two clients play the browser: the test kit's [`Browser`] towards Guichet (`app.test`), and
//! a cookie-keeping `reqwest::Client` towards the IdP (`127.0.0.1`). No cookie is shared by
//! the two sites, so two jars are what one browser would hold.

use std::time::Duration;

use guichet_tests::simplesamlphp::{
    Message, Outcome, PostForm, SimpleSamlPhp, SpRegistration, ALICE, BOB,
};
use guichet_tests::{Browser, GatewayOptions, Page, RedisServer, Store, TestGateway};
use quick_xml::events::Event;

use super::saml::{sp_keys, SpKeys};

/// Guichet's entityID at the IdP.
pub const SP_ENTITY: &str = "https://guichet.test/saml";
/// The provider's id (in the ACS and SLO paths).
pub const PROVIDER: &str = "ssp";
pub const PAGE: &str = "/bib/catalogue?q=1";

const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// The `kind: saml` provider: the IdP's metadata from its URL, requests always signed, the
/// same key for signing and encryption; `extra` lines appended (4-space indent).
pub fn provider(idp: &SimpleSamlPhp, keys: &SpKeys, extra: &str) -> String {
    format!(
        "  - kind: saml\n    id: {PROVIDER}\n    display_name: \"SimpleSAMLphp\"\n    entity_id: \"{SP_ENTITY}\"\n    idp_metadata: {{ url: \"{}\" }}\n    sign_requests: always\n    signing: {{ private_key: {{ file: \"{key}\" }}, certificate: {{ file: \"{cert}\" }} }}\n    encryption:\n      - {{ private_key: {{ file: \"{key}\" }}, certificate: {{ file: \"{cert}\" }} }}\n{extra}",
        idp.metadata_url(),
        key = keys.key.display(),
        cert = keys.cert.display(),
    )
}

/// The app, publishing the identity: accents as UTF-8, several values joined by commas.
pub const APP: &str = r#"
  - id: bib
    url: {origin}/bib
    upstream: http://{echo}
    providers: [ssp]
    identity_headers:
      separator: ","
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Mail, value: "attribute:mail" }
        - { name: X-Remote-Given-Name, value: "attribute:givenName", encoding: utf8 }
        - { name: X-Remote-Sn, value: "attribute:sn", encoding: utf8 }
        - { name: X-Remote-Affiliation, value: "attribute:eduPersonAffiliation" }
        - { name: X-Remote-Display-Name, value: "attribute:displayName", encoding: utf8 }
"#;

pub fn options(idp: &SimpleSamlPhp, keys: &SpKeys, extra: &str, store: Store) -> GatewayOptions {
    GatewayOptions {
        store,
        extra_providers: vec![provider(idp, keys, extra)],
        extra_apps: vec![APP.to_owned()],
        ..Default::default()
    }
}

/// What the IdP knows of an SP before it has read the SP's metadata: nothing that works
/// (another entityID, unreachable endpoints, a certificate of a key nobody holds).
pub fn placeholder() -> SpRegistration {
    let key = rcgen::KeyPair::generate().expect("a throwaway key");
    let certificate_pem = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .self_signed(&key)
        .expect("a throwaway certificate")
        .pem();
    SpRegistration {
        entity_id: "urn:guichet:interop:not-registered-yet".into(),
        acs_urls: vec!["http://127.0.0.1:9/acs".into()],
        slo_url: "http://127.0.0.1:9/slo".into(),
        certificate_pem,
        sign_logout: true,
        encrypt_assertions: false,
        signs_messages: true,
    }
}

// --- Guichet's SP metadata, read the way an IdP's administrator's tool would ----------------

/// The parts of an SP metadata document an IdP registers.
#[derive(Debug)]
struct SpMetadata {
    entity_id: String,
    /// HTTP-POST AssertionConsumerService locations, the default first, then by index.
    acs_urls: Vec<String>,
    /// The HTTP-Redirect SingleLogoutService location.
    slo_url: String,
    authn_requests_signed: bool,
    /// `KeyDescriptor use="signing"` / `use="encryption"` certificates, PEM.
    signing_certificate: String,
    encryption_certificate: String,
}

/// Fetches and reads `/.guichet/saml-metadata/{PROVIDER}` (elements matched by local name:
/// whatever prefixes the SP writes).
async fn published_metadata(gw: &TestGateway) -> SpMetadata {
    let mut browser = gw.browser();
    let page = browser
        .send(browser.get(&gw.url(&format!("/.guichet/saml-metadata/{PROVIDER}"))))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    parse_sp_metadata(&page.body)
}

fn parse_sp_metadata(xml: &str) -> SpMetadata {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut entity_id = None;
    let mut acs: Vec<(bool, usize, String)> = Vec::new();
    let mut slo_url = None;
    let mut authn_requests_signed = false;
    let mut key_use: Option<String> = None;
    let mut in_certificate = false;
    let mut signing = None;
    let mut encryption = None;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("SP metadata: {e}\n{xml}"));
        match event {
            Event::Start(element) | Event::Empty(element) => {
                let attributes: Vec<(String, String)> = element
                    .attributes()
                    .map(|a| {
                        let a = a.expect("an attribute");
                        (
                            String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                            a.unescape_value().expect("an attribute value").into_owned(),
                        )
                    })
                    .collect();
                let get = |name: &str| {
                    attributes
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                match element.local_name().as_ref() {
                    b"EntityDescriptor" => entity_id = get("entityID"),
                    b"SPSSODescriptor" => {
                        authn_requests_signed =
                            get("AuthnRequestsSigned").as_deref() == Some("true")
                    }
                    b"AssertionConsumerService"
                        if get("Binding").as_deref() == Some(BINDING_POST) =>
                    {
                        acs.push((
                            get("isDefault").as_deref() == Some("true"),
                            get("index").and_then(|i| i.parse().ok()).unwrap_or(0),
                            get("Location").expect("an ACS Location"),
                        ));
                    }
                    b"SingleLogoutService"
                        if get("Binding").as_deref() == Some(BINDING_REDIRECT) =>
                    {
                        slo_url = get("Location");
                    }
                    b"KeyDescriptor" => key_use = get("use"),
                    b"X509Certificate" => in_certificate = true,
                    _ => {}
                }
            }
            Event::Text(text) if in_certificate => {
                let body: String = text
                    .unescape()
                    .expect("certificate text")
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let pem = pem(&body);
                match key_use.as_deref() {
                    Some("signing") => signing = Some(pem),
                    Some("encryption") => encryption = Some(pem),
                    other => panic!("a certificate for {other:?} in {xml}"),
                }
            }
            Event::End(element) => match element.local_name().as_ref() {
                b"X509Certificate" => in_certificate = false,
                b"KeyDescriptor" => key_use = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    // The default endpoint first, then by index.
    acs.sort_by_key(|(default, index, _)| (!default, *index));
    SpMetadata {
        entity_id: entity_id.unwrap_or_else(|| panic!("no entityID in {xml}")),
        acs_urls: acs.into_iter().map(|(_, _, url)| url).collect(),
        slo_url: slo_url.unwrap_or_else(|| panic!("no redirect SingleLogoutService in {xml}")),
        authn_requests_signed,
        signing_certificate: signing.unwrap_or_else(|| panic!("no signing key in {xml}")),
        encryption_certificate: encryption.unwrap_or_else(|| panic!("no encryption key in {xml}")),
    }
}

/// A certificate's base64 DER as PEM (64-character lines).
fn pem(base64: &str) -> String {
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// What the gateway publishes is what it is configured with.
fn check_published(metadata: &SpMetadata, gw: &TestGateway) {
    assert_eq!(metadata.entity_id, SP_ENTITY);
    assert_eq!(
        metadata.acs_urls,
        [gw.url(&format!("/.guichet/callback/{PROVIDER}"))]
    );
    assert_eq!(
        metadata.slo_url,
        gw.url(&format!("/.guichet/saml-slo/{PROVIDER}"))
    );
    assert!(metadata.authn_requests_signed, "{metadata:?}");
    // sp_keys(): one key signs and decrypts.
    assert_eq!(
        metadata.signing_certificate,
        metadata.encryption_certificate
    );
    let configured: String = guichet_tests::saml_idp::TestKey::sp()
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        metadata
            .signing_certificate
            .replace('\n', "")
            .contains(&configured),
        "{metadata:?}"
    );
}

/// The IdP's registration of Guichet, from the metadata of one or more replicas (their ACS
/// URLs, in order; the logout URL of the last one).
fn registration(published: &[&SpMetadata], encrypt_assertions: bool) -> SpRegistration {
    let first = published[0];
    for other in published {
        assert_eq!(other.entity_id, first.entity_id);
        assert_eq!(other.signing_certificate, first.signing_certificate);
    }
    SpRegistration {
        entity_id: first.entity_id.clone(),
        acs_urls: published
            .iter()
            .flat_map(|m| m.acs_urls.iter().cloned())
            .collect(),
        slo_url: published.last().unwrap().slo_url.clone(),
        // Encryption to the encryption key, signatures checked with the signing key: the
        // harness has one certificate for both, which Guichet publishes twice.
        certificate_pem: first.signing_certificate.clone(),
        sign_logout: true,
        encrypt_assertions,
        signs_messages: true,
    }
}

// --- the browser's journeys -------------------------------------------------------------------

/// The browser's side at the IdP: its own cookies, redirects not followed (the harness walks
/// the IdP's hops).
fn idp_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

/// From the app to the IdP's SSO URL: the signed AuthnRequest Guichet sends by HTTP-Redirect.
async fn to_the_idp(gw: &TestGateway, browser: &mut Browser, idp: &SimpleSamlPhp) -> String {
    let first = browser.send(browser.get(&gw.url(PAGE))).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert_eq!(first.location(), Some("/.guichet/login"));
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = start.location().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}?SAMLRequest=", idp.sso_url())),
        "{location}"
    );
    let message = Message::Redirect(location.clone());
    assert_eq!(
        message.param("SigAlg").as_deref(),
        Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
        "{location}"
    );
    assert!(message.param("Signature").is_some(), "{location}");
    let xml = message.saml_xml().unwrap();
    assert!(xml.contains(&format!(">{SP_ENTITY}</")), "{xml}");
    location
}

/// The browser carries the IdP's auto-submitted form to Guichet's ACS.
async fn post_to_guichet(browser: &mut Browser, form: &PostForm) -> Page {
    let fields: Vec<(&str, &str)> = form
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.send(browser.post_form(&form.action, &fields)).await
}

/// A whole login of `user` on `gw`, typing the password into SimpleSAMLphp's form; returns the
/// Response the IdP sent (XML) once Guichet has accepted it.
async fn log_in(
    gw: &TestGateway,
    browser: &mut Browser,
    idp: &SimpleSamlPhp,
    at_idp: &reqwest::Client,
    user: (&str, &str),
) -> String {
    let sso = to_the_idp(gw, browser, idp).await;
    let form = idp
        .login(at_idp, &sso, user.0, user.1)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", idp.log_tail(40)));
    assert_eq!(
        form.action,
        gw.url(&format!("/.guichet/callback/{PROVIDER}"))
    );
    let xml = Message::Post(form.clone()).saml_xml().unwrap();
    let done = post_to_guichet(browser, &form).await;
    assert_eq!(done.status, 302, "{}\n{xml}", done.body);
    assert_eq!(
        done.location(),
        Some(PAGE),
        "back to the page first asked for"
    );
    assert!(done
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("guichet_session=")));
    xml
}

/// The app's view of alice, as SimpleSAMLphp describes her.
async fn assert_alice_in_the_app(gw: &TestGateway, browser: &mut Browser) {
    let app = browser.send(browser.get_json(&gw.url(PAGE))).await;
    assert_eq!(app.status, 200, "{}", app.body);
    // The persistent NameID (the uid) is the subject.
    assert_eq!(app.upstream_header("x-remote-user"), ["alice"]);
    assert_eq!(app.upstream_header("x-remote-mail"), ["alice@example.org"]);
    for (header, value) in [
        ("x-remote-given-name", "Hélène"),
        ("x-remote-sn", "Dupré"),
        ("x-remote-display-name", "Hélène Dupré"),
    ] {
        assert_eq!(
            app.upstream_header_bytes(header).as_deref(),
            Some(value.as_bytes()),
            "{header}: {}",
            app.body
        );
    }
    assert_eq!(
        app.upstream_header("x-remote-affiliation"),
        ["member,staff"]
    );
    let me = browser.send(browser.get(&gw.url("/.guichet/whoami"))).await;
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["provider"], PROVIDER);
    assert_eq!(
        me["attributes"]["eduPersonAffiliation"],
        serde_json::json!(["member", "staff"])
    );
}

/// Whether the browser's Guichet session still opens the app (else: sent to the login).
async fn session_alive(gw: &TestGateway, browser: &mut Browser) -> bool {
    let page = browser.send(browser.get(&gw.url(PAGE))).await;
    match page.status {
        200 => true,
        302 => {
            assert_eq!(page.location(), Some("/.guichet/login"), "{}", page.body);
            false
        }
        other => panic!("{other}: {}", page.body),
    }
}

/// Whether the IdP still has a session in `at_idp`'s cookies: a new login through `gw` is
/// answered at once (else the IdP shows its login form again).
async fn idp_session_alive(
    gw: &TestGateway,
    idp: &SimpleSamlPhp,
    at_idp: &reqwest::Client,
) -> bool {
    let mut browser = gw.browser();
    let sso = to_the_idp(gw, &mut browser, idp).await;
    match idp.follow(at_idp, &Message::Redirect(sso)).await.unwrap() {
        Outcome::Leaves(Message::Post(form)) => {
            assert!(form.field("SAMLResponse").is_some(), "{form:?}");
            true
        }
        Outcome::Page { body, status, url } => {
            assert_eq!(status, 200, "{url}: {body}");
            assert!(body.contains("password"), "the login form: {url}: {body}");
            false
        }
        other => panic!("{other:?}"),
    }
}

/// The IdP's log says it received a valid LogoutResponse (signature checked: `validate.logout`)
/// with a Success status.
fn assert_idp_accepted_logout_response(idp: &SimpleSamlPhp) {
    let log = idp.log_tail(400);
    assert!(
        log.contains(&format!(
            "Received SAML 2.0 LogoutResponse from: '{SP_ENTITY}'"
        )),
        "{log}"
    );
    assert!(!log.contains("Unsuccessful logout"), "{log}");
}

// --- the tests ----------------------------------------------------------------------------------

pub struct Setup {
    pub idp: SimpleSamlPhp,
    pub gw: TestGateway,
    _keys: SpKeys,
}

/// The IdP first (Guichet reads its metadata at start), then Guichet, then the IdP learns
/// Guichet from its published metadata.
pub async fn setup(encrypt_assertions: bool, extra: &str, store: Store) -> Setup {
    let idp = SimpleSamlPhp::start(&placeholder()).await;
    let keys = sp_keys();
    let gw = TestGateway::start(options(&idp, &keys, extra, store));
    let published = published_metadata(&gw).await;
    check_published(&published, &gw);
    idp.register_sp(&registration(&[&published], encrypt_assertions));
    Setup {
        idp,
        gw,
        _keys: keys,
    }
}

#[tokio::test]
async fn simplesamlphp_signs_alice_in_with_her_attributes_in_headers() {
    let redis = RedisServer::start();
    let setup = setup(false, "", Store::Redis { url: redis.url() }).await;
    let at_idp = idp_client();
    let mut browser = setup.gw.browser();
    let xml = log_in(&setup.gw, &mut browser, &setup.idp, &at_idp, ALICE).await;
    // SimpleSAMLphp checked the AuthnRequest's signature (validate.authnrequest) and signed
    // both the Response and the Assertion, in the clear.
    assert!(xml.contains("<saml:Assertion"), "{xml}");
    assert_eq!(xml.matches("<ds:Signature xmlns").count(), 2, "{xml}");
    assert_alice_in_the_app(&setup.gw, &mut browser).await;
    assert!(
        redis.command(&["KEYS", "*"]).contains(":s:"),
        "the session is in Redis"
    );

    // Another user, another browser: bob's attributes, not alice's.
    let at_idp = idp_client();
    let mut other = setup.gw.browser();
    log_in(&setup.gw, &mut other, &setup.idp, &at_idp, BOB).await;
    let app = other.send(other.get_json(&setup.gw.url(PAGE))).await;
    assert_eq!(app.upstream_header("x-remote-user"), ["bob"]);
    assert_eq!(
        app.upstream_header_bytes("x-remote-sn").as_deref(),
        Some("Sørensen".as_bytes())
    );
    assert_eq!(app.upstream_header("x-remote-affiliation"), ["student"]);
}

#[tokio::test]
async fn simplesamlphp_encrypted_assertions_sign_in() {
    // SimpleSAMLphp 1.19 encrypts with AES-128-CBC only: allowed here, refused by default.
    let setup = setup(true, "    allow_cbc: true\n", Store::Memory).await;
    let at_idp = idp_client();
    let mut browser = setup.gw.browser();
    let xml = log_in(&setup.gw, &mut browser, &setup.idp, &at_idp, ALICE).await;
    assert!(xml.contains("<saml:EncryptedAssertion>"), "{xml}");
    assert!(!xml.contains("<saml:Assertion"), "{xml}");
    assert!(
        xml.contains("http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
        "{xml}"
    );
    assert_alice_in_the_app(&setup.gw, &mut browser).await;
}

#[tokio::test]
async fn simplesamlphp_encrypted_assertions_are_refused_without_allow_cbc() {
    // The same IdP, Guichet left with its default (AES-GCM only): a clear refusal, no session.
    let setup = setup(true, "", Store::Memory).await;
    let at_idp = idp_client();
    let mut browser = setup.gw.browser();
    let sso = to_the_idp(&setup.gw, &mut browser, &setup.idp).await;
    let form = setup
        .idp
        .login(&at_idp, &sso, ALICE.0, ALICE.1)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let log = guichet_tests::logs::Scope::begin();
    let page = post_to_guichet(&mut browser, &form).await;
    assert!(
        matches!(page.status, 400 | 403),
        "{}: {}",
        page.status,
        page.body
    );
    assert!(
        log.audit_of(&page).iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("allow_cbc"))),
        "{}",
        log.text()
    );
    assert!(!session_alive(&setup.gw, &mut browser).await);
}

#[tokio::test]
async fn sp_initiated_logout_ends_the_simplesamlphp_session_too() {
    let setup = setup(false, "", Store::Memory).await;
    let at_idp = idp_client();
    let mut browser = setup.gw.browser();
    log_in(&setup.gw, &mut browser, &setup.idp, &at_idp, ALICE).await;
    assert!(session_alive(&setup.gw, &mut browser).await);
    assert!(idp_session_alive(&setup.gw, &setup.idp, &at_idp).await);

    // Guichet sends a signed LogoutRequest (HTTP-Redirect) to the IdP's logout endpoint.
    let out = browser
        .send(browser.get(&setup.gw.url("/.guichet/logout?return_to=/bib/")))
        .await;
    assert_eq!(out.status, 302, "{}", out.body);
    let request = Message::Redirect(out.location().unwrap().to_owned());
    assert_eq!(request.destination(), setup.idp.slo_url());
    assert!(request.param("Signature").is_some(), "{request:?}");
    let xml = request.saml_xml().unwrap();
    assert!(xml.contains("<samlp:LogoutRequest"), "{xml}");
    assert!(xml.contains(">alice</"), "the NameID the IdP gave: {xml}");
    assert!(xml.contains("SessionIndex>"), "{xml}");

    // SimpleSAMLphp checks its signature (validate.logout), ends its session, and answers
    // with a signed LogoutResponse to Guichet's logout endpoint.
    let response = setup
        .idp
        .logout(&at_idp, &request)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        response.destination(),
        setup.gw.url(&format!("/.guichet/saml-slo/{PROVIDER}"))
    );
    assert!(response.param("Signature").is_some(), "{response:?}");
    let xml = response.saml_xml().unwrap();
    assert!(xml.contains("<samlp:LogoutResponse"), "{xml}");
    assert!(
        xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"),
        "{xml}"
    );
    let Message::Redirect(url) = &response else {
        panic!("HTTP-Redirect binding expected: {response:?}")
    };
    let landing = browser.send(browser.get(url)).await;
    assert_eq!(landing.status, 302, "{}", landing.body);
    assert_eq!(landing.location(), Some("/bib/"));

    // Both sessions are gone: the app sends to the login, the IdP asks for the password.
    assert!(!session_alive(&setup.gw, &mut browser).await);
    assert!(!idp_session_alive(&setup.gw, &setup.idp, &at_idp).await);
}

#[tokio::test]
async fn idp_initiated_logout_from_simplesamlphp_reaches_every_replica() {
    let redis = RedisServer::start();
    let idp = SimpleSamlPhp::start(&placeholder()).await;
    let keys = sp_keys();
    let store = || Store::Redis { url: redis.url() };
    let gw1 = TestGateway::start(options(&idp, &keys, "", store()));
    let gw2 = TestGateway::start(options(&idp, &keys, "", store()));
    let (published1, published2) = (
        published_metadata(&gw1).await,
        published_metadata(&gw2).await,
    );
    check_published(&published1, &gw1);
    check_published(&published2, &gw2);
    // Logins come back to either replica; the IdP's logout messages go to the second.
    idp.register_sp(&registration(&[&published1, &published2], false));

    let at_idp = idp_client();
    let mut alice = gw1.browser();
    log_in(&gw1, &mut alice, &idp, &at_idp, ALICE).await;
    // Someone else, with their own IdP session, on the same replica.
    let bob_at_idp = idp_client();
    let mut bob = gw1.browser();
    log_in(&gw1, &mut bob, &idp, &bob_at_idp, BOB).await;

    // At the IdP, alice logs out: a signed LogoutRequest to Guichet's logout endpoint.
    let request = idp
        .start_idp_initiated_logout(&at_idp, None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        request.destination(),
        gw2.url(&format!("/.guichet/saml-slo/{PROVIDER}"))
    );
    assert!(request.param("Signature").is_some(), "{request:?}");
    let Message::Redirect(url) = &request else {
        panic!("HTTP-Redirect binding expected: {request:?}")
    };
    // Delivered to replica 2 by a browser without Guichet's cookies: the session is found in
    // the shared store by what the IdP names (NameID, SessionIndex), not by a cookie.
    let mut browser = gw2.browser();
    let answer = browser.send(browser.get(url)).await;
    assert_eq!(answer.status, 302, "{}", answer.body);
    let response = Message::Redirect(answer.location().unwrap().to_owned());
    assert_eq!(response.destination(), idp.slo_url());
    assert!(response.param("Signature").is_some(), "{response:?}");
    let xml = response.saml_xml().unwrap();
    assert!(xml.contains("<samlp:LogoutResponse"), "{xml}");
    assert!(
        xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"),
        "{xml}"
    );
    assert_eq!(response.param("RelayState"), request.param("RelayState"));

    // SimpleSAMLphp accepts it (signature checked) and ends on its logged-out page.
    match idp
        .finish_logout(&at_idp, &response)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
    {
        Outcome::Page { url, status, body } => {
            assert_eq!(status, 200, "{body}");
            assert_eq!(url, format!("{}logout.php", idp.base_url()), "{body}");
        }
        other => panic!("the IdP's logged-out page expected: {other:?}"),
    }
    assert_idp_accepted_logout_response(&idp);

    // The replica that did not receive the logout drops its local copy when the announcement
    // arrives.
    let (page, took) = alice
        .until_signed_out(&gw1.url(PAGE), Duration::from_secs(3))
        .await;
    assert_eq!(
        page.status, 401,
        "ended on the replica that did not receive the logout"
    );
    assert!(took < guichet_tests::CROSS_REPLICA_BOUND, "{took:?}");
    assert!(session_alive(&gw1, &mut bob).await, "bob's session stays");
    assert!(!idp_session_alive(&gw1, &idp, &at_idp).await);
    assert!(idp_session_alive(&gw1, &idp, &bob_at_idp).await);
}
