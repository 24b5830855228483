//! The SAML provider against the test kit's IdP (samael/xmlsec signatures): the happy paths
//! (signed Response, signed Assertion, both, encrypted assertions, attributes with accents and
//! several values reaching headers), one named test per attack of the security catalogue's
//! section 3, bad input, metadata both ways, and single logout started by either side on two
//! gateways sharing Redis.

use std::path::PathBuf;

use guichet_tests::saml_idp::{
    name_id_format, status, Attack, AuthnRequestSeen, DataEncryption, EncryptFor, KeyTransport,
    LogoutRequestSpec, ResponseSpec, SamlIdp, SignatureAlgorithm, Signing, TestKey,
};
use guichet_tests::{
    logs, Browser, GatewayOptions, Page, Reachable, RedisServer, Store, TestGateway,
};

/// Guichet's entityID in these tests.
const SP_ENTITY: &str = "https://guichet.test/saml";

/// The SP's key and certificate, as files (the config reads them like a mounted Secret).
pub struct SpKeys {
    _dir: tempfile::TempDir,
    pub key: PathBuf,
    pub cert: PathBuf,
}

pub fn sp_keys() -> SpKeys {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sp.key");
    let cert = dir.path().join("sp.crt");
    std::fs::write(&key, TestKey::sp().private_key_pem()).unwrap();
    std::fs::write(&cert, TestKey::sp().cert_pem()).unwrap();
    SpKeys {
        _dir: dir,
        key,
        cert,
    }
}

/// The provider's YAML: metadata from the IdP's URL, signing and encryption keys, `extra`
/// lines appended (4-space indent).
pub fn provider(idp: &SamlIdp, keys: &SpKeys, extra: &str) -> String {
    format!(
        "  - kind: saml\n    id: idp\n    display_name: \"Fédération\"\n    entity_id: \"{SP_ENTITY}\"\n    idp_metadata: {{ url: \"{}\" }}\n    signing: {{ private_key: {{ file: \"{key}\" }}, certificate: {{ file: \"{cert}\" }} }}\n    encryption:\n      - {{ private_key: {{ file: \"{key}\" }}, certificate: {{ file: \"{cert}\" }} }}\n{extra}",
        idp.metadata_url(),
        key = keys.key.display(),
        cert = keys.cert.display(),
    )
}

pub const APP: &str = r#"
  - id: bib
    url: {origin}/bib
    upstream: http://{echo}
    providers: [idp]
    identity_headers:
      separator: ","
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Mail, value: "attribute:mail" }
        - { name: X-Remote-Given-Name, value: "attribute:givenName", encoding: utf8 }
        - { name: X-Remote-Sn, value: "attribute:sn", encoding: utf8 }
        - { name: X-Remote-Affiliation, value: "attribute:eduPersonAffiliation" }
"#;

pub fn options(idp: &SamlIdp, keys: &SpKeys, extra: &str, store: Store) -> GatewayOptions {
    GatewayOptions {
        store,
        extra_providers: vec![provider(idp, keys, extra)],
        extra_apps: vec![APP.to_owned()],
        ..Default::default()
    }
}

/// From a protected page to the IdP: the AuthnRequest the gateway sent (HTTP-Redirect).
pub async fn start_login(
    gw: &impl Reachable,
    browser: &mut Browser,
    idp: &SamlIdp,
) -> AuthnRequestSeen {
    let first = browser
        .send(browser.get(&gw.url("/bib/catalogue?q=1")))
        .await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert_eq!(first.location(), Some("/.guichet/login"));
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = start.location().unwrap().to_owned();
    assert!(location.starts_with(&idp.sso_url()), "{location}");
    SamlIdp::read_authn_request_from_url(&location)
}

/// The browser's POST of `saml_response` to the ACS the request named, with its RelayState.
pub async fn post_response(
    browser: &mut Browser,
    request: &AuthnRequestSeen,
    saml_response: &str,
) -> Page {
    let acs = request
        .acs_url
        .clone()
        .expect("the AuthnRequest names its ACS");
    let fields = SamlIdp::post_fields(saml_response, request.relay_state.as_deref());
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.send(browser.post_form(&acs, &fields)).await
}

/// Signed in: the session cookie, and the landing is the page first asked for.
pub fn assert_signed_in(page: &Page) {
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location(), Some("/bib/catalogue?q=1"));
    assert!(page
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("guichet_session=")));
}

/// Refused: the generic page with its correlation id, `reason` in the audit log, no session.
fn assert_refused(log: &logs::Scope, page: &Page, reason: &str) {
    assert!(
        matches!(page.status, 400 | 403),
        "{}: {}",
        page.status,
        page.body
    );
    let correlation_id = page.headers["x-request-id"].to_str().unwrap();
    assert!(page.body.contains(correlation_id), "the page shows it");
    let events = log.audit_of(page);
    assert!(
        events.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(reason))),
        "expected {reason:?} in {events:#?}"
    );
    assert!(page
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("guichet_session=")));
}

struct Setup {
    idp: SamlIdp,
    gw: TestGateway,
    _keys: SpKeys,
}

async fn setup(extra: &str) -> Setup {
    let idp = SamlIdp::start().await;
    let keys = sp_keys();
    let gw = TestGateway::start(options(&idp, &keys, extra, Store::Memory));
    Setup {
        idp,
        gw,
        _keys: keys,
    }
}

/// A whole login answered with `response(request)`; the page of the POST to the ACS.
async fn trip(
    setup: &Setup,
    response: impl FnOnce(&SamlIdp, &AuthnRequestSeen) -> String,
) -> (Browser, Page) {
    let mut browser = setup.gw.browser();
    let request = start_login(&setup.gw, &mut browser, &setup.idp).await;
    let saml_response = response(&setup.idp, &request);
    let page = post_response(&mut browser, &request, &saml_response).await;
    (browser, page)
}

/// A login answered by the IdP with `spec` adjusted by `adjust`.
async fn trip_with(setup: &Setup, adjust: impl FnOnce(&mut ResponseSpec)) -> (Browser, Page) {
    trip(setup, |idp, request| {
        let mut spec = ResponseSpec::answering(request);
        adjust(&mut spec);
        idp.response(&spec)
    })
    .await
}

async fn refused_attack(attack: Attack, reason: &str) {
    let setup = setup("").await;
    let log = logs::Scope::begin();
    let (_, page) = trip(&setup, |idp, request| {
        idp.attack(&ResponseSpec::answering(request), attack)
    })
    .await;
    assert_refused(&log, &page, reason);
}

async fn refused_spec(adjust: impl FnOnce(&mut ResponseSpec), extra: &str, reason: &str) {
    let setup = setup(extra).await;
    let log = logs::Scope::begin();
    let (_, page) = trip_with(&setup, adjust).await;
    assert_refused(&log, &page, reason);
}

// --- happy paths --------------------------------------------------------------------------

async fn signs_in_with(signing: Signing, encrypt: Option<EncryptFor>) {
    let setup = setup("").await;
    let (mut browser, page) = trip_with(&setup, |spec| {
        spec.sign = signing;
        spec.encrypt_for = encrypt;
    })
    .await;
    assert_signed_in(&page);
    let app = browser
        .send(browser.get_json(&setup.gw.url("/bib/catalogue?q=1")))
        .await;
    assert_eq!(app.status, 200, "{}", app.body);
    assert_eq!(app.upstream_header("x-remote-user"), ["alice@corp.example"]);
    assert_eq!(app.upstream_header("x-remote-mail"), ["alice@corp.example"]);
    assert_eq!(
        app.upstream_header_bytes("x-remote-given-name").unwrap(),
        "Hélène".as_bytes()
    );
    assert_eq!(
        app.upstream_header_bytes("x-remote-sn").unwrap(),
        "Lefèvre-Müller".as_bytes()
    );
    assert_eq!(
        app.upstream_header("x-remote-affiliation"),
        ["member,staff"]
    );
    // The session knows its provider and the assertion's authentication context.
    let me = browser
        .send(browser.get(&setup.gw.url("/.guichet/whoami")))
        .await;
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["provider"], "idp");
    assert_eq!(
        me["attributes"]["eduPersonAffiliation"],
        serde_json::json!(["member", "staff"])
    );
}

#[tokio::test]
async fn a_signed_response_signs_in_with_attributes_in_headers() {
    signs_in_with(Signing::Response, None).await;
}

#[tokio::test]
async fn a_signed_assertion_signs_in() {
    signs_in_with(Signing::Assertion, None).await;
}

#[tokio::test]
async fn a_response_and_assertion_both_signed_sign_in() {
    signs_in_with(Signing::Both, None).await;
}

#[tokio::test]
async fn an_encrypted_assertion_signs_in_aes128_gcm_and_aes256_gcm() {
    let cert = TestKey::sp().cert_pem();
    signs_in_with(Signing::Both, Some(EncryptFor::new(&cert))).await;
    let mut aes256 = EncryptFor::new(&cert);
    aes256.data_encryption = DataEncryption::Aes256Gcm;
    signs_in_with(Signing::Response, Some(aes256)).await;
}

#[tokio::test]
async fn the_authn_request_is_signed_when_the_idp_wants_it_and_relay_state_is_opaque() {
    let setup = setup("").await;
    setup.idp.set_want_authn_requests_signed(true);
    // The metadata was read at start: a gateway started now sees the flag.
    let keys = sp_keys();
    let gw = TestGateway::start(options(&setup.idp, &keys, "", Store::Memory));
    let mut browser = gw.browser();
    let request = start_login(&gw, &mut browser, &setup.idp).await;
    assert!(request.redirect_signature_present);
    assert!(request.verify_redirect_signature(&TestKey::sp().cert_pem()));
    assert_eq!(request.issuer.as_deref(), Some(SP_ENTITY));
    assert_eq!(
        request.acs_url.as_deref(),
        Some(gw.url("/.guichet/callback/idp").as_str())
    );
    let relay = request.relay_state.clone().unwrap();
    assert!(
        relay.len() >= 32 && !relay.contains('/') && !relay.contains(':'),
        "{relay}"
    );
    assert!(request.id.len() >= 33, "{}", request.id);
}

#[tokio::test]
async fn force_authn_authn_context_and_name_id_format_are_asked_for_by_post_binding() {
    let setup = setup(
        "    binding: post\n    sign_requests: always\n    force_authn: true\n    name_id_format: \"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\"\n    requested_authn_context: { comparison: minimum, class_refs: [\"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport\"] }\n",
    )
    .await;
    let mut browser = setup.gw.browser();
    browser.send(browser.get(&setup.gw.url("/bib/"))).await;
    let start = browser
        .send(browser.get(&setup.gw.url("/.guichet/login")))
        .await;
    assert_eq!(start.status, 200, "an auto-submitting form: {}", start.body);
    assert!(start.body.contains(&setup.idp.sso_url()), "{}", start.body);
    let fields = guichet_tests::cas::hidden_fields(&start.body);
    let request = SamlIdp::read_authn_request_from_form(&fields);
    assert!(request.force_authn);
    assert!(request.xml_signature_present);
    assert_eq!(
        request.name_id_policy_format.as_deref(),
        Some(name_id_format::PERSISTENT)
    );
    assert_eq!(request.authn_context_comparison.as_deref(), Some("minimum"));
    assert_eq!(
        request.authn_context_class_refs,
        ["urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"]
    );
    let page = post_response(
        &mut browser,
        &request,
        &setup.idp.response(&ResponseSpec::answering(&request)),
    )
    .await;
    assert_eq!(page.status, 302, "{}", page.body);
}

// --- the catalogue, section 3: one test per line -------------------------------------------

#[tokio::test]
async fn xsw1_cloned_response_around_the_signature_is_refused() {
    refused_attack(Attack::Xsw1, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw2_cloned_response_before_the_signature_is_refused() {
    refused_attack(Attack::Xsw2, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw3_evil_assertion_before_the_signed_one_is_refused() {
    refused_attack(Attack::Xsw3, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw4_evil_assertion_wrapping_the_signed_one_is_refused() {
    refused_attack(Attack::Xsw4, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw5_signature_moved_to_an_evil_assertion_is_refused() {
    refused_attack(Attack::Xsw5, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw6_signed_assertion_hidden_in_the_signature_is_refused() {
    refused_attack(Attack::Xsw6, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw7_evil_assertion_inside_extensions_is_refused() {
    refused_attack(Attack::Xsw7, "exactly one is accepted").await;
}

#[tokio::test]
async fn xsw8_signed_assertion_inside_ds_object_is_refused() {
    refused_attack(Attack::Xsw8, "exactly one is accepted").await;
}

#[tokio::test]
async fn an_evil_assertion_after_a_valid_one_is_refused() {
    refused_attack(Attack::EvilAssertionAfterValid, "exactly one is accepted").await;
}

#[tokio::test]
async fn a_response_with_its_signatures_removed_is_refused() {
    refused_attack(
        Attack::SignatureRemoved,
        "neither the Response nor its assertion carries a signature",
    )
    .await;
}

#[tokio::test]
async fn an_unsigned_assertion_inside_a_signed_response_is_refused() {
    refused_attack(
        Attack::UnsignedAssertionInSignedResponse,
        "invalid signature",
    )
    .await;
}

#[tokio::test]
async fn several_assertions_are_refused() {
    refused_attack(Attack::MultipleAssertions, "exactly one is accepted").await;
}

#[tokio::test]
async fn a_comment_in_the_name_id_is_refused() {
    refused_attack(Attack::CommentInNameId, "XML comment is refused").await;
}

#[tokio::test]
async fn a_doctype_is_refused() {
    refused_attack(Attack::Doctype, "DOCTYPE").await;
}

#[tokio::test]
async fn an_external_entity_is_refused() {
    refused_attack(Attack::ExternalEntity, "DOCTYPE").await;
}

#[tokio::test]
async fn entity_expansion_is_refused() {
    refused_attack(Attack::EntityExpansion, "DOCTYPE").await;
}

#[tokio::test]
async fn a_foreign_certificate_in_key_info_is_refused() {
    refused_attack(Attack::ForeignCertificateInKeyInfo, "invalid signature").await;
}

#[tokio::test]
async fn rsa_sha1_is_refused_unless_allowed() {
    refused_attack(Attack::RsaSha1, "rsa-sha1 refused").await;
    let setup = setup("    allow_sha1: true\n").await;
    let (_, page) = trip_with(&setup, |spec| {
        spec.signature_algorithm = SignatureAlgorithm::RsaSha1
    })
    .await;
    assert_signed_in(&page);
}

#[tokio::test]
async fn one_altered_byte_in_a_signed_element_is_refused() {
    // The proof that signature verification is really active.
    refused_attack(Attack::AlteredByte, "invalid signature").await;
}

#[tokio::test]
async fn a_replayed_response_is_refused() {
    // IdP-initiated responses carry no InResponseTo: only the replay cache stops the same
    // bytes from signing in twice.
    let setup = setup("    allow_unsolicited: true\n    unsolicited_landing: bib\n").await;
    let acs = setup.gw.url("/.guichet/callback/idp");
    let response = setup.idp.response(&ResponseSpec::for_sp(&acs, SP_ENTITY));
    let mut fields = SamlIdp::post_fields(&response, None);
    fields.push(("guichet_relay".into(), "1".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut browser = setup.gw.browser();
    let first = browser.send(browser.post_form(&acs, &fields)).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let log = logs::Scope::begin();
    let mut thief = setup.gw.browser();
    let page = thief.send(thief.post_form(&acs, &fields)).await;
    assert_refused(&log, &page, "replay");
}

#[tokio::test]
async fn assertion_ids_seen_by_one_replica_are_refused_by_another() {
    let redis = RedisServer::start();
    let idp = SamlIdp::start().await;
    let keys = sp_keys();
    let store = || Store::Redis { url: redis.url() };
    let gw1 = TestGateway::start(options(&idp, &keys, "", store()));
    let gw2 = TestGateway::start(options(&idp, &keys, "", store()));
    let mut browser = gw1.browser();
    let request = start_login(&gw1, &mut browser, &idp).await;
    let mut spec = ResponseSpec::answering(&request);
    spec.response_id = Some("_response-seen-once-0123456789".into());
    spec.assertion_id = Some("_assertion-seen-once-0123456789".into());
    assert_signed_in(&post_response(&mut browser, &request, &idp.response(&spec)).await);

    // The same IDs in an answer to a new request on the other replica (each gateway has its
    // own ACS URL, so the IdP re-signs it for gw2): the shared replay cache refuses it.
    let log = logs::Scope::begin();
    let mut other = gw2.browser();
    let second = start_login(&gw2, &mut other, &idp).await;
    let mut replay = ResponseSpec::answering(&second);
    replay.response_id = spec.response_id.clone();
    replay.assertion_id = spec.assertion_id.clone();
    let page = post_response(&mut other, &second, &idp.response(&replay)).await;
    assert_refused(&log, &page, "replay");
}

#[tokio::test]
async fn an_expired_assertion_is_refused() {
    refused_spec(
        |spec| {
            spec.conditions_not_on_or_after_offset = Some(chrono::Duration::minutes(-10));
            spec.confirmation_not_on_or_after_offset = Some(chrono::Duration::minutes(-10));
            spec.issue_instant_offset = chrono::Duration::minutes(-15);
            spec.conditions_not_before_offset = Some(chrono::Duration::minutes(-16));
        },
        "",
        "expired",
    )
    .await;
}

#[tokio::test]
async fn a_not_yet_valid_assertion_is_refused() {
    refused_spec(
        |spec| spec.conditions_not_before_offset = Some(chrono::Duration::minutes(10)),
        "",
        "not yet valid",
    )
    .await;
}

#[tokio::test]
async fn the_clock_skew_is_configurable() {
    // 2 minutes early passes a 5-minute skew, and is refused with the default 1 minute.
    let early = |spec: &mut ResponseSpec| {
        spec.conditions_not_before_offset = Some(chrono::Duration::minutes(2))
    };
    refused_spec(early, "", "not yet valid").await;
    let setup = setup("    clock_skew: 5m\n").await;
    let (_, page) = trip_with(&setup, early).await;
    assert_signed_in(&page);
}

#[tokio::test]
async fn a_missing_audience_is_refused() {
    refused_spec(|spec| spec.audience = None, "", "no AudienceRestriction").await;
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    refused_spec(
        |spec| spec.audience = Some("https://other-sp.example/saml".into()),
        "",
        "does not name this SP",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_destination_is_refused() {
    refused_spec(
        |spec| spec.destination = Some("https://other-sp.example/acs".into()),
        "",
        "Destination",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_recipient_is_refused() {
    refused_spec(
        |spec| spec.recipient = Some("https://other-sp.example/acs".into()),
        "",
        "Recipient",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    refused_spec(
        |spec| spec.issuer = Some("https://evil-idp.example/idp".into()),
        "",
        "is not the IdP",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_in_response_to_is_refused() {
    refused_spec(
        |spec| spec.in_response_to = Some("_not-a-request-we-sent".into()),
        "",
        "InResponseTo",
    )
    .await;
}

#[tokio::test]
async fn a_reused_in_response_to_is_refused() {
    // A second response to a request already answered: the login transaction is single use.
    let setup = setup("").await;
    let log = logs::Scope::begin();
    let mut browser = setup.gw.browser();
    let request = start_login(&setup.gw, &mut browser, &setup.idp).await;
    let first = setup.idp.response(&ResponseSpec::answering(&request));
    assert_signed_in(&post_response(&mut browser, &request, &first).await);
    let second = setup.idp.response(&ResponseSpec::answering(&request));
    // The login cookie went with the first answer: Guichet's relay page posts it again, once,
    // and then nothing matches it.
    let relayed = post_response(&mut browser, &request, &second).await;
    assert_eq!(relayed.status, 200, "{}", relayed.body);
    let mut fields = guichet_tests::cas::hidden_fields(&relayed.body);
    assert!(
        fields.iter().any(|(k, _)| k == "guichet_relay"),
        "{}",
        relayed.body
    );
    fields.retain(|(k, _)| k != "guichet_relay");
    fields.push(("guichet_relay".into(), "1".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let acs = request.acs_url.clone().unwrap();
    let page = browser.send(browser.post_form(&acs, &fields)).await;
    assert_refused(&log, &page, "no login transaction");
}

#[tokio::test]
async fn an_unsolicited_response_is_refused_when_not_allowed() {
    let setup = setup("").await;
    let log = logs::Scope::begin();
    let mut browser = setup.gw.browser();
    let acs = setup.gw.url("/.guichet/callback/idp");
    let response = setup.idp.response(&ResponseSpec::for_sp(&acs, SP_ENTITY));
    let fields = SamlIdp::post_fields(&response, None);
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Relayed once from Guichet's own page (no login cookie), then refused.
    let relayed = browser.send(browser.post_form(&acs, &fields)).await;
    assert_eq!(relayed.status, 200, "{}", relayed.body);
    let mut again = fields.clone();
    again.push(("guichet_relay", "1"));
    let page = browser.send(browser.post_form(&acs, &again)).await;
    assert_refused(&log, &page, "no login transaction");
}

#[tokio::test]
async fn an_unsolicited_response_lands_on_the_configured_app_when_allowed() {
    let setup = setup("    allow_unsolicited: true\n    unsolicited_landing: bib\n").await;
    let mut browser = setup.gw.browser();
    let acs = setup.gw.url("/.guichet/callback/idp");
    let response = setup.idp.response(&ResponseSpec::for_sp(&acs, SP_ENTITY));
    let mut fields = SamlIdp::post_fields(&response, None);
    fields.push(("guichet_relay".into(), "1".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = browser.send(browser.post_form(&acs, &fields)).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location(), Some("/bib/"));
    let app = browser.send(browser.get_json(&setup.gw.url("/bib/"))).await;
    assert_eq!(app.upstream_header("x-remote-user"), ["alice@corp.example"]);
}

#[tokio::test]
async fn a_status_other_than_success_is_a_clear_refusal() {
    let setup = setup("").await;
    let log = logs::Scope::begin();
    let (_, page) = trip_with(&setup, |spec| {
        spec.status = status::RESPONDER.into();
        spec.status_sub_code = Some(status::AUTHN_FAILED.into());
        spec.status_message = Some("Mot de passe incorrect".into());
    })
    .await;
    assert_refused(&log, &page, "AuthnFailed");
}

#[tokio::test]
async fn cbc_and_rsa1_5_encryption_are_refused_unless_allowed() {
    let cert = TestKey::sp().cert_pem();
    let mut cbc = EncryptFor::new(&cert);
    cbc.data_encryption = DataEncryption::Aes128Cbc;
    let mut rsa15 = EncryptFor::new(&cert);
    rsa15.key_transport = KeyTransport::Rsa15;
    refused_spec(
        |spec| spec.encrypt_for = Some(cbc.clone()),
        "",
        "allow_cbc is off",
    )
    .await;
    refused_spec(
        |spec| spec.encrypt_for = Some(rsa15.clone()),
        "",
        "allow_rsa1_5 is off",
    )
    .await;
    let setup = setup("    allow_cbc: true\n    allow_rsa1_5: true\n").await;
    for encrypt in [cbc, rsa15] {
        let (_, page) = trip_with(&setup, |spec| spec.encrypt_for = Some(encrypt)).await;
        assert_signed_in(&page);
    }
}

// --- bad input ------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_base64_non_utf8_and_oversized_bodies_are_refused_without_panic() {
    let setup = setup("").await;
    let log = logs::Scope::begin();
    for (bad, reason) in [
        ("%%%not base64%%%".to_owned(), "not base64"),
        (base64_of(&[0xff, 0xfe, 0x3c, 0x61, 0x3e]), "not UTF-8"),
        (base64_of(b"<samlp:Response"), "unreadable XML"),
    ] {
        let (_, page) = trip(&setup, |_, _| bad.clone()).await;
        assert_refused(&log, &page, reason);
    }
    // Beyond 256 KiB: refused before any parsing.
    let huge = "A".repeat(300 * 1024);
    let (_, page) = trip(&setup, |_, _| huge.clone()).await;
    assert!(matches!(page.status, 400 | 413), "{}", page.status);
    assert!(page
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("guichet_session=")));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// --- metadata -------------------------------------------------------------------------------

#[tokio::test]
async fn the_sp_metadata_names_every_endpoint_and_certificate() {
    let setup = setup("").await;
    let mut browser = setup.gw.browser();
    let page = browser
        .send(browser.get(&setup.gw.url("/.guichet/saml-metadata/idp")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/samlmetadata+xml"));
    let xml = &page.body;
    assert!(xml.contains(&format!("entityID=\"{SP_ENTITY}\"")), "{xml}");
    assert!(
        xml.contains(&setup.gw.url("/.guichet/callback/idp")),
        "{xml}"
    );
    assert!(
        xml.contains(&setup.gw.url("/.guichet/saml-slo/idp")),
        "{xml}"
    );
    let cert_body: String = TestKey::sp()
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(xml.replace(['\n', ' '], "").contains(&cert_body), "{xml}");
    assert!(
        xml.contains("use=\"signing\"") && xml.contains("use=\"encryption\""),
        "{xml}"
    );
    // The IdP metadata refreshes are counted where operators look.
    let metrics = browser
        .send(browser.get(&setup.gw.admin_url("/metrics")))
        .await;
    assert!(
        metrics.body.contains(
            "guichet_provider_events_total{event=\"saml_metadata_refresh_failed\",provider=\"idp\"} 0"
        ),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn federation_metadata_picks_the_idp_by_entity_id_and_signed_metadata_is_verified() {
    let idp = SamlIdp::start().await;
    let keys = sp_keys();
    let dir = tempfile::tempdir().unwrap();
    let signer = dir.path().join("federation.crt");
    std::fs::write(&signer, idp.metadata_signing_certificate_pem()).unwrap();
    let extra = format!(
        "    idp_entity_id: \"{}\"\n    metadata_signing_certificates: [ {{ file: \"{}\" }} ]\n",
        idp.entity_id(),
        signer.display()
    );
    let mut options = options(&idp, &keys, &extra, Store::Memory);
    options.extra_providers[0] = options.extra_providers[0]
        .replace(&idp.metadata_url(), &idp.signed_federation_metadata_url());
    let gw = TestGateway::start(options);
    let mut browser = gw.browser();
    let request = start_login(&gw, &mut browser, &idp).await;
    let page = post_response(
        &mut browser,
        &request,
        &idp.response(&ResponseSpec::answering(&request)),
    )
    .await;
    assert_eq!(page.status, 302, "{}", page.body);
}

// --- single logout --------------------------------------------------------------------------

/// Signs in on `gw` and returns the browser and the session index the IdP gave.
async fn signed_in(gw: &TestGateway, idp: &SamlIdp) -> (Browser, String) {
    let mut browser = gw.browser();
    let request = start_login(gw, &mut browser, idp).await;
    let mut spec = ResponseSpec::answering(&request);
    let session_index = spec.session_index.clone().unwrap();
    spec.session_index = Some(session_index.clone());
    let page = post_response(&mut browser, &request, &idp.response(&spec)).await;
    assert_signed_in(&page);
    (browser, session_index)
}

async fn session_alive(gw: &TestGateway, browser: &mut Browser) -> bool {
    let page = browser
        .send(browser.get(&gw.url("/bib/catalogue?q=1")))
        .await;
    page.status == 200
}

/// Whether the session is still served by `gw` once a session ended on another replica has had
/// time to be dropped from `gw`'s local copy (at once when the announcement arrives; under
/// [`guichet_tests::CROSS_REPLICA_BOUND`] in any case).
async fn session_alive_after_announcements(gw: &TestGateway, browser: &mut Browser) -> bool {
    let (page, took) = browser
        .until_signed_out(
            &gw.url("/bib/catalogue?q=1"),
            std::time::Duration::from_secs(3),
        )
        .await;
    assert!(took < guichet_tests::CROSS_REPLICA_BOUND, "{took:?}");
    page.status == 200
}

#[tokio::test]
async fn sp_initiated_logout_sends_a_signed_logout_request_and_verifies_the_answer() {
    let setup = setup("").await;
    let (mut browser, session_index) = signed_in(&setup.gw, &setup.idp).await;
    let out = browser
        .send(browser.get(&setup.gw.url("/.guichet/logout?return_to=/bib/")))
        .await;
    assert_eq!(out.status, 302, "{}", out.body);
    let location = out.location().unwrap().to_owned();
    assert!(location.starts_with(&setup.idp.slo_url()), "{location}");
    let request = SamlIdp::read_logout_request_from_url(&location);
    assert!(SamlIdp::verify_redirect_signature(
        &location,
        &TestKey::sp().cert_pem()
    ));
    assert_eq!(request.name_id.as_deref(), Some("alice@corp.example"));
    assert_eq!(request.session_indexes, [session_index]);
    assert_eq!(request.issuer.as_deref(), Some(SP_ENTITY));
    assert!(
        !session_alive(&setup.gw, &mut browser).await,
        "ended locally at once"
    );

    // The IdP's signed answer comes back to the SP's SLO endpoint, then the user lands.
    let answer = setup.idp.logout_response_redirect(
        &request,
        &setup.gw.url("/.guichet/saml-slo/idp"),
        status::SUCCESS,
    );
    let back = browser.send(browser.get(&answer.url)).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(back.location(), Some("/bib/"));

    // The same answer again: the state was single use; the plain "signed out" page.
    let again = browser.send(browser.get(&answer.url)).await;
    assert_ne!(again.status, 302, "{}", again.body);
}

#[tokio::test]
async fn a_forged_logout_response_is_refused() {
    let setup = setup("").await;
    let (mut browser, _) = signed_in(&setup.gw, &setup.idp).await;
    let out = browser
        .send(browser.get(&setup.gw.url("/.guichet/logout?return_to=/bib/")))
        .await;
    let request = SamlIdp::read_logout_request_from_url(out.location().unwrap());
    let answer = setup.idp.logout_response_redirect(
        &request,
        &setup.gw.url("/.guichet/saml-slo/idp"),
        status::SUCCESS,
    );
    // Signature bytes altered.
    let forged = answer.url.replace("Signature=", "Signature=AAAA");
    let log = logs::Scope::begin();
    let page = browser.send(browser.get(&forged)).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(!log.audit_events("signature").is_empty(), "{}", log.text());
}

async fn idp_initiated_logout_on_two_replicas(post: bool) {
    let redis = RedisServer::start();
    let idp = SamlIdp::start().await;
    let keys = sp_keys();
    let store = || Store::Redis { url: redis.url() };
    let gw1 = TestGateway::start(options(&idp, &keys, "", store()));
    let gw2 = TestGateway::start(options(&idp, &keys, "", store()));
    let (mut alice, session_index) = signed_in(&gw1, &idp).await;
    // Someone else's session is untouched.
    let (mut other, _) = signed_in(&gw1, &idp).await;
    assert!(session_alive(&gw1, &mut alice).await);

    let mut spec = LogoutRequestSpec::new(
        &gw2.url("/.guichet/saml-slo/idp"),
        "alice@corp.example",
        Some(&session_index),
    );
    spec.relay_state = Some("idp-relay-1".into());
    let message = if post {
        idp.logout_request_post(&spec)
    } else {
        idp.logout_request_redirect(&spec)
    };
    let mut browser = gw2.browser();
    let page = if post {
        let fields: Vec<(&str, &str)> = message
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        browser.send(browser.post_form(&message.url, &fields)).await
    } else {
        browser.send(browser.get(&message.url)).await
    };
    // The signed LogoutResponse goes back to the IdP, RelayState echoed.
    assert_eq!(page.status, 302, "{}", page.body);
    let location = page.location().unwrap();
    assert!(location.starts_with(&idp.slo_url()), "{location}");
    let response = SamlIdp::read_logout_response_from_url(location);
    assert!(response.is_success(), "{response:?}");
    assert!(SamlIdp::verify_redirect_signature(
        location,
        &TestKey::sp().cert_pem()
    ));
    assert_eq!(response.relay_state.as_deref(), Some("idp-relay-1"));

    assert!(
        !session_alive_after_announcements(&gw1, &mut alice).await,
        "ended on the other replica"
    );

    // The same message again: used once (the record is in the shared store).
    let log = logs::Scope::begin();
    let mut replayer = gw2.browser();
    let replayed = if post {
        let fields: Vec<(&str, &str)> = message
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        replayer
            .send(replayer.post_form(&message.url, &fields))
            .await
    } else {
        replayer.send(replayer.get(&message.url)).await
    };
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    assert!(log.text().contains("replayed"), "{}", log.text());
    assert!(
        session_alive(&gw1, &mut other).await,
        "only that session index"
    );
}

#[tokio::test]
async fn idp_initiated_logout_by_redirect_ends_the_session_on_every_replica() {
    idp_initiated_logout_on_two_replicas(false).await;
}

#[tokio::test]
async fn idp_initiated_logout_by_post_ends_the_session_on_every_replica() {
    idp_initiated_logout_on_two_replicas(true).await;
}

#[tokio::test]
async fn an_unsigned_or_foreign_logout_request_ends_nothing() {
    let setup = setup("").await;
    let (mut alice, session_index) = signed_in(&setup.gw, &setup.idp).await;
    let spec = LogoutRequestSpec::new(
        &setup.gw.url("/.guichet/saml-slo/idp"),
        "alice@corp.example",
        Some(&session_index),
    );
    let signed = setup.idp.logout_request_redirect(&spec);
    let unsigned = signed.url.split("&SigAlg=").next().unwrap().to_owned();
    let attacker = SamlIdp::start_with_key(TestKey::attacker()).await;
    let mut foreign_spec = spec.clone();
    foreign_spec.issuer = Some(setup.idp.entity_id());
    let foreign = attacker.logout_request_redirect(&foreign_spec);
    let log = logs::Scope::begin();
    for url in [unsigned, foreign.url] {
        let mut browser = setup.gw.browser();
        let page = browser.send(browser.get(&url)).await;
        assert_eq!(page.status, 400, "{}", page.body);
    }
    assert!(session_alive(&setup.gw, &mut alice).await);
    assert!(log.text().contains("saml-slo") || !log.audit_events("idp").is_empty());
}

#[tokio::test]
async fn a_deflate_bomb_on_the_logout_endpoint_is_refused_without_panic() {
    use std::io::Write;
    let setup = setup("").await;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    // 16 MiB of spaces deflate to a few KiB: a URL a browser would send.
    let zeros = vec![b' '; 1024 * 1024];
    for _ in 0..16 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = base64_of(&encoder.finish().unwrap());
    let url = format!(
        "{}?SAMLRequest={}",
        setup.gw.url("/.guichet/saml-slo/idp"),
        url::form_urlencoded::byte_serialize(bomb.as_bytes()).collect::<String>()
    );
    let mut browser = setup.gw.browser();
    let page = browser.send(browser.get(&url)).await;
    assert!(matches!(page.status, 400 | 414 | 431), "{}", page.status);
    // Still serving.
    let metadata = browser
        .send(browser.get(&setup.gw.url("/.guichet/saml-metadata/idp")))
        .await;
    assert_eq!(metadata.status, 200);
}

#[tokio::test]
async fn sp_initiated_logout_on_one_replica_ends_the_session_on_the_other() {
    let redis = RedisServer::start();
    let idp = SamlIdp::start().await;
    let keys = sp_keys();
    let store = || Store::Redis { url: redis.url() };
    let gw1 = TestGateway::start(options(&idp, &keys, "", store()));
    let gw2 = TestGateway::start(options(&idp, &keys, "", store()));
    let (mut on_first, session_index) = signed_in(&gw1, &idp).await;
    // The same browser reaching the other replica (a load balancer's choice).
    let mut on_second = gw2.browser();
    on_second.cookies = on_first.cookies.clone();
    assert!(session_alive(&gw2, &mut on_second).await);

    let out = on_second
        .send(on_second.get(&gw2.url("/.guichet/logout?return_to=/bib/")))
        .await;
    assert_eq!(out.status, 302, "{}", out.body);
    let request = SamlIdp::read_logout_request_from_url(out.location().unwrap());
    assert_eq!(request.session_indexes, [session_index]);
    assert!(
        !session_alive_after_announcements(&gw1, &mut on_first).await,
        "ended on the first replica within a second"
    );
    let answer = idp.logout_response_redirect(
        &request,
        &gw2.url("/.guichet/saml-slo/idp"),
        status::SUCCESS,
    );
    let back = on_second.send(on_second.get(&answer.url)).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(back.location(), Some("/bib/"));
}
