//! FranceConnect v2 through Guichet's `franceconnect` preset, against the strict FranceConnect
//! mock (`guichet_tests::franceconnect`: the platform's rules, its refusals). The mock's own
//! refusals, driven without a gateway, are in `franceconnect_strict.rs`.

use std::collections::HashMap;

use guichet_tests::franceconnect::{assert_refused as refused, assert_signed_in as signed_in};
use guichet_tests::franceconnect::{TokenAuth, AUTHORIZE_OPTIONAL, AUTHORIZE_REQUIRED};
use guichet_tests::oidc::{self, Alg, MockOp};
use guichet_tests::{logs, Browser, GatewayOptions, TestGateway};
use serde_json::{json, Value};

/// The gateway with a FranceConnect provider `fc` (with `extra` settings) for the app at
/// `/demarches`, its callback and signed-out URIs registered at the platform.
fn gateway(op: &MockOp, extra: &str) -> TestGateway {
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "franceconnect",
            "fc",
            &op.issuer,
            extra,
        )],
        extra_apps: vec![oidc::app_yaml("citizens", "/demarches", &["fc"])],
        ..GatewayOptions::default()
    });
    op.register_gateway(&format!("http://app.test:{}", gw.port), "fc");
    gw
}

async fn login(gw: &TestGateway) -> (Browser, oidc::Trip) {
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, gw, "/demarches/", None).await;
    (browser, trip)
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// The claims of a compact JWS (not verified: the mock signed it).
fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn the_authorize_request_carries_every_mandatory_parameter() {
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "");
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    let authorize = trip.authorize.unwrap();
    assert_eq!(authorize.path(), "/api/v2/authorize");
    let q = query(&authorize);
    for name in AUTHORIZE_REQUIRED {
        assert!(q.contains_key(name), "{name} is sent");
    }
    for name in q.keys() {
        assert!(
            AUTHORIZE_REQUIRED.contains(&name.as_str())
                || AUTHORIZE_OPTIONAL.contains(&name.as_str()),
            "{name} is not a parameter FranceConnect takes"
        );
    }
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], oidc::CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        format!("http://app.test:{}/.guichet/callback/fc", gw.port)
    );
    assert_eq!(q["acr_values"], "eidas1");
    // The preset's default: openid and the citizen's names only.
    let mut scopes: Vec<&str> = q["scope"].split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["family_name", "given_name", "openid"]);
    for name in ["state", "nonce"] {
        assert!(q[name].len() >= 32, "{name}: {}", q[name]);
        assert!(q[name].chars().all(|c| c.is_ascii_alphanumeric()));
    }
    // The token request authenticated with client_secret_post and userinfo was fetched.
    assert_eq!(op.state().userinfo_fetches, 1);
}

#[tokio::test]
async fn the_preset_signs_in_at_the_strict_platform() {
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "");
    let (mut browser, trip) = login(&gw).await;
    signed_in(&op, &trip);

    // What reached /authorize: no PKCE (FranceConnect answers it with Y030007), a nonce of at
    // least 32 characters.
    let authorize = query(&op.state().authorize_requests[0]);
    for name in ["code_challenge", "code_challenge_method"] {
        assert!(!authorize.contains_key(name), "{name} sent: {authorize:?}");
    }
    assert!(authorize["nonce"].len() >= 32, "{}", authorize["nonce"]);

    // The token request: client_secret_post (no Authorization header), no code_verifier.
    let token = op.state().token_requests[0].clone();
    assert!(
        !token.headers.contains_key("authorization"),
        "client_secret_basic: {:?}",
        token.headers
    );
    let form: HashMap<String, String> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    assert_eq!(form["client_id"], oidc::CLIENT_ID);
    assert_eq!(form["client_secret"], oidc::CLIENT_SECRET);
    assert_eq!(form["grant_type"], "authorization_code");
    assert!(!form.contains_key("code_verifier"));

    // The app sees the platform's pairwise sub and the RNIPP names.
    let page = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.upstream_header("x-remote-user"),
        vec![op.fc_sub(oidc::CLIENT_ID)]
    );
    assert_eq!(page.upstream_header("x-remote-level"), vec!["eidas1"]);
    assert_eq!(
        page.upstream_header_bytes("x-remote-given-name"),
        Some("Grégory Gaëtan".as_bytes().to_vec())
    );
    // Not asked for, not released.
    assert!(page.upstream_header("x-remote-email").is_empty());
}

#[tokio::test]
async fn accented_claims_reach_the_app_as_configured() {
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "scopes: [given_name, family_name, email]");
    let (mut browser, trip) = login(&gw).await;
    signed_in(&op, &trip);
    let page = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 200);
    // given_name as raw UTF-8 (space-separated given names), family_name percent-encoded, as
    // the app's mapping says.
    assert_eq!(
        page.upstream_header_bytes("x-remote-given-name"),
        Some("Grégory Gaëtan".as_bytes().to_vec())
    );
    assert_eq!(
        page.upstream_header("x-remote-family-name"),
        vec!["FRAN%C3%87OISE"]
    );
    assert_eq!(page.upstream_header("x-remote-level"), vec!["eidas1"]);
    assert_eq!(
        page.upstream_header("x-remote-email"),
        vec!["gregory.francoise@example.org"]
    );
}

#[tokio::test]
async fn a_grouped_scope_releases_its_claims() {
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "scopes: [identite_pivot]");
    let (mut browser, trip) = login(&gw).await;
    signed_in(&op, &trip);
    assert_eq!(
        query(&op.state().authorize_requests[0])["scope"],
        "openid identite_pivot"
    );
    let page = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.upstream_header("x-remote-family-name"),
        vec!["FRAN%C3%87OISE"]
    );
    // identite_pivot has no email (fact sheet §3.1).
    assert!(page.upstream_header("x-remote-email").is_empty());
}

#[tokio::test]
async fn a_scope_the_service_is_not_authorised_for_is_refused() {
    let log = logs::Scope::begin();
    let op = MockOp::franceconnect().await;
    op.fc(|fc| {
        fc.client_mut(oidc::CLIENT_ID).scopes.remove("email");
    });
    let gw = gateway(&op, "scopes: [given_name, family_name, email]");
    let (_, trip) = login(&gw).await;
    // The platform sends the browser back with invalid_scope; the gateway shows the refusal.
    let callback = trip.callback.as_deref().expect("sent back to the gateway");
    assert!(callback.contains("error=invalid_scope"), "{callback}");
    assert_eq!(
        op.fc(|fc| fc.refusals.clone()),
        ["scope email is not allowed for this client"]
    );
    refused(&log, &trip, "invalid_scope");
}

#[tokio::test]
async fn amr_is_released_to_a_service_authorised_for_it() {
    let op = MockOp::franceconnect().await;
    op.fc(|fc| fc.client_mut(oidc::CLIENT_ID).amr = true);
    let gw = gateway(&op, "claims: { id_token: { amr: { essential: true } } }");
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    let claims: Value =
        serde_json::from_str(&query(&op.state().authorize_requests[0])["claims"]).unwrap();
    assert_eq!(claims, json!({"id_token": {"amr": {"essential": true}}}));
    let id_token = jwt_claims(&op.state().id_tokens[0]);
    assert_eq!(id_token["amr"], json!(["fc", "pwd"]));
}

#[tokio::test]
async fn amr_asked_by_a_service_not_authorised_for_it_stops_at_franceconnect() {
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "claims: { id_token: { amr: { essential: true } } }");
    let (_, trip) = login(&gw).await;
    // The platform's error page: the user never comes back.
    assert!(trip.callback.is_none());
    assert_eq!(trip.page.status, 400);
    assert!(trip.page.body.contains("Y100009"), "{}", trip.page.body);
}

#[tokio::test]
async fn unsigned_userinfo_is_rejected() {
    let log = logs::Scope::begin();
    let op = MockOp::franceconnect().await;
    op.behave(|b| b.signed_userinfo = false);
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "not signed");
}

#[tokio::test]
async fn an_acr_other_than_eidas1_is_rejected() {
    let log = logs::Scope::begin();
    // A level that is not an eIDAS level at all, written by a misbehaving platform.
    let op = MockOp::franceconnect().await;
    op.behave(|b| {
        b.id_token_claims = json!({"acr": "niveau_inconnu"})
            .as_object()
            .cloned()
            .unwrap()
    });
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "below the requested");
    // No acr at all is no better.
    let op = MockOp::franceconnect().await;
    op.behave(|b| b.id_token_claims = json!({"acr": null}).as_object().cloned().unwrap());
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "no acr");
}

#[tokio::test]
async fn hs256_is_rejected() {
    // FranceConnect (low) still signs HS256 for a service that chose it (fact sheet §2.2).
    let log = logs::Scope::begin();
    let op = MockOp::franceconnect().await;
    op.behave(|b| b.alg = Alg::Hs256);
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "id_token");
}

#[tokio::test]
async fn rs256_is_accepted() {
    let op = MockOp::franceconnect().await;
    op.behave(|b| b.alg = Alg::Rs256);
    let gw = gateway(&op, "");
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
}

#[tokio::test]
async fn private_key_jwt_signs_in() {
    let op = MockOp::franceconnect().await;
    op.fc(|fc| fc.client_mut(oidc::CLIENT_ID).auth = TokenAuth::PrivateKeyJwt);
    let gw = gateway(
        &op,
        &format!(
            "client_auth: private_key_jwt\nprivate_key_file: \"{}\"",
            oidc::client_key_path()
        ),
    );
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    let token = op.state().token_requests[0].clone();
    assert!(!token.headers.contains_key("authorization"));
    let form: HashMap<String, String> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    assert!(form.contains_key("client_assertion"));
    assert!(!form.contains_key("client_secret"));
}

#[tokio::test]
async fn hs256_cannot_even_be_configured() {
    let op = MockOp::franceconnect().await;
    let yaml = guichet_tests::config_yaml(
        &GatewayOptions {
            extra_providers: vec![oidc::provider_yaml(
                "franceconnect",
                "fc",
                &op.issuer,
                "allowed_algs: [ES256, HS256]",
            )],
            ..GatewayOptions::default()
        },
        1,
        2,
        "127.0.0.1:3".parse().unwrap(),
    );
    let error = guichet_gateway::config::Config::from_yaml(&yaml).unwrap_err();
    assert_eq!(error.path, "providers[2].allowed_algs");
}

#[tokio::test]
async fn logout_redirect_carries_id_token_hint_state_and_post_logout_redirect_uri() {
    let log = logs::Scope::begin();
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "");
    let (mut browser, trip) = login(&gw).await;
    signed_in(&op, &trip);
    let out = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(out.status, 302);
    let end = url::Url::parse(out.location().unwrap()).unwrap();
    assert_eq!(end.path(), "/api/v2/session/end");
    let q = query(&end);
    assert!(q["state"].len() >= 32, "a random state: {}", q["state"]);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("http://app.test:{}/.guichet/logout/done", gw.port)
    );
    assert_eq!(
        q["id_token_hint"],
        op.state().id_tokens[0],
        "the session's own id_token"
    );
    // FranceConnect (which checks the hint, the registered URI, the parameters) sends the
    // browser back with the state; Guichet checks it.
    let back = browser.send(browser.get(end.as_str())).await;
    assert_eq!(
        back.status,
        302,
        "{}: {:?}",
        back.body,
        op.fc(|fc| fc.refusals.clone())
    );
    let done_url = back.location().unwrap().to_owned();
    let done = browser.send(browser.get(&done_url)).await;
    assert_eq!(done.status, 200, "the signed-out page");
    assert!(done.body.contains("signed out") || done.body.contains("déconnecté"));
    // A forged or spent state gets the same page: what tells them apart is that this state was
    // the pending logout's (no refusal in the audit log), and is spent now.
    let refused = |page: &guichet_tests::Page| {
        log.audit_of(page).iter().any(|e| {
            e["fields"]["event"] == "request_refused"
                && e["fields"]["reason"]
                    == "return from provider logout with an unknown or missing state"
        })
    };
    assert!(
        !refused(&done),
        "the state was recognised as the pending logout's"
    );
    let replay = browser.send(browser.get(&done_url)).await;
    assert_eq!(replay.status, 200);
    assert!(refused(&replay), "the state is single use");
}

#[tokio::test]
async fn logout_after_the_id_token_expired_is_still_accepted() {
    // FranceConnect's id_tokens live 60 seconds; the session outlives them, and the platform
    // takes the expired one as id_token_hint.
    let op = MockOp::franceconnect().await;
    let gw = gateway(&op, "");
    let (mut browser, trip) = login(&gw).await;
    signed_in(&op, &trip);
    op.fc(|fc| fc.clock_offset = 3600);
    let out = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(out.status, 302);
    let back = browser.send(browser.get(out.location().unwrap())).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert!(back
        .location()
        .unwrap()
        .starts_with(&format!("http://app.test:{}/.guichet/logout/done", gw.port)));
}
