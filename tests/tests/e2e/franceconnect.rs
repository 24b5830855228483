//! FranceConnect v2 against a FranceConnect-shaped mock provider (issuer under `/api/v2`,
//! client_secret_post, ES256, signed userinfo, eIDAS levels).

use guichet_tests::oidc::{self, Alg, ClientAuth, MockOp, FRANCECONNECT_CLAIMS};
use guichet_tests::{logs, Browser, GatewayOptions, TestGateway};
use serde_json::json;

async fn franceconnect() -> MockOp {
    let op = MockOp::start_at("/api/v2").await;
    op.behave(|b| {
        b.alg = Alg::Es256;
        b.client_auth = ClientAuth::Post;
        b.signed_userinfo = true;
    });
    op
}

fn gateway(op: &MockOp, extra: &str) -> TestGateway {
    TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "franceconnect",
            "fc",
            &op.issuer,
            extra,
        )],
        extra_apps: vec![oidc::app_yaml("citizens", "/demarches", &["fc"])],
        ..GatewayOptions::default()
    })
}

async fn login(gw: &TestGateway) -> (Browser, oidc::Trip) {
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, gw, "/demarches/", None).await;
    (browser, trip)
}

fn refused(log: &logs::Scope, trip: &oidc::Trip, reason: &str) {
    assert_eq!(trip.page.status, 403, "{}", trip.page.body);
    let events = log.audit_of(&trip.page);
    assert!(
        events.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(reason))),
        "{reason}: {events:?}"
    );
    assert!(trip
        .page
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("guichet_session=")));
}

#[tokio::test]
async fn the_authorize_request_carries_every_mandatory_parameter() {
    let op = franceconnect().await;
    let gw = gateway(&op, "");
    let (_, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let authorize = trip.authorize.unwrap();
    assert_eq!(authorize.path(), "/api/v2/authorize");
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], oidc::CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        format!("http://app.test:{}/.guichet/callback/fc", gw.port)
    );
    assert_eq!(q["acr_values"], "eidas1");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    assert!(scopes.contains(&"openid"));
    for claim in FRANCECONNECT_CLAIMS {
        assert!(scopes.contains(claim), "scope {claim}");
    }
    for name in ["state", "nonce"] {
        assert_eq!(q[name].len(), 64);
        assert!(q[name].chars().all(|c| c.is_ascii_alphanumeric()));
    }
    // The token request authenticated with client_secret_post and userinfo was fetched.
    assert_eq!(op.state().userinfo_fetches, 1);
}

#[tokio::test]
async fn accented_claims_reach_the_app_as_configured() {
    let op = franceconnect().await;
    let gw = gateway(&op, "");
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let page = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 200);
    // given_name as raw UTF-8, family_name percent-encoded, as the app's mapping says.
    assert_eq!(
        page.upstream_header_bytes("x-remote-given-name"),
        Some("Grégory".as_bytes().to_vec())
    );
    assert_eq!(
        page.upstream_header("x-remote-family-name"),
        vec!["Fran%C3%A7oise"]
    );
    assert_eq!(page.upstream_header("x-remote-level"), vec!["eidas1"]);
    assert_eq!(
        page.upstream_header("x-remote-email"),
        vec!["gregory.francoise@example.org"]
    );
}

#[tokio::test]
async fn unsigned_userinfo_is_rejected() {
    let log = logs::Scope::begin();
    let op = franceconnect().await;
    op.behave(|b| b.signed_userinfo = false);
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "not signed");
}

#[tokio::test]
async fn a_lower_acr_is_rejected() {
    let log = logs::Scope::begin();
    let op = franceconnect().await;
    // eIDAS substantial requested, the provider vouches for low only.
    op.behave(|b| b.id_token_claims = json!({"acr": "eidas1"}).as_object().cloned().unwrap());
    let gw = gateway(&op, "acr_values: eidas2");
    refused(&log, &login(&gw).await.1, "below the requested");
    // No acr at all is no better.
    let op = franceconnect().await;
    op.behave(|b| b.id_token_claims = json!({"acr": null}).as_object().cloned().unwrap());
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "no acr");
}

#[tokio::test]
async fn hs256_is_rejected() {
    let log = logs::Scope::begin();
    let op = franceconnect().await;
    op.behave(|b| b.alg = Alg::Hs256);
    let gw = gateway(&op, "");
    refused(&log, &login(&gw).await.1, "id_token");
}

#[tokio::test]
async fn hs256_cannot_even_be_configured() {
    let op = franceconnect().await;
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
    let op = franceconnect().await;
    let gw = gateway(&op, "");
    let (mut browser, trip) = login(&gw).await;
    assert_eq!(trip.page.status, 302);
    let out = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(out.status, 302);
    let end = url::Url::parse(out.location().unwrap()).unwrap();
    assert_eq!(end.path(), "/api/v2/session/end");
    let q: std::collections::HashMap<String, String> = end.query_pairs().into_owned().collect();
    assert_eq!(q["id_token_hint"].split('.').count(), 3);
    assert_eq!(q["state"].len(), 64);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("http://app.test:{}/.guichet/logout/done", gw.port)
    );
    assert_eq!(
        q["id_token_hint"],
        op.state().id_tokens[0],
        "the session's own id_token"
    );
    // FranceConnect sends the browser back with the state; Guichet checks it.
    let back = browser.send(browser.get(end.as_str())).await;
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
